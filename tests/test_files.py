"""Specification of what a build directory deploys (devops_tasks.files).

A scan lists the regular files under the build directory in a stable order, with POSIX
relative paths and sizes, minus version-control metadata and OS litter. Links are followed
only while they stay inside the directory; one that leads outside is refused, never shipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from shims import without_privileges

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFile, SiteFiles, default_ignore


def make_files(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative POSIX path -> content) under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        target.write_bytes(content)
    return root


def paths(site: SiteFiles) -> list[str]:
    return [f.path for f in site]


# --------------------------------------------------------------------------- listing


@given(
    st.sets(
        st.lists(
            st.sampled_from(["a", "a.b", "a-b", "a b", "ab", "A", "_", "é"]), min_size=1, max_size=3
        ).map("/".join),
        min_size=1,
        max_size=12,
    ).map(sorted)
)
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_walk_yields_files_in_path_order_and_counts_each_directory(
    tmp_path_factory: pytest.TempPathFactory, paths: list[str]
) -> None:
    """One pass: no sort of the whole build after it, no second pass to count directories."""
    root = tmp_path_factory.mktemp("dist")
    written = []
    for path in sorted(paths, key=len):  # a name that is a file cannot also be a directory
        target = root / path
        if any(p.is_file() for p in [target, *target.parents]) or target.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path)
        written.append(path)

    site = SiteFiles.scan(root)

    assert [f.path for f in site] == sorted(written)
    parents = [path.rpartition("/")[0] or "." for path in written]
    assert site.per_directory == {d: parents.count(d) for d in parents}


def test_scan_lists_every_file_with_sorted_posix_relative_paths(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist",
        {
            "z.txt": "z",
            "index.html": "<h1>hi</h1>",
            "css/site.css": "body{}",
            "assets/img/logo.svg": "<svg/>",
            "a/b/c/d.txt": "deep",
        },
    )

    site = SiteFiles.scan(root)

    assert paths(site) == sorted(
        [
            "z.txt",
            "index.html",
            "css/site.css",
            "assets/img/logo.svg",
            "a/b/c/d.txt",
        ]
    )


def test_scan_records_each_file_size_and_the_total(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist", {"a.txt": b"12345", "sub/b.bin": b"\x00" * 1000, "empty.txt": b""}
    )

    site = SiteFiles.scan(root)

    assert {f.path: f.size for f in site} == {"a.txt": 5, "empty.txt": 0, "sub/b.bin": 1000}
    assert site.total_bytes == 1005
    assert len(site) == 3


def test_scan_points_each_file_at_its_source_on_disk(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"css/site.css": "body{}"})

    [only] = SiteFiles.scan(root)

    assert only.source == root / "css" / "site.css"
    assert only.source.read_text(encoding="utf-8") == "body{}"


def test_scan_resolves_the_root_it_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path / "dist", {"index.html": "x"})
    monkeypatch.chdir(tmp_path)

    site = SiteFiles.scan(Path("dist"))

    assert site.root == (tmp_path / "dist").resolve()
    assert site.root.is_absolute()


def test_scan_of_the_project_fixture_site_lists_its_two_files(project) -> None:
    site = SiteFiles.scan(project.root / "dist")

    assert paths(site) == ["css/site.css", "index.html"]


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.txt", fullmatch=True),
        st.binary(max_size=64),
        min_size=1,
        max_size=8,
    )
)
@hsettings(max_examples=30, deadline=None)
def test_scan_finds_exactly_the_files_written_and_their_total_size(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, bytes],
) -> None:
    # directory names never end in .txt, so no generated path is both a file and a dir
    root = make_files(tmp_path_factory.mktemp("site"), files)

    site = SiteFiles.scan(root)

    assert paths(site) == sorted(files)
    assert site.total_bytes == sum(len(content) for content in files.values())


# --------------------------------------------------------------------------- ignoring


@pytest.mark.parametrize(
    "litter",
    [
        ".git/config",
        ".git/objects/ab/cdef",
        ".DS_Store",
        "css/.DS_Store",
        "__MACOSX/._index.html",
        "Thumbs.db",
        ".hg/store",
        ".svn/entries",
    ],
)
def test_scan_skips_version_control_metadata_and_os_litter(tmp_path: Path, litter: str) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", litter: "junk"})

    assert paths(SiteFiles.scan(root)) == ["index.html"]


def test_scan_keeps_dotfiles_that_are_not_litter(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist",
        {
            ".well-known/security.txt": "x",
            ".gitignore": "x",
            ".github/x.yml": "x",
            "_headers": "x",
        },
    )

    assert paths(SiteFiles.scan(root)) == [
        ".github/x.yml",
        ".gitignore",
        ".well-known/security.txt",
        "_headers",
    ]


def test_default_ignore_matches_whole_path_components_only() -> None:
    assert default_ignore(".git")
    assert default_ignore("sub/.git/HEAD")
    assert default_ignore("a/b/.DS_Store")
    assert not default_ignore("my.git")
    assert not default_ignore("docs/.gitkeep")
    assert not default_ignore("Thumbs.db.bak")


def test_scan_applies_a_custom_ignore_rule_to_posix_relative_paths(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist",
        {
            "app.js": "x",
            "app.js.map": "x",
            "js/vendor.js.map": "x",
        },
    )
    seen: list[str] = []

    def ignore_maps(relative: str) -> bool:
        seen.append(relative)
        return relative.endswith(".map")

    site = SiteFiles.scan(root, ignore=ignore_maps)

    assert paths(site) == ["app.js"]
    assert "js/vendor.js.map" in seen
    assert all("\\" not in p and not p.startswith("/") for p in seen)


def test_scan_does_not_descend_into_an_ignored_directory(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist", {"index.html": "x", "drafts/a.html": "x", "drafts/deep/b.html": "x"}
    )
    seen: list[str] = []

    def ignore_drafts(relative: str) -> bool:
        seen.append(relative)
        return relative == "drafts"

    site = SiteFiles.scan(root, ignore=ignore_drafts)

    assert paths(site) == ["index.html"]
    assert not any(p.startswith("drafts/") for p in seen)


def test_a_custom_ignore_rule_replaces_the_default_one(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", ".DS_Store": "x"})

    site = SiteFiles.scan(root, ignore=lambda relative: False)

    assert paths(site) == [".DS_Store", "index.html"]


# --------------------------------------------------------------------------- links


def test_a_link_to_a_file_inside_the_build_dir_is_listed_under_the_link_name(
    tmp_path: Path,
) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "<h1>home</h1>"})
    (root / "home.html").symlink_to("index.html")

    site = SiteFiles.scan(root)

    assert paths(site) == ["home.html", "index.html"]
    assert {f.path: f.size for f in site}["home.html"] == len("<h1>home</h1>")


def test_a_link_to_a_directory_inside_the_build_dir_is_followed(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"v2/app.js": "x"})
    (root / "latest").symlink_to("v2", target_is_directory=True)

    assert paths(SiteFiles.scan(root)) == ["latest/app.js", "v2/app.js"]


def test_a_link_to_a_file_outside_the_build_dir_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password", encoding="utf-8")
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "leak.txt").symlink_to(secret)

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    error = caught.value
    assert error.code is ErrorCode.VALIDATION_FAILED
    assert "leak.txt" in error.message
    assert "outside the build directory" in error.message
    assert error.fix


def test_a_link_to_a_directory_outside_the_build_dir_is_refused(tmp_path: Path) -> None:
    make_files(tmp_path / "private", {"key.pem": "x"})
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "assets").mkdir()
    (root / "assets" / "keys").symlink_to(tmp_path / "private", target_is_directory=True)

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert "assets/keys" in caught.value.message


def test_a_link_to_an_outside_directory_is_refused_before_anything_in_it_is_read(
    tmp_path: Path,
) -> None:
    make_files(tmp_path / "home", {"notes/todo.txt": "x", ".ssh/id_rsa": "x"})
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "home").symlink_to(tmp_path / "home", target_is_directory=True)
    seen: list[str] = []

    def recording_ignore(relative: str) -> bool:
        seen.append(relative)
        return False

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root, ignore=recording_ignore)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert not [p for p in seen if p.startswith("home/")]


def test_a_link_to_an_empty_directory_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "uploads").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert "uploads" in caught.value.message


def test_a_link_to_a_sibling_whose_name_starts_like_the_build_dir_is_refused(
    tmp_path: Path,
) -> None:
    make_files(tmp_path / "dist-secrets", {"token": "x"})
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "token").symlink_to(tmp_path / "dist-secrets" / "token")

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


def test_a_relative_link_that_climbs_out_of_the_build_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0", encoding="utf-8")
    root = make_files(tmp_path / "dist", {"sub/index.html": "x"})
    (root / "sub" / "p").symlink_to(Path("..") / ".." / "passwd")

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


def test_a_dangling_link_inside_the_build_dir_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "gone.html").symlink_to("was-here.html")
    (root / "assets").symlink_to("no-such-dir", target_is_directory=True)

    site = SiteFiles.scan(root)

    assert paths(site) == ["index.html"]
    assert site.warnings == (
        "assets was not deployed: it is a link to nothing",
        "gone.html was not deployed: it is a link to nothing",
    )


@pytest.mark.parametrize(
    "links", [{"me.html": "me.html"}, {"a.html": "b.html", "b.html": "a.html"}]
)
def test_a_link_that_leads_back_to_itself_is_skipped_with_a_warning(
    tmp_path: Path, links: dict[str, str]
) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    for name, target in links.items():
        (root / name).symlink_to(target)

    site = SiteFiles.scan(root)

    assert paths(site) == ["index.html"]
    assert site.warnings == tuple(
        f"{name} was not deployed: it is a link that leads back to itself" for name in sorted(links)
    )


def test_a_build_dir_that_is_itself_a_link_is_scanned_at_its_target(tmp_path: Path) -> None:
    real = make_files(tmp_path / "build" / "out", {"index.html": "x"})
    (tmp_path / "dist").symlink_to(real, target_is_directory=True)

    site = SiteFiles.scan(tmp_path / "dist")

    assert site.root == real.resolve()
    assert paths(site) == ["index.html"]


def test_an_ignored_link_pointing_outside_is_skipped_not_refused(tmp_path: Path) -> None:
    make_files(tmp_path / "repo-git", {"HEAD": "ref"})
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / ".git").symlink_to(tmp_path / "repo-git", target_is_directory=True)

    assert paths(SiteFiles.scan(root)) == ["index.html"]


def test_a_directory_link_that_loops_back_to_an_ancestor_is_refused(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", "sub/a.txt": "y"})
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


def test_a_named_pipe_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    os.mkfifo(root / "events")

    site = SiteFiles.scan(root)

    assert paths(site) == ["index.html"]
    assert site.warnings == ("events was not deployed: it is not a regular file",)


# --------------------------------------------------------------------------- never deployed


@pytest.mark.parametrize(
    "secret",
    ["credentials.enc", "backup/credentials.enc", "keys/0123456789abcdef.key", "tls/SERVER.KEY"],
)
def test_a_secrets_store_or_key_file_is_never_listed_whatever_the_ignore_rule(
    tmp_path: Path, secret: str
) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", secret: "secret"})

    site = SiteFiles.scan(root, ignore=lambda relative: False)

    assert paths(site) == ["index.html"]
    assert site.warnings == (f"{secret} was not deployed: secrets and keys never are",)


def test_an_excluded_directory_is_left_out_wherever_it_is_under_the_build_dir(
    tmp_path: Path,
) -> None:
    project = make_files(
        tmp_path / "project",
        {
            "index.html": "x",
            ".devops/deployments/dep_1_a.json": "{}",
            "site/.devops/config.json": "{}",
            "www/production/releases/dep_1_a/index.html": "x",
        },
    )

    site = SiteFiles.scan(project, exclude=[project / ".devops", project / "www" / "production"])

    assert paths(site) == ["index.html", "site/.devops/config.json"]


def test_a_link_into_an_excluded_directory_is_left_out(tmp_path: Path) -> None:
    project = make_files(tmp_path / "project", {"index.html": "x", ".devops/config.json": "{}"})
    (project / "state").symlink_to(".devops", target_is_directory=True)
    (project / "config.json").symlink_to(".devops/config.json")

    site = SiteFiles.scan(project, exclude=[project / ".devops"])

    assert paths(site) == ["index.html"]


def test_a_build_dir_inside_an_excluded_directory_is_refused(tmp_path: Path) -> None:
    state = make_files(tmp_path / "project" / ".devops", {"local/production/current/i.html": "x"})

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(state / "local" / "production" / "current", exclude=[state])

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert "where devops-tasks keeps its own files" in caught.value.message


# --------------------------------------------------------------------------- unreadable

_SCAN = """
import json, sys
from pathlib import Path
from devops_tasks.errors import DevopsError
from devops_tasks.files import SiteFiles
try:
    site = SiteFiles.scan(Path(sys.argv[1]))
except DevopsError as error:
    print(json.dumps(error.to_dict()))
else:
    print(json.dumps({"files": [f.path for f in site]}))
"""


def scan_bound_by_mode_bits(root: Path) -> dict[str, Any]:
    """``SiteFiles.scan(root)`` in a process that cannot read past mode bits, even as root."""
    done = subprocess.run(
        without_privileges([sys.executable, "-c", _SCAN, str(root)]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_an_unreadable_directory_is_refused_by_name(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", "private/page.html": "x"})
    (root / "private").chmod(0)

    refused = scan_bound_by_mode_bits(root)

    assert refused["code"] == "VALIDATION_FAILED"
    assert refused["error"].endswith("cannot be read: private/")
    assert "readable" in refused["fix"]


def test_an_unreadable_file_is_refused_by_name(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", "css/site.css": "x"})
    (root / "css" / "site.css").chmod(0)

    refused = scan_bound_by_mode_bits(root)

    assert refused["code"] == "VALIDATION_FAILED"
    assert refused["error"].endswith("cannot be read: css/site.css")


def test_every_unreadable_path_is_named_in_one_refusal(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "dist",
        {"index.html": "x", "a/page.html": "x", "b/c/page.html": "x", "d.html": "x"},
    )
    for locked in ("a", "b/c", "d.html"):
        (root / locked).chmod(0)

    refused = scan_bound_by_mode_bits(root)

    assert "3 path(s)" in refused["error"]
    assert refused["error"].endswith("cannot be read: a/, b/c/, d.html")


def test_a_directory_that_can_be_listed_but_not_entered_is_refused(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x", "half/a.html": "x", "half/sub/b": ""})
    (root / "half").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)

    refused = scan_bound_by_mode_bits(root)

    assert refused["error"].endswith("cannot be read: half/a.html, half/sub/")


def test_a_refusal_names_the_first_fifty_unreadable_paths_and_counts_them_all(
    tmp_path: Path,
) -> None:
    root = make_files(tmp_path / "dist", {f"page{n:02}.html": "x" for n in range(60)})
    for page in root.iterdir():
        page.chmod(0)

    refused = scan_bound_by_mode_bits(root)

    assert refused["error"].startswith("60 path(s)")
    assert "page49.html (and 10 more)" in refused["error"]
    assert "page50.html" not in refused["error"]


def test_an_unreadable_build_dir_is_refused(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    root.chmod(0)

    refused = scan_bound_by_mode_bits(root)

    assert refused["error"].endswith("cannot be read: ./")


def test_the_same_site_scans_whole_in_a_process_bound_by_mode_bits(tmp_path: Path) -> None:
    # the control for the tests above: only the locked paths make the difference
    root = make_files(tmp_path / "dist", {"index.html": "x", "private/page.html": "x"})

    assert scan_bound_by_mode_bits(root) == {"files": ["index.html", "private/page.html"]}


# --------------------------------------------------------------------------- nothing to deploy


def test_scan_of_a_missing_directory_fails_validation_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(tmp_path / "dist")

    error = caught.value
    assert error.code is ErrorCode.VALIDATION_FAILED
    assert "does not exist" in error.message
    assert "build" in error.fix.lower()


def test_scan_of_a_file_instead_of_a_directory_fails_validation(tmp_path: Path) -> None:
    (tmp_path / "dist").write_text("not a dir", encoding="utf-8")

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(tmp_path / "dist")

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


def test_scan_of_an_empty_directory_fails_validation_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "dist" / "empty-subdir").mkdir(parents=True)

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(tmp_path / "dist")

    error = caught.value
    assert error.code is ErrorCode.VALIDATION_FAILED
    assert "no files to deploy" in error.message
    assert "build" in error.fix.lower()


def test_scan_of_a_directory_holding_only_ignored_files_fails_validation(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {".DS_Store": "x", ".git/HEAD": "ref"})

    with pytest.raises(DevopsError) as caught:
        SiteFiles.scan(root)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


# --------------------------------------------------------------------------- SiteFile


def site_file(tmp_path: Path, name: str, content: bytes) -> SiteFile:
    source = tmp_path / name
    source.write_bytes(content)
    return SiteFile(name, source, len(content))


def test_digest_defaults_to_sha256_of_the_content(tmp_path: Path) -> None:
    content = b"<h1>hello</h1>\n"

    digest = site_file(tmp_path, "index.html", content).digest()

    assert digest == hashlib.sha256(content).hexdigest()


def test_digest_with_sha1_matches_hashlib(tmp_path: Path) -> None:
    content = b"body { margin: 0 }\n"

    assert site_file(tmp_path, "a.css", content).digest("sha1") == hashlib.sha1(content).hexdigest()


def test_digest_of_a_file_larger_than_one_read_chunk_covers_all_of_it(tmp_path: Path) -> None:
    content = os.urandom(1024) * (2 * 1024 + 512)  # 2.5 MiB: spans three 1 MiB chunks

    digest = site_file(tmp_path, "big.bin", content).digest()

    assert digest == hashlib.sha256(content).hexdigest()


def test_digest_of_an_empty_file_is_the_empty_digest(tmp_path: Path) -> None:
    assert site_file(tmp_path, "empty", b"").digest("md5") == hashlib.md5(b"").hexdigest()


def test_digest_with_an_unknown_algorithm_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        site_file(tmp_path, "a.txt", b"x").digest("no-such-hash")


@given(st.binary(max_size=2048), st.sampled_from(["sha1", "sha256", "md5"]))
@hsettings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_digest_matches_hashlib_for_any_content(
    tmp_path: Path,
    content: bytes,
    algorithm: str,
) -> None:
    expected = hashlib.new(algorithm, content).hexdigest()

    assert site_file(tmp_path, "prop.bin", content).digest(algorithm) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html"),
        ("css/site.css", "text/css"),
        ("img/logo.png", "image/png"),
        ("data/feed.json", "application/json"),
        ("download.bin.unknownext", "application/octet-stream"),
        ("LICENSE", "application/octet-stream"),
    ],
)
def test_content_type_is_guessed_from_the_name_with_a_binary_fallback(
    path: str,
    expected: str,
) -> None:
    assert SiteFile(path, Path("/unused"), 0).content_type == expected


def test_a_link_back_to_a_plain_ancestor_directory_is_a_loop(tmp_path: Path) -> None:
    (tmp_path / "site" / "a" / "b").mkdir(parents=True)
    (tmp_path / "site" / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "site" / "a" / "b" / "up").symlink_to("..")
    with pytest.raises(DevopsError) as raised:
        SiteFiles.scan(tmp_path / "site")
    assert raised.value.code is ErrorCode.VALIDATION_FAILED and "loop" in raised.value.message


def test_a_tree_deeper_than_the_recursion_limit_is_walked(tmp_path: Path) -> None:
    levels = [tmp_path / "dist"]
    for _ in range(sys.getrecursionlimit() + 100):  # os.makedirs would recurse as deep
        levels.append(levels[-1] / "d")
    for level in levels:
        level.mkdir()
    (levels[-1] / "f.txt").write_text("x")
    try:
        site = SiteFiles.scan(levels[0])

        assert [f.path for f in site] == [f"{levels[-1].relative_to(levels[0])}/f.txt"]
    finally:  # shutil.rmtree, as pytest cleans up with, would recurse as deep too
        (levels[-1] / "f.txt").unlink()
        for level in reversed(levels):
            level.rmdir()


def test_content_is_the_whole_file(tmp_path: Path) -> None:
    content = os.urandom(3000)

    assert site_file(tmp_path, "page.html", content).content() == content


@pytest.mark.parametrize("now", [b"grown " * 500_000, b"short", b""])
def test_content_of_a_file_changed_since_the_scan_is_all_of_it_as_it_is_now(
    tmp_path: Path, now: bytes
) -> None:
    scanned = site_file(tmp_path, "page.html", b"<p>as the scan saw it</p>\n")
    (tmp_path / "page.html").write_bytes(now)

    assert scanned.content() == now
