"""The provider specs the fakes follow live in the repository, intact; nothing reads outside it."""

from __future__ import annotations

import hashlib
import re

from helpers import REPO

SPECS = REPO / "specs"


def _listed() -> dict[str, str]:
    """``file -> sha256`` from the table in specs/README.md."""
    rows = re.findall(
        r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", (SPECS / "README.md").read_text(), re.M
    )
    return dict(rows)


def test_every_spec_file_is_listed_with_its_source_and_checksum() -> None:
    on_disk = {p.name for p in SPECS.iterdir() if p.name != "README.md"}
    assert on_disk and on_disk == set(_listed())


def test_every_spec_file_matches_its_recorded_sha256() -> None:
    for name, digest in _listed().items():
        assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == digest, name


def test_tests_and_benchmarks_never_read_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("tests", "benchmarks")
        for path in (REPO / folder).rglob("*.py")
        if re.search(r"\.\./shared|parents\[2\]|/work/", path.read_text(encoding="utf-8"))
        and path.name != "test_specs.py"
    ]
    assert offenders == []
