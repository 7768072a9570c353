"""The hash cache: an unchanged file is not read again, and a changed one never looks unchanged.

Deploys here go to the local target, whose release manifest records the sha256 the deploy
used for each file, and whose new release links a file from the live one only when that
digest is unchanged: a stale digest would serve the old content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import write_site

from devops_tasks import hash_cache
from devops_tasks.files import SiteFiles
from devops_tasks.hash_cache import HashCache
from devops_tasks.project import Project

#: How long the tests let a file settle before it may be cached (the real wait: 0.1 s or 2 s).
SETTLE = 0.05


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_cache, "SETTLE_NS", int(SETTLE * 1e9))
    monkeypatch.setattr(hash_cache, "FINE_SETTLE_NS", int(SETTLE * 1e9))


def settle() -> None:
    time.sleep(SETTLE * 3)


def fingerprint(path: Path) -> tuple[int, int, int, int, int]:
    status = os.stat(path)
    return (
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_ino,
        status.st_dev,
    )


def cache_of(project: Project, build: str = "dist") -> HashCache:
    return HashCache(project.cache_dir / "digests", (project.root / build).resolve())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def deploy(cli, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = cli("deploy", "--dir", "dist", "--json", *args).json
    assert result["success"], result
    return result


def manifest_digest(project: Project, release: str, path: str) -> str:
    manifests = project.state_dir / "local" / "production" / ".devops" / "manifests"
    document = json.loads((manifests / f"{release}.json").read_text())
    return str(document["files"][path]["sha256"])


def live(project: Project, path: str) -> str:
    return (project.state_dir / "local" / "production" / "current" / path).read_text()


def poison(project: Project, path: str) -> str:
    """Put a wrong digest in the cache for ``path`` as it is now; returns that digest."""
    cache = cache_of(project)
    wrong = "0" * 64
    site_file = project.root / "dist" / path
    cache.remember(path, fingerprint(site_file), {"sha256": wrong})
    cache.save(time.time_ns())
    assert cache_of(project).known(path, fingerprint(site_file)) == {"sha256": wrong}
    return wrong


# --------------------------------------------------------------------------- reuse


def test_a_deploy_remembers_each_files_digest_under_what_the_file_is_now(project, cli, settled):
    settle()
    deploy(cli)
    index = project.root / "dist" / "index.html"
    assert cache_of(project).known("index.html", fingerprint(index)) == {"sha256": sha256(index)}


def test_a_file_the_cache_knows_as_it_is_now_is_not_read_again(project, cli, settled):
    settle()
    wrong = poison(project, "index.html")  # only a deploy that trusts the cache can see this

    release = deploy(cli)["release"]

    assert manifest_digest(project, release, "index.html") == wrong


def test_no_cache_neither_reads_nor_writes_the_cache(project, cli, settled):
    settle()
    poison(project, "index.html")
    before = (project.cache_dir / "digests").read_bytes()

    release = deploy(cli, "--no-cache")["release"]

    index = project.root / "dist" / "index.html"
    assert manifest_digest(project, release, "index.html") == sha256(index)
    assert (project.cache_dir / "digests").read_bytes() == before


def test_a_file_changed_just_before_the_deploy_is_hashed_but_not_remembered(
    project, cli, monkeypatch
):
    monkeypatch.setattr(hash_cache, "FINE_SETTLE_NS", hash_cache.SETTLE_NS)  # however slow
    index = project.root / "dist" / "index.html"
    index.write_text("<h1>just written</h1>\n")  # within the settle time of the deploy

    deploy(cli)

    assert cache_of(project).known("index.html", fingerprint(index)) == {}
    css = project.root / "dist" / "css" / "site.css"
    assert cache_of(project).known("css/site.css", fingerprint(css)) == {}


# --------------------------------------------------------------------------- changes seen


def test_a_same_second_same_size_edit_with_its_mtime_put_back_is_seen_as_changed(
    project, cli, settled
):
    settle()
    deploy(cli)
    index = project.root / "dist" / "index.html"
    before = os.stat(index)
    assert cache_of(project).known("index.html", fingerprint(index))

    with open(index, "r+b") as stream:  # in place: the same inode
        stream.write(b"<h1>v2</h1>\n")
    os.utime(index, ns=(before.st_atime_ns, before.st_mtime_ns))

    after = os.stat(index)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert after.st_ctime_ns != before.st_ctime_ns  # what tells the cache
    release = deploy(cli)["release"]
    assert live(project, "index.html") == "<h1>v2</h1>\n"
    assert manifest_digest(project, release, "index.html") == sha256(index)


def test_a_file_replaced_by_rename_is_seen_as_changed(project, cli, settled):
    settle()
    deploy(cli)
    index = project.root / "dist" / "index.html"
    before = os.stat(index)
    replacement = project.root / "dist" / ".index.html.new"
    replacement.write_bytes(b"<h1>v3</h1>\n")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, index)

    assert os.stat(index).st_ino != before.st_ino
    release = deploy(cli)["release"]
    assert live(project, "index.html") == "<h1>v3</h1>\n"
    assert manifest_digest(project, release, "index.html") == sha256(index)


def test_a_build_written_again_with_the_same_names_sizes_and_mtimes_is_read_again(
    project, cli, settled
):
    """As a checkout on another machine would be: the cache holds none of its fingerprints."""
    settle()
    deploy(cli)
    dist = project.root / "dist"
    times = {p: os.stat(p).st_mtime_ns for p in dist.rglob("*") if p.is_file()}
    shutil.rmtree(dist)
    write_site(dist, "v4")
    for path, mtime_ns in times.items():
        os.utime(path, ns=(mtime_ns, mtime_ns))

    release = deploy(cli)["release"]

    assert live(project, "index.html") == "<h1>v4</h1>\n"
    assert manifest_digest(project, release, "index.html") == sha256(dist / "index.html")


def test_a_cache_copied_from_another_build_directory_is_not_used(tmp_path, settled):
    site = write_site(tmp_path / "site")
    index = site / "index.html"
    other = tmp_path / "elsewhere"
    cache = HashCache(tmp_path / "digests", other)
    cache.remember("index.html", fingerprint(index), {"sha256": "0" * 64})
    settle()
    cache.save(time.time_ns())

    assert HashCache(tmp_path / "digests", other).known("index.html", fingerprint(index))
    assert HashCache(tmp_path / "digests", site).known("index.html", fingerprint(index)) == {}
    scanned = SiteFiles.scan(site, digests=("sha256",), cache=HashCache(tmp_path / "digests", site))
    assert scanned.digests("sha256")["index.html"] == sha256(index)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"not a cache at all",
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:],  # one bit of a digest
        lambda data: b"",
    ],
    ids=["garbage", "truncated", "bit-flip", "empty"],
)
def test_a_damaged_cache_is_ignored_and_written_anew(project, cli, settled, damage):
    settle()
    deploy(cli)
    path = project.cache_dir / "digests"
    path.write_bytes(damage(path.read_bytes()))

    release = deploy(cli)["release"]

    index = project.root / "dist" / "index.html"
    assert manifest_digest(project, release, "index.html") == sha256(index)
    assert cache_of(project).known("index.html", fingerprint(index)) == {"sha256": sha256(index)}


def test_a_cache_that_is_not_a_file_is_ignored(project, cli, settled):
    (project.cache_dir / "digests").mkdir(parents=True)

    result = deploy(cli)

    assert live(project, "index.html") == "<h1>v1</h1>\n"
    assert manifest_digest(project, result["release"], "index.html") == sha256(
        project.root / "dist" / "index.html"
    )


# --------------------------------------------------------------------------- bounded, atomic


def test_entries_for_paths_that_are_gone_are_dropped(project, cli, settled):
    settle()
    deploy(cli)
    css = project.root / "dist" / "css" / "site.css"
    was = fingerprint(css)
    assert cache_of(project).known("css/site.css", was)

    css.unlink()
    deploy(cli)

    assert cache_of(project).known("css/site.css", was) == {}
    index = project.root / "dist" / "index.html"
    assert cache_of(project).known("index.html", fingerprint(index))


def test_the_cache_is_replaced_whole_never_rewritten_in_place(project, cli, settled):
    settle()
    deploy(cli)
    path = project.cache_dir / "digests"
    with open(path, "rb") as old:
        (project.root / "dist" / "new.html").write_text("new\n")
        settle()
        deploy(cli)
        kept = old.read()  # what a reader that opened it before the write still sees whole
        assert os.fstat(old.fileno()).st_ino != os.stat(path).st_ino

    assert kept != path.read_bytes()
    assert hash_cache._decode(kept, (project.root / "dist").resolve())
    assert [p.name for p in project.cache_dir.iterdir() if "tmp" in p.name] == []


def test_an_unchanged_deploy_does_not_write_the_cache(project, cli, settled):
    settle()
    deploy(cli)
    before = os.stat(project.cache_dir / "digests")

    deploy(cli)

    after = os.stat(project.cache_dir / "digests")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# --------------------------------------------------------------------------- algorithms


def test_a_miss_computes_every_algorithm_the_projects_targets_asked_for_in_one_read(
    tmp_path, settled
):
    site = write_site(tmp_path / "site")
    settle()
    SiteFiles.scan(site, digests=("sha256",), cache=HashCache(tmp_path / "digests", site))
    index = site / "index.html"
    index.write_text("<h1>v2</h1>\n")
    settle()

    scanned = SiteFiles.scan(site, digests=("sha1",), cache=HashCache(tmp_path / "digests", site))

    assert scanned.digests("sha1")["index.html"] == hashlib.sha1(index.read_bytes()).hexdigest()
    assert HashCache(tmp_path / "digests", site).known("index.html", fingerprint(index)) == {
        "sha1": hashlib.sha1(index.read_bytes()).hexdigest(),
        "sha256": sha256(index),
    }


def test_whole_second_times_wait_two_seconds_and_fine_ones_a_tenth(tmp_path):
    cache = HashCache(tmp_path / "digests", tmp_path)
    now = 1_800_000_000 * 10**9
    coarse = (10, now - 10**9, now - 10**9, 1, 1)  # FAT, HFS+: a change 1 s ago, to the second
    fine = (10, now - 500_000_001, now - 500_000_001, 2, 1)  # ext4: half a second ago
    cache.remember("coarse.html", coarse, {"sha256": "ab" * 32})
    cache.remember("fine.html", fine, {"sha256": "cd" * 32})

    cache.save(now)

    again = HashCache(tmp_path / "digests", tmp_path)
    assert again.known("coarse.html", coarse) == {}
    assert again.known("fine.html", fine) == {"sha256": "cd" * 32}


def test_a_save_removes_what_a_scan_killed_while_saving_left(project, cli, settled):  # type: ignore[no-untyped-def]
    deploy(cli)
    leftover = project.cache_dir / ".digests.k1ll3d.devops-tmp"
    leftover.write_bytes(b"half a cache")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    (project.root / "dist" / "new.html").write_text("<p>new</p>\n")
    settle()
    deploy(cli)  # a new file: the cache is saved
    assert not leftover.exists()
