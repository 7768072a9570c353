"""The small interface the bucket targets (aws, gcp, azure) implement for the sync engine.

Everything that decides *what* to send — manifests, diffs, headers, order, deletes, rollback
by server-side copy — is written once in :mod:`devops_tasks.sync`. A store only moves bytes
and metadata in one bucket or container, and maps its SDK's failures onto the project's error
codes. Its SDK is imported inside the backend module, never here.

Keys are relative to the target's configured ``prefix`` (the store adds it), use ``/`` and
never start with one.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TypeVar

from .errors import DevopsError, ErrorCode

__all__ = ["Headers", "ObjectStore", "StoredObject", "credential_digest"]

_Store = TypeVar("_Store", bound="ObjectStore")


@dataclass(frozen=True)
class Headers:
    """The HTTP headers an object is served with; part of what makes two uploads the same."""

    content_type: str
    cache_control: str | None = None
    content_encoding: str | None = None

    def fingerprint(self) -> str:
        """A short, stable string: a change of any header is a change of the object."""
        return "|".join((self.content_type, self.cache_control or "", self.content_encoding or ""))


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    key: str
    size: int
    #: The store's own tag (an ETag, an MD5, a generation): only to notice a hand edit.
    tag: str | None = None


def credential_digest(*secrets: str | None) -> str:
    """A digest standing for credentials in a store's :attr:`ObjectStore.identity`: equal
    only for equal credentials, and no clue to their values."""
    return hashlib.sha256("\0".join(s or "" for s in secrets).encode()).hexdigest()


class ObjectStore(abc.ABC):
    """One bucket (or container), seen through its prefix."""

    #: Whether the store honours "create only if absent" (an emulator may not).
    conditional_create: bool = True

    @property
    def identity(self) -> Hashable | None:
        """Where reads go and as whom: two stores with equal identities read the same objects
        with the same credentials (so one may use what the other read). None: not known."""
        return None

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix``, paginated lazily."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` if there is no such object."""

    def holds(self, key: str, seen: bytes | None) -> bool:
        """Whether ``key`` still holds exactly ``seen`` (None: still no such object).

        A store that can ask with a condition (S3: ``If-None-Match`` with the bytes' MD5)
        overrides this, so that an unchanged object is not read again.
        """
        return self.get(key) == seen

    @abc.abstractmethod
    def put(self, key: str, body: IO[bytes], size: int, headers: Headers) -> str | None:
        """Store ``size`` bytes read from ``body`` under ``key`` with ``headers``.

        Returns the new object's tag as :meth:`list` will show it (``None`` if the store
        cannot say): the engine keeps it to notice a later hand edit of the object.
        """

    @abc.abstractmethod
    def copy(
        self, source: str, key: str, headers: Headers, origin: ObjectStore | None = None
    ) -> str | None:
        """Server-side copy of ``source`` to ``key`` (may be the same key), with ``headers``.

        ``source`` is a key of ``origin`` (another bucket or prefix of the same kind, which
        this store's credentials can read) when one is given. Returns the copy's tag, as
        :meth:`put` does.
        """

    def origin(self: _Store, other: ObjectStore | None) -> _Store:
        """The store a copy reads from: ``other`` if given (it must be of this kind)."""
        if other is None:
            return self
        if not isinstance(other, type(self)):
            raise DevopsError(
                ErrorCode.NOT_SUPPORTED,
                f"{self.location} cannot copy server-side from {other.location}",
                "Copy between buckets of one provider only.",
            )
        return other

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (batched where the store can; a missing key is not an error)."""

    @abc.abstractmethod
    def create(self, key: str, body: bytes) -> bool:
        """Create ``key`` only if it does not exist; False if it already did (a lock)."""

    def close(self) -> None:  # noqa: B027 - most SDK clients need no closing
        """Let go of connections."""

    # -- the bucket itself, for infra.up / infra.down (a store may not manage buckets) ------

    #: What a person calls the bucket (``s3://name``), for messages and ``infra.show``.
    location: str = ""

    def bucket_exists(self) -> bool:
        """Whether the bucket (or container) exists and can be reached."""
        raise self._cannot("look up its bucket")

    def create_bucket(self) -> None:
        """Create the bucket (or container); it does not exist yet."""
        raise self._cannot("create its bucket")

    def configure_website(self, index: str, error: str) -> None:
        """Serve the bucket as a website with these index and error documents."""
        raise self._cannot("configure a website")

    def allow_public_read(self) -> None:
        """Let anyone read the bucket's objects (only when asked: ``infra.up --public``)."""
        raise self._cannot("make its objects public")

    def delete_bucket(self) -> None:
        """Delete the bucket, which holds no objects any more."""
        raise self._cannot("delete its bucket")

    def _cannot(self, what: str) -> DevopsError:
        return DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"This store ({type(self).__name__}) cannot {what}",
            "Do it in the provider's console or CLI, then deploy.",
        )
