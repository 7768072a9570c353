"""The Google Secret Manager backend: one Google secret per name and scope.

Secret ids are ``<prefix><scope>--<NAME>`` (``scope`` is ``_shared`` or an environment), the
prefix defaulting to ``devops-tasks-<project directory name>-``; names hold no ``-``, so the
last ``--`` separates scope and name and the id reads back exactly. ``set`` adds a version
(creating the secret, with automatic replication, the first time), ``get`` reads the
``latest`` version, ``delete`` deletes the secret with all its versions, and ``list`` reads
names and each latest version's time, never a value.

Values are stored as their UTF-8 bytes, so ``gcloud secrets versions access`` prints the very
same text. Secret Manager refuses an empty payload, so ``""`` is stored as the single byte
``\\x00``, which no text value can hold (values never contain NUL). Every payload is sent
and read with its CRC32C checksum.

``google-cloud-secret-manager`` is imported only when a backend is made, and talks REST
(``transport="rest"``). Credentials come from Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``, or the
metadata server); no message carries a secret value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DevopsError, ErrorCode
from .cloud import (
    CloudSecretsBackend,
    iso,
    name_under,
    prefix_option,
    require_sdk,
    safe_url,
    short_enough,
)

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["EMPTY_VALUE", "MAX_VALUE_BYTES", "GcpSecretsBackend"]

#: Secret Manager's limit on a version's payload, in bytes.
MAX_VALUE_BYTES = 65_536
#: How ``""`` is stored (Secret Manager refuses an empty payload).
EMPTY_VALUE = b"\x00"
MAX_ID_LENGTH = 255
SCOPE_SEPARATOR = "--"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _status(exc: Exception) -> str | None:
    """Google's status name for a failed call (``UNAUTHENTICATED``, ``UNAVAILABLE``, ...)."""
    try:
        return str(exc.response.json()["error"]["status"])  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no JSON error body: the class says it
        return getattr(getattr(exc, "grpc_status_code", None), "name", None)


#: What ``_call`` returns for a resource that does not exist.
NOT_FOUND: Any = object()
_MISSING_FIX = (
    "Give Google credentials the usual way: GOOGLE_APPLICATION_CREDENTIALS naming a service "
    "account key file (e.g. in CI), `gcloud auth application-default login` on your machine, "
    "or the service account of the machine you run on."
)


class GcpSecretsBackend(CloudSecretsBackend):
    """Secrets in Google Secret Manager, as ``<prefix><scope>--<NAME>``."""

    name = "gcp"
    service = "Google Secret Manager"
    max_value_bytes = MAX_VALUE_BYTES
    #: How long a call is retried when the service is unavailable or throttles, in seconds.
    retry_seconds = 20.0

    def __init__(
        self,
        project: Project,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        options = dict(options or {})
        self.environ = os.environ if environ is None else environ
        self.project_id: str | None = (
            options.get("project") or self.environ.get("GOOGLE_CLOUD_PROJECT") or None
        )
        self.endpoint: str | None = options.get("endpoint") or None
        self.prefix = prefix_option(
            options, project, mode="gcp", allowed="A-Za-z0-9_-", most=200, separator="-"
        )
        require_sdk("gcp", "gcp-secrets", "google.cloud.secretmanager")
        self._client_object: Any = None

    # -- names -----------------------------------------------------------------------------

    def secret_id(self, name: str, scope: str) -> str:
        full = f"{self.prefix}{scope}{SCOPE_SEPARATOR}{name}"
        return short_enough(full, MAX_ID_LENGTH, "Secret Manager secret id", "gcp")

    def _path(self, name: str, scope: str) -> str:
        return f"projects/{self._project()}/secrets/{self.secret_id(name, scope)}"

    def _project(self) -> str:
        self._client()
        assert self.project_id is not None
        return self.project_id

    # -- Google calls ------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_object is None:
            import google.auth  # noqa: PLC0415
            from google.auth import exceptions as auth_errors  # noqa: PLC0415
            from google.cloud import secretmanager  # noqa: PLC0415

            try:
                credentials, found_project = google.auth.default(scopes=_SCOPES)
            except auth_errors.DefaultCredentialsError as exc:
                raise DevopsError(
                    ErrorCode.CREDENTIALS_MISSING,
                    "No Google credentials for Google Secret Manager",
                    _MISSING_FIX,
                ) from exc
            self.project_id = self.project_id or found_project
            if not self.project_id:
                raise DevopsError(
                    ErrorCode.CONFIG_INVALID,
                    "No Google Cloud project for Google Secret Manager",
                    "Name it: `devops config.set secrets.gcp.project my-project` "
                    "(or set GOOGLE_CLOUD_PROJECT).",
                )
            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._client_object = secretmanager.SecretManagerServiceClient(
                credentials=credentials, transport="rest", client_options=options
            )
        return self._client_object

    def _call(self, method: str, action: str, *, write: bool = False, **request: Any) -> Any:
        """``client.<method>(request=...)``, or ``NOT_FOUND`` when there is no such resource.

        ``write`` calls carry a value: their errors never include the service's message nor
        chain the original exception, so not even an endpoint that echoes a value can put it
        into ours.
        """
        from google.api_core import exceptions as api  # noqa: PLC0415
        from google.api_core import retry  # noqa: PLC0415

        client = self._client()
        again = retry.Retry(
            predicate=retry.if_exception_type(
                api.ServiceUnavailable, api.TooManyRequests, api.InternalServerError
            ),
            initial=0.25,
            maximum=2.0,
            timeout=self.retry_seconds,
        )
        try:
            return getattr(client, method)(request=request, retry=again, timeout=30.0)
        except api.NotFound:
            return NOT_FOUND
        except Exception as exc:
            error = self._translate(exc, action, write=write)
            if write:
                raise error from None
            raise error from exc

    def _translate(self, exc: Exception, action: str, *, write: bool) -> DevopsError:
        """A DevopsError for any failure of a call (the service's own status in details)."""
        import requests  # noqa: PLC0415
        from google.api_core import exceptions as api  # noqa: PLC0415
        from google.auth import exceptions as auth_errors  # noqa: PLC0415

        if isinstance(exc, api.RetryError) and isinstance(exc.cause, Exception):
            exc = exc.cause
        where = {"service": "secretmanager", "project": self.project_id}
        if self.endpoint:
            where["endpoint"] = safe_url(self.endpoint)
        why = f"Google Secret Manager refused to {action}"
        if isinstance(exc, auth_errors.GoogleAuthError):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"The Google credentials could not be used (to {action})",
                "Check GOOGLE_APPLICATION_CREDENTIALS (a current service account key) or run "
                "`gcloud auth application-default login` again.",
                **where,
            )
        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Google Secret Manager could not be reached (to {action})",
                "Check the network (and secrets.gcp.endpoint, if set), then run the command again.",
                unreachable=True,
                **where,
            )
        details: dict[str, Any] = {**where, "gcp_error": _status(exc)}
        said = "" if write else f": {getattr(exc, 'message', '')}"
        if isinstance(exc, (api.Unauthorized, api.Forbidden)):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"{why}{said}",
                "Give the account the Secret Manager Admin role (or secretAccessor to read) "
                f"on project {self.project_id}, or use other credentials.",
                **details,
            )
        if isinstance(exc, api.InvalidArgument):
            return DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{why}{said}",
                "Check the secret and try again.",
                **details,
            )
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"{why} (HTTP {getattr(exc, 'code', '?')}){said}",
            "Try again in a moment; check the service's status if it keeps failing.",
            **details,
        )

    # -- the four operations -------------------------------------------------------------

    def _read(self, name: str, scope: str) -> str | None:
        import google_crc32c  # noqa: PLC0415

        path = self._path(name, scope)
        found = self._call("access_secret_version", f"read {path}", name=f"{path}/versions/latest")
        if found is NOT_FOUND:
            return None
        data = bytes(found.payload.data)
        sent = found.payload.data_crc32c
        if sent is not None and sent != google_crc32c.value(data):
            raise DevopsError(
                ErrorCode.SECRETS_CORRUPT,
                f"{path} arrived damaged (its CRC32C checksum does not match)",
                "Run the command again; if it keeps failing, set the secret again.",
            )
        if data == EMPTY_VALUE:
            return ""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DevopsError(
                ErrorCode.SECRETS_CORRUPT,
                f"{path} in Google Secret Manager holds binary data, not text",
                "Store it again as text with `devops secrets.set`, or read it with gcloud.",
            ) from None

    def _write(self, name: str, scope: str, data: bytes) -> None:
        import google_crc32c  # noqa: PLC0415

        path = self._path(name, scope)
        data = data or EMPTY_VALUE
        payload = {"data": data, "data_crc32c": google_crc32c.value(data)}
        added = self._call(
            "add_secret_version", f"store {path}", write=True, parent=path, payload=payload
        )
        if added is not NOT_FOUND:
            return
        self._create(path, name, scope)
        added = self._call(
            "add_secret_version", f"store {path}", write=True, parent=path, payload=payload
        )
        if added is NOT_FOUND:
            raise DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{path} was deleted while its value was being stored",
                "Set the secret again.",
            )

    def _create(self, path: str, name: str, scope: str) -> None:
        from google.api_core import exceptions as api  # noqa: PLC0415

        try:
            self._client().create_secret(
                request={
                    "parent": f"projects/{self._project()}",
                    "secret_id": self.secret_id(name, scope),
                    "secret": {
                        "replication": {"automatic": {}},
                        "labels": {"managed-by": "devops-tasks"},
                    },
                },
                timeout=30.0,
            )
        except api.AlreadyExists:
            return  # made by someone else in between: add the version to it
        except Exception as exc:
            raise self._translate(exc, f"create {path}", write=False) from exc

    def _remove(self, name: str, scope: str) -> bool:
        path = self._path(name, scope)
        return self._call("delete_secret", f"delete {path}", name=path) is not NOT_FOUND

    def _listing(self, scope: str) -> Iterable[tuple[str, str | None]]:
        start = f"{self.prefix}{scope}{SCOPE_SEPARATOR}"
        parent = f"projects/{self._project()}"
        pages = self._call("list_secrets", f"list the secrets of {parent}", parent=parent)
        found = []
        try:
            for secret in [] if pages is NOT_FOUND else pages:
                name = name_under(secret.name.rsplit("/", 1)[-1], start)
                if name is not None:
                    found.append((name, secret.name))
        except Exception as exc:
            raise self._translate(exc, f"list the secrets of {parent}", write=False) from exc
        for name, path in found:
            latest = self._call(
                "get_secret_version", f"look up {path}", name=f"{path}/versions/latest"
            )
            if latest is not NOT_FOUND:  # a secret without any version holds no value
                yield name, iso(latest.create_time)
