"""The aws target (S3 + CloudFront) against a real moto server, through a recording proxy."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from s3_proxy import S3Proxy

BUCKET = "site-bucket"


def write_site(root: Path, version: str = "v1") -> Path:
    """A small site: pages, a fingerprinted script, a stylesheet, an image, some JSON."""
    files = {
        "index.html": f"<h1>home {version}</h1>\n",
        "about/index.html": f"<h1>about {version}</h1>\n",
        "css/site.css": "body { margin: 0 }\n",
        "js/app.3f2a9c1b.js": "console.log(1)\n",
        "data.json": '{"a": 1}\n',
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    (root / "img").mkdir(exist_ok=True)
    (root / "img" / "logo.png").write_bytes(b"\x89PNG\r\n" + bytes(range(256)))
    return root


class Bucket:
    """The bucket as seen directly on moto (not through the proxy, so never recorded)."""

    def __init__(self, url: str) -> None:
        self.client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

    def listed(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def site(self) -> dict[str, tuple[bytes, str, str | None, str | None]]:
        """key -> (bytes, Content-Type, Cache-Control, Content-Encoding) of the site's objects."""
        result = {}
        for key in self.listed():
            if key.startswith(".devops/"):
                continue
            got = self.client.get_object(Bucket=BUCKET, Key=key)
            result[key] = (
                got["Body"].read(),
                got["ContentType"],
                got.get("CacheControl"),
                got.get("ContentEncoding"),
            )
        return result

    def body(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.body(".devops/manifest.json"))

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def bucket(aws_env: str, s3_proxy: S3Proxy, project, cli) -> Bucket:  # type: ignore[no-untyped-def]
    """A project deploying dist/ to a new bucket on moto through the proxy."""
    shutil.rmtree("dist")
    write_site(Path("dist"))
    configure(
        project,
        {"bucket": BUCKET, "endpoint_url": s3_proxy.url, "concurrency": 4},
        deployment={"lock_timeout": 0},
    )
    assert cli("infra.up", "--json").json["success"]
    s3_proxy.clear()
    return Bucket(aws_env)


def configure(project, aws: dict[str, Any], **more: Any) -> None:  # type: ignore[no-untyped-def]
    project.state_dir.mkdir(exist_ok=True)
    config = {"version": 1, "platform": "aws", "aws": aws, **more}
    project.config_path.write_text(json.dumps(config))


def deploy(cli, *args: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return cli("deploy", *args, "--json").json


def set_config(cli, key: str, value: Any) -> None:  # type: ignore[no-untyped-def]
    assert cli("config.set", key, json.dumps(value), "--json").json["success"]


def site_puts(proxy: S3Proxy) -> list[str]:
    """The site objects uploaded (not copied), in the order the requests came."""
    keys = [r.key(BUCKET) for r in proxy.requests if r.method == "PUT" and not r.copy_source]
    return [k for k in keys if k and not k.startswith(".devops/")]


def writes(proxy: S3Proxy) -> list[Any]:
    return [r for r in proxy.requests if r.method in ("PUT", "POST", "DELETE")]


# -- deploying ---------------------------------------------------------------------------------


def test_first_deploy_uploads_every_file_with_its_content_type_and_cache_control(bucket, cli):
    result = deploy(cli)
    assert result["success"] and result["platform"] == "aws"
    assert result["release"].startswith("rel_") and result["files_deployed"] == 6
    site = bucket.site()
    pages = ["index.html", "about/index.html"]
    assert sorted(site) == sorted(
        [*pages, "css/site.css", "js/app.3f2a9c1b.js", "data.json", "img/logo.png"]
    )
    assert site["index.html"][0] == b"<h1>home v1</h1>\n"
    assert site["index.html"][1:] == ("text/html; charset=utf-8", "no-cache", None)
    assert site["js/app.3f2a9c1b.js"][1:3] == (
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
    assert site["data.json"][1] == "application/json; charset=utf-8"
    assert site["img/logo.png"][1] == "image/png"
    assert bucket.manifest()["release"] == result["release"]
    assert f".devops/releases/{result['release']}.json" in bucket.listed()


def test_a_redeploy_after_touching_every_file_uploads_nothing_with_one_get_and_one_list(
    bucket, cli, s3_proxy
):
    first = deploy(cli)
    later = time.time() + 3600
    for path in Path("dist").rglob("*"):
        os.utime(path, (later, later))
    s3_proxy.clear()
    second = deploy(cli)
    assert second["success"] and second["release"] == first["release"]
    assert second["details"]["sync"]["noop"] and second["details"]["sync"]["uploaded"] == 0
    # the two are sent at once, while the build dir is scanned: in either order
    asked = sorted((r.method, r.path, "list-type=2" in r.query) for r in s3_proxy.requests)
    assert asked == [
        ("GET", f"/{BUCKET}", True),
        ("GET", f"/{BUCKET}/.devops/manifest.json", False),
    ]


def test_a_same_size_edit_with_the_old_mtime_restored_is_uploaded(bucket, cli, s3_proxy):
    deploy(cli)
    css = Path("dist/css/site.css")
    before = css.stat()
    css.write_text("body { margin: 1 }\n")
    os.utime(css, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert css.stat().st_size == before.st_size
    s3_proxy.clear()
    result = deploy(cli)
    assert site_puts(s3_proxy) == ["css/site.css"]
    assert bucket.body("css/site.css") == b"body { margin: 1 }\n"
    assert result["details"]["sync"]["changes"]["changed"]["paths"] == ["css/site.css"]


def test_a_one_file_change_lists_the_bucket_once_and_reads_the_history_once(bucket, cli, s3_proxy):
    deploy(cli)
    Path("dist/css/site.css").write_text("body { margin: 2 }\n")
    s3_proxy.clear()
    assert deploy(cli)["success"]
    listings = [r for r in s3_proxy.requests if r.method == "GET" and "list-type=2" in r.query]
    history = [r for r in s3_proxy.requests if r.key(BUCKET) == ".devops/history.json"]
    assert len(listings) == 1  # pruning goes by what that listing showed
    assert [r.method for r in history] == ["GET", "PUT"]


def test_a_one_file_change_makes_no_request_it_can_do_without(bucket, cli, s3_proxy):
    deploy(cli)
    Path("dist/css/site.css").write_text("body { margin: 2 }\n")
    s3_proxy.clear()
    assert deploy(cli)["success"]
    asked = [(r.method, r.key(BUCKET)) for r in s3_proxy.requests if r.key(BUCKET)]
    # under the lock the manifest is asked for again only if it changed (If-None-Match)
    manifest_reads = [s for r, s in s3_proxy.answers if r.key(BUCKET) == ".devops/manifest.json"]
    assert sorted(manifest_reads) == [200, 200, 304]  # the read ahead, the check, the switch
    # a lock released well within its TTL is deleted without being read back first
    assert [m for m, key in asked if key == ".devops/lock.json"] == ["PUT", "DELETE"]
    assert sum(1 for m, key in asked if m == "PUT" and key == ".devops/manifest.json") == 1


def test_a_release_copy_that_cannot_be_written_leaves_the_release_live_with_a_warning(
    bucket, cli, s3_proxy
):
    deploy(cli)
    write_site(Path("dist"), "v2")
    s3_proxy.fail("PUT", r"/\.devops/releases/", 403, "AccessDenied")
    result = deploy(cli)
    assert result["success"] and bucket.manifest()["release"] == result["release"]
    assert bucket.body("index.html") == b"<h1>home v2</h1>\n"
    (warning,) = result["details"]["sync"]["warnings"]
    assert f"release {result['release']} is live" in warning and "rollback" in warning
    assert f".devops/releases/{result['release']}.json" not in bucket.listed()


def test_a_cache_control_rule_change_updates_the_headers_without_force(bucket, cli, s3_proxy):
    deploy(cli)
    set_config(cli, "aws.cache_control", [{"glob": "css/*", "value": "public, max-age=60"}])
    s3_proxy.clear()
    result = deploy(cli)
    assert result["success"] and site_puts(s3_proxy) == []  # copied in place, not re-sent
    copies = [r.key(BUCKET) for r in s3_proxy.requests if r.copy_source]
    assert "css/site.css" in copies
    body, kind, cache, _ = bucket.site()["css/site.css"]
    assert (body, kind, cache) == (
        b"body { margin: 0 }\n",
        "text/css; charset=utf-8",
        "public, max-age=60",
    )
    assert result["details"]["sync"]["changes"]["headers"]["paths"] == ["css/site.css"]


def test_gzip_is_deterministic_and_a_rebuild_with_new_mtimes_sends_nothing(bucket, cli, tmp_path):
    set_config(cli, "aws.compress", ["*.html", "*.css"])
    deploy(cli)
    got = bucket.client.get_object(Bucket=BUCKET, Key="index.html")
    stored = got["Body"].read()
    assert got["ContentEncoding"] == "gzip"
    assert gzip.decompress(stored) == b"<h1>home v1</h1>\n"
    assert stored == gzip.compress(b"<h1>home v1</h1>\n", compresslevel=9, mtime=0)
    rebuilt = write_site(tmp_path / "rebuilt")  # the same site, written again later
    again = deploy(cli, "--dir", str(rebuilt))
    assert again["details"]["sync"]["noop"]


def test_files_the_build_no_longer_has_are_deleted(bucket, cli):
    deploy(cli)
    os.remove("dist/data.json")
    result = deploy(cli)
    assert result["details"]["sync"]["deleted"] == 1
    assert "data.json" not in bucket.site()
    assert "data.json" not in bucket.manifest()["files"]


def test_more_deletes_than_max_deletes_stop_the_deploy_until_forced(bucket, cli, s3_proxy):
    first = deploy(cli)
    set_config(cli, "aws.max_deletes", 1)
    os.remove("dist/data.json")
    os.remove("dist/img/logo.png")
    s3_proxy.clear()
    refused = deploy(cli)
    assert refused["code"] == "VALIDATION_FAILED" and "max_deletes" in refused["error"]
    assert "--force-deletes" in refused["fix"]
    assert writes(s3_proxy) == []
    assert bucket.manifest()["release"] == first["release"]
    assert "data.json" in bucket.site()
    forced = deploy(cli, "--force-deletes")
    assert forced["success"] and forced["details"]["sync"]["deleted"] == 2
    assert {"data.json", "img/logo.png"}.isdisjoint(bucket.site())


def test_assets_go_up_before_pages_then_the_manifest_then_the_deletes(bucket, cli, s3_proxy):
    deploy(cli)
    write_site(Path("dist"), "v2")
    Path("dist/css/site.css").write_text("body { margin: 2 }\n")
    Path("dist/js/app.3f2a9c1b.js").write_text("console.log(2)\n")
    Path("dist/img/logo.png").write_bytes(b"new image")
    os.remove("dist/data.json")
    s3_proxy.clear()
    deploy(cli)
    sequence = []
    for request in s3_proxy.requests:
        key = request.key(BUCKET) or ""
        if request.method == "PUT" and not key.startswith(".devops/"):
            sequence.append("page" if key.endswith(".html") else "asset")
        elif request.method == "PUT" and key.startswith(".devops/releases/"):
            sequence.append("release")
        elif request.method == "PUT" and key == ".devops/manifest.json":
            sequence.append("manifest")
        elif (request.method, request.query) == ("POST", "delete") or (
            request.method == "DELETE" and not key.startswith(".devops/")
        ):
            sequence.append("delete")
    assert sequence[:5] == ["asset"] * 3 + ["page"] * 2
    # the live manifest and its kept copy go at once, in either order; the deletes after both
    assert sorted(sequence[5:7]) == ["manifest", "release"] and sequence[7:] == ["delete"]


def test_parallel_uploads_back_off_on_slowdown_and_finish(bucket, cli, s3_proxy):
    s3_proxy.fail("PUT", r"/css/site\.css$", 503, "SlowDown", times=2)
    result = deploy(cli)
    assert result["success"]
    assert site_puts(s3_proxy).count("css/site.css") == 3
    assert bucket.body("css/site.css") == b"body { margin: 0 }\n"


# -- failures, locks -----------------------------------------------------------------------------


def test_a_failing_upload_mid_deploy_leaves_the_old_release_live_and_whole(bucket, cli, s3_proxy):
    first = deploy(cli)
    before = bucket.site()
    write_site(Path("dist"), "v2")
    Path("dist/css/site.css").write_text("body { margin: 3 }\n")
    Path("dist/js/app.3f2a9c1b.js").write_text("console.log(3)\n")
    Path("dist/img/logo.png").write_bytes(b"new image")
    s3_proxy.clear()
    s3_proxy.fail("PUT", r"/css/site\.css$", 403, "AccessDenied")
    failed = deploy(cli)
    assert failed["code"] == "CREDENTIALS_INVALID" and "css/site.css" in failed["error"]
    assert bucket.manifest()["release"] == first["release"]
    assert bucket.site() == before  # what went up before the failure was put back
    assert not [k for k in site_puts(s3_proxy) if k.endswith(".html")]  # pages never went
    assert cli("status", "--json").json["live_release"] == first["release"]


def test_a_path_of_more_key_bytes_than_s3_takes_is_refused_before_anything_is_written(
    bucket, cli, s3_proxy
):
    folder = Path("dist", *["\U0001f600" * 60] * 5)  # 300 characters, 1,200 bytes of UTF-8
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    refused = deploy(cli)
    assert (
        refused["code"] == "VALIDATION_FAILED" and "longer than an object key" in refused["error"]
    )
    assert writes(s3_proxy) == []


def test_a_held_lock_stops_the_deploy_and_names_its_holder(bucket, cli, s3_proxy):
    deploy(cli)
    write_site(Path("dist"), "v2")
    holder = {"holder": "ana@elsewhere (production)", "expires_epoch": time.time() + 600}
    bucket.put(".devops/lock.json", json.dumps(holder).encode())
    s3_proxy.clear()
    refused = deploy(cli)
    assert refused["code"] == "LOCKED" and refused["holder"] == "ana@elsewhere (production)"
    assert site_puts(s3_proxy) == []
    assert bucket.body("index.html") == b"<h1>home v1</h1>\n"
    assert json.loads(bucket.body(".devops/lock.json"))["holder"] == holder["holder"]


def test_a_lock_past_its_ttl_is_taken_over_and_released(bucket, cli):
    bucket.put(".devops/lock.json", json.dumps({"holder": "gone", "expires_epoch": 1}).encode())
    assert deploy(cli)["success"]
    assert ".devops/lock.json" not in bucket.listed()


def test_the_lock_is_a_conditional_create_that_moto_honours(bucket):
    # moto enforces If-None-Match: * on PutObject, so two deploys cannot both take the lock
    bucket.put(".devops/lock.json", b"{}")
    with pytest.raises(bucket.client.exceptions.ClientError) as taken:
        bucket.client.put_object(Bucket=BUCKET, Key=".devops/lock.json", Body=b"x", IfNoneMatch="*")
    assert taken.value.response["Error"]["Code"] == "PreconditionFailed"


def test_a_failed_health_check_puts_the_previous_release_back(bucket, cli, aws_env):
    first = deploy(cli)
    assert cli("infra.up", "--public", "--json").json["infra"]["public_read"]
    check = {"enabled": True, "url": f"{aws_env}/{BUCKET}/index.html", "retries": 0}
    set_config(cli, "deployment.health_check", {**check, "expect_text": "home v2"})
    write_site(Path("dist"), "v2")
    assert deploy(cli)["success"]  # the live page says v2: healthy
    set_config(cli, "deployment.health_check", {**check, "expect_text": "never there"})
    write_site(Path("dist"), "v3")
    failed = deploy(cli)
    assert failed["code"] == "HEALTH_CHECK_FAILED" and failed["deployment_status"] == "rolled_back"
    assert bucket.body("index.html") == b"<h1>home v2</h1>\n"
    assert bucket.manifest()["release"] != first["release"]
    assert ".devops/lock.json" not in bucket.listed()  # held through the check, then let go


# -- rollback --------------------------------------------------------------------------------


def test_rollback_with_the_build_dir_deleted_is_byte_identical_to_the_first_deploy(
    bucket, cli, s3_proxy
):
    first = deploy(cli)
    before = bucket.site()
    Path("dist/about/index.html").write_text("<h1>about v2</h1>\n")
    s3_proxy.clear()
    second = deploy(cli)
    assert site_puts(s3_proxy) == ["about/index.html"]
    assert second["details"]["sync"]["uploaded"] == 1
    shutil.rmtree("dist")
    s3_proxy.clear()
    rolled = cli("rollback", "--json").json
    assert rolled["success"] and rolled["release"] == first["release"]
    assert site_puts(s3_proxy) == []  # server-side copies only
    assert bucket.site() == before
    assert bucket.manifest()["release"] == first["release"]


def test_rollback_from_another_checkout_by_release_id(bucket, cli, project, tmp_path, monkeypatch):
    first = deploy(cli)
    before = bucket.site()
    write_site(Path("dist"), "v2")
    os.remove("dist/data.json")
    deploy(cli)
    other = tmp_path / "other-checkout"
    (other / ".devops").mkdir(parents=True)
    shutil.copy(project.config_path, other / ".devops" / "config.json")
    monkeypatch.chdir(other)
    remote = cli("history", "--remote", "--json").json["remote"]
    assert [item["release"] for item in remote][1] == first["release"]
    rolled = cli("rollback", "--to", first["release"], "--json").json
    assert rolled["success"]
    assert bucket.site() == before


def test_rollback_to_a_pruned_release_is_unavailable(bucket, cli):
    set_config(cli, "deployment.keep_releases", 1)
    first = deploy(cli)
    for version in ("v2", "v3", "v4"):
        write_site(Path("dist"), version)
        deploy(cli)
    refused = cli("rollback", "--to", first["release"], "--json").json
    assert refused["code"] == "ROLLBACK_UNAVAILABLE"


def test_pruning_keeps_only_what_kept_releases_need(bucket, cli):
    set_config(cli, "deployment.keep_releases", 2)
    releases = []
    for version in ("v1", "v2", "v3", "v4"):
        write_site(Path("dist"), version)
        releases.append(deploy(cli)["release"])
    keys = bucket.listed()
    kept = sorted(k for k in keys if k.startswith(".devops/releases/"))
    assert kept == [f".devops/releases/{r}.json" for r in releases[2:]]
    objects = {k.rsplit("/", 1)[1] for k in keys if k.startswith(".devops/objects/")}
    v3 = {
        hashlib.sha256(f"<h1>{page} v3</h1>\n".encode()).hexdigest() for page in ("home", "about")
    }
    assert objects == v3  # v3's pages, kept when v4 replaced them; v1's and v2's are gone
    assert cli("rollback", "--json").json["release"] == releases[2]


def test_pruning_reads_each_other_kept_release_once_and_never_the_live_one(bucket, cli, s3_proxy):
    set_config(cli, "deployment.keep_releases", 3)
    releases = []
    for version in ("v1", "v2", "v3"):
        write_site(Path("dist"), version)
        releases.append(deploy(cli)["release"])
    write_site(Path("dist"), "v4")
    s3_proxy.clear()
    live = deploy(cli)["release"]
    read = sorted(
        (r.key(BUCKET) or "")
        for r in s3_proxy.requests
        if r.method == "GET" and (r.key(BUCKET) or "").startswith(".devops/releases/")
    )
    assert read == [f".devops/releases/{r}.json" for r in releases[1:]]
    assert f".devops/releases/{live}.json" in bucket.listed()


# -- dry run, status, history, logs ------------------------------------------------------------


def test_dry_run_lists_what_would_change_and_writes_nothing(bucket, cli, s3_proxy, project):
    deploy(cli)
    records = sorted(p.name for p in (project.state_dir / "deployments").iterdir())
    Path("dist/about/index.html").write_text("<h1>about v2</h1>\n")
    Path("dist/new.txt").write_text("new\n")
    os.remove("dist/data.json")
    s3_proxy.clear()
    plan = deploy(cli, "--dry-run")
    assert plan["dry_run"] and plan["success"]
    assert plan["added"] == {"count": 1, "bytes": 4, "paths": ["new.txt"]}
    assert plan["changed"]["paths"] == ["about/index.html"]
    assert plan["deleted"] == {"count": 1, "bytes": 9, "paths": ["data.json"]}
    assert writes(s3_proxy) == []
    assert sorted(p.name for p in (project.state_dir / "deployments").iterdir()) == records


def test_status_shows_the_live_manifest_and_drift_made_by_hand(bucket, cli):
    first = deploy(cli)
    bucket.put("css/site.css", b"body { margin: 9 }\n")  # same size, other bytes
    bucket.put("extra.html", b"by hand")
    bucket.client.delete_object(Bucket=BUCKET, Key="data.json")
    status = cli("status", "--json").json
    target = status["target"]
    assert status["live_release"] == first["release"] and target["files"] == 6
    drift = status["drift"]
    assert [drift[k]["paths"] for k in ("changed", "added", "deleted")] == [
        ["css/site.css"],
        ["extra.html"],
        ["data.json"],
    ]
    repaired = deploy(cli)["details"]["sync"]
    assert repaired["uploaded"] == 2 and repaired["deleted"] == 1
    assert cli("status", "--json").json["drift"]["detected"] is False


def test_history_remote_and_logs_come_from_the_bucket(bucket, cli):
    first = deploy(cli)
    write_site(Path("dist"), "v2")
    second = deploy(cli)
    cli("rollback", "--json")
    remote = cli("history", "--remote", "--json").json["remote"]
    assert [(i["action"], i["release"]) for i in remote] == [
        ("rollback", first["release"]),
        ("deploy", second["release"]),
        ("deploy", first["release"]),
    ]
    assert remote[1]["status"] == "rolled_back" and remote[1]["deployment"] == second["id"]
    logs = cli("logs", "--id", second["id"], "--json").json
    assert logs["remote"]["events"][0]["release"] == second["release"]


# -- CloudFront -------------------------------------------------------------------------------


@pytest.fixture
def distribution(bucket, aws_env, cli) -> str:  # type: ignore[no-untyped-def]
    cloudfront = boto3.client("cloudfront", endpoint_url=aws_env, region_name="us-east-1")
    origin = {"Id": "s3", "DomainName": f"{BUCKET}.s3.amazonaws.com"}
    created = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "test",
            "Origins": {
                "Quantity": 1,
                "Items": [{**origin, "S3OriginConfig": {"OriginAccessIdentity": ""}}],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "s3",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            },
            "Comment": "",
            "Enabled": True,
        }
    )
    distribution_id = str(created["Distribution"]["Id"])
    set_config(cli, "aws.cloudfront_distribution_id", distribution_id)
    return distribution_id


def invalidated_paths(aws_env: str, distribution: str) -> list[list[str]]:
    cloudfront = boto3.client("cloudfront", endpoint_url=aws_env, region_name="us-east-1")
    items = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    return [
        cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])["Invalidation"][
            "InvalidationBatch"
        ]["Paths"]["Items"]
        for item in items.get("Items", [])
    ]


def test_cloudfront_invalidates_exactly_the_changed_paths_and_their_folders(
    distribution, cli, aws_env
):
    deploy(cli)
    Path("dist/about/index.html").write_text("<h1>about v2</h1>\n")
    Path("dist/css/site.css").write_text("body { margin: 5 }\n")
    Path("dist/a page.html").write_text("spaces\n")
    result = deploy(cli)
    expected = ["/a%20page.html", "/about/index.html", "/about/", "/about", "/css/site.css"]
    invalidation = result["details"]["sync"]["invalidation"]
    assert invalidation["paths"] == expected and not invalidation["wildcard"]
    assert expected in invalidated_paths(aws_env, distribution)


def test_above_invalidation_max_paths_everything_is_invalidated_with_count_and_cost(
    distribution, cli, aws_env
):
    set_config(cli, "aws.invalidation_max_paths", 3)
    deploy(cli)  # the first deploy changes all 6 files: 8 paths with the two index folders
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    invalidation = result["details"]["sync"]["invalidation"]
    assert invalidation["paths"] == ["/*"] and invalidation["wildcard"]
    assert invalidation["path_count"] == 5  # /index.html, /, /about/index.html, /about/, /about
    assert invalidation["estimated_cost_usd"] == 0.005
    assert invalidation["listed_cost_usd"] == 0.025
    assert ["/*"] in invalidated_paths(aws_env, distribution)


def test_wait_polls_the_invalidation_until_it_is_completed(distribution, cli):
    result = deploy(cli, "--wait")
    invalidation = result["details"]["sync"]["invalidation"]
    assert invalidation["waited"] and invalidation["status"].lower() == "completed"
    status = cli("status", "--json").json["target"]["cdn"]
    assert status["distribution"] == distribution and status["invalidations"]
    logs = cli("logs", "--json").json["remote"]
    assert logs["invalidations"][0]["id"] == invalidation["id"]


# -- infra -----------------------------------------------------------------------------------


def test_infra_up_twice_creates_the_bucket_once_and_configures_the_website(bucket, cli):
    again = cli("infra.up", "--json").json
    assert again["success"] and again["infra"]["created"] is False
    website = bucket.client.get_bucket_website(Bucket=BUCKET)
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "404.html"}
    assert again["infra"]["public_read"] is False
    with pytest.raises(bucket.client.exceptions.ClientError):
        bucket.client.get_bucket_policy(Bucket=BUCKET)  # public read only when asked


def test_infra_plan_says_what_up_would_do_without_doing_it(aws_env, s3_proxy, project, cli):
    configure(project, {"bucket": "planned-bucket", "endpoint_url": s3_proxy.url})
    plan = cli("infra.plan", "--public", "--json").json
    where = "s3://planned-bucket/"
    assert plan["actions"][0] == {"action": "create", "what": "bucket", "where": where}
    assert {"action": "configure", "what": "public read", "where": where} in plan["actions"]
    assert plan["changes"] == 1 and plan["problems"] == 0
    buckets = Bucket(aws_env).client.list_buckets()["Buckets"]
    assert "planned-bucket" not in [b["Name"] for b in buckets]
    assert cli("infra.up", "--json").json["infra"]["created"]
    assert cli("infra.plan", "--json").json["actions"][0]["action"] == "none"


def test_infra_down_needs_yes_then_deletes_the_bucket_it_created(bucket, cli):
    deploy(cli)
    refused = cli("infra.down", "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--yes" in refused["fix"]
    assert bucket.listed()
    down = cli("infra.down", "--yes", "--json").json["infra"]
    assert down["deleted"] and down["created_by_devops"]
    names = [b["Name"] for b in bucket.client.list_buckets()["Buckets"]]
    assert BUCKET not in names


def test_infra_down_keeps_a_non_empty_bucket_it_did_not_create_unless_forced(
    aws_env, s3_proxy, project, cli
):
    theirs = Bucket(aws_env)
    theirs.client.create_bucket(Bucket=BUCKET)
    theirs.put("their-file.txt", b"keep me")
    configure(project, {"bucket": BUCKET, "endpoint_url": s3_proxy.url})
    refused = cli("infra.down", "--yes", "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--force" in refused["fix"]
    assert theirs.listed() == ["their-file.txt"]
    forced = cli("infra.down", "--yes", "--force", "--json").json
    assert forced["success"] and forced["infra"]["objects_deleted"] == 1


# -- settings --------------------------------------------------------------------------------


def test_a_deploy_without_a_bucket_names_the_setting_to_set(project, cli, aws_env):
    configure(project, {"region": "us-east-1"})
    refused = deploy(cli)
    assert refused["code"] == "VALIDATION_FAILED" and "aws.bucket is not set" in refused["error"]


def test_an_unknown_aws_setting_is_named_with_its_path(project, cli):
    configure(project, {"bucket": BUCKET, "cloudfront": "x"})
    refused = cli("config.validate", "--json").json
    assert refused["code"] == "CONFIG_INVALID"
    assert [p["path"] for p in refused["problems"]] == ["aws.cloudfront"]


def test_a_prefix_keeps_the_site_and_its_state_inside_it(bucket, cli, s3_proxy, project):
    set_config(cli, "aws.prefix", "site/v")
    bucket.put("elsewhere.txt", b"not ours")
    deploy(cli)
    keys = bucket.listed()
    assert "site/v/index.html" in keys and "site/v/.devops/manifest.json" in keys
    assert "elsewhere.txt" in keys  # outside the prefix: never deleted
