"""What only the Google Secret Manager backend does (the shared behaviour is in
test_secrets_backends.py): its secret ids, how it stores values, and how it fails."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud_secrets import GCP_PROJECT, GcpStore

from devops_tasks.config.store import Settings
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project
from devops_tasks.secrets import SHARED_SCOPE, open_backend
from devops_tasks.secrets.gcp import GcpSecretsBackend


def _fails(code: ErrorCode, action: Any, *args: Any) -> DevopsError:
    with pytest.raises(DevopsError) as caught:
        action(*args)
    assert caught.value.code is code, caught.value.to_dict()
    assert caught.value.fix
    return caught.value


def _path(backend: GcpSecretsBackend, name: str, scope: str = SHARED_SCOPE) -> str:
    return f"projects/{GCP_PROJECT}/secrets/{backend.secret_id(name, scope)}"


def test_secret_ids_are_prefix_scope_and_name(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore, tmp_path: Path
) -> None:
    gcp_backend.set("TOKEN", "shared ✓")
    gcp_backend.set_many({"TOKEN": "prod", "EMPTY": ""}, "production")
    prefix = f"devops-tasks-{tmp_path.name}-"
    assert sorted(gcp_store.fake.secrets) == [
        f"projects/{GCP_PROJECT}/secrets/{prefix}_shared--TOKEN",
        f"projects/{GCP_PROJECT}/secrets/{prefix}production--EMPTY",
        f"projects/{GCP_PROJECT}/secrets/{prefix}production--TOKEN",
    ]


def test_values_are_their_utf8_bytes_and_empty_is_one_nul_byte(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    gcp_backend.set_many({"TOKEN": "shared ✓", "EMPTY": ""})
    assert gcp_store.fake.value(_path(gcp_backend, "TOKEN")) == "shared ✓".encode()
    assert gcp_store.fake.value(_path(gcp_backend, "EMPTY")) == b"\x00"
    added = [r for r in gcp_store.fake.requests if r.operation and "addVersion" in r.operation]
    assert all("dataCrc32c" in r.json["payload"] for r in added)


def test_set_adds_a_version_and_get_reads_the_latest(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    for value in ["one", "two", "three"]:
        gcp_backend.set("TOKEN", value)
    path = _path(gcp_backend, "TOKEN")
    assert [gcp_store.fake.value(path, n) for n in range(3)] == [b"one", b"two", b"three"]
    assert gcp_backend.get("TOKEN") == "three"


def test_foreign_and_malformed_ids_are_not_listed(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    gcp_backend.set("TOKEN", "mine")
    other = GcpSecretsBackend(
        Project(Path("/nowhere/other")), {**gcp_store.options, "prefix": "team-"}, os.environ
    )
    other.set("TOKEN", "theirs")
    for odd in ["_shared--not-a-name", "_shared--", "_sharedX--TOKEN"]:
        gcp_store.fake.secrets[f"projects/{GCP_PROJECT}/secrets/{gcp_backend.prefix}{odd}"] = {
            "name": f"projects/{GCP_PROJECT}/secrets/{gcp_backend.prefix}{odd}",
            "versions": [{"name": "v", "createTime": "2026-01-01T00:00:00Z", "data": b"x"}],
        }
    assert [(i.name, i.scope) for i in gcp_backend.list()] == [("TOKEN", SHARED_SCOPE)]
    assert gcp_backend.values() == {"TOKEN": "mine"} and other.values() == {"TOKEN": "theirs"}


def test_list_follows_pages(gcp_backend: GcpSecretsBackend, gcp_store: GcpStore) -> None:
    gcp_store.fake.page_size = 2
    gcp_backend.set_many({f"K{i}": str(i) for i in range(5)})
    assert [i.name for i in gcp_backend.list()] == [f"K{i}" for i in range(5)]
    pages = [
        r for r in gcp_store.fake.requests if r.operation == "secretmanager.projects.secrets.list"
    ]
    assert len(pages) == 3


def test_a_secret_without_versions_is_not_there(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    path = _path(gcp_backend, "TOKEN")
    gcp_store.fake.secrets[path] = {
        "name": path,
        "createTime": "2026-01-01T00:00:00Z",
        "replication": {"automatic": {}},
        "versions": [],
    }
    assert gcp_backend.get("TOKEN") is None and gcp_backend.list() == []
    gcp_backend.set("TOKEN", "now there")
    assert gcp_backend.get("TOKEN") == "now there"


def test_binary_data_made_elsewhere_is_secrets_corrupt(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    gcp_backend.set("BLOB", "text")
    gcp_store.fake.secrets[_path(gcp_backend, "BLOB")]["versions"][-1]["data"] = b"\xff\xfe"
    _fails(ErrorCode.SECRETS_CORRUPT, gcp_backend.get, "BLOB")


@pytest.mark.parametrize("why", ["unknown key", "other project"])
def test_refused_credentials_are_credentials_invalid(
    gcp_backend: GcpSecretsBackend,
    gcp_store: GcpStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    why: str,
) -> None:
    key = gcp_store.fake.add_service_account("another-project")
    if why == "unknown key":
        key["project_id"] = GCP_PROJECT
        del gcp_store.fake.accounts[key["client_email"]]
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    error = _fails(ErrorCode.CREDENTIALS_INVALID, gcp_backend.get, "TOKEN")
    assert error.details["gcp_error"] in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    _fails(ErrorCode.CREDENTIALS_INVALID, gcp_backend.set, "TOKEN", "value")


@pytest.mark.parametrize("userinfo", ["", "user:hunter2-pw@"])
def test_an_unreachable_endpoint_is_service_unavailable(
    gcp_store: GcpStore, tmp_path: Path, userinfo: str
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = {**gcp_store.options, "endpoint": closed.replace("://", f"://{userinfo}")}
    backend = GcpSecretsBackend(Project(tmp_path), options, environ=os.environ)
    error = _fails(ErrorCode.SERVICE_UNAVAILABLE, backend.get, "TOKEN")
    assert error.details["unreachable"] is True and error.details["endpoint"] == closed
    assert "hunter2" not in str(error.to_dict())


def test_an_unavailable_service_is_retried_then_reported(
    gcp_backend: GcpSecretsBackend, gcp_store: GcpStore
) -> None:
    gcp_backend.set("TOKEN", "value")
    gcp_backend.retry_seconds = 10.0
    gcp_store.fake.inject("GET", ":access$", 503, times=2)
    assert gcp_backend.get("TOKEN") == "value"
    gcp_backend.retry_seconds = 0.3
    gcp_store.fake.inject("GET", ":access$", 503, times=1000)
    error = _fails(ErrorCode.SERVICE_UNAVAILABLE, gcp_backend.get, "TOKEN")
    assert error.details["gcp_error"] == "UNAVAILABLE"
    gcp_store.fake.reset()


def test_errors_never_carry_the_value(gcp_backend: GcpSecretsBackend, gcp_store: GcpStore) -> None:
    """Even a service that echoes the value back cannot get it into our error."""
    value = f"very-secret-{uuid.uuid4()}"
    gcp_store.fake.inject("POST", ":addVersion$", 500, times=1000, message=f"bad {value}")
    with pytest.raises(DevopsError) as caught:
        gcp_backend.set("TOKEN", value)
    error = caught.value
    assert error.code is ErrorCode.SERVICE_UNAVAILABLE and error.details["gcp_error"] == "INTERNAL"
    assert value not in str(error.to_dict()) and value not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__
    gcp_store.fake.reset()


def test_project_and_prefix_settings(gcp_store: GcpStore, tmp_path: Path) -> None:
    project = Project(tmp_path / "my site")
    backend = GcpSecretsBackend(project, {}, environ={"GOOGLE_CLOUD_PROJECT": "from-env"})
    assert backend.project_id == "from-env" and backend.prefix == "devops-tasks-my-site-"
    named = GcpSecretsBackend(project, {"project": "named"}, {"GOOGLE_CLOUD_PROJECT": "x"})
    assert named.project_id == "named"
    _fails(ErrorCode.CONFIG_INVALID, GcpSecretsBackend, project, {"prefix": "bad prefix"}, {})
    _fails(ErrorCode.CONFIG_INVALID, GcpSecretsBackend, project, {"prefix": "p" * 201}, {})
    longest = GcpSecretsBackend(project, {"prefix": "p" * 200}, {})
    assert len(longest.secret_id("N" * 46, SHARED_SCOPE)) == 255
    _fails(ErrorCode.INVALID_ARGUMENT, longest.secret_id, "N" * 47, SHARED_SCOPE)


def test_the_project_comes_from_the_credentials_when_not_set(
    gcp_store: GcpStore, tmp_path: Path
) -> None:
    backend = GcpSecretsBackend(
        Project(tmp_path), {"endpoint": gcp_store.options["endpoint"]}, environ={}
    )
    backend.set("TOKEN", "value")
    assert backend.project_id == GCP_PROJECT and backend.get("TOKEN") == "value"


def test_no_project_anywhere_is_config_invalid(
    gcp_store: GcpStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = json.loads(gcp_store.key_file.read_text())
    del key["project_id"]
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    backend = GcpSecretsBackend(Project(tmp_path), {"endpoint": gcp_store.fake.base}, {})
    error = _fails(ErrorCode.CONFIG_INVALID, backend.get, "TOKEN")
    assert "secrets.gcp.project" in error.fix and gcp_store.fake.requests == []


def test_open_backend_gives_the_gcp_backend(gcp_store: GcpStore, tmp_path: Path) -> None:
    settings = Settings("production", {"secrets": {"mode": "gcp", "gcp": gcp_store.options}})
    backend = open_backend(Project(tmp_path), settings)
    assert isinstance(backend, GcpSecretsBackend)
    backend.set("TOKEN", "from config")
    assert backend.get("TOKEN") == "from config"
