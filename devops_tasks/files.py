"""Walking a build directory: what gets deployed, safely, and what each file is.

Every platform deploys the same :class:`SiteFiles`: the regular files under a build
directory, minus ignored ones, with symlinks followed only while they stay inside the
directory (a link to ``/etc/passwd`` in a build output is refused, not shipped). What a
deploy must never carry is left out whatever the ignore rule says: the directories the
caller excludes (devops-tasks' own ``.devops/``) and secrets stores and key files. A path
that cannot be read is refused, never silently dropped; a broken link is a warning.

The scan is one pass over the tree: listing, ignore rules, the checks above and, when the
caller names the digests it will need, hashing. A file is opened once at most: reading it to
hash it is also the test that it can be read, and a file the :class:`HashCache` knows as it is
now (read by this user, unchanged since) is not opened at all.
"""

from __future__ import annotations

import concurrent.futures
import errno
import functools
import hashlib
import mimetypes
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DevopsError, ErrorCode
from .hash_cache import Fingerprint, HashCache

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
#: Opening never blocks (a FIFO swapped in after the scan), nor leaks into child processes.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


def default_ignore(relative: str) -> bool:
    """Version-control metadata and OS litter never belong in a deployment."""
    return not _ALWAYS_SKIPPED.isdisjoint(relative.split("/"))


@dataclass(frozen=True)
class SiteFile:
    """One file to deploy: its path in the site (POSIX, relative) and on disk."""

    path: str
    #: Where it is on disk. Kept as given (the scan gives a string: a Path for each of 20,000
    #: files would cost a third of the scan); :attr:`source` is the Path, made when asked.
    location: str | os.PathLike[str]
    size: int
    #: Permission bits (``st_mode & 0o7777``) as the scan found them.
    mode: int = 0o644
    #: Last modification, in whole seconds since the epoch.
    mtime: int = 0
    #: What the hash cache compares (see :mod:`devops_tasks.hash_cache`); None: never cached.
    fingerprint: Fingerprint | None = None

    @functools.cached_property
    def source(self) -> Path:
        return Path(self.location)

    def content(self) -> bytes:
        """The whole content, for an upload that sends the file in one body.

        Three system calls for a file as the scan saw it (open, one read, close), not the
        seven of ``open().read()``: each lets another upload thread take the GIL, thousands of
        times a deploy. A file whose size changed since is read to its end.
        """
        fd = os.open(self.location, _READ_FLAGS)
        try:
            chunks = [os.read(fd, self.size + 1)]
            if len(chunks[0]) != self.size:
                while chunk := os.read(fd, _CHUNK):
                    chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def digest(self, algorithm: str = "sha256") -> str:
        """Hex digest of the content, read in chunks (large files never sit in memory)."""
        return self.digests(algorithm)[0]

    def digests(self, *algorithms: str) -> tuple[str, ...]:
        """Hex digests of the content, one per algorithm, all from a single read."""
        return _read_digests(self.location, algorithms)[1]

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
    #: How many files each directory holds (``"."`` for the root), counted by the scan.
    per_directory: Mapping[str, int] = field(default_factory=dict, compare=False)
    #: Digests of unchanged files from earlier deploys; None: every file is read.
    cache: HashCache | None = field(default=None, compare=False, repr=False)
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

        A scan told which digests its caller needs has them already; any other is computed
        now, from the cache where it can be.
        """
        with self._hashing:
            if algorithm not in self._digests:
                known, missed = _from_cache(self.files, self.cache, (algorithm,))
                started = time.time_ns()
                hashed, unreadable = _hash(missed, _on_a_miss((algorithm,), self.cache), progress)
                if unreadable:
                    raise unreadable[0][1]  # as reading it alone would have
                self._record(known, hashed, started, (algorithm,))
            return self._digests[algorithm]

    def _record(
        self,
        known: Mapping[str, Mapping[str, str]],
        hashed: Sequence[_Hashed],
        started_ns: int,
        algorithms: Sequence[str],
    ) -> None:
        """Keep the digests of ``algorithms`` (known or just hashed), and save the cache."""
        for algorithm in algorithms:
            by_path = {path: digests[algorithm] for path, digests in known.items()}
            if hashed:  # else every file was known, in the files' order already
                by_path.update((path, digests[algorithm]) for path, _, digests in hashed)
                by_path = {f.path: by_path[f.path] for f in self.files}
            self._digests[algorithm] = by_path
        if self.cache is not None:
            for path, fingerprint, digests in hashed:
                if fingerprint is not None:
                    self.cache.remember(path, fingerprint, digests)
            self.cache.save(started_ns)

    def state(self) -> tuple[Any, ...]:
        """What :meth:`restored` makes these files again from: plain data, for another
        process (:mod:`devops_tasks.scan_ahead`). The hash cache stays behind: the scan that
        used it has saved it."""
        files = [
            (f.path, str(f.location), f.size, f.mode, f.mtime, f.fingerprint) for f in self.files
        ]
        return files, self.warnings, dict(self.per_directory), self._digests

    @classmethod
    def restored(
        cls,
        root: Path,
        files: list[tuple[Any, ...]],
        warnings: tuple[str, ...],
        per_directory: dict[str, int],
        digests: dict[str, dict[str, str]],
    ) -> SiteFiles:
        """The files :meth:`state` described, with the digests it had; any other digest is
        computed from the files themselves when asked for."""
        restored = cls(root, tuple(SiteFile(*f) for f in files), warnings, per_directory)
        restored._digests.update(digests)
        return restored

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
        cls,
        root: Path,
        ignore: IgnoreRule = default_ignore,
        exclude: Iterable[Path] = (),
        *,
        digests: Sequence[str] = (),
        cache: HashCache | None = None,
        progress: Progress | None = None,
    ) -> SiteFiles:
        """Every deployable file under ``root``; raises VALIDATION_FAILED for what cannot ship.

        ``exclude`` names directories that are never deployed, wherever they appear under
        ``root`` (devops-tasks' own state); a ``root`` inside one of them is refused.
        ``digests`` names the algorithms the caller will ask :meth:`digests` for: they are
        computed in the same pass (from ``cache`` where it knows the file as it is now).
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
        started = time.time_ns()
        walk = _Walk(root, ignore, excluded, cache, digests)
        found = walk.files()
        hashed, failed = _hash(walk.to_hash, walk.algorithms, progress)
        unreadable = sorted([*walk.unreadable, *(path for path, _ in failed)])
        if unreadable:
            more = len(unreadable) - _MAX_LISTED
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"{len(unreadable)} path(s) in the build directory {root} cannot be read: "
                + ", ".join(unreadable[:_MAX_LISTED])
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
        files = cls(root, tuple(found), tuple(walk.warnings), walk.per_directory, cache)
        if digests:
            files._record(walk.known, hashed, started, digests)
        return files


def _on_a_miss(wanted: Sequence[str], cache: HashCache | None) -> tuple[str, ...]:
    """What a file the cache cannot answer is hashed with, in one read: ``wanted``, and what
    the project's other targets asked for. Not every algorithm always: both cost 1.8x one."""
    others = sorted(cache.algorithms) if cache is not None else []
    return tuple(dict.fromkeys([*wanted, *others]))


def _from_cache(
    files: Iterable[SiteFile], cache: HashCache | None, algorithms: Collection[str]
) -> tuple[dict[str, dict[str, str]], list[SiteFile]]:
    """``path -> digests`` the cache has for ``algorithms``, and the files it cannot answer."""
    known: dict[str, dict[str, str]] = {}
    missed = []
    for site_file in files:
        digests = (
            cache.known(site_file.path, site_file.fingerprint)
            if cache is not None and site_file.fingerprint is not None
            else {}
        )
        if digests and all(a in digests for a in algorithms):
            known[site_file.path] = digests
        else:
            missed.append(site_file)
    return known, missed


_Unreadable = tuple[str, OSError]
_Hashed = tuple[str, "Fingerprint | None", dict[str, str]]
"""A file just hashed: its path, its fingerprint if it is still as the scan saw it, digests."""


def _hash(
    files: Sequence[SiteFile], algorithms: Sequence[str], progress: Progress | None
) -> tuple[list[_Hashed], list[_Unreadable]]:
    """The digests of each of ``files``, and the paths that could not be read (with why).

    hashlib releases the GIL, so the files are hashed on a few threads, each taking one
    interleaved share (one task per thread, not per file: for thousands of small files the
    per-task overhead would outweigh the hashing). A file whose fingerprint is not what the
    scan saw any more (it changed meanwhile) is hashed as it is now, but not cached.
    """
    if not files or not algorithms:
        return [], []
    shares = [files[n::_HASHING_THREADS] for n in range(_HASHING_THREADS)]
    if progress is not None:
        progress.start("Hashing files", total=len(files))

    def hash_share(share: Sequence[SiteFile]) -> tuple[list[_Hashed], list[_Unreadable]]:
        hashed: list[_Hashed] = []
        unreadable = []
        for site_file in share:
            try:
                fingerprint, digests = _read_digests(site_file.location, algorithms)
            except OSError as error:
                unreadable.append((site_file.path, error))
                continue
            same = fingerprint == site_file.fingerprint
            hashed.append(
                (
                    site_file.path,
                    fingerprint if same else None,
                    dict(zip(algorithms, digests, strict=True)),
                )
            )
        if progress is not None:
            progress.advance(len(share))
        return hashed, unreadable

    with concurrent.futures.ThreadPoolExecutor(_HASHING_THREADS) as pool:
        results = list(pool.map(hash_share, shares))
    if progress is not None:
        progress.finish()
    return (
        [item for hashed, _ in results for item in hashed],
        [failure for _, unreadable in results for failure in unreadable],
    )


def _read_digests(
    source: str | os.PathLike[str], algorithms: Sequence[str]
) -> tuple[Fingerprint, tuple[str, ...]]:
    """The file's fingerprint when opened, and its digests: one open, one read."""
    hashers = [hashlib.new(algorithm) for algorithm in algorithms]
    fd = os.open(source, _READ_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file any more", str(source))
        while chunk := os.read(fd, _CHUNK):
            for hasher in hashers:
                hasher.update(chunk)
    finally:
        os.close(fd)
    return _fingerprint(status), tuple(hasher.hexdigest() for hasher in hashers)


def _fingerprint(status: os.stat_result) -> Fingerprint:
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev)


@dataclass
class _Directory:
    """A directory being walked: where it is, and its entries still to visit, in path order."""

    prefix: str
    real: str
    #: The real paths above it (and its own): a link back to one of them is a loop.
    ancestors: frozenset[str]
    entries: Iterator[tuple[bool, os.DirEntry[str]]]
    #: The names in it that are excluded paths.
    excluded: frozenset[str]
    count: int = 0


class _Walk:
    """One walk of a build directory: the files it finds, what it skips, what it cannot read.

    Each directory is listed once (``os.scandir``: the kind of each entry comes with the
    listing) and its entries sorted with a directory's name taken as ``name/``, so the files
    come out in the order of their paths and no sort of the whole build is needed. Every
    directory that cannot be listed, and every file that cannot be opened, is kept in
    ``unreadable`` so the scan can refuse them all at once instead of deploying a site with
    holes in it. A file is opened here only when nothing else will: a file the cache knows
    as it is now was read by this user already, and one to hash is read by :func:`_hash`.
    """

    def __init__(
        self,
        root: Path,
        ignore: IgnoreRule,
        excluded: frozenset[str],
        cache: HashCache | None,
        digests: Sequence[str],
    ) -> None:
        self.root = root
        self.ignore = ignore
        self.excluded = excluded
        #: The names excluded in each real directory: a plain file is checked by its name.
        self.excluded_names: dict[str, frozenset[str]] = {}
        for path in excluded:
            parent, name = os.path.split(path)
            self.excluded_names[parent] = self.excluded_names.get(parent, frozenset()) | {name}
        self.cache = cache
        self.wanted = frozenset(digests)
        self.algorithms = _on_a_miss(digests, cache) if digests else ()
        self.warnings: list[str] = []
        self.unreadable: list[str] = []
        self.per_directory: dict[str, int] = {}
        #: ``path -> digests`` the cache had for every wanted algorithm.
        self.known: dict[str, dict[str, str]] = {}
        self.to_hash: list[SiteFile] = []

    def files(self) -> list[SiteFile]:
        """Depth first, a stack of directories (no recursion: a tree may be deeper than that)."""
        found: list[SiteFile] = []
        root = str(self.root)
        stack = [d for d in [self._list(root, "", root, frozenset({root}))] if d is not None]
        while stack:
            directory = stack[-1]
            listed = next(directory.entries, None)
            if listed is None:
                stack.pop()
                if directory.count:
                    self.per_directory[directory.prefix[:-1] or "."] = directory.count
                continue
            is_directory, entry = listed
            if is_directory:
                child = self._enter(entry, directory)
                if child is not None:
                    stack.append(child)
                continue
            relative = directory.prefix + entry.name
            site_file = self._file(entry, relative, entry.name in directory.excluded)
            if site_file is not None:
                found.append(site_file)
                directory.count += 1
        return found

    def _list(
        self, path: str, prefix: str, real: str, ancestors: frozenset[str]
    ) -> _Directory | None:
        """The directory at ``path`` (``prefix`` in the site, really at ``real``) with its
        entries in path order; None, and noted as unreadable, if it cannot be listed."""
        try:
            with os.scandir(path) as listing:
                entries = list(listing)
        except OSError:
            self.unreadable.append(prefix or "./")
            return None
        kept = []
        for entry in entries:
            if not self.ignore(prefix + entry.name):
                is_directory = _is_directory(entry)
                kept.append((entry.name + "/" if is_directory else entry.name, is_directory, entry))
        kept.sort(key=lambda item: item[0])
        excluded = self.excluded_names.get(real, frozenset())
        return _Directory(prefix, real, ancestors, iter([k[1:] for k in kept]), excluded)

    def _enter(self, entry: os.DirEntry[str], parent: _Directory) -> _Directory | None:
        """The subdirectory ``entry`` of ``parent``, unless it is excluded; refuses a loop."""
        relative = parent.prefix + entry.name
        # Only links need a realpath() call; a plain subdirectory's real path is its parent's.
        if entry.is_symlink():
            _refuse_escape(self.root, Path(entry.path), relative)
            real = os.path.realpath(entry.path)
        else:
            real = os.path.join(parent.real, entry.name)
        if _within(real, self.excluded):
            return None
        if real in parent.ancestors:  # a link back to a directory above: the same files forever
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"{relative} is a link loop (it points back to {real})",
                "Remove the link from the build output, or replace it with a copy.",
            )
        return self._list(entry.path, relative + "/", real, parent.ancestors | {real})

    def _file(self, entry: os.DirEntry[str], relative: str, excluded: bool) -> SiteFile | None:
        """``entry`` as a site file if it can ship; else a warning or an unreadable entry.

        ``excluded``: its real path, if it is not a link, is one of the excluded paths.
        """
        status: os.stat_result | None = None
        if entry.is_symlink():  # only links leave the directory
            _refuse_escape(self.root, Path(entry.path), relative)
            if _within(os.path.realpath(entry.path), self.excluded):
                return None
        elif excluded:
            return None
        else:
            try:  # one lstat tells a plain file's size and mode
                status = entry.stat(follow_symlinks=False)
            except OSError:
                status = None  # the stat below meets the same error, and names it
        if _SECRET_NAME.fullmatch(entry.name):
            self._skip(relative, "secrets and keys never are")
            return None
        try:
            status = status or os.stat(entry.path)
        except FileNotFoundError:
            self._skip(relative, "it is a link to nothing")
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                self._skip(relative, "it is a link that leads back to itself")
            else:
                self.unreadable.append(relative)
            return None
        if not stat.S_ISREG(status.st_mode):
            self._skip(relative, "it is not a regular file")
            return None
        fingerprint = _fingerprint(status)
        site_file = SiteFile(
            relative,
            entry.path,
            status.st_size,
            stat.S_IMODE(status.st_mode),
            int(status.st_mtime),
            fingerprint,
        )
        cached = self.cache.known(relative, fingerprint) if self.cache else {}
        if cached and self.wanted.issubset(cached):
            self.known[relative] = cached
        elif self.wanted:
            self.to_hash.append(site_file)  # reading it is the test that it can be read
        elif not cached and not _can_open(entry.path):
            self.unreadable.append(relative)
            return None
        return site_file

    def _skip(self, relative: str, why: str) -> None:
        self.warnings.append(f"{relative} was not deployed: {why}")


def _is_directory(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a directory, or a link to one (followed, as ``os.walk`` does)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _can_open(path: str) -> bool:
    """The mode bits say little (root, ACLs): opening the file is the real test."""
    try:
        os.close(os.open(path, _READ_FLAGS))
    except OSError:
        return False
    return True


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
