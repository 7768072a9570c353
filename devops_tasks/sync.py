"""The one sync engine for static sites in object storage (S3, Cloud Storage, Azure Blob).

Everything that decides *what* to send is written once, here; a store
(:mod:`devops_tasks.objectstore`) only moves bytes. What the engine knows lives in the
bucket, under a private prefix (``.devops/``, never served, never deleted by a sync), so a
second machine or CI sees exactly what the first one did:

- ``manifest.json``: the live release, path -> sha256, size, headers and the store's tag;
- ``releases/<id>.json``: the manifest of each deployment still kept (``keep_releases``);
- ``objects/<sha256>``: a server-side copy of every content a deploy or rollback replaced or
  deleted, taken before it did, so a rollback needs nothing from this machine;
- ``history.json``: the deploys and rollbacks, newest first; ``lock.json``: the deploy lock.

A deploy compares the build with the live manifest by content (sha256), never by mtime or
ETag; a changed header rule is a change too. It lists the bucket once to catch objects edited
or deleted by hand. An unchanged deploy is that listing and one manifest GET, nothing else.
Writes go in an order that keeps the live site whole: assets, then HTML and entry files, then
the manifest (the switch), then the CDN invalidation, then deletes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import functools
import gzip
import hashlib
import io
import json
import mimetypes
import os
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

from .background import Background
from .changes import Changes
from .durable import parse_json
from .errors import DevopsError, ErrorCode
from .files import SiteFile, SiteFiles
from .objectstore import Headers, ObjectStore, StoredObject
from .output import NullProgress, Progress

__all__ = [
    "DEFAULT_PRIVATE_PREFIX",
    "IMMUTABLE",
    "BucketLock",
    "Entry",
    "HeaderRules",
    "Listing",
    "Manifest",
    "Plan",
    "Sync",
]

DEFAULT_PRIVATE_PREFIX = ".devops/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MANIFEST = "manifest.json"
RELEASES = "releases/"
OBJECTS = "objects/"
HISTORY = "history.json"
LOCK = "lock.json"
FORMAT = 1
#: How many paths a plan or a result names (the counts are always whole).
SHOWN_PATHS = 20
#: Deploys and rollbacks ``history.json`` keeps.
HISTORY_LENGTH = 200
#: Files up to this size are read whole, checked against their digest and sent from memory.
IN_MEMORY_LIMIT = 64 << 20

#: Content types mimetypes lacks or gets wrong on some systems; checked first.
CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".jsonld": "application/ld+json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".ics": "text/calendar",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".jxl": "image/jxl",
    ".heic": "image/heic",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".txtpb": "text/plain",
}
#: Non-``text/*`` types that are text: served with ``charset=utf-8``.
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/javascript",
        "image/svg+xml",
    }
)
#: Files that name other files (pages, feeds, web app manifests, service workers): they go
#: after the assets they point to.
_ENTRY_SUFFIXES = frozenset({".html", ".htm", ".xhtml", ".webmanifest", ".xml", ".rss", ".atom"})
_ENTRY_NAMES = frozenset({"sw.js", "service-worker.js", "manifest.json"})
#: A content hash in a file name: ``app.3f2a9c1b.js``, ``index-BkU2x9aZ.js``, Hugo's sha256.
_FINGERPRINT = re.compile(
    r"[.-](?:[0-9a-f]{8,}|(?=[A-Za-z0-9_]{0,7}[0-9])[A-Za-z0-9_]{8})\.[A-Za-z0-9]+$"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: The name of a release the engine made (``rel_<epoch-ms>_<hex>``): the only kind of name it
#: reads or deletes under ``releases/``.
RELEASE_ID = re.compile(r"rel_[0-9]+_[0-9a-f]+", re.ASCII)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- headers ---------------------------------------------------------------------------------


def _name(path: str) -> str:
    return path.rpartition("/")[2]


def _suffix(name: str) -> str:
    """``PurePosixPath(name).suffix``, lowercased, without building a path per file."""
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def content_type(path: str) -> str:
    """The Content-Type a file is served with, ``charset=utf-8`` on text."""
    known = CONTENT_TYPES.get(_suffix(_name(path)))
    if known is not None:
        return _with_charset(known)
    return _with_charset(mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream")


@functools.lru_cache(maxsize=256)
def _with_charset(kind: str) -> str:
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind in _TEXT_TYPES else kind


def fingerprinted(path: str) -> bool:
    """Whether the file's name carries a hash of its content (safe to cache forever)."""
    return bool(_FINGERPRINT.search(_name(path)))


def is_entry(path: str) -> bool:
    """Whether the file points to others (a page, a feed, a service worker): sent last."""
    name = _name(path)
    return _suffix(name) in _ENTRY_SUFFIXES or name.lower() in _ENTRY_NAMES


@dataclass(frozen=True)
class HeaderRules:
    """The headers of each file: the configured rules first, then the defaults.

    ``cache_control`` is a list of ``{glob, value}`` rules (the first match wins) and
    ``compress`` a list of globs to gzip; globs match the path from the site's root with
    :func:`fnmatch.fnmatchcase`, where ``*`` also matches ``/``.
    """

    cache_control: tuple[tuple[str, str], ...] = ()
    compress: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, rules: Iterable[Mapping[str, str]], compress: Iterable[str]) -> Any:
        return cls(tuple((r["glob"], r["value"]) for r in rules), tuple(compress))

    def headers(self, path: str) -> Headers:
        if not self.cache_control and not self.compress:  # the defaults: by kind of name
            name = _name(path)
            suffix = _suffix(name)
            if suffix in CONTENT_TYPES:
                return _default_headers(suffix, fingerprinted(name) and not is_entry(name))
        return Headers(
            content_type(path),
            self._cache_control(path),
            "gzip" if any(fnmatch.fnmatchcase(path, g) for g in self.compress) else None,
        )

    def _cache_control(self, path: str) -> str:
        for glob, value in self.cache_control:
            if fnmatch.fnmatchcase(path, glob):
                return value
        return IMMUTABLE if fingerprinted(path) and not is_entry(path) else REVALIDATE


@functools.lru_cache(maxsize=512)
def _default_headers(suffix: str, immutable: bool) -> Headers:
    """The headers of a file with a known suffix and no rules: one object per kind, shared."""
    return Headers(
        _with_charset(CONTENT_TYPES[suffix]), IMMUTABLE if immutable else REVALIDATE, None
    )


# -- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file of a release: its content as built, its headers, and the object stored."""

    sha256: str
    size: int
    headers: Headers
    #: Of the bytes in the bucket: differs from the file's when it is gzipped.
    stored_sha256: str
    stored_size: int
    #: The store's tag of the object as written (to notice a hand edit); None if unknown.
    tag: str | None = None

    def same_bytes(self, other: Entry) -> bool:
        return self.stored_sha256 == other.stored_sha256

    def intact(self, stored: StoredObject | None) -> bool:
        """Whether the listed object is still the one this entry wrote (not edited by hand)."""
        if stored is None or stored.size != self.stored_size:
            return False
        return self.tag is None or stored.tag is None or stored.tag == self.tag

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.headers.content_type,
            "cache_control": self.headers.cache_control,
            "content_encoding": self.headers.content_encoding,
            "tag": self.tag,
        }
        if (self.stored_sha256, self.stored_size) != (self.sha256, self.size):
            data["stored_sha256"] = self.stored_sha256
            data["stored_size"] = self.stored_size
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        sha = _sha(data["sha256"])
        size = _count(data["size"])
        stored = data.get("stored_sha256")
        stored_size = data.get("stored_size")
        return cls(
            sha,
            size,
            _headers(data["content_type"], data.get("cache_control"), data.get("content_encoding")),
            sha if stored is None else _sha(stored),
            size if stored_size is None else _count(stored_size),
            _optional_text(data.get("tag")),
        )


@functools.lru_cache(maxsize=1024)
def _headers(kind: Any, cache_control: Any, encoding: Any) -> Headers:
    """Headers as a manifest names them, checked; the few kinds a site has are shared."""
    return Headers(_text(kind), _optional_text(cache_control), _optional_text(encoding))


@dataclass
class Manifest:
    """The files of one release, as the bucket holds them, and who made it."""

    release: str
    files: dict[str, Entry]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT,
            "release": self.release,
            **self.info,
            "files": {path: self.files[path].to_dict() for path in sorted(self.files)},
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Manifest:
        """A manifest read from the bucket; DEPLOY_FAILED naming ``where`` if it is not one."""

        def build(data: dict[str, Any]) -> Manifest:
            files = {str(path): Entry.from_dict(entry) for path, entry in data["files"].items()}
            info = {k: v for k, v in data.items() if k not in ("format", "release", "files")}
            return cls(_text(data["release"]), files, info)

        return _read_manifest(raw, where, build)

    @staticmethod
    def stored_hashes(raw: bytes, where: str) -> set[str]:
        """The stored contents (``stored_sha256``) a manifest names, read without building
        its entries: what pruning needs of each kept release."""
        return _read_manifest(
            raw,
            where,
            lambda data: {
                _sha(entry.get("stored_sha256", entry["sha256"]))
                for entry in data["files"].values()
            },
        )


_Read = TypeVar("_Read")


def _read_manifest(raw: bytes, where: str, read: Callable[[dict[str, Any]], _Read]) -> _Read:
    """``read`` of a manifest's JSON; DEPLOY_FAILED naming ``where`` if it is not one."""
    try:
        data = parse_json(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format {FORMAT} manifest")
        return read(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"{where} in the bucket is not a manifest devops-tasks can read ({exc})",
            "Do not edit the private prefix by hand. Deploy with a newer devops-tasks if "
            "another one wrote it; or delete that object, and the next deploy sends "
            "every file again.",
            object=where,
        ) from None


def _sha(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"bad sha256 {value!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"bad size {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"bad text {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


# -- what the bucket holds -------------------------------------------------------------------


@dataclass
class Listing:
    """One listing of the bucket's prefix, split into the site and the private prefix."""

    site: dict[str, StoredObject]
    objects: set[str]
    releases: set[str]
    locked: bool

    @property
    def site_bytes(self) -> int:
        return sum(o.size for o in self.site.values())


def drift(live: Manifest | None, listing: Listing) -> dict[str, list[str]]:
    """Objects changed, added or deleted by hand since the live release was deployed."""
    files = live.files if live else {}
    return {
        "changed": sorted(
            p for p, e in files.items() if p in listing.site and not e.intact(listing.site[p])
        ),
        "added": sorted(p for p in listing.site if p not in files),
        "missing": sorted(p for p in files if p not in listing.site),
    }


@dataclass(frozen=True)
class Write:
    """One object to write: uploaded from ``source``, or copied server-side from ``copy_from``."""

    path: str
    entry: Entry
    reason: str  # new, changed, drift, headers, restore, promote
    source: SiteFile | None = None
    copy_from: str | None = None
    #: The store ``copy_from`` is a key of, when it is not this one (a promote's source).
    origin: ObjectStore | None = None


@dataclass
class Plan:
    """What a deploy would do, decided before anything is written."""

    base: Manifest | None
    writes: list[Write]
    deletes: list[str]
    unchanged: dict[str, Entry]
    drift: dict[str, list[str]]
    #: The size the bucket lists for each of ``deletes``.
    deleted_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.writes and not self.deletes

    def changed_paths(self) -> list[str]:
        return sorted({w.path for w in self.writes} | set(self.deletes))

    def changes(self) -> Changes:
        """What the deploy changes in the bucket; a new header on the same bytes is a change.

        A deleted object's size is the one the bucket lists.
        """
        return Changes(
            added={w.path: w.entry.size for w in self.writes if w.reason == "new"},
            changed={w.path: w.entry.size for w in self.writes if w.reason != "new"},
            deleted=dict(self.deleted_sizes),
        )

    def summary(self) -> dict[str, Any]:
        """:meth:`Changes.summary`, which of the changes only touch headers, and the counts
        of the unchanged objects and of the drift the deploy repairs."""
        headers = sorted(w.path for w in self.writes if w.reason == "headers")
        return {
            **self.changes().summary(SHOWN_PATHS),
            "headers": {"count": len(headers), "paths": headers[:SHOWN_PATHS]},
            "unchanged": len(self.unchanged),
            "drift": {kind: len(paths) for kind, paths in self.drift.items()},
        }


# -- the lock --------------------------------------------------------------------------------


class BucketLock:
    """The deploy lock: an object created only if absent, naming its holder, with a TTL.

    A lock older than its TTL was left by a deploy that died; it is taken over. Where the
    store ignores "only if absent" (an emulator), the lock is looked up first: that leaves a
    small window in which two deploys both take it. Only a lock past its TTL can have been
    taken over, so one released before half of it has passed is deleted without being read
    first (a clock between two machines would have to be off by half the TTL).
    """

    poll_interval = 0.5

    def __init__(self, store: ObjectStore, key: str, holder: str, ttl: float, timeout: float):
        self.store = store
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.timeout = timeout
        self._token = os.urandom(8).hex()
        self._taken: float | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            taken = time.monotonic()
            if (self.store.conditional_create or self._read() is None) and self._create():
                self._taken = taken
                return
            current = self._read()
            if current is None:
                continue  # released in between: try again at once
            if float(current.get("expires_epoch") or 0) < time.time():
                self.store.delete([self.key])  # its holder died: take it over
                continue
            if time.monotonic() >= deadline:
                held = self._read() or {}
                raise DevopsError(
                    ErrorCode.LOCKED,
                    f"Another deploy holds the bucket's lock: {held.get('holder', 'unknown')} "
                    f"since {held.get('created', '?')}",
                    "Wait for it to finish; if it died, its lock expires at "
                    f"{held.get('expires', '?')} (deployment.lock_ttl), or delete "
                    f"{self.key} in the bucket once you are sure no deploy runs.",
                    holder=held.get("holder"),
                    expires=held.get("expires"),
                )
            time.sleep(self.poll_interval)

    def release(self) -> None:
        taken, self._taken = self._taken, None
        if taken is not None and time.monotonic() - taken < self.ttl / 2:
            self.store.delete([self.key])
            return
        current = self._read()
        if current is not None and current.get("token") == self._token:
            self.store.delete([self.key])

    def _create(self) -> bool:
        now = time.time()
        body = {
            "holder": self.holder,
            "token": self._token,
            "created": _now(),
            "expires": datetime.fromtimestamp(now + self.ttl, timezone.utc).isoformat(),
            "expires_epoch": now + self.ttl,
        }
        return self.store.create(self.key, json.dumps(body).encode())

    def _read(self) -> dict[str, Any] | None:
        raw = self.store.get(self.key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {"holder": "unreadable lock"}

    def __enter__(self) -> BucketLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# -- the engine ------------------------------------------------------------------------------

#: Reads started by :meth:`Sync.read_ahead`, by store identity and private prefix.
_READ_AHEAD: dict[Hashable, dict[str, Background]] = {}


def _take_reads_ahead(identity: Hashable | None, private: str) -> dict[str, Background] | None:
    """The reads started ahead for this store, if any. The first store to ask takes them or
    drops them all: reads made for one command are never used by a later one."""
    started = dict(_READ_AHEAD)
    _READ_AHEAD.clear()
    return started.get((identity, private)) if identity is not None else None


Invalidate = Callable[[list[str]], "dict[str, Any] | None"]


class Sync:
    """Deploys, restores and inspects one site in one store.

    Reads are cached for the life of the object (one command), so the deployer's questions
    (what is live, can this be restored) cost one GET and one listing between them.
    """

    def __init__(
        self,
        store: ObjectStore,
        rules: HeaderRules,
        *,
        private_prefix: str = DEFAULT_PRIVATE_PREFIX,
        concurrency: int = 16,
        delete: bool = True,
        max_deletes: int = 256,
        lock: Callable[[], BucketLock] | None = None,
        invalidate: Invalidate | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.private = private_prefix
        self.concurrency = concurrency
        self.delete = delete
        self.max_deletes = max_deletes
        self._lock_factory = lock
        self._invalidate = invalidate
        self._live: Manifest | None = None
        #: The bytes ``_live`` was read from (None: there was no manifest).
        self._live_raw: bytes | None = None
        self._live_read = False
        self._listing: Listing | None = None
        #: The lock while this object holds it; ``_sticky`` keeps it until :meth:`holding` ends.
        self._lock: BucketLock | None = None
        self._sticky = False
        #: What this object wrote since the live manifest, to undo a deploy that failed.
        self._written: dict[str, Entry] = {}
        self._base: Manifest | None = None
        #: Reads started early by :meth:`prefetch`, by what they read.
        self._pending: dict[str, Background] = {}
        #: ``history.json`` as read just after this object took the lock, until it is used.
        self._history_read: Background | None = None
        #: The releases the bucket keeps, as this object last saw and changed them.
        self._releases: set[str] | None = None

    # -- reading -------------------------------------------------------------------------

    def prefetch(self) -> None:
        """Start the GET of the live manifest and the LIST of the bucket, each on a thread of
        its own, so that they overlap whatever comes before :meth:`plan` needs them; or take
        over the same reads if :meth:`read_ahead` started them for this store."""
        if not self._pending and not self._live_read and self._listing is None:
            self._pending = _take_reads_ahead(self.store.identity, self.private) or self._reads()

    def read_ahead(self) -> None:
        """Start this store's first reads for whichever :class:`Sync` of this process next
        calls :meth:`prefetch`, if it reads the same store with the same credentials (see
        :mod:`devops_tasks.early`)."""
        if self.store.identity is not None:
            _READ_AHEAD[(self.store.identity, self.private)] = self._reads()

    def _reads(self) -> dict[str, Background]:
        return {"live": Background(self._read_live), "listing": Background(self._read_listing)}

    def live(self) -> Manifest | None:
        """The live manifest (one GET per command)."""
        if "live" in self._pending:
            self._live, self._live_raw = self._pending.pop("live").result()
            self._live_read = True
        if not self._live_read:
            self._live, self._live_raw = self._read_live()
            self._live_read = True
        return self._live

    def _read_live(self) -> tuple[Manifest | None, bytes | None]:
        raw = self.store.get(self.private + MANIFEST)
        return (None if raw is None else Manifest.parse(raw, self.private + MANIFEST)), raw

    def listing(self, fresh: bool = False) -> Listing:
        """Every object under the prefix (one paginated LIST per command, unless ``fresh``)."""
        if "listing" in self._pending:
            self._listing = self._pending.pop("listing").result()
            self._releases = set(self._listing.releases)
        if self._listing is None or fresh:
            self._listing = self._read_listing()
            self._releases = set(self._listing.releases)
        return self._listing

    def _read_listing(self) -> Listing:
        site: dict[str, StoredObject] = {}
        objects: set[str] = set()
        releases: set[str] = set()
        locked = False
        for stored in self.store.list():
            key = stored.key
            if not key.startswith(self.private):
                site[key] = stored
                continue
            name = key[len(self.private) :]
            if name.startswith(OBJECTS):
                objects.add(name[len(OBJECTS) :])
            elif name.startswith(RELEASES) and name.endswith(".json"):
                releases.add(name[len(RELEASES) : -len(".json")])
            elif name == LOCK:
                locked = True
        return Listing(site, objects, releases, locked)

    def release(self, release: str) -> Manifest | None:
        """A kept release's manifest, or None if it is not kept (or cannot be a release)."""
        if not RELEASE_ID.fullmatch(release):
            return None
        key = f"{self.private}{RELEASES}{release}.json"
        raw = self.store.get(key)
        return None if raw is None else Manifest.parse(raw, key)

    def history(self) -> list[dict[str, Any]]:
        """The deploys and rollbacks the bucket remembers, newest first."""
        if self._history_read is not None:  # read once the lock was ours: nobody wrote since
            read, self._history_read = self._history_read, None
            return read.result()
        return self._read_history()

    def _read_history(self) -> list[dict[str, Any]]:
        raw = self.store.get(self.private + HISTORY)
        if raw is None:
            return []
        try:
            data = parse_json(raw.decode("utf-8"))
        except ValueError:
            return []
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    def forget(self) -> None:
        """Drop cached reads (after writing, or between commands)."""
        for pending in self._pending.values():
            pending.wait()
        self._pending = {}
        self._live_read = False
        self._live = self._live_raw = None
        self._listing = None

    # -- planning ------------------------------------------------------------------------

    def plan(self, files: SiteFiles, progress: Progress | None = None) -> Plan:
        """Compare the build with the live manifest and the listing; nothing is written."""
        progress = progress or NullProgress()
        self.prefetch()  # unless it runs already: the GET and the LIST go on while files hash
        digests = files.digests("sha256", progress)
        listing = self.listing()
        live = self.live()
        current = live.files if live else {}
        writes: list[Write] = []
        unchanged: dict[str, Entry] = {}
        for site_file in files:
            path = site_file.path
            sha = digests[path]
            headers = self.rules.headers(path)
            old = current.get(path)
            if old is None:
                reason = "new"
            elif old.sha256 != sha or old.headers.content_encoding != headers.content_encoding:
                reason = "changed"
            elif not old.intact(listing.site.get(path)):
                reason = "drift"
            elif old.headers != headers:
                writes.append(Write(path, replace(old, headers=headers), "headers", copy_from=path))
                continue
            else:
                unchanged[path] = old
                continue
            fresh = Entry(sha, site_file.size, headers, sha, site_file.size)
            writes.append(Write(path, fresh, reason, source=site_file))
        built = {f.path for f in files}
        deletes = sorted(k for k in listing.site if k not in built) if self.delete else []
        sizes = {key: listing.site[key].size for key in deletes}
        return Plan(live, writes, deletes, unchanged, drift(live, listing), sizes)

    # -- deploying -----------------------------------------------------------------------

    def deploy(
        self,
        release: str,
        files: SiteFiles,
        info: Mapping[str, Any],
        progress: Progress,
        force_deletes: bool = False,
    ) -> dict[str, Any]:
        """Make ``files`` the live site as ``release``; returns what was done.

        Nothing changes and nothing is written when the build matches the live release and
        nobody holds the lock: the result's ``release`` is then the live one.
        """
        plan = self.plan(files, progress)
        if plan.empty and plan.base is not None and not self.listing().locked:
            return self._result(plan, plan.base.release, {}, noop=True)
        self._check_deletes(plan, force_deletes)  # before the lock: nothing at all written
        with self._locked():
            if self._moved():  # someone deployed between our reads and our lock
                self.forget()
                plan = self.plan(files, progress)
                self._check_deletes(plan, force_deletes)
            manifest = Manifest(
                release, {**plan.unchanged}, {**info, "created": _now(), "base": _id(plan.base)}
            )
            self._base = plan.base
            outcome = self._apply(plan.writes, plan.deletes, manifest, plan.base, progress)
            self._record(
                {
                    "action": "deploy",
                    "id": info.get("deployment") or release,
                    "release": release,
                    "status": "success",
                    "files": len(manifest.files),
                    "bytes": manifest.total_bytes,
                    "uploaded": outcome["uploaded"],
                    "deleted": outcome["deleted"],
                    "invalidation": (outcome.get("invalidation") or {}).get("id"),
                    **{k: info.get(k) for k in ("version", "actor")},
                    "time": manifest.info["created"],
                }
            )
        return self._result(plan, release, outcome)

    def _moved(self) -> bool:
        """Whether the live manifest is no longer the one the plan was made from (a store
        that can ask conditionally does so without reading it again)."""
        return not self.store.holds(self.private + MANIFEST, self._live_raw)

    def _check_deletes(self, plan: Plan, force: bool) -> None:
        if len(plan.deletes) > self.max_deletes and not force:
            shown = ", ".join(plan.deletes[:SHOWN_PATHS])
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"This deploy would delete {len(plan.deletes)} objects, more than max_deletes "
                f"({self.max_deletes}): {shown}"
                + (" ..." if len(plan.deletes) > SHOWN_PATHS else ""),
                "Check that the build directory is complete (`devops deploy --dry-run` lists "
                "what would go); if the deletes are meant, pass --force-deletes or raise "
                "max_deletes. Nothing was written.",
                deletes=len(plan.deletes),
                max_deletes=self.max_deletes,
            )

    def _result(
        self, plan: Plan, release: str, outcome: Mapping[str, Any], noop: bool = False
    ) -> dict[str, Any]:
        summary = plan.summary()
        return {
            "release": release,
            "noop": noop,
            "uploaded": outcome.get("uploaded", 0),
            "bytes_uploaded": outcome.get("bytes_uploaded", 0),
            "copied": outcome.get("copied", 0),
            "preserved": outcome.get("preserved", 0),
            "deleted": outcome.get("deleted", 0),
            "unchanged": summary["unchanged"],
            "drift": summary["drift"],
            "changes": {k: summary[k] for k in ("added", "changed", "headers", "deleted")},
            "invalidation": outcome.get("invalidation"),
            "warnings": outcome.get("warnings", []),
        }

    # -- promoting -----------------------------------------------------------------------

    def promote(
        self,
        release: str,
        source: Sync,
        origin: Manifest,
        info: Mapping[str, Any],
        progress: Progress,
        force_deletes: bool = False,
    ) -> dict[str, Any]:
        """Make ``origin``, a release of ``source`` (another bucket or prefix), live here as
        ``release``: each object that differs is a server-side copy from ``source``, from
        its content-addressed copy or a live object holding the same bytes. Nothing is
        uploaded; the order, the keeping of what is replaced and the deletes are a deploy's.
        """
        missing = source._missing_sources(origin, source.listing())
        if missing:
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"{len(missing)} file(s) of release {origin.release} are no longer in "
                f"{source.store.location}: {', '.join(missing[:SHOWN_PATHS])}",
                "Deploy the build instead.",
                missing=len(missing),
            )
        held = source.live()
        with self._locked():
            self.forget()
            live, listing = self.live(), self.listing()
            now = live.files if live else {}
            writes: list[Write] = []
            unchanged: dict[str, Entry] = {}
            for path, entry in origin.files.items():
                old = now.get(path)
                if (
                    old is not None
                    and old.same_bytes(entry)
                    and old.headers == entry.headers
                    and old.intact(listing.site.get(path))
                ):
                    unchanged[path] = old
                    continue
                where = source._source(entry, held.files if held else {})
                writes.append(Write(path, entry, "promote", copy_from=where, origin=source.store))
            deletes = (
                sorted(k for k in listing.site if k not in origin.files) if self.delete else []
            )
            plan = Plan(live, writes, deletes, unchanged, drift(live, listing))
            self._check_deletes(plan, force_deletes)
            manifest = Manifest(
                release,
                dict(unchanged),
                {**info, "created": _now(), "base": _id(live), "promoted_from": origin.release},
            )
            self._base = live
            outcome = self._apply(writes, deletes, manifest, live, progress)
            self._record(
                {
                    "action": "promote",
                    "id": info.get("deployment") or release,
                    "release": release,
                    "promoted_from": origin.release,
                    "status": "success",
                    "files": len(manifest.files),
                    "bytes": manifest.total_bytes,
                    "uploaded": 0,
                    "copied": outcome["copied"],
                    "deleted": outcome["deleted"],
                    "invalidation": (outcome.get("invalidation") or {}).get("id"),
                    **{k: info.get(k) for k in ("version", "actor")},
                    "time": manifest.info["created"],
                }
            )
        return self._result(plan, release, outcome)

    # -- restoring -----------------------------------------------------------------------

    def restorable(self, release: str) -> bool:
        """Whether every content ``release`` needs is still in the bucket."""
        target = self.live() if _id(self.live()) == release else self.release(release)
        return target is not None and not self._missing_sources(target, self.listing())

    def restore(self, release: str, progress: Progress | None = None) -> dict[str, Any]:
        """Make ``release`` live again with server-side copies only, then delete the rest."""
        progress = progress or NullProgress()
        with self._locked():
            self.forget()
            target = self.release(release)
            if target is None:
                raise DevopsError(
                    ErrorCode.ROLLBACK_UNAVAILABLE,
                    f"Release {release} is no longer kept in the bucket (pruned)",
                    "Deploy that version again instead, or raise deployment.keep_releases.",
                )
            live = self.live()
            outcome = self._reconcile(target, live, None, progress)
            self._record(
                {
                    "action": "rollback",
                    "id": release,
                    "release": release,
                    "replaced": _id(live),
                    "status": "success",
                    "copied": outcome["copied"],
                    "deleted": outcome["deleted"],
                    "invalidation": (outcome.get("invalidation") or {}).get("id"),
                    "time": _now(),
                },
                live=release,
                replaced=_id(live),
            )
        return outcome

    def discard(self) -> dict[str, Any] | None:
        """Undo what a failed :meth:`deploy` of this object wrote: the old release serves."""
        if not self._written:
            return None
        written, base = dict(self._written), self._base
        with self._locked():
            self.forget()
            # What the failed deploy overwrote goes back; what it added goes away. The
            # manifest was never switched: the old one is still live.
            now = Manifest(_id(base) or "", {**(base.files if base else {}), **written})
            outcome = self._reconcile(base or Manifest("", {}), now, set(written), NullProgress())
        self._written.clear()
        return outcome

    def _reconcile(
        self,
        target: Manifest,
        current: Manifest | None,
        only: set[str] | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Copy back what differs from ``target`` (within ``only``), then delete the rest."""
        listing = self.listing(fresh=True)
        missing = self._missing_sources(target, listing, only)
        if missing:
            raise DevopsError(
                ErrorCode.ROLLBACK_UNAVAILABLE,
                f"{len(missing)} file(s) of release {target.release} are no longer in the "
                f"bucket: {', '.join(missing[:SHOWN_PATHS])}",
                "Deploy that version again from its build instead.",
                missing=len(missing),
            )
        now = current.files if current else {}
        writes = []
        for path, entry in target.files.items():
            if only is not None and path not in only:
                continue
            old = now.get(path)
            if old is not None and old.same_bytes(entry) and old.intact(listing.site.get(path)):
                if old.headers != entry.headers:
                    writes.append(Write(path, entry, "headers", copy_from=path))
                continue
            writes.append(Write(path, entry, "restore", copy_from=self._source(entry, now)))
        if only is not None:
            deletes = sorted(k for k in listing.site if k in only and k not in target.files)
        elif self.delete:
            deletes = sorted(k for k in listing.site if k not in target.files)
        else:
            deletes = []
        manifest = Manifest(target.release, dict(target.files), dict(target.info))
        if only is not None:  # undoing a failed deploy: the live manifest never changed
            return self._apply(writes, deletes, None, current, progress)
        return self._apply(writes, deletes, manifest, current, progress)

    def _missing_sources(
        self, target: Manifest, listing: Listing, only: set[str] | None = None
    ) -> list[str]:
        live = self.live()
        available = set(listing.objects)
        for holder in (live, target):
            for path, entry in (holder.files if holder else {}).items():
                if entry.intact(listing.site.get(path)):
                    available.add(entry.stored_sha256)
        available.update(e.stored_sha256 for e in self._written.values())
        return sorted(
            p
            for p, e in target.files.items()
            if (only is None or p in only) and e.stored_sha256 not in available
        )

    def _source(self, entry: Entry, current: Mapping[str, Entry]) -> str:
        """Where ``entry``'s bytes can be copied from: its content-addressed copy if kept,
        else a live object that holds them (:meth:`_apply` keeps that one first)."""
        if entry.stored_sha256 in self.listing().objects:
            return self._object_key(entry.stored_sha256)
        listing = self.listing()
        for path, held in current.items():
            if held.same_bytes(entry) and held.intact(listing.site.get(path)):
                return path
        return self._object_key(entry.stored_sha256)

    # -- writing -------------------------------------------------------------------------

    def _apply(
        self,
        writes: list[Write],
        deletes: list[str],
        manifest: Manifest | None,
        current: Manifest | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Keep what is replaced, write assets, then entries, switch, invalidate, delete."""
        listing = self.listing()
        preserved = self._preserve(writes, deletes, current, listing)
        # a copy from a live object that this very run replaces reads the kept copy instead
        replaced = {w.path for w in writes if w.reason != "headers"} | set(deletes)
        writes = [
            replace(w, copy_from=self._object_key(w.entry.stored_sha256))
            if w.origin is None and w.copy_from in replaced and w.copy_from != w.path
            else w
            for w in writes
        ]
        uploads = [w for w in writes if w.source is not None]
        progress.start("Uploading", total=sum(w.entry.size for w in writes))
        written: dict[str, Entry] = {}
        for phase in (
            [w for w in writes if not is_entry(w.path)],
            [w for w in writes if is_entry(w.path)],
        ):
            written.update(self._parallel(phase, progress))
        progress.finish()
        warnings: list[str] = []
        invalidation = None
        raw = None
        if manifest is not None:
            manifest.files.update(written)
            raw = manifest.to_bytes()
            warnings += self._switch(manifest.release, raw)
            self._written.clear()
        changed = sorted(set(written) | set(deletes))
        if changed and self._invalidate is not None:
            try:
                invalidation = self._invalidate(changed)
            except DevopsError as error:
                warnings.append(f"the CDN was not invalidated: {error.message}")
        deleted = 0
        if deletes:
            try:
                self.store.delete(deletes)
                deleted = len(deletes)
            except DevopsError as error:
                warnings.append(
                    f"{len(deletes)} object(s) the build no longer has were not deleted "
                    f"({error.message}); the next deploy deletes them"
                )
        self.forget()
        if manifest is not None:  # what is live now is known without asking
            self._live, self._live_raw, self._live_read = manifest, raw, True
        return {
            "uploaded": len(uploads),
            "bytes_uploaded": sum(w.entry.size for w in uploads),
            "copied": len(writes) - len(uploads),
            "preserved": preserved,
            "deleted": deleted,
            "changed_paths": changed,
            "invalidation": invalidation,
            "warnings": warnings,
        }

    def _switch(self, release: str, raw: bytes) -> list[str]:
        """Write the live manifest, ``raw``, and keep it as ``releases/<release>.json``; the
        two PUTs go at once. The switch is the live one: should only the kept copy fail, the
        release is live all the same, and a warning says it cannot be restored later."""
        kept = Background(lambda: self._put_json(f"{self.private}{RELEASES}{release}.json", raw))
        try:
            self._put_json(self.private + MANIFEST, raw)
        finally:
            kept.wait()
        try:
            kept.result()
        except DevopsError as error:
            return [
                f"release {release} is live, but its copy under {self.private}{RELEASES} was not "
                f"written ({error.message}): a later rollback to it needs its build deployed again"
            ]
        if self._releases is not None:
            self._releases.add(release)
        return []

    def _preserve(
        self,
        writes: list[Write],
        deletes: list[str],
        current: Manifest | None,
        listing: Listing,
    ) -> int:
        """Copy every live content about to be replaced or deleted to ``objects/<sha256>``
        (unless it is there already), and every content a copy will need from such an object.
        Only objects still as their manifest wrote them are kept: a hand edit is not."""
        now = current.files if current else {}
        replaced = [w.path for w in writes if w.reason != "headers"] + deletes
        wanted: dict[str, Write] = {}
        for path in replaced:
            old = now.get(path)
            if old is None or old.stored_sha256 in listing.objects:
                continue
            if old.intact(listing.site.get(path)) and old.stored_sha256 not in wanted:
                key = self._object_key(old.stored_sha256)
                wanted[old.stored_sha256] = Write(key, old, "keep", copy_from=path)
        self._parallel(list(wanted.values()), NullProgress(), live=False)
        listing.objects.update(wanted)
        return len(wanted)

    def _parallel(
        self, writes: list[Write], progress: Progress, live: bool = True
    ) -> dict[str, Entry]:
        """Run ``writes`` on ``concurrency`` threads; the first failure stops the rest.

        Returns path -> entry as written (with the store's tag). ``live`` writes are site
        objects, remembered so that :meth:`discard` can undo them.
        """
        if not writes:
            return {}
        done: dict[str, Entry] = {}
        guard = threading.Lock()

        def run(write: Write) -> None:
            entry = self._write(write)
            with guard:
                done[write.path] = entry
                if live:
                    self._written[write.path] = entry
            progress.advance(write.entry.size)

        with concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(run, write) for write in writes]
            finished, pending = concurrent.futures.wait(
                futures, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            for future in pending:
                future.cancel()
        for future in finished:
            error = future.exception()
            if error is not None:
                raise error
        return done

    def _write(self, write: Write) -> Entry:
        """Write one object; its entry as stored (gzipped size and digest, the store's tag)."""
        entry, source = write.entry, write.source
        if source is None:
            assert write.copy_from is not None
            tag = self.store.copy(write.copy_from, write.path, entry.headers, write.origin)
            return replace(entry, tag=tag)
        if source.size > IN_MEMORY_LIMIT and entry.headers.content_encoding is None:
            with source.source.open("rb") as stream:
                return replace(
                    entry, tag=self.store.put(write.path, stream, source.size, entry.headers)
                )
        data = self._read_checked(source, entry.sha256)
        if entry.headers.content_encoding == "gzip":
            # mtime=0: the same file always gzips to the same bytes (and the same ETag)
            data = gzip.compress(data, compresslevel=9, mtime=0)
            entry = replace(
                entry, stored_sha256=hashlib.sha256(data).hexdigest(), stored_size=len(data)
            )
        tag = self.store.put(write.path, io.BytesIO(data), len(data), entry.headers)
        return replace(entry, tag=tag)

    def _read_checked(self, source: SiteFile, sha: str) -> bytes:
        data = source.source.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"{source.path} changed while it was being deployed",
                "Let the build finish before deploying, then deploy again.",
            )
        return data

    def _put_json(self, key: str, data: bytes) -> None:
        self.store.put(key, io.BytesIO(data), len(data), Headers("application/json", "no-store"))

    def _object_key(self, sha: str) -> str:
        return f"{self.private}{OBJECTS}{sha}"

    def _record(
        self, item: dict[str, Any], live: str | None = None, replaced: str | None = None
    ) -> None:
        """Add ``item`` to ``history.json``; a rollback also marks what it replaced."""
        history = self.history()
        for old in history:
            if old.get("action") != "deploy":
                continue
            if replaced and old.get("release") == replaced and replaced != live:
                old["status"] = "rolled_back"
            elif live and old.get("release") == live:
                old["status"] = "success"
        history.insert(0, item)
        self._put_json(self.private + HISTORY, json.dumps(history[:HISTORY_LENGTH]).encode())

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Once a write takes the lock, keep it until this block ends: a deploy's health
        check, and the rollback after it, run under it too. A deploy that writes nothing
        never takes it."""
        self._sticky = True
        try:
            yield
        finally:
            self._sticky = False
            lock, self._lock = self._lock, None
            self._history_read = None
            if lock is not None:
                lock.release()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is not None or self._lock_factory is None:
            yield
            return
        lock = self._lock_factory()
        lock.acquire()
        self._lock = lock
        # only lock holders write the history: read now, it is ready when the record is added
        self._history_read = Background(self._read_history)
        try:
            yield
        finally:
            if not self._sticky:
                self._lock = None
                self._history_read = None
                lock.release()

    # -- pruning -------------------------------------------------------------------------

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Drop kept manifests beyond the newest ``keep`` (never one in ``protect`` nor the
        live one), then every kept copy that no remaining manifest needs."""
        folder = self.private + RELEASES
        if self._releases is None:
            known = {o.key[len(folder) : -len(".json")] for o in self.store.list(folder)}
        else:  # what the listing showed and this object added since
            known = set(self._releases)
        ordered = sorted((n for n in known if RELEASE_ID.fullmatch(n)), reverse=True)
        live = self.live()
        keep_ids = set(ordered[:keep]) | protect | {_id(live)}
        dropped = [r for r in ordered if r not in keep_ids]
        if not dropped:  # a kept copy is only ever left unused by a dropped release
            return []
        objects = self.private + OBJECTS
        with self._locked():
            # At once: the dropped manifests go, the kept copies are listed, and the other
            # kept manifests are read, lightly (the live one is in hand). Only once all that
            # is done are the copies no remaining manifest needs deleted.
            needed = {e.stored_sha256 for e in live.files.values()} if live else set()
            kept = [r for r in ordered if r not in dropped and r != _id(live)]
            with concurrent.futures.ThreadPoolExecutor(min(len(kept), 8) + 2) as pool:
                gone = pool.submit(self.store.delete, [f"{folder}{r}.json" for r in dropped])
                listed = pool.submit(lambda: [o.key for o in self.store.list(objects)])
                for hashes in pool.map(self._kept_hashes, kept):
                    needed |= hashes
                gone.result()
                unused = [k for k in listed.result() if k[len(objects) :] not in needed]
            if unused:
                self.store.delete(unused)
        self._releases = set(ordered) - set(dropped)
        return dropped

    def _kept_hashes(self, release: str) -> set[str]:
        key = f"{self.private}{RELEASES}{release}.json"
        raw = self.store.get(key)
        return set() if raw is None else Manifest.stored_hashes(raw, key)


def _id(manifest: Manifest | None) -> str | None:
    return manifest.release if manifest is not None else None
