"""The object store contract, checked against every backend on a real emulator.

Each backend is a fixture returning a :class:`Backend`; ``BACKENDS`` lists them. To add one
(the AWS store on moto, say): write an ``s3_backend`` fixture like the two below and add
``"s3"`` to ``BACKENDS``. Where an emulator falls short of the real service, the contract
test is marked ``xfail(strict=True)`` for that backend with the reason, and a test below
pins the emulator's behaviour: when an emulator is fixed, those tests fail and say so.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import io
import json
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import azurite
import gcs_emulator
import local_server
import pytest

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.objectstore import Headers, ObjectStore
from devops_tasks.platforms import azure
from devops_tasks.platforms.azure import AzureStore
from devops_tasks.platforms.gcp import GcsStore

BUCKET = "site-bucket"
PREFIX = "site"
HTML = Headers("text/html; charset=utf-8", "no-cache")
ASSET = Headers("text/css; charset=utf-8", "public, max-age=31536000, immutable", "gzip")


@dataclass
class Served:
    """An object as the service hands it out: its bytes and its HTTP headers."""

    body: bytes
    headers: Headers


@dataclass
class Backend:
    """One store on a fresh bucket, and ways to look at it without going through the store."""

    name: str
    #: A store on the fresh bucket, under ``PREFIX``; keywords go to the store's constructor.
    open: Callable[..., ObjectStore]
    #: What the service serves for a key (relative to ``PREFIX``).
    served: Callable[[str], Served]
    #: A store on a bucket (or container) that does not exist.
    open_missing: Callable[[], ObjectStore]
    #: A store whose credentials the service refuses, and the secret that must not be shown.
    open_refused: Callable[[], tuple[ObjectStore, str]]
    #: A store whose requests go through ``url`` (a proxy in front of the emulator).
    open_through: Callable[[str], ObjectStore]


BACKENDS = ["gcs", "azure"]


def gap(backend: str, reason: str) -> Any:
    """``backend`` in the parameters, marked as an emulator's known gap (strict: it must fail)."""
    return pytest.param(backend, marks=pytest.mark.xfail(strict=True, reason=reason))


def backends(**gaps: str) -> Any:
    """Parametrize a test over every backend, with ``gaps`` (backend -> reason) marked."""
    return pytest.mark.parametrize(
        "backend",
        [gap(name, gaps[name]) if name in gaps else name for name in BACKENDS],
        indirect=True,
    )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    chosen: Backend = request.getfixturevalue(f"{request.param}_backend")
    yield chosen


@pytest.fixture
def store(backend: Backend) -> Iterator[ObjectStore]:
    opened = backend.open()
    try:
        yield opened
    finally:
        opened.close()


def put(store: ObjectStore, key: str, body: bytes, headers: Headers = HTML) -> None:
    store.put(key, io.BytesIO(body), len(body), headers)


# -- GCS on gcp-storage-emulator -----------------------------------------------------------


def _gcs_request(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        payload = response.read()
    return payload


def _gcs_object_url(base: str, name: str) -> str:
    return f"{base}/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}"


@pytest.fixture
def gcs_backend(gcs_server: local_server.LocalServer) -> Backend:
    url = gcs_server.url
    gcs_emulator.reset(url)
    _gcs_request(f"{url}/storage/v1/b?project=test", "POST", {"name": BUCKET})

    def served(key: str) -> Served:
        name = f"{PREFIX}/{key}"
        meta = json.loads(_gcs_request(_gcs_object_url(url, name)))
        # The emulator's download sends no Cache-Control or Content-Encoding: the object's
        # metadata is what GCS turns into those headers.
        media = _gcs_request(
            f"{url}/download/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        )
        headers = Headers(
            meta["contentType"], meta.get("cacheControl"), meta.get("contentEncoding")
        )
        return Served(media, headers)

    def refused() -> tuple[ObjectStore, str]:
        key = _service_account_key(_refusing_token_endpoint())
        return GcsStore(BUCKET, endpoint_url=url, service_account=key), key

    return Backend(
        "gcs",
        lambda **options: GcsStore(BUCKET, endpoint_url=url, **{"prefix": PREFIX, **options}),
        served,
        lambda: GcsStore("no-such-bucket", endpoint_url=url),
        refused,
        lambda through: GcsStore(
            BUCKET, prefix=PREFIX, endpoint_url=through, retry_backoff=0.01, retry_timeout=1
        ),
    )


def _service_account_key(token_uri: str) -> str:
    """A well-formed service-account key (a fresh RSA key) whose tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": "deploy@test-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


_TOKEN_ENDPOINTS: list[http.server.ThreadingHTTPServer] = []


def _refusing_token_endpoint() -> str:
    """A loopback OAuth token endpoint that refuses every key, as Google does a deleted one."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT"})
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    if not _TOKEN_ENDPOINTS:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _TOKEN_ENDPOINTS.append(server)
    return f"http://127.0.0.1:{_TOKEN_ENDPOINTS[0].server_address[1]}/token"


# -- Azure Blob on Azurite ------------------------------------------------------------------


@pytest.fixture
def azure_backend(azurite_server: azurite.Azurite) -> Backend:
    from azure.storage.blob import BlobServiceClient

    azurite.reset(azurite_server)
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        # Public read, as a static website's container is served: plain GETs see the headers.
        service.create_container(azure.DEFAULT_CONTAINER, public_access="blob")
    connection = azurite_server.connection_string

    def served(key: str) -> Served:
        name = urllib.parse.quote(f"{PREFIX}/{key}")
        url = f"{azurite_server.endpoint}/{urllib.parse.quote(azure.DEFAULT_CONTAINER)}/{name}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            headers = Headers(
                response.headers["Content-Type"],
                response.headers.get("Cache-Control"),
                response.headers.get("Content-Encoding"),
            )
        return Served(body, headers)

    def refused() -> tuple[ObjectStore, str]:
        wrong = "A" * 86 + "=="
        return AzureStore(connection_string=connection.replace(azurite.ACCOUNT_KEY, wrong)), wrong

    return Backend(
        "azure",
        lambda **options: AzureStore(connection_string=connection, **{"prefix": PREFIX, **options}),
        served,
        lambda: AzureStore(connection_string=connection, container="no-such-container"),
        refused,
        lambda through: AzureStore(
            account=azurite.ACCOUNT,
            account_key=azurite.ACCOUNT_KEY,
            endpoint_url=f"{through}/{azurite.ACCOUNT}",
            prefix=PREFIX,
            retry_total=3,
            retry_backoff=0.01,
        ),
    )


# -- the contract --------------------------------------------------------------------------


@backends()
def test_list_yields_the_objects_under_the_prefix_with_keys_relative_to_it(
    backend: Backend, store: ObjectStore
) -> None:
    put(store, "index.html", b"<h1>hi</h1>")
    put(store, "assets/app.css", b"body{}", ASSET)
    put(store, ".devops/manifest.json", b"{}")
    outside = backend.open(prefix="")
    put(outside, "other/index.html", b"not ours")
    put(outside, "site-two/index.html", b"not ours either")

    listed = {item.key: item.size for item in store.list()}

    assert listed == {"index.html": 11, "assets/app.css": 6, ".devops/manifest.json": 2}
    assert [item.key for item in store.list("assets/")] == ["assets/app.css"]
    assert all(item.tag for item in store.list())


@backends(gcs="gcp-storage-emulator ignores maxResults: every listing is one page")
def test_list_fetches_pages_only_as_they_are_read(backend: Backend) -> None:
    store = backend.open(page_size=2)
    for number in range(5):
        put(store, f"page/{number}.html", b"x")
    listing = store.list("page/")

    first_page = [next(listing).key, next(listing).key]
    store.delete(f"page/{number}.html" for number in range(5))
    rest = [item.key for item in listing]

    assert first_page == ["page/0.html", "page/1.html"]
    assert rest == []  # the next pages were asked for after the objects were gone


@backends()
def test_list_reads_past_the_first_page(backend: Backend) -> None:
    store = backend.open(page_size=2)
    for number in range(5):
        put(store, f"page/{number}.html", b"x" * number)

    assert [(item.key, item.size) for item in store.list()] == [
        (f"page/{number}.html", number) for number in range(5)
    ]


@backends()
def test_get_of_a_missing_key_is_none(store: ObjectStore) -> None:
    assert store.get("nothing/here.html") is None


@backends()
def test_put_stores_the_bytes_and_the_service_serves_the_headers(
    backend: Backend, store: ObjectStore
) -> None:
    packed = gzip.compress(b"body { color: red }", mtime=0)

    put(store, "assets/app.css", packed, ASSET)

    assert backend.served("assets/app.css") == Served(packed, ASSET)
    assert store.get("assets/app.css") == packed  # not decompressed on the way back


@backends()
def test_put_replaces_an_object(backend: Backend, store: ObjectStore) -> None:
    put(store, "index.html", b"one")
    put(store, "index.html", b"two, longer", Headers("text/plain"))

    assert backend.served("index.html") == Served(b"two, longer", Headers("text/plain"))


@backends()
def test_copy_in_place_changes_the_headers_and_keeps_the_bytes(
    backend: Backend, store: ObjectStore
) -> None:
    put(store, "index.html", b"<h1>hi</h1>", HTML)
    tag = next(store.list()).tag
    changed = Headers("text/html; charset=utf-8", "public, max-age=60")

    store.copy("index.html", "index.html", changed)

    assert backend.served("index.html") == Served(b"<h1>hi</h1>", changed)
    assert next(store.list()).tag != tag  # a change the drift check can see


@backends(gcs="gcp-storage-emulator's PATCH skips null fields: it cannot remove a header")
def test_copy_in_place_can_remove_headers(backend: Backend, store: ObjectStore) -> None:
    put(store, "app.css", b"packed", ASSET)

    store.copy("app.css", "app.css", Headers("text/css"))

    assert backend.served("app.css").headers == Headers("text/css")


@backends()
def test_copy_to_another_key_carries_the_new_headers_and_leaves_the_source(
    backend: Backend, store: ObjectStore
) -> None:
    put(store, ".devops/objects/abc", b"<h1>v1</h1>", Headers("application/octet-stream"))

    store.copy(".devops/objects/abc", "index.html", HTML)

    assert backend.served("index.html") == Served(b"<h1>v1</h1>", HTML)
    assert backend.served(".devops/objects/abc").headers == Headers("application/octet-stream")


@backends()
def test_copy_of_a_missing_source_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(DevopsError) as failure:
        store.copy(".devops/objects/gone", "index.html", HTML)

    assert failure.value.code is ErrorCode.NOT_FOUND
    assert ".devops/objects/gone" in failure.value.message


@backends()
def test_delete_removes_the_keys_and_ignores_missing_ones(store: ObjectStore) -> None:
    for key in ("a.html", "b.html", "keep.html"):
        put(store, key, b"x")

    store.delete(iter(["a.html", "never-there.html", "b.html"]))
    store.delete([])

    assert [item.key for item in store.list()] == ["keep.html"]


@backends()
def test_delete_of_more_keys_than_one_batch_holds(store: ObjectStore) -> None:
    store.delete_batch = 2  # type: ignore[attr-defined]
    keys = [f"many/{number}.txt" for number in range(5)]
    for key in keys:
        put(store, key, b"")

    store.delete(keys)

    assert list(store.list("many/")) == []


@backends(gcs="gcp-storage-emulator ignores ifGenerationMatch: the second create succeeds")
def test_create_succeeds_once_then_reports_the_key_exists(store: ObjectStore) -> None:
    assert store.create(".devops/lock", b"holder one") is True
    assert store.create(".devops/lock", b"holder two") is False
    assert store.get(".devops/lock") == b"holder one"


@backends()
def test_keys_with_spaces_unicode_hash_and_question_mark(
    backend: Backend, store: ObjectStore
) -> None:
    odd = ["a b/c d.html", "ünïcödé/日本.html", "hash#tag.html", "what?.html", "100%.html"]
    for key in odd:
        put(store, key, key.encode())

    copies = [f"copy/{key}" for key in odd]
    for key, copy in zip(odd, copies, strict=True):
        store.copy(key, copy, Headers("text/plain", "max-age=60"))

    assert sorted(item.key for item in store.list()) == sorted(odd + copies)
    assert [store.get(key) for key in odd] == [key.encode() for key in odd]
    assert backend.served(copies[3]) == Served(odd[3].encode(), Headers("text/plain", "max-age=60"))
    store.delete(odd + copies)
    assert list(store.list()) == []


@backends()
def test_a_5_mb_object_round_trips(store: ObjectStore) -> None:
    body = os.urandom(5 * 1024 * 1024)

    put(store, "video.bin", body, Headers("application/octet-stream"))

    assert store.get("video.bin") == body
    assert [(item.key, item.size) for item in store.list()] == [("video.bin", len(body))]


@backends()
def test_a_missing_bucket_is_not_found_with_a_fix(backend: Backend) -> None:
    store = backend.open_missing()

    for attempt in (lambda: list(store.list()), lambda: put(store, "index.html", b"x")):
        with pytest.raises(DevopsError) as failure:
            attempt()
        assert failure.value.code is ErrorCode.NOT_FOUND
        assert "does not exist" in failure.value.message
        assert "infra.up" in failure.value.fix


@backends()
def test_refused_credentials_are_credentials_invalid_and_never_shown(backend: Backend) -> None:
    store, secret = backend.open_refused()

    with pytest.raises(DevopsError) as failure:
        list(store.list())

    assert failure.value.code is ErrorCode.CREDENTIALS_INVALID
    shown = json.dumps(failure.value.to_dict()) + repr(failure.value.__cause__)
    assert secret not in shown
    assert "secrets.set" in failure.value.fix


@backends()
def test_a_503_is_retried_by_the_sdk_policy(backend: Backend, store: ObjectStore) -> None:
    put(store, "index.html", b"<h1>hi</h1>")
    with FlakyProxy(backend_url(store), failures=2) as proxy:
        through = backend.open_through(proxy.url)

        assert through.get("index.html") == b"<h1>hi</h1>"

    assert proxy.refused == 2
    assert proxy.forwarded >= 1


@backends()
def test_a_service_that_stays_unavailable_is_service_unavailable(
    backend: Backend, store: ObjectStore
) -> None:
    with FlakyProxy(backend_url(store), failures=1000) as proxy:
        through = backend.open_through(proxy.url)
        with pytest.raises(DevopsError) as failure:
            through.get("index.html")

    assert failure.value.code is ErrorCode.SERVICE_UNAVAILABLE
    assert proxy.refused > 1  # retried before giving up


def backend_url(store: ObjectStore) -> str:
    """The emulator's base URL (scheme, host and port) behind ``store``."""
    if isinstance(store, GcsStore):
        assert store.endpoint is not None
        return store.endpoint
    assert isinstance(store, AzureStore)
    parts = urllib.parse.urlsplit(store.where)
    return f"{parts.scheme}://{parts.netloc}"


class FlakyProxy:
    """A loopback HTTP proxy that answers 503 to the first ``failures`` requests."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.failures = failures
        self.refused = 0
        self.forwarded = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.refused < proxy.failures:
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("x-ms-error-code", "ServerBusy")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.forwarded += 1
                connection = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=10
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
