"""Release manifests, and the plan of a delta upload that they make possible.

A manifest says what each file of a release is: ``path -> {sha256, size, mode, mtime}``, as
deployed, and nothing else: a release with exactly the files of another has its manifest. The
plan of a new release compares the build with the manifest of the host's
current release, and with that release's files as they are on the host: a file is linked
from there only if its content and mode are the same and its copy there still has the size,
mode and time its manifest says (so a file edited by hand on the host is sent again).
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, NamedTuple

from .changes import Changes

if TYPE_CHECKING:
    from .files import SiteFile, SiteFiles

__all__ = [
    "MANIFESTS",
    "Entry",
    "Plan",
    "Survey",
    "as_made",
    "drift",
    "listing_of",
    "parse_listing",
    "parse_manifest",
    "plan_upload",
    "planned_changes",
    "within",
]

#: Where a root keeps its releases' manifests, outside anything served.
MANIFESTS = ".devops/manifests"
_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_OCTAL_MODE = re.compile(r"[0-7]{1,4}", re.ASCII)
#: The permission bits a deployed file keeps: read and execute as built, write for the owner
#: only, never set-id (as a umask of 022 would leave them, whoever extracts).
_DEPLOYED_MODE = 0o755
_NOTHING: Mapping[str, str] = {}


class Entry(NamedTuple):
    """One file of a manifest."""

    sha256: str
    size: int
    mode: int
    mtime: int

    def to_json(self, sha256: str | None = None) -> dict[str, Any]:
        """As a manifest holds it; with ``sha256`` for this content (no Entry made for it)."""
        return {
            "sha256": sha256 or self.sha256,
            "size": self.size,
            "mode": f"{self.mode:o}",
            "mtime": self.mtime,
        }


class Survey(NamedTuple):
    """What a host holds that an upload can reuse: its current release and that one's files."""

    current: str | None
    manifest: bytes | None
    #: ``path -> (size, mtime, mode)`` of each regular file of the current release, on disk.
    #: The time keeps its fraction: a deployed file has a whole second (its manifest's), so
    #: an edit by hand within that very second still differs.
    on_disk: dict[str, tuple[int, float, int]]
    #: Every other entry of the current release on disk: path -> ``find``'s type letter
    #: (``d`` a directory, ``l`` a symbolic link, ...).
    others: Mapping[str, str] = _NOTHING


@dataclass(frozen=True)
class Plan:
    """One release to build: each file linked from ``base`` or sent, then the manifest."""

    release: str
    base: str | None
    #: Every file in path order, with its manifest entry and whether it is linked (a sent
    #: file's ``sha256`` may still be unknown: see :attr:`manifest`).
    members: list[tuple[SiteFile, Entry, bool]]
    shared: tuple[str, ...]
    #: The build's content digests. Asked for only when a file may be linked, and when the
    #: manifest is written, after the files: a release with nothing to link from starts
    #: sending while the build is still being hashed.
    digests: Callable[[], dict[str, str]]
    #: What a copy of ``base`` holds that this release must not (paths relative to it): the
    #: entries a host that copies ``base`` whole removes before the sent files go in.
    #: Empty without a base.
    unwanted: tuple[str, ...] = ()
    #: ``base``'s manifest, when this release has exactly its files (all linked): then it is
    #: this release's manifest too, and a host copies it instead of being sent it.
    same_manifest: bytes | None = None

    @functools.cached_property
    def manifest(self) -> bytes:
        """As ``json.dumps(document, separators=(",", ":"))`` writes it, a third of the time:
        each entry is one format of values that need no escaping but the path."""
        if self.same_manifest is not None:
            return self.same_manifest
        digests = self.digests()
        files = ",".join(
            f'{encode_basestring_ascii(f.path)}:{{"sha256":"{digests[f.path]}",'
            f'"size":{entry.size},"mode":"{entry.mode:o}","mtime":{entry.mtime}}}'
            for f, entry, _ in self.members
        )
        return f'{{"version":{_VERSION},"files":{{{files}}}}}'.encode()

    # Paths relative to releases/, where the release is built: the shortest names that
    # reach every file (a tar header holds 100 bytes of a link's target before it needs an
    # extended header), and the same for a host and this machine.

    @property
    def partial(self) -> str:
        return f".{self.release}.partial"

    @property
    def manifest_partial(self) -> str:
        return f".{self.release}.manifest"

    @property
    def manifest_path(self) -> str:
        return f"../{MANIFESTS}/{self.release}.json"

    def linked_from(self, path: str) -> str:
        return f"{self.base}/{path}"

    @property
    def sent(self) -> list[SiteFile]:
        return [f for f, _, linked in self.members if not linked]

    @functools.cached_property
    def linked(self) -> int:
        """How many files are linked (a host's copy of ``base`` must hold exactly these)."""
        return sum(linked for _, _, linked in self.members)


#: The last plan made, and what it was made from: hosts deployed together usually hold the
#: same release as it was deployed, and then one plan serves them all.
_last_plan: list[tuple[SiteFiles, tuple[Any, ...], Survey, Plan]] = []
_planning = threading.Lock()


def plan_upload(
    release: str,
    files: SiteFiles,
    digests: Callable[[], dict[str, str]],
    survey: Survey,
    shared: tuple[str, ...],
) -> Plan:
    """What to link and what to send: a file is linked only if the current release has it
    with the same content and mode, and its copy there still looks as its manifest says.

    Called for each host at once: one computes, and a host whose survey matches takes its plan.
    """
    key = (release, survey.current, survey.manifest, shared)
    with _planning:
        for known_files, known_key, known_survey, plan in _last_plan:
            if known_files is files and known_key == key and known_survey == survey:
                return plan
        intact = _intact(survey)
        members = _members(files, digests() if intact else {}, intact, shared)
        base = survey.current if intact else None
        unwanted = _unwanted(survey, members, shared) if base else ()
        same = (
            survey.manifest
            if base
            and len(members) == len(parse_manifest(survey.manifest or b"") or ())
            and all(linked for _, _, linked in members)
            else None
        )
        plan = Plan(release, base, members, shared, digests, unwanted, same)
        _last_plan[:] = [(files, key, survey, plan)]
        return plan


def _intact(survey: Survey) -> dict[str, Entry]:
    """The files of the host's current release that are still as its manifest says."""
    if survey.current is None or survey.manifest is None:
        return {}
    return {
        path: entry
        for path, entry in (parse_manifest(survey.manifest) or {}).items()
        if survey.on_disk.get(path) == (entry.size, entry.mtime, entry.mode)
    }


def _unwanted(
    survey: Survey, members: list[tuple[SiteFile, Entry, bool]], shared: tuple[str, ...]
) -> tuple[str, ...]:
    """What the current release has on disk that a release of ``members`` keeps nothing of:
    files not linked (changed, deleted, never deployed), anything that is neither a file nor
    a directory, and directories with no member below them. A name a host's ``find`` could
    not have printed (absolute, or with ``..``) is left out: it would reach outside."""
    linked = {f.path for f, _, kept in members if kept}
    unwanted = [path for path in survey.on_disk if path not in linked]
    if survey.others:
        needed = _directories([*(f.path for f, _, _ in members), *shared])
        unwanted += [p for p, kind in survey.others.items() if kind != "d" or p not in needed]
    return tuple(sorted(path for path in unwanted if _plain(path)))


def _directories(paths: list[str]) -> set[str]:
    """Every directory that holds one of ``paths`` (a release's few hundred directories are
    walked up once each, not once per file)."""
    directories: set[str] = set()
    for parent in {path.rpartition("/")[0] for path in paths}:
        while parent and parent not in directories:
            directories.add(parent)
            parent = parent.rpartition("/")[0]
    return directories


def _plain(path: str) -> bool:
    """Whether ``path`` is a relative path that stays where it is (no ``..``, no ``.``)."""
    return bool(path) and not path.startswith("/") and not {".", "..", ""} & set(path.split("/"))


def _members(
    files: SiteFiles, digests: dict[str, str], intact: dict[str, Entry], shared: tuple[str, ...]
) -> list[tuple[SiteFile, Entry, bool]]:
    """Each file with its manifest entry, linked when ``intact`` has it as it is now."""
    members = []
    for site_file in files:
        if shared and any(within(site_file.path, path) for path in shared):
            continue  # the shared path replaces it
        mode = site_file.mode & _DEPLOYED_MODE
        kept = intact.get(site_file.path)
        if kept is not None and (kept.sha256, kept.mode) == (digests[site_file.path], mode):
            members.append((site_file, kept, True))
        else:
            sha256 = digests.get(site_file.path, "")  # known by the manifest's time
            entry = Entry(sha256, site_file.size, mode, site_file.mtime)
            members.append((site_file, entry, False))
    return members


def planned_changes(
    files: SiteFiles, digests: dict[str, str], survey: Survey, shared: tuple[str, ...]
) -> Changes:
    """What a release of ``files`` would change from the host's current one, as
    :func:`plan_upload` would plan it: a file sent though the current release has it (other
    content or mode, or edited on the host since) is changed; one the current release has,
    by its manifest or on disk, and the build has not, is deleted."""
    intact = _intact(survey)
    members = _members(files, digests, intact, shared)
    listed = (parse_manifest(survey.manifest) or {}) if survey.manifest is not None else {}
    known = {path: size for path, (size, _, _) in survey.on_disk.items()}
    known |= {path: entry.size for path, entry in listed.items()}
    sent = [f for f, _, linked in members if not linked]
    built = {f.path for f, _, _ in members}
    return Changes(
        added={f.path: f.size for f in sent if f.path not in known},
        changed={f.path: f.size for f in sent if f.path in known},
        deleted={path: size for path, size in known.items() if path not in built},
    )


def drift(survey: Survey) -> Changes | None:
    """The files of the host's current release changed (size, mode or time), added or deleted
    on the host since it was deployed; None if the release has no manifest to go by."""
    if survey.current is None:
        return Changes()
    entries = parse_manifest(survey.manifest) if survey.manifest is not None else None
    if entries is None:
        return None
    return Changes.between(
        {path: ((e.size, e.mtime, e.mode), e.size) for path, e in entries.items()},
        {path: (seen, seen[0]) for path, seen in survey.on_disk.items()},
    )


@functools.lru_cache(maxsize=4)
def parse_manifest(data: bytes) -> dict[str, Entry] | None:
    """The entries of a manifest as a host holds it; None unless every part is well formed.

    Hosts deployed together hold the same manifest: it is parsed once (never change the
    mapping returned).
    """
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        return None
    files = document.get("files")
    if not isinstance(files, dict):
        return None
    entries = {}
    modes: dict[str, int] = {}  # a release has a few modes: each is checked and read once
    for path, entry in files.items():
        if not isinstance(entry, dict):
            return None
        sha256, size, mode, mtime = (
            entry.get("sha256"),
            entry.get("size"),
            entry.get("mode"),
            entry.get("mtime"),
        )
        if not isinstance(mode, str):
            return None
        if mode not in modes:
            if not _OCTAL_MODE.fullmatch(mode):
                return None
            modes[mode] = int(mode, 8)
        if not (
            type(size) is int
            and size >= 0
            and type(mtime) is int
            and isinstance(sha256, str)
            and _SHA256.fullmatch(sha256)
        ):
            return None
        entries[path] = Entry(sha256, size, modes[mode], mtime)
    return entries


@functools.lru_cache(maxsize=4)
def parse_listing(
    listing: bytes,
) -> tuple[dict[str, tuple[int, float, int]], dict[str, str]]:
    """``find -printf '%y %s %T@ %m %P\\0'`` (size, time and mode of regular files only)
    as ``path -> (size, mtime, mode)`` of the regular files, and ``path -> type letter`` of
    every other entry.

    A record that does not parse is left out: a file is then sent, never linked. Hosts
    deployed together usually list the same bytes: they are parsed once (never change the
    mappings returned).
    """
    on_disk, others = {}, {}
    for record in listing.split(b"\0"):
        try:
            kind, size, mtime, mode, path = record.split(b" ", 4)
            if kind == b"f":
                on_disk[os.fsdecode(path)] = (int(size), float(mtime), int(mode, 8))
            elif path:
                others[os.fsdecode(path)] = kind.decode("ascii")
        except ValueError:
            continue
    return on_disk, others


def listing_of(files: list[tuple[str, Entry]], shared: tuple[str, ...]) -> bytes:
    """What a host's ``find`` (as :func:`parse_listing` reads it) prints of a release made of
    ``files`` (path, entry) and the ``shared`` links, unchanged since, sorted bytewise as
    ``LC_ALL=C sort -z`` sorts: how a host shows that it holds a release exactly as made
    (see :mod:`devops_tasks.known_releases`)."""
    records = [
        b"f %d %d.0000000000 %o %s" % (entry.size, entry.mtime, entry.mode, os.fsencode(path))
        for path, entry in files
    ]
    records += [b"l 0 0 0 " + os.fsencode(path) for path in shared]
    directories = _directories([*(path for path, _ in files), *shared])
    records += [b"d 0 0 0 " + os.fsencode(path) for path in directories]
    records.sort()
    return b"".join(record + b"\0" for record in records)


def as_made(
    entries: Mapping[str, Entry], shared: tuple[str, ...]
) -> tuple[dict[str, tuple[int, float, int]], dict[str, str]]:
    """What :func:`parse_listing` makes of :func:`listing_of` these ``entries``, without the
    text in between: a host that proved it holds them as made need not list them."""
    on_disk = {
        path: (entry.size, float(entry.mtime), entry.mode) for path, entry in entries.items()
    }
    others = dict.fromkeys(_directories([*entries, *shared]), "d")
    others.update(dict.fromkeys(shared, "l"))
    return on_disk, others


def within(path: str, directory: str) -> bool:
    """Whether the site path ``path`` is ``directory`` or below it."""
    return path == directory or path.startswith(directory + "/")
