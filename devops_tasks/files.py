"""Walking a build directory: what gets deployed, safely, and what each file is.

Every platform deploys the same :class:`SiteFiles`: the regular files under a build
directory, minus ignored ones, with symlinks followed only while they stay inside the
directory (a link to ``/etc/passwd`` in a build output is refused, not shipped). What a
deploy must never carry is left out whatever the ignore rule says: the directories the
caller excludes (devops-tasks' own ``.devops/``) and secrets stores and key files. A path
that cannot be read is refused, never silently dropped; a broken link is a warning.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import mimetypes
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DevopsError, ErrorCode

if TYPE_CHECKING:
    from .output import Progress

__all__ = ["IgnoreRule", "SiteFile", "SiteFiles", "default_ignore"]

IgnoreRule = Callable[[str], bool]
"""Takes a path relative to the build dir (POSIX separators); True means skip it."""

_ALWAYS_SKIPPED = {".git", ".hg", ".svn", "__MACOSX", ".DS_Store", "Thumbs.db"}
#: Never deployed, whatever the ignore rule says: an encrypted secrets store, a key file.
_SECRET_NAME = re.compile(r"credentials\.enc|.*\.key", re.IGNORECASE)
#: How many unreadable paths an error names (the count is always given).
_MAX_LISTED = 50
#: Bytes read at a time when hashing: large files never sit in memory.
_CHUNK = 1 << 20
#: Threads that hash a site's files. hashlib and reads release the GIL, but for small files
#: the Python around them holds it: more threads than cores only contend for it.
_HASHING_THREADS = min(4, os.cpu_count() or 1)


def default_ignore(relative: str) -> bool:
    """Version-control metadata and OS litter never belong in a deployment."""
    return any(part in _ALWAYS_SKIPPED for part in relative.split("/"))


@dataclass(frozen=True)
class SiteFile:
    """One file to deploy: its path in the site (POSIX, relative) and on disk."""

    path: str
    source: Path
    size: int
    #: Permission bits (``st_mode & 0o7777``) as the scan found them.
    mode: int = 0o644
    #: Last modification, in whole seconds since the epoch.
    mtime: int = 0

    def digest(self, algorithm: str = "sha256") -> str:
        """Hex digest of the content, read in chunks (large files never sit in memory)."""
        return self.digests(algorithm)[0]

    def digests(self, *algorithms: str) -> tuple[str, ...]:
        """Hex digests of the content, one per algorithm, all from a single read."""
        hashers = [hashlib.new(algorithm) for algorithm in algorithms]
        with open(self.source, "rb", buffering=0) as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                for hasher in hashers:
                    hasher.update(chunk)
        return tuple(hasher.hexdigest() for hasher in hashers)

    @property
    def content_type(self) -> str:
        guessed, _ = mimetypes.guess_type(self.path)
        return guessed or "application/octet-stream"


@dataclass(frozen=True)
class SiteFiles:
    """The files of one build directory, in a stable (sorted) order."""

    root: Path
    files: tuple[SiteFile, ...]
    #: What was left out and why (broken links, secrets), for the deployment's record.
    warnings: tuple[str, ...] = ()
    _digests: dict[str, dict[str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _hashing: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def digests(
        self, algorithm: str = "sha256", progress: Progress | None = None
    ) -> dict[str, str]:
        """``path -> hex digest`` of every file, computed once however many hosts ask.

        hashlib releases the GIL, so the files are hashed on a few threads, each taking one
        interleaved share (one task per thread, not per file: for thousands of small files the
        per-task overhead would outweigh the hashing).
        """
        with self._hashing:
            if algorithm not in self._digests:
                shares = [self.files[n::_HASHING_THREADS] for n in range(_HASHING_THREADS)]
                if progress is not None:
                    progress.start("Hashing files", total=len(self.files))

                def hash_share(share: tuple[SiteFile, ...]) -> list[tuple[str, str]]:
                    hashed = [(f.path, f.digests(algorithm)[0]) for f in share]
                    if progress is not None:
                        progress.advance(len(share))
                    return hashed

                with concurrent.futures.ThreadPoolExecutor(_HASHING_THREADS) as pool:
                    hashed = [pair for share in pool.map(hash_share, shares) for pair in share]
                if progress is not None:
                    progress.finish()
                self._digests[algorithm] = dict(hashed)
            return self._digests[algorithm]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[SiteFile]:
        return iter(self.files)

    def hashed(self, algorithm: str, progress: Progress) -> dict[str, tuple[str, SiteFile]]:
        """``path -> (hex digest, file)``: what a digest-addressed upload needs."""
        digests = self.digests(algorithm, progress)
        return {f.path: (digests[f.path], f) for f in self.files}

    @classmethod
    def scan(
        cls, root: Path, ignore: IgnoreRule = default_ignore, exclude: Iterable[Path] = ()
    ) -> SiteFiles:
        """Every deployable file under ``root``; raises VALIDATION_FAILED for what cannot ship.

        ``exclude`` names directories that are never deployed, wherever they appear under
        ``root`` (devops-tasks' own state); a ``root`` inside one of them is refused.
        """
        root = root.resolve()
        if not root.is_dir():
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"Build directory {root} does not exist",
                "Build the site first (`devops build`, or pass --build), or point --dir / "
                "build.dir at the directory that holds it.",
            )
        excluded = frozenset(str(path.resolve()) for path in exclude)
        for path in excluded:
            if _within(str(root), {path}):
                raise DevopsError(
                    ErrorCode.VALIDATION_FAILED,
                    f"Build directory {root} is inside {path}, where devops-tasks keeps its "
                    "own files",
                    "Point --dir / build.dir at the directory your build writes the site to.",
                )
        walk = _Walk(root, ignore, excluded)
        found = sorted(walk.files(), key=lambda f: f.path)
        if walk.unreadable:
            shown = sorted(walk.unreadable)
            more = len(shown) - _MAX_LISTED
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"{len(shown)} path(s) in the build directory {root} cannot be read: "
                + ", ".join(shown[:_MAX_LISTED])
                + (f" (and {more} more)" if more > 0 else ""),
                "Make them readable by the user who deploys (chmod, chown), or remove them "
                "from the build output; nothing was deployed.",
            )
        if not found:
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"Build directory {root} has no files to deploy",
                "Build the site first, or check that build.dir names the output directory.",
            )
        return cls(root, tuple(found), tuple(walk.warnings))


class _Walk:
    """One walk of a build directory: the files it finds, what it skips, what it cannot read.

    ``os.walk`` drops a directory it cannot list unless told otherwise (``onerror``); every
    such directory, and every file that cannot be opened, is kept in ``unreadable`` so the
    scan can refuse them all at once instead of deploying a site with holes in it.
    """

    def __init__(self, root: Path, ignore: IgnoreRule, excluded: frozenset[str]) -> None:
        self.root = root
        self.ignore = ignore
        self.excluded = excluded
        self.warnings: list[str] = []
        self.unreadable: list[str] = []

    def files(self) -> Iterator[SiteFile]:
        root = self.root
        # The real path of each walked directory, and of every directory above it: a link
        # back to one of those is a loop that would repeat the same files forever. Only
        # links need a realpath() call; a plain subdirectory's real path is its parent's.
        real_of: dict[str, str] = {str(root): str(root)}
        ancestors: dict[str, frozenset[str]] = {str(root): frozenset({str(root)})}
        for directory, subdirs, names in os.walk(root, followlinks=True, onerror=self._refused):
            base = Path(directory)
            relative_dir = base.relative_to(root).as_posix()
            prefix = "" if relative_dir == "." else relative_dir + "/"
            entered = []
            for name in sorted(subdirs):
                child = os.path.join(directory, name)
                if self.ignore(prefix + name):
                    continue
                if os.path.islink(child):
                    _refuse_escape(root, base / name, prefix + name)
                    real = os.path.realpath(child)
                else:
                    real = os.path.join(real_of[directory], name)
                if _within(real, self.excluded):
                    continue
                if real in ancestors[directory]:
                    raise DevopsError(
                        ErrorCode.VALIDATION_FAILED,
                        f"{prefix + name} is a link loop (it points back to {real})",
                        "Remove the link from the build output, or replace it with a copy.",
                    )
                real_of[child] = real
                ancestors[child] = ancestors[directory] | {real}
                entered.append(name)
            subdirs[:] = entered
            for name in sorted(names):
                relative = prefix + name
                if not self.ignore(relative):
                    yield from self._file(base / name, relative, real_of[directory])

    def _file(self, source: Path, relative: str, real_dir: str) -> Iterator[SiteFile]:
        """``source`` as a site file if it can ship; else a warning or an unreadable entry."""
        real = os.path.join(real_dir, source.name)
        try:  # one lstat tells a plain file's size and mode; only a link needs a stat more
            status: os.stat_result | None = os.lstat(source)
        except OSError:
            status = None  # the stat below meets the same error, and names it
        if status is not None and stat.S_ISLNK(status.st_mode):  # only links leave the dir
            _refuse_escape(self.root, source, relative)
            real = os.path.realpath(source)
            status = None
        if _within(real, self.excluded):
            return
        if _SECRET_NAME.fullmatch(source.name):
            self._skip(relative, "secrets and keys never are")
            return
        try:
            status = status or source.stat()
        except FileNotFoundError:
            self._skip(relative, "it is a link to nothing")
            return
        except OSError as error:
            if error.errno == errno.ELOOP:
                self._skip(relative, "it is a link that leads back to itself")
            else:
                self.unreadable.append(relative)
            return
        if not stat.S_ISREG(status.st_mode):
            self._skip(relative, "it is not a regular file")
            return
        try:  # the mode bits say little (root, ACLs): opening the file is the real test
            os.close(os.open(source, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            self.unreadable.append(relative)
            return
        yield SiteFile(
            relative,
            source,
            status.st_size,
            stat.S_IMODE(status.st_mode),
            int(status.st_mtime),
        )

    def _skip(self, relative: str, why: str) -> None:
        self.warnings.append(f"{relative} was not deployed: {why}")

    def _refused(self, error: OSError) -> None:
        relative = Path(str(error.filename)).relative_to(self.root).as_posix()
        self.unreadable.append("./" if relative == "." else relative + "/")


def _within(real: str, directories: Iterable[str]) -> bool:
    """Whether the path ``real`` is one of ``directories`` or below one."""
    return any(real == d or real.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


def _refuse_escape(root: Path, path: Path, relative: str) -> None:
    """Raise unless ``path``, with every link resolved, is ``root`` or below it."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise DevopsError(
            ErrorCode.VALIDATION_FAILED,
            f"{relative} is a link to {real}, outside the build directory",
            "Replace the link with a copy of its target, or remove it from the build output.",
        )
