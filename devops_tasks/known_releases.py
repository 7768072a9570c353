"""What this machine remembers of the releases it made, so that a host need not send it back.

A delta upload starts from the host's current release: its manifest, and a listing of its
files on disk to check that they are still as deployed. Both are large (a 5,000-file
release: about 1 MB per host, parsed once more here) and, when this machine made that
release, known here already. So each release this machine uploads is remembered in
``.devops/cache/releases/<id>``: its manifest, and the digest of the listing ``find`` prints
of it when nothing was changed by hand. The next survey asks each host to compare the two
digests itself and to send a ``=`` for each that matches (see
:meth:`devops_tasks.releases.ReleaseEngine.survey`).

Nothing here can make a host look as if it held what it does not: a host sends ``=`` only
when the SHA-256 of what it holds equals the one remembered. Anything else (a release made
elsewhere, a file edited by hand, a ``find`` that prints differently, a lost or damaged
cache) only means the host sends both, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from .durable import atomic_write
from .ids import DEPLOYMENT_ID

__all__ = ["KnownReleases", "Remembered"]

#: How many of the newest releases are remembered: the one live now, and a few it may be
#: rolled back to.
_KEEP = 4
_DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)


class Remembered:
    """One remembered release: its manifest and ``shared`` links, and the digests a host
    proves it holds them with."""

    def __init__(self, manifest: bytes, listing_sha256: str, shared: tuple[str, ...]) -> None:
        self.manifest = manifest
        self.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        self.listing_sha256 = listing_sha256
        self.shared = shared


class KnownReleases:
    """The releases remembered under ``directory`` (written by any process of the project)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._read: dict[str, Remembered] | None = None

    def all(self) -> dict[str, Remembered]:
        """Every release remembered, by id (read once per process; unreadable ones left out)."""
        with self._lock:
            return dict(self._loaded())

    def _loaded(self) -> dict[str, Remembered]:
        if self._read is None:
            self._read = {}
            for name in self._names()[-_KEEP:]:
                remembered = self._load(name)
                if remembered is not None:
                    self._read[name] = remembered
        return self._read

    def _names(self) -> list[str]:
        """The releases remembered on disk, oldest first (release ids sort by time)."""
        try:
            return sorted(n for n in os.listdir(self.directory) if DEPLOYMENT_ID.fullmatch(n))
        except OSError:
            return []

    def _load(self, name: str) -> Remembered | None:
        try:
            data = (self.directory / name).read_bytes()
        except OSError:
            return None
        header, _, manifest = data.partition(b"\n")
        try:
            fields = json.loads(header)
            listing, shared = fields["listing"], tuple(fields["shared"])
        except (ValueError, TypeError, KeyError):
            return None
        if not (isinstance(listing, str) and _DIGEST.fullmatch(listing)):
            return None
        if not all(isinstance(path, str) for path in shared):
            return None
        return Remembered(manifest, listing, shared)

    def remember(
        self,
        release: str,
        manifest: bytes,
        listing_sha256: Callable[[], str],
        shared: tuple[str, ...],
    ) -> None:
        """Keep ``release``'s manifest and ``shared`` links and ``listing_sha256()``, the
        digest of the listing a host prints of it (sorted), and forget all but the newest
        few. Once per release and process (the hosts of a deploy share one); a failure to
        write costs only the next deploy's time."""
        with self._lock:
            known = self._loaded()
            if release in known:
                return
            digest = listing_sha256()
            known[release] = Remembered(manifest, digest, shared)
        with contextlib.suppress(OSError):
            header = json.dumps({"listing": digest, "shared": list(shared)}).encode()
            data = header + b"\n" + manifest
            atomic_write(self.directory / release, data, mode=0o600, sweep=True, durable=False)
            for name in self._names()[:-_KEEP]:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()
