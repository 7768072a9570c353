"""Deploying to Vercel, against a fake API that checks every request against Vercel's spec."""

from __future__ import annotations

import email.utils
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fake_vercel import FakeVercel
from helpers import write_site

from devops_tasks import http
from devops_tasks.config import ConfigStore
from devops_tasks.credentials import Credentials
from devops_tasks.platforms import vercel as vercel_module
from devops_tasks.platforms import vercel_api
from devops_tasks.platforms.vercel import vercel_ignore

CREATE = r"^/v13/deployments$"
FILES = r"^/v2/files$"


@pytest.fixture(scope="module")
def vercel_server() -> Iterator[FakeVercel]:
    server = FakeVercel().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vercel(vercel_server, project, monkeypatch) -> Iterator[FakeVercel]:
    """A project configured for a fresh Vercel project on the fake.

    Afterwards, every request the API received must follow the spec (or be the rollback
    route) and carry the bearer token.
    """
    vercel_server.reset()
    vercel_server.project = vercel_server.add_project("my-site")  # type: ignore[attr-defined]
    monkeypatch.setenv("VERCEL_TOKEN", vercel_server.token)
    monkeypatch.setenv("VERCEL_API_URL", vercel_server.api_url)
    project.state_dir.mkdir(exist_ok=True)
    configure(project, project_id=vercel_server.project["id"])  # type: ignore[attr-defined]
    yield vercel_server
    assert vercel_server.violations == [], "requests that Vercel's spec does not allow"
    sent = vercel_server.api_requests()
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in sent), (
        "an API request without the bearer token"
    )


def configure(project, project_id: str | None, **options) -> None:
    section = {"poll_interval": 0.01, **({"project": project_id} if project_id else {}), **options}
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": "vercel", "vercel": section})
    )


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


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def creates(fake):
    return [r for r in fake.requests if r.method == "POST" and r.path == "/v13/deployments"]


def production(fake):
    return fake.production(fake.project["id"])


# -- deploys by digest -------------------------------------------------------------------------


def test_first_deploy_uploads_every_file_and_goes_live(vercel, cli):
    result = deploy(cli)
    assert result["success"] and result["platform"] == "vercel"
    site = {p: Path("dist", p).read_bytes() for p in ("index.html", "css/site.css")}
    assert sorted(vercel.uploads) == sorted(sha1(b) for b in site.values())
    assert production(vercel) == result["release"] == result["platform_deploy_id"]
    assert requests.get(result["url"], timeout=5).text == "<h1>v1</h1>\n"
    assert result["details"]["files_uploaded"] == 2


def test_the_deployment_lists_every_file_by_digest_and_size_for_a_static_production(vercel, cli):
    deploy(cli)
    body = creates(vercel)[-1].json
    index = Path("dist/index.html").read_bytes()
    assert {"file": "index.html", "sha": sha1(index), "size": len(index)} in body["files"]
    assert body["target"] == "production" and body["project"] == vercel.project["id"]
    assert body["name"] == "my-site"
    assert body["projectSettings"] == {"framework": None, "outputDirectory": "."}


def test_the_first_create_is_answered_missing_files_and_the_second_succeeds(vercel, cli):
    deploy(cli)
    first, second = creates(vercel)
    assert first.status == 400 and first.response["error"]["code"] == "missing_files"
    assert second.status == 200 and second.json == first.json


def test_an_unchanged_redeploy_uploads_nothing(vercel, cli):
    deploy(cli)
    before = len(vercel.requests)
    second = deploy(cli)
    assert second["success"] and second["details"]["files_uploaded"] == 0
    sent = vercel.requests[before:]
    assert not [r for r in sent if r.path == "/v2/files"] and len(creates(vercel)) == 3
    assert production(vercel) == second["release"]


def test_one_changed_file_is_the_only_upload(vercel, cli):
    deploy(cli)
    before = len(vercel.uploads)
    write_site(Path("dist"), "v2")
    deploy(cli)
    assert vercel.uploads[before:] == [sha1(b"<h1>v2</h1>\n")]


def test_duplicate_contents_are_uploaded_once(vercel, cli):
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        Path("dist", name).parent.mkdir(parents=True, exist_ok=True)
        Path("dist", name).write_text("same bytes\n")
    result = deploy(cli)
    assert vercel.uploads.count(sha1(b"same bytes\n")) == 1
    files = vercel.deployment_files(result["release"])
    assert {files[p] for p in ("a.txt", "b.txt", "sub/c.txt")} == {sha1(b"same bytes\n")}


def test_uploads_carry_the_digest_the_length_and_octet_stream(vercel, cli):
    deploy(cli)
    upload = next(r for r in vercel.requests if r.path == "/v2/files")
    assert upload.headers["x-vercel-digest"] == sha1(upload.body)
    assert upload.headers["content-length"] == str(len(upload.body))
    assert upload.headers["content-type"] == "application/octet-stream"


def test_vercel_ignore_rules_follow_the_cli(vercel, cli):
    Path("dist/.env.local").write_text("SECRET=1")
    Path("dist/node_modules/x").mkdir(parents=True)
    Path("dist/node_modules/x/index.js").write_text("x")
    Path("dist/.well-known").mkdir()
    Path("dist/.well-known/security.txt").write_text("Contact: a@b.c")
    files = vercel.deployment_files(deploy(cli)["release"])
    assert ".well-known/security.txt" in files
    assert not any(".env" in p or "node_modules" in p for p in files)


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".vercel/project.json", True),
        ("a/.git/HEAD", True),
        (".env.production.local", True),
        ("x/.main.js.swp", True),
        (".yarn/cache/a.zip", True),
        (".pnp.cjs", True),
        ("docs/.env", False),
        ("index.html", False),
        ("a/node_modules", True),
        ("node_modules.bak/x.js", False),
        ("x/.a/b.swp", False),  # a glob's * stays inside one part of the path
        ("docs/.yarn/cache/a.zip", False),
    ],
)
def test_vercel_ignore(path, ignored):
    assert vercel_ignore(path) is ignored


def test_more_files_than_vercel_allows_are_refused_before_any_request(vercel, cli, monkeypatch):
    monkeypatch.setattr(vercel_module, "MAX_FILES", 1)
    result = deploy(cli)
    assert (
        result["code"] == "VALIDATION_FAILED" and "at most 1 in one deployment" in result["error"]
    )
    assert vercel.requests == []


# -- faults ------------------------------------------------------------------------------------


def test_a_429_storm_on_uploads_is_waited_out_without_extra_uploads(vercel, cli):
    vercel.inject("POST", FILES, status=429, times=6, headers=vercel.retry_after(0))
    assert deploy(cli)["success"]
    assert len(vercel.uploads) == 2
    assert len([r for r in vercel.requests if r.path == "/v2/files"]) == 2 + 6


def test_retry_after_in_seconds_is_honoured(vercel, cli):
    vercel.inject("POST", CREATE, status=429, headers=vercel.retry_after(1))
    assert deploy(cli)["success"]
    limited, retried = creates(vercel)[:2]
    assert limited.status == 429 and retried.time - limited.time >= 0.95


def test_retry_after_as_an_http_date_is_honoured(vercel, cli):
    headers = vercel.retry_after(2, as_date=True)
    vercel.inject("GET", r"^/v9/projects/", status=503, headers=headers)
    assert deploy(cli)["success"]
    limited, retried = [r for r in vercel.requests if r.path.startswith("/v9/projects/")][:2]
    date = email.utils.mktime_tz(email.utils.parsedate_tz(headers["Retry-After"]))
    assert limited.status == 503 and retried.time >= date - 0.05


def test_a_storm_of_500s_and_resets_does_not_fail_the_deploy(vercel, cli):
    vercel.inject("POST", FILES, status=500, times=3)
    vercel.inject("POST", FILES, drop=True, times=2)
    vercel.inject("GET", r"^/v13/deployments/", status=502, times=2)
    vercel.inject("POST", CREATE, drop=True)
    vercel.inject("GET", r"^/v9/projects/", status=500)
    result = deploy(cli)
    assert result["success"] and production(vercel) == result["release"]
    assert sorted(vercel.uploads) == sorted(set(vercel.uploads)) and len(vercel.uploads) == 2


def test_missing_files_again_after_uploading_uploads_exactly_those(vercel, cli):
    deploy(cli)
    asked = sha1(Path("dist/css/site.css").read_bytes())
    refused = {"error": {"code": "missing_files", "message": "Missing files", "missing": [asked]}}
    vercel.inject("POST", CREATE, status=400, body=refused)
    before = len(vercel.uploads)
    result = deploy(cli)
    assert result["success"] and vercel.uploads[before:] == [asked]
    assert result["details"]["files_uploaded"] == 1


def test_missing_files_that_the_site_does_not_have_fail_the_deploy(vercel, cli):
    refused = {"error": {"code": "missing_files", "message": "Missing", "missing": ["f" * 40]}}
    vercel.inject("POST", CREATE, status=400, body=refused)
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "does not have" in result["error"]
    assert vercel.uploads == []


def test_a_400_is_never_retried(vercel, cli):
    refused = {"error": {"code": "bad_request", "message": "files is invalid"}}
    vercel.inject("POST", CREATE, status=400, body=refused)
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "files is invalid" in result["error"]
    assert len(creates(vercel)) == 1


def test_persistent_server_errors_become_service_unavailable(vercel, cli, monkeypatch):
    original = http.default_policy
    monkeypatch.setattr(http, "default_policy", lambda **kw: original(**{"status": 2, **kw}))
    vercel.inject("GET", r"^/v9/projects/", status=503, times=10)
    assert deploy(cli)["code"] == "SERVICE_UNAVAILABLE"


def test_a_deployment_vercel_fails_reports_its_error_and_production_is_unchanged(vercel, cli):
    first = deploy(cli)
    vercel.fail_next_deploy = "Command exited with 1"
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["code"] == "DEPLOY_FAILED" and "Command exited with 1" in result["error"]
    assert production(vercel) == first["release"]
    assert "Command exited with 1" in [
        e["text"] for e in cli("logs", "--json").json["remote"]["events"]
    ]


def looks(fake, release):
    """The GETs of deployment ``release`` (how a deploy follows it until it is ready)."""
    return [
        r for r in fake.requests if r.method == "GET" and r.path == f"/v13/deployments/{release}"
    ]


def test_a_deployment_ready_in_the_create_answer_is_not_looked_at_again(vercel, cli):
    vercel.ready_after_polls = 0
    result = deploy(cli)
    assert result["success"] and production(vercel) == result["release"]
    assert looks(vercel, result["release"]) == []


def test_a_building_deployment_is_looked_at_until_ready_and_its_steps_keep_their_order(
    vercel, cli, project
):
    vercel.ready_after_polls = 3
    result = deploy(cli)
    assert result["success"] and len(looks(vercel, result["release"])) == 3
    steps = [e["step"] for e in cli("logs", "--json").json["log"]]
    assert steps.index("create") < steps.index("ready") < steps.index("done")
    kept = project.cache_dir / "deployed" / "vercel" / "production" / f"{result['release']}.json"
    assert json.loads(kept.read_text())["release"] == result["release"]


@pytest.mark.parametrize(
    ("interval", "pauses"),
    [(1.0, [0.25, 0.5, 1.0, 1.0]), (0.4, [0.25, 0.4, 0.4, 0.4]), (0.05, [0.05] * 4)],
)
def test_pauses_between_looks_double_from_a_quarter_second_up_to_the_interval(
    project, interval, pauses
):
    project.state_dir.mkdir(exist_ok=True)
    configure(project, "prj_pauses", poll_interval=interval)
    settings = ConfigStore(project).settings(None)
    vercel = vercel_module.VercelPlatform(project, settings, None, Credentials(project, settings))
    waits = vercel._pauses()
    assert [next(waits) for _ in pauses] == pauses


# -- strategies, rollback ----------------------------------------------------------------------


def test_blue_green_deploys_a_preview_checks_it_then_promotes(vercel, cli):
    first = deploy(cli)
    cli("config.set", "deployment.strategy", "blue-green", "--json")
    require_text(cli, "v2")
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["success"]
    assert "target" not in creates(vercel)[-1].json  # a preview
    assert result["details"]["health_draft"]["healthy"] is True
    promote = [r for r in vercel.requests if "/promote/" in r.path]
    assert [r.path for r in promote] == [
        f"/v10/projects/{vercel.project['id']}/promote/{result['release']}"
    ]
    assert production(vercel) == result["release"] != first["release"]


def test_blue_green_with_a_failing_preview_leaves_production_untouched(vercel, cli):
    first = deploy(cli)
    cli("config.set", "deployment.strategy", "blue-green", "--json")
    require_text(cli, "v1")
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["code"] == "HEALTH_CHECK_FAILED" and "draft" in result["error"]
    assert production(vercel) == first["release"]
    assert not [r for r in vercel.requests if "/promote/" in r.path]


def test_a_failing_check_after_going_live_rolls_back(vercel, cli):
    first = deploy(cli)
    require_text(cli, "v1")
    write_site(Path("dist"), "v2")
    result = deploy(cli)
    assert result["code"] == "HEALTH_CHECK_FAILED"
    assert result["deployment_status"] == "rolled_back"
    assert production(vercel) == first["release"]
    rollback = [r for r in vercel.requests if "/rollback/" in r.path]
    assert [r.path for r in rollback] == [
        f"/v9/projects/{vercel.project['id']}/rollback/{first['release']}"
    ]


def test_rollback_restores_the_previous_deployment(vercel, cli):
    first = deploy(cli)
    write_site(Path("dist"), "v2")
    deploy(cli)
    rolled = cli("rollback", "--json").json
    assert rolled["release"] == first["release"] and production(vercel) == first["release"]
    assert cli("status", "--json").json["in_sync"] is True
    assert requests.get(rolled["url"], timeout=5).text == "<h1>v1</h1>\n"


def test_rollback_to_a_deployment_made_outside_devops_tasks(vercel, cli):
    outside = deploy(cli)["release"]
    write_site(Path("dist"), "v2")
    deploy(cli)
    Path(".devops/deployments").rename(".devops/deployments-moved")  # forget our records
    assert cli("rollback", "--to", outside, "--json").json["success"]
    assert production(vercel) == outside
    assert cli("status", "--json").json["live_release"] == outside


def test_rollback_to_a_deployment_of_another_project_is_unavailable(vercel, cli):
    other = vercel.add_project("other-site")
    deploy(cli)
    foreign = vercel._new_deployment(other, {}, "production", {})["id"]
    result = cli("rollback", "--to", foreign, "--json").json
    assert result["code"] == "ROLLBACK_UNAVAILABLE"


def test_a_deploy_after_a_rollback_is_promoted_when_vercel_stages_it(vercel, cli):
    deploy(cli)
    write_site(Path("dist"), "v2")
    deploy(cli)
    cli("rollback", "--json")
    write_site(Path("dist"), "v3")
    result = deploy(cli)
    assert result["success"] and production(vercel) == result["release"]
    assert [e["step"] for e in cli("logs", "--json").json["log"]].count("promote") == 1


def test_switches_wait_until_vercel_has_moved_the_domains(vercel, cli):
    first = deploy(cli)
    write_site(Path("dist"), "v2")
    deploy(cli)
    vercel.switch_after_polls = 3
    assert cli("rollback", "--json").json["success"]
    assert production(vercel) == first["release"]
    assert vercel.project["lastAliasRequest"]["jobStatus"] == "succeeded"


def test_canary_is_refused_for_vercel(vercel, cli):
    cli("config.set", "deployment.strategy", "canary", "--json")
    result = deploy(cli)
    assert result["code"] == "VALIDATION_FAILED" and "blue-green" in result["fix"]
    assert vercel.requests == []


# -- the other tasks ---------------------------------------------------------------------------


def test_status_shows_the_production_deployment(vercel, cli):
    result = deploy(cli)
    status = cli("status", "--json").json
    assert status["live_release"] == result["release"] and status["in_sync"] is True
    assert status["target"]["project_id"] == vercel.project["id"]
    assert status["target"]["url"] == result["url"]


def test_history_remote_follows_until_across_pages(vercel, cli, monkeypatch):
    monkeypatch.setattr(vercel_api, "PAGE_SIZE", 2)
    ours = [deploy(cli)["id"] for _ in range(3)]
    remote = cli("history", "--remote", "--limit", "5", "--json").json["remote"]
    assert [r["deployment"] for r in remote] == ours[::-1]  # Vercel's meta, matched
    assert not [r for r in remote if "devops_deployment" in r]  # said once, as deployment
    lists = [r for r in vercel.requests if r.path == "/v6/deployments"]
    assert len(lists) == 2 and "until" in lists[1].query and "until" not in lists[0].query


def test_logs_include_vercel_build_events(vercel, cli):
    deploy(cli)
    logs = cli("logs", "--json").json
    assert logs["remote"]["readyState"] == "READY"
    assert "Build Completed" in [e["text"] for e in logs["remote"]["events"]]
    assert [e["step"] for e in logs["log"]][:4] == ["start", "upload", "create", "ready"]


def test_remote_build_through_a_deploy_hook_waits_for_its_deployment(vercel, cli, monkeypatch):
    deploy(cli)
    hook = vercel.add_deploy_hook(vercel.project["id"])
    monkeypatch.setenv("VERCEL_DEPLOY_HOOK", hook)
    result = cli("build", "--remote", "--wait", "--json")
    built = result.json
    assert built["triggered"] == "deploy hook" and built["state"] == "READY"
    assert hook not in result.stdout
    (call,) = [r for r in vercel.requests if r.path.startswith("/v1/integrations/deploy/")]
    assert "authorization" not in call.headers


@pytest.mark.parametrize(
    "hook", ["http://127.0.0.2:9/v1/integrations/deploy/p/h", "{api}/v13/deployments"]
)
def test_a_deploy_hook_elsewhere_is_never_called(vercel, cli, monkeypatch, hook):
    monkeypatch.setenv("VERCEL_DEPLOY_HOOK", hook.format(api=vercel.api_url))
    failure = cli("build", "--remote", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "not called" in failure["error"]
    assert vercel.requests == []


def test_build_remote_without_a_hook_says_where_to_get_one(vercel, cli):
    failure = cli("build", "--remote", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "Deploy Hooks" in failure["fix"]


def test_infra_up_creates_the_project_and_stores_its_id(vercel, cli, project):
    configure(project, project_id="brand-new")
    up = cli("infra.up", "--json").json
    assert up["infra"]["created"] is True and up["config_updated"] == ["vercel.project"]
    stored = cli("config.get", "vercel.project", "--json").json["value"]
    assert vercel.projects[stored]["name"] == "brand-new"
    assert deploy(cli)["success"]


def test_infra_up_without_a_project_names_it_after_the_directory(vercel, cli, project):
    configure(project, project_id=None)
    up = cli("infra.up", "--json").json
    assert up["infra"]["name"] == "proj" and up["config_updated"] == ["vercel.project"]


def test_infra_up_with_an_existing_project_creates_nothing(vercel, cli):
    up = cli("infra.up", "--json").json
    assert up["config_updated"] == [] and up["infra"]["created"] is False
    assert not [r for r in vercel.requests if r.method == "POST"]


def test_missing_project_is_a_validation_error_before_any_request(vercel, cli, project):
    configure(project, project_id=None)
    result = deploy(cli)
    assert result["code"] == "VALIDATION_FAILED" and "infra.up" in result["fix"]
    assert vercel.requests == []


def test_team_id_goes_with_every_request(vercel, cli, project):
    vercel.team_id = "team_fake0123"
    configure(project, project_id=vercel.project["id"], team_id="team_fake0123")
    deploy(cli)
    cli("rollback", "--to", deploy(cli)["release"], "--json")
    assert all(r.query.get("teamId") == "team_fake0123" for r in vercel.api_requests())


def test_without_the_team_id_a_team_project_is_not_found(vercel, cli):
    vercel.team_id = "team_fake0123"
    result = deploy(cli)
    assert result["code"] == "NOT_FOUND" and "vercel.team_id" in result["fix"]


# -- env sync ----------------------------------------------------------------------------------

SECRET_VALUES = {"API_KEY": "sk_live_0123456789abcdefXYZ", "DB_URL": "postgres://u:pw0rd@db/x"}


def test_env_sync_pushes_encrypted_variables_per_target_and_never_shows_values(
    vercel, cli, project, monkeypatch
):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    for name, value in SECRET_VALUES.items():
        cli("secrets.set", name, "--value", value, "--json")
    sync = [{"name": "API_KEY", "targets": ["production", "preview"]}, "DB_URL"]
    cli("config.set", "vercel.env_sync", json.dumps(sync), "--json")
    outputs = [cli("vercel.env-sync", "--json"), cli("vercel.env-sync")]
    result = outputs[0].json
    assert result["synced"] == [
        {"name": "API_KEY", "targets": ["production", "preview"]},
        {"name": "DB_URL", "targets": ["production", "preview", "development"]},
    ]
    stored = {(e["key"], tuple(e["target"])): e for e in vercel.env[vercel.project["id"]]}
    assert sorted(stored) == [
        ("API_KEY", ("preview",)),
        ("API_KEY", ("production",)),
        ("DB_URL", ("development",)),
        ("DB_URL", ("preview",)),
        ("DB_URL", ("production",)),
    ]
    assert {e["type"] for e in stored.values()} == {"encrypted"}
    assert stored[("API_KEY", ("production",))]["value"] == SECRET_VALUES["API_KEY"]
    env_posts = [r for r in vercel.requests if r.path.endswith("/env")]
    assert len(env_posts) == 10 and all(r.query["upsert"] == "true" for r in env_posts)
    records = "".join(p.read_text() for p in Path(".devops").rglob("*.json"))
    for value in SECRET_VALUES.values():
        for shown in outputs:
            assert value not in shown.stdout + shown.stderr
        assert value not in records


def test_env_sync_with_a_secret_missing_from_the_store_sends_nothing(vercel, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    cli("secrets.set", "API_KEY", "--value", SECRET_VALUES["API_KEY"], "--json")
    cli("config.set", "vercel.env_sync", '["API_KEY", "NOT_STORED"]', "--json")
    result = cli("vercel.env-sync", "--json").json
    assert result["code"] == "NOT_FOUND" and "NOT_STORED" in result["error"]
    assert vercel.requests == []


def test_env_sync_without_names_says_how_to_list_them(vercel, cli):
    assert cli("vercel.env-sync", "--json").json["code"] == "CONFIG_INVALID"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ('[{"name": "A", "targets": ["prod"]}]', "vercel.env_sync.0.targets.0"),
        ('["A", "not a name"]', "vercel.env_sync.1"),
        ('[{"name": "A", "target": ["production"]}]', "vercel.env_sync.0.target"),
        ('[{"targets": ["preview"]}]', "vercel.env_sync.0.name"),
    ],
)
def test_a_malformed_env_sync_list_is_refused_naming_the_item(vercel, cli, value, path):
    refused = cli("config.set", "vercel.env_sync", value, "--json").json
    assert refused["code"] == "CONFIG_INVALID"
    assert [p["path"] for p in refused["problems"]] == [path]


# -- credentials and where they go -------------------------------------------------------------


def test_missing_token_names_the_variable_and_sends_nothing(vercel, cli, monkeypatch):
    monkeypatch.delenv("VERCEL_TOKEN")
    result = deploy(cli)
    assert result["code"] == "CREDENTIALS_MISSING" and "VERCEL_TOKEN" in result["fix"]
    assert vercel.requests == []


def test_token_from_the_secrets_store_is_used(vercel, cli, monkeypatch):
    monkeypatch.delenv("VERCEL_TOKEN")
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    cli("secrets.set", "VERCEL_TOKEN", "--value", vercel.token, "--json")
    assert deploy(cli)["success"]


def test_an_invalid_token_is_credentials_invalid_with_the_fix_and_never_shown(
    vercel, cli, monkeypatch
):
    monkeypatch.setenv("VERCEL_TOKEN", "vcp_wrongTOKEN_0123456789")
    result = cli("deploy", "--json")
    assert result.json["code"] == "CREDENTIALS_INVALID"
    assert "Tokens" in result.json["fix"] and "VERCEL_TOKEN" in result.json["fix"]
    assert "vcp_wrongTOKEN" not in result.stdout + result.stderr
    written = "".join(p.read_text() for p in Path(".devops").rglob("*.json"))
    assert "vcp_wrongTOKEN" not in written


def test_a_401_is_credentials_invalid_too(vercel, cli):
    vercel.inject("GET", r"^/v9/projects/", status=401)
    assert deploy(cli)["code"] == "CREDENTIALS_INVALID"


def test_a_config_api_url_on_another_host_never_receives_the_token(vercel, cli, monkeypatch):
    cli("config.set", "vercel.api_url", "https://vercel.example.invalid", "--json")
    monkeypatch.delenv("VERCEL_API_URL")
    failure = cli("status", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "VERCEL_API_URL" in failure["fix"]


def test_a_config_api_url_on_this_machine_is_used(vercel, cli, monkeypatch):
    cli("config.set", "vercel.api_url", vercel.api_url, "--json")
    monkeypatch.delenv("VERCEL_API_URL")
    assert cli("status", "--json").json["success"]


@pytest.mark.parametrize("bad", ["..", "a/b", "x?y=1", "%2e%2e"])
def test_rollback_to_an_id_that_is_not_one_path_segment_sends_no_request(vercel, cli, bad):
    deploy(cli)
    sent = len(vercel.requests)
    failure = cli("rollback", "--to", bad, "--json").json
    assert failure["code"] == "INVALID_ARGUMENT"
    assert len(vercel.requests) == sent
