"""A recording, fault-injecting HTTP proxy in front of the moto server, on 127.0.0.1.

Tests of the bucket targets point ``endpoint_url`` at it: every request reaches moto as
sent, and the proxy keeps the order in which they came (to check what a deploy asked for,
and in what sequence). It can also answer chosen requests itself with an S3 error, the way
S3 does when a policy denies a write or it asks clients to slow down.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["Fault", "Request", "S3Proxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


@dataclass(frozen=True)
class Request:
    method: str
    #: The path, percent-decoded (``/bucket/key``), without the query.
    path: str
    query: str
    #: ``x-amz-copy-source`` of a server-side copy (None for anything else).
    copy_source: str | None = None

    def key(self, bucket: str) -> str | None:
        """The object key this request is about in ``bucket`` (None for other requests)."""
        start = f"/{bucket}/"
        return self.path[len(start) :] if self.path.startswith(start) else None


@dataclass
class Fault:
    """Answer requests matching ``method`` and the ``path`` regex with an S3 error."""

    method: str
    path: str
    status: int
    code: str
    #: How many matching requests fail (None: all of them).
    times: int | None = None

    def matches(self, request: Request) -> bool:
        if request.method != self.method or not re.search(self.path, request.path):
            return False
        if self.times is None:
            return True
        if self.times > 0:
            self.times -= 1
            return True
        return False


class S3Proxy:
    """Forwards to ``upstream`` (moto); records requests; injects :class:`Fault` answers."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[Request] = []
        #: Each request forwarded to moto with the status moto answered, in answering order.
        self.answers: list[tuple[Request, int]] = []
        self.faults: list[Fault] = []
        self._guard = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> S3Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail(
        self, method: str, path: str, status: int, code: str, times: int | None = None
    ) -> None:
        with self._guard:
            self.faults.append(Fault(method, path, status, code, times))

    def clear(self) -> None:
        with self._guard:
            self.requests.clear()
            self.answers.clear()
            self.faults.clear()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        target = urlsplit(handler.path)
        request = Request(
            handler.command,
            unquote(target.path),
            target.query,
            handler.headers.get("x-amz-copy-source"),
        )
        body = _read_body(handler)
        with self._guard:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is not None:
            self._answer(handler, fault.status, _error_xml(fault.code).encode(), {})
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            with self._guard:
                self.answers.append((request, response.status))
            head = handler.command == "HEAD"  # its Content-Length is the object's: keep it
            kept = {
                k: v
                for k, v in response.getheaders()
                if k.lower() not in _HOP_BY_HOP and (head or k.lower() != "content-length")
            }
            self._answer(handler, response.status, data, kept, head)
        finally:
            connection.close()

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str],
        head: bool = False,
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        if not head:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if not head:
            handler.wfile.write(data)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, sent with a Content-Length or in chunks."""
    if "chunked" not in handler.headers.get("Transfer-Encoding", "").lower():
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""
    chunks = []
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()


def _error_xml(code: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    )
