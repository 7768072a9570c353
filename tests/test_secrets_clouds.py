"""The secrets.* tasks and a deploy's credentials with secrets.mode gcp and azure, end to end.

The secrets live in the fake Secret Manager and the fake Key Vault (tests/cloud_secrets.py),
reached by the providers' own client libraries; no value may appear in any output.
"""

from __future__ import annotations

import json

import pytest

MODES = ["gcp", "azure"]


@pytest.fixture(params=MODES)
def cloud_mode(request: pytest.FixtureRequest) -> str:
    """A cloud secrets mode, its store ready (the ``<mode>_store`` fixture)."""
    request.getfixturevalue(f"{request.param}_store")
    return str(request.param)


def use_mode(cli, request: pytest.FixtureRequest, mode: str) -> None:
    store = request.getfixturevalue(f"{mode}_store")
    settings = {"mode": mode, mode: store.options}
    assert cli("config.set", "secrets", json.dumps(settings), "--json").json["success"]


def test_the_secrets_tasks_work_with_the_cloud_stores(project, cli, request, cloud_mode):
    cli("init", "--json")
    use_mode(cli, request, cloud_mode)
    value = f"{cloud_mode}-held-value-7Q"
    results = [
        cli("secrets.set", "DB_PASSWORD", "--value", value, "--env", "staging", "--json"),
        cli("secrets.set", "SHARED_TOKEN", "--value", "shared-value-9Z", "--json"),
        cli("secrets.list", "--env", "staging", "--json"),
    ]
    assert all(r.json["success"] for r in results)
    listed = [(s["name"], s["scope"]) for s in results[-1].json["secrets"]]
    assert listed == [("DB_PASSWORD", "staging"), ("SHARED_TOKEN", "_shared")]
    shown = cli("secrets.get", "DB_PASSWORD", "--env", "staging", "--show", "--json")
    assert shown.json["value"] == value
    hidden = cli("secrets.get", "DB_PASSWORD", "--env", "staging", "--json")
    deleted = cli("secrets.delete", "DB_PASSWORD", "--env", "staging", "--json")
    assert deleted.json["success"]
    assert cli("secrets.list", "--env", "staging", "--json").json["secrets"][0]["name"] == (
        "SHARED_TOKEN"
    )
    for result in [*results, hidden, deleted]:
        assert value not in result.stdout + result.stderr
    assert not project.credentials_path.exists()
    assert cli("secrets.rotate-key", "--json").json["code"] == "NOT_SUPPORTED"


def test_a_deploy_uses_a_platform_token_from_the_cloud_store(
    netlify, cli, request, cloud_mode, monkeypatch
):
    monkeypatch.delenv("NETLIFY_AUTH_TOKEN")
    use_mode(cli, request, cloud_mode)
    stored = cli("secrets.set", "NETLIFY_AUTH_TOKEN", "--value", netlify.token, "--json")
    assert stored.json["success"]
    result = cli("deploy", "--json")
    assert result.json["success"], result.json
    assert netlify.token not in result.stdout + result.stderr
    assert netlify.requests and all(
        r.headers.get("authorization") == f"Bearer {netlify.token}"
        for r in netlify.requests
        if r.path.startswith("/api/v1/")
    )


def test_a_missing_cloud_credential_fails_the_deploy_before_any_platform_request(
    netlify, cli, request, cloud_mode, monkeypatch
):
    monkeypatch.delenv("NETLIFY_AUTH_TOKEN")
    use_mode(cli, request, cloud_mode)
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(variable, raising=False)
    result = cli("deploy", "--json")
    assert result.json["code"] == "CREDENTIALS_MISSING"
    assert netlify.requests == []
