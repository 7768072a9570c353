"""The interface every secrets backend implements (local file, AWS Secrets Manager, ...)."""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import DevopsError, ErrorCode
from ..ids import check_environment

__all__ = [
    "SHARED_SCOPE",
    "SecretInfo",
    "SecretsBackend",
    "check_name",
    "check_value",
    "scope_for",
]

SHARED_SCOPE = "_shared"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_name(name: str) -> str:
    """``name`` if it can be an environment variable (``secrets.exec`` exports them)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        # Never quoted: what was typed may be the value itself (``secrets.set NAME=value``).
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "The secret name given is not a valid name (not shown: it may hold a value)",
            "Use letters, digits and underscores, not starting with a digit "
            "(it becomes an environment variable), e.g. NETLIFY_AUTH_TOKEN.",
        )
    return name


def scope_for(environment: str | None) -> str:
    """The scope a secret is stored in: one environment, or shared by all of them."""
    return SHARED_SCOPE if environment is None else check_environment(environment)


def check_value(value: object) -> str:
    """``value`` if it can be stored and handed to a command (UTF-8 text, no NUL)."""
    if not isinstance(value, str):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT, "A secret value must be text", "Pass the value as a string."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "The secret value is not valid Unicode text",
            "Check the encoding of the value (lone surrogates cannot be stored).",
        ) from None
    if "\0" in value:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "The secret value holds a NUL character, which no environment variable can carry",
            "Store the value without NUL bytes (base64-encode binary data first).",
        )
    return value


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret without its value."""

    name: str
    scope: str
    updated: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "scope": self.scope, "updated": self.updated}


class SecretsBackend(abc.ABC):
    """Named secret values, each either shared or scoped to one environment.

    Reads for an environment see its own secrets over the shared ones. A backend registers
    every value it returns with :mod:`devops_tasks.redaction`.
    """

    name: str
    #: The store's own limit on one value, in UTF-8 bytes (None: none but memory).
    max_value_bytes: int | None = None

    @abc.abstractmethod
    def get(self, name: str, environment: str | None = None) -> str | None:
        """The value for ``environment`` (its own, else the shared one), or ``None``."""

    @abc.abstractmethod
    def set_many(self, values: Mapping[str, str], environment: str | None = None) -> None:
        """Store all ``values``: every one is checked before any is written, and the write is
        atomic where the store allows it (the local file: all or none)."""

    def set(self, name: str, value: str, environment: str | None = None) -> None:
        self.set_many({name: value}, environment)

    @abc.abstractmethod
    def delete(self, name: str, environment: str | None = None) -> bool:
        """Remove the secret from exactly that scope; False when it was not there."""

    @abc.abstractmethod
    def list(self, environment: str | None = None) -> list[SecretInfo]:
        """Secrets visible to ``environment`` (shared ones and its own), by name."""

    def values(self, environment: str | None = None) -> dict[str, str]:
        """Every value visible to ``environment``, its own winning over shared ones."""
        visible = {}
        for info in self.list(environment):
            value = self.get(info.name, environment)
            if value is not None:
                visible[info.name] = value
        return visible

    def create(self) -> dict[str, object]:
        """Prepare the backend for first use (``secrets.init``)."""
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"The {self.name} secrets backend needs no initialisation",
            "Go ahead with `devops secrets.set NAME`.",
        )

    def rotate_key(self) -> dict[str, object]:
        """Re-encrypt everything under a new master key; returns where the new key is."""
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"The {self.name} secrets backend has no master key of ours to rotate",
            "Rotate the key in the provider (e.g. the KMS key of AWS Secrets Manager).",
        )
