"""The ``devops`` program: the task namespace without any tasks.py, as fabric builds ``fab``.

Configuration files are ``devops.yaml`` (system, user, project) and runtime flags, as with
invoke; ``DEVOPS_*`` environment variables map onto that config the invoke way.
"""

from __future__ import annotations

from invoke import Config, Exit, ParseError, Program

from . import __version__
from .errors import DevopsError, ErrorCode
from .output import Output
from .tasks import namespace

__all__ = ["DevopsConfig", "DevopsProgram", "main", "program"]


class DevopsConfig(Config):
    """Invoke's config, read from ``devops.*`` files and ``DEVOPS_`` variables."""

    prefix = "devops"
    env_prefix = "DEVOPS"  # type: ignore[assignment]


class DevopsProgram(Program):
    """Invoke's ``Program``, except that with ``--json`` even a bad flag answers in JSON."""

    def update_config(self, merge: bool = True) -> None:
        """Also hand the words after ``--`` to tasks, as the list ``devops.remainder``.

        Invoke keeps them only joined by spaces, which loses the quoting: ``secrets.exec``
        needs them exactly as given, one argument each.
        """
        super().update_config(merge=False)
        overrides = dict(self.config._overrides)
        words = self.argv[self.argv.index("--") + 1 :] if "--" in self.argv else []
        overrides["devops"] = {**overrides.get("devops", {}), "remainder": words}
        self.config.load_overrides(overrides, merge=merge)

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as error:
            if "--json" not in self.argv:
                raise
            Output(json_mode=True).failure(
                DevopsError(
                    ErrorCode.INVALID_ARGUMENT,
                    str(error),
                    "Run `devops --list`, or `devops --help <task>` for a task's flags.",
                )
            )
            raise Exit(code=1) from None


program = DevopsProgram(
    name="devops",
    binary="devops",
    version=__version__,
    namespace=namespace,
    config_class=DevopsConfig,
)


def main() -> None:
    """Console-script entry point."""
    program.run()
