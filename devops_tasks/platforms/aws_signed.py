"""The few S3 requests a sync makes most, signed (SigV4) and sent without boto3.

Importing boto3 and building a client costs about 0.3 s, and botocore parses a listing of
2,000 objects in another 0.3 s: more than an unchanged deploy needs in all. When the
credentials are plain keys (from the environment or the secrets store: CI's case), these
requests go out through :mod:`http.client` and listings are read with ElementTree; anything
else (profiles, SSO, a proxy, a custom CA) uses boto3 only.

This transport tries each request once. Any answer it does not expect (a redirect to another
region, a 503 SlowDown, an error) raises :class:`Unexpected`, and the store sends the same
request again through boto3, whose retries, backoff and error messages then apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from ..objectstore import credential_digest

__all__ = ["SignedS3", "Unexpected"]

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_UNSIGNED = "UNSIGNED-PAYLOAD"


class Unexpected(Exception):
    """An answer this transport does not handle: the request goes again through boto3."""


class SignedS3:
    """Signed requests to one bucket, path-style at a custom endpoint, else virtual-hosted."""

    def __init__(
        self,
        bucket: str,
        region: str,
        key_id: str,
        secret: str,
        token: str | None = None,
        endpoint: str | None = None,
        timeout: float = 60,
        ca_bundle: str | None = None,
    ) -> None:
        self.region = region
        self._key_id = key_id
        self._secret = secret
        self._token = token
        self.timeout = timeout
        self.ca_bundle = ca_bundle  # AWS_CA_BUNDLE, as boto3 honours it
        if endpoint:
            parts = urlsplit(endpoint)
            self.scheme, self.host = parts.scheme, parts.netloc
            self.base = f"{parts.path.rstrip('/')}/{bucket}"
        elif "." in bucket:  # a dotted name breaks the wildcard certificate: path style
            self.scheme, self.host = "https", f"s3.{region}.amazonaws.com"
            self.base = f"/{bucket}"
        else:
            self.scheme, self.host = "https", f"{bucket}.s3.{region}.amazonaws.com"
            self.base = ""
        self.bucket = bucket
        self._local = threading.local()

    @property
    def identity(self) -> tuple[str, ...]:
        """Endpoint, bucket path, region and key id, with a digest of the secret: what two
        transports must share to read the same objects as the same principal."""
        secret = credential_digest(self._secret, self._token)
        return (self.scheme, self.host, self.base, self.region, self._key_id, secret)

    # -- requests --------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        status, _, body = self._send("GET", key)
        if status == 404:
            return None
        self._expect(status, 200)
        return body

    def holds(self, key: str, seen: bytes) -> bool:
        """Whether ``key`` still holds ``seen``: a GET with ``If-None-Match`` on the bytes'
        MD5 (a single PUT's ETag), so an unchanged object answers 304 with no body. Another
        ETag (a multipart upload, SSE-KMS) costs the body, compared byte for byte."""
        etag = hashlib.md5(seen, usedforsecurity=False).hexdigest()
        status, _, body = self._send("GET", key, headers={"If-None-Match": f'"{etag}"'})
        if status in (304, 404):
            return status == 304
        self._expect(status, 200)
        return body == seen

    def listing(self, prefix: str) -> Iterator[tuple[str, int, str]]:
        """``(key, size, etag)`` of every object under ``prefix``, page after page."""
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, _, body = self._send("GET", None, query=query)
            self._expect(status, 200)
            root = ET.fromstring(body)
            for item in root.iter(f"{_NS}Contents"):
                yield (
                    item.findtext(f"{_NS}Key") or "",
                    int(item.findtext(f"{_NS}Size") or 0),
                    (item.findtext(f"{_NS}ETag") or "").strip('"'),
                )
            token = root.findtext(f"{_NS}NextContinuationToken")
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return

    def put(self, key: str, body: bytes, headers: Mapping[str, str]) -> str:
        status, answer, _ = self._send("PUT", key, body=body, headers=headers)
        self._expect(status, 200)
        return answer.get("etag", "").strip('"')

    def create(self, key: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """PUT only if absent: False when the key exists (412, or 409 while it is written)."""
        sent = {**headers, "If-None-Match": "*"}
        status, _, _ = self._send("PUT", key, body=body, headers=sent)
        if status in (409, 412):
            return False
        self._expect(status, 200)
        return True

    def copy(self, source: str, key: str, headers: Mapping[str, str]) -> str:
        """Copy ``source`` (``bucket/key``: any bucket) to ``key`` of this bucket."""
        sent = {
            **headers,
            "x-amz-copy-source": quote(f"/{source}", safe="/-_.~"),
            "x-amz-metadata-directive": "REPLACE",
        }
        status, _, body = self._send("PUT", key, headers=sent)
        self._expect(status, 200)
        root = ET.fromstring(body)  # S3 can answer 200 with an error in the body
        if root.tag != f"{_NS}CopyObjectResult":
            raise Unexpected(f"copy answered {root.tag}")
        return (root.findtext(f"{_NS}ETag") or "").strip('"')

    def delete(self, keys: list[str]) -> None:
        if len(keys) == 1:
            status, _, _ = self._send("DELETE", keys[0])
            self._expect(status, 204, 200, 404)
            return
        objects = "".join(f"<Object><Key>{_xml(k)}</Key></Object>" for k in keys)
        body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, _, answer = self._send(
            "POST", None, query={"delete": ""}, body=body, headers={"Content-MD5": digest}
        )
        self._expect(status, 200)
        if ET.fromstring(answer).find(f"{_NS}Error") is not None:
            raise Unexpected("some objects were not deleted")

    # -- the wire --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        key: str | None,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        path = self.base + ("/" + key if key is not None else "/" if not self.base else "")
        path = quote(path, safe="/-_.~")
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in sorted((query or {}).items())
        )
        sent = self._sign(method, path, canonical_query, body, dict(headers or {}))
        target = path + (f"?{canonical_query}" if canonical_query else "")
        connection = self._connection()
        try:
            connection.request(method, target, body=body or None, headers=sent)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._local.connection = None
            connection.close()
            raise Unexpected(f"{type(exc).__name__}: {exc}") from exc
        if response.will_close:
            self._local.connection = None
            connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.scheme == "https":
                context = ssl.create_default_context(cafile=self.ca_bundle)
                connection = http.client.HTTPSConnection(
                    self.host, timeout=self.timeout, context=context
                )
            else:
                connection = http.client.HTTPConnection(self.host, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _sign(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        headers: dict[str, str],
        now: datetime | None = None,
    ) -> dict[str, str]:
        """``headers`` with the SigV4 ones added (the payload is not signed, as boto3 does
        over HTTPS: TLS covers it)."""
        now = now or datetime.now(timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers.update(
            {
                "Host": self.host,
                "x-amz-date": stamp,
                "x-amz-content-sha256": _UNSIGNED,
            }
        )
        if body:
            headers["Content-Length"] = str(len(body))
        if self._token:
            headers["x-amz-security-token"] = self._token
        signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
        signed.pop("content-length", None)
        names = ";".join(sorted(signed))
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)),
                names,
                headers["x-amz-content-sha256"],
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = f"AWS4{self._secret}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._key_id}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers

    @staticmethod
    def _expect(status: int, *wanted: int) -> None:
        if status not in wanted:
            raise Unexpected(f"HTTP {status}")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
