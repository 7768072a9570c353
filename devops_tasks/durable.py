"""Crash-safe writes and inter-process locks: the only way this package changes a file.

A write goes to a temporary file in the same directory, is fsynced, then renamed over the
target, so a reader sees the old file or the new one and never half of either. A lock is
an ``flock`` on a lock file; the kernel drops it when its process dies, so a killed deploy
can never leave a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import DevopsError, ErrorCode

__all__ = [
    "MAX_JSON_BYTES",
    "TEMP_SUFFIX",
    "FileLock",
    "FileRefused",
    "atomic_write",
    "parse_json",
    "read_bounded",
    "read_json",
    "remove_stale_temporaries",
    "write_json",
]

#: More than any file this package writes: an index of 100,000 deployments is ~40 MB.
MAX_JSON_BYTES = 64 << 20


def atomic_write(
    path: Path,
    data: bytes,
    mode: int = 0o644,
    replace: bool = True,
    sweep: bool = False,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data`` in one step; on any failure the old file is untouched.

    With ``replace=False`` an existing ``path`` is never overwritten: the new file appears
    only if there was none, and FileExistsError says there was (no check-then-write race).
    ``sweep=True`` (for devops-tasks' own state directories only, never a user's) first
    removes what writers killed there left (:func:`remove_stale_temporaries`).
    ``durable=False``: the file need not survive a power cut, only a killed process (a cache
    that checks what it reads, a record written again in a moment); no ``fsync``, which on
    a disk that others are writing to can wait tens of milliseconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        remove_stale_temporaries(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
        )
    except OSError as exc:  # name what the user knows, not a random temporary name
        raise OSError(exc.errno, exc.strerror, str(path.parent)) from None
    try:
        # Held until the rename: a temporary file nobody holds belongs to a dead writer.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            if durable:
                os.fsync(tmp.fileno())
            if replace:
                os.replace(tmp_name, path)
            else:
                os.link(tmp_name, path)
                os.unlink(tmp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_directory(path.parent)


#: The ending of every temporary file this module makes, and of nothing else.
TEMP_SUFFIX = ".devops-tmp"
#: A writer's temporary file younger than this is never swept, whatever its lock says.
_STALE_AFTER_SECONDS = 60.0
#: Directories this process has swept already: once per process is enough to clean up
#: after killed writers, and a directory of 10,000 records is not listed on every write.
_swept: set[str] = set()


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``directory``.

    Only names this module makes (``.<name>.<random>.devops-tmp``) are considered, and only
    those no live writer holds (its flock) and older than a minute.
    """
    if str(directory) in _swept:
        return []
    _swept.add(str(directory))
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        candidates = [e.path for e in entries if e.name.endswith(TEMP_SUFFIX)]
    for candidate in candidates:
        with contextlib.suppress(OSError):
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                if time.time() - os.fstat(fd).st_mtime < _STALE_AFTER_SECONDS:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(candidate)
                removed.append(Path(candidate))
            finally:
                os.close(fd)
    return removed


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX keeps directory entries in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(
    path: Path,
    data: Any,
    mode: int = 0o644,
    indent: int | None = 2,
    replace: bool = True,
    sweep: bool = False,
    durable: bool = True,
) -> None:
    """Atomically write ``data`` as JSON (indented for people unless ``indent=None``)."""
    separators = None if indent else (",", ":")
    text = (
        json.dumps(data, indent=indent, separators=separators, ensure_ascii=False, allow_nan=False)
        + "\n"
    )
    # A name os.fsdecode() could not decode holds lone surrogates, which UTF-8 cannot carry;
    # they only occur inside JSON strings, where "\\udcff" is their exact JSON escape.
    atomic_write(path, text.encode("utf-8", "backslashreplace"), mode, replace, sweep, durable)


class FileRefused(ValueError):
    """A file that is not a regular file, or is larger than its reader allows."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    A FIFO, a device (``/dev/zero``) or a directory is refused before anything is read, and
    opening never blocks, so a hostile path can neither hang a command nor fill its memory.
    Raises :class:`FileRefused`, or the ``OSError`` the system gives.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefused("is not a regular file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"is larger than {limit:,} bytes")
    return data


def parse_json(text: str) -> Any:
    """JSON as RFC 8259 has it: ValueError for NaN or Infinity, or a key given twice.

    Python's own parser takes both, and a duplicated key silently keeps its last value.
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)  # built in C; only a short count means a key came twice
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """Parse the UTF-8 JSON file at ``path`` (ValueError or OSError: callers know its meaning)."""
    return parse_json(read_bounded(path, limit).decode("utf-8"))


class FileLock:
    """An exclusive, process-wide lock on ``path`` that waits up to ``timeout`` seconds.

    ``owner`` is written into the lock file while it is held, so a process that has to wait
    can say who it is waiting for.
    """

    _POLL_SECONDS = 0.05

    def __init__(self, path: Path, timeout: float = 30.0, owner: str = "") -> None:
        self.path = path
        self.timeout = timeout
        self.owner = owner or f"pid {os.getpid()}"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_owner(fd)
                    os.close(fd)
                    raise DevopsError(
                        ErrorCode.LOCKED,
                        f"{self.path.name} is locked by {holder or 'another process'}",
                        "Wait for the other operation to finish, then run the command again.",
                        lock=str(self.path),
                        holder=holder,
                    ) from None
                time.sleep(self._POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.owner.encode("utf-8"), 0)
        self._fd = fd

    def _open(self) -> int:
        """The lock file, refused unless it is a plain file of its own.

        The lock is truncated to write its holder: a symbolic link, a hard link or a special
        file planted where it goes must not get its target emptied.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            fd = -1
        if fd >= 0:
            status = os.fstat(fd)
            if stat.S_ISREG(status.st_mode) and status.st_nlink == 1:
                return fd
            os.close(fd)
        raise DevopsError(
            ErrorCode.FILESYSTEM_ERROR,
            f"{self.path} is not a lock file of devops-tasks (a link or a special file)",
            f"Remove {self.path}; devops-tasks makes its lock files itself.",
            path=str(self.path),
        )

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def is_held(path: Path) -> bool:
        """Whether some process (this one included) holds the lock on ``path`` right now."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own shared lock
        return False


def _read_owner(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    return ""  # pragma: no cover - pread on a file we just opened does not fail
