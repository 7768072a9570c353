"""The ``devops`` program: the task namespace without any tasks.py, as fabric builds ``fab``.

Configuration files are ``devops.yaml`` (system, user, project) and runtime flags, as with
invoke; ``DEVOPS_*`` environment variables map onto that config the invoke way.
"""

from __future__ import annotations

from invoke import Config, Program

from . import __version__
from .tasks import namespace

__all__ = ["program", "main", "DevopsConfig"]


class DevopsConfig(Config):
    """Invoke's config, read from ``devops.*`` files and ``DEVOPS_`` variables."""

    prefix = "devops"
    env_prefix = "DEVOPS"


program = Program(
    name="devops",
    binary="devops",
    version=__version__,
    namespace=namespace,
    config_class=DevopsConfig,
)


def main() -> None:
    """Console-script entry point."""
    program.run()
