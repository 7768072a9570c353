"""The sync engine: headers, manifests, plans, drift and restores (stores on a real moto)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFiles
from devops_tasks.objectstore import Headers
from devops_tasks.output import NullProgress
from devops_tasks.platforms.aws import S3Store
from devops_tasks.platforms.aws_signed import SignedS3
from devops_tasks.platforms.bucket import cdn_paths
from devops_tasks.sync import (
    IMMUTABLE,
    SHOWN_PATHS,
    BucketLock,
    Entry,
    HeaderRules,
    Manifest,
    Plan,
    Sync,
    Write,
    _name,
    _suffix,
    content_type,
    drift,
    fingerprinted,
    is_entry,
)

SHA_A = "a" * 64
SHA_B = "b" * 64

# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("site.webmanifest", "application/manifest+json; charset=utf-8"),
        ("app.wasm", "application/wasm"),
        ("photo.avif", "image/avif"),
        ("module.mjs", "text/javascript; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("feed.xml", "application/xml; charset=utf-8"),
        ("font.woff2", "font/woff2"),
        ("LOGO.PNG", "image/png"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_every_file_gets_its_content_type_with_a_charset_on_text(path, expected):
    assert content_type(path) == expected


@pytest.mark.parametrize(
    ("name", "hashed"),
    [
        ("app.3f2a9c1b.js", True),
        ("index-BkU2x9a1.js", True),
        ("main.min.8e1d3f6f5c2a9b7e4d0c1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c.css", True),
        ("my-component.js", False),
        ("chapter-2024.js", False),
        ("logo.png", False),
    ],
)
def test_a_content_hash_in_the_name_marks_a_fingerprinted_asset(name, hashed):
    assert fingerprinted(f"assets/{name}") is hashed


_SEGMENT = st.text(alphabet="aB.-", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@given(st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join))
def test_a_files_suffix_and_entry_kind_are_those_pathlib_finds(path):
    from pathlib import PurePosixPath

    pure = PurePosixPath(path)
    assert _suffix(_name(path)) == pure.suffix.lower()
    assert is_entry(path) == (pure.suffix.lower() in (".html", ".xml") or pure.name == "sw.js")


def test_cache_control_defaults_immutable_for_fingerprinted_assets_no_cache_for_the_rest():
    rules = HeaderRules()
    assert rules.headers("js/app.3f2a9c1b.js").cache_control == IMMUTABLE
    assert rules.headers("index.html").cache_control == "no-cache"
    assert rules.headers("page.3f2a9c1b.html").cache_control == "no-cache"  # pages never
    assert rules.headers("img/logo.png").cache_control == "no-cache"


def test_the_first_matching_cache_control_rule_wins_and_compress_globs_gzip():
    rules = HeaderRules.from_settings(
        [{"glob": "img/*", "value": "max-age=60"}, {"glob": "*", "value": "max-age=1"}],
        ["*.html"],
    )
    assert rules.headers("img/a/b.png") == Headers("image/png", "max-age=60", None)
    assert rules.headers("index.html") == Headers("text/html; charset=utf-8", "max-age=1", "gzip")


def test_an_index_page_is_invalidated_as_itself_its_folder_and_the_folder_without_slash():
    assert cdn_paths(["index.html", "a/b/index.html", "a/x.css"]) == [
        "/index.html",
        "/",
        "/a/b/index.html",
        "/a/b/",
        "/a/b",
        "/a/x.css",
    ]


# -- manifests -------------------------------------------------------------------------------

entries = st.builds(
    Entry,
    sha256=st.sampled_from([SHA_A, SHA_B]),
    size=st.integers(0, 1 << 40),
    headers=st.builds(
        Headers,
        st.sampled_from(["text/html; charset=utf-8", "image/png"]),
        st.one_of(st.none(), st.sampled_from(["no-cache", IMMUTABLE])),
        st.one_of(st.none(), st.just("gzip")),
    ),
    stored_sha256=st.sampled_from([SHA_A, SHA_B]),
    stored_size=st.integers(0, 1 << 40),
    tag=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
)


@given(st.dictionaries(st.text(min_size=1, max_size=30), entries, max_size=8))
def test_a_manifest_reads_back_as_it_was_written(files):
    manifest = Manifest("rel_1_ab", files, {"version": "v1"})
    again = Manifest.parse(manifest.to_bytes(), "m")
    assert (again.release, again.files, again.info) == ("rel_1_ab", files, {"version": "v1"})


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"format": 2}', b'{"format": 1, "release": "r", "files": {"a": {}}}'],
)
def test_a_manifest_that_is_not_one_is_refused_naming_the_object(raw):
    with pytest.raises(DevopsError) as refused:
        Manifest.parse(raw, ".devops/manifest.json")
    assert refused.value.code is ErrorCode.DEPLOY_FAILED
    assert ".devops/manifest.json" in refused.value.message


def test_an_entry_is_intact_only_while_size_and_tag_match_what_it_wrote():
    entry = Entry(SHA_A, 3, Headers("text/plain"), SHA_A, 3, "etag-1")
    from devops_tasks.objectstore import StoredObject

    assert entry.intact(StoredObject("k", 3, "etag-1"))
    assert not entry.intact(StoredObject("k", 3, "etag-2"))
    assert not entry.intact(StoredObject("k", 4, "etag-1"))
    assert not entry.intact(None)
    assert entry.intact(StoredObject("k", 3, None))  # the store cannot say: size decides


def test_a_plan_names_at_most_twenty_paths_in_all_but_counts_them_all():
    headers = Headers("text/plain")
    writes = [
        Write(f"f{n:03}", Entry(SHA_A, 1, headers, SHA_A, 1), "new") for n in range(SHOWN_PATHS + 5)
    ]
    summary = Plan(None, writes, [], {}, {"changed": [], "added": [], "missing": []}).summary()
    assert summary["added"]["count"] == SHOWN_PATHS + 5
    assert summary["added"]["bytes"] == SHOWN_PATHS + 5
    assert len(summary["added"]["paths"]) == SHOWN_PATHS


# -- the engine on a real store -----------------------------------------------------------------


@pytest.fixture(params=["boto3", "signed"])
def store(aws_env, request):  # type: ignore[no-untyped-def]
    """The bucket through boto3 alone, and through the lean signed transport first."""
    client = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    client.create_bucket(Bucket="engine-bucket")
    signed = None
    if request.param == "signed":
        signed = SignedS3("engine-bucket", "us-east-1", "testing", "testing", endpoint=aws_env)
    return S3Store(lambda: client, "engine-bucket", "", "us-east-1", signed)


def site(root: Path, files: dict[str, str]) -> SiteFiles:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return SiteFiles.scan(root)


def deploy(engine: Sync, release: str, files: SiteFiles) -> None:
    engine.deploy(release, files, {}, NullProgress())


def test_a_plan_says_why_each_file_goes(store, tmp_path):
    engine = Sync(store, HeaderRules())
    deploy(engine, "rel_1_aa", site(tmp_path, {"a.txt": "a", "b.txt": "b", "c.txt": "c"}))
    store.put("b.txt", io.BytesIO(b"B"), 1, Headers("text/plain"))  # a hand edit
    files = site(tmp_path, {"a.txt": "A2", "d.txt": "d"})
    engine = Sync(store, HeaderRules.from_settings([{"glob": "c.txt", "value": "max-age=5"}], []))
    plan = engine.plan(files)
    assert {w.path: w.reason for w in plan.writes} == {
        "a.txt": "changed",
        "b.txt": "drift",
        "c.txt": "headers",
        "d.txt": "new",
    }
    assert plan.deletes == [] and plan.drift["changed"] == ["b.txt"]


def test_drift_names_objects_changed_added_and_deleted_by_hand(store, tmp_path):
    engine = Sync(store, HeaderRules())
    deploy(engine, "rel_1_aa", site(tmp_path, {"a.txt": "a", "b.txt": "b"}))
    store.put("a.txt", io.BytesIO(b"x"), 1, Headers("text/plain"))
    store.put("new.txt", io.BytesIO(b"n"), 1, Headers("text/plain"))
    store.delete(["b.txt"])
    fresh = Sync(store, HeaderRules())
    assert drift(fresh.live(), fresh.listing()) == {
        "changed": ["a.txt"],
        "added": ["new.txt"],
        "missing": ["b.txt"],
    }


def test_a_release_whose_content_was_lost_by_hand_cannot_be_restored(store, tmp_path):
    engine = Sync(store, HeaderRules())
    deploy(engine, "rel_1_aa", site(tmp_path / "1", {"a.txt": "one"}))
    deploy(engine, "rel_2_bb", site(tmp_path / "2", {"a.txt": "two"}))
    fresh = Sync(store, HeaderRules())
    assert fresh.restorable("rel_1_aa")
    store.delete(key for key in [o.key for o in store.list(".devops/objects/")])
    fresh = Sync(store, HeaderRules())
    assert not fresh.restorable("rel_1_aa")
    with pytest.raises(DevopsError) as refused:
        fresh.restore("rel_1_aa")
    assert refused.value.code is ErrorCode.ROLLBACK_UNAVAILABLE and "a.txt" in refused.value.message


def test_a_rollback_moves_content_back_even_when_it_now_lives_at_another_path(store, tmp_path):
    engine = Sync(store, HeaderRules())
    deploy(engine, "rel_1_aa", site(tmp_path / "1", {"a.txt": "A", "b.txt": "B"}))
    deploy(engine, "rel_2_bb", site(tmp_path / "2", {"a.txt": "B", "b.txt": "A"}))
    Sync(store, HeaderRules()).restore("rel_1_aa")
    assert store.get("a.txt") == b"A" and store.get("b.txt") == b"B"
    assert json.loads(store.get(".devops/manifest.json") or b"")["release"] == "rel_1_aa"


def test_a_deploy_that_finds_the_manifest_switched_since_its_reads_plans_again(store, tmp_path):
    deploy(Sync(store, HeaderRules()), "rel_1_aa", site(tmp_path / "1", {"a.txt": "one"}))
    late = Sync(store, HeaderRules())
    files = site(tmp_path / "late", {"a.txt": "late"})
    assert late.plan(files).base.release == "rel_1_aa"  # read before the other deploy
    other = site(tmp_path / "2", {"a.txt": "2", "b.txt": "b"})
    deploy(Sync(store, HeaderRules()), "rel_2_bb", other)
    late.deploy("rel_3_cc", files, {}, NullProgress())
    manifest = json.loads(store.get(".devops/manifest.json") or b"")
    assert manifest["base"] == "rel_2_bb" and sorted(manifest["files"]) == ["a.txt"]
    assert store.get("b.txt") is None and store.get("a.txt") == b"late"


def test_holds_is_true_only_while_the_key_has_exactly_those_bytes(store):
    assert store.holds("m.json", None)
    store.put("m.json", io.BytesIO(b"one"), 3, Headers("application/json"))
    assert store.holds("m.json", b"one")
    assert not store.holds("m.json", b"two") and not store.holds("m.json", None)
    store.put("m.json", io.BytesIO(b"two"), 3, Headers("application/json"))
    assert not store.holds("m.json", b"one")
    store.delete(["m.json"])
    assert not store.holds("m.json", b"two")


def test_a_lock_kept_past_half_its_ttl_is_read_before_it_is_let_go(store):
    lock = BucketLock(store, "lock.json", "me", ttl=0.2, timeout=0)
    lock.acquire()
    time.sleep(0.15)  # past half the TTL: another deploy may have taken it over since
    store.put("lock.json", io.BytesIO(b'{"token": "theirs"}'), 19, Headers("application/json"))
    lock.release()
    assert store.get("lock.json") == b'{"token": "theirs"}'
    young = BucketLock(store, "lock.json", "me", ttl=60, timeout=0)
    store.delete(["lock.json"])
    young.acquire()
    young.release()
    assert store.get("lock.json") is None


def test_a_name_that_cannot_be_a_release_is_never_read(store):
    assert Sync(store, HeaderRules()).release("../manifest") is None


# -- the lean signed transport -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "query", "body", "headers"),
    [
        ("GET", "/a%20b/index.html", "", b"", {}),
        ("GET", "/", "list-type=2&prefix=site%2F", b"", {}),
        ("PUT", "/x.css", "", b"body{}", {"Content-Type": "text/css", "Cache-Control": "no-cache"}),
        ("PUT", "/y.css", "", b"", {"x-amz-copy-source": "/my-bucket/x.css"}),
        ("POST", "/", "delete=", b"<Delete/>", {"Content-MD5": "abc=="}),
    ],
)
def test_the_signed_transport_signs_as_botocore_does(
    monkeypatch, method, url, query, body, headers
):
    from datetime import datetime, timezone

    from botocore import auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    transport = SignedS3("my-bucket", "eu-west-1", "AKIDEXAMPLE", "secret/key", token="tok")
    ours = transport._sign(method, url, query, body, dict(headers), now=now)
    host = "https://my-bucket.s3.eu-west-1.amazonaws.com"
    request = AWSRequest(
        method=method, url=host + url + (f"?{query}" if query else ""), data=body, headers=headers
    )
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    credentials = Credentials("AKIDEXAMPLE", "secret/key", "tok")
    auth.S3SigV4Auth(credentials, "s3", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
