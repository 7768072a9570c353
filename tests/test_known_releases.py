"""What this machine remembers of the releases it made (the hosts' side is in test_delta.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from devops_tasks.known_releases import KnownReleases
from devops_tasks.manifests import Entry, as_made, listing_of, parse_listing

RELEASES = [f"dep_170000000000{n}_0000000{n}" for n in range(1, 7)]
ENTRIES = {
    "index.html": Entry("a" * 64, 12, 0o644, 1_700_000_000),
    "css/site.css": Entry("b" * 64, 300, 0o644, 1_700_000_001),
    "bin/run sh": Entry("c" * 64, 20, 0o755, 1_700_000_002),
}


def test_a_remembered_release_is_read_back_by_the_next_process(tmp_path: Path) -> None:
    KnownReleases(tmp_path).remember(RELEASES[0], b'{"files": {}}', lambda: "ab" * 32, ("up",))

    known = KnownReleases(tmp_path).all()[RELEASES[0]]

    assert known.manifest == b'{"files": {}}'
    assert known.manifest_sha256 == hashlib.sha256(b'{"files": {}}').hexdigest()
    assert known.listing_sha256 == "ab" * 32
    assert known.shared == ("up",)


def test_only_the_newest_few_releases_are_remembered(tmp_path: Path) -> None:
    for release in RELEASES:
        KnownReleases(tmp_path).remember(release, b"{}", lambda: "ab" * 32, ())

    assert sorted(KnownReleases(tmp_path).all()) == RELEASES[-4:]
    assert sorted(p.name for p in tmp_path.iterdir()) == RELEASES[-4:]


def test_the_listing_is_made_once_per_release_whatever_the_hosts(tmp_path: Path) -> None:
    known, made = KnownReleases(tmp_path), []
    for _ in range(3):
        known.remember(RELEASES[0], b"{}", lambda: made.append(1) or "ab" * 32, ())

    assert made == [1]


@pytest.mark.parametrize(
    "content",
    [b"", b"not json\n{}", b'{"listing": "x", "shared": []}\n{}', b'{"listing": 7}\n{}'],
    ids=["empty", "no header", "not a digest", "no shared"],
)
def test_a_damaged_memory_is_forgotten_not_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / RELEASES[0]).write_bytes(content)
    (tmp_path / "notes.txt").write_text("not a release")

    assert KnownReleases(tmp_path).all() == {}


def test_a_directory_that_cannot_be_written_costs_only_the_memory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    known = KnownReleases(tmp_path / "file" / "releases")

    known.remember(RELEASES[0], b"{}", lambda: "ab" * 32, ())

    assert KnownReleases(tmp_path / "file" / "releases").all() == {}


def test_a_release_as_made_is_what_its_listing_would_parse_to() -> None:
    shared = ("uploads", "config/.env")

    listing = listing_of(list(ENTRIES.items()), shared)

    assert parse_listing(listing) == as_made(ENTRIES, shared)
    assert listing.split(b"\0")[:-1] == sorted(listing.split(b"\0")[:-1])  # as sort -z
