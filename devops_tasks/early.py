"""A deploy's first reads, started before the program has loaded.

Loading invoke and the tasks takes a tenth of a second or more; a bucket's live manifest
and listing take longer than that, and depend on none of it. So ``devops deploy`` starts
the target's first reads (:meth:`Platform.read_ahead`) from the project's settings as soon
as the interpreter is up. The deploy, once loaded, uses them only if its target reads the
same store with the same credentials; otherwise they are dropped (at worst one listing is
read twice). Nothing is written, nothing is printed, and the secrets store is not opened:
anything this cannot do is left to the command, which then does it and says why not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["deploy_environment", "start"]

#: Flags after which nothing is deployed now (or reads this early would be stale: a build
#: runs first).
_NOT_NOW = frozenset(
    {"-h", "--help", "-V", "--version", "-l", "--list", "--complete", "-b", "--build"}
)


def deploy_environment(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Whether ``argv`` (the program's arguments) runs a deploy first, and the environment
    it names with ``--env``/``-e`` (None: the one ``DEVOPS_ENV`` or the config gives)."""
    environment = None
    task = None
    args = iter(argv)
    for arg in args:
        if arg in _NOT_NOW:
            return False, None
        if arg in ("-e", "--env"):
            environment = next(args, None)
        elif arg.startswith("--env="):
            environment = arg.removeprefix("--env=")
        elif arg.startswith("-e") and not arg.startswith("--"):
            environment = arg.removeprefix("-e")
        elif task is None and not arg.startswith("-"):
            task = arg
    deploys = task is not None and (task == "deploy" or task.startswith("deploy."))
    return deploys, environment


def start(argv: Sequence[str]) -> None:
    """Start the reads a deploy named by ``argv`` will make first, if its target has any."""
    deploys, environment = deploy_environment(argv)
    if not deploys:
        return
    try:
        from .config import ConfigStore  # noqa: PLC0415 - the point is to load little
        from .credentials import Credentials  # noqa: PLC0415
        from .platforms import platform_class  # noqa: PLC0415
        from .project import find_project  # noqa: PLC0415

        project = find_project(os.environ.get("DEVOPS_PROJECT_DIR"))
        settings = ConfigStore(project).settings(environment or os.environ.get("DEVOPS_ENV"))
        credentials = Credentials(project, settings, stored=False)
        platform_class(settings.platform)(project, settings, None, credentials).read_ahead()
    except Exception:  # noqa: BLE001 - the command meets the same problem, and reports it
        pass
