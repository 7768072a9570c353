"""The same behaviour from every secrets backend: the local file, AWS Secrets Manager (moto),
Google Secret Manager and Azure Key Vault (spec-following fakes, tests/cloud_secrets.py).

The cloud backends talk over HTTP to one server each per session, as they would to the cloud.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from devops_tasks.config.store import Settings
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project
from devops_tasks.redaction import MASK, redact
from devops_tasks.secrets import SHARED_SCOPE, SecretsBackend, open_backend
from devops_tasks.secrets.aws import AwsSecretsBackend
from devops_tasks.secrets.local import LocalSecretsStore

# -- fixtures (moto_url and aws_env live in conftest.py) ----------------------------------


@pytest.fixture
def aws_backend(aws_env: str, tmp_path: Path) -> AwsSecretsBackend:
    return AwsSecretsBackend(
        Project(tmp_path), {"endpoint_url": aws_env, "region": "us-east-1"}, environ=os.environ
    )


@pytest.fixture(params=["local", "aws", "gcp", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SecretsBackend:
    if request.param != "local":
        return request.getfixturevalue(f"{request.param}_backend")
    return LocalSecretsStore(
        Project(tmp_path),
        {},
        environ={
            "DEVOPS_MASTER_KEY": "ab" * 32,
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        },
    )


@pytest.fixture
def aws(aws_env: str) -> Any:
    """A boto3 client on the emulator, to see what the backend really stored."""
    import boto3

    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=aws_env)


def _fails(code: ErrorCode, action: Any, *args: Any) -> DevopsError:
    with pytest.raises(DevopsError) as caught:
        action(*args)
    assert caught.value.code is code, caught.value.to_dict()
    assert caught.value.fix
    return caught.value


ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# -- the same behaviour from both backends --------------------------------------------------


def test_unicode_value_round_trips(backend: SecretsBackend) -> None:
    value = "pässwörd ✓ 秘密 🔑"
    backend.set("TOKEN", value)
    assert backend.get("TOKEN") == value
    backend.set("TOKEN", value, "production")
    assert backend.get("TOKEN", "production") == value


@pytest.mark.parametrize("value", ["", " ", "\n", "0", "\r\n\t", "  padded  "])
def test_empty_ish_value_round_trips(backend: SecretsBackend, value: str) -> None:
    backend.set("EMPTYISH", value)
    got = backend.get("EMPTYISH")
    assert got is not None and got == value
    assert backend.values() == {"EMPTYISH": value}
    assert [info.name for info in backend.list()] == ["EMPTYISH"]


def test_a_value_as_large_as_the_store_takes_round_trips(backend: SecretsBackend) -> None:
    """60 KiB where the store has no limit of its own; else right up to its limit."""
    limit = backend.max_value_bytes or 60 * 1024
    value = ("line ✓ 秘密\n" * 8000).encode()[:limit].decode(errors="ignore")
    assert limit - 4 < len(value.encode()) <= limit
    backend.set("CERT", value)
    assert backend.get("CERT") == value


@pytest.fixture(params=["aws", "gcp", "azure"])
def limited_backend(request: pytest.FixtureRequest) -> SecretsBackend:
    """The stores with a limit of their own (the local file has none: see test_1_mib_value)."""
    store: SecretsBackend = request.getfixturevalue(f"{request.param}_backend")
    return store


def test_one_byte_over_the_limit_is_value_too_large_and_stores_nothing(
    limited_backend: SecretsBackend,
) -> None:
    backend = limited_backend
    assert backend.max_value_bytes is not None
    over = "é" * (backend.max_value_bytes // 2) + "a"
    error = _fails(ErrorCode.VALUE_TOO_LARGE, backend.set, "BIG", over)
    assert error.details == {"size": backend.max_value_bytes + 1, "limit": backend.max_value_bytes}
    assert "é" not in error.message + error.fix and backend.get("BIG") is None


def test_1_mib_value(backend: SecretsBackend) -> None:
    """Local stores it; AWS (64 KiB per secret) refuses before writing anything at all."""
    big = "x" * (1024 * 1024)
    if backend.name == "local":
        backend.set_many({"SMALL": "ok", "BIG": big})
        assert backend.get("BIG") == big
        return
    error = _fails(ErrorCode.VALUE_TOO_LARGE, backend.set_many, {"SMALL": "ok", "BIG": big})
    assert "BIG" in error.message and "x" * 32 not in str(error.to_dict())
    assert backend.list() == [] and backend.get("SMALL") is None


def test_unknown_name_is_none(backend: SecretsBackend) -> None:
    assert backend.get("NOPE") is None
    assert backend.get("NOPE", "production") is None
    backend.set("OTHER", "value")
    assert backend.get("NOPE") is None


def test_set_overwrites(backend: SecretsBackend) -> None:
    for value in ["first", "", "second"]:
        backend.set("TOKEN", value)
        assert backend.get("TOKEN") == value
    assert [info.name for info in backend.list()] == ["TOKEN"]


def test_environment_value_wins_over_shared(backend: SecretsBackend) -> None:
    backend.set("TOKEN", "shared-value")
    backend.set("TOKEN", "production-value", "production")
    assert backend.get("TOKEN", "production") == "production-value"
    assert backend.get("TOKEN", "staging") == "shared-value"
    assert backend.get("TOKEN") == "shared-value"


def test_environment_only_secret_is_invisible_elsewhere(backend: SecretsBackend) -> None:
    backend.set("PROD_ONLY", "value", "production")
    assert backend.get("PROD_ONLY", "production") == "value"
    assert backend.get("PROD_ONLY", "staging") is None
    assert backend.get("PROD_ONLY") is None
    assert backend.list("staging") == [] and backend.list() == []


def test_delete_removes_from_one_scope_only(backend: SecretsBackend) -> None:
    backend.set("TOKEN", "shared-value")
    backend.set("TOKEN", "production-value", "production")
    assert backend.delete("TOKEN", "production") is True
    assert backend.get("TOKEN", "production") == "shared-value"  # the shared one is still there
    assert backend.delete("TOKEN", "production") is False
    assert backend.delete("TOKEN", "staging") is False
    assert backend.delete("TOKEN") is True
    assert backend.get("TOKEN") is None and backend.get("TOKEN", "production") is None
    assert backend.delete("TOKEN") is False
    assert backend.delete("NEVER_SET") is False


def test_list_shows_names_scopes_and_updated_never_values(backend: SecretsBackend) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=2)
    backend.set_many({"ALPHA": "alpha-value", "BRAVO": "bravo-shared"})
    backend.set_many({"BRAVO": "bravo-prod", "CHARLIE": "charlie-value"}, "production")
    after = datetime.now(timezone.utc) + timedelta(seconds=2)

    seen = backend.list("production")
    assert [(i.name, i.scope) for i in seen] == [
        ("ALPHA", SHARED_SCOPE),
        ("BRAVO", "production"),
        ("CHARLIE", "production"),
    ]
    for info in seen:
        assert info.updated is not None and ISO_UTC.fullmatch(info.updated), info.updated
        stamp = datetime.strptime(info.updated, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert before <= stamp <= after
        assert set(info.to_dict()) == {"name", "scope", "updated"}
    shown = repr(seen) + repr([i.to_dict() for i in seen])
    assert not any(v in shown for v in ["alpha-value", "bravo-shared", "bravo-prod", "charlie"])
    assert [(i.name, i.scope) for i in backend.list()] == [
        ("ALPHA", SHARED_SCOPE),
        ("BRAVO", SHARED_SCOPE),
    ]
    assert [(i.name, i.scope) for i in backend.list("staging")] == [
        ("ALPHA", SHARED_SCOPE),
        ("BRAVO", SHARED_SCOPE),
    ]


def test_values_returns_what_an_environment_sees(backend: SecretsBackend) -> None:
    backend.set_many({"ALPHA": "alpha", "BRAVO": "bravo-shared", "EMPTY": ""})
    backend.set_many({"BRAVO": "bravo-prod", "CHARLIE": "charlie"}, "production")
    assert backend.values("production") == {
        "ALPHA": "alpha",
        "BRAVO": "bravo-prod",
        "CHARLIE": "charlie",
        "EMPTY": "",
    }
    assert backend.values() == {"ALPHA": "alpha", "BRAVO": "bravo-shared", "EMPTY": ""}
    assert backend.values("staging") == backend.values()


def test_set_many_stores_all(backend: SecretsBackend) -> None:
    values = {f"KEY_{i}": f"value {i} ✓" for i in range(5)}
    backend.set_many(values, "production")
    assert {name: backend.get(name, "production") for name in values} == values
    assert backend.values("production") == values
    assert backend.values() == {}


def test_values_read_are_registered_for_redaction(backend: SecretsBackend) -> None:
    one, two = f"tok-{uuid.uuid4()}", f"tok-{uuid.uuid4()}"
    backend.set_many({"ONE": one, "TWO": two})
    assert backend.get("ONE") == one
    assert redact(f"x {one} y") == f"x {MASK} y"
    assert backend.values()["TWO"] == two
    assert redact(two) == MASK


def test_concurrent_writers_lose_nothing(backend: SecretsBackend) -> None:
    names = [f"TOKEN_{n}" for n in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda name: backend.set(name, f"value of {name}", "production"), names))
    assert backend.values("production") == {name: f"value of {name}" for name in names}


#: The variables that give each cloud store its credentials here, and what its fix names.
NO_CREDENTIALS = {
    "aws": (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "AWS_ACCESS_KEY_ID"),
    "gcp": (["GOOGLE_APPLICATION_CREDENTIALS"], "GOOGLE_APPLICATION_CREDENTIALS"),
    "azure": (["IDENTITY_ENDPOINT", "IDENTITY_HEADER"], "AZURE_CLIENT_ID"),
}


@pytest.mark.parametrize("mode", sorted(NO_CREDENTIALS))
def test_a_cloud_store_without_credentials_is_credentials_missing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    backend = request.getfixturevalue(f"{mode}_backend")
    variables, named_in_fix = NO_CREDENTIALS[mode]
    for name in variables:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata wait
    for action, args in [
        (backend.get, ("TOKEN",)),
        (backend.set, ("TOKEN", "v")),
        (backend.list, ()),
        (backend.delete, ("TOKEN",)),
    ]:
        error = _fails(ErrorCode.CREDENTIALS_MISSING, action, *args)
        assert named_in_fix in error.fix


BAD_NAMES = ["", "1ABC", "A-B", "A B", "A/B", "ÉTÉ", "X" * 129, "A\n"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_names_are_invalid_argument(backend: SecretsBackend, bad: str) -> None:
    backend.set("EXISTING", "value")
    _fails(ErrorCode.INVALID_ARGUMENT, backend.get, bad)
    _fails(ErrorCode.INVALID_ARGUMENT, backend.get, bad, "production")
    _fails(ErrorCode.INVALID_ARGUMENT, backend.set, bad, "value")
    _fails(ErrorCode.INVALID_ARGUMENT, backend.delete, bad)
    _fails(ErrorCode.INVALID_ARGUMENT, backend.set_many, {"GOOD": "value", bad: "value"})
    assert [i.name for i in backend.list()] == ["EXISTING"]  # nothing half-stored
    assert backend.get("GOOD") is None


@pytest.mark.parametrize("bad", BAD_NAMES[:3])
def test_invalid_names_are_invalid_argument_in_an_empty_store(
    request: pytest.FixtureRequest, backend: SecretsBackend, bad: str
) -> None:
    _fails(ErrorCode.INVALID_ARGUMENT, backend.get, bad)


# -- AWS Secrets Manager only --------------------------------------------------------------


def test_aws_rotate_key_is_not_supported(aws_backend: AwsSecretsBackend) -> None:
    _fails(ErrorCode.NOT_SUPPORTED, aws_backend.rotate_key)
    _fails(ErrorCode.NOT_SUPPORTED, aws_backend.create)


def test_aws_secret_names_use_the_prefix(
    aws_backend: AwsSecretsBackend, aws: Any, tmp_path: Path
) -> None:
    aws_backend.set("TOKEN", "shared ✓")
    aws_backend.set_many({"TOKEN": "prod", "EMPTY": ""}, "production")
    prefix = f"devops-tasks/{tmp_path.name}/"
    names = sorted(s["Name"] for s in aws.list_secrets()["SecretList"])
    assert names == [
        f"{prefix}_shared/TOKEN",
        f"{prefix}production/EMPTY",
        f"{prefix}production/TOKEN",
    ]
    # Stored as is, so other AWS consumers read the same text; "" in the binary channel.
    assert aws.get_secret_value(SecretId=f"{prefix}_shared/TOKEN")["SecretString"] == "shared ✓"
    empty = aws.get_secret_value(SecretId=f"{prefix}production/EMPTY")
    assert "SecretString" not in empty and empty["SecretBinary"] == b"\x00"


def test_aws_custom_prefix_and_foreign_secrets(aws_env: str, aws: Any, tmp_path: Path) -> None:
    mine = AwsSecretsBackend(Project(tmp_path), {"prefix": "team/app/"}, environ=os.environ)
    other = AwsSecretsBackend(Project(tmp_path), {"prefix": "team/app-two/"}, environ=os.environ)
    mine.set("TOKEN", "mine")
    other.set("TOKEN", "theirs")
    aws.create_secret(Name="team/app/_shared/not-a-name", SecretString="x")
    aws.create_secret(Name="team/app/_shared/NESTED/DEEPER", SecretString="x")
    aws.create_secret(Name="team/app/_sharedX/TOKEN", SecretString="x")
    assert {s["Name"] for s in aws.list_secrets()["SecretList"]} >= {
        "team/app/_shared/TOKEN",
        "team/app-two/_shared/TOKEN",
    }
    assert [(i.name, i.scope) for i in mine.list()] == [("TOKEN", SHARED_SCOPE)]
    assert mine.values() == {"TOKEN": "mine"} and other.values() == {"TOKEN": "theirs"}


def test_aws_list_paginates(aws_backend: AwsSecretsBackend, aws: Any) -> None:
    for i in range(130):  # more than one page of list_secrets (100)
        aws.create_secret(Name=f"{aws_backend.prefix}_shared/K{i:03d}", SecretString=str(i))
    assert [i.name for i in aws_backend.list()] == [f"K{i:03d}" for i in range(130)]


def test_aws_value_set_then_deleted_can_be_set_again(
    aws_backend: AwsSecretsBackend, aws: Any
) -> None:
    aws_backend.set("TOKEN", "first", "production")
    assert aws_backend.delete("TOKEN", "production") is True
    assert aws_backend.get("TOKEN", "production") is None
    aws_backend.set("TOKEN", "second", "production")
    assert aws_backend.get("TOKEN", "production") == "second"
    assert [i.name for i in aws_backend.list("production")] == ["TOKEN"]


def test_aws_secret_scheduled_for_deletion_is_restored_by_set(
    aws_backend: AwsSecretsBackend, aws: Any
) -> None:
    aws_backend.set("TOKEN", "old")
    secret_id = aws_backend.secret_id("TOKEN", SHARED_SCOPE)
    aws.delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)  # e.g. from the console
    assert aws_backend.get("TOKEN") is None and aws_backend.list() == []
    aws_backend.set("TOKEN", "new")
    assert aws_backend.get("TOKEN") == "new"
    assert "DeletedDate" not in aws.describe_secret(SecretId=secret_id)
    # A pending deletion is not "there": deleting it purges it and reports False.
    aws.delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)
    assert aws_backend.delete("TOKEN") is False
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.describe_secret(SecretId=secret_id)


def test_aws_value_limit_is_65536_utf8_bytes(aws_backend: AwsSecretsBackend) -> None:
    fits = "é" * 32768  # 65,536 bytes, 32,768 characters
    aws_backend.set("FITS", fits)
    assert aws_backend.get("FITS") == fits
    error = _fails(ErrorCode.VALUE_TOO_LARGE, aws_backend.set, "FITS", fits + "a")
    assert error.details == {"size": 65537, "limit": 65536}
    assert aws_backend.get("FITS") == fits


def test_aws_missing_credentials(
    aws_backend: AwsSecretsBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata wait
    for action, args in [
        (aws_backend.get, ("TOKEN",)),
        (aws_backend.set, ("TOKEN", "v")),
        (aws_backend.list, ()),
        (aws_backend.delete, ("TOKEN",)),
    ]:
        error = _fails(ErrorCode.CREDENTIALS_MISSING, action, *args)
        assert "AWS_ACCESS_KEY_ID" in error.fix and "AWS_PROFILE" in error.fix


def test_aws_unknown_profile_is_credentials_missing(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    backend = AwsSecretsBackend(Project(tmp_path), {}, environ=os.environ)
    error = _fails(ErrorCode.CREDENTIALS_MISSING, backend.get, "TOKEN")
    assert "no-such-profile" in error.message


@pytest.mark.parametrize("aws_code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_aws_refused_credentials_are_credentials_invalid(
    aws_backend: AwsSecretsBackend, aws_code: str
) -> None:
    from botocore.stub import Stubber

    with Stubber(aws_backend._client()) as stub:
        stub.add_client_error("get_secret_value", aws_code, "not allowed", 400)
        stub.add_client_error("list_secrets", aws_code, "not allowed", 400)
        error = _fails(ErrorCode.CREDENTIALS_INVALID, aws_backend.get, "TOKEN")
        assert error.details["aws_error"] == aws_code
        _fails(ErrorCode.CREDENTIALS_INVALID, aws_backend.list)


@pytest.mark.parametrize("userinfo", ["", "user:hunter2-pw@"])
def test_aws_unreachable_endpoint(aws_env: str, tmp_path: Path, userinfo: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    endpoint = closed.replace("://", f"://{userinfo}")
    backend = AwsSecretsBackend(Project(tmp_path), {"endpoint_url": endpoint}, environ=os.environ)
    backend.max_attempts = 1
    error = _fails(ErrorCode.SERVICE_UNAVAILABLE, backend.get, "TOKEN")
    assert error.details["unreachable"] is True and error.details["endpoint"] == closed
    assert closed in error.message and "hunter2" not in str(error.to_dict())


def test_aws_errors_never_carry_the_value(aws_backend: AwsSecretsBackend) -> None:
    """Even an endpoint that echoes the value back cannot get it into our error."""
    from botocore.stub import Stubber

    value = f"very-secret-{uuid.uuid4()}"
    secret_id = aws_backend.secret_id("TOKEN", SHARED_SCOPE)
    with Stubber(aws_backend._client()) as stub:
        stub.add_response("describe_secret", {"Name": secret_id}, {"SecretId": secret_id})
        stub.add_client_error(
            "put_secret_value", "InternalServiceError", f"could not store {value}", 500
        )
        with pytest.raises(DevopsError) as caught:
            aws_backend.set("TOKEN", value)
    error = caught.value
    assert (
        error.code is ErrorCode.SERVICE_UNAVAILABLE
        and error.details["aws_error"] == "InternalServiceError"
    )
    assert value not in str(error.to_dict()) and value not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_aws_bad_environment_name_is_invalid_argument(aws_backend: AwsSecretsBackend) -> None:
    for environment in ["prod/eu", "a b", "-x", "x" * 65]:
        _fails(ErrorCode.INVALID_ARGUMENT, aws_backend.set, "TOKEN", "v", environment)
        _fails(ErrorCode.INVALID_ARGUMENT, aws_backend.list, environment)
    assert aws_backend.list() == []


def test_aws_region_and_prefix_options(tmp_path: Path, aws_env: str) -> None:
    project = Project(tmp_path / "my site")
    backend = AwsSecretsBackend(
        project, {}, environ={"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}
    )
    assert backend.region == "eu-west-1" and backend.prefix == "devops-tasks/my-site/"
    assert (
        AwsSecretsBackend(project, {}, environ={"AWS_DEFAULT_REGION": "us-west-2"}).region
        == "us-west-2"
    )
    assert AwsSecretsBackend(project, {}, environ={}).region == "us-east-1"
    assert (
        AwsSecretsBackend(
            project, {"region": "ap-south-1"}, environ={"AWS_REGION": "eu-west-1"}
        ).region
        == "ap-south-1"
    )
    _fails(ErrorCode.CONFIG_INVALID, AwsSecretsBackend, project, {"prefix": "bad prefix"}, {})


def test_open_backend_gives_the_aws_backend(aws_env: str, tmp_path: Path) -> None:
    settings = Settings(
        "production",
        {"secrets": {"mode": "aws", "aws": {"endpoint_url": aws_env, "prefix": "cfg/"}}},
    )
    backend = open_backend(Project(tmp_path), settings)
    assert isinstance(backend, AwsSecretsBackend) and backend.prefix == "cfg/"
    backend.set("TOKEN", "from config")
    assert backend.get("TOKEN") == "from config"


def test_aws_partial_failure_says_what_was_stored(aws_backend: AwsSecretsBackend) -> None:
    from botocore.stub import Stubber

    with Stubber(aws_backend._client()) as stub:
        stub.add_client_error("describe_secret", "ResourceNotFoundException", "", 400)
        stub.add_response("create_secret", {"Name": "x"}, None)
        stub.add_client_error("describe_secret", "AccessDeniedException", "not allowed", 400)
        error = _fails(
            ErrorCode.CREDENTIALS_INVALID,
            aws_backend.set_many,
            {"FIRST": "one", "SECOND": "two", "THIRD": "three"},
        )
    assert error.details["stored"] == ["FIRST"]
    assert error.details["not_stored"] == ["SECOND", "THIRD"]
    assert "FIRST" in error.fix


def test_aws_write_races_are_retried_then_given_up(
    aws_backend: AwsSecretsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    naps: list[float] = []
    monkeypatch.setattr("devops_tasks.secrets.aws.time.sleep", naps.append)
    secret_id = aws_backend.secret_id("TOKEN", SHARED_SCOPE)
    with Stubber(aws_backend._client()) as stub:
        # created by someone else between our look and our create: put a new version instead
        stub.add_client_error("describe_secret", "ResourceNotFoundException", "", 400)
        stub.add_client_error("create_secret", "ResourceExistsException", "", 400)
        stub.add_response("describe_secret", {"Name": secret_id}, {"SecretId": secret_id})
        stub.add_response("put_secret_value", {"Name": secret_id}, None)
        aws_backend.set("TOKEN", "value")
        stub.assert_no_pending_responses()
        # a force-deleted name AWS has not finished purging: retried, then a clear error
        for _ in range(8):
            stub.add_client_error("describe_secret", "ResourceNotFoundException", "", 400)
            stub.add_client_error(
                "create_secret", "InvalidRequestException", "already scheduled for deletion", 400
            )
        error = _fails(ErrorCode.SERVICE_UNAVAILABLE, aws_backend.set, "TOKEN", "value")
    assert error.details["aws_error"] == "InvalidRequestException"
    assert len(naps) == 9 and max(naps) <= 2.0


def test_aws_secrets_made_elsewhere_in_binary(aws_backend: AwsSecretsBackend, aws: Any) -> None:
    aws.create_secret(
        Name=aws_backend.secret_id("TEXT", SHARED_SCOPE), SecretBinary="text ✓".encode()
    )
    aws.create_secret(
        Name=aws_backend.secret_id("BLOB", SHARED_SCOPE), SecretBinary=b"\xff\xfe\x00"
    )
    assert aws_backend.get("TEXT") == "text ✓"
    _fails(ErrorCode.SECRETS_CORRUPT, aws_backend.get, "BLOB")


@pytest.mark.parametrize("value", [12345, None, b"bytes", "lone \ud800 surrogate"])
def test_aws_values_must_be_text(aws_backend: AwsSecretsBackend, value: Any) -> None:
    error = _fails(ErrorCode.INVALID_ARGUMENT, aws_backend.set_many, {"GOOD": "fine", "BAD": value})
    assert "BAD" in error.message and "12345" not in error.message
    assert aws_backend.list() == []


def test_aws_too_long_names_are_refused(aws_env: str, tmp_path: Path) -> None:
    backend = AwsSecretsBackend(Project(tmp_path), {"prefix": "p" * 240 + "/"}, environ=os.environ)
    backend.set("SHORT", "fits")  # 241 + 8 + 5 = 254 characters
    error = _fails(ErrorCode.INVALID_ARGUMENT, backend.set, "MUCH_LONGER", "value")
    assert "shorter" in error.fix
    assert [i.name for i in backend.list()] == ["SHORT"]
