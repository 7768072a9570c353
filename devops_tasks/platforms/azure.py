"""Azure Blob Storage: the object store behind the ``azure`` target (a static website in ``$web``).

A thin backend of :class:`~devops_tasks.objectstore.ObjectStore` over azure-storage-blob,
which is imported only when a store is opened (the ``[azure]`` extra), so every other target
works without it. What to upload and in which order is decided by the sync engine; this
module moves bytes and headers in one container and turns the SDK's failures into the
project's error codes. Retries on 429, 5xx and dropped connections are the SDK's own
exponential policy.

Credentials come from the credentials resolver, the first one found of:
``AZURE_STORAGE_CONNECTION_STRING`` (which names its own endpoint), ``AZURE_STORAGE_KEY``
(the account's key) or ``AZURE_STORAGE_SAS_TOKEN``; the last two go to ``endpoint_url``, else
``https://<account>.blob.core.windows.net``. None of them ever appears in a message.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import DevopsError, ErrorCode
from ..objectstore import Headers, ObjectStore, StoredObject, credential_digest
from .bucket import BucketPlatform

__all__ = [
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AzurePlatform",
    "AzureStore",
    "open_store",
]

AZURE_STORAGE_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
AZURE_STORAGE_KEY = "AZURE_STORAGE_KEY"
AZURE_STORAGE_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"
#: In the order they are looked for; the first one found is used.
CREDENTIAL_NAMES = (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN)
DEFAULT_CONTAINER = "$web"
_SERVICE = "Azure Blob Storage"
_MISSING_FIX = (
    "Give the deploy the storage account's connection string: `devops secrets.set "
    f"{AZURE_STORAGE_CONNECTION_STRING}` (Azure portal → the storage account → Access keys), "
    f"or export it in CI; an account key ({AZURE_STORAGE_KEY}, with azure.account) or a SAS "
    f"token ({AZURE_STORAGE_SAS_TOKEN}) works too."
)
_GONE = ("ContainerNotFound", "ContainerBeingDeleted")
#: A page of a listing: each blob's name, size and ETag, and the marker of the next page.
_BlobPage = tuple[list[tuple[str, int, str]], str]


def open_store(options: Mapping[str, Any], lookup: Callable[[str], str | None]) -> AzureStore:
    """The store the ``azure`` settings describe, with the first credential ``lookup`` finds."""
    found: dict[str, str] = {}
    for name in CREDENTIAL_NAMES:
        value = lookup(name)
        if value:
            found[name] = value
            break
    return AzureStore(
        account=options.get("account") or None,
        container=str(options.get("container") or DEFAULT_CONTAINER),
        prefix=str(options.get("prefix") or ""),
        endpoint_url=options.get("endpoint_url") or None,
        connection_string=found.get(AZURE_STORAGE_CONNECTION_STRING),
        account_key=found.get(AZURE_STORAGE_KEY),
        sas_token=found.get(AZURE_STORAGE_SAS_TOKEN),
    )


class AzurePlatform(BucketPlatform):
    """A static site in Azure Blob Storage: ``azure.account``, ``azure.container``, ``prefix``."""

    name = "azure"
    #: azure.account may come from the connection string instead (the store checks).
    required = ()
    first_steps = (f"devops secrets.set {AZURE_STORAGE_CONNECTION_STRING}", "devops infra.up")

    def open_store(self) -> ObjectStore:
        return open_store({**self.options, "prefix": self.prefix}, self.credentials.lookup)

    def require_credentials(self) -> None:
        if not any(self.credentials.lookup(name) for name in CREDENTIAL_NAMES):
            raise _no_credentials(self.options.get("account"))


class AzureStore(ObjectStore):
    """One blob container (``$web`` by default), seen through ``prefix``."""

    #: The most keys one delete request carries (Azure's limit for one blob batch).
    delete_batch = 256

    def __init__(
        self,
        *,
        account: str | None = None,
        container: str = DEFAULT_CONTAINER,
        prefix: str = "",
        endpoint_url: str | None = None,
        connection_string: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        page_size: int = 5000,
        retry_total: int = 5,
        retry_backoff: float = 1.0,
        copy_timeout: float = 600.0,
    ) -> None:
        self.container_name = container
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        secret = connection_string or account_key or sas_token
        self._identity = (
            ("azure", endpoint_url, account, container, self.prefix, credential_digest(secret))
            if secret
            else None
        )
        self.page_size = page_size
        self.copy_timeout = copy_timeout
        self.where = f"the container {container}"
        with self._failures("open"):
            from azure.storage.blob import (  # noqa: PLC0415 - the [azure] extra, on use
                BlobServiceClient,
                ExponentialRetry,
            )

            self._errors = _sdk_errors()
            options: dict[str, Any] = {
                # 1 s, 3 s, 5 s, 9 s, 17 s (± jitter) with the default backoff of 1 s.
                "retry_policy": ExponentialRetry(
                    initial_backoff=retry_backoff,  # type: ignore[arg-type]
                    increment_base=2 * retry_backoff,  # type: ignore[arg-type]
                    retry_total=retry_total,
                    random_jitter_range=retry_backoff,  # type: ignore[arg-type]
                ),
                "connection_timeout": 20,
                "read_timeout": 120,
            }
            if connection_string:
                try:
                    service = BlobServiceClient.from_connection_string(connection_string, **options)
                except ValueError:  # its message can quote the string
                    raise _unusable(AZURE_STORAGE_CONNECTION_STRING) from None
            else:
                if not account:
                    raise DevopsError(
                        ErrorCode.CONFIG_INVALID,
                        "azure.account is not set",
                        "Name the storage account: `devops config.set azure.account NAME` "
                        f"(or give {AZURE_STORAGE_CONNECTION_STRING}, which names it).",
                    )
                credential: Any
                if account_key:
                    credential = {"account_name": account, "account_key": account_key}
                elif sas_token:
                    credential = sas_token.lstrip("?")  # in every URL, the copy source's too
                else:
                    raise _no_credentials(account)
                url = endpoint_url or f"https://{account}.blob.core.windows.net"
                service = BlobServiceClient(url, credential=credential, **options)
            self._service = service
            self._container = service.get_container_client(container)
            self.where = self.location = f"{_shown_url(service.url)}/{container}"

    @property
    def identity(self) -> Hashable | None:
        return self._identity

    # -- the store interface -----------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        start = len(self.prefix)
        with self._failures("list the blobs of"):
            for name, size, etag in self._listing(self.prefix + prefix):
                yield StoredObject(name[start:], size, _etag(etag))

    def _listing(self, prefix: str) -> Iterator[tuple[str, int, str | None]]:
        """``(name, size, etag)`` of every blob under ``prefix``, a page at a time.

        The List Blobs pages go through the SDK's pipeline (its credentials, retries and
        timeouts) and are read with ElementTree: the SDK's own models cost ~0.2 ms of CPU a
        blob (4 s for 20,000), the XML read directly ~30 µs. From the first answer that is not
        the plain listing expected (an error status, another format, an SDK without these
        internals) the SDK's paging takes over at the same marker, and reports what went
        wrong in its own terms; only a service still busy after the pipeline's retries (429,
        5xx) is reported at once, not retried all over again.
        """
        marker = ""
        while (page := self._page(prefix, marker)) is not None:
            blobs, marker = page
            yield from blobs
            if not marker:
                return
        pages = self._container.list_blobs(
            name_starts_with=prefix, results_per_page=self.page_size
        ).by_page(continuation_token=marker or None)
        for listed in pages:
            for blob in listed:
                yield blob.name, int(blob.size or 0), blob.etag

    def _page(self, prefix: str, marker: str) -> _BlobPage | None:
        """One List Blobs page and its NextMarker, or None if the answer is not that."""
        from azure.core.rest import HttpRequest  # noqa: PLC0415 - the [azure] extra

        container = self._container
        query = {"restype": "container", "comp": "list", "maxresults": str(self.page_size)}
        if prefix:
            query["prefix"] = prefix
        if marker:
            query["marker"] = marker
        # Quoted here, as the SDK's own requests are: azure-core sends ``params`` as given,
        # and a "#" or "&" in a name (a marker is one) would cut the query short.
        url = container.url + ("&" if "?" in container.url else "?")
        url += "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
        headers = {"x-ms-version": container.api_version, "Accept": "application/xml"}
        try:
            answer = container._client._send_request(HttpRequest("GET", url, headers=headers))
        except (AttributeError, TypeError):
            return None
        status = answer.status_code
        if status == 429 or status >= 500:  # the pipeline has retried it: not again
            busy = self._errors.HttpResponseError(response=answer)
            busy.error_code = answer.headers.get("x-ms-error-code")
            raise busy
        try:
            return _blob_page(answer.read()) if status == 200 else None
        except (ValueError, ET.ParseError):
            return None

    def get(self, key: str) -> bytes | None:
        with self._failures("read", key):
            try:
                # decompress=False: a gzip-encoded blob's own bytes, as they were uploaded.
                stream = self._blob(key).download_blob(decompress=False)
                data: bytes = stream.readall()
            except self._errors.ResourceNotFoundError as exc:
                if _code(exc) in _GONE:
                    raise
                return None
            return data

    def put(self, key: str, body: IO[bytes], size: int, headers: Headers) -> str | None:
        with self._failures("upload", key):
            written = self._blob(key).upload_blob(
                body, length=size, overwrite=True, content_settings=_settings(headers)
            )
            return _etag(written.get("etag"))

    def copy(
        self, source: str, key: str, headers: Headers, origin: ObjectStore | None = None
    ) -> str | None:
        store = self.origin(origin)
        with self._failures(f"copy {store.prefix}{source} to", key):
            target = self._blob(key)
            if source == key and store is self:
                properties = target.get_blob_properties()
            else:
                target.start_copy_from_url(store._blob(source).url)
                properties = self._copied(target)
            # Setting the headers replaces all of them: keep the MD5 the blob has.
            updated = target.set_http_headers(
                _settings(headers, properties.content_settings.content_md5)
            )
            return _etag(updated.get("etag"))

    def delete(self, keys: Iterable[str]) -> None:
        names = (self.prefix + key for key in keys)
        while chunk := list(islice(names, self.delete_batch)):
            with self._failures("delete blobs in"):
                for name in self._delete_batch(chunk):
                    # Missing (or in a missing container): nothing to delete, as in a batch.
                    with contextlib.suppress(self._errors.ResourceNotFoundError):
                        self._container.delete_blob(name, delete_snapshots="include")

    def create(self, key: str, body: bytes) -> bool:
        with self._failures("create", key):
            try:
                self._blob(key).upload_blob(body, overwrite=False)  # If-None-Match: *
            except self._errors.ResourceExistsError:
                return False
            return True

    def close(self) -> None:
        self._service.close()

    # -- the container itself (infra.up / infra.down) --------------------------------------

    def bucket_exists(self) -> bool:
        with self._failures("look up"):
            return bool(self._container.exists())

    def create_bucket(self) -> None:
        with self._failures("create"):
            self._container.create_container()

    def configure_website(self, index: str, error: str) -> None:
        """Turn on the account's static website (it serves ``$web``), an account setting."""
        from azure.storage.blob import StaticWebsite  # noqa: PLC0415

        with self._failures("configure the static website of"):
            self._service.set_service_properties(
                static_website=StaticWebsite(
                    enabled=True, index_document=index, error_document404_path=error
                )
            )

    def allow_public_read(self) -> None:
        with self._failures("make public"):
            self._container.set_container_access_policy(signed_identifiers={}, public_access="blob")

    def delete_bucket(self) -> None:
        with self._failures("delete"):
            self._container.delete_container()

    # -- helpers -----------------------------------------------------------------------------

    def _blob(self, key: str) -> Any:
        return self._container.get_blob_client(self.prefix + key)

    def _copied(self, target: Any) -> Any:
        """The target's properties once its copy is done (within the account it is quick)."""
        deadline = time.monotonic() + self.copy_timeout
        pause = 0.05
        while True:
            properties = target.get_blob_properties()
            status = properties.copy.status
            if status == "success":
                return properties
            if status != "pending":
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"{_SERVICE} could not copy to {self.where}/{target.blob_name}: "
                    f"the copy ended {status}",
                    "Run the command again; if it keeps failing, check the blob in the "
                    "Azure portal.",
                    container=self.container_name,
                )
            if time.monotonic() > deadline:
                raise DevopsError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"{_SERVICE} did not finish copying to {self.where}/{target.blob_name} "
                    f"within {self.copy_timeout:.0f} s",
                    "Run the command again later (the copy goes on on Azure's side).",
                    container=self.container_name,
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _delete_batch(self, names: Sequence[str]) -> Sequence[str]:
        """Delete ``names`` in one batch request; returns the names still to delete one by one.

        A missing blob is fine. When the whole batch is refused (Azurite refuses any batch in
        ``$web``; a proxy can refuse multipart bodies) or some sub-requests fail, those names
        go to per-blob deletes, whose errors are the ones the user sees.
        """
        try:
            responses = list(
                self._container.delete_blobs(
                    *names, delete_snapshots="include", raise_on_any_failure=False
                )
            )
        except self._errors.AzureError:
            return names
        if len(responses) != len(names):  # one answer for the whole batch: it failed as one
            return names
        return [
            name
            for name, response in zip(names, responses, strict=True)
            if response.status_code not in (202, 404)
        ]

    @contextlib.contextmanager
    def _failures(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn what the SDK raises while doing ``action`` into a DevopsError."""
        errors = _sdk_errors()
        try:
            yield
        except errors.AzureError as exc:
            where = f"{self.where}/{self.prefix}{key}" if key is not None else self.where
            # Never chained: an SDK error's text can carry a request URL, and so a SAS.
            raise self._mapped(errors, exc, f"could not {action} {where}") from None

    def _mapped(self, errors: Any, exc: Exception, why: str) -> DevopsError:
        """The DevopsError for ``exc``: the status and the service's error code, no text."""
        status = getattr(exc, "status_code", None)
        code = _code(exc)
        said = f"HTTP {status} {code}".rstrip() if status else type(exc).__name__
        details: dict[str, Any] = {"container": self.container_name}
        if code:
            details["azure_error"] = code
        if isinstance(exc, errors.ClientAuthenticationError) or status in (401, 403):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                f"{_SERVICE} refused the credentials: {why} ({said})",
                "Check that the connection string, key or SAS token is current (keys are "
                "rotated in the portal; a SAS expires) and that it allows read, write, delete "
                "and list on the container; store a new one with `devops secrets.set "
                f"{AZURE_STORAGE_CONNECTION_STRING}` (or {AZURE_STORAGE_KEY}, "
                f"{AZURE_STORAGE_SAS_TOKEN}).",
                **details,
            )
        if isinstance(exc, errors.ResourceNotFoundError):
            missing = (
                "the container does not exist" if code in _GONE else "no such blob (or container)"
            )
            return DevopsError(
                ErrorCode.NOT_FOUND,
                f"{_SERVICE} {why}: {missing} ({said})",
                f"Check azure.account, azure.container ({self.container_name}) and "
                "azure.prefix; create the container with `devops infra.up` if it is new.",
                **details,
            )
        if isinstance(exc, (errors.ServiceRequestError, errors.ServiceResponseError)):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{_SERVICE} {why}: could not reach the service ({type(exc).__name__})",
                "Check the network (and azure.endpoint_url or the connection string's "
                "BlobEndpoint, if set), then run the command again.",
                **details,
            )
        if status == 429 or (isinstance(status, int) and status >= 500):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{_SERVICE} {why} ({said}, still after retrying)",
                "Azure Storage is busy: run the command again in a minute.",
                **details,
            )
        return DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"{_SERVICE} {why} ({said})",
            "Check the storage account's settings (immutability policies, legal holds, "
            "leases, network rules) in the Azure portal, then run the command again.",
            **details,
        )


def _sdk_errors() -> Any:
    """azure.core's exception module (imported here: the SDK is the ``[azure]`` extra)."""
    try:
        from azure.core import exceptions  # noqa: PLC0415
    except ImportError:
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            "The azure target needs azure-storage-blob, which is not installed",
            "Install the extra: pip install 'devops-tasks[azure]'.",
        ) from None
    return exceptions


def _no_credentials(account: str | None) -> DevopsError:
    return DevopsError(
        ErrorCode.CREDENTIALS_MISSING,
        f"No credentials for the Azure storage account {account or '(azure.account)'}",
        _MISSING_FIX,
        credential=AZURE_STORAGE_CONNECTION_STRING,
    )


def _unusable(name: str) -> DevopsError:
    return DevopsError(
        ErrorCode.CREDENTIALS_INVALID,
        f"{name} is not usable (malformed)",
        f"Copy it again from the Azure portal (the storage account → Access keys or Shared "
        f"access signature) into `devops secrets.set {name}`.",
        credential=name,
    )


def _settings(headers: Headers, content_md5: Any = None) -> Any:
    from azure.storage.blob import ContentSettings  # noqa: PLC0415

    return ContentSettings(
        content_type=headers.content_type,
        cache_control=headers.cache_control,
        content_encoding=headers.content_encoding,
        content_md5=content_md5,
    )


def _code(exc: BaseException) -> str:
    """The service's error code (``BlobNotFound``...), as a plain string."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _blob_page(body: bytes) -> _BlobPage:
    """A List Blobs page's ``(name, size, etag)`` of each blob, and its NextMarker.

    A name with characters XML cannot carry comes percent-encoded (``Encoded="true"``).
    """
    blobs: list[tuple[str, int, str]] = []
    root = ET.fromstring(body)
    if root.tag != "EnumerationResults":
        raise ValueError(f"not a listing: {root.tag}")
    for blob in root.iterfind("Blobs/Blob"):
        name = blob.find("Name")
        if name is None or name.text is None:
            raise ValueError("a blob without a name")
        text = unquote(name.text) if name.get("Encoded") == "true" else name.text
        size = blob.findtext("Properties/Content-Length") or "0"
        blobs.append((text, int(size), blob.findtext("Properties/Etag") or ""))
    return blobs, root.findtext("NextMarker") or ""


def _etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _shown_url(url: str) -> str:
    """``url`` without its query (a SAS) or any user part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
