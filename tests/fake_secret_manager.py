"""A fake Google Secret Manager (v1 REST) on 127.0.0.1 that follows Google's discovery document.

The description is ``specs/google-secretmanager-v1.json`` (source and revision in
``specs/README.md``); every request is checked against it (``violations``) and the fake
serves the operations in ``HANDLERS``: secrets create/get/list/delete, addVersion, and
versions get/access, with the service's errors (``{"error": {"code", "message", "status"}}``)
and limits: a payload of 1 to 65,536 bytes (an empty one is refused, as Secret Manager
refuses it), a ``dataCrc32c`` that must match when sent, secret ids of
``[A-Za-z0-9_-]{1,255}``.

Authentication is the service account's own: :meth:`FakeSecretManager.add_service_account`
makes a key and returns the JSON key file a user would download; the client library signs
a JWT with it (self-signed JWT access, as it does against Google), and the fake checks the
signature and expiry, answering 401 UNAUTHENTICATED otherwise and 403 PERMISSION_DENIED for a
project the account was not given.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from spec_routes import ApiError, Call, DescribedFake, SpecRoutes, from_discovery

__all__ = ["MAX_PAYLOAD_BYTES", "FakeSecretManager"]

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "google-secretmanager-v1.json"
MAX_PAYLOAD_BYTES = 65_536
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_PREFIX = "secretmanager.projects.secrets."


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class FakeSecretManager(DescribedFake):
    """Secret Manager for the projects its service accounts may use (see the module doc)."""

    name = "fake-secret-manager"
    routes = SpecRoutes(from_discovery(json.loads(SPEC_PATH.read_bytes())), aliases={"$alt": "alt"})
    HANDLERS: ClassVar[dict[str, str]] = {
        _PREFIX + "create": "_create",
        _PREFIX + "get": "_get",
        _PREFIX + "list": "_list",
        _PREFIX + "delete": "_delete",
        _PREFIX + "addVersion": "_add_version",
        _PREFIX + "versions.get": "_get_version",
        _PREFIX + "versions.access": "_access",
    }

    def __init__(self) -> None:
        super().__init__()
        #: client_email -> (public key, projects it may use)
        self.accounts: dict[str, tuple[rsa.RSAPublicKey, set[str]]] = {}
        self.reset()

    def reset(self) -> None:
        super().reset()
        with self._lock:
            #: "projects/<p>/secrets/<id>" -> the Secret, plus "versions": [SecretVersion + data]
            self.secrets: dict[str, dict[str, Any]] = {}
            #: Secrets per page of secrets.list when the client asks for more.
            self.page_size = 25_000

    # -- test controls --------------------------------------------------------------------

    def add_service_account(self, *projects: str) -> dict[str, str]:
        """A new service account allowed in ``projects``; its JSON key file's content."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"ci-{uuid.uuid4().hex[:8]}@{projects[0]}.iam.gserviceaccount.com"
        with self._lock:
            self.accounts[email] = (key.public_key(), set(projects))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "type": "service_account",
            "project_id": projects[0],
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem.decode(),
            "client_email": email,
            "client_id": str(uuid.uuid4().int)[:21],
            "token_uri": f"{self.base}/token",
        }

    def value(self, secret: str, version: int = -1) -> bytes:
        """The stored bytes of one version of ``projects/<p>/secrets/<id>`` (default: latest)."""
        with self._lock:
            return bytes(self.secrets[secret]["versions"][version]["data"])

    # -- the protocol ---------------------------------------------------------------------

    def error(self, status: int, message: str) -> ApiError:
        status_name = _STATUS.get(status, "UNKNOWN")
        return ApiError(
            status, {"error": {"code": status, "message": message, "status": status_name}}
        )

    def authorize(self, call: Call) -> None:
        """The bearer must be a JWT signed by an account's key, unexpired, for this project."""
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        refused = self.error(
            401, "Request had invalid authentication credentials. Expected OAuth 2 access token."
        )
        try:
            header, claims, signature = token.split(".")
            payload = json.loads(_b64url(claims))
            key, projects = self.accounts[payload["iss"]]
            key.verify(
                _b64url(signature),
                f"{header}.{claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, KeyError, InvalidSignature):
            raise refused from None
        if scheme.lower() != "bearer" or payload.get("exp", 0) < time.time():
            raise refused
        project = call.path.split("/")[3] if call.path.startswith("/v1/projects/") else ""
        if project not in projects:
            raise self.error(
                403,
                f"Permission 'secretmanager.secrets.list' denied on resource 'projects/{project}'",
            )

    # -- operations -----------------------------------------------------------------------

    def _secret(self, call: Call) -> dict[str, Any]:
        name = f"projects/{call.params['projectsId']}/secrets/{call.params['secretsId']}"
        found = self.secrets.get(name)
        if found is None:
            raise self.error(404, f"Secret [{name}] not found or has no versions.")
        return found

    @staticmethod
    def _public(secret: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in secret.items() if k != "versions"}

    def _create(self, call: Call) -> tuple[int, Any]:
        secret_id = call.query.get("secretId", "")
        if (
            not secret_id
            or len(secret_id) > 255
            or not all(c.isascii() and (c.isalnum() or c in "-_") for c in secret_id)
        ):
            raise self.error(400, "Invalid resource field value in the request.")
        body = call.json if isinstance(call.json, dict) else {}
        if "replication" not in body:
            raise self.error(400, "Secret.replication is required.")
        name = f"projects/{call.params['projectsId']}/secrets/{secret_id}"
        if name in self.secrets:
            raise self.error(409, f"Secret [{name}] already exists.")
        secret = {**body, "name": name, "createTime": _now(), "etag": f'"{uuid.uuid4().hex}"'}
        self.secrets[name] = {**secret, "versions": []}
        return 200, secret

    def _get(self, call: Call) -> tuple[int, Any]:
        return 200, self._public(self._secret(call))

    def _list(self, call: Call) -> tuple[int, Any]:
        start = f"projects/{call.params['projectsId']}/secrets/"
        names = sorted(n for n in self.secrets if n.startswith(start))
        size = min(int(call.query.get("pageSize") or self.page_size), self.page_size)
        offset = int(call.query.get("pageToken") or 0)
        page = [self._public(self.secrets[n]) for n in names[offset : offset + size]]
        answer: dict[str, Any] = {"secrets": page, "totalSize": len(names)}
        if offset + size < len(names):
            answer["nextPageToken"] = str(offset + size)
        return 200, answer

    def _delete(self, call: Call) -> tuple[int, Any]:
        del self.secrets[self._secret(call)["name"]]
        return 200, {}

    def _add_version(self, call: Call) -> tuple[int, Any]:
        secret = self._secret(call)
        payload = (call.json or {}).get("payload") or {}
        data = base64.b64decode(payload.get("data", ""))
        if not data:
            raise self.error(400, "Field [payload] is required.")
        if len(data) > MAX_PAYLOAD_BYTES:
            raise self.error(400, f"Secret payload data is larger than {MAX_PAYLOAD_BYTES} bytes.")
        checksum = payload.get("dataCrc32c")
        if checksum is not None and int(checksum) != google_crc32c.value(data):
            raise self.error(400, "Checksum mismatch for the secret payload data.")
        number = len(secret["versions"]) + 1
        version = {
            "name": f"{secret['name']}/versions/{number}",
            "createTime": _now(),
            "state": "ENABLED",
            "etag": f'"{uuid.uuid4().hex}"',
            "clientSpecifiedPayloadChecksum": checksum is not None,
        }
        secret["versions"].append({**version, "data": data})
        return 200, version

    def _version(self, call: Call) -> dict[str, Any]:
        versions = self._secret(call)["versions"]
        wanted = call.params["versionsId"]
        if wanted == "latest" and versions:
            return versions[-1]
        if wanted.isdigit() and 0 < int(wanted) <= len(versions):
            return versions[int(wanted) - 1]
        raise self.error(404, f"Secret Version [{call.path}] not found.")

    def _get_version(self, call: Call) -> tuple[int, Any]:
        return 200, {k: v for k, v in self._version(call).items() if k != "data"}

    def _access(self, call: Call) -> tuple[int, Any]:
        version = self._version(call)
        data = version["data"]
        return 200, {
            "name": version["name"],
            "payload": {
                "data": base64.b64encode(data).decode(),
                "dataCrc32c": str(google_crc32c.value(data)),
            },
        }
