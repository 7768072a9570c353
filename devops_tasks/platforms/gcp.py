"""Google Cloud Storage: the object store behind the ``gcp`` target.

A thin backend of :class:`~devops_tasks.objectstore.ObjectStore` over google-cloud-storage,
which is imported only when a store is opened (the ``[gcp]`` extra), so every other target
works without it. What to upload and in which order is decided by the sync engine; this
module moves bytes and headers in one bucket and turns the SDK's failures into the
project's error codes. Retries on 429, 5xx and dropped connections are the SDK's own policy.

Credentials: a service-account key (JSON) found by the credentials resolver under
``GOOGLE_CREDENTIALS``, else Google's own chain (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, the metadata server). An ``endpoint_url`` that is
not Google's (the emulator) is spoken to anonymously unless a key is given.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import IO, Any
from urllib.parse import urlsplit

from ..errors import DevopsError, ErrorCode
from ..objectstore import Headers, ObjectStore, StoredObject, credential_digest
from .bucket import BucketPlatform

__all__ = ["GOOGLE_CREDENTIALS", "GcpPlatform", "GcsStore", "open_store"]

#: A service-account key (the JSON file's content), as a secret or an environment variable.
GOOGLE_CREDENTIALS = "GOOGLE_CREDENTIALS"
#: Where google-cloud-storage itself looks for an emulator.
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
_SERVICE = "Google Cloud Storage"
_MISSING_FIX = (
    "Give the deploy a service account's key: `devops secrets.set GOOGLE_CREDENTIALS < key.json` "
    "(or export GOOGLE_CREDENTIALS in CI), or point GOOGLE_APPLICATION_CREDENTIALS at the key "
    "file, or run `gcloud auth application-default login` on this machine."
)


def open_store(options: Mapping[str, Any], lookup: Callable[[str], str | None]) -> GcsStore:
    """The store the ``gcp`` settings describe, with a key from ``lookup`` if it has one."""
    bucket = options.get("bucket")
    if not bucket:
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            "gcp.bucket is not set",
            "Name the bucket: `devops config.set gcp.bucket NAME`.",
        )
    return GcsStore(
        str(bucket),
        prefix=str(options.get("prefix") or ""),
        project=options.get("project") or None,
        endpoint_url=options.get("endpoint_url") or None,
        service_account=lookup(GOOGLE_CREDENTIALS),
    )


class GcpPlatform(BucketPlatform):
    """A static site in Cloud Storage: ``gcp.bucket``, ``gcp.prefix``, ``gcp.project``."""

    name = "gcp"
    first_steps = (
        "devops config.set gcp.bucket your-bucket-name",
        "devops config.set gcp.project your-project-id",
        "devops infra.up",
    )

    def open_store(self) -> ObjectStore:
        return open_store({**self.options, "prefix": self.prefix}, self.credentials.lookup)

    def require_credentials(self) -> None:
        # A key is optional (Google's own chain may have one); looking it up masks it.
        self.credentials.lookup(GOOGLE_CREDENTIALS)

    def site_url(self) -> str | None:
        """The index document's public URL (the bucket must allow public read)."""
        bucket = self.options.get("bucket")
        if not bucket:
            return None
        base = str(self.options.get("endpoint_url") or "https://storage.googleapis.com")
        return f"{base.rstrip('/')}/{bucket}/{self.prefix}{self.config['index_document']}"


class GcsStore(ObjectStore):
    """One GCS bucket, seen through ``prefix``."""

    #: The most keys one delete request carries (GCS's limit for one batch request).
    delete_batch = 100

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        project: str | None = None,
        endpoint_url: str | None = None,
        service_account: str | None = None,
        page_size: int = 1000,
        retry_backoff: float = 1.0,
        retry_timeout: float = 120.0,
    ) -> None:
        self.bucket_name = bucket
        self.location = f"gs://{bucket}"
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.page_size = page_size
        emulator = os.environ.get(EMULATOR_VARIABLE)
        endpoint = (endpoint_url or emulator or "").rstrip("/") or None
        self.endpoint = endpoint
        # Google honours ifGenerationMatch; gcp-storage-emulator ignores every precondition.
        self.conditional_create = endpoint is None or _is_google(endpoint)
        # a key, or no one at an emulator; Google's default chain is only known once resolved
        anonymous = endpoint is not None and not _is_google(endpoint)
        principal = credential_digest(service_account) if service_account else anonymous
        self._identity = (
            ("gcs", endpoint, bucket, self.prefix, project, principal) if principal else None
        )
        with self._failures("open"):
            from google.cloud import storage  # noqa: PLC0415 - the [gcp] extra, on use
            from google.cloud.storage.retry import DEFAULT_RETRY  # noqa: PLC0415

            self._api, _ = _sdk_errors()
            # The SDK's policy (429, 5xx, dropped connections), waits doubling from retry_backoff.
            self._retry = DEFAULT_RETRY.with_delay(
                initial=retry_backoff, maximum=32 * retry_backoff
            ).with_timeout(retry_timeout)
            credentials, project = self._credentials(service_account, project)
            self._client = storage.Client(
                project=project,
                credentials=credentials,
                client_options={"api_endpoint": endpoint_url} if endpoint_url else None,
            )
            # Since 3.x the client fetches each bucket's metadata in a background thread, for
            # telemetry: one more request (and permission) per deploy, which a no-op deploy of
            # one GET and one LIST does not pay.
            self._client._bucket_metadata_cache = None
            self._bucket = self._client.bucket(bucket)

    @property
    def identity(self) -> Hashable | None:
        return self._identity

    # -- the store interface -----------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        with self._failures("list the objects of"):
            blobs = self._client.list_blobs(
                self._bucket,
                prefix=self.prefix + prefix,
                page_size=self.page_size,
                fields="items(name,size,generation,metageneration),nextPageToken",
                retry=self._retry,
            )
            for blob in blobs:  # one page at a time, as the caller goes
                yield StoredObject(blob.name[len(self.prefix) :], int(blob.size or 0), _tag(blob))

    def get(self, key: str) -> bytes | None:
        with self._failures("read", key):
            try:
                data: bytes = self._blob(key).download_as_bytes(
                    raw_download=True, retry=self._retry
                )
            except self._api.NotFound:
                return None
            return data

    def put(self, key: str, body: IO[bytes], size: int, headers: Headers) -> str | None:
        with self._failures("upload", key):
            blob = self._blob(key, headers)
            blob.upload_from_file(
                body, size=size, content_type=headers.content_type, retry=self._retry
            )
            return _tag(blob)

    def copy(
        self, source: str, key: str, headers: Headers, origin: ObjectStore | None = None
    ) -> str | None:
        store = self.origin(origin)
        missing = "the source object (or the bucket) does not exist"
        with self._failures(f"copy {store.prefix}{source} to", key, missing):
            target = self._blob(key, headers)
            if source != key or store is not self:
                token = None
                while True:  # a large object can take several rewrite calls
                    token, _, _ = target.rewrite(
                        store._blob(source), token=token, retry=self._retry
                    )
                    if token is None:
                        break
                if _headers_of(target) == headers:
                    return _tag(target)
                # gcp-storage-emulator's rewrite keeps the source's metadata: set ours after.
                _apply(target, headers)
            # Same key: a metadata update, no bytes copied.
            target.patch(retry=self._retry)
            return _tag(target)

    def delete(self, keys: Iterable[str]) -> None:
        names = (self.prefix + key for key in keys)
        while chunk := list(islice(names, self.delete_batch)):
            with self._failures("delete objects in"):
                for name in self._delete_batch(chunk):
                    with contextlib.suppress(self._api.NotFound):
                        self._bucket.delete_blob(name, retry=self._retry)

    def create(self, key: str, body: bytes) -> bool:
        with self._failures("create", key):
            try:
                self._blob(key).upload_from_string(body, if_generation_match=0, retry=self._retry)
            except self._api.PreconditionFailed:
                return False
            return True

    def close(self) -> None:
        self._client.close()

    # -- the bucket itself (infra.up / infra.down) -----------------------------------------

    def bucket_exists(self) -> bool:
        with self._failures("look up"):
            return bool(self._bucket.exists(retry=self._retry))

    def create_bucket(self) -> None:
        if not self._client.project:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"gcp.project is not set: it is needed to create gs://{self.bucket_name}",
                "Name the project that will own the bucket: `devops config.set gcp.project ID`.",
            )
        with self._failures("create"):
            self._client.create_bucket(self._bucket, project=self._client.project)

    def configure_website(self, index: str, error: str) -> None:
        with self._failures("configure the website of"):
            self._bucket.configure_website(main_page_suffix=index, not_found_page=error)
            self._bucket.patch(retry=self._retry)

    def allow_public_read(self) -> None:
        with self._failures("make public"):
            policy = self._bucket.get_iam_policy(requested_policy_version=3, retry=self._retry)
            binding = {"role": "roles/storage.objectViewer", "members": {"allUsers"}}
            if binding not in policy.bindings:
                policy.bindings.append(binding)
                self._bucket.set_iam_policy(policy, retry=self._retry)

    def delete_bucket(self) -> None:
        with self._failures("delete"):
            self._bucket.delete(retry=self._retry)

    # -- helpers -----------------------------------------------------------------------------

    def _blob(self, key: str, headers: Headers | None = None) -> Any:
        blob = self._bucket.blob(self.prefix + key)
        if headers is not None:
            _apply(blob, headers)
        return blob

    def _delete_batch(self, names: Sequence[str]) -> Sequence[str]:
        """Delete ``names`` in one batch request; returns the names still to delete one by one.

        A missing object is fine. A batch the service refuses as a whole (or a sub-request
        that failed for another reason) leaves those names to the per-object path, whose
        errors are the ones the user sees.
        """
        try:
            with self._client.batch(raise_exception=False) as batch:
                for name in names:
                    self._bucket.delete_blob(name)
        except (self._api.GoogleAPICallError, ValueError, OSError):
            return names
        # google-cloud-storage keeps each sub-request's response in the same order.
        statuses = [response.status_code for response in batch._responses]
        return [
            name
            for name, status in zip(names, statuses, strict=True)
            if not (200 <= status < 300 or status == 404)
        ]

    def _credentials(self, service_account: str | None, project: str | None) -> tuple[Any, Any]:
        """Which credentials and project the client uses (see the module's docstring)."""
        if service_account is not None:
            from google.oauth2 import service_account as accounts  # noqa: PLC0415

            try:
                info = json.loads(service_account)
                key = accounts.Credentials.from_service_account_info(info, scopes=[_SCOPE])
            except (ValueError, TypeError, KeyError, AttributeError):
                # Never the parser's message: it can quote the key.
                raise DevopsError(
                    ErrorCode.CREDENTIALS_INVALID,
                    f"{GOOGLE_CREDENTIALS} is not a usable service-account key (JSON)",
                    "Store the key file's whole content: `devops secrets.set "
                    f"{GOOGLE_CREDENTIALS} < key.json` (IAM → Service accounts → Keys → "
                    "Add key → JSON).",
                    credential=GOOGLE_CREDENTIALS,
                ) from None
            return key, project or info.get("project_id")
        if self.endpoint is not None and not _is_google(self.endpoint):
            from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415

            return AnonymousCredentials(), project
        import google.auth  # noqa: PLC0415

        found, default_project = google.auth.default(scopes=[_SCOPE])
        return found, project or default_project

    @contextlib.contextmanager
    def _failures(
        self, action: str, key: str | None = None, missing: str = "the bucket does not exist"
    ) -> Iterator[None]:
        """Turn what the SDK raises while doing ``action`` into a DevopsError.

        ``missing`` says what a 404 means for this action.
        """
        api, auth = _sdk_errors()
        try:
            yield
        except (api.GoogleAPICallError, api.RetryError, auth.GoogleAuthError, OSError) as exc:
            # OSError covers requests' ConnectionError and Timeout (and the builtin ones).
            where = f"gs://{self.bucket_name}" + (f"/{self.prefix}{key}" if key is not None else "")
            raise self._mapped(exc, f"could not {action} {where}", missing) from (
                None if isinstance(exc, auth.GoogleAuthError) else exc
            )

    def _mapped(self, exc: Exception, why: str, missing: str) -> DevopsError:
        """The DevopsError for ``exc``; messages never quote a request (or a key)."""
        api, auth = _sdk_errors()
        details: dict[str, Any] = {"bucket": self.bucket_name}
        if self.endpoint is not None:
            details["endpoint"] = _shown_endpoint(self.endpoint)
        retried = isinstance(exc, api.RetryError)
        if retried:
            cause = getattr(exc, "cause", None)
            exc = cause if isinstance(cause, Exception) else OSError("timed out")
        after = " (still, after retrying)" if retried else ""
        status = _status(exc)
        if isinstance(exc, auth.DefaultCredentialsError):
            return DevopsError(
                ErrorCode.CREDENTIALS_MISSING,
                f"No Google Cloud credentials: {_SERVICE} {why}",
                _MISSING_FIX,
                credential=GOOGLE_CREDENTIALS,
                **details,
            )
        if isinstance(exc, auth.RefreshError) or status in (401, 403):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"{_SERVICE} refused the credentials: {why} ({_said(exc)})",
                "Check that the service-account key is current (not deleted or disabled) and "
                f"that its account has the Storage Object Admin role on gs://{self.bucket_name};"
                f" to use another key, `devops secrets.set {GOOGLE_CREDENTIALS} < key.json`.",
                credential=GOOGLE_CREDENTIALS,
                **details,
            )
        if status == 404:
            return DevopsError(
                ErrorCode.NOT_FOUND,
                f"{_SERVICE} {why}: {missing}",
                f"Check gcp.bucket ({self.bucket_name}) and gcp.prefix; create the bucket with "
                "`devops infra.up` if it is new.",
                **details,
            )
        if status is None and isinstance(exc, (auth.TransportError, OSError)):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{_SERVICE} {why}: could not reach "
                f"{details.get('endpoint', 'storage.googleapis.com')}{after}",
                "Check the network (and gcp.endpoint_url, if set), then run the command again.",
                **details,
            )
        if status is not None and (status == 429 or status >= 500):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{_SERVICE} {why}: {_said(exc)}{after}",
                "Google Cloud Storage is busy: run the command again in a minute.",
                **details,
            )
        return DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"{_SERVICE} {why}: {_said(exc)}",
            "Check the bucket's settings (retention policy, holds, requester pays) in the "
            "Google Cloud console, then run the command again.",
            **details,
        )


def _sdk_errors() -> tuple[Any, Any]:
    """The SDK's exception modules (imported here: the SDK is the ``[gcp]`` extra)."""
    try:
        from google.api_core import exceptions as api  # noqa: PLC0415
        from google.auth import exceptions as auth  # noqa: PLC0415
    except ImportError:
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            "The gcp target needs google-cloud-storage, which is not installed",
            "Install the extra: pip install 'devops-tasks[gcp]'.",
        ) from None
    return api, auth


def _apply(blob: Any, headers: Headers) -> None:
    blob.content_type = headers.content_type
    blob.cache_control = headers.cache_control
    blob.content_encoding = headers.content_encoding


def _tag(blob: Any) -> str:
    """Generation and metageneration: a new one for any write of the bytes or the headers."""
    return f"{blob.generation}.{blob.metageneration}"


def _headers_of(blob: Any) -> Headers:
    return Headers(blob.content_type or "", blob.cache_control, blob.content_encoding)


def _is_google(endpoint: str) -> bool:
    host = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or ""
    return host == "googleapis.com" or host.endswith(".googleapis.com")


def _shown_endpoint(endpoint: str) -> str:
    """The endpoint without anything after the host (a query could carry a token)."""
    parts = urlsplit(endpoint if "//" in endpoint else f"http://{endpoint}")
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind ``exc``: an API error's code, or a media download's response."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def _said(exc: BaseException) -> str:
    """What the service said, in one short line: the status and GCS's own message, if any."""
    errors = getattr(exc, "errors", None) or []
    message = errors[0].get("message") if errors and isinstance(errors[0], dict) else None
    status = _status(exc)
    if status is None and message is None and exc.args and isinstance(exc.args[0], str):
        message = exc.args[0]  # the auth library's own words (e.g. invalid_grant)
    text = " ".join(str(message).split())[:300] if message else ""
    if status is None:
        return text or type(exc).__name__
    return f"HTTP {status}" + (f": {text}" if text else "")
