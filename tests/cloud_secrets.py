"""Fixtures for the cloud secret stores: one fake Secret Manager and one fake Key Vault per
session, and how a test points the providers' own clients at them with their ordinary
settings: a service account key file (Google, as in CI); a managed identity endpoint, an
HTTPS proxy and a CA bundle of a throwaway CA (Azure, whose client insists on TLS)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_key_vault import DOMAIN, FakeKeyVault, throwaway_ca
from fake_secret_manager import FakeSecretManager

from devops_tasks.project import Project
from devops_tasks.secrets.azure import AzureSecretsBackend
from devops_tasks.secrets.gcp import GcpSecretsBackend

GCP_PROJECT = "devops-test"
VAULT_URL = f"https://devops.{DOMAIN}"


@dataclass
class GcpStore:
    """The fake and the ``secrets.gcp`` settings that reach it."""

    fake: FakeSecretManager
    key_file: Path

    @property
    def options(self) -> dict[str, str]:
        return {"project": GCP_PROJECT, "endpoint": self.fake.base}


@pytest.fixture(scope="session")
def secret_manager_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpStore]:
    """One spec-following fake Secret Manager, and a key file for an account of its project."""
    fake = FakeSecretManager().start()
    key_file = tmp_path_factory.mktemp("gcp") / "service-account.json"
    key_file.write_text(json.dumps(fake.add_service_account(GCP_PROJECT)))
    try:
        yield GcpStore(fake, key_file)
    finally:
        fake.stop()


@pytest.fixture
def gcp_store(
    secret_manager_server: GcpStore, isolated_environment: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GcpStore]:
    """An empty Secret Manager and Application Default Credentials for it; every request
    must follow the discovery document."""
    secret_manager_server.fake.reset()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(secret_manager_server.key_file))
    yield secret_manager_server
    assert secret_manager_server.fake.violations == [], "requests the description does not allow"


@pytest.fixture
def gcp_backend(gcp_store: GcpStore, tmp_path: Path) -> GcpSecretsBackend:
    """The gcp backend of a project in ``tmp_path``, on the fake; retries kept short."""
    backend = GcpSecretsBackend(Project(tmp_path), gcp_store.options, environ=os.environ)
    backend.retry_seconds = 0.5
    return backend


@dataclass
class AzureStore:
    """The fake and the ``secrets.azure`` settings that reach it."""

    fake: FakeKeyVault
    ca_file: Path

    @property
    def options(self) -> dict[str, str]:
        return {"vault_url": VAULT_URL}


@pytest.fixture(scope="session")
def key_vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureStore]:
    """One spec-following fake Key Vault, behind TLS from a CA made for this session."""
    ca_file, tls = throwaway_ca(tmp_path_factory.mktemp("azure"))
    fake = FakeKeyVault(tls).start()
    try:
        yield AzureStore(fake, ca_file)
    finally:
        fake.stop()


@pytest.fixture
def azure_store(
    key_vault_server: AzureStore,
    isolated_environment: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[AzureStore]:
    """An empty vault at ``VAULT_URL`` and a managed identity for it; every request must
    follow the description. Nothing here turns TLS verification off: the test trusts the
    session's CA through REQUESTS_CA_BUNDLE, as a company CA would be trusted."""
    fake = key_vault_server.fake
    fake.reset()
    for name, value in {
        "HTTPS_PROXY": fake.proxy,
        "REQUESTS_CA_BUNDLE": str(key_vault_server.ca_file),
        "IDENTITY_ENDPOINT": fake.identity_endpoint,
        "IDENTITY_HEADER": fake.identity_header,
        # Where azure-identity would look otherwise, kept on this machine and empty.
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.base,
        "AZURE_CONFIG_DIR": str(tmp_path / "no-azure-cli"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield key_vault_server
    assert fake.violations == [], "requests the description does not allow"


@pytest.fixture
def azure_backend(azure_store: AzureStore, tmp_path: Path) -> AzureSecretsBackend:
    """The azure backend of a project in ``tmp_path``, on the fake; waits kept short."""
    backend = AzureSecretsBackend(Project(tmp_path), azure_store.options, environ=os.environ)
    backend.wait_seconds = 0.01
    backend.max_retries = 0
    return backend
