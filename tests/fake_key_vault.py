"""A fake Azure Key Vault (secrets) that follows the data-plane description, over real TLS.

The description is ``specs/azure-keyvault-secrets.json`` (API version 2025-07-01; source and
commit in ``specs/README.md``). Every request to a vault is checked against it
(``violations``, which also records any other ``api-version``), and the fake serves the
operations in ``HANDLERS``: set, get, list, delete, and the deleted-secret get, purge and
recover, with Key Vault's rules: names ``^[0-9a-zA-Z-]+$`` of at most 127 characters,
compared without case; values of at most 25,600 bytes; soft-delete, so a deleted name
cannot be set again (409 ObjectIsDeletedButRecoverable) until it is purged or recovered;
and the bearer challenge: a request without a valid token gets 401 with
``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
resource="https://vault.test"``, as the service answers with ``https://vault.azure.net``.

How a client reaches it, with nothing but its ordinary settings:

* Vaults are ``https://<name>.vault.test`` (``.test`` never resolves). The fake listens on
  one loopback port that is also an HTTPS proxy (``HTTPS_PROXY``): it answers ``CONNECT
  <name>.vault.test:443`` itself and speaks TLS inside the tunnel with a certificate for
  ``*.vault.test`` from a throwaway CA (:func:`throwaway_ca`), which the client trusts
  through ``REQUESTS_CA_BUNDLE``. Verification stays on.
* Tokens come from the App Service managed identity endpoint the fake serves in plain HTTP,
  as App Service does on localhost: ``GET /msi/token`` with ``X-IDENTITY-HEADER``
  (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``, which azure-identity reads). It also serves
  an Azure Instance Metadata endpoint with no identity assigned
  (``AZURE_POD_IDENTITY_AUTHORITY_HOST``), for "no credentials at all", and an AD FS
  authority at ``https://login.vault.test/adfs`` (its OpenID configuration and a token
  endpoint for the client ``client_id`` / ``client_secret``), for a service principal
  (``AZURE_TENANT_ID=adfs``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``,
  ``AZURE_AUTHORITY_HOST``).
"""

from __future__ import annotations

import datetime
import json
import secrets
import socketserver
import ssl
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fake_netlify import _Handler, _Server
from spec_routes import ApiError, Call, DescribedFake, SpecRoutes, from_swagger

__all__ = ["API_VERSION", "DOMAIN", "MAX_VALUE_BYTES", "FakeKeyVault", "throwaway_ca"]

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "azure-keyvault-secrets.json"
API_VERSION = "2025-07-01"
DOMAIN = "vault.test"
LOGIN_HOST = f"login.{DOMAIN}"
MAX_VALUE_BYTES = 25_600
PAGE_SIZE = 25
TENANT = "72f988bf-0000-4000-8000-000000000000"


def throwaway_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A new CA (its PEM file, to trust) and a server context for ``*.vault.test`` it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devops-tasks test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{DOMAIN}")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"*.{DOMAIN}"), x509.DNSName(DOMAIN)]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_path, context


class _TunnelHandler(_Handler):
    """The plain port also takes ``CONNECT``: the proxy half of the fake."""

    do_CONNECT = _Handler._any


def _epoch() -> int:
    return int(time.time())


class FakeKeyVault(DescribedFake):
    """Key Vaults under ``*.vault.test`` and an identity endpoint (see the module doc)."""

    name = "fake-key-vault"
    routes = SpecRoutes(
        from_swagger(json.loads(SPEC_PATH.read_bytes()), next_link=["$skiptoken"]),
        optional=["secret-version"],  # "This URI fragment is optional": /secrets/NAME/ is latest
    )
    HANDLERS: ClassVar[dict[str, str]] = {
        "SetSecret": "_set",
        "GetSecret": "_get",
        "GetSecrets": "_list",
        "DeleteSecret": "_delete",
        "GetDeletedSecret": "_get_deleted",
        "PurgeDeletedSecret": "_purge",
        "RecoverDeletedSecret": "_recover",
    }

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__()
        self.tls = tls
        self.identity_header = secrets.token_urlsafe(16)
        #: Vault host names whose secrets the identity may not read or write.
        self.denied: set[str] = set()
        #: Tokens issued -> when they expire (kept across resets, as clients cache them).
        self.tokens: dict[str, float] = {}
        #: The one service principal the AD FS authority knows.
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(16)
        self.reset()

    def _server_for(self) -> _Server:
        server = super()._server_for()
        server.RequestHandlerClass = _TunnelHandler
        return server

    @property
    def proxy(self) -> str:
        return self.base

    @property
    def identity_endpoint(self) -> str:
        return f"{self.base}/msi/token"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            #: host -> lower-case name -> {"name", "versions": [bundle...]}
            self.vaults: dict[str, dict[str, dict[str, Any]]] = {}
            #: host -> lower-case name -> deleted bundle (soft-deleted, not purged)
            self.deleted: dict[str, dict[str, dict[str, Any]]] = {}
            #: GETs of a deleted secret that answer 404 before the deletion shows.
            self.deletion_polls = 0
            #: Purging is refused (403), as with purge protection on.
            self.purge_protection = False
            #: Every token is refused (401), as tokens from another tenant are.
            self.other_tenant = False
            self.denied.clear()
            self._polls: dict[str, int] = {}

    # -- the proxy and the identity endpoints ---------------------------------------------

    def _handle(self, h: _Handler) -> None:
        if h.command != "CONNECT":
            super()._handle(h)
            return
        host, _, port = h.path.rpartition(":")
        if not host.endswith(f".{DOMAIN}") or port != "443":
            h.send_payload(403, {"error": f"the proxy only reaches *.{DOMAIN}:443"})
            return
        h.send_response(200, "Connection established")
        h.end_headers()
        try:
            tls = self.tls.wrap_socket(h.connection, server_side=True)
        except ssl.SSLError:  # a client that does not trust the CA hangs up: as it should
            h.close_connection = True
            return
        h.connection = tls
        h.rfile = tls.makefile("rb")
        h.wfile = socketserver._SocketWriter(tls)  # type: ignore[attr-defined]
        h.close_connection = False  # clients send CONNECT as HTTP/1.0; the tunnel stays open

    @property
    def authority(self) -> str:
        return f"https://{LOGIN_HOST}"

    def described(self, call: Call) -> bool:
        host = call.headers.get("host", "").split(":")[0]
        return host.endswith(f".{DOMAIN}") and host != LOGIN_HOST

    def _token(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + 3600
        return {"access_token": token, "token_type": "Bearer"}

    def outside(self, call: Call) -> tuple[int, Any]:
        if call.path == "/msi/token" and call.method == "GET":
            if call.headers.get("x-identity-header") != self.identity_header:
                raise ApiError(401, {"statusCode": 401, "message": "Unauthorized request"})
            return 200, {
                **self._token(),
                "expires_on": str(_epoch() + 3600),
                "resource": call.query.get("resource"),
                "client_id": str(uuid.uuid4()),
            }
        if call.path == "/adfs/.well-known/openid-configuration":
            return 200, {
                "issuer": f"{self.authority}/adfs",
                "authorization_endpoint": f"{self.authority}/adfs/oauth2/authorize",
                "token_endpoint": f"{self.authority}/adfs/oauth2/token",
            }
        if call.path == "/adfs/oauth2/token" and call.method == "POST":
            form = dict(parse_qsl(call.body.decode()))
            if (form.get("client_id"), form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                raise ApiError(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "MSIS9622: Client "
                        "authentication failed. Please verify the credential provided.",
                    },
                )
            return 200, {**self._token(), "expires_in": 3600}
        if call.path == "/metadata/identity/oauth2/token":
            raise ApiError(
                400, {"error": "invalid_request", "error_description": "Identity not found"}
            )
        raise ApiError(404, {"error": "not found"})

    # -- the vault API --------------------------------------------------------------------

    def error(self, status: int, message: str, code: str = "", inner: str = "") -> ApiError:
        code = code or {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(
            status, "BadParameter" if status < 500 else "InternalServerError"
        )
        body: dict[str, Any] = {"code": code, "message": message}
        if inner:
            body["innererror"] = {"code": inner}
        return ApiError(status, {"error": body})

    def authorize(self, call: Call) -> None:
        version = call.query.get("api-version")
        if version != API_VERSION:
            self.violations.append(f"{call.method} {call.path}: api-version {version!r}")
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if (
            scheme.lower() != "bearer"
            or self.tokens.get(token, 0) < time.time()
            or self.other_tenant
        ):
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                f'resource="https://{DOMAIN}"'
            )
            raised = self.error(401, "AKV10000: Request is missing a Bearer or PoP token.")
            raised.headers["WWW-Authenticate"] = challenge
            raise raised
        if call.headers["host"].split(":")[0] in self.denied:
            raise self.error(
                403,
                "The user, group or application does not have secrets permission on key vault",
                inner="ForbiddenByRbac",
            )

    def _vault(self, call: Call) -> tuple[str, dict[str, dict[str, Any]]]:
        host = call.headers["host"].split(":")[0]
        return host, self.vaults.setdefault(host, {})

    def _item(
        self, host: str, entry: dict[str, Any], with_value: bool, version: str = ""
    ) -> dict[str, Any]:
        """A SecretBundle (``with_value``) or SecretItem of one version (default: latest)."""
        found = [v for v in entry["versions"] if v["version"] == version] or [None]
        chosen = entry["versions"][-1] if not version else found[0]
        if chosen is None:
            raise self.error(404, f"Secret version {version} was not found.", "SecretNotFound")
        item = {k: v for k, v in chosen.items() if with_value or k != "value"}
        item["id"] = f"https://{host}/secrets/{entry['name']}" + (
            f"/{chosen['version']}" if with_value else ""
        )
        item.pop("version")
        return item

    def _set(self, call: Call) -> tuple[int, Any]:
        host, vault = self._vault(call)
        name = call.params["secret-name"]
        if not (0 < len(name) <= 127 and name.isascii() and name.replace("-", "").isalnum()):
            raise self.error(400, "The request URI contains an invalid name: " + name)
        body = call.json if isinstance(call.json, dict) else {}
        value = body.get("value")
        if not isinstance(value, str):
            raise self.error(400, "The parameter value is not specified.", "ParameterNotSpecified")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise self.error(400, "Secret value is too large; the maximum is 25600 bytes.")
        if name.lower() in self.deleted.get(host, {}):
            raise self.error(
                409,
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
                "Conflict",
                "ObjectIsDeletedButRecoverable",
            )
        entry = vault.setdefault(name.lower(), {"name": name, "versions": []})
        now = _epoch()
        created = entry["versions"][0]["attributes"]["created"] if entry["versions"] else now
        entry["versions"].append(
            {
                "value": value,
                "version": uuid.uuid4().hex,
                "contentType": body.get("contentType"),
                "tags": body.get("tags") or {},
                "attributes": {
                    "enabled": True,
                    "created": created,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
            }
        )
        return 200, self._item(host, entry, with_value=True)

    def _get(self, call: Call) -> tuple[int, Any]:
        host, vault = self._vault(call)
        name = call.params["secret-name"]
        entry = vault.get(name.lower())
        if entry is None:
            raise self.error(
                404,
                f"A secret with (name/id) {name} was not found in this key vault.",
                "SecretNotFound",
            )
        return 200, self._item(host, entry, True, call.params.get("secret-version", ""))

    def _list(self, call: Call) -> tuple[int, Any]:
        host, vault = self._vault(call)
        size = min(int(call.query.get("maxresults") or PAGE_SIZE), PAGE_SIZE)
        start = int(call.query.get("$skiptoken") or 0)
        names = sorted(vault)
        page = [self._item(host, vault[n], with_value=False) for n in names[start : start + size]]
        following = None
        if start + size < len(names):
            query = {"api-version": API_VERSION, "$skiptoken": start + size, "maxresults": size}
            following = f"https://{host}/secrets?{urlencode(query)}"
        return 200, {"value": page, "nextLink": following}

    def _delete(self, call: Call) -> tuple[int, Any]:
        host, vault = self._vault(call)
        status, item = self._get(call)
        entry = vault.pop(call.params["secret-name"].lower())
        name = entry["name"]
        deleted = {
            **item,
            "recoveryId": f"https://{host}/deletedsecrets/{name}",
            "deletedDate": _epoch(),
            "scheduledPurgeDate": _epoch() + 90 * 86400,
            "_entry": entry,
        }
        self.deleted.setdefault(host, {})[name.lower()] = deleted
        self._polls[f"{host}/{name.lower()}"] = self.deletion_polls
        return status, {k: v for k, v in deleted.items() if k != "_entry"}

    def _deleted(self, call: Call) -> tuple[str, dict[str, Any]]:
        host, _vault = self._vault(call)
        key = call.params["secret-name"].lower()
        found = self.deleted.get(host, {}).get(key)
        pending = self._polls.get(f"{host}/{key}", 0)
        if found is None or pending > 0:
            self._polls[f"{host}/{key}"] = pending - 1
            raise self.error(
                404,
                f"Deleted Secret not found: {call.params['secret-name']}",
                "SecretNotFound",
            )
        return host, found

    def _get_deleted(self, call: Call) -> tuple[int, Any]:
        _host, found = self._deleted(call)
        return 200, {k: v for k, v in found.items() if k not in ("_entry", "value")}

    def _purge(self, call: Call) -> tuple[int, Any]:
        host, found = self._deleted(call)
        if self.purge_protection:
            raise self.error(
                403,
                "Operation 'purge' is not allowed because purge protection is enabled for this "
                "vault. Key Vault service will automatically purge it after the retention period "
                "has passed.",
            )
        del self.deleted[host][found["_entry"]["name"].lower()]
        return 204, None

    def _recover(self, call: Call) -> tuple[int, Any]:
        host, found = self._deleted(call)
        entry = found["_entry"]
        del self.deleted[host][entry["name"].lower()]
        self.vaults.setdefault(host, {})[entry["name"].lower()] = entry
        return 200, self._item(host, entry, with_value=True)
