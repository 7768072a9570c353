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
import shutil
import subprocess
import sys
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
from devops_tasks.platforms import azure, gcp
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
class Website:
    """A bucket's website documents and whether anyone may read its objects."""

    index: str | None
    error: str | None
    public: bool


@dataclass
class Backend:
    """One store on a fresh bucket, and ways to look at it without going through the store."""

    name: str
    #: A store on the fresh bucket, under ``PREFIX``; keywords go to the store's constructor.
    open: Callable[..., ObjectStore]
    #: What the service serves for a key (relative to ``PREFIX``).
    served: Callable[[str], Served]
    #: A store on another bucket (or container), which does not exist unless made.
    open_bucket: Callable[[str], ObjectStore]
    #: What the service says of a bucket's website and public read (see ``Website``).
    website: Callable[[str], Website]
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
        lambda name: GcsStore(name, endpoint_url=url, project="test"),
        lambda name: _gcs_website(url, name),
        refused,
        lambda through: GcsStore(
            BUCKET, prefix=PREFIX, endpoint_url=through, retry_backoff=0.01, retry_timeout=1
        ),
    )


def _gcs_website(url: str, name: str) -> Website:
    bucket = json.loads(_gcs_request(f"{url}/storage/v1/b/{name}"))
    policy = json.loads(_gcs_request(f"{url}/storage/v1/b/{name}/iam"))
    public = any(
        binding["role"] == "roles/storage.objectViewer" and "allUsers" in binding["members"]
        for binding in policy.get("bindings", [])
    )
    website = bucket.get("website") or {}
    return Website(website.get("mainPageSuffix"), website.get("notFoundPage"), public)


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
        lambda name: AzureStore(connection_string=connection, container=name),
        lambda name: _azure_website(connection, name),
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


def _azure_website(connection: str, name: str) -> Website:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(connection) as service:
        website = service.get_service_properties()["static_website"]
        public = service.get_container_client(name).get_container_properties().public_access
    return Website(
        website.index_document if website.enabled else None,
        website.error_document404_path if website.enabled else None,
        public == "blob",
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


#: Names a URL must quote, in the order a listing gives them; with two to a page, each page
#: but the last ends on one (and the next page starts after it).
ODD_NAMES = ["+.html", "a b.html", "h#.html", "p%20.html", "q?.html", "x&y=z.html", "ü/ä.html"]


@backends()
def test_list_reads_every_page_of_names_a_url_must_quote(backend: Backend) -> None:
    store = backend.open(page_size=2)
    for name in ODD_NAMES:
        put(store, name, b"x")

    assert [item.key for item in store.list()] == ODD_NAMES  # each once, in order


@backends()
def test_list_under_a_prefix_a_url_must_quote(backend: Backend) -> None:
    store = backend.open(prefix="my site/é+&#", page_size=2)
    for name in ODD_NAMES:
        put(store, name, b"x")
    put(backend.open(prefix="my site/é"), "not-ours.html", b"x")

    assert [item.key for item in store.list()] == ODD_NAMES


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
def test_put_and_copy_return_the_tag_the_listing_shows(store: ObjectStore) -> None:
    first = store.put("a.html", io.BytesIO(b"a"), 1, HTML)
    copied = store.copy("a.html", "b.html", ASSET)
    assert {item.key: item.tag for item in store.list()} == {"a.html": first, "b.html": copied}

    changed = store.copy("a.html", "a.html", ASSET)

    assert changed != first
    assert {item.key: item.tag for item in store.list()}["a.html"] == changed


@backends()
def test_a_bucket_is_created_served_as_a_website_made_public_and_deleted(
    backend: Backend,
) -> None:
    store = backend.open_bucket("fresh-site")
    assert store.bucket_exists() is False

    store.create_bucket()
    store.configure_website("index.html", "404.html")
    assert backend.website("fresh-site") == Website("index.html", "404.html", public=False)
    store.allow_public_read()
    store.allow_public_read()  # twice: still one grant
    assert backend.website("fresh-site").public is True
    assert store.bucket_exists() is True

    store.delete_bucket()
    assert store.bucket_exists() is False


@backends()
def test_a_missing_bucket_is_not_found_with_a_fix(backend: Backend) -> None:
    store = backend.open_bucket("no-such-bucket")

    for attempt in (lambda: list(store.list()), lambda: put(store, "index.html", b"x")):
        with pytest.raises(DevopsError) as failure:
            attempt()
        assert failure.value.code is ErrorCode.NOT_FOUND
        assert "does not exist" in failure.value.message
        assert "infra.up" in failure.value.fix


@backends()
def test_refused_credentials_are_credentials_invalid_and_never_shown(backend: Backend) -> None:
    store, secret = backend.open_refused()

    for attempt in (lambda: list(store.list()), lambda: store.delete(["a.html", "b.html"])):
        with pytest.raises(DevopsError) as failure:
            attempt()
        assert failure.value.code is ErrorCode.CREDENTIALS_INVALID
        shown = json.dumps(failure.value.to_dict()) + repr(failure.value.__cause__)
        assert secret not in shown
        assert "secrets.set" in failure.value.fix


@backends()
def test_creating_a_bucket_that_exists_says_why_it_failed(backend: Backend) -> None:
    store = backend.open_bucket("taken-name")
    store.create_bucket()

    with pytest.raises(DevopsError) as failure:
        store.create_bucket()

    assert failure.value.code is ErrorCode.DEPLOY_FAILED
    assert "409" in failure.value.message


@backends()
def test_a_503_is_retried_by_the_sdk_policy(backend: Backend, store: ObjectStore) -> None:
    put(store, "index.html", b"<h1>hi</h1>")
    with FlakyProxy(backend_url(store), failures=2) as proxy:
        through = backend.open_through(proxy.url)

        assert through.get("index.html") == b"<h1>hi</h1>"

    assert proxy.refused == 2
    assert len(proxy.seen) == 1


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


# -- both backends --------------------------------------------------------------------------


def test_importing_the_backends_loads_no_sdk() -> None:
    code = (
        "import sys, devops_tasks.platforms.gcp, devops_tasks.platforms.azure; "
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'azure'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "[]"


# -- GCS: settings, credentials, and the emulator's gaps -----------------------------------


def test_gcs_settings_make_the_store(gcs_server: local_server.LocalServer) -> None:
    store = gcp.open_store(
        {"bucket": BUCKET, "prefix": "/www/", "project": "p", "endpoint_url": gcs_server.url},
        {}.get,
    )

    assert (store.bucket_name, store.prefix, store.endpoint) == (BUCKET, "www/", gcs_server.url)


def test_gcs_without_a_bucket_is_config_invalid() -> None:
    with pytest.raises(DevopsError) as failure:
        gcp.open_store({"prefix": "www"}, {}.get)

    assert failure.value.code is ErrorCode.CONFIG_INVALID
    assert "gcp.bucket" in failure.value.fix


def test_gcs_storage_emulator_host_alone_reaches_the_emulator(
    gcs_backend: Backend, gcs_server: local_server.LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(gcs_backend.open(), "index.html", b"hi")
    monkeypatch.setenv(gcp.EMULATOR_VARIABLE, gcs_server.url)

    store = GcsStore(BUCKET, prefix=PREFIX)

    assert store.get("index.html") == b"hi"
    assert store.conditional_create is False


def test_gcs_on_google_itself_relies_on_preconditions() -> None:
    key = _service_account_key("http://127.0.0.1:9/token")

    assert GcsStore(BUCKET, service_account=key).conditional_create is True
    assert GcsStore(BUCKET, endpoint_url="http://127.0.0.1:9").conditional_create is False


def test_gcs_without_any_credentials_is_credentials_missing() -> None:
    with pytest.raises(DevopsError) as failure:
        GcsStore(BUCKET)

    assert failure.value.code is ErrorCode.CREDENTIALS_MISSING
    assert "GOOGLE_CREDENTIALS" in failure.value.fix
    assert "gcloud auth application-default login" in failure.value.fix


def test_gcs_malformed_key_is_credentials_invalid_and_not_shown() -> None:
    secret = '{"type": "service_account", "private_key": "-----BEGIN hunter2'

    with pytest.raises(DevopsError) as failure:
        GcsStore(BUCKET, service_account=secret)

    assert failure.value.code is ErrorCode.CREDENTIALS_INVALID
    assert "hunter2" not in json.dumps(failure.value.to_dict())
    assert failure.value.__cause__ is None and failure.value.__context__ is not None


def test_gcs_an_unreachable_endpoint_is_service_unavailable() -> None:
    store = GcsStore(BUCKET, endpoint_url="http://127.0.0.1:9", retry_timeout=0.3)

    with pytest.raises(DevopsError) as failure:
        list(store.list())

    assert failure.value.code is ErrorCode.SERVICE_UNAVAILABLE
    assert "could not reach http://127.0.0.1:9" in failure.value.message


def test_gcs_delete_sends_one_batch_request_per_batch(gcs_backend: Backend) -> None:
    store = gcs_backend.open()
    for number in range(5):
        put(store, f"{number}.html", b"x")
    with FlakyProxy(backend_url(store)) as proxy:
        through = gcs_backend.open_through(proxy.url)
        through.delete_batch = 2  # type: ignore[attr-defined]
        through.delete([f"{number}.html" for number in range(5)])

    assert proxy.seen == [("POST", "/batch/storage/v1")] * 3
    assert list(store.list()) == []


def test_gcs_create_is_false_where_preconditions_are_enforced(gcs_backend: Backend) -> None:
    """GCS answers 412 to ifGenerationMatch=0 on an existing object: a proxy does it here."""
    store = gcs_backend.open()
    with FlakyProxy(backend_url(store), preconditions=True) as proxy:
        through = gcs_backend.open_through(proxy.url)

        created = [through.create("lock", b"one"), through.create("lock", b"two")]

    assert created == [True, False]
    assert store.get("lock") == b"one"
    assert proxy.refused_preconditions == 1


def test_gcs_a_refused_batch_falls_back_to_one_delete_per_object(gcs_backend: Backend) -> None:
    store = gcs_backend.open()
    for number in range(3):
        put(store, f"{number}.html", b"x")
    with FlakyProxy(backend_url(store), failures=1) as proxy:  # the batch gets a 503
        gcs_backend.open_through(proxy.url).delete(["0.html", "1.html", "2.html", "gone.html"])

    assert [method for method, _ in proxy.seen] == ["DELETE"] * 4
    assert list(store.list()) == []


def test_gcs_creating_a_bucket_needs_a_project(gcs_server: local_server.LocalServer) -> None:
    with pytest.raises(DevopsError) as failure:
        GcsStore("new-bucket", endpoint_url=gcs_server.url).create_bucket()

    assert failure.value.code is ErrorCode.CONFIG_INVALID
    assert "gcp.project" in failure.value.fix


def test_gcs_finds_a_key_file_through_google_application_credentials(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "key.json"
    key.write_text(_service_account_key("http://127.0.0.1:9/token"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))

    store = GcsStore(BUCKET)

    assert store._client.project == "test-project"


def test_without_their_sdk_the_stores_say_which_extra_to_install() -> None:
    probe = (
        "import sys\n"
        "for name in ('google.api_core', 'google.cloud', 'azure.core', 'azure.storage'):\n"
        "    sys.modules[name] = None\n"
        "from devops_tasks.errors import DevopsError\n"
        "from devops_tasks.platforms import azure, gcp\n"
        "for make in (lambda: gcp.GcsStore('b', endpoint_url='http://127.0.0.1:9'),\n"
        "             lambda: azure.AzureStore(account='a', account_key='a2V5')):\n"
        "    try:\n"
        "        make()\n"
        "    except DevopsError as error:\n"
        "        print(error.code.value, error.fix)\n"
    )
    said = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert said == [
        "NOT_SUPPORTED Install the extra: pip install 'devops-tasks[gcp]'.",
        "NOT_SUPPORTED Install the extra: pip install 'devops-tasks[azure]'.",
    ]


def test_gcs_create_asks_for_generation_0_which_the_emulator_ignores(
    gcs_backend: Backend, gcs_server: local_server.LocalServer
) -> None:
    store = gcs_backend.open()
    asked_before = gcs_server.log().count("ifGenerationMatch=0")

    created = [store.create("lock", b"one"), store.create("lock", b"two")]

    # Both requests carried the precondition; GCS answers the second with 412 (tested by
    # the contract's xfail above), the emulator replaces the object.
    assert gcs_server.log().count("ifGenerationMatch=0") - asked_before == 2
    assert created == [True, True]
    assert store.get("lock") == b"two"


def test_gcs_emulator_rewrite_keeps_the_source_metadata(gcs_backend: Backend) -> None:
    """Why GcsStore.copy patches the headers when a rewrite did not set them."""
    store = gcs_backend.open()
    put(store, "source.html", b"x", HTML)
    base = backend_url(store)
    rewrite = (
        f"{_gcs_object_url(base, f'{PREFIX}/source.html')}/rewriteTo/b/{BUCKET}/o/"
        f"{urllib.parse.quote(f'{PREFIX}/target.css', safe='')}"
    )

    answer = json.loads(_gcs_request(rewrite, "POST", {"contentType": "text/css"}))

    assert answer["resource"]["contentType"] == HTML.content_type  # GCS would say text/css


def test_gcs_emulator_ignores_max_results(gcs_backend: Backend) -> None:
    """Why the lazy-paging contract test is an xfail on GCS (paging is the SDK's own)."""
    store = gcs_backend.open()
    for number in range(3):
        put(store, f"{number}.html", b"x")

    listing = json.loads(_gcs_request(f"{backend_url(store)}/storage/v1/b/{BUCKET}/o?maxResults=1"))

    assert len(listing["items"]) == 3
    assert "nextPageToken" not in listing


# -- Azure: settings, credentials, batch deletes in $web -----------------------------------


def test_azure_settings_make_the_store(azurite_server: azurite.Azurite) -> None:
    found = {"AZURE_STORAGE_KEY": azurite.ACCOUNT_KEY}
    store = azure.open_store(
        {"account": azurite.ACCOUNT, "prefix": "www", "endpoint_url": azurite_server.endpoint},
        found.get,
    )

    assert (store.container_name, store.prefix) == ("$web", "www/")
    assert store.where == f"{azurite_server.endpoint}/$web"


def test_azure_takes_the_connection_string_first(azurite_server: azurite.Azurite) -> None:
    found = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite_server.connection_string,
        "AZURE_STORAGE_KEY": "not even base64",
    }

    store = azure.open_store({"container": "other"}, found.get)

    assert store.where == f"{azurite_server.endpoint}/other"


def test_azure_an_account_key_or_a_sas_token_work_too(
    azure_backend: Backend, azurite_server: azurite.Azurite
) -> None:
    sas = _container_sas()
    for found in ({"AZURE_STORAGE_KEY": azurite.ACCOUNT_KEY}, {"AZURE_STORAGE_SAS_TOKEN": sas}):
        options = {"account": azurite.ACCOUNT, "endpoint_url": azurite_server.endpoint}
        store = azure.open_store({**options, "prefix": PREFIX}, found.get)
        put(store, "index.html", b"hi", Headers("text/plain"))
        store.copy("index.html", "copy.html", HTML)  # the copy's source carries the SAS

        assert azure_backend.served("copy.html") == Served(b"hi", HTML)
        store.delete(["index.html", "copy.html"])


def test_azure_a_forged_sas_is_credentials_invalid_and_not_shown(
    azure_backend: Backend, azurite_server: azurite.Azurite
) -> None:
    forged = "sv=2021-08-06&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=Zm9yZ2VkLXNpZ25hdHVyZQ%3D%3D"
    store = AzureStore(
        account=azurite.ACCOUNT, endpoint_url=azurite_server.endpoint, sas_token=forged
    )

    with pytest.raises(DevopsError) as failure:
        list(store.list())

    assert failure.value.code is ErrorCode.CREDENTIALS_INVALID
    shown = json.dumps(failure.value.to_dict())
    assert "Zm9yZ2Vk" not in shown and failure.value.__cause__ is None


def test_azure_without_credentials_is_credentials_missing() -> None:
    with pytest.raises(DevopsError) as failure:
        azure.open_store({"account": "mysite"}, {}.get)

    assert failure.value.code is ErrorCode.CREDENTIALS_MISSING
    assert "AZURE_STORAGE_CONNECTION_STRING" in failure.value.fix


def test_azure_without_an_account_is_config_invalid() -> None:
    with pytest.raises(DevopsError) as failure:
        azure.open_store({}, {"AZURE_STORAGE_KEY": azurite.ACCOUNT_KEY}.get)

    assert failure.value.code is ErrorCode.CONFIG_INVALID
    assert "azure.account" in failure.value.fix


def test_azure_a_malformed_connection_string_is_credentials_invalid_and_not_shown() -> None:
    with pytest.raises(DevopsError) as failure:
        AzureStore(connection_string="AccountKey=hunter2;garbage")

    assert failure.value.code is ErrorCode.CREDENTIALS_INVALID
    assert "hunter2" not in json.dumps(failure.value.to_dict())


def test_azure_an_unreachable_endpoint_is_service_unavailable() -> None:
    store = AzureStore(
        account=azurite.ACCOUNT,
        account_key=azurite.ACCOUNT_KEY,
        endpoint_url=f"http://127.0.0.1:9/{azurite.ACCOUNT}",
        retry_total=0,
    )

    with pytest.raises(DevopsError) as failure:
        store.get("index.html")

    assert failure.value.code is ErrorCode.SERVICE_UNAVAILABLE


def test_azurite_refuses_a_batch_delete_in_web(
    azure_backend: Backend, azurite_server: azurite.Azurite
) -> None:
    """Why AzureStore.delete falls back to per-blob deletes (real Azure fails batches too)."""
    from azure.storage.blob import BlobServiceClient

    put(azure_backend.open(), "index.html", b"x")
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        container = service.get_container_client(azure.DEFAULT_CONTAINER)
        answers = list(container.delete_blobs(f"{PREFIX}/index.html", raise_on_any_failure=False))

    assert [answer.status_code for answer in answers] == [400]


def test_azure_delete_in_web_falls_back_to_one_delete_per_blob(azure_backend: Backend) -> None:
    store = azure_backend.open()
    for number in range(5):
        put(store, f"{number}.html", b"x")
    with FlakyProxy(backend_url(store)) as proxy:
        through = azure_backend.open_through(proxy.url)
        through.delete_batch = 2  # type: ignore[attr-defined]
        through.delete([f"{number}.html" for number in range(5)] + ["never-there.html"])

    batches = [path for method, path in proxy.seen if method == "POST"]
    singles = [path for method, path in proxy.seen if method == "DELETE"]
    assert len(batches) == 3
    assert sorted(singles) == sorted(
        f"/{azurite.ACCOUNT}/$web/{PREFIX}/{name}.html"
        for name in [*map(str, range(5)), "never-there"]
    )
    assert list(store.list()) == []


def test_azure_delete_elsewhere_is_one_batch_request_per_batch(
    azure_backend: Backend, azurite_server: azurite.Azurite
) -> None:
    store = AzureStore(connection_string=azurite_server.connection_string, container="other")
    store._service.create_container("other")
    for number in range(5):
        put(store, f"{number}.html", b"x")
    with FlakyProxy(backend_url(store)) as proxy:
        through = AzureStore(
            account=azurite.ACCOUNT,
            account_key=azurite.ACCOUNT_KEY,
            endpoint_url=f"{proxy.url}/{azurite.ACCOUNT}",
            container="other",
        )
        through.delete_batch = 2  # type: ignore[attr-defined]
        through.delete([f"{number}.html" for number in range(5)])

    assert [method for method, _ in proxy.seen] == ["POST"] * 3
    assert list(store.list()) == []


def test_azure_a_leased_blob_is_deploy_failed_with_the_service_code(
    azure_backend: Backend, azurite_server: azurite.Azurite
) -> None:
    from azure.storage.blob import BlobServiceClient

    store = azure_backend.open()
    put(store, "index.html", b"x")
    with BlobServiceClient.from_connection_string(azurite_server.connection_string) as service:
        blob = service.get_blob_client(azure.DEFAULT_CONTAINER, f"{PREFIX}/index.html")
        blob.acquire_lease(lease_duration=15)

        with pytest.raises(DevopsError) as failure:
            put(store, "index.html", b"y")

    assert failure.value.code is ErrorCode.DEPLOY_FAILED
    assert failure.value.details["azure_error"] == "LeaseIdMissing"
    assert "leases" in failure.value.fix


def test_azure_a_missing_container_is_not_found_even_for_a_read(azure_backend: Backend) -> None:
    with pytest.raises(DevopsError) as failure:
        azure_backend.open_bucket("no-such-bucket").get("index.html")

    assert failure.value.code is ErrorCode.NOT_FOUND
    assert "container does not exist" in failure.value.message


def _container_sas() -> str:
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        azurite.ACCOUNT,
        azure.DEFAULT_CONTAINER,
        account_key=azurite.ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


@pytest.mark.parametrize("credential", ["connection string", "account key", "SAS token"])
def test_azure_reads_listing_pages_without_the_sdks_models(
    azure_backend: Backend,
    azurite_server: azurite.Azurite,
    monkeypatch: pytest.MonkeyPatch,
    credential: str,
) -> None:
    from azure.storage.blob import ContainerClient

    found = {
        "connection string": {"AZURE_STORAGE_CONNECTION_STRING": azurite_server.connection_string},
        "account key": {"AZURE_STORAGE_KEY": azurite.ACCOUNT_KEY},
        "SAS token": {"AZURE_STORAGE_SAS_TOKEN": _container_sas()},
    }[credential]
    options = {"account": azurite.ACCOUNT, "endpoint_url": azurite_server.endpoint}
    store = azure.open_store({**options, "prefix": "my site/é+&#"}, found.get)
    store.page_size = 2
    for size, name in enumerate(ODD_NAMES):
        put(store, name, b"x" * size)
    monkeypatch.setattr(ContainerClient, "list_blobs", None)  # any use of it would fail

    listed = [(item.key, item.size) for item in store.list()]

    assert listed == [(name, size) for size, name in enumerate(ODD_NAMES)]


def _two_a_page(backend: Backend, blobs: int) -> ObjectStore:
    """A store that lists two blobs a page, holding ``0.html`` ... as many as ``blobs``."""
    store = backend.open(page_size=2)
    for number in range(blobs):
        put(store, f"{number}.html", b"x")
    return store


def test_azure_listing_goes_on_through_the_sdk_from_a_page_it_cannot_read(
    azure_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _two_a_page(azure_backend, 5)
    client = store._container._client  # type: ignore[attr-defined]
    send, sent = client._send_request, []

    def second_page_is_not_a_listing(request: Any, **options: Any) -> Any:
        sent.append(request.url)
        answer = send(request, **options)
        if len(sent) == 2:
            answer.read = lambda: b"<html>a captive portal</html>"
        return answer

    monkeypatch.setattr(client, "_send_request", second_page_is_not_a_listing)

    listed = [item.key for item in store.list()]

    assert listed == [f"{number}.html" for number in range(5)]  # each once, in order
    assert len(sent) == 2  # the rest came through the SDK's paging, from the same marker


def test_azure_a_listing_the_service_stays_busy_for_is_retried_once_not_twice(
    azure_backend: Backend,
) -> None:
    store = azure_backend.open()
    with FlakyProxy(backend_url(store), failures=1000) as proxy:
        through = azure_backend.open_through(proxy.url)  # three retries
        with pytest.raises(DevopsError) as failure:
            list(through.list())

    assert failure.value.code is ErrorCode.SERVICE_UNAVAILABLE
    assert proxy.refused == 4  # the pipeline's round, and no second round by the SDK's paging


def test_azure_lists_through_the_sdk_when_its_internals_differ(
    azure_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _two_a_page(azure_backend, 3)
    monkeypatch.delattr(type(store._container._client), "_send_request")  # type: ignore[attr-defined]

    assert [item.key for item in store.list()] == ["0.html", "1.html", "2.html"]


def test_azure_listing_page_decodes_percent_encoded_names() -> None:
    # As Azure answers for a name with characters XML 1.0 cannot carry (Azurite cannot).
    page = (
        b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="$web">'
        b"<Blobs><Blob><Name>a&amp;b.html</Name><Properties><Etag>0x1</Etag>"
        b"<Content-Length>3</Content-Length></Properties></Blob>"
        b'<Blob><Name Encoded="true">ctl%01x%25.html</Name><Properties>'
        b"<Content-Length>5</Content-Length><Etag>0x2</Etag></Properties></Blob></Blobs>"
        b"<NextMarker>2!8!next</NextMarker></EnumerationResults>"
    )

    assert azure._blob_page(page) == (
        [("a&b.html", 3, "0x1"), ("ctl\x01x%.html", 5, "0x2")],
        "2!8!next",
    )


# -- the gcp and azure targets, end to end through the devops program ----------------------


@dataclass
class Target:
    """A project configured for a bucket target on its emulator, and that bucket's store."""

    name: str
    store: ObjectStore


@pytest.fixture
def bucket_target(
    request: pytest.FixtureRequest, project: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    if request.param == "gcp":
        server = request.getfixturevalue("gcs_server")
        gcs_emulator.reset(server.url)
        settings = {"bucket": "site-e2e", "project": "test-project", "endpoint_url": server.url}
        store: ObjectStore = GcsStore("site-e2e", endpoint_url=server.url)
    else:
        emulator = request.getfixturevalue("azurite_server")
        azurite.reset(emulator)
        monkeypatch.setenv(azure.AZURE_STORAGE_CONNECTION_STRING, emulator.connection_string)
        settings = {"container": "$web"}
        store = AzureStore(connection_string=emulator.connection_string)
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": request.param, request.param: settings})
    )
    try:
        yield Target(request.param, store)
    finally:
        store.close()


@pytest.mark.parametrize("bucket_target", ["gcp", "azure"], indirect=True)
def test_deploy_touch_edit_and_roll_back_without_the_build(
    bucket_target: Target, project: Any, cli: Any
) -> None:
    dist = project.root / "dist"
    site = ["index.html", "css/site.css"]
    assert cli("infra.up", "--json").json["success"] is True
    first = cli("deploy", "--json").json
    deployed = [bucket_target.store.get(path) for path in site]
    for path in dist.rglob("*"):
        os.utime(path)
    touched = cli("deploy", "--json").json
    (dist / "index.html").write_text("<h1>v2</h1>\n")
    edited = cli("deploy", "--json").json
    shutil.rmtree(dist)

    rolled = cli("rollback", "--json").json

    assert [first["success"], touched["success"], edited["success"], rolled["success"]] == [
        True
    ] * 4
    assert deployed == [b"<h1>v1</h1>\n", b"body { margin: 0 }\n"]
    assert touched["details"]["sync"]["uploaded"] == 0
    assert edited["details"]["sync"]["uploaded"] == 1
    assert [bucket_target.store.get(path) for path in site] == deployed


def test_the_gcp_target_links_the_index_document(
    gcs_server: local_server.LocalServer, project: Any, cli: Any
) -> None:
    gcs_emulator.reset(gcs_server.url)
    settings = {"bucket": "site-e2e", "project": "test-project", "endpoint_url": gcs_server.url}
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(json.dumps({"version": 1, "platform": "gcp", "gcp": settings}))
    cli("infra.up", "--public", "--json")

    deployed = cli("deploy", "--json").json

    assert deployed["url"] == f"{gcs_server.url}/site-e2e/index.html"
    with urllib.request.urlopen(deployed["url"], timeout=10) as page:
        assert page.read() == b"<h1>v1</h1>\n"


def test_the_azure_target_without_credentials_fails_before_the_build(
    project: Any, cli: Any
) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps(
            {
                "version": 1,
                "platform": "azure",
                "build": {"command": "touch built"},
                "azure": {"account": "mysite"},
            }
        )
    )

    failed = cli("deploy", "--json").json

    assert failed["code"] == "CREDENTIALS_MISSING"
    assert "AZURE_STORAGE_CONNECTION_STRING" in failed["fix"]
    assert not (project.root / "built").exists()


def backend_url(store: ObjectStore) -> str:
    """The emulator's base URL (scheme, host and port) behind ``store``."""
    if isinstance(store, GcsStore):
        assert store.endpoint is not None
        return store.endpoint
    assert isinstance(store, AzureStore)
    parts = urllib.parse.urlsplit(store.where)
    return f"{parts.scheme}://{parts.netloc}"


class FlakyProxy:
    """A loopback HTTP proxy that answers 503 to the first ``failures`` requests.

    With ``preconditions`` it also does what gcp-storage-emulator does not: a GCS upload with
    ``ifGenerationMatch=0`` whose object exists gets 412, as GCS answers.

    It records every request it forwards (``seen``: method and path), so a test can count
    the requests a store makes.
    """

    def __init__(self, upstream: str, failures: int = 0, preconditions: bool = False) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.failures = failures
        self.preconditions = preconditions
        self.refused = 0
        self.refused_preconditions = 0
        self.seen: list[tuple[str, str]] = []
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
                if proxy.preconditions and proxy.object_exists(self.path, body):
                    proxy.refused_preconditions += 1
                    self.send_response(412)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.seen.append((self.command, urllib.parse.unquote(self.path)))
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

    def object_exists(self, path: str, body: bytes) -> bool:
        """For a GCS upload with ifGenerationMatch=0: whether its object exists already."""
        if "ifGenerationMatch=0" not in path:
            return False
        bucket = urllib.parse.unquote(path.split("/b/", 1)[1].split("/", 1)[0])
        metadata = json.loads(body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
        name = urllib.parse.quote(metadata["name"], safe="")
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port)
        connection.request("GET", f"/storage/v1/b/{bucket}/o/{name}")
        status = connection.getresponse().status
        connection.close()
        return status == 200

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@backends()
def test_stores_opened_alike_share_an_identity(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    assert first.identity is not None and first.identity == second.identity


@backends()
def test_another_prefix_or_other_credentials_make_another_identity(backend: Backend) -> None:
    refused, secret = backend.open_refused()
    identities = {backend.open().identity, backend.open(prefix="other").identity, refused.identity}
    assert len(identities) == 3
    assert secret not in repr(refused.identity)
