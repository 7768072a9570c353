"""Fixtures for the cloud secret stores: one fake Secret Manager per session, and how a test
points Google's client at it (a service account key file, as in CI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_secret_manager import FakeSecretManager

GCP_PROJECT = "devops-test"


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
