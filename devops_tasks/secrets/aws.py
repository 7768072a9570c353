"""The AWS Secrets Manager backend: one AWS secret per name and scope.

Names in AWS are ``<prefix><scope>/<NAME>``, the prefix defaulting to
``devops-tasks/<project directory name>/`` and the scope being ``_shared`` or an environment,
so one account can hold several projects and IAM policies can grant a project (or a single
environment) by name.

Values are stored as they are, in ``SecretString``, so anything else that reads the secret
(ECS task definitions, Lambda, ``aws secretsmanager get-secret-value``) sees the very same
text. Secrets Manager refuses an empty ``SecretString``, so the one value that cannot be
stored that way, ``""``, is stored as ``SecretBinary = b"\\x00"``: a channel text values never
use, so no text value can be mistaken for it. Other binary secrets (made outside this tool)
read as UTF-8 text.

boto3 is imported only when a backend is made, so the rest of the tool works without it.
Every AWS failure becomes a :class:`~devops_tasks.errors.DevopsError`; no message carries a
secret value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret
from .base import SecretInfo, SecretsBackend, check_name, scope_for
from .cloud import (
    iso,
    lookup_scopes,
    name_under,
    note_partial,
    prefix_option,
    require_sdk,
    safe_url,
    short_enough,
    value_bytes,
)

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["EMPTY_VALUE_BINARY", "MAX_VALUE_BYTES", "AwsSecretsBackend"]

#: Secrets Manager's limit on a secret value (SecretString or SecretBinary), in bytes.
MAX_VALUE_BYTES = 65_536
#: How ``""`` is stored (Secrets Manager refuses an empty SecretString).
EMPTY_VALUE_BINARY = b"\x00"
DEFAULT_REGION = "us-east-1"
MAX_NAME_LENGTH = 256  # CreateSecret's limit on Name


#: AWS error codes that mean the credentials were refused (not absent).
_REFUSED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_WRITE_ATTEMPTS = 8  # a force-deleted name takes AWS a few seconds to free

_MISSING_FIX = (
    "Give AWS credentials the usual way: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(and AWS_SESSION_TOKEN) in the environment, e.g. in CI, or AWS_PROFILE naming a profile "
    "in ~/.aws (`aws configure`, `aws sso login`)."
)


class _Expected(Exception):
    """An AWS error code the caller handles itself (e.g. the secret does not exist)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class AwsSecretsBackend(SecretsBackend):
    """Secrets in AWS Secrets Manager, under ``<prefix><scope>/<NAME>``."""

    name = "aws"
    max_value_bytes = MAX_VALUE_BYTES
    #: Attempts per AWS call (boto3's "standard" retry mode: throttling, 5xx, connections).
    max_attempts = 3

    def __init__(
        self,
        project: Project,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        options = dict(options or {})
        self.environ = os.environ if environ is None else environ
        self.project = project
        self.region = str(
            options.get("region")
            or self.environ.get("AWS_REGION")
            or self.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        self.endpoint_url: str | None = options.get("endpoint_url") or None
        self.prefix = prefix_option(
            options, project, mode="aws", allowed="A-Za-z0-9/_+=.@-", most=256, separator="/"
        )
        require_sdk("aws", "aws", "boto3")
        self._client_object: Any = None

    # -- names -----------------------------------------------------------------------------

    def secret_id(self, name: str, scope: str) -> str:
        """The AWS name of ``name`` in ``scope``."""
        return short_enough(
            f"{self.prefix}{scope}/{name}", MAX_NAME_LENGTH, "AWS secret name", "aws"
        )

    # -- AWS calls ---------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_object is None:
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415

            from .. import __version__  # noqa: PLC0415

            keys = {}
            if self.environ.get("AWS_ACCESS_KEY_ID") and self.environ.get("AWS_SECRET_ACCESS_KEY"):
                keys = {
                    "aws_access_key_id": self.environ["AWS_ACCESS_KEY_ID"],
                    "aws_secret_access_key": self.environ["AWS_SECRET_ACCESS_KEY"],
                    "aws_session_token": self.environ.get("AWS_SESSION_TOKEN") or None,
                }
            config = Config(
                retries={"mode": "standard", "max_attempts": self.max_attempts},
                connect_timeout=10,
                read_timeout=30,
                user_agent_extra=f"devops-tasks/{__version__}",
            )
            try:
                # A session of our own: nothing cached from (or leaking into) boto3's default.
                session = boto3.session.Session(**keys)
                self._client_object = session.client(
                    "secretsmanager",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
            except Exception as exc:
                raise self._translate(exc, "connect", None, write=False) from exc
        return self._client_object

    def _call(
        self,
        operation: str,
        secret: str | None,
        *,
        write: bool = False,
        expect: tuple[str, ...] = (),
        **params: Any,
    ) -> Any:
        """``client.<operation>(**params)``; AWS error codes in ``expect`` raise ``_Expected``.

        ``write`` calls carry a value: their errors never include AWS's message or chain the
        original exception, so not even a misbehaving endpoint can echo the value into ours.
        """
        client = self._client()
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:
            code = _aws_code(exc)
            if code is not None and code in expect:
                raise _Expected(code) from None
            error = self._translate(exc, _ACTIONS.get(operation, operation), secret, write=write)
            if write:
                raise error from None
            raise error from exc

    def _translate(
        self, exc: Exception, action: str, secret: str | None, *, write: bool
    ) -> DevopsError:
        """A DevopsError for any botocore failure (other exceptions are re-raised as they are)."""
        from botocore import exceptions as boto  # noqa: PLC0415

        why = f" (to {action} {secret})" if secret else f" (to {action})"
        endpoint = safe_url(
            self._client_object.meta.endpoint_url
            if self._client_object is not None
            else self.endpoint_url
        )
        where = {"service": "secretsmanager", "region": self.region}
        if endpoint:
            where["endpoint"] = endpoint
        if isinstance(
            exc, (boto.NoCredentialsError, boto.PartialCredentialsError, boto.ProfileNotFound)
        ):
            detail = "" if isinstance(exc, boto.NoCredentialsError) else f" ({exc})"
            return DevopsError(
                ErrorCode.CREDENTIALS_MISSING,
                f"No AWS credentials for AWS Secrets Manager{why}{detail}",
                _MISSING_FIX,
                **where,
            )
        if isinstance(
            exc, (boto.CredentialRetrievalError, boto.TokenRetrievalError, boto.SSOError)
        ):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"The AWS credentials could not be loaded{why}: {exc}",
                "Refresh them (e.g. `aws sso login`, or check credential_process / the role "
                "in ~/.aws/config), then run the command again.",
                **where,
            )
        if isinstance(exc, boto.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "Unknown")
            message = "" if write else str(error.get("Message") or "").strip()
            said = f": {code}" + (f" ({message})" if message else "")
            if code in _REFUSED:
                return DevopsError(
                    ErrorCode.CREDENTIALS_INVALID,
                    f"AWS Secrets Manager refused the credentials{why}{said}",
                    "Check that the AWS credentials are current and that their policy allows "
                    "secretsmanager:GetSecretValue, DescribeSecret, ListSecrets, CreateSecret, "
                    f"PutSecretValue, RestoreSecret and DeleteSecret on {self.prefix}*.",
                    aws_error=code,
                    **where,
                )
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"AWS Secrets Manager failed{why}{said}",
                "Run the command again; if it keeps failing, check the AWS error above and "
                "the secret in the AWS console.",
                aws_error=code,
                **where,
            )
        if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Could not reach AWS Secrets Manager at {endpoint or self.region}{why}",
                "Check the network, the region and secrets.aws.endpoint_url / AWS_ENDPOINT_URL, "
                "then run the command again.",
                unreachable=True,
                **where,
            )
        if isinstance(exc, boto.ParamValidationError):  # our bug; its text can hold values
            return DevopsError(
                ErrorCode.INTERNAL_ERROR,
                f"devops-tasks sent AWS Secrets Manager an invalid request{why}",
                "Please report this with the command you ran (not the values).",
            )
        if isinstance(exc, boto.BotoCoreError):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"AWS Secrets Manager failed{why}: {type(exc).__name__}"
                + ("" if write else f" ({exc})"),
                "Run the command again; check the AWS configuration if it keeps failing.",
                **where,
            )
        raise exc

    def _describe(self, secret: str) -> dict[str, Any] | None:
        try:
            return dict(
                self._call(
                    "describe_secret",
                    secret,
                    SecretId=secret,
                    expect=("ResourceNotFoundException",),
                )
            )
        except _Expected:
            return None

    def _read(self, secret: str) -> str | None:
        """The current value of one AWS secret; ``None`` if absent or scheduled for deletion."""
        try:
            response = self._call(
                "get_secret_value",
                secret,
                SecretId=secret,
                expect=("ResourceNotFoundException", "InvalidRequestException"),
            )
        except _Expected:
            # InvalidRequestException: the secret is scheduled for deletion (the only reason
            # GetSecretValue gives it); it is on its way out, so it is not there.
            return None
        value = _decode(response, secret)
        register_secret(value)
        return value

    def _write(self, secret: str, scope: str, name: str, payload: dict[str, Any]) -> None:
        """Create ``secret`` or put a new current version, restoring it if deletion is pending."""
        last = "unknown"
        for attempt in range(_WRITE_ATTEMPTS):
            current = self._describe(secret)
            try:
                if current is None:
                    self._call(
                        "create_secret",
                        secret,
                        write=True,
                        Name=secret,
                        Description=f"devops-tasks: {name} ({scope})",
                        expect=("ResourceExistsException", "InvalidRequestException"),
                        **payload,
                    )
                    return
                if current.get("DeletedDate") is not None:
                    self._call(
                        "restore_secret",
                        secret,
                        SecretId=secret,
                        expect=("ResourceNotFoundException", "InvalidRequestException"),
                    )
                self._call(
                    "put_secret_value",
                    secret,
                    write=True,
                    SecretId=secret,
                    expect=("ResourceNotFoundException", "InvalidRequestException"),
                    **payload,
                )
                return
            except _Expected as expected:
                # Someone else created or deleted it meanwhile, or AWS is still purging a
                # force-deleted secret of that name: look again in a moment.
                last = expected.code
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"AWS Secrets Manager kept refusing to store {secret} ({last})",
            "A secret of that name may still be being deleted; wait a minute and run the "
            "command again.",
            aws_error=last,
        )

    # -- the backend interface -------------------------------------------------------------

    def get(self, name: str, environment: str | None = None) -> str | None:
        check_name(name)
        for scope in lookup_scopes(environment):
            value = self._read(self.secret_id(name, scope))
            if value is not None:
                return value
        return None

    def set_many(self, values: Mapping[str, str], environment: str | None = None) -> None:
        """Store every value, after checking them all (nothing is written if one is invalid).

        AWS has no transactions: if AWS fails part way, the error's ``stored`` and
        ``not_stored`` list the names written and not written (set again to finish).
        """
        scope = scope_for(environment)
        planned = []
        for name, value in values.items():
            secret = self.secret_id(check_name(name), scope)
            planned.append((name, secret, _payload(name, value)))
        stored: list[str] = []
        for name, secret, payload in planned:
            try:
                self._write(secret, scope, name, payload)
            except DevopsError as error:
                note_partial(error, [n for n, _s, _p in planned], stored)
                raise
            stored.append(name)

    def delete(self, name: str, environment: str | None = None) -> bool:
        """Delete at once (no recovery window), so the name can be set again right away."""
        secret = self.secret_id(check_name(name), scope_for(environment))
        current = self._describe(secret)
        if current is None:
            return False
        try:
            self._call(
                "delete_secret",
                secret,
                SecretId=secret,
                ForceDeleteWithoutRecovery=True,
                expect=("ResourceNotFoundException",),
            )
        except _Expected:
            return False
        # One already scheduled for deletion was not visible: purge it, but it was not there.
        return current.get("DeletedDate") is None

    def list(self, environment: str | None = None) -> list[SecretInfo]:
        visible: dict[str, SecretInfo] = {}
        for scope in reversed(lookup_scopes(environment)):  # shared first, so the own one wins
            start = f"{self.prefix}{scope}/"
            paginator = self._client().get_paginator("list_secrets")
            pages = paginator.paginate(
                Filters=[{"Key": "name", "Values": [start]}], PaginationConfig={"PageSize": 100}
            )
            try:
                for page in pages:
                    for entry in page.get("SecretList", []):
                        name = name_under(entry.get("Name", ""), start)
                        if name is None or entry.get("DeletedDate") is not None:
                            continue
                        stamp = entry.get("LastChangedDate") or entry.get("CreatedDate")
                        visible[name] = SecretInfo(name, scope, iso(stamp))
            except Exception as exc:
                raise self._translate(exc, "list the secrets under", start, write=False) from exc
        return [visible[name] for name in sorted(visible)]

    def values(self, environment: str | None = None) -> dict[str, str]:
        """What ``environment`` sees: one read per secret, in the scope ``list`` found it."""
        visible = {}
        for info in self.list(environment):
            value = self._read(self.secret_id(info.name, info.scope))
            if value is None:  # deleted since the listing: fall back as get() would
                value = self.get(info.name, environment)
            if value is not None:
                visible[info.name] = value
        return visible


_ACTIONS = {
    "describe_secret": "look up",
    "get_secret_value": "read",
    "create_secret": "create",
    "put_secret_value": "store",
    "restore_secret": "restore",
    "delete_secret": "delete",
}


def _aws_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def _payload(name: str, value: Any) -> dict[str, Any]:
    """The CreateSecret / PutSecretValue fields holding ``value`` (checked, never echoed)."""
    value_bytes(
        name,
        value,
        MAX_VALUE_BYTES,
        "AWS Secrets Manager",
        "Store the large data elsewhere (e.g. an encrypted S3 object) and keep only its "
        "location or key here, or use secrets.mode local (no such limit).",
    )
    return {"SecretString": value} if value else {"SecretBinary": EMPTY_VALUE_BINARY}


def _decode(response: Mapping[str, Any], secret: str) -> str:
    if response.get("SecretString") is not None:
        return str(response["SecretString"])
    binary = response.get("SecretBinary")
    if binary is None:
        return ""
    if bytes(binary) == EMPTY_VALUE_BINARY:
        return ""
    try:
        return bytes(binary).decode("utf-8")
    except UnicodeDecodeError:
        raise DevopsError(
            ErrorCode.SECRETS_CORRUPT,
            f"{secret} in AWS Secrets Manager holds binary data, not text",
            "Store it again as text with `devops secrets.set`, or read it with the AWS CLI.",
        ) from None
