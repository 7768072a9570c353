"""The fake Vercel API itself: it serves only the spec's routes (plus rollback) and checks them."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pytest
import requests
from fake_vercel import (
    EXTRA_OPERATIONS,
    ROLLBACK_ROUTE,
    ROUTES,
    FakeVercel,
    check_request,
    load_spec,
)

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVercel]:
    fake = FakeVercel().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fv(server: FakeVercel) -> FakeVercel:
    server.reset()
    return server


@pytest.fixture
def api(fv: FakeVercel) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fv.token}"
    return session


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def upload(api: requests.Session, fv: FakeVercel, data: bytes, digest: str | None = None):
    headers = {"Content-Type": "application/octet-stream", "x-vercel-digest": digest or sha1(data)}
    return api.post(f"{fv.api_url}/v2/files", data=data, headers=headers, timeout=5)


def create(api, fv, project, files: dict[str, bytes], **body):
    listed = [{"file": p, "sha": sha1(d), "size": len(d)} for p, d in files.items()]
    payload = {"name": project["name"], "project": project["id"], "files": listed, **body}
    return api.post(f"{fv.api_url}/v13/deployments", json=payload, timeout=5)


def deploy(api, fv, project, files: dict[str, bytes], **body) -> dict:
    """The whole flow: create, upload what is missing, create again, poll until READY."""
    first = create(api, fv, project, files, **body)
    if first.status_code == 400:
        for data in files.values():
            if sha1(data) in first.json()["error"]["missing"]:
                assert upload(api, fv, data).status_code == 200
        first = create(api, fv, project, files, **body)
    deployment = first.json()
    while deployment["readyState"] not in ("READY", "ERROR"):
        deployment = api.get(f"{fv.api_url}/v13/deployments/{deployment['id']}").json()
    return deployment


# -- the routes and the spec -------------------------------------------------------------------


def test_every_route_is_a_spec_operation_but_the_rollback_route():
    paths = load_spec()["paths"]
    beyond = [(m, t) for m, t in ROUTES if m.lower() not in paths.get(t, {})]
    assert beyond == [("POST", ROLLBACK_ROUTE)]


def test_the_only_operation_added_to_the_spec_is_the_rollback_the_cli_uses():
    assert set(EXTRA_OPERATIONS) == {("POST", ROLLBACK_ROUTE)}
    assert ROLLBACK_ROUTE not in load_spec()["paths"]
    assert check_request("POST", "/v9/projects/prj_a/rollback/dpl_b", [], JSON, b"{}") == []
    assert check_request("POST", "/v9/projects/p/rollback/d", [("teamId", "t")], {}, b"") == []
    assert check_request("POST", "/v9/projects/p/rollback/d", [("x", "1")], {}, b"")


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "problem"),
    [
        ("GET", "/v13/nowhere", [], {}, b"", "no path template"),
        ("DELETE", "/v2/files", [], {}, b"", "no DELETE operation"),
        ("GET", "/v6/deployments", [("page", "2")], {}, b"", "'page' is not declared"),
        ("GET", "/v6/deployments", [("limit", "ten")], {}, b"", "is not a number"),
        ("GET", "/v3/deployments/d/events", [("direction", "up")], {}, b"", "is not one of"),
        ("POST", "/v13/deployments", [], JSON, b'{"files": []}', "'name' is a required"),
        (
            "POST",
            "/v13/deployments",
            [],
            JSON,
            b'{"name": "a", "files": [{"file": "a", "sha": "x", "mode": 33188}]}',
            "files/0: Additional properties are not allowed ('mode' was unexpected)",
        ),
        ("POST", "/v13/deployments", [], JSON, b'{"name": "a", "version": 2}', "'version'"),
        (
            "POST",
            "/v13/deployments",
            [],
            JSON,
            b'{"name": "a", "projectSettings": {"framework": "jekyl"}}',
            "projectSettings/framework",
        ),
        ("POST", "/v13/deployments", [], {"content-type": "text/plain"}, b"x", "Content-Type"),
        ("POST", "/v13/deployments", [], JSON, b"{", "not valid JSON"),
        (
            "POST",
            "/v10/projects/p/env",
            [],
            JSON,
            b'{"key": "A", "value": "v", "type": "encrypted", "target": ["prod"]}',
            "target/0",
        ),
        ("POST", "/v10/projects/p/promote/d", [], JSON, b'{"x": 1}', "takes no body"),
        ("POST", "/v2/files", [], {"x-vercel-digest": "a" * 41}, b"", "longer than 40"),
    ],
)
def test_requests_that_break_the_spec_are_reported(method, path, query, headers, body, problem):
    problems = check_request(method, path, query, headers, body)
    assert any(problem in p for p in problems), problems


def test_requests_as_devops_tasks_sends_them_pass():
    body = {
        "name": "site",
        "project": "prj_1",
        "files": [{"file": "a.html", "sha": "a" * 40, "size": 3}],
        "target": "production",
        "projectSettings": {"framework": None, "outputDirectory": "."},
        "meta": {"devopsDeployment": "dep_1"},
    }
    sent = [
        ("POST", "/v13/deployments", [("teamId", "t")], JSON, json.dumps(body).encode()),
        ("GET", "/v13/deployments/dpl_1", [], {}, b""),
        (
            "GET",
            "/v6/deployments",
            [("projectId", "p"), ("limit", "100"), ("until", "17")],
            {},
            b"",
        ),
        ("GET", "/v3/deployments/dpl_1/events", [("limit", "100")], {}, b""),
        ("GET", "/v6/deployments/dpl_1/files", [], {}, b""),
        ("POST", "/v10/projects/p/promote/d", [], JSON, b"{}"),
        ("GET", "/v9/projects/my-site", [], {}, b""),
        (
            "POST",
            "/v2/files",
            [],
            {"content-type": "application/octet-stream", "x-vercel-digest": "a" * 40},
            b"abc",
        ),
        (
            "POST",
            "/v10/projects/p/env",
            [("upsert", "true")],
            JSON,
            b'{"key": "A", "value": "v", "type": "encrypted", "target": ["preview"]}',
        ),
    ]
    assert [p for request in sent for p in check_request(*request)] == []


# -- the fake's behaviour ----------------------------------------------------------------------


def test_api_requests_need_the_bearer_token(fv):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": fv.token}):
        r = requests.get(f"{fv.api_url}/v10/projects", headers=headers, timeout=5)
        assert r.status_code == 403 and r.json()["error"]["invalidToken"] is True


def test_a_deployment_needs_its_missing_files_uploaded_first(fv, api):
    project = fv.add_project("s")
    files = {"index.html": b"<h1>hi</h1>", "copy.html": b"<h1>hi</h1>", "a.css": b"a{}"}
    first = create(api, fv, project, files)
    assert first.status_code == 400
    assert first.json()["error"] == {
        "code": "missing_files",
        "message": "Missing files",
        "missing": [sha1(b"<h1>hi</h1>"), sha1(b"a{}")],
    }
    assert fv.deployments == {}
    deployment = deploy(api, fv, project, files, target="production")
    assert deployment["readyState"] == "READY" and deployment["aliasAssigned"]
    assert fv.production(project["id"]) == deployment["id"]
    served = requests.get(f"http://{deployment['url']}/", timeout=5)
    assert served.content == b"<h1>hi</h1>"
    alias = requests.get(f"http://{deployment['alias'][0]}/a.css", timeout=5)
    assert alias.content == b"a{}"
    assert fv.violations == []


def test_a_deployments_files_are_listed_as_a_tree_with_digests(fv, api):
    project = fv.add_project("s")
    deployment = deploy(api, fv, project, {"index.html": b"i", "css/a.css": b"a"})
    tree = api.get(f"{fv.api_url}/v6/deployments/{deployment['id']}/files").json()
    assert tree == [
        {
            "name": "css",
            "type": "directory",
            "mode": 0o40755,
            "children": [{"name": "a.css", "type": "file", "mode": 0o100644, "uid": sha1(b"a")}],
        },
        {"name": "index.html", "type": "file", "mode": 0o100644, "uid": sha1(b"i")},
    ]
    assert fv.violations == []


def test_uploads_are_checked_against_their_digest_and_size(fv, api):
    assert upload(api, fv, b"abc", digest="0" * 40).json()["error"]["code"] == (
        "incorrect_file_digest"
    )
    r = api.post(
        f"{fv.api_url}/v2/files",
        data=b"abc",
        headers={"x-vercel-digest": sha1(b"abc"), "Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert r.status_code == 200 and fv.uploads == [sha1(b"abc")]
    assert requests.post(f"{fv.api_url}/v2/files", data=b"abc", timeout=5).status_code == 403


def test_blobs_are_shared_across_projects(fv, api):
    one, two = fv.add_project("one"), fv.add_project("two")
    deploy(api, fv, one, {"index.html": b"same"})
    assert create(api, fv, two, {"index.html": b"same"}).status_code == 200


def test_a_preview_is_ready_but_not_production(fv, api):
    project = fv.add_project("s")
    preview = deploy(api, fv, project, {"index.html": b"p"})
    assert preview["target"] is None and preview["aliasAssigned"]
    assert fv.production(project["id"]) is None


def test_deployments_are_ready_after_polls_and_can_fail(fv, api):
    project = fv.add_project("s")
    fv.ready_after_polls = 3
    upload(api, fv, b"x")
    created = create(api, fv, project, {"x": b"x"}).json()
    url = f"{fv.api_url}/v13/deployments/{created['id']}"
    assert [api.get(url).json()["readyState"] for _ in range(3)] == ["BUILDING"] * 2 + ["READY"]
    fv.fail_next_deploy = "Command failed"
    failed = deploy(api, fv, project, {"x": b"x"}, target="production")
    assert failed["readyState"] == "ERROR" and failed["errorMessage"] == "Command failed"
    events = api.get(f"{fv.api_url}/v3/deployments/{failed['id']}/events").json()
    assert events[-1]["type"] == "stderr" and events[-1]["payload"]["text"] == "Command failed"


def test_promote_and_rollback_move_production_and_a_rollback_stages_later_deploys(fv, api):
    project = fv.add_project("s")
    first = deploy(api, fv, project, {"i": b"1"}, target="production")
    preview = deploy(api, fv, project, {"i": b"2"})
    base = f"{fv.api_url}/v10/projects/{project['id']}"
    assert api.post(f"{base}/promote/{preview['id']}", json={}).status_code == 201
    assert fv.production(project["id"]) == preview["id"]
    back = api.post(f"{fv.api_url}/v9/projects/{project['id']}/rollback/{first['id']}", json={})
    assert back.status_code == 201 and fv.production(project["id"]) == first["id"]
    request = api.get(f"{fv.api_url}/v9/projects/{project['id']}").json()["lastAliasRequest"]
    assert request["type"] == "rollback" and request["jobStatus"] == "succeeded"
    staged = deploy(api, fv, project, {"i": b"3"}, target="production")
    assert staged["readySubstate"] == "STAGED" and not staged["aliasAssigned"]
    assert fv.production(project["id"]) == first["id"]
    assert fv.violations == []


def test_a_switch_can_take_a_few_polls(fv, api):
    project = fv.add_project("s")
    first = deploy(api, fv, project, {"i": b"1"}, target="production")
    second = deploy(api, fv, project, {"i": b"2"}, target="production")
    fv.switch_after_polls = 2
    api.post(f"{fv.api_url}/v9/projects/{project['id']}/rollback/{first['id']}", json={})
    states = []
    for _ in range(2):
        got = api.get(f"{fv.api_url}/v9/projects/{project['id']}").json()
        states.append((got["lastAliasRequest"]["jobStatus"], got["targets"]["production"]["id"]))
    assert states == [("in-progress", second["id"]), ("succeeded", first["id"])]


def test_env_vars_are_upserted_only_when_asked(fv, api):
    project = fv.add_project("s")
    url = f"{fv.api_url}/v10/projects/{project['id']}/env"
    item = {"key": "A", "value": "one", "type": "encrypted", "target": ["preview"]}
    assert api.post(url, json=item).status_code == 201
    assert api.post(url, json={**item, "value": "two"}).status_code == 400
    assert (
        api.post(url, params={"upsert": "true"}, json={**item, "value": "two"}).status_code == 201
    )
    assert [(e["key"], e["value"]) for e in fv.env[project["id"]]] == [("A", "two")]
    assert api.get(url).json()["envs"][0]["value"] == ""
    assert fv.violations == []


def test_deployments_are_listed_newest_first_in_pages_joined_by_until(fv, api):
    project = fv.add_project("s")
    made = [deploy(api, fv, project, {"i": bytes([n])})["id"] for n in range(3)]
    url = f"{fv.api_url}/v6/deployments"
    page = api.get(url, params={"projectId": project["id"], "limit": 2}).json()
    assert [d["uid"] for d in page["deployments"]] == made[:0:-1]
    rest = api.get(
        url, params={"projectId": project["id"], "limit": 2, "until": page["pagination"]["next"]}
    ).json()
    assert [d["uid"] for d in rest["deployments"]] == made[:1]
    assert rest["pagination"]["next"] is None


def test_a_deploy_hook_redeploys_production_without_the_token(fv, api):
    project = fv.add_project("s")
    live = deploy(api, fv, project, {"index.html": b"v1"}, target="production")
    hook = fv.add_deploy_hook(project["id"])
    r = requests.post(hook, timeout=5)
    assert r.status_code == 201 and r.json()["job"]["state"] == "PENDING"
    (rebuilt,) = [d for d in fv.deployments.values() if d["id"] != live["id"]]
    assert fv.deployment_files(rebuilt["id"]) == fv.deployment_files(live["id"])
    assert requests.post(hook.rsplit("/", 1)[0] + "/nope", timeout=5).status_code == 404


def test_a_team_id_is_required_when_the_fake_has_a_team(fv, api):
    fv.team_id = "team_x"
    project = fv.add_project("s")
    assert api.get(f"{fv.api_url}/v9/projects/{project['id']}").status_code == 404
    found = api.get(f"{fv.api_url}/v9/projects/{project['id']}", params={"teamId": "team_x"})
    assert found.status_code == 200 and found.json()["accountId"] == "team_x"


def test_injected_faults_come_first_and_in_order(fv, api):
    fv.inject("GET", r"^/v10/projects$", status=429, headers=fv.retry_after(3))
    fv.inject("GET", r"^/v10/projects$", status=429, headers=fv.retry_after(3, as_date=True))
    first, second = api.get(f"{fv.api_url}/v10/projects"), api.get(f"{fv.api_url}/v10/projects")
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "3" and second.headers["Retry-After"].endswith(" GMT")
    fv.inject("GET", r"^/v10/projects$", drop=True)
    with pytest.raises(requests.ConnectionError):
        api.get(f"{fv.api_url}/v10/projects")
    assert api.get(f"{fv.api_url}/v10/projects").status_code == 200
    assert [r.injected for r in fv.requests] == [True, True, True, False]


def test_reset_forgets_everything(fv, api):
    project = fv.add_project("s")
    deploy(api, fv, project, {"a": b"a"}, target="production")
    fv.inject("GET", ".", status=500)
    fv.team_id, fv.ready_after_polls = "t", 5
    fv.reset()
    assert (fv.projects, fv.deployments, fv.blobs, fv.uploads, fv.requests) == ({}, {}, {}, [], [])
    assert (fv.team_id, fv.ready_after_polls) == (None, 1)
    assert api.get(f"{fv.api_url}/v10/projects").json()["projects"] == []


def test_start_and_stop_are_quick_and_local():
    began = time.monotonic()
    fake = FakeVercel(token="t").start()
    try:
        assert fake.base.startswith("http://127.0.0.1:") and fake.start() is fake
    finally:
        fake.stop()
        fake.stop()
    assert time.monotonic() - began < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(fake.api_url + "/v10/projects", timeout=2)


def test_requests_can_be_checked_after_the_fact(fv, api):
    fv.check_requests = False
    api.get(f"{fv.api_url}/v6/deployments", params={"page": "2"})
    assert fv.violations == []
    (problem,) = fv.violations_of(fv.requests)
    assert "'page' is not declared" in problem
    fv.violations.clear()  # the fixture's fake is shared: leave it clean
