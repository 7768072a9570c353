"""What the cloud secret stores (Google Secret Manager, Azure Key Vault) share.

A cloud backend only says how to read, write, remove and list one secret in one scope, in
the store's own terms; :class:`CloudSecretsBackend` turns that into the backend interface
the same way for every store: lookups that fall back from an environment to the shared
scope, every value checked before any is written, partial failures that say what was
stored, and every value read registered for masking.
"""

from __future__ import annotations

import abc
import importlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret
from .base import SHARED_SCOPE, SecretInfo, SecretsBackend, check_name, scope_for

if TYPE_CHECKING:
    from ..project import Project

__all__ = [
    "CloudSecretsBackend",
    "iso",
    "lookup_scopes",
    "name_under",
    "note_partial",
    "prefix_option",
    "require_sdk",
    "safe_url",
    "short_enough",
    "value_bytes",
]


def require_sdk(mode: str, extra: str, *modules: str) -> None:
    """NOT_SUPPORTED unless the SDK ``secrets.mode`` needs is installed (imported on use)."""
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as exc:
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"secrets.mode is {mode} but {exc.name or ' and '.join(modules)} is not installed",
            f"Install the extra: pip install 'devops-tasks[{extra}]'.",
        ) from exc


def prefix_option(
    options: Mapping[str, Any],
    project: Project,
    *,
    mode: str,
    allowed: str,
    most: int,
    separator: str,
) -> str:
    """``secrets.<mode>.prefix``: by default ``devops-tasks<sep><project folder><sep>``.

    ``allowed`` is the regex character class of the store's names, e.g. ``A-Za-z0-9_-``;
    the folder's other characters become ``-``.
    """
    prefix = options.get("prefix")
    if prefix is None:
        folder = re.sub(f"[^{allowed}]", "-", project.root.name) or "project"
        prefix = f"devops-tasks{separator}{folder}{separator}"[:most]
    if not isinstance(prefix, str) or not re.fullmatch(f"[{allowed}]{{0,{most}}}", prefix):
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            f"secrets.{mode}.prefix {prefix!r} cannot start a secret name there",
            f"Use at most {most} characters of {allowed} "
            f"(e.g. `devops config.set secrets.{mode}.prefix myapp{separator}`).",
        )
    return prefix


def lookup_scopes(environment: str | None) -> list[str]:
    """Where ``environment`` looks for a secret, most specific first."""
    own = scope_for(environment)
    return [own, SHARED_SCOPE] if own != SHARED_SCOPE else [SHARED_SCOPE]


def short_enough(full: str, most: int, what: str, mode: str) -> str:
    """``full`` if the store takes a name that long; INVALID_ARGUMENT saying what to shorten."""
    if len(full) > most:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"The {what} {full} is longer than {most} characters",
            f"Use a shorter secret name, or a shorter secrets.{mode}.prefix.",
        )
    return full


def note_partial(error: DevopsError, planned: list[str], stored: list[str]) -> None:
    """Say in ``error`` which of several values were stored before it (stores have no
    transactions), so setting them all again finishes the job."""
    if len(planned) > 1:
        error.details["stored"] = list(stored)
        error.details["not_stored"] = [name for name in planned if name not in stored]
        error.fix += (
            f" Stored before the failure: {', '.join(stored) or 'none'}; "
            "setting them all again is safe."
        )


def value_bytes(name: str, value: Any, limit: int, service: str, fix: str) -> bytes:
    """``value`` as UTF-8, if it is text the store can hold; the error never shows it."""
    if not isinstance(value, str):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"The value of {name} is not text ({type(value).__name__})",
            "Secret values are strings.",
        )
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"The value of {name} is not valid Unicode text (a lone surrogate)",
            "Store text that can be encoded as UTF-8.",
        ) from None
    if "\0" in value:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"The value of {name} holds a NUL character, which no environment variable can carry",
            "Store the value without NUL bytes (base64-encode binary data first).",
        )
    if len(data) > limit:
        raise DevopsError(
            ErrorCode.VALUE_TOO_LARGE,
            f"The value of {name} is {len(data)} bytes; {service} stores at most {limit} "
            "bytes per secret",
            fix,
            size=len(data),
            limit=limit,
        )
    return data


def name_under(full: str, start: str) -> str | None:
    """The secret name if ``full`` is ``<start><NAME>`` (a store's own filter is only a hint)."""
    if not full.startswith(start):
        return None
    try:
        return check_name(full[len(start) :])
    except DevopsError:
        return None


def iso(stamp: Any) -> str | None:
    """A datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), or None."""
    if not isinstance(stamp, datetime):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_url(url: str | None) -> str | None:
    """``url`` without any user:password part."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


class CloudSecretsBackend(SecretsBackend):
    """The backend interface on top of four per-secret operations of a cloud store."""

    #: How people call the store, for messages ("Google Secret Manager").
    service: str
    #: The store's limit on one value, in UTF-8 bytes.
    max_value_bytes: int

    @abc.abstractmethod
    def secret_id(self, name: str, scope: str) -> str:
        """The store's name for ``name`` in ``scope`` (INVALID_ARGUMENT if it cannot be one)."""

    @abc.abstractmethod
    def _read(self, name: str, scope: str) -> str | None:
        """The value in exactly that scope, or None."""

    @abc.abstractmethod
    def _write(self, name: str, scope: str, data: bytes) -> None:
        """Store ``data`` (the checked UTF-8 value) as the new value."""

    @abc.abstractmethod
    def _remove(self, name: str, scope: str) -> bool:
        """Delete the secret; False when it was not there."""

    @abc.abstractmethod
    def _listing(self, scope: str) -> Iterable[tuple[str, str | None]]:
        """``(name, updated)`` of every secret of ours in ``scope``."""

    too_large_fix = (
        "Store the large data elsewhere (e.g. an encrypted object in a bucket) and keep only "
        "its location or key here, or use secrets.mode local (no such limit)."
    )

    def get(self, name: str, environment: str | None = None) -> str | None:
        check_name(name)
        for scope in lookup_scopes(environment):
            value = self._read(name, scope)
            if value is not None:
                register_secret(value)
                return value
        return None

    def set_many(self, values: Mapping[str, str], environment: str | None = None) -> None:
        """Store every value, after checking them all (nothing is written if one is invalid).

        Cloud stores have no transactions: if the store fails part way, the error's
        ``stored`` and ``not_stored`` list the names written and not written.
        """
        scope = scope_for(environment)
        planned = []
        for name, value in values.items():
            self.secret_id(check_name(name), scope)
            data = value_bytes(name, value, self.max_value_bytes, self.service, self.too_large_fix)
            planned.append((name, data))
        stored: list[str] = []
        for name, data in planned:
            try:
                self._write(name, scope, data)
            except DevopsError as error:
                note_partial(error, [n for n, _d in planned], stored)
                raise
            stored.append(name)

    def delete(self, name: str, environment: str | None = None) -> bool:
        scope = scope_for(environment)
        self.secret_id(check_name(name), scope)
        return self._remove(name, scope)

    def list(self, environment: str | None = None) -> list[SecretInfo]:
        visible: dict[str, SecretInfo] = {}
        for scope in reversed(lookup_scopes(environment)):  # shared first: the own one wins
            for name, updated in self._listing(scope):
                visible[name] = SecretInfo(name, scope, updated)
        return [visible[name] for name in sorted(visible)]

    def values(self, environment: str | None = None) -> dict[str, str]:
        """What ``environment`` sees: one read per secret, in the scope ``list`` found it."""
        visible = {}
        for info in self.list(environment):
            value = self._read(info.name, info.scope)
            if value is None:  # deleted since the listing: fall back as get() would
                value = self.get(info.name, environment)
            if value is not None:
                register_secret(value)
                visible[info.name] = value
        return visible
