"""The fake GitHub API itself: it serves exactly the spec subset's operations, and checks them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from fake_github import ROUTES, FakeGitHub, check_request, load_spec

JSON = {"content-type": "application/json"}
DEPLOYMENTS = "/repos/octo/site/deployments"


@pytest.fixture
def gh(github_server: FakeGitHub) -> FakeGitHub:
    github_server.reset()
    github_server.add_repository("octo/site")
    return github_server


@pytest.fixture
def api(gh: FakeGitHub) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {gh.token}"
        yield session


def test_the_routes_are_exactly_the_operations_of_the_spec_subset():
    operations = {
        (method.upper(), template)
        for template, item in load_spec()["paths"].items()
        for method in item
    }
    assert set(ROUTES) == operations


def test_every_reference_in_the_spec_subset_resolves():
    spec = load_spec()

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(spec):
        target = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # a KeyError is a dangling reference


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "problem"),
    [
        ("GET", "/repos/o/r/hooks", {}, b"", "no path template"),
        ("GET", "/repos/o/r/deployments", {}, b"", "no GET operation"),
        ("POST", "/repos/o/r/deployments", JSON, b"", "requires a body"),
        ("POST", "/repos/o/r/deployments", JSON, b"{", "not JSON"),
        ("POST", "/repos/o/r/deployments", {"content-type": "text/plain"}, b"x", "Content-Type"),
        ("POST", "/repos/o/r/deployments", JSON, b'{"environment": "x"}', "'ref' is a required"),
        ("POST", "/repos/o/r/deployments", JSON, b'{"ref": "a", "auto_merge": "no"}', "auto_merge"),
        ("POST", "/repos/o/r/deployments/abc/statuses", JSON, b'{"state": "success"}', "integer"),
        ("POST", "/repos/o/r/deployments/1/statuses", JSON, b'{"state": "done"}', "'done' is not"),
    ],
)
def test_requests_that_break_the_spec_are_caught(method, path, headers, body, problem):
    problems = check_request(method, path, headers, body)
    assert any(problem in p for p in problems), problems


def test_what_devops_tasks_sends_breaks_nothing():
    deployment = (
        b'{"ref": "abc", "task": "deploy", "auto_merge": false, "required_contexts": [],'
        b' "environment": "pr-1", "production_environment": false,'
        b' "transient_environment": true, "description": null, "payload": {"a": 1}}'
    )
    status = b'{"state": "error", "description": "d", "auto_inactive": true, "log_url": "u"}'
    assert check_request("POST", DEPLOYMENTS, JSON, deployment) == []
    assert check_request("POST", f"{DEPLOYMENTS}/7/statuses", JSON, status) == []


def test_a_wrong_token_is_refused_with_401(gh):
    answer = requests.post(
        gh.api_url + DEPLOYMENTS,
        json={"ref": "a"},
        headers={"Authorization": "Bearer nope"},
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["message"] == "Bad credentials"
    assert gh.deployments == {}


def test_an_unknown_repository_or_deployment_is_404(gh, api):
    other_repository = api.post(f"{gh.api_url}/repos/octo/other/deployments", json={"ref": "a"})
    no_deployment = api.post(f"{gh.api_url}{DEPLOYMENTS}/99/statuses", json={"state": "success"})

    assert other_repository.status_code == 404 and no_deployment.status_code == 404


def test_a_ref_the_repository_lacks_is_422(gh, api):
    gh.add_repository("octo/site", commits={"a" * 40})

    answer = api.post(gh.api_url + DEPLOYMENTS, json={"ref": "b" * 40}, timeout=5)

    assert answer.status_code == 422 and "No ref found" in answer.json()["message"]


def test_a_deployment_and_its_statuses_as_github_answers_them(gh, api):
    created = api.post(gh.api_url + DEPLOYMENTS, json={"ref": "a", "environment": "qa"}, timeout=5)
    deployment = created.json()
    status = api.post(
        f"{gh.api_url}{DEPLOYMENTS}/{deployment['id']}/statuses",
        json={"state": "success", "log_url": "https://ci.example.test/1"},
        timeout=5,
    )

    assert created.status_code == 201 and deployment["production_environment"] is False
    assert status.status_code == 201 and status.json()["target_url"] == "https://ci.example.test/1"
    assert gh.states(deployment["id"]) == ["success"]
    assert gh.violations == []
