"""What only the Azure Key Vault backend does (the shared behaviour is in
test_secrets_backends.py): its reversible names, soft-delete and purge, and how it fails."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud_secrets import VAULT_URL, AzureStore
from hypothesis import given, settings
from hypothesis import strategies as st

from devops_tasks.config.store import Settings
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.ids import ENVIRONMENT
from devops_tasks.project import Project
from devops_tasks.secrets import SHARED_SCOPE, open_backend
from devops_tasks.secrets.azure import AzureSecretsBackend, decode, encode

HOST = VAULT_URL.removeprefix("https://")
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
SCOPES = st.one_of(st.just(SHARED_SCOPE), st.from_regex(ENVIRONMENT, fullmatch=True))


def _fails(code: ErrorCode, action: Any, *args: Any) -> DevopsError:
    with pytest.raises(DevopsError) as caught:
        action(*args)
    assert caught.value.code is code, caught.value.to_dict()
    assert caught.value.fix
    return caught.value


# -- the name code --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(SCOPES, NAMES)
def test_the_name_code_reads_back_exactly_in_any_case(scope: str, name: str) -> None:
    written = encode(scope, name)
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in written)
    for seen in (written, written.lower(), written.upper()):
        assert decode(seen) == (scope, name)


@settings(max_examples=60, deadline=None)
@given(SCOPES, NAMES, SCOPES, NAMES)
def test_different_secrets_never_share_a_name_even_without_case(
    scope: str, name: str, other_scope: str, other_name: str
) -> None:
    if (scope, name) != (other_scope, other_name):
        assert encode(scope, name).lower() != encode(other_scope, other_name).lower()


@pytest.mark.parametrize(
    ("scope", "name", "written"),
    [
        ("_shared", "NETLIFY_AUTH_TOKEN", "--shared-1NETLIFY--AUTH--TOKEN"),
        ("production", "DB_PASSWORD", "production-1DB--PASSWORD"),
        ("pr-12", "Token", "pr-012-1T-o-k-e-n"),
    ],
)
def test_the_name_code_by_example(scope: str, name: str, written: str) -> None:
    assert encode(scope, name) == written


@pytest.mark.parametrize("odd", ["", "abc", "a-1B-1C", "a-2B", "a-1B-", "-", "a--"])
def test_names_the_code_did_not_write_are_not_ours(odd: str) -> None:
    assert decode(odd) is None


def test_secret_names_in_the_vault(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore, tmp_path: Path
) -> None:
    azure_backend.set("TOKEN", "shared ✓")
    azure_backend.set("DB_PASSWORD", "prod", "production")
    prefix = f"devops-tasks-{tmp_path.name.replace('_', '-')}-"
    names = sorted(e["name"] for e in azure_store.fake.vaults[HOST].values())
    assert names == [f"{prefix}--shared-1TOKEN", f"{prefix}production-1DB--PASSWORD"]


def test_a_name_the_vault_returns_in_other_case_is_still_ours(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_backend.set("TOKEN", "value")
    vault = azure_store.fake.vaults[HOST]
    (entry,) = vault.values()
    entry["name"] = entry["name"].upper()
    assert [(i.name, i.scope) for i in azure_backend.list()] == [("TOKEN", SHARED_SCOPE)]
    assert azure_backend.get("TOKEN") == "value"


def test_foreign_secrets_in_the_vault_are_not_listed(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_backend.set("TOKEN", "mine")
    other = AzureSecretsBackend(
        Project(Path("/nowhere")), {**azure_store.options, "prefix": "team-"}, os.environ
    )
    other.set("TOKEN", "theirs")
    assert azure_backend.values() == {"TOKEN": "mine"} and other.values() == {"TOKEN": "theirs"}


def test_an_empty_value_is_stored_as_it_is(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_backend.set("EMPTY", "")
    (entry,) = azure_store.fake.vaults[HOST].values()
    assert entry["versions"][-1]["value"] == ""


def test_list_follows_next_links(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_backend.set_many({f"K{i:02d}": str(i) for i in range(30)})  # more than a page (25)
    assert [i.name for i in azure_backend.list()] == [f"K{i:02d}" for i in range(30)]
    pages = [
        r for r in azure_store.fake.requests if r.operation == "GetSecrets" and r.status == 200
    ]
    assert len(pages) == 2 and "$skiptoken" in pages[1].query


# -- deletion -------------------------------------------------------------------------------


def test_delete_soft_deletes_then_purges_once_the_deletion_shows(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_store.fake.deletion_polls = 2
    azure_backend.set("TOKEN", "value")
    assert azure_backend.delete("TOKEN") is True
    done = [r.operation for r in azure_store.fake.requests if r.status in (200, 204)]
    assert done[-3:] == ["DeleteSecret", "GetDeletedSecret", "PurgeDeletedSecret"]
    assert azure_store.fake.deleted[HOST] == {}
    azure_backend.set("TOKEN", "again")  # the name is free at once
    assert azure_backend.get("TOKEN") == "again"


def test_with_purge_protection_the_deleted_secret_is_kept_and_set_recovers_it(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_store.fake.purge_protection = True
    azure_backend.set("TOKEN", "old")
    assert azure_backend.delete("TOKEN") is True
    assert azure_backend.get("TOKEN") is None and azure_backend.list() == []
    assert len(azure_store.fake.deleted[HOST]) == 1
    azure_backend.set("TOKEN", "new")
    assert azure_backend.get("TOKEN") == "new" and azure_store.fake.deleted[HOST] == {}
    operations = [r.operation for r in azure_store.fake.requests]
    assert "RecoverDeletedSecret" in operations


# -- failures -------------------------------------------------------------------------------


@pytest.fixture
def service_principal(azure_store: AzureStore, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials of a service principal in the environment (as CI holds them), no identity;
    returns the client secret."""
    fake = azure_store.fake
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    for name, value in {
        "AZURE_TENANT_ID": "adfs",
        "AZURE_CLIENT_ID": fake.client_id,
        "AZURE_CLIENT_SECRET": fake.client_secret,
        "AZURE_AUTHORITY_HOST": fake.authority,
    }.items():
        monkeypatch.setenv(name, value)
    return fake.client_secret


def test_a_service_principal_in_the_environment_is_used(
    azure_backend: AzureSecretsBackend, service_principal: str
) -> None:
    azure_backend.set("TOKEN", "value")
    assert azure_backend.get("TOKEN") == "value"


def test_a_refused_client_secret_is_credentials_invalid(
    azure_backend: AzureSecretsBackend, service_principal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = f"wrong-{uuid.uuid4()}"
    monkeypatch.setenv("AZURE_CLIENT_SECRET", wrong)
    error = _fails(ErrorCode.CREDENTIALS_INVALID, azure_backend.get, "TOKEN")
    assert "EnvironmentCredential" in error.message
    assert wrong not in str(error.to_dict()) and service_principal not in str(error.to_dict())


def test_a_token_the_vault_refuses_is_credentials_invalid(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_store.fake.other_tenant = True  # the identity's tokens are for another directory
    error = _fails(ErrorCode.CREDENTIALS_INVALID, azure_backend.get, "TOKEN")
    assert error.details["status"] == 401


def test_a_vault_that_denies_the_identity_is_credentials_invalid(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_store.fake.denied.add(HOST)
    error = _fails(ErrorCode.CREDENTIALS_INVALID, azure_backend.get, "TOKEN")
    assert error.details["status"] == 403 and "Secrets Officer" in error.fix
    _fails(ErrorCode.CREDENTIALS_INVALID, azure_backend.set, "TOKEN", "value")


def test_a_vault_whose_certificate_is_not_trusted_is_not_used(
    azure_backend: AzureSecretsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    error = _fails(ErrorCode.SERVICE_UNAVAILABLE, azure_backend.set, "TOKEN", "value")
    assert error.details["unreachable"] is True and "certificate" in error.fix


def test_an_unavailable_vault_is_service_unavailable(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    azure_backend.set("TOKEN", "value")
    azure_store.fake.inject("GET", "^/secrets/", 503)
    error = _fails(ErrorCode.SERVICE_UNAVAILABLE, azure_backend.get, "TOKEN")
    assert error.details["status"] == 503


def test_errors_never_carry_the_value(
    azure_backend: AzureSecretsBackend, azure_store: AzureStore
) -> None:
    """Even a vault that echoes the value back cannot get it into our error."""
    value = f"very-secret-{uuid.uuid4()}"
    azure_backend.get("WARM_UP")  # the challenge first, so the fault meets the real PUT
    azure_store.fake.inject("PUT", "^/secrets/", 500, message=f"could not store {value}")
    with pytest.raises(DevopsError) as caught:
        azure_backend.set("TOKEN", value)
    error = caught.value
    assert error.code is ErrorCode.SERVICE_UNAVAILABLE and error.details["status"] == 500
    assert value not in str(error.to_dict()) and value not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_settings(tmp_path: Path) -> None:
    project = Project(tmp_path / "my site")
    backend = AzureSecretsBackend(project, {"vault_url": VAULT_URL}, {})
    assert backend.prefix == "devops-tasks-my-site-"
    for bad in [{}, {"vault_url": "http://devops.vault.test"}]:
        _fails(ErrorCode.CONFIG_INVALID, AzureSecretsBackend, project, bad, {})
    _fails(
        ErrorCode.CONFIG_INVALID,
        AzureSecretsBackend,
        project,
        {"vault_url": VAULT_URL, "prefix": "under_score"},
        {},
    )
    longest = AzureSecretsBackend(project, {"vault_url": VAULT_URL, "prefix": "p" * 80}, {})
    _fails(ErrorCode.INVALID_ARGUMENT, longest.set, "N" * 50, "value")


def test_open_backend_gives_the_azure_backend(azure_store: AzureStore, tmp_path: Path) -> None:
    settings = Settings("production", {"secrets": {"mode": "azure", "azure": azure_store.options}})
    backend = open_backend(Project(tmp_path), settings)
    assert isinstance(backend, AzureSecretsBackend)
    backend.set("TOKEN", "from config")
    assert backend.get("TOKEN") == "from config"
