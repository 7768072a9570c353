"""Where a user's project lives and where this tool keeps its files inside it."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .child_env import child_environment
from .errors import DevopsError, ErrorCode

__all__ = ["Project", "actor", "find_project"]

STATE_DIR = ".devops"


@dataclass(frozen=True)
class Project:
    """A project root and the paths of everything devops-tasks keeps under ``.devops/``."""

    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config.json"

    @property
    def deployments_dir(self) -> Path:
        return self.state_dir / "deployments"

    @property
    def locks_dir(self) -> Path:
        return self.state_dir / "locks"

    @property
    def credentials_path(self) -> Path:
        return self.state_dir / "credentials.enc"

    @property
    def cache_dir(self) -> Path:
        """What can be recomputed at any time: deleting it only costs time."""
        return self.state_dir / "cache"

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """``path`` made absolute against the project root (absolute paths stay as they are)."""
        return (self.root / path).resolve()

    def build_dir(self, configured: str, override: str | None = None) -> Path:
        """The build directory: ``override`` (``--dir``, against the current directory),
        else ``configured`` (``build.dir``, against the project root)."""
        return Path(override).resolve() if override else self.resolve(configured)

    def deploy_lock_path(self, environment: str) -> Path:
        """The lock that serialises deploys and rollbacks of one environment."""
        return self.locks_dir / f"deploy-{environment}.lock"

    def version(self) -> str | None:
        """What is being deployed, as ``git describe`` says it; ``None`` outside a git repo."""
        return self._git("describe", "--tags", "--always", "--dirty")

    def commit(self, version: str | None = None) -> str | None:
        """The full sha of the commit ``version`` names (a :meth:`version`), else of HEAD.

        ``None`` outside a git repo. A version this checkout lacks falls back to HEAD.
        """
        described = version.removesuffix("-dirty") if version else ""
        if described and not described.startswith("-"):  # never an option to git
            found = self._git("rev-parse", "--verify", "--quiet", f"{described}^{{commit}}")
            if found:
                return found
        return self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")

    def _git(self, *args: str) -> str | None:
        """``git ARGS`` in the project, its output; ``None`` when git fails or says nothing
        (without starting it where it can only fail: no ``.git`` here or above)."""
        if "GIT_DIR" not in os.environ and not any(
            (directory / ".git").exists() for directory in (self.root, *self.root.parents)
        ):
            return None
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
                env=child_environment(),
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        return done.stdout.strip() or None


def find_project(start: str | os.PathLike[str] | None = None) -> Project:
    """The nearest directory at or above ``start`` holding ``.devops/config.json``.

    Like git, this lets a command run from any subdirectory; with no config anywhere above,
    the starting directory is the project (the built-in ``local`` target needs no config).
    """
    try:
        here = Path(start or os.getcwd()).resolve()
    except FileNotFoundError:
        raise DevopsError(
            ErrorCode.FILESYSTEM_ERROR,
            "The current directory no longer exists (it was removed or moved)",
            "cd into the project again, then run the command again.",
        ) from None
    for candidate in (here, *here.parents):
        if (candidate / STATE_DIR / "config.json").is_file():
            return Project(candidate)
    return Project(here)


def actor() -> str:
    """Who is deploying, as ``user@host`` for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
