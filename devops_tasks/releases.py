"""Releases with an atomic ``current`` switch, over any connection that can ``run`` and ``put``.

The layout is Capistrano's: ``<root>/releases/<release-id>/`` holds each deployed copy and
``<root>/current`` is a symlink to the live one. Switching is a rename of a fresh symlink
over ``current``, which POSIX makes atomic: a reader sees the old release or the new one.

The root may hold other people's files, so the engine touches only names it owns: release
ids (which are deployment ids, ``dep_<ms>_<hex>``), ``current``, and its temporary names
(``releases/.<id>.tar``, ``releases/.<id>.partial/``, ``.current-<id>``). A release is
unpacked into its ``.partial`` directory and renamed to its id only once complete, so a
``releases/<id>`` is always whole; whatever a killed run leaves behind carries a temporary
name, which :meth:`ReleaseEngine.sweep` removes on the next deploy. Nothing is left outside
the root: the archive is packed into an unnamed temporary file.

The engine only speaks through ``connection.run(command)`` and ``connection.put(file, dst)``:
fabric's ``Connection`` has both, and :class:`LocalConnection` gives invoke's ``Context``
the same shape, so one engine serves the local target and every SSH host.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tarfile
import tempfile
from typing import IO, TYPE_CHECKING, Any, Protocol

from .commands import child_environment
from .errors import DevopsError, ErrorCode
from .ids import DEPLOYMENT_ID

if TYPE_CHECKING:
    from .files import SiteFiles
    from .output import Progress

__all__ = ["Connection", "LocalConnection", "ReleaseEngine"]

_RELEASE = DEPLOYMENT_ID.pattern
#: A leftover is renamed to this suffix before it is removed (see ``ReleaseEngine.sweep``).
_SWEPT = r"\.swept"
#: What an interrupted upload or switch leaves behind; nothing else is ever swept.
_LEFTOVER_IN_RELEASES = re.compile(rf"\.{_RELEASE}\.(?:tar|partial)(?:{_SWEPT})?", re.ASCII)
_LEFTOVER_IN_ROOT = re.compile(rf"\.current-{_RELEASE}(?:{_SWEPT})?", re.ASCII)


class Connection(Protocol):
    """What the engine needs of a host: fabric's ``Connection`` already is one."""

    def run(self, command: str, **kwargs: Any) -> Any: ...

    def put(self, local: IO[bytes], remote: str) -> Any: ...


class LocalConnection:
    """Invoke's ``Context`` plus ``put``: this machine, shaped like a fabric ``Connection``."""

    def __init__(self, context: Any = None) -> None:
        if context is None:
            from invoke import Context  # noqa: PLC0415

            context = Context()
        self.context = context

    def run(self, command: str, **kwargs: Any) -> Any:
        """Run ``command`` with options that invoke's config and flags cannot change.

        ``--dry`` or ``INVOKE_RUN_DRY`` must not turn a deploy into one that did nothing
        yet is recorded as done, and ``tar``/``mv`` have no business with the master key.
        """
        return self.context.run(
            command,
            **{
                **kwargs,
                "env": child_environment(),
                "replace_env": True,
                "dry": False,
                "echo": False,
                "pty": False,
                "hide": True,
                "warn": True,
                "in_stream": False,
            },
        )

    def put(self, local: IO[bytes], remote: str) -> None:
        """Copy the open file ``local`` to the path ``remote`` (fabric's ``put`` takes one too)."""
        with open(remote, "wb") as target:
            shutil.copyfileobj(local, target)


class ReleaseEngine:
    """Creates, activates, lists and prunes releases under ``root`` on one connection."""

    def __init__(self, connection: Connection, root: str) -> None:
        self.connection = connection
        self.root = root.rstrip("/") or "/"

    @property
    def releases_dir(self) -> str:
        return f"{self.root}/releases"

    def release_path(self, release: str) -> str:
        """Where ``release`` lives; refuses any name that is not a release id."""
        return f"{self.releases_dir}/{_checked(release)}"

    # The temporary names of one release's deploy: each matches a _LEFTOVER_* pattern.

    def _archive_path(self, release: str) -> str:
        return f"{self.releases_dir}/.{_checked(release)}.tar"

    def _partial_path(self, release: str) -> str:
        return f"{self.releases_dir}/.{_checked(release)}.partial"

    def _switch_path(self, release: str) -> str:
        return f"{self.root}/.current-{_checked(release)}"

    def _run(self, command: str, what: str) -> str:
        result = self.connection.run(command, hide=True, warn=True, in_stream=False)
        if result.failed:
            detail = (result.stderr or result.stdout or "").strip()
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"Could not {what}: {detail or f'exit status {result.exited}'}",
                f"Check that {self.root} is writable, has free space and holds nothing of "
                "yours where releases/ and current go, then deploy again.",
            )
        return str(result.stdout)

    def _names(self, directory: str) -> list[str]:
        """The entries of ``directory`` (hidden ones too); none if it does not exist."""
        listing = self._run(f"ls -1A {shlex.quote(directory)} 2>/dev/null || true", "list files")
        return listing.splitlines()

    def create_releases_dir(self) -> None:
        """Create ``<root>/releases`` (and the root) if missing; safe to repeat."""
        self._run(f"mkdir -p {shlex.quote(self.releases_dir)}", f"create {self.releases_dir}")

    def upload(self, release: str, files: SiteFiles, progress: Progress) -> None:
        """Copy ``files`` into a new release directory as one archive (one round trip)."""
        archive_path = self._archive_path(release)
        archive, partial, target = map(
            shlex.quote, (archive_path, self._partial_path(release), self.release_path(release))
        )
        self.create_releases_dir()
        # Unnamed (O_TMPFILE where the OS has it): a killed run leaves nothing in /tmp.
        with tempfile.TemporaryFile(prefix="devops-release-") as packed:
            progress.start("Packing files", total=files.total_bytes)
            # dereference: a linked file ships as its content, never as a link to the build dir
            with tarfile.open(fileobj=packed, mode="w", dereference=True) as tar:
                for site_file in files:
                    tar.add(site_file.source, arcname=site_file.path, recursive=False)
                    progress.advance(site_file.size)
            progress.finish()
            packed.seek(0)
            self.connection.put(packed, archive_path)
        self._run(
            f"mkdir {partial} && tar -xf {archive} -C {partial} && rm -f {archive}"
            f" && test ! -e {target} && mv {partial} {target}",
            f"unpack release {release}",
        )

    def activate(self, release: str) -> None:
        """Point ``current`` at ``release`` atomically (a new symlink renamed over the old).

        A ``current`` that is not a symlink was not made here, and is never replaced.
        """
        target = shlex.quote(self.release_path(release))
        temporary = shlex.quote(self._switch_path(release))
        current = shlex.quote(f"{self.root}/current")
        refusal = shlex.quote(f"{self.root}/current is not a symlink; refusing to replace it")
        # GNU mv needs -T and BSD mv needs -h so as not to move *into* the old link's target.
        self._run(
            f"test -d {target}"
            f" && {{ test -L {current} || test ! -e {current}"
            f" || {{ echo {refusal} >&2; false; }}; }}"
            f" && ln -sfn {shlex.quote('releases/' + release)} {temporary}"
            f" && {{ mv -Tf {temporary} {current} 2>/dev/null"
            f" || mv -hf {temporary} {current}; }}",
            f"switch current to release {release}",
        )

    def deactivate(self, release: str) -> None:
        """Remove ``current`` if it points at ``release``: undoes a first switch, atomically.

        A host that served nothing before a failed multi-host switch serves nothing again.
        """
        expected = shlex.quote(f"releases/{_checked(release)}")
        current = shlex.quote(f"{self.root}/current")
        self._run(
            f'if test -L {current} && test "$(readlink {current})" = {expected};'
            f" then rm -f {current}; fi",
            f"undo the switch to release {release}",
        )

    def current(self) -> str | None:
        """The release ``current`` points at, or ``None`` (before the first deploy)."""
        link = shlex.quote(f"{self.root}/current")
        target = self._run(f"readlink {link} || true", "read the current release").strip()
        name = target.rsplit("/", 1)[-1]
        return name if DEPLOYMENT_ID.fullmatch(name) else None

    def releases(self) -> list[str]:
        """Every release on the host, oldest first (release ids sort by time).

        Only release ids count: anything else in ``releases/`` is not the engine's.
        """
        return sorted(n for n in self._names(self.releases_dir) if DEPLOYMENT_ID.fullmatch(n))

    def exists(self, release: str) -> bool:
        return release in self.releases()

    def remove(self, release: str) -> None:
        """Delete ``release`` and any temporary files of its deploy."""
        paths = shlex.join(
            [
                self.release_path(release),
                self._archive_path(release),
                self._partial_path(release),
                self._switch_path(release),
            ]
        )
        self._run(f"rm -rf {paths}", f"remove release {release}")

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Remove all but the newest ``keep`` releases, never one in ``protect``."""
        existing = self.releases()
        doomed = [r for r in existing[: max(len(existing) - keep, 0)] if r not in protect]
        if doomed:
            paths = shlex.join(self.release_path(r) for r in doomed)
            self._run(f"rm -rf {paths}", "prune old releases")
        return doomed

    def sweep(self) -> list[str]:
        """Remove what killed runs left (temporary names only); returns what was there.

        Call it only while holding the deploy lock of this root. The last command of a
        killed deploy may still be running (a ``tar`` its death orphaned): each leftover is
        first renamed aside, so that command can never finish a release from a directory
        being emptied under it, and a removal it gets in the way of is left for next time.
        """
        leftovers = [
            f"releases/{name}"
            for name in self._names(self.releases_dir)
            if _LEFTOVER_IN_RELEASES.fullmatch(name)
        ] + [name for name in self._names(self.root) if _LEFTOVER_IN_ROOT.fullmatch(name)]
        steps = []
        for name in leftovers:
            path = f"{self.root}/{name}"
            aside = path if re.search(f"{_SWEPT}$", name) else f"{path}.swept"
            if aside != path:
                steps.append(f"mv -f {shlex.quote(path)} {shlex.quote(aside)} 2>/dev/null")
            steps.append(f"rm -rf {shlex.quote(aside)} 2>/dev/null")
        if steps:
            self._run("; ".join([*steps, "true"]), "remove what an interrupted deploy left")
        return leftovers

    def run_in_release(self, release: str, command: str) -> str:
        """Run the user's shell ``command`` in ``release``'s directory (a hook, a check)."""
        result = self.connection.run(
            f"cd {shlex.quote(self.release_path(release))} && {command}",
            hide=True,
            warn=True,
            in_stream=False,
        )
        if result.failed:
            tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-20:])
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"`{command}` exited with status {result.exited}" + (f": {tail}" if tail else ""),
                "Run the command on the host to see why, fix it, then deploy again.",
            )
        return str(result.stdout)


def _checked(release: str) -> str:
    """``release`` if it is a release id: no other name is ever made into a path to change."""
    if not DEPLOYMENT_ID.fullmatch(release):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{release!r} is not a release id",
            "Release ids are deployment ids like dep_1764111420000_ab12cd34; "
            "see `devops infra.show` or `devops history`.",
        )
    return release
