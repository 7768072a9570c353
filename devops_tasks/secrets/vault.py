"""The encrypted secrets file format (version 1), sealed and opened in memory.

Envelope encryption: a random 256-bit *data key* encrypts every value with AES-256-GCM and a
fresh 96-bit nonce, with associated data binding the ciphertext to its scope and name (so a
ciphertext moved to another name fails to decrypt). The *master key* wraps the data key, with
the header (key id, KDF and its parameters) as associated data. An HMAC-SHA256, keyed from
the data key, covers the whole file, so an entry added, removed or swapped is detected.

The file is JSON so a person can see which secrets exist and when they changed::

    {"format": "devops-tasks-secrets", "version": 1, "cipher": "AES-256-GCM",
     "kdf": {"name": "none"}, "key_id": "…", "data_key": {"nonce": "…", "ciphertext": "…"},
     "names": ["_shared/NETLIFY_AUTH_TOKEN"],
     "entries": {"_shared": {"NETLIFY_AUTH_TOKEN": {"nonce": "…", "ciphertext": "…",
                                                    "updated": "2026-11-25T23:00:00Z"}}},
     "checksum": "…", "mac": "…"}

``checksum`` is a plain SHA-256 of the content: it proves nothing against an attacker (the
MAC does that) and only tells a wrong key apart from a damaged file, so each gets its own
error.

The header is needed to find the key that authenticates it, so it is validated before it is
used: a field, cipher, KDF, KDF cost or key id that this version would not write is
``SECRETS_TAMPERED`` at once, before any key is looked for or derived.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret
from .keys import RESTORE_FIX, MasterKey, check_kdf, check_key_id, tampered

__all__ = ["FORMAT", "VERSION", "Entry", "Vault"]

FORMAT = "devops-tasks-secrets"
VERSION = 1
CIPHER = "AES-256-GCM"
_NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _entry_aad(scope: str, name: str) -> bytes:
    return f"devops-tasks secret v1\0{scope}\0{name}".encode()


def _header_aad(key_id: str, kdf: Mapping[str, Any]) -> bytes:
    return b"devops-tasks data key v1\0" + _canonical({"key_id": key_id, "kdf": kdf})


def _mac_key(data_key: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"devops-tasks file mac v1"
    ).derive(data_key)


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    return AESGCM(key)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Entry:
    value: str
    updated: str = field(default_factory=now)

    def __repr__(self) -> str:
        return f"Entry(value=<{len(self.value)} chars>, updated={self.updated!r})"


@dataclass
class Vault:
    """Decrypted secrets by scope and name, with the keys needed to seal them again."""

    master: MasterKey
    kdf: dict[str, Any]
    data_key: bytes = field(repr=False)
    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)

    @classmethod
    def new(cls, master: MasterKey, kdf: dict[str, Any]) -> Vault:
        return cls(master, kdf, secrets.token_bytes(32))

    # -- sealing ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole file, every value under a fresh nonce, with checksum and MAC."""
        aead = _aead(self.data_key)
        entries: dict[str, dict[str, Any]] = {}
        for scope, named in sorted(self.entries.items()):
            for name, entry in sorted(named.items()):
                nonce = secrets.token_bytes(_NONCE_BYTES)
                sealed = aead.encrypt(nonce, entry.value.encode("utf-8"), _entry_aad(scope, name))
                entries.setdefault(scope, {})[name] = {
                    "nonce": _b64(nonce),
                    "ciphertext": _b64(sealed),
                    "updated": entry.updated,
                }
        wrap_nonce = secrets.token_bytes(_NONCE_BYTES)
        wrapped = _aead(self.master.material).encrypt(
            wrap_nonce, self.data_key, _header_aad(self.master.id, self.kdf)
        )
        body: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "cipher": CIPHER,
            "kdf": self.kdf,
            "key_id": self.master.id,
            "data_key": {"nonce": _b64(wrap_nonce), "ciphertext": _b64(wrapped)},
            "names": sorted(f"{s}/{n}" for s, named in entries.items() for n in named),
            "entries": entries,
        }
        body["checksum"] = hashlib.sha256(_canonical(body)).hexdigest()
        body["mac"] = hmac.new(
            _mac_key(self.data_key), _canonical(body), hashlib.sha256
        ).hexdigest()
        return (json.dumps(body, indent=2, sort_keys=False) + "\n").encode("utf-8")

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, raw: bytes, key_for: Callable[[Mapping[str, Any]], MasterKey]) -> Vault:
        """Open a file; each kind of damage is its own error, and nothing is returned half-checked.

        ``key_for(header)`` supplies the master key the header asks for.
        """
        body = _parse(raw)
        try:
            master = key_for(body)
        except DevopsError as error:
            # No key matches a header that was changed: that is damage, not a missing key.
            if error.code is ErrorCode.MASTER_KEY_MISSING and not _checksum_ok(body):
                raise tampered("it no longer matches its checksum") from None
            raise
        if master.id != body["key_id"]:
            if _checksum_ok(body):
                raise DevopsError(
                    ErrorCode.MASTER_KEY_WRONG,
                    f"The master key from {master.source.origin} is not the key of this secrets "
                    f"file (it needs key {body['key_id']}, this is {master.id})",
                    "Use the key this file was made with (see `devops secrets.list` on the machine "
                    "that made it), or the new key after a `secrets.rotate-key`.",
                )
            raise tampered("its header was changed")
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        try:
            data_key = _aead(master.material).decrypt(
                _unb64(body["data_key"].get("nonce")),
                _unb64(body["data_key"].get("ciphertext")),
                _header_aad(body["key_id"], body["kdf"]),
            )
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise tampered("its data key does not authenticate") from exc
        vault = cls(master, dict(body["kdf"]), data_key)
        vault.entries = _decrypt_entries(body["entries"], data_key)
        present = {f"{s}/{n}" for s, named in vault.entries.items() for n in named}
        listed = set(body["names"])
        if listed - present:
            missing = ", ".join(sorted(listed - present))
            raise DevopsError(
                ErrorCode.SECRET_ENTRY_MISSING,
                f"The secrets file lists {missing} but holds no such entry: it was deleted",
                RESTORE_FIX,
            )
        expected = hmac.new(
            _mac_key(data_key),
            _canonical({k: v for k, v in body.items() if k != "mac"}),
            hashlib.sha256,
        ).hexdigest()
        if listed != present or not hmac.compare_digest(expected, str(body["mac"])):
            raise tampered("its entries or header do not match its MAC")
        return vault


def _checksum_ok(body: Mapping[str, Any]) -> bool:
    content = {k: v for k, v in body.items() if k not in ("checksum", "mac")}
    return hashlib.sha256(_canonical(content)).hexdigest() == body.get("checksum")


#: Fields only a devops-tasks secrets file has: with these, a wrong ``format`` is an edit.
_SIGNATURE = {"key_id", "data_key", "mac"}
_SHAPE = {
    "format": str,
    "version": int,
    "kdf": dict,
    "key_id": str,
    "data_key": dict,
    "names": list,
    "entries": dict,
    "checksum": str,
    "mac": str,
}


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict) or (
        body.get("format") != FORMAT and not body.keys() >= _SIGNATURE
    ):
        raise DevopsError(
            ErrorCode.SECRETS_CORRUPT,
            "The secrets file is truncated or damaged (not a complete devops-tasks secrets file)",
            RESTORE_FIX,
        )
    if body.get("format") != FORMAT:
        raise tampered("its format label was changed")
    if body.get("version") != VERSION:
        raise DevopsError(
            ErrorCode.SECRETS_VERSION_UNSUPPORTED,
            f"The secrets file has format version {body.get('version')!r}; this devops-tasks "
            f"reads version {VERSION}",
            "Upgrade devops-tasks (`pip install -U devops-tasks`) to read newer files.",
        )
    wrong = [k for k, kind in _SHAPE.items() if not isinstance(body.get(k), kind)]
    if "names" not in wrong and not all(isinstance(n, str) for n in body["names"]):
        wrong.append("names")
    if wrong:
        raise DevopsError(
            ErrorCode.SECRETS_CORRUPT,
            f"The secrets file is damaged: {', '.join(wrong)} missing or malformed",
            RESTORE_FIX,
        )
    _check_header(body)
    return body


def _check_header(body: Mapping[str, Any]) -> None:
    """Refuse a header this version would not write, before anything in it is used."""
    if not body.keys() <= {*_SHAPE, "cipher"}:
        raise tampered("it has fields this version does not write")
    if body.get("cipher") != CIPHER:
        raise tampered(f"its cipher is not {CIPHER}")
    check_key_id(body["key_id"])
    check_kdf(body["kdf"])


def _decrypt_entries(sealed: Mapping[str, Any], data_key: bytes) -> dict[str, dict[str, Entry]]:
    aead = _aead(data_key)
    slots = [
        (scope, name, item)
        for scope, named in sealed.items()
        for name, item in (named.items() if isinstance(named, dict) else [])
    ]
    opened: dict[str, dict[str, Entry]] = {}
    for scope, name, item in slots:
        try:
            nonce, ciphertext = _unb64(item["nonce"]), _unb64(item["ciphertext"])
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise tampered(f"entry {scope}/{name} is malformed") from exc
        try:
            aad = _entry_aad(scope, name)
        except UnicodeEncodeError as exc:
            raise tampered("an entry has a name that is not text") from exc
        value = _try_decrypt(aead, nonce, ciphertext, aad)
        if value is None:
            for other_scope, other_name, _ in slots:
                if (other_scope, other_name) != (scope, name) and _try_decrypt_as(
                    aead, nonce, ciphertext, other_scope, other_name
                ) is not None:
                    raise DevopsError(
                        ErrorCode.SECRET_MOVED,
                        f"The value stored as {scope}/{name} was encrypted for "
                        f"{other_scope}/{other_name}: it was moved to another name",
                        RESTORE_FIX,
                    )
            raise tampered(f"entry {scope}/{name} does not decrypt")
        register_secret(value)
        opened.setdefault(scope, {})[name] = Entry(value, str(item.get("updated", "")))
    return opened


def _try_decrypt_as(
    aead: Any, nonce: bytes, ciphertext: bytes, scope: str, name: str
) -> str | None:
    try:
        aad = _entry_aad(scope, name)
    except UnicodeEncodeError:
        return None
    return _try_decrypt(aead, nonce, ciphertext, aad)


def _try_decrypt(aead: Any, nonce: bytes, ciphertext: bytes, aad: bytes) -> str | None:
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415

    try:
        return aead.decrypt(nonce, ciphertext, aad).decode("utf-8")
    except (InvalidTag, ValueError, UnicodeDecodeError):
        return None
