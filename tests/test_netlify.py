"""Deploying to Netlify, against a fake API that follows Netlify's own spec."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import fake_netlify
import pytest
from helpers import write_site

from devops_tasks import http
from devops_tasks.platforms import netlify as netlify_module

FILES_PATH = r"/deploys/[^/]+/files/"


@pytest.fixture(autouse=True)
def quick_rate_limits(monkeypatch):
    """Honour the server's wait, but never less than 50 ms (not 1 s) in tests."""
    original = http.default_policy
    monkeypatch.setattr(
        http,
        "default_policy",
        lambda **kw: original(
            **{"rate_limit_floor": 0.05, "backoff_factor": 0.01, "backoff_jitter": 0.01, **kw}
        ),
    )


def deploy(cli, *args):
    return cli("deploy", *args, "--json").json


def require_text(cli, text):
    """Turn on a health check that wants ``text`` in the page, with no retries."""
    check = {"enabled": True, "expect_text": text, "retries": 0}
    cli("config.set", "deployment.health_check", json.dumps(check), "--json")


def puts(fake):
    return [r for r in fake.requests if r.method == "PUT" and "/files/" in r.path]


def test_first_deploy_uploads_every_file_and_goes_live(netlify, cli):
    result = deploy(cli)
    assert result["success"] and result["platform"] == "netlify"
    assert sorted(p for _, p, _ in netlify.uploads) == ["/css/site.css", "/index.html"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == result["release"]
    assert result["platform_deploy_id"] == result["release"]
    assert result["url"].startswith(netlify.base)


def test_an_unchanged_redeploy_uploads_nothing(netlify, cli):
    deploy(cli)
    before = len(netlify.uploads)
    second = deploy(cli)
    assert second["success"] and len(netlify.uploads) == before
    assert second["details"]["files_uploaded"] == 0


def test_one_changed_file_is_the_only_upload(netlify, cli):
    deploy(cli)
    before = len(netlify.uploads)
    write_site(Path("dist"), "v2")
    deploy(cli)
    assert [p for _, p, _ in netlify.uploads[before:]] == ["/index.html"]


def test_duplicate_files_are_uploaded_once_per_digest(netlify, cli):
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        Path("dist", name).parent.mkdir(parents=True, exist_ok=True)
        Path("dist", name).write_text("same bytes\n")
    deploy(cli)
    same = [p for _, p, _ in netlify.uploads if p.endswith(".txt")]
    assert len(same) == 1
    manifest = netlify.deploy_files(deploy(cli)["release"])
    assert {"/a.txt", "/b.txt", "/sub/c.txt"} <= set(manifest)


def test_netlify_ignore_rules_leave_out_dotfiles_but_well_known(netlify, cli):
    Path("dist/.env").write_text("SECRET=1")
    Path("dist/node_modules/x").mkdir(parents=True)
    Path("dist/node_modules/x/index.js").write_text("x")
    Path("dist/.well-known").mkdir()
    Path("dist/.well-known/security.txt").write_text("Contact: a@b.c")
    manifest = netlify.deploy_files(deploy(cli)["release"])
    assert "/.well-known/security.txt" in manifest
    assert not any(".env" in p or "node_modules" in p for p in manifest)


def test_a_429_storm_on_uploads_is_waited_out_without_extra_uploads(netlify, cli):
    netlify.inject("PUT", FILES_PATH, status=429, times=6, headers=netlify.rate_limit_headers(0))
    result = deploy(cli)
    assert result["success"]
    assert sorted(p for _, p, _ in netlify.uploads) == ["/css/site.css", "/index.html"]
    assert len(puts(netlify)) == 2 + 6


def test_a_429_on_creating_the_deploy_is_retried(netlify, cli):
    netlify.inject(
        "POST", r"/sites/[^/]+/deploys$", status=429, headers=netlify.rate_limit_headers(0)
    )
    assert deploy(cli)["success"]


def test_a_500_on_an_upload_is_retried(netlify, cli):
    netlify.inject("PUT", FILES_PATH, status=500, times=2)
    assert deploy(cli)["success"]
    assert len(netlify.uploads) == 2


def test_a_dropped_connection_during_an_upload_is_retried(netlify, cli):
    netlify.inject("PUT", FILES_PATH, drop=True)
    assert deploy(cli)["success"]
    assert len(netlify.uploads) == 2


def test_a_422_is_never_retried(netlify, cli):
    netlify.inject(
        "POST",
        r"/sites/[^/]+/deploys$",
        status=422,
        body={"code": 422, "message": "files is invalid"},
    )
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "files is invalid" in result["error"]
    creates = [r for r in netlify.requests if r.method == "POST" and r.path.endswith("/deploys")]
    assert len(creates) == 1


def test_persistent_server_errors_become_service_unavailable(netlify, cli, monkeypatch):
    original = http.default_policy
    monkeypatch.setattr(http, "default_policy", lambda **kw: original(**{"status": 2, **kw}))
    netlify.inject("GET", r"/sites/", status=503, times=10)
    netlify.inject("POST", r"/deploys$", status=503, times=10)
    assert deploy(cli)["code"] == "SERVICE_UNAVAILABLE"


def test_a_deploy_that_netlify_fails_reports_its_error_message(netlify, cli):
    deploy(cli)
    live = netlify.sites[netlify.site["id"]]["published_deploy"]["id"]
    netlify.fail_next_deploy = "Build script returned non-zero exit code: 2"
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "non-zero exit code" in result["error"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == live


def test_large_sites_are_created_async_and_polled_until_prepared(netlify, cli, monkeypatch):
    monkeypatch.setattr(netlify_module, "ASYNC_THRESHOLD", 1)
    assert deploy(cli)["success"]
    create = next(r for r in netlify.requests if r.method == "POST" and r.path.endswith("/deploys"))
    assert create.json["async"] is True


def test_the_create_request_carries_the_digest_map(netlify, cli):
    import hashlib

    deploy(cli)
    create = next(r for r in netlify.requests if r.method == "POST" and r.path.endswith("/deploys"))
    expected = hashlib.sha1(Path("dist/index.html").read_bytes()).hexdigest()
    assert create.json["files"]["/index.html"] == expected
    assert create.headers["authorization"] == f"Bearer {netlify.token}"
    upload = puts(netlify)[0]
    assert upload.headers["content-type"] == "application/octet-stream"


def test_blue_green_deploys_a_draft_checks_it_then_publishes(netlify, cli):
    cli("config.set", "deployment.strategy", "blue-green", "--json")
    require_text(cli, "v1")
    result = deploy(cli)
    assert result["success"]
    create = next(r for r in netlify.requests if r.method == "POST" and r.path.endswith("/deploys"))
    assert create.json["draft"] is True
    assert result["details"]["health_draft"]["healthy"] is True
    assert any(r.path.endswith("/restore") for r in netlify.requests)
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == result["release"]


def test_blue_green_with_a_failing_draft_leaves_production_untouched(netlify, cli):
    first = deploy(cli)
    cli("config.set", "deployment.strategy", "blue-green", "--json")
    require_text(cli, "v1")
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["code"] == "HEALTH_CHECK_FAILED" and "draft" in result["error"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == first["release"]
    latest = cli("history", "--limit", "1", "--json").json["deployments"][0]
    assert latest["status"] == "failed"
    assert "lacks 'v1'" in cli("logs", "--json").json["log"][-2]["message"]


def test_a_failing_check_after_publishing_restores_the_previous_deploy(netlify, cli):
    first = deploy(cli)
    require_text(cli, "v1")
    write_site(Path("dist"), "v2")
    assert deploy(cli)["code"] == "HEALTH_CHECK_FAILED"
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == first["release"]


def test_canary_is_refused_for_netlify(netlify, cli):
    cli("config.set", "deployment.strategy", "canary", "--json")
    result = deploy(cli)
    assert result["code"] == "VALIDATION_FAILED" and "blue-green" in result["fix"]
    assert netlify.requests == []


def test_rollback_publishes_the_previous_deploy(netlify, cli):
    first = deploy(cli)
    write_site(Path("dist"), "v2")
    deploy(cli)
    rolled = cli("rollback", "--json").json
    assert rolled["release"] == first["release"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == first["release"]
    assert cli("status", "--json").json["in_sync"] is True


def test_rollback_to_a_netlify_deploy_id(netlify, cli):
    first = deploy(cli)
    write_site(Path("dist"), "v2")
    deploy(cli)
    assert cli("rollback", "--to", first["release"], "--json").json["release"] == first["release"]


def test_rollback_to_a_deploy_made_outside_devops_tasks(netlify, cli):
    deploy(cli)
    outside = deploy(cli)["release"]
    write_site(Path("dist"), "v3")
    deploy(cli)
    Path(".devops/deployments").rename(".devops/deployments-moved")  # forget our records
    assert cli("rollback", "--to", outside, "--json").json["success"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == outside
    assert cli("status", "--json").json["live_release"] == outside


def test_status_shows_the_published_deploy(netlify, cli):
    result = deploy(cli)
    status = cli("status", "--json").json
    assert status["live_release"] == result["release"] and status["in_sync"] is True
    assert status["target"]["site_id"] == netlify.site["id"]


def test_missing_token_names_the_variable_and_sends_nothing(netlify, cli, monkeypatch):
    monkeypatch.delenv("NETLIFY_AUTH_TOKEN")
    result = deploy(cli)
    assert result["code"] == "CREDENTIALS_MISSING" and "NETLIFY_AUTH_TOKEN" in result["fix"]
    assert netlify.requests == []


def test_token_from_the_secrets_store_is_used(netlify, cli, monkeypatch):
    monkeypatch.delenv("NETLIFY_AUTH_TOKEN")
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    cli("secrets.set", "NETLIFY_AUTH_TOKEN", "--value", netlify.token, "--json")
    assert deploy(cli)["success"]


def test_a_rejected_token_is_credentials_invalid_and_never_printed(netlify, cli, monkeypatch):
    monkeypatch.setenv("NETLIFY_AUTH_TOKEN", "nfp_wrongTOKEN_0123456789")
    result = cli("deploy", "--json")
    assert result.json["code"] == "CREDENTIALS_INVALID"
    assert "nfp_wrongTOKEN" not in result.stdout + result.stderr
    written = "".join(p.read_text() for p in Path(".devops").rglob("*.json"))
    assert "nfp_wrongTOKEN" not in written


def test_missing_site_id_is_a_validation_error_before_any_request(netlify, cli):
    cli("config.set", "netlify", "{}", "--json")
    result = deploy(cli)
    assert result["code"] == "VALIDATION_FAILED" and "infra.up" in result["fix"]
    assert netlify.requests == []


def test_too_many_files_in_one_directory_is_refused(netlify, cli, monkeypatch):
    monkeypatch.setattr(netlify_module, "FILES_PER_DIRECTORY", 1)
    Path("dist/other.html").write_text("x")
    result = deploy(cli)
    assert result["code"] == "VALIDATION_FAILED" and "per directory" in result["error"]


def test_infra_up_creates_the_site_and_stores_its_id(netlify, cli):
    cli(
        "config.set",
        "netlify",
        json.dumps({"site_name": "brand-new", "poll_interval": 0.01}),
        "--json",
    )
    up = cli("infra.up", "--json").json
    assert up["infra"]["created"] is True and up["config_updated"] == ["netlify.site_id"]
    site_id = cli("config.get", "netlify.site_id", "--json").json["value"]
    assert netlify.sites[site_id]["name"] == "brand-new"
    assert cli("infra.show", "--json").json["infra"]["site_id"] == site_id
    assert deploy(cli)["success"]


def test_remote_build_through_the_api_waits_until_done(netlify, cli):
    result = cli("build", "--remote", "--wait", "--json").json
    assert result["success"] and result["triggered"] == "api" and result["done"] is True


def test_remote_build_through_a_build_hook(netlify, cli, monkeypatch):
    hook = netlify.add_build_hook(netlify.site["id"])
    monkeypatch.setenv("NETLIFY_BUILD_HOOK", hook)
    result = cli("build", "--remote", "--json")
    assert result.json["triggered"] == "build hook" and hook not in result.stdout
    assert any(r.path.startswith("/build_hooks/") for r in netlify.requests)


def test_history_remote_merges_netlify_deploys_with_records(netlify, cli):
    ours = deploy(cli)
    remote = cli("history", "--remote", "--json").json["remote"]
    assert remote[0]["release"] == ours["release"]  # Netlify's deploy id
    assert remote[0]["deployment"] == ours["id"]


def test_logs_include_what_netlify_says(netlify, cli):
    deploy(cli)
    logs = cli("logs", "--json").json
    assert logs["remote"]["state"] == "ready"
    assert [e["step"] for e in logs["log"]][:3] == ["start", "create", "upload"]


def test_remote_history_on_the_local_target_is_not_supported(project, cli):
    assert cli("history", "--remote", "--json").json["code"] == "NOT_SUPPORTED"


def test_an_upload_that_fails_for_good_stops_the_others(netlify, cli):
    for n in range(40):
        Path(f"dist/page{n}.html").write_text(f"page {n}")
    netlify.inject("PUT", FILES_PATH, status=422, body={"code": 422, "message": "bad file"})
    cli("config.set", "netlify.concurrency", "1", "--json")
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "bad file" in result["error"]
    assert len(puts(netlify)) < 42


def test_a_site_id_that_is_neither_uuid_nor_name_is_refused(netlify, cli):
    cli("config.set", "netlify.site_id", "Not A Site!", "--json")
    assert "neither a site id" in deploy(cli)["error"]


def test_rollback_to_an_unknown_netlify_deploy_is_unavailable(netlify, cli):
    deploy(cli)
    result = cli("rollback", "--to", "5f0000000000000000000000", "--json").json
    assert result["code"] == "ROLLBACK_UNAVAILABLE"


def test_infra_up_with_an_existing_site_changes_nothing(netlify, cli):
    up = cli("infra.up", "--json").json
    assert up["config_updated"] == [] and up["infra"]["site_id"] == netlify.site["id"]
    assert not [r for r in netlify.requests if r.method == "POST"]


def test_a_failed_remote_build_is_build_failed(netlify, cli, monkeypatch):
    from devops_tasks.platforms.netlify_api import NetlifyApi

    monkeypatch.setattr(
        NetlifyApi,
        "get_build",
        lambda self, build_id: {"id": build_id, "done": True, "error": "exit 2"},
    )
    result = cli("build", "--remote", "--wait", "--json").json
    assert result["code"] == "BUILD_FAILED" and "exit 2" in result["error"]


def test_an_unreachable_api_is_service_unavailable(project, cli, monkeypatch):
    monkeypatch.setenv("NETLIFY_AUTH_TOKEN", "token")
    monkeypatch.setenv("NETLIFY_API_URL", "http://127.0.0.1:9/api/v1")
    original = http.default_policy
    monkeypatch.setattr(http, "default_policy", lambda **kw: original(**{"connect": 0, **kw}))
    project.state_dir.mkdir()
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": "netlify", "netlify": {"site_id": "my-site"}})
    )
    assert cli("status", "--json").json["code"] == "SERVICE_UNAVAILABLE"


def test_every_problem_is_reported_at_once_before_any_request(netlify, cli):
    cli("config.set", "netlify", "{}", "--json")
    result = deploy(cli, "--dir", "missing-dir")
    messages = [p["message"] for p in result["problems"]]
    assert len(messages) == 2, messages
    assert any("site_id" in m for m in messages) and any("does not exist" in m for m in messages)
    assert all(p["fix"] for p in result["problems"]) and netlify.requests == []


def test_logs_of_a_deploy_made_by_a_remote_build_include_the_build(netlify, cli):
    deploy(cli)
    built = cli("build", "--remote", "--wait", "--json").json
    cli("rollback", "--to", built["deploy_id"], "--json")
    remote = cli("logs", "--json").json["remote"]
    assert remote["id"] == built["deploy_id"]
    assert remote["build"]["id"] == built["build_id"] and remote["build"]["done"] is True


def test_infra_up_tells_people_what_it_saved(netlify, cli):
    cli("config.set", "netlify", json.dumps({"poll_interval": 0.01}), "--json")
    out = cli("infra.up").stdout
    assert "Saved to .devops/config.json: netlify.site_id" in out and "created" in out


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "../../sites", "x?y=1", "%2e%2e", " "])
def test_rollback_to_an_id_that_is_not_one_path_segment_sends_no_request(netlify, cli, bad):
    cli("deploy", "--json")
    sent = len(netlify.requests)
    failure = cli("rollback", "--to", bad, "--json").json
    assert failure["code"] == "INVALID_ARGUMENT" and "--to" in failure["error"]
    assert len(netlify.requests) == sent


def test_an_id_from_a_tampered_record_never_reaches_a_url_path(netlify, project, cli):
    deployed = cli("deploy", "--json").json
    record_path = project.deployments_dir / f"{deployed['id']}.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "platform_deploy_id": "../../sites"}))
    sent = len(netlify.requests)
    shown = cli("logs", "--id", deployed["id"], "--json").json
    assert shown["success"] and shown["log"]  # the local log stands on its own
    assert shown["remote"]["code"] == "INVALID_ARGUMENT"
    assert "Netlify deploy id" in shown["remote"]["error"]
    assert len(netlify.requests) == sent


def test_a_build_hook_is_called_without_the_api_token(netlify, cli, monkeypatch):
    monkeypatch.setenv("NETLIFY_BUILD_HOOK", netlify.add_build_hook(netlify.site["id"]))
    assert cli("build", "--remote", "--json").json["success"]
    (hook_call,) = [r for r in netlify.requests if r.path.startswith("/build_hooks/")]
    assert "authorization" not in {name.lower() for name in hook_call.headers}


@pytest.mark.parametrize(
    "hook",
    ["http://127.0.0.2:9/build_hooks/abc", "https://evil.example/build_hooks/abc", "{api}/sites"],
)
def test_a_build_hook_elsewhere_than_the_api_host_is_never_called(netlify, cli, monkeypatch, hook):
    monkeypatch.setenv("NETLIFY_BUILD_HOOK", hook.format(api=netlify.api_url))
    sent = len(netlify.requests)
    failure = cli("build", "--remote", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "not called" in failure["error"]
    assert len(netlify.requests) == sent


def test_a_config_api_url_on_another_host_never_receives_the_token(netlify, cli, monkeypatch):
    cli("config.set", "netlify.api_url", netlify.api_url, "--json")  # http://127.0.0.1:...
    monkeypatch.delenv("NETLIFY_API_URL")
    sent = len(netlify.requests)
    failure = cli("status", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "NETLIFY_API_URL" in failure["fix"]
    assert len(netlify.requests) == sent


def test_the_environment_api_url_wins_over_the_config(netlify, cli):
    cli("config.set", "netlify.api_url", "https://api.netlify.com/api/v1", "--json")
    assert cli("status", "--json").json["success"]  # served by the fake NETLIFY_API_URL names


def test_a_build_hook_netlify_does_not_know_says_to_copy_it_again(netlify, cli, monkeypatch):
    monkeypatch.setenv("NETLIFY_BUILD_HOOK", f"{netlify.base}/build_hooks/000000000000000000000000")
    failure = cli("build", "--remote", "--json").json
    assert failure["code"] == "NOT_FOUND" and "build hook" in failure["error"]
    assert "site_id" not in failure["fix"] and "Build & deploy" in failure["fix"]


# -- how many uploads at once, and on which connections -------------------------------------


def many_pages(count):
    for n in range(count):
        Path(f"dist/page{n}.html").write_text(f"<p>page {n}</p>\n")


class UploadsUnderWay:
    """What the fake sees: for each upload as it arrives, how many are being served then.

    Each upload is held ``hold`` seconds, so that the client's concurrency shows.
    ``events`` is every arrival ``("arrive", path, under_way)`` and answer ``("answer", path,
    under_way)`` in the order they happened; ``on_arrival(under_way)``, if set, runs at each
    arrival (under the same lock, before the upload is served).
    """

    def __init__(self, fake, monkeypatch, hold=0.02):
        self.arrivals: list[int] = []
        self.events: list[tuple[str, str, int]] = []
        self.before_first_answer = 0  # uploads that arrived before the first was answered
        self.on_arrival = None
        self._now = 0
        self._lock = threading.Lock()
        handle = fake._handle

        def counted(handler):
            if handler.command != "PUT" or "/files/" not in handler.path:
                return handle(handler)
            path = urlsplit(handler.path).path
            with self._lock:
                self._now += 1
                self.arrivals.append(self._now)
                self.events.append(("arrive", path, self._now))
                if self.on_arrival:
                    self.on_arrival(self._now)
            try:
                time.sleep(hold)
                return handle(handler)
            finally:
                with self._lock:
                    self._now -= 1
                    self.events.append(("answer", path, self._now))
                    self.before_first_answer = self.before_first_answer or len(self.arrivals)

        monkeypatch.setattr(fake, "_handle", counted)


def test_uploads_reuse_one_connection_per_worker(netlify, cli, monkeypatch):
    many_pages(60)
    cli("config.set", "netlify.concurrency", "4", "--json")
    opened = []
    setup = fake_netlify._Handler.setup
    monkeypatch.setattr(fake_netlify._Handler, "setup", lambda h: (opened.append(h), setup(h)))
    assert deploy(cli)["success"]
    assert len(netlify.uploads) == 62 and len(opened) <= 4


def test_uploads_start_few_at_once_and_grow_while_answers_are_fast(netlify, cli, monkeypatch):
    many_pages(60)
    cli("config.set", "netlify.concurrency", "16", "--json")
    seen = UploadsUnderWay(netlify, monkeypatch)
    assert deploy(cli)["success"]
    assert seen.before_first_answer == 4 and max(seen.arrivals) > 8


def test_a_429_storm_cuts_the_uploads_under_way_and_the_deploy_succeeds(netlify, cli, monkeypatch):
    many_pages(80)
    cli("config.set", "netlify.concurrency", "16", "--json")
    seen = UploadsUnderWay(netlify, monkeypatch, hold=0.1)
    headers = netlify.rate_limit_headers(0)
    storm: dict[str, int] = {}

    def when_twelve_are_under_way(under_way):
        if not storm and under_way >= 12:
            storm["under_way"] = under_way
            netlify.inject("PUT", FILES_PATH, status=429, times=8, headers=headers)

    seen.on_arrival = when_twelve_are_under_way
    result = deploy(cli)
    assert result["success"] and len(netlify.uploads) == 82
    refused = [r.path for r in puts(netlify) if r.status == 429]
    assert storm and len(refused) == 8
    # Once every refused upload has gone through, the ones sent before the storm are over:
    # the next twenty arrive with at most half the limit at the storm, grown by one or two.
    through = max(i for i, (_, path, _) in enumerate(seen.events) if path in refused)
    after = [n for kind, _, n in seen.events[through:] if kind == "arrive"][:20]
    assert len(after) == 20 and max(after) < storm["under_way"], (storm, after)


def test_no_upload_starts_while_netlify_asks_to_wait(netlify, cli, monkeypatch):
    many_pages(100)
    cli("config.set", "netlify.concurrency", "4", "--json")
    UploadsUnderWay(netlify, monkeypatch, hold=0.05)  # 1.3 s of uploads at most 4 at once
    netlify.inject("PUT", FILES_PATH, status=429, headers={"Retry-After": "1"})
    assert deploy(cli)["success"]
    refused = next(r.time for r in puts(netlify) if r.status == 429)
    assert not [r for r in puts(netlify) if refused + 0.3 < r.time < refused + 0.9]
