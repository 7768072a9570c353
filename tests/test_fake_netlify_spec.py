"""The fake Netlify API (tests/fake_netlify.py) must follow Netlify's own OpenAPI spec.

The spec is read here independently of the fake's own checker, once per module.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fake_netlify
import pytest
import requests
import yaml
from fake_netlify import ROUTES, FakeNetlify

API = "/api/v1"


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with fake_netlify.SPEC_PATH.open("rb") as fh:
        return yaml.load(fh, Loader=loader)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeNetlify]:
    fake = FakeNetlify().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def nf(server: FakeNetlify) -> FakeNetlify:
    server.reset()
    return server


@pytest.fixture
def api(nf: FakeNetlify) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {nf.token}"
    with session:
        yield session


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def upload(
    api: requests.Session, nf: FakeNetlify, deploy_id: str, path: str, data: bytes
) -> requests.Response:
    return api.put(
        f"{nf.api_url}/deploys/{deploy_id}/files/{path.lstrip('/')}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )


def deploy_site(
    api: requests.Session, nf: FakeNetlify, site_id: str, files: dict[str, bytes], **body: Any
) -> dict[str, Any]:
    """Create a deploy, upload what it requires, poll until it settles; the final deploy."""
    manifest = {path: sha1(data) for path, data in files.items()}
    r = api.post(f"{nf.api_url}/sites/{site_id}/deploys", json={"files": manifest, **body})
    assert r.status_code == 200, r.text
    deploy = r.json()
    by_sha = {sha1(data): (path, data) for path, data in files.items()}
    for digest in deploy["required"]:
        path, data = by_sha[digest]
        assert upload(api, nf, deploy["id"], path, data).status_code == 200
    for _ in range(10):
        deploy = api.get(f"{nf.api_url}/sites/{site_id}/deploys/{deploy['id']}").json()
        if deploy["state"] in ("ready", "error"):
            return deploy
    raise AssertionError(f"deploy never settled: {deploy}")


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{(path|file_path)\\\}", r".+", pattern)
    pattern = re.sub(r"\\\{[^/]+?\\\}", r"[^/]+", pattern)
    return re.compile(pattern)


_TYPES: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "array": list,
    "object": dict,
}


def conformance_problems(spec: dict[str, Any], value: Any, schema: Any, where: str) -> list[str]:
    """Keys not in the schema's properties (recursively) and values of the wrong JSON type.

    null is accepted anywhere: Netlify sends null for unset fields, and the spec marks
    almost nothing x-nullable.
    """
    schema = resolve(spec, schema)
    if value is None or not isinstance(schema, dict):
        return []
    problems: list[str] = []
    props: dict[str, Any] = dict(schema.get("properties") or {})
    for part in schema.get("allOf", []):
        props.update(resolve(spec, part).get("properties") or {})
    kind = schema.get("type") or ("object" if props else None)
    expected = _TYPES.get(kind) if kind else None
    if expected is not None and (
        not isinstance(value, expected)
        or (kind in ("integer", "number") and isinstance(value, bool))
    ):
        return [f"{where}: {type(value).__name__} where the spec says {kind}"]
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += conformance_problems(spec, item, schema.get("items", {}), f"{where}[{i}]")
    elif isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                problems += conformance_problems(spec, item, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                problems += conformance_problems(spec, item, extra, f"{where}.{key}")
            elif props or extra is False:
                problems.append(f"{where}: key {key!r} is not a property in the spec")
    return problems


def response_problems(spec: dict[str, Any], rec: fake_netlify.RecordedRequest) -> list[str]:
    where = f"{rec.method} {rec.path} -> {rec.status}"
    if rec.route is None:
        return [f"{where}: served by no ROUTES entry"]
    if not template_regex(rec.route).fullmatch(rec.path[len(API) :]):
        return [f"{where}: recorded route {rec.route} does not match the path"]
    op = spec["paths"][rec.route][rec.method.lower()]
    responses = op["responses"]
    declared = responses.get(str(rec.status))
    if declared is None:
        if 200 <= (rec.status or 0) < 300 or "default" not in responses:
            return [f"{where}: {op['operationId']} declares {sorted(responses)}"]
        declared = responses["default"]
    schema = resolve(spec, declared).get("schema")
    if schema is None:
        return [] if rec.response is None else [f"{where}: the spec declares no response body"]
    return conformance_problems(spec, rec.response, schema, f"{where} ({op['operationId']})")


# ---------------------------------------------------------------------------------------------
# ROUTES against the spec
# ---------------------------------------------------------------------------------------------


def test_every_route_exists_in_the_spec_with_that_method(spec: dict[str, Any]) -> None:
    assert spec["basePath"] == API == fake_netlify.API_PREFIX
    assert len(set(ROUTES)) == len(ROUTES)
    for method, template in ROUTES:
        assert template in spec["paths"], f"{template} is not a path in the spec"
        assert method.lower() in spec["paths"][template], (
            f"the spec has no {method} for {template}: {sorted(spec['paths'][template])}"
        )


def test_a_scripted_session_conforms_to_the_spec(
    spec: dict[str, Any], nf: FakeNetlify, api: requests.Session
) -> None:
    url = nf.api_url
    page_a, page_b, page_c = b"<h1>A</h1>", b"<h1>B</h1>", b"<h1>C</h1>"

    assert api.get(f"{url}/user").status_code == 200
    account = api.get(f"{url}/accounts").json()[0]
    r = api.post(f"{url}/sites", json={"name": "spec-site"})
    assert r.status_code == 201
    site = r.json()
    sid = site["id"]
    assert [s["id"] for s in api.get(f"{url}/sites", params={"name": "spec"}).json()] == [sid]
    assert api.get(f"{url}/sites", params={"name": sid, "filter": "all"}).json()[0]["id"] == sid
    assert api.get(f"{url}/sites/{sid}").json()["published_deploy"] is None
    assert api.get(f"{url}/accounts/{account['slug']}/env", params={"site_id": sid}).json() == []

    # A synchronous deploy: three paths, two digests.
    files = {
        "/index.html": sha1(page_a),
        "/about/index.html": sha1(page_b),
        "/copy.html": sha1(page_a),
    }
    r = api.post(
        f"{url}/sites/{sid}/deploys",
        params={"title": "first"},
        json={"files": files, "draft": False},
    )
    assert r.status_code == 200
    first = r.json()
    assert first["state"] == "uploading"
    assert first["required"] == [sha1(page_a), sha1(page_b)]
    assert first["title"] == "first" and first["context"] == "production"
    assert upload(api, nf, first["id"], "index.html", page_a).status_code == 200
    assert upload(api, nf, first["id"], "about/index.html", b"wrong").status_code == 422
    assert upload(api, nf, first["id"], "about/index.html", page_b).status_code == 200
    first = api.get(f"{url}/sites/{sid}/deploys/{first['id']}").json()
    assert first["state"] == "ready" and first["published_at"]
    assert api.get(f"{url}/deploys/{first['id']}").json()["state"] == "ready"
    assert api.get(f"{url}/sites/{sid}").json()["published_deploy"]["id"] == first["id"]
    listed = api.get(f"{url}/sites/{sid}/files").json()
    assert [(f["path"], f["sha"], f["size"]) for f in listed] == [
        ("/about/index.html", sha1(page_b), len(page_b)),
        ("/copy.html", sha1(page_a), len(page_a)),
        ("/index.html", sha1(page_a), len(page_a)),
    ]
    live = api.get(f"{url}/sites/{sid}").json()["ssl_url"]
    assert requests.get(live + "/", timeout=5).content == page_a
    assert requests.get(live + "/about/", timeout=5).content == page_b
    assert requests.get(live + "/copy.html", timeout=5).content == page_a

    # The way netlify-cli deploys: create an empty deploy, then PUT the files (async).
    r = api.post(f"{url}/sites/{sid}/deploys", params={"title": "second"}, json={"draft": False})
    second = r.json()
    assert second["state"] == "new"
    r = api.put(
        f"{url}/sites/{sid}/deploys/{second['id']}",
        json={"files": {"index.html": sha1(page_c)}, "async": True, "draft": False},
    )
    assert r.status_code == 200 and r.json()["state"] == "preparing"
    prepared = api.get(f"{url}/sites/{sid}/deploys/{second['id']}").json()
    assert prepared["state"] == "prepared" and prepared["required"] == [sha1(page_c)]
    assert upload(api, nf, second["id"], "index.html", page_c).status_code == 200
    assert api.get(f"{url}/sites/{sid}/deploys/{second['id']}").json()["state"] == "ready"
    assert requests.get(live, timeout=5).content == page_c

    listed = api.get(f"{url}/sites/{sid}/deploys", params={"page": 1, "per_page": 10}).json()
    assert [d["id"] for d in listed] == [second["id"], first["id"]]

    r = api.post(f"{url}/sites/{sid}/deploys/{first['id']}/restore")
    assert r.status_code == 201
    assert api.get(f"{url}/sites/{sid}").json()["published_deploy"]["id"] == first["id"]
    assert requests.get(live, timeout=5).content == page_a

    third = api.post(f"{url}/sites/{sid}/deploys", json={"files": {"/x.html": sha1(b"x")}}).json()
    r = api.post(f"{url}/deploys/{third['id']}/cancel")
    assert r.status_code == 201 and r.json()["state"] == "error"

    r = api.post(f"{url}/sites/{sid}/builds", params={"title": "rebuild"})
    assert r.status_code == 200
    build = r.json()
    assert build["done"] is False
    assert api.get(f"{url}/builds/{build['id']}").json()["done"] is True
    assert [b["id"] for b in api.get(f"{url}/sites/{sid}/builds").json()] == [build["id"]]

    assert api.post(f"{url}/sites/{sid}/build_hooks", json={"title": "ci"}).status_code == 201
    assert [h["title"] for h in api.get(f"{url}/sites/{sid}/build_hooks").json()] == ["ci"]

    assert nf.violations == []
    served = [r for r in nf.requests if r.path.startswith(API + "/")]
    problems = [p for rec in served for p in response_problems(spec, rec)]
    assert problems == []
    assert {(r.method, r.route) for r in served} == set(ROUTES), "the session must cover ROUTES"


def test_the_spec_checker_catches_an_invented_route(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    r = api.get(f"{nf.api_url}/sites/{site['id']}/invented")
    assert r.status_code == 404
    assert len(nf.violations) == 1 and "/invented" in nf.violations[0]
    assert "no path template" in nf.violations[0]


def test_the_spec_checker_catches_a_method_the_spec_lacks(
    nf: FakeNetlify, api: requests.Session
) -> None:
    r = api.delete(f"{nf.api_url}/deploys/abc/files/index.html")
    assert r.status_code == 404
    assert len(nf.violations) == 1 and "no DELETE operation" in nf.violations[0]


def test_the_spec_checker_catches_an_invented_body_key(
    nf: FakeNetlify, api: requests.Session
) -> None:
    site = nf.add_site("s")
    r = api.post(f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {}, "frobnicate": True})
    assert r.status_code == 200  # recorded, not rejected
    assert len(nf.violations) == 1
    assert "'frobnicate'" in nf.violations[0] and "deployFiles" in nf.violations[0]


def test_the_spec_checker_catches_an_invented_query_parameter(
    nf: FakeNetlify, api: requests.Session
) -> None:
    assert api.get(f"{nf.api_url}/sites", params={"colour": "red"}).status_code == 200
    assert len(nf.violations) == 1 and "'colour'" in nf.violations[0]


def test_title_belongs_in_the_query_not_the_deploy_body(
    nf: FakeNetlify, api: requests.Session
) -> None:
    site = nf.add_site("s")
    api.post(f"{nf.api_url}/sites/{site['id']}/deploys", params={"title": "ok"}, json={"files": {}})
    assert nf.violations == []
    api.post(f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {}, "title": "no"})
    assert len(nf.violations) == 1 and "'title'" in nf.violations[0]


def test_create_build_takes_query_parameters_not_json(
    nf: FakeNetlify, api: requests.Session
) -> None:
    site = nf.add_site("s")
    api.post(f"{nf.api_url}/sites/{site['id']}/builds", params={"clear_cache": "true"})
    assert nf.violations == []
    api.post(f"{nf.api_url}/sites/{site['id']}/builds", json={"clear_cache": True})
    assert any("declares no body parameter" in v for v in nf.violations)
    assert any("multipart/form-data" in v for v in nf.violations)


def test_an_upload_without_octet_stream_content_type_is_a_violation(
    nf: FakeNetlify, api: requests.Session
) -> None:
    site = nf.add_site("s")
    deploy = api.post(
        f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {"/a": sha1(b"a")}}
    ).json()
    r = api.put(
        f"{nf.api_url}/deploys/{deploy['id']}/files/a",
        data=b"a",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    assert len(nf.violations) == 1 and "application/octet-stream" in nf.violations[0]


# ---------------------------------------------------------------------------------------------
# Transport: chunked bodies, keep-alive, faults, concurrency, auth
# ---------------------------------------------------------------------------------------------


def test_a_chunked_upload_without_content_length_is_stored(nf: FakeNetlify) -> None:
    site = nf.add_site("s")
    data = bytes(range(256)) * 800  # 200 KiB
    body = {"files": {"/assets/big file.bin": sha1(data)}}
    conn = http.client.HTTPConnection("127.0.0.1", int(nf.base.rsplit(":", 1)[1]), timeout=10)
    auth = {"Authorization": f"Bearer {nf.token}"}
    try:
        conn.request(
            "POST",
            f"{API}/sites/{site['id']}/deploys",
            body=json.dumps(body),
            headers={**auth, "Content-Type": "application/json"},
        )
        deploy = json.loads(conn.getresponse().read())

        chunks = (data[i : i + 7000] for i in range(0, len(data), 7000))
        conn.request(
            "PUT",
            f"{API}/deploys/{deploy['id']}/files/assets/big%20file.bin",
            body=chunks,
            encode_chunked=True,
            headers={
                **auth,
                "Content-Type": "application/octet-stream",
                "Transfer-Encoding": "chunked",
            },
        )
        response = conn.getresponse()
        result = json.loads(response.read())
        assert response.status == 200, result
        assert result["sha"] == sha1(data) and result["size"] == len(data)
        assert result["path"] == "/assets/big file.bin"

        # The same keep-alive connection still works after the chunked body.
        conn.request("GET", f"{API}/deploys/{deploy['id']}", headers=auth)
        assert json.loads(conn.getresponse().read())["state"] == "ready"
    finally:
        conn.close()
    put = next(r for r in nf.requests if r.method == "PUT")
    assert put.headers["transfer-encoding"] == "chunked" and "content-length" not in put.headers
    assert nf.blobs[sha1(data)] == data
    assert nf.uploads == [(deploy["id"], "/assets/big file.bin", sha1(data))]
    assert nf.violations == []


def test_an_injected_429_carries_rate_limit_headers(nf: FakeNetlify, api: requests.Session) -> None:
    before = time.time()
    nf.inject("GET", r"^/api/v1/sites$", status=429, times=2, headers=nf.rate_limit_headers(3))
    for _ in range(2):
        r = api.get(f"{nf.api_url}/sites")
        assert r.status_code == 429
        assert r.headers["X-RateLimit-Limit"] == "500"
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert before + 2 <= int(r.headers["X-RateLimit-Reset"]) <= time.time() + 3
        assert r.headers["Retry-After"] == "3"
        assert r.json() == {"code": 429, "message": "Too Many Requests"}
    assert api.get(f"{nf.api_url}/sites").status_code == 200
    assert [r.status for r in nf.requests] == [429, 429, 200]
    assert [r.injected for r in nf.requests] == [True, True, False]


def test_injected_faults_are_consumed_in_order(nf: FakeNetlify, api: requests.Session) -> None:
    nf.inject("GET", r"/accounts", status=503)
    nf.inject("*", r"/accounts", status=502, body={"code": 502, "message": "bad gateway"})
    assert api.get(f"{nf.api_url}/accounts").status_code == 503
    r = api.get(f"{nf.api_url}/accounts")
    assert r.status_code == 502 and r.json()["message"] == "bad gateway"
    assert api.get(f"{nf.api_url}/accounts").status_code == 200


def test_an_injected_drop_closes_the_connection(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    deploy = api.post(
        f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {"/a.txt": sha1(b"a")}}
    ).json()  # warms a keep-alive conn
    nf.inject("PUT", r"/files/", drop=True)
    with pytest.raises(requests.ConnectionError):
        upload(api, nf, deploy["id"], "a.txt", b"a")
    assert nf.uploads == []
    assert upload(api, nf, deploy["id"], "a.txt", b"a").status_code == 200
    dropped = [r for r in nf.requests if r.injected]
    assert len(dropped) == 1 and dropped[0].status is None
    assert len(nf.uploads) == 1


def test_fifty_concurrent_uploads_are_all_stored(nf: FakeNetlify) -> None:
    site = nf.add_site("s")
    contents = {f"/files/{i:02d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(50)}
    headers = {"Authorization": f"Bearer {nf.token}"}
    deploy = requests.post(
        f"{nf.api_url}/sites/{site['id']}/deploys",
        headers=headers,
        json={"files": {p: sha1(d) for p, d in contents.items()}},
        timeout=10,
    ).json()
    assert len(deploy["required"]) == 50
    barrier = threading.Barrier(50)

    def put(item: tuple[str, bytes]) -> int:
        path, data = item
        barrier.wait(timeout=10)
        return requests.put(
            f"{nf.api_url}/deploys/{deploy['id']}/files{path}",
            data=data,
            headers={**headers, "Content-Type": "application/octet-stream"},
            timeout=10,
        ).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(put, contents.items()))
    assert statuses == [200] * 50
    assert sorted(path for _, path, _ in nf.uploads) == sorted(contents)
    assert all(nf.blobs[sha1(d)] == d for d in contents.values())
    state = requests.get(
        f"{nf.api_url}/deploys/{deploy['id']}", headers=headers, timeout=10
    ).json()["state"]
    assert state == "ready"
    assert nf.violations == []


def test_api_requests_need_the_bearer_token(nf: FakeNetlify) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": nf.token}):
        r = requests.get(f"{nf.api_url}/sites", headers=headers, timeout=5)
        assert r.status_code == 401
        assert r.json() == {"code": 401, "message": "Access Denied"}
    r = requests.get(
        f"{nf.api_url}/sites", headers={"Authorization": f"bearer {nf.token}"}, timeout=5
    )
    assert r.status_code == 200


# ---------------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------------


def test_draft_deploys_are_served_as_previews_but_not_published(
    nf: FakeNetlify, api: requests.Session
) -> None:
    site = nf.add_site("s")
    deploy = deploy_site(api, nf, site["id"], {"/index.html": b"draft"}, draft=True)
    assert deploy["state"] == "ready" and deploy["context"] == "deploy-preview"
    assert deploy["published_at"] is None
    assert nf.sites[site["id"]]["published_deploy"] is None
    assert requests.get(deploy["deploy_ssl_url"] + "/", timeout=5).content == b"draft"
    assert requests.get(site["url"] + "/", timeout=5).status_code == 404


def test_a_draft_stays_a_draft_when_its_files_are_put(
    nf: FakeNetlify, api: requests.Session
) -> None:
    """netlify-cli creates {"draft": true}, then PUTs the files with "draft": false."""
    site = nf.add_site("s")
    url = f"{nf.api_url}/sites/{site['id']}/deploys"
    deploy = api.post(url, params={"title": "t"}, json={"draft": True}).json()
    assert deploy["state"] == "new" and deploy["context"] == "deploy-preview"
    deploy = api.put(
        f"{url}/{deploy['id']}",
        json={"files": {"index.html": sha1(b"d")}, "async": False, "draft": False},
    ).json()
    assert deploy["draft"] is True and deploy["required"] == [sha1(b"d")]
    assert upload(api, nf, deploy["id"], "index.html", b"d").status_code == 200
    assert api.get(f"{url}/{deploy['id']}").json()["state"] == "ready"
    assert nf.sites[site["id"]]["published_deploy"] is None
    assert nf.violations == []


def test_a_branch_deploy_is_not_published(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    deploy = deploy_site(api, nf, site["id"], {"/index.html": b"b"}, branch="feature")
    assert deploy["state"] == "ready" and deploy["context"] == "branch-deploy"
    assert nf.sites[site["id"]]["published_deploy"] is None


def test_ready_after_polls_and_fail_next_deploy(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    nf.ready_after_polls = 3
    deploy = api.post(f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {}}).json()
    states = [api.get(f"{nf.api_url}/deploys/{deploy['id']}").json()["state"] for _ in range(3)]
    assert states == ["processing", "processing", "ready"]

    nf.fail_next_deploy = "Build script returned non-zero exit code: 2"
    failed = deploy_site(api, nf, site["id"], {"/a": b"a"})
    assert failed["state"] == "error"
    assert failed["error_message"] == "Build script returned non-zero exit code: 2"
    assert nf.fail_next_deploy is None
    assert nf.sites[site["id"]]["published_deploy"]["id"] == deploy["id"]
    r = api.post(f"{nf.api_url}/sites/{site['id']}/deploys/{failed['id']}/restore")
    assert r.status_code == 422


def test_upload_errors(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    deploy = api.post(
        f"{nf.api_url}/sites/{site['id']}/deploys", json={"files": {"/a.txt": sha1(b"a")}}
    ).json()
    assert upload(api, nf, "0" * 24, "a.txt", b"a").status_code == 404
    r = upload(api, nf, deploy["id"], "a.txt", b"not a")
    assert r.status_code == 422 and "SHA1" in r.json()["message"]
    assert upload(api, nf, deploy["id"], "other.txt", b"a").status_code == 422
    assert nf.uploads == [] and nf.blobs == {}


def test_blobs_are_shared_across_sites(nf: FakeNetlify, api: requests.Session) -> None:
    one, two = nf.add_site("one"), nf.add_site("two")
    deploy_site(api, nf, one["id"], {"/index.html": b"same"})
    r = api.post(
        f"{nf.api_url}/sites/{two['id']}/deploys", json={"files": {"/index.html": sha1(b"same")}}
    )
    assert r.json()["required"] == [] and r.json()["state"] == "processing"


def test_site_lookup_by_name_also_matches_an_id(nf: FakeNetlify, api: requests.Session) -> None:
    a, b = nf.add_site("alpha-site"), nf.add_site("beta-site")

    def names(**query: Any) -> list[str]:
        return [s["name"] for s in api.get(f"{nf.api_url}/sites", params=query).json()]

    assert names(name="site") == ["alpha-site", "beta-site"]
    assert names(name="beta") == ["beta-site"]
    assert names(name=a["id"]) == ["alpha-site"]
    assert names(per_page=1, page=2) == ["beta-site"]
    assert api.get(f"{nf.api_url}/sites/{b['id']}").json()["name"] == "beta-site"
    assert api.get(f"{nf.api_url}/sites/beta-site").status_code == 404
    with pytest.raises(ValueError, match="already exists"):
        nf.add_site("alpha-site")
    with pytest.raises(ValueError, match="not properties"):
        nf.add_site("gamma", invented_field=1)


def test_a_build_hook_url_creates_a_build(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    deploy_site(api, nf, site["id"], {"/index.html": b"v1"})
    hook = nf.add_build_hook(site["id"])
    assert hook.startswith(nf.base + "/build_hooks/")
    r = requests.post(hook, timeout=5)
    assert r.status_code == 200
    (build,) = nf.builds.values()
    assert build["done"] is False
    assert api.get(f"{nf.api_url}/builds/{build['id']}").json()["done"] is True
    rebuilt = nf.deploys[build["deploy_id"]]
    assert rebuilt["state"] == "ready" and rebuilt["build_id"] == build["id"]
    assert requests.get(site["url"] + "/", timeout=5).content == b"v1"
    assert requests.post(nf.base + "/build_hooks/nope", timeout=5).status_code == 404


def test_cli_support_routes_and_unknown_routes(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    assert requests.get(f"{nf.base}/site/{site['id']}/integrations/safe", timeout=5).json() == []
    r = requests.get(
        f"{nf.base}/team/fake-team/integrations/installations/meta/{site['id']}", timeout=5
    )
    assert r.json() == []
    assert requests.post(f"{nf.base}/telemetry/api/v1/track", json={"a": 1}, timeout=5).json() == {}
    assert requests.get(f"{nf.base}/telemetry/x", timeout=5).json() == {}
    assert api.get(f"{nf.api_url}/accounts/{nf.account['id']}/env").json() == []
    assert api.get(f"{nf.api_url}/accounts/someone-else/env").status_code == 404
    r = requests.get(f"{nf.base}/nowhere", timeout=5)
    assert r.status_code == 404 and r.json()["code"] == 404
    r = api.get(f"{nf.api_url}/sites/{site['id']}/forms")  # in the spec, not in the fake
    assert r.status_code == 404 and nf.violations == []


def test_reset_forgets_everything(nf: FakeNetlify, api: requests.Session) -> None:
    site = nf.add_site("s")
    deploy_site(api, nf, site["id"], {"/a": b"a"})
    nf.add_build_hook(site["id"])
    nf.inject("GET", ".", status=500)
    nf.ready_after_polls = 5
    nf.fail_next_deploy = "x"
    api.get(f"{nf.api_url}/nope")
    nf.reset()
    assert (nf.sites, nf.deploys, nf.builds, nf.blobs, nf.uploads, nf.requests, nf.violations) == (
        {},
        {},
        {},
        {},
        [],
        [],
        [],
    )
    assert (nf.ready_after_polls, nf.fail_next_deploy) == (1, None)
    assert api.get(f"{nf.api_url}/sites").json() == []


def test_start_and_stop_are_fast_idempotent_and_local() -> None:
    began = time.monotonic()
    fake = FakeNetlify(token="t").start()
    try:
        assert fake.start() is fake
        assert fake.base.startswith("http://127.0.0.1:")
        assert fake.api_url == fake.base + API
        session = requests.Session()
        assert (
            session.get(
                fake.api_url + "/sites", headers={"Authorization": "Bearer t"}, timeout=5
            ).json()
            == []
        )
    finally:
        fake.stop()
        fake.stop()
    assert fake._server is None
    assert time.monotonic() - began < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(fake.api_url + "/sites", timeout=2)
