"""The independent fake of the Netlify API (``independent_netlify.mjs``): it serves only
operations of Netlify's OpenAPI description, answers with the spec's definitions, and runs
the file-digest deploy as Netlify does. No test waits on a clock."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from independent_netlify import IndependentNetlify, start

SPEC_FILE = Path(__file__).resolve().parents[1] / "specs" / "netlify-openapi.yml"
TOKEN = "independent-test-token"
OCTETS = {"Content-Type": "application/octet-stream"}

#: The operations the two benchmarked clients (devops deploy, netlify-cli) drive.
FLOW_OPERATIONS = {
    "createSite",
    "getSite",
    "createSiteDeploy",
    "getDeploy",
    "uploadDeployFile",
    "getSiteDeploy",
    "updateSiteDeploy",
    "listSiteFiles",
    "listSiteDeploys",
    "restoreSiteDeploy",
    "cancelSiteDeploy",
    "getCurrentUser",
    "listAccountsForUser",
}

#: Properties the fake returns beyond the spec's definitions, and why.
EXTRA_PROPERTIES = {
    "file": {"deploy_id"},  # Netlify's file listings name the deploy a file belongs to
}

#: Python types of the spec's JSON types (bool is an int in Python: checked apart).
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def server() -> Iterator[IndependentNetlify]:
    with start(TOKEN) as running:
        yield running


@pytest.fixture
def netlify(server: IndependentNetlify) -> IndependentNetlify:
    server.reset()
    return server


@pytest.fixture
def api(netlify: IndependentNetlify) -> Iterator[Api]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield Api(session, netlify.api_url)


class Api:
    """The API's calls the tests make, on one keep-alive session."""

    def __init__(self, session: requests.Session, url: str) -> None:
        self.session = session
        self.url = url

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=10, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code in (200, 201), (response.status_code, response.text)
        return response.json()

    def create_site(self, name: str | None = None) -> dict[str, Any]:
        return self.ok("POST", "/sites", json={"name": name} if name else {})

    def create_deploy(self, site: dict[str, Any], files: dict[str, bytes], **body: Any) -> Any:
        digests = {path: sha1(data) for path, data in files.items()}
        return self.ok("POST", f"/sites/{site['id']}/deploys", json={"files": digests, **body})

    def upload(self, deploy: dict[str, Any], path: str, data: bytes) -> requests.Response:
        quoted = quote(path.lstrip("/"))
        return self.call(
            "PUT", f"/deploys/{deploy['id']}/files/{quoted}", data=data, headers=OCTETS
        )

    def upload_required(self, deploy: dict[str, Any], files: dict[str, bytes]) -> None:
        """Uploads one path for each required sha1, as a client that deduplicates does."""
        by_sha = {sha1(data): (path, data) for path, data in files.items()}
        for sha in deploy["required"]:
            response = self.upload(deploy, *by_sha[sha])
            assert response.status_code == 200, response.text

    def deploy(self, deploy_id: str) -> Any:
        return self.ok("GET", f"/deploys/{deploy_id}")

    def site(self, site_id: str) -> Any:
        return self.ok("GET", f"/sites/{site_id}")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def a_site_of(count: int) -> dict[str, bytes]:
    """Paths and contents, with two pairs of paths that share a content."""
    files = {f"/page{i}.html": f"<p>page {i}</p>".encode() for i in range(count)}
    files["/copy/of page0.html"] = files["/page0.html"]
    files["/assets/same.css"] = b"body{}"
    files["/assets/also same.css"] = b"body{}"
    return files


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed and its allOf merged."""
    if "$ref" in schema:
        return resolve(spec, spec["definitions"][schema["$ref"].rsplit("/", 1)[-1]])
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(resolve(spec, part).get("properties", {}))
        return merged
    return schema


def type_problems(
    spec: dict[str, Any], value: Any, schema: dict[str, Any], where: str, extras: set[str]
) -> list[str]:
    """Every property of ``value`` that the schema does not declare or declares another type."""
    schema = resolve(spec, schema)
    expected = JSON_TYPES.get(schema.get("type", "object"), object)
    if isinstance(value, bool) and schema.get("type") not in ("boolean", None):
        return [f"{where} is a boolean, the spec says {schema.get('type')}"]
    if not isinstance(value, expected):
        return [f"{where} is {type(value).__name__}, the spec says {schema.get('type')}"]
    problems = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                problems += type_problems(
                    spec, item, schema["properties"][key], f"{where}.{key}", set()
                )
            elif key not in extras:
                problems.append(f"{where}.{key} is not a property of the spec")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += type_problems(spec, item, schema["items"], f"{where}[{index}]", set())
    return problems


def definition_problems(spec: dict[str, Any], value: Any, name: str) -> list[str]:
    schema = {"$ref": f"#/definitions/{name}"}
    return type_problems(spec, value, schema, name, EXTRA_PROPERTIES.get(name, set()))


def published_site(api: Api, files: dict[str, bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A site whose first deploy of ``files`` is uploaded; the site and the deploy's answer."""
    site = api.create_site()
    deploy = api.create_deploy(site, files)
    api.upload_required(deploy, files)
    return site, deploy


# ---------------------------------------------------------------------------------------------
# The spec: routes, operations, definitions
# ---------------------------------------------------------------------------------------------


def test_every_served_route_is_an_operation_of_the_spec(
    netlify: IndependentNetlify, spec: dict[str, Any]
) -> None:
    routes = netlify.routes()
    assert routes
    outside = [(m, t) for m, t in routes if m.lower() not in spec["paths"].get(t, {})]
    assert outside == []


def test_the_deploy_flows_operations_are_all_served(
    netlify: IndependentNetlify, spec: dict[str, Any]
) -> None:
    served = {
        spec["paths"][template][method.lower()]["operationId"]
        for method, template in netlify.routes()
    }
    assert FLOW_OPERATIONS - served == set()


def test_a_route_outside_the_spec_is_a_404_with_the_specs_error(
    api: Api, spec: dict[str, Any]
) -> None:
    response = api.call("GET", "/sites/some-site/unknown-thing")
    assert response.status_code == 404
    error = response.json()
    assert error["code"] == 404 and error["message"]
    assert definition_problems(spec, error, "error") == []


def test_a_deploy_answer_has_the_specs_fields_and_types(api: Api, spec: dict[str, Any]) -> None:
    site = api.create_site()
    body = {"files": {"/index.html": sha1(b"<h1>hi</h1>")}}
    deploy = api.ok("POST", f"/sites/{site['id']}/deploys", params={"title": "first"}, json=body)
    assert deploy["title"] == "first"
    for field in ("id", "site_id", "state", "required", "draft", "url", "ssl_url", "admin_url",
                  "deploy_url", "deploy_ssl_url", "created_at", "title", "context"):  # fmt: skip
        assert field in deploy, field
    assert definition_problems(spec, deploy, "deploy") == []
    assert definition_problems(spec, api.deploy(deploy["id"]), "deploy") == []


def test_a_site_answer_has_the_specs_fields_and_types(api: Api, spec: dict[str, Any]) -> None:
    created = api.create_site("typed-site")
    assert created["published_deploy"] is None  # Netlify's answer for a site never deployed
    assert definition_problems(spec, {**created, "published_deploy": {}}, "site") == []
    deploy = api.create_deploy(created, {"/index.html": b"x"})
    api.upload_required(deploy, {"/index.html": b"x"})
    site = api.site(created["id"])
    for field in ("id", "name", "url", "ssl_url", "admin_url", "account_slug", "account_id",
                  "published_deploy", "created_at", "updated_at"):  # fmt: skip
        assert field in site, field
    assert definition_problems(spec, site, "site") == []
    [listed] = api.ok("GET", "/sites")
    assert definition_problems(spec, listed, "site") == []


def test_a_file_answer_has_the_specs_fields_and_types(api: Api, spec: dict[str, Any]) -> None:
    files = {"/index.html": b"<h1>hi</h1>"}
    site, deploy = published_site(api, files)
    listed = api.ok("GET", f"/sites/{site['id']}/files")
    assert listed and definition_problems(spec, listed[0], "file") == []
    uploaded = api.upload(deploy, "/index.html", files["/index.html"]).json()
    assert definition_problems(spec, uploaded, "file") == []


def test_user_and_accounts_answers_have_the_specs_types(api: Api, spec: dict[str, Any]) -> None:
    assert definition_problems(spec, api.ok("GET", "/user"), "user") == []
    accounts = api.ok("GET", "/accounts")
    assert len(accounts) == 1
    assert definition_problems(spec, accounts[0], "accountMembership") == []
    assert api.ok("GET", f"/accounts/{accounts[0]['id']}/env") == []


# ---------------------------------------------------------------------------------------------
# The file-digest deploy
# ---------------------------------------------------------------------------------------------


def test_first_deploy_requires_every_distinct_sha1_once(api: Api) -> None:
    files = a_site_of(20)
    deploy = api.create_deploy(api.create_site(), files)
    assert sorted(deploy["required"]) == sorted({sha1(data) for data in files.values()})
    assert len(deploy["required"]) == len(files) - 2  # two paths repeat a content
    assert deploy["state"] == "uploading"


def test_uploading_the_required_files_makes_the_deploy_ready_and_published(api: Api) -> None:
    files = a_site_of(20)
    site, deploy = published_site(api, files)
    assert api.deploy(deploy["id"])["state"] == "ready"
    published = api.site(site["id"])["published_deploy"]
    assert published["id"] == deploy["id"] and published["state"] == "ready"
    assert published["published_at"]


def test_a_deploy_is_not_ready_while_a_required_file_is_missing(api: Api) -> None:
    files = a_site_of(3)
    site = api.create_site()
    deploy = api.create_deploy(site, files)
    path, data = next(iter(files.items()))
    assert api.upload(deploy, path, data).status_code == 200
    assert api.deploy(deploy["id"])["state"] == "uploading"
    assert api.site(site["id"])["published_deploy"] is None


def test_site_files_list_every_path_with_its_sha(api: Api) -> None:
    files = a_site_of(20)
    site, _ = published_site(api, files)
    listed = api.ok("GET", f"/sites/{site['id']}/files")
    assert {f["path"]: f["sha"] for f in listed} == {p: sha1(d) for p, d in files.items()}
    assert {f["path"]: f["size"] for f in listed} == {p: len(d) for p, d in files.items()}


def test_an_unchanged_redeploy_requires_nothing_and_is_ready_at_once(api: Api) -> None:
    files = a_site_of(20)
    site, first = published_site(api, files)
    again = api.create_deploy(site, files)
    assert again["required"] == []
    assert again["state"] == "ready"
    assert api.site(site["id"])["published_deploy"]["id"] == again["id"] != first["id"]


def test_a_changed_redeploy_requires_only_the_new_content(api: Api) -> None:
    files = a_site_of(20)
    site, _ = published_site(api, files)
    changed = {**files, "/page3.html": b"<p>changed</p>", "/new.html": b"<p>new</p>"}
    again = api.create_deploy(site, changed)
    assert sorted(again["required"]) == sorted([sha1(b"<p>changed</p>"), sha1(b"<p>new</p>")])


def test_deduplication_is_per_site(api: Api) -> None:
    files = a_site_of(5)
    published_site(api, files)
    other = api.create_deploy(api.create_site(), files)
    assert len(other["required"]) == len(set(files.values()))


def test_an_upload_whose_bytes_do_not_match_the_declared_sha1_is_refused(api: Api) -> None:
    files = {"/index.html": b"<h1>declared</h1>"}
    site = api.create_site()
    deploy = api.create_deploy(site, files)
    response = api.upload(deploy, "/index.html", b"<h1>something else</h1>")
    assert response.status_code == 422
    assert response.json()["code"] == 422
    assert api.deploy(deploy["id"])["state"] != "ready"
    assert api.site(site["id"])["published_deploy"] is None


def test_an_upload_to_a_path_the_deploy_did_not_declare_is_refused(api: Api) -> None:
    files = {"/index.html": b"<h1>declared</h1>"}
    deploy = api.create_deploy(api.create_site(), files)
    response = api.upload(deploy, "/other.html", files["/index.html"])
    assert response.status_code == 422
    assert api.deploy(deploy["id"])["state"] != "ready"


def test_a_path_is_the_same_with_or_without_its_leading_slash_and_url_encoded(api: Api) -> None:
    data = b"spaces and slashes"
    site = api.create_site()
    deploy = api.ok(
        "POST", f"/sites/{site['id']}/deploys", json={"files": {"a dir/b c.html": sha1(data)}}
    )
    quoted = quote("a dir/b c.html", safe="")  # %2F too: some clients encode the slashes
    response = api.call("PUT", f"/deploys/{deploy['id']}/files/{quoted}", data=data, headers=OCTETS)
    assert response.status_code == 200 and response.json()["path"] == "/a dir/b c.html"
    assert api.deploy(deploy["id"])["state"] == "ready"


def test_netlify_clis_empty_deploy_gets_its_files_by_update(api: Api) -> None:
    files = a_site_of(3)
    site = api.create_site()
    empty = api.ok("POST", f"/sites/{site['id']}/deploys", json={"draft": False})
    assert empty["state"] == "new" and empty["required"] == []
    digests = {path.lstrip("/"): sha1(data) for path, data in files.items()}
    updated = api.ok("PUT", f"/sites/{site['id']}/deploys/{empty['id']}", json={"files": digests})
    assert updated["id"] == empty["id"]
    assert sorted(updated["required"]) == sorted({sha1(d) for d in files.values()})
    api.upload_required(updated, files)
    assert api.ok("GET", f"/sites/{site['id']}/deploys/{empty['id']}")["state"] == "ready"


def test_an_async_deploy_is_prepared_until_its_first_upload(api: Api) -> None:
    files = a_site_of(3)
    deploy = api.create_deploy(api.create_site(), files, **{"async": True})
    assert deploy["state"] == "prepared" and deploy["required"]
    path, data = next(iter(files.items()))
    api.upload(deploy, path, data)
    assert api.deploy(deploy["id"])["state"] == "uploading"


def test_a_draft_deploy_is_ready_but_not_published(api: Api) -> None:
    files = a_site_of(3)
    site = api.create_site()
    draft = api.create_deploy(site, files, draft=True)
    api.upload_required(draft, files)
    assert api.deploy(draft["id"])["state"] == "ready"
    assert api.site(site["id"])["published_deploy"] is None


def test_list_site_deploys_is_newest_first(api: Api) -> None:
    files = a_site_of(3)
    site, first = published_site(api, files)
    second = api.create_deploy(site, files)
    listed = api.ok("GET", f"/sites/{site['id']}/deploys")
    assert [d["id"] for d in listed] == [second["id"], first["id"]]


def test_restore_publishes_an_earlier_deploy_again(api: Api) -> None:
    files = a_site_of(3)
    site, first = published_site(api, files)
    api.create_deploy(site, {**files, "/new.html": b"new"})
    restored = api.call("POST", f"/sites/{site['id']}/deploys/{first['id']}/restore")
    assert restored.status_code == 201 and restored.json()["id"] == first["id"]
    assert api.site(site["id"])["published_deploy"]["id"] == first["id"]


def test_cancel_ends_an_unfinished_deploy_in_error(api: Api) -> None:
    files = a_site_of(3)
    deploy = api.create_deploy(api.create_site(), files)
    cancelled = api.call("POST", f"/deploys/{deploy['id']}/cancel")
    assert cancelled.status_code == 201 and cancelled.json()["state"] == "error"
    path, data = next(iter(files.items()))
    assert api.upload(deploy, path, data).status_code == 422


def test_list_sites_filters_by_name(api: Api) -> None:
    api.create_site("alpha-site")
    api.create_site("beta-site")
    names = [site["name"] for site in api.ok("GET", "/sites", params={"name": "alpha-site"})]
    assert names == ["alpha-site"]


def test_list_sites_takes_page_and_per_page(api: Api) -> None:
    for name in ("site-a", "site-b", "site-c"):
        api.create_site(name)
    pages = [api.ok("GET", "/sites", params={"page": page, "per_page": 2}) for page in (1, 2, 3)]
    assert [[site["name"] for site in page] for page in pages] == [
        ["site-a", "site-b"],
        ["site-c"],
        [],
    ]


def test_with_a_ready_delay_a_complete_deploy_is_processing_first() -> None:
    files = {"/index.html": b"x"}
    with start(TOKEN, ready_delay_ms=600_000) as slow, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        api = Api(session, slow.api_url)
        site, deploy = published_site(api, files)
        assert api.deploy(deploy["id"])["state"] == "processing"
        assert api.site(site["id"])["published_deploy"] is None


# ---------------------------------------------------------------------------------------------
# Auth, counters, reset, the launcher
# ---------------------------------------------------------------------------------------------


def test_a_wrong_token_is_401_and_counted_in_stats(netlify: IndependentNetlify) -> None:
    response = requests.get(
        netlify.api_url + "/sites", headers={"Authorization": "Bearer wrong"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["code"] == 401 and response.json()["message"]
    stats = netlify.stats()
    assert stats["requests"] == 1
    assert stats["by_route"] == {"GET /sites": 1}


def test_a_missing_token_is_401(netlify: IndependentNetlify) -> None:
    assert requests.get(netlify.api_url + "/user", timeout=10).status_code == 401


def test_stats_count_requests_and_uploads_by_route(netlify: IndependentNetlify, api: Api) -> None:
    files = a_site_of(3)
    published_site(api, files)
    stats = netlify.stats()
    assert stats["uploads"] == len(set(files.values()))
    assert stats["by_route"]["PUT /deploys/{deploy_id}/files/{path}"] == stats["uploads"]
    assert stats["requests"] == 2 + stats["uploads"]  # the site, the deploy, the uploads


def test_reset_empties_sites_and_counters(netlify: IndependentNetlify, api: Api) -> None:
    published_site(api, a_site_of(3))
    netlify.reset()
    assert netlify.stats() == {"requests": 0, "uploads": 0, "upload_bytes": 0, "by_route": {}}
    assert api.ok("GET", "/sites") == []


def test_stop_reaps_the_server() -> None:
    server = start(TOKEN)
    server.stop()
    assert server.process.returncode is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(server.base + "/__stats", timeout=5)


def test_start_says_so_when_node_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="node is not on PATH"):
        start(TOKEN)


def test_the_server_refuses_to_start_without_a_token() -> None:
    script = Path(__file__).with_name("independent_netlify.mjs")
    done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--token" in done.stderr
