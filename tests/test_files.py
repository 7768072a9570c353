"""Specification of what a build directory deploys (devops_tasks.files).

A scan lists the regular files under the build directory in a stable order, with POSIX
relative paths and sizes, minus version-control metadata and OS litter. Links are followed
only while they stay inside the directory; one that leads outside is refused, never shipped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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


def test_a_dangling_link_inside_the_build_dir_is_skipped(tmp_path: Path) -> None:
    root = make_files(tmp_path / "dist", {"index.html": "x"})
    (root / "gone.html").symlink_to("was-here.html")

    assert paths(SiteFiles.scan(root)) == ["index.html"]


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
