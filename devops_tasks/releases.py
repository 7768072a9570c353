"""Releases with an atomic ``current`` switch, over any connection that can ``run`` and ``put``.

The layout is Capistrano's: ``<root>/releases/<release-id>/`` holds each deployed copy and
``<root>/current`` is a symlink to the live one. Switching is a rename of a fresh symlink
over ``current``, which POSIX makes atomic: a reader sees the old release or the new one.

The engine only speaks through ``connection.run(command)`` and ``connection.put(src, dst)``:
fabric's ``Connection`` has both, and :class:`LocalConnection` gives invoke's ``Context``
the same shape, so one engine serves the local target and every SSH host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DevopsError, ErrorCode

if TYPE_CHECKING:
    from .files import SiteFiles
    from .output import Progress

__all__ = ["Connection", "LocalConnection", "ReleaseEngine"]


class Connection(Protocol):
    """What the engine needs of a host: fabric's ``Connection`` already is one."""

    def run(self, command: str, **kwargs: Any) -> Any: ...

    def put(self, local: str, remote: str) -> Any: ...


class LocalConnection:
    """Invoke's ``Context`` plus ``put``: this machine, shaped like a fabric ``Connection``."""

    def __init__(self, context: Any = None) -> None:
        if context is None:
            from invoke import Context  # noqa: PLC0415

            context = Context()
        self.context = context

    def run(self, command: str, **kwargs: Any) -> Any:
        return self.context.run(command, **{**kwargs, "dry": False, "echo": False})

    def put(self, local: str, remote: str) -> None:
        shutil.copyfile(local, remote)


class ReleaseEngine:
    """Creates, activates, lists and prunes releases under ``root`` on one connection."""

    def __init__(self, connection: Connection, root: str) -> None:
        self.connection = connection
        self.root = root.rstrip("/") or "/"

    @property
    def releases_dir(self) -> str:
        return f"{self.root}/releases"

    def release_path(self, release: str) -> str:
        return f"{self.releases_dir}/{release}"

    def _run(self, command: str, what: str) -> str:
        result = self.connection.run(command, hide=True, warn=True, in_stream=False)
        if result.failed:
            detail = (result.stderr or result.stdout or "").strip()
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"Could not {what}: {detail or f'exit status {result.exited}'}",
                f"Check that {self.root} is writable and has free space, then deploy again.",
            )
        return str(result.stdout)

    def upload(self, release: str, files: SiteFiles, progress: Progress) -> None:
        """Copy ``files`` into a new release directory as one archive (one round trip)."""
        target = self.release_path(release)
        archive_remote = f"{self.releases_dir}/.{release}.tar"
        self._run(f"mkdir -p {shlex.quote(target)}", f"create {target}")
        with tempfile.TemporaryDirectory(prefix="devops-release-") as scratch:
            archive = os.path.join(scratch, "release.tar")
            progress.start("Packing files", total=files.total_bytes)
            with tarfile.open(archive, "w") as tar:
                for site_file in files:
                    tar.add(site_file.source, arcname=site_file.path, recursive=False)
                    progress.advance(site_file.size)
            progress.finish()
            self.connection.put(archive, archive_remote)
        quoted = shlex.quote(archive_remote)
        self._run(
            f"tar -xf {quoted} -C {shlex.quote(target)} && rm -f {quoted}",
            f"unpack release {release}",
        )

    def activate(self, release: str) -> None:
        """Point ``current`` at ``release`` atomically (a new symlink renamed over the old)."""
        temporary = f"{self.root}/.current-{release}"
        quoted_tmp, current = shlex.quote(temporary), shlex.quote(f"{self.root}/current")
        # GNU mv needs -T and BSD mv needs -h so as not to move *into* the old link's target.
        self._run(
            f"test -d {shlex.quote(self.release_path(release))}"
            f" && ln -sfn {shlex.quote('releases/' + release)} {quoted_tmp}"
            f" && {{ mv -Tf {quoted_tmp} {current} 2>/dev/null"
            f" || mv -hf {quoted_tmp} {current}; }}",
            f"switch current to release {release}",
        )

    def current(self) -> str | None:
        """The release ``current`` points at, or ``None`` before the first deploy."""
        link = shlex.quote(f"{self.root}/current")
        target = self._run(f"readlink {link} || true", "read the current release").strip()
        return target.rsplit("/", 1)[-1] or None

    def releases(self) -> list[str]:
        """Every release on the host, oldest first (release ids sort by time)."""
        listing = self._run(
            f"ls -1 {shlex.quote(self.releases_dir)} 2>/dev/null || true", "list releases"
        )
        return sorted(name for name in listing.split() if not name.startswith("."))

    def exists(self, release: str) -> bool:
        return release in self.releases()

    def remove(self, release: str) -> None:
        self._run(f"rm -rf {shlex.quote(self.release_path(release))}", f"remove release {release}")

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Remove all but the newest ``keep`` releases, never one in ``protect``."""
        existing = self.releases()
        doomed = [r for r in existing[: max(len(existing) - keep, 0)] if r not in protect]
        if doomed:
            paths = " ".join(shlex.quote(self.release_path(r)) for r in doomed)
            self._run(f"rm -rf {paths}", "prune old releases")
        return doomed
