"""The digests of a build's files from the last deploy, so an unchanged file is not read again.

Every target hashes the whole build (Netlify and Vercel SHA-1, releases and object stores
SHA-256); hashing a file that has not changed since the last deploy is wasted work. The cache
keeps, for each path of the build, what the file was (its :attr:`SiteFile.fingerprint`: size,
``mtime_ns``, ``ctime_ns``, inode and device) and the digests computed from it. An entry is
used only while the file still has exactly that fingerprint, and the kernel sets ``ctime`` on
every change (a write, a rename over it, a chmod): a file edited at the same size with its
mtime put back is still seen as changed.

What keeps a changed file from ever looking unchanged:

- a file whose ``ctime`` is within :data:`SETTLE_NS` of the moment hashing started is hashed
  but not remembered: a second write in the same clock tick as the one before our read could
  otherwise leave the fingerprint as it was (git's "racily clean" entries). The tick is the
  filesystem's: where times have whole seconds only (FAT, HFS+, ext3) it is 2 s; where they
  carry fractions (ext4, XFS, btrfs, APFS: a kernel clock tick of a few ms) it is
  :data:`FINE_SETTLE_NS`;
- the cache names its build directory and its user: one copied from another build directory
  or taken over by another user is not used at all, and one from another machine holds no
  fingerprint a file here has (inodes and ctimes are this filesystem's own);
- a cache that cannot be read, or fails its checksum, counts as empty and is written anew.

It lives in ``.devops/cache/digests`` (deleting it only costs time), is replaced atomically
(:func:`devops_tasks.durable.atomic_write`) and only when something changed, and holds the
paths of the last build only. Two deploys of one project at once each write what they saw;
every entry either is right for its fingerprint or is never matched, so neither can harm the
other. The format is binary (about 100 bytes a file, read in a few ms for 20,000 files; JSON
of the same is 1.7x larger and 2x slower to load): see :func:`_encode`.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import struct
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

from .durable import FileRefused, atomic_write, read_bounded

__all__ = ["CACHED_ALGORITHMS", "FINE_SETTLE_NS", "SETTLE_NS", "Fingerprint", "HashCache"]

Fingerprint = tuple[int, int, int, int, int]
"""``(size, mtime_ns, ctime_ns, inode, device)`` of a file as one ``stat`` saw it."""

#: Algorithms the cache keeps, each in a fixed slot of a record.
CACHED_ALGORITHMS = ("sha1", "sha256")
#: A file changed this recently when hashing starts is not remembered (see the docstring):
#: more than a coarse clock tick, and than the 1-2 s timestamps of FAT, HFS+ or ext3.
SETTLE_NS = 2_000_000_000
#: The same, for a file whose change time has a fraction of a second (fine timestamps): many
#: times a kernel clock tick (1-10 ms).
FINE_SETTLE_NS = 100_000_000
#: Version 1 of the format; another version is simply not read.
_MAGIC = b"devops-digests\x00\x01"
#: uid, length of the root, length of the paths, number of records.
_HEADER = struct.Struct("<IIII")
#: A fingerprint as stored: size, mtime_ns, ctime_ns, inode, device.
_KEY = struct.Struct("<QqqQQ")
#: The packed fingerprint, which digests are known (bit 0 SHA-1, bit 1 SHA-256), the digests.
_RECORD = struct.Struct(f"<{_KEY.size}sB20s32s")
_CHECKSUM = struct.Struct("<I")
#: Bounds what is read: 1,000,000 files need about 100 MB.
_MAX_BYTES = 256 << 20
#: How paths are stored: as this system names files (what ``os.fsencode`` does), in one call.
_FS_ENCODING = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())

_Record = tuple[bytes, int, bytes, bytes]
"""One entry as :data:`_RECORD` holds it: compared and kept without being unpacked."""


class HashCache:
    """The digests known for the files of one build directory, as of their last deploy."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self._entries: dict[str, _Record] = _load(path, root)
        #: The paths a hit confirmed or that were remembered now: what :meth:`save` keeps.
        self._seen: set[str] = set()
        #: The ctime of each file remembered now: one that changed too recently is not saved.
        self._new: dict[str, int] = {}

    @functools.cached_property
    def algorithms(self) -> frozenset[str]:
        """The algorithms the project's deploys have asked for: computed together on a miss."""
        bits = functools.reduce(operator.or_, {record[1] for record in self._entries.values()}, 0)
        return frozenset(a for n, a in enumerate(CACHED_ALGORITHMS) if bits & (1 << n))

    def known(self, path: str, fingerprint: Fingerprint) -> dict[str, str]:
        """The digests of ``path`` if it is still exactly as when they were computed; else {}."""
        record = self._entries.get(path)
        if record is None or record[0] != _pack(fingerprint):
            return {}
        self._seen.add(path)
        _, known, sha1, sha256 = record
        digests = {}
        if known & 1:
            digests["sha1"] = sha1.hex()
        if known & 2:
            digests["sha256"] = sha256.hex()
        return digests

    def remember(self, path: str, fingerprint: Fingerprint, digests: Mapping[str, str]) -> None:
        """``digests`` of ``path`` as read while it had ``fingerprint`` (kept with any others)."""
        key = _pack(fingerprint)
        if key is None:
            return
        old = self._entries.get(path)
        known, *slots = old[1:] if old is not None and old[0] == key else (0, bytes(20), bytes(32))
        for n, algorithm in enumerate(CACHED_ALGORITHMS):
            if algorithm in digests:
                known |= 1 << n
                slots[n] = bytes.fromhex(digests[algorithm])
        record = (key, known, slots[0], slots[1])
        self._seen.add(path)
        if record != old:
            self._entries[path] = record
            self._new[path] = fingerprint[2]

    def save(self, started_ns: int) -> None:
        """Write the entries of the files looked up or remembered since loading, no others.

        ``started_ns`` (``time.time_ns()`` before any file was read): a file changed less than
        :data:`SETTLE_NS` (:data:`FINE_SETTLE_NS`) before it is left out. Failing to write only
        costs time next deploy.
        """
        kept = self._seen.difference(
            path for path, ctime in self._new.items() if ctime >= started_ns - _window(ctime)
        )
        if not self._new and len(kept) == len(self._entries):
            return  # nothing new, nothing gone: the file on disk says the same
        self._entries = {path: r for path, r in self._entries.items() if path in kept}
        self._new = {}
        with contextlib.suppress(OSError):
            atomic_write(
                self.path,
                _encode(self.root, self._entries),
                mode=0o600,
                sweep=True,  # what a killed scan left (see scan_ahead)
                durable=False,
            )


def _pack(fingerprint: Fingerprint) -> bytes | None:
    try:
        return _KEY.pack(*fingerprint)
    except struct.error:  # a value out of the format's range: that file is not cached
        return None


def _window(ctime_ns: int) -> int:
    """How long before the hashing a change must be for its file to be remembered."""
    return SETTLE_NS if ctime_ns % 1_000_000_000 == 0 else FINE_SETTLE_NS


def _encode(root: Path, entries: Mapping[str, _Record]) -> bytes:
    """Magic, header, root, the paths (NUL-separated), one fixed-size record per path, CRC32."""
    root_bytes = os.fsencode(root)
    paths = "\0".join(entries).encode(*_FS_ENCODING)
    body = b"".join(
        [
            _MAGIC,
            _HEADER.pack(os.geteuid(), len(root_bytes), len(paths), len(entries)),
            root_bytes,
            paths,
            *(_RECORD.pack(*record) for record in entries.values()),
        ]
    )
    return body + _CHECKSUM.pack(zlib.crc32(body))


def _load(path: Path, root: Path) -> dict[str, _Record]:
    """The entries of the cache at ``path`` for ``root`` and this user; {} if unusable."""
    try:
        data = read_bounded(path, _MAX_BYTES)
    except (OSError, FileRefused):
        return {}
    try:
        return _decode(data, root)
    except (ValueError, struct.error):
        return {}


def _decode(data: bytes, root: Path) -> dict[str, _Record]:
    """Parse ``data``; ValueError unless every byte is where the format puts it."""
    body, checksum = data[: -_CHECKSUM.size], data[-_CHECKSUM.size :]
    if not data.startswith(_MAGIC) or _CHECKSUM.unpack(checksum)[0] != zlib.crc32(body):
        raise ValueError("not a cache of this version, or damaged")
    offset = len(_MAGIC)
    uid, root_size, paths_size, count = _HEADER.unpack_from(body, offset)
    offset += _HEADER.size
    if uid != os.geteuid() or body[offset : offset + root_size] != os.fsencode(root):
        return {}  # another user's, or another build directory's
    offset += root_size
    paths = body[offset : offset + paths_size].decode(*_FS_ENCODING).split("\0")
    offset += paths_size
    if len(paths) != count or len(body) - offset != count * _RECORD.size:
        raise ValueError("the parts disagree on the number of files")
    return dict(zip(paths, _RECORD.iter_unpack(body[offset:]), strict=True))
