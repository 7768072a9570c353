"""The Azure Key Vault backend: one Key Vault secret per name and scope.

Key Vault names allow only ``0-9 a-z A-Z -`` and compare without case, so scope and name
are written with an escape code that reads back exactly, whatever case the vault returns::

    <prefix><scope>-1<NAME>      e.g. devops-tasks-site---shared-1NETLIFY--AUTH--TOKEN

In both parts ``_`` is written ``--`` and ``-`` is written ``-0``; ``-1`` separates them.
The scope (``_shared`` or an environment, always lower case) keeps its lower-case letters
and digits; the name keeps its upper-case letters and digits, and writes a lower-case letter
as ``-`` and the letter (``Token`` -> ``T-o-k-e-n``). The prefix defaults to
``devops-tasks-<project directory name>-``.

``delete`` is Key Vault's soft-delete, then a purge once the deletion shows, so the name can
be set again at once; a vault that forbids purging (purge protection) keeps the deleted
secret until its retention ends. Setting a secret whose name is soft-deleted (by someone
else, or kept by purge protection) recovers it first and then stores the new value.

``azure-keyvault-secrets`` and ``azure-identity`` are imported only when a backend is made.
Credentials come from ``DefaultAzureCredential`` (environment variables, workload identity,
managed identity, the Azure CLI, ...). The client asks for API version 2025-07-01. No
message carries a secret value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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

__all__ = ["API_VERSION", "MAX_VALUE_BYTES", "AzureSecretsBackend", "decode", "encode"]

#: Key Vault's limit on a secret value ("25 KB"), in bytes.
MAX_VALUE_BYTES = 25_600
MAX_NAME_LENGTH = 127
#: The data-plane API version devops-tasks asks for (the one its tests' description is).
API_VERSION = "2025-07-01"
_ESCAPED = {"_": "-", "-": "0", "/": "1"}
_UNESCAPED = {v: k for k, v in _ESCAPED.items()}
_WAIT_ATTEMPTS = 10  # soft-delete, purge and recovery take Key Vault a few seconds
_MISSING_FIX = (
    "Give Azure credentials the usual way: AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET (or a federated token) in the environment, e.g. in CI; a managed "
    "identity where you run; or `az login` on your machine."
)


def encode(scope: str, name: str) -> str:
    """``scope`` and ``name`` as one Key Vault name (without the prefix), reversibly."""

    def part(text: str, plain: str) -> str:
        out = []
        for char in text:
            if char in _ESCAPED:
                out.append("-" + _ESCAPED[char])
            elif char.isdigit() or (char.isupper() if plain == "upper" else char.islower()):
                out.append(char)
            else:
                out.append("-" + char.lower())
        return "".join(out)

    return part(scope, "lower") + "-1" + part(name, "upper")


def decode(encoded: str) -> tuple[str, str] | None:
    """``(scope, name)`` from what :func:`encode` wrote (in any case), or None if it did not."""
    parts: list[list[str]] = [[]]
    chars = iter(encoded)
    for char in chars:
        plain = str.lower if len(parts) == 1 else str.upper
        if char != "-":
            parts[-1].append(plain(char))
            continue
        code = next(chars, "").lower()
        if code == "1" and len(parts) == 1:
            parts.append([])
        elif code in _UNESCAPED and code != "1":
            parts[-1].append(_UNESCAPED[code])
        elif code.isalpha():
            parts[-1].append(code.upper() if plain is str.lower else code)
        else:
            return None
    if len(parts) != 2:
        return None
    return "".join(parts[0]), "".join(parts[1])


class AzureSecretsBackend(CloudSecretsBackend):
    """Secrets in one Azure Key Vault, under ``<prefix><scope>-1<NAME>`` (see the module doc)."""

    name = "azure"
    service = "Azure Key Vault"
    max_value_bytes = MAX_VALUE_BYTES
    #: Retries of a call that failed for the service's sake (throttling, 5xx, connections).
    max_retries = 3
    #: Seconds between looks while Key Vault finishes a deletion, purge or recovery.
    wait_seconds = 1.0

    def __init__(
        self,
        project: Project,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        options = dict(options or {})
        self.environ = os.environ if environ is None else environ
        vault_url = options.get("vault_url")
        if not isinstance(vault_url, str) or urlsplit(vault_url).scheme != "https":
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "secrets.azure.vault_url must be the vault's https:// URL",
                "Set it: `devops config.set secrets.azure.vault_url https://NAME.vault.azure.net`.",
            )
        self.vault_url = vault_url
        self.prefix = prefix_option(
            options, project, mode="azure", allowed="0-9A-Za-z-", most=80, separator="-"
        )
        require_sdk("azure", "azure-secrets", "azure.keyvault.secrets", "azure.identity")
        self._client_object: Any = None
        self._refused: list[str] = []  # credentials that tried and failed (not just absent)

    # -- names -----------------------------------------------------------------------------

    def secret_id(self, name: str, scope: str) -> str:
        full = self.prefix + encode(scope, name)
        return short_enough(full, MAX_NAME_LENGTH, "Key Vault secret name", "azure")

    # -- Azure calls -----------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_object is None:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415
            from azure.keyvault.secrets import SecretClient  # noqa: PLC0415

            from .. import __version__  # noqa: PLC0415

            chain = DefaultAzureCredential()
            chain.credentials = tuple(_Watched(c, self._refused) for c in chain.credentials)
            self._client_object = SecretClient(
                self.vault_url,
                chain,
                api_version=API_VERSION,
                retry_total=self.max_retries,
                retry_backoff_factor=0.5,
                retry_backoff_max=4,
                user_agent=f"devops-tasks/{__version__}",
            )
        return self._client_object

    def _call(self, method: str, action: str, *args: Any, write: bool = False, **kw: Any) -> Any:
        """``client.<method>(*args, **kw)``; ``NOT_FOUND`` when there is no such secret, and
        ``SOFT_DELETED`` when its name is held by a deleted (recoverable) secret.

        ``write`` calls carry a value: their errors never include the service's message nor
        chain the original exception.
        """
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError  # noqa: PLC0415

        try:
            return getattr(self._client(), method)(*args, **kw)
        except ResourceNotFoundError:
            return NOT_FOUND
        except ResourceExistsError:
            return SOFT_DELETED
        except Exception as exc:
            error = self._translate(exc, action, write=write)
            if write:
                raise error from None
            raise error from exc

    def _translate(self, exc: Exception, action: str, *, write: bool) -> DevopsError:
        """A DevopsError for any failure of a call (Key Vault's error code in details)."""
        from azure.core import exceptions as az  # noqa: PLC0415

        where: dict[str, Any] = {"service": "keyvault", "vault_url": safe_url(self.vault_url)}
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(exc, az.ClientAuthenticationError) and response is None:
            refused, self._refused[:] = list(self._refused), []
            if refused:
                return DevopsError(
                    ErrorCode.CREDENTIALS_INVALID,
                    f"Azure refused the credentials of {', '.join(refused)} (to {action})",
                    "Check them (client secret, federated token, identity), then run the "
                    "command again.",
                    **where,
                )
            return DevopsError(
                ErrorCode.CREDENTIALS_MISSING,
                f"No Azure credentials for Azure Key Vault (to {action})",
                _MISSING_FIX,
                **where,
            )
        if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError)):
            return DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Azure Key Vault at {safe_url(self.vault_url)} could not be reached (to {action})",
                "Check secrets.azure.vault_url and the network (a proxy, or a certificate that "
                "is not trusted), then run the command again.",
                unreachable=True,
                **where,
            )
        code = getattr(getattr(exc, "error", None), "code", None)
        details = {**where, "azure_error": code, "status": status}
        said = "" if write else f": {getattr(exc, 'message', '')}".split("\n")[0]
        why = f"Azure Key Vault refused to {action}{said}"
        if status in (401, 403):
            return DevopsError(
                ErrorCode.CREDENTIALS_INVALID,
                why,
                "Give the identity the Key Vault Secrets Officer role (or an access policy for "
                "secrets get, list, set, delete, recover and purge) on the vault.",
                **details,
            )
        if status == 400:
            return DevopsError(
                ErrorCode.INVALID_ARGUMENT, why, "Check the secret and try again.", **details
            )
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            why,
            "Try again in a moment; check the service's status if it keeps failing.",
            **details,
        )

    def _wait_for(self, method: str, action: str, secret: str) -> bool:
        """True once ``client.<method>(secret)`` finds it (Key Vault finishes in seconds)."""
        for attempt in range(_WAIT_ATTEMPTS):
            if self._call(method, action, secret) is not NOT_FOUND:
                return True
            time.sleep(min(self.wait_seconds * (attempt + 1), 4.0))
        return False

    # -- the four operations -------------------------------------------------------------

    def _read(self, name: str, scope: str) -> str | None:
        secret = self.secret_id(name, scope)
        found = self._call("get_secret", f"read {secret}", secret)
        if found is NOT_FOUND:
            return None
        return str(found.value or "")

    def _write(self, name: str, scope: str, data: bytes) -> None:
        secret = self.secret_id(name, scope)
        for _attempt in range(2):
            stored = self._call(
                "set_secret",
                f"store {secret}",
                secret,
                data.decode("utf-8"),
                write=True,
                content_type="text/plain; charset=utf-8",
                tags={"managed-by": "devops-tasks"},
            )
            if stored is not SOFT_DELETED:
                return
            # The name is held by a deleted secret: recover it, then set the new value.
            self._call("begin_recover_deleted_secret", f"recover {secret}", secret)
            self._wait_for("get_secret", f"recover {secret}", secret)
        raise DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"{secret} stayed deleted in Azure Key Vault while its value was being stored",
            "Run the command again in a minute.",
        )

    def _remove(self, name: str, scope: str) -> bool:
        secret = self.secret_id(name, scope)
        deleted = self._call("begin_delete_secret", f"delete {secret}", secret)
        if deleted is NOT_FOUND:
            return False
        if deleted.result().recovery_id is None:  # no soft-delete in this vault
            return True
        if self._wait_for("get_deleted_secret", f"delete {secret}", secret):
            self._purge(secret)
        return True

    def _purge(self, secret: str) -> None:
        from azure.core.exceptions import HttpResponseError  # noqa: PLC0415

        try:
            self._client().purge_deleted_secret(secret)
        except HttpResponseError as exc:
            if getattr(exc, "status_code", None) != 403:  # 403: purge protection, or no right
                raise self._translate(exc, f"purge {secret}", write=False) from exc

    def _listing(self, scope: str) -> Iterable[tuple[str, str | None]]:
        action = "list the secrets of the vault"
        try:
            for item in self._client().list_properties_of_secrets():
                if not item.name.lower().startswith(self.prefix.lower()) or item.enabled is False:
                    continue
                found = decode(item.name[len(self.prefix) :])
                if found is not None and found[0] == scope:
                    name = name_under(found[1], "")
                    if name is not None:
                        yield name, iso(item.updated_on)
        except DevopsError:
            raise
        except Exception as exc:
            raise self._translate(exc, action, write=False) from exc


#: What ``_call`` returns for a secret that does not exist.
NOT_FOUND: Any = object()
#: What ``_call`` returns when a deleted, recoverable secret holds the name (HTTP 409).
SOFT_DELETED: Any = object()


class _Watched:
    """One credential of the chain, noting when it tried and failed (rather than was absent),
    which tells "credentials refused" from "no credentials" once the whole chain has failed."""

    def __init__(self, credential: Any, refused: list[str]) -> None:
        self._credential, self._refused = credential, refused

    def __getattr__(self, name: str) -> Any:
        return getattr(self._credential, name)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.identity import CredentialUnavailableError  # noqa: PLC0415

        try:
            return self._credential.get_token_info(*scopes, options=options)
        except CredentialUnavailableError:
            raise
        except Exception:
            self._refused.append(type(self._credential).__name__)
            raise
