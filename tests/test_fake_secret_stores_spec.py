"""The fake Secret Manager and the fake Key Vault themselves: they serve only operations of
their provider's description, check every request against it, and answer as the services do."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from cloud_secrets import GCP_PROJECT, VAULT_URL, AzureStore, GcpStore
from fake_key_vault import SPEC_PATH as KEY_VAULT_SPEC
from fake_key_vault import FakeKeyVault
from fake_secret_manager import SPEC_PATH as SECRET_MANAGER_SPEC
from fake_secret_manager import FakeSecretManager
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from spec_routes import from_discovery, from_swagger

JSON = b'{"payload": {"data": "YQ=="}}'
SECRETS = f"/v1/projects/{GCP_PROJECT}/secrets"
ALT = [("$alt", "json;enum-encoding=int")]


# -- Secret Manager --------------------------------------------------------------------------


def test_every_operation_the_secret_manager_fake_serves_is_in_the_discovery_document():
    described = {op.name for op in from_discovery(json.loads(SECRET_MANAGER_SPEC.read_bytes()))}
    assert set(FakeSecretManager.HANDLERS) <= described


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "problem"),
    [
        ("GET", "/v1/projects/p/nothing", [], b"", "no path template"),
        ("GET", f"{SECRETS}/s:addVersion", [], b"", "no GET here"),
        ("GET", SECRETS, ["page_size"], b"", "'page_size' is not declared"),
        ("POST", f"{SECRETS}/s:addVersion", [], b'{"data": "YQ=="}', "body key 'data'"),
        ("DELETE", f"{SECRETS}/s", [], b'{"etag": "x"}', "takes no body"),
        ("POST", f"{SECRETS}/s:addVersion", [], b"[1]", "not a JSON object"),
    ],
)
def test_requests_that_break_the_discovery_document_are_reported(
    method, path, query, body, problem
):
    problems = FakeSecretManager.routes.check(method, path, query, body)
    assert any(problem in p for p in problems), problems


def test_requests_as_the_client_library_sends_them_follow_the_discovery_document():
    sent = [
        (
            "POST",
            SECRETS,
            ["secretId", "$alt"],
            b'{"replication": {"automatic": {}}, "labels": {}}',
        ),
        ("POST", f"{SECRETS}/s:addVersion", ["$alt"], JSON),
        ("GET", f"{SECRETS}/s/versions/latest:access", ["$alt"], b""),
        ("GET", f"{SECRETS}/s/versions/latest", ["$alt"], b""),
        ("GET", SECRETS, ["pageSize", "pageToken", "$alt"], b""),
        ("DELETE", f"{SECRETS}/s", ["$alt"], b""),
    ]
    assert [p for r in sent for p in FakeSecretManager.routes.check(*r)] == []


@pytest.fixture
def google(gcp_store: GcpStore) -> AuthorizedSession:
    """A session that signs its requests as the store's service account does."""
    info = json.loads(gcp_store.key_file.read_text())
    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    ).with_always_use_jwt_access(True)
    return AuthorizedSession(credentials)


def _sm(google: AuthorizedSession, gcp_store: GcpStore, method: str, path: str, **kw: Any):
    return google.request(method, gcp_store.fake.base + path, params=ALT, timeout=5, **kw)


def test_secret_manager_answers_as_the_service_does(google, gcp_store):
    created = _sm(google, gcp_store, "POST", SECRETS + "?secretId=s", json={"replication": {}})
    assert created.status_code == 200 and created.json()["name"].endswith("/secrets/s")
    again = _sm(google, gcp_store, "POST", SECRETS + "?secretId=s", json={"replication": {}})
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"
    empty = _sm(google, gcp_store, "POST", f"{SECRETS}/s:addVersion", json={"payload": {}})
    assert empty.status_code == 400 and empty.json()["error"]["message"] == (
        "Field [payload] is required."
    )
    damaged = {"payload": {"data": "YQ==", "dataCrc32c": "1"}}
    assert (
        _sm(google, gcp_store, "POST", f"{SECRETS}/s:addVersion", json=damaged).status_code == 400
    )
    big = base64.b64encode(b"x" * 65_537).decode()
    too_big = _sm(
        google, gcp_store, "POST", f"{SECRETS}/s:addVersion", json={"payload": {"data": big}}
    )
    assert too_big.status_code == 400
    assert _sm(google, gcp_store, "POST", f"{SECRETS}/s:addVersion", data=JSON).status_code == 200
    read = _sm(google, gcp_store, "GET", f"{SECRETS}/s/versions/latest:access")
    assert base64.b64decode(read.json()["payload"]["data"]) == b"a"
    missing = _sm(google, gcp_store, "GET", f"{SECRETS}/nope/versions/latest:access")
    assert missing.json()["error"]["status"] == "NOT_FOUND"


def test_secret_manager_wants_a_token_signed_by_a_known_key_for_the_project(google, gcp_store):
    url = gcp_store.fake.base + SECRETS
    assert requests.get(url, timeout=5).json()["error"]["status"] == "UNAUTHENTICATED"
    forged = "Bearer e30.e30.c2ln"
    assert requests.get(url, headers={"Authorization": forged}, timeout=5).status_code == 401
    elsewhere = google.get(gcp_store.fake.base + "/v1/projects/other/secrets", timeout=5)
    assert elsewhere.json()["error"]["status"] == "PERMISSION_DENIED"


# -- Key Vault -------------------------------------------------------------------------------


def test_every_operation_the_key_vault_fake_serves_is_in_the_description():
    described = {op.name for op in from_swagger(json.loads(KEY_VAULT_SPEC.read_bytes()))}
    assert set(FakeKeyVault.HANDLERS) <= described


V = ["api-version"]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "problem"),
    [
        ("GET", "/keys/k", V, b"", "no path template"),
        ("POST", "/secrets/s", V, b"{}", "no POST here"),
        ("GET", "/secrets", [*V, "top"], b"", "'top' is not declared"),
        ("PUT", "/secrets/s", V, b'{"value": "v", "enabled": true}', "body key 'enabled'"),
        ("GET", "/secrets/s/", [*V, "$skiptoken"], b"", "'$skiptoken' is not declared"),
    ],
)
def test_requests_that_break_the_key_vault_description_are_reported(
    method, path, query, body, problem
):
    problems = FakeKeyVault.routes.check(method, path, query, body)
    assert any(problem in p for p in problems), problems


def test_requests_as_the_client_library_sends_them_follow_the_key_vault_description():
    sent = [
        ("PUT", "/secrets/a-1B", V, b'{"value": "v", "contentType": "text/plain", "tags": {}}'),
        ("GET", "/secrets/a-1B/", V, b""),  # "/{secret-version}" is optional: the latest
        ("GET", "/secrets", V, b""),
        ("GET", "/secrets", [*V, "$skiptoken", "maxresults"], b""),  # a nextLink
        ("DELETE", "/secrets/a-1B", V, b""),
        ("GET", "/deletedsecrets/a-1B", V, b""),
        ("DELETE", "/deletedsecrets/a-1B", V, b""),
        ("POST", "/deletedsecrets/a-1B/recover", V, b""),
    ]
    assert [p for r in sent for p in FakeKeyVault.routes.check(*r)] == []


@pytest.fixture
def vault(azure_store: AzureStore) -> requests.Session:
    """A session that reaches the fake vault the way the SDK does: proxy, TLS, identity."""
    session = requests.Session()
    session.proxies = {"https": azure_store.fake.proxy}
    session.verify = str(azure_store.ca_file)
    fake = azure_store.fake
    token = requests.get(
        fake.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://vault.test"},
        headers={"X-IDENTITY-HEADER": fake.identity_header},
        timeout=5,
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    session.params = {"api-version": "2025-07-01"}
    return session


def test_key_vault_challenges_a_request_without_a_token_as_the_service_does(vault):
    answer = requests.get(
        f"{VAULT_URL}/secrets",
        params={"api-version": "2025-07-01"},
        proxies=vault.proxies,
        verify=vault.verify,
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "Unauthorized"
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert challenge.endswith('resource="https://vault.test"')


def test_key_vault_answers_as_the_service_does(vault, azure_store):
    assert vault.put(f"{VAULT_URL}/secrets/My-Name", json={"value": "v1"}, timeout=5).ok
    first = vault.get(f"{VAULT_URL}/secrets/my-name/", timeout=5).json()
    assert first["value"] == "v1"
    assert vault.put(f"{VAULT_URL}/secrets/my-name", json={"value": "v2"}, timeout=5).ok
    assert vault.get(first["id"], timeout=5).json()["value"] == "v1"  # that version
    assert vault.get(f"{VAULT_URL}/secrets/my-name", timeout=5).status_code == 404
    assert azure_store.fake.violations.pop().endswith("no GET here (only DELETE, PUT)")
    assert vault.get(f"{VAULT_URL}/secrets/my-name/nope", timeout=5).status_code == 404
    too_big = vault.put(f"{VAULT_URL}/secrets/big", json={"value": "x" * 25_601}, timeout=5)
    assert too_big.status_code == 400
    bad_name = vault.put(f"{VAULT_URL}/secrets/under_score", json={"value": "v"}, timeout=5)
    assert bad_name.status_code == 400
    deleted = vault.delete(f"{VAULT_URL}/secrets/my-name", timeout=5).json()
    assert deleted["recoveryId"].endswith("/deletedsecrets/My-Name")
    held = vault.put(f"{VAULT_URL}/secrets/MY-NAME", json={"value": "v3"}, timeout=5).json()
    assert held["error"]["innererror"]["code"] == "ObjectIsDeletedButRecoverable"
    assert vault.delete(f"{VAULT_URL}/deletedsecrets/my-name", timeout=5).status_code == 204
    assert vault.put(f"{VAULT_URL}/secrets/MY-NAME", json={"value": "v2"}, timeout=5).ok


def test_the_proxy_only_reaches_vaults_and_verification_stays_on(vault, azure_store):
    with pytest.raises(requests.exceptions.ProxyError):
        vault.get("https://example.com/", timeout=5)
    untrusting = requests.Session()
    untrusting.trust_env = False  # no REQUESTS_CA_BUNDLE: the session's CA is not trusted
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(f"{VAULT_URL}/secrets", proxies=vault.proxies, timeout=5)
