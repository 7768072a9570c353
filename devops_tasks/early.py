"""A deploy's first reads and the scan of its build, started before the program has loaded.

Loading invoke and the tasks takes a tenth of a second or more; a bucket's live manifest
and listing take longer than that, and depend on none of it. So ``devops deploy`` starts
the target's first reads (:meth:`Platform.read_ahead`) from the project's settings as soon
as the interpreter is up, and the scan of the build in a process of its own
(:mod:`devops_tasks.scan_ahead`). The deploy, once loaded, uses them only if its target
reads the same store with the same credentials, and scans the same files the same way;
otherwise they are dropped (at worst one listing is read twice, or the build scanned
twice). Nothing is printed, nothing is written but the hash cache, and the secrets store
is not opened: anything this cannot do is left to the command, which then does it and says
why not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["Deploying", "deploying", "start"]

#: Flags after which nothing is deployed now (or reads this early would be stale: a build
#: runs first).
_NOT_NOW = frozenset(
    {"-h", "--help", "-V", "--version", "-l", "--list", "--complete", "-b", "--build"}
)


class Deploying(NamedTuple):
    """What the program's arguments say of the deploy they run first."""

    #: ``--env``/``-e`` (None: the one ``DEVOPS_ENV`` or the config gives).
    environment: str | None = None
    #: The target of ``deploy.<platform>`` (None: the configured one).
    platform: str | None = None
    #: ``--dir`` (None: ``build.dir``).
    build_dir: str | None = None
    #: False with ``--no-cache``.
    cache: bool = True


def deploying(argv: Sequence[str]) -> Deploying | None:
    """What ``argv`` (the program's arguments) deploys first; None if it deploys nothing now."""
    found: dict[str, Any] = {}
    task = None
    args = iter(argv)
    for arg in args:
        if arg in _NOT_NOW:
            return None
        name, equals, value = arg.partition("=")
        if name in ("-e", "--env", "--dir"):
            key = "build_dir" if name == "--dir" else "environment"
            found[key] = value if equals else next(args, None)
        elif arg.startswith("-e") and not arg.startswith("--"):
            found["environment"] = arg.removeprefix("-e")
        elif arg == "--no-cache":
            found["cache"] = False
        elif task is None and not arg.startswith("-"):
            task = arg
    if task is None or not (task == "deploy" or task.startswith("deploy.")):
        return None
    return Deploying(platform=task.partition(".")[2] or None, **found)


def start(argv: Sequence[str]) -> None:
    """Start what the deploy named by ``argv`` reads first: the target's first reads if it
    has any, and the scan of the build (:mod:`devops_tasks.scan_ahead`)."""
    deploy = deploying(argv)
    if deploy is None:
        return
    try:
        from . import scan_ahead  # noqa: PLC0415 - the point is to load little
        from .project import find_project  # noqa: PLC0415

        project = find_project(os.environ.get("DEVOPS_PROJECT_DIR"))
        scan_ahead.start(project.cache_dir / "digests" if deploy.cache else None)

        from .config import ConfigStore  # noqa: PLC0415
        from .credentials import Credentials  # noqa: PLC0415
        from .platforms import platform_class  # noqa: PLC0415

        environment = deploy.environment or os.environ.get("DEVOPS_ENV")
        settings = ConfigStore(project).settings(environment).targeting(deploy.platform)
        credentials = Credentials(project, settings, stored=False)
        platform = platform_class(settings.platform)(project, settings, None, credentials)
        build_dir = project.build_dir(settings.get("build.dir"), deploy.build_dir)
        scan_ahead.ask(scan_ahead.scan_request(project, platform, build_dir, deploy.cache))
        platform.read_ahead()
    except Exception:  # noqa: BLE001 - the command meets the same problem, and reports it
        pass
