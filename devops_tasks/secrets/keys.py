"""Where the master key comes from, and the one place a new key is ever made.

Sources, by what the secrets file asks for:

* a raw 256-bit key: ``DEVOPS_MASTER_KEY`` (64 hex characters), else the key file named by
  ``DEVOPS_MASTER_KEY_FILE``, else ``<config dir>/devops-tasks/keys/<key id>.key`` (found
  by the key id in the file's header, so each project can have its own key);
* a passphrase: ``DEVOPS_MASTER_PASSPHRASE``, stretched with Argon2id using the parameters
  and salt in the file's header, accepted only between :data:`ARGON2_FLOOR` and
  :data:`ARGON2_CEILING` (what this version writes).

The header is read before it is authenticated, so the parts of it used here (the KDF and
its parameters, the key id that names a key file) are checked first: anything this version
would not write is ``SECRETS_TAMPERED``, before a key is looked for or derived.

A missing key is an error. Nothing here invents a key to encrypt with, except
:func:`create_key_file`, which ``secrets.init`` calls when a person asks for a new key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import atomic_write, read_bounded
from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret

__all__ = [
    "ARGON2_CEILING",
    "ARGON2_DEFAULTS",
    "ARGON2_FLOOR",
    "RESTORE_FIX",
    "KeySource",
    "MasterKey",
    "check_kdf",
    "check_key_id",
    "create_key_file",
    "for_header",
    "for_new_file",
    "key_configured",
    "key_file",
    "key_id",
    "keys_dir",
    "missing_key_error",
    "tampered",
]

KEY_BYTES = 32
ENV_KEY = "DEVOPS_MASTER_KEY"
ENV_PASSPHRASE = "DEVOPS_MASTER_PASSPHRASE"
ENV_KEY_FILE = "DEVOPS_MASTER_KEY_FILE"

#: Argon2id for new files: 64 MiB, 3 passes, 4 lanes (RFC 9106's second recommendation).
ARGON2_DEFAULTS = {"memory_kib": 65536, "iterations": 3, "lanes": 4}
#: A file asking for less than this is refused: cheaper guessing is not an option.
ARGON2_FLOOR = {"memory_kib": 19456, "iterations": 2, "lanes": 1}
#: ...or for more than this version writes: a doctored file must not cost more to refuse than
#: one of ours costs to open (not minutes and gigabytes before SECRETS_TAMPERED).
ARGON2_CEILING = ARGON2_DEFAULTS
_SALT_BYTES = range(16, 65)  # this version writes 16
#: What :func:`key_id` makes; anything else in a header is never used (it names a key file).
KEY_ID = re.compile(r"[0-9a-f]{16}")
RESTORE_FIX = "Restore .devops/credentials.enc from a backup (or git history of a copy)."


@dataclass(frozen=True)
class KeySource:
    """Where a key came from, for messages (never the key itself)."""

    kind: str  # "raw" or "passphrase"
    origin: str  # e.g. "DEVOPS_MASTER_KEY" or a key file path


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit master key and where it came from."""

    material: bytes
    source: KeySource

    @property
    def id(self) -> str:
        return key_id(self.material)

    def __repr__(self) -> str:  # never show the material, not even in a traceback's locals
        return f"MasterKey(id={self.id!r}, source={self.source!r})"


def key_id(material: bytes) -> str:
    """A short public fingerprint of a key: which key a file needs, without revealing it."""
    return hmac.new(material, b"devops-tasks key id v1", hashlib.sha256).hexdigest()[:16]


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/devops-tasks/keys`` (``~/.config/...``): outside every repository."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "devops-tasks" / "keys"


def _raw_key(text: str, origin: str) -> MasterKey:
    register_secret(text.strip())
    try:
        material = bytes.fromhex(text.strip())
    except ValueError:
        material = b""
    if len(material) != KEY_BYTES:
        raise DevopsError(
            ErrorCode.MASTER_KEY_INVALID,
            f"The master key from {origin} is not 64 hexadecimal characters (32 bytes)",
            'Use a key made by `devops secrets.init`, or `python3 -c "import secrets; '
            'print(secrets.token_hex(32))"`.',
        )
    return MasterKey(material, KeySource("raw", origin))


#: A key file holds 64 hex characters and a newline; anything much longer is not one.
_KEY_FILE_MAX_BYTES = 1024


def _read_key_file(path: Path) -> MasterKey:
    """The key in ``path``: a regular file, read within a bound (never /dev/zero or a FIFO)."""
    try:
        text = read_bounded(path, _KEY_FILE_MAX_BYTES).decode("ascii")
    except (OSError, ValueError) as exc:  # FileRefused and UnicodeDecodeError are ValueErrors
        raise DevopsError(
            ErrorCode.MASTER_KEY_MISSING,
            f"Cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}",
            f"Check that {path} is a key file (64 hex characters) readable by you (mode 0600).",
        ) from None
    return _raw_key(text, str(path))


def create_key_file(environ: Mapping[str, str] | None = None) -> tuple[MasterKey, Path]:
    """Make a new random key and save it, mode 0600, under :func:`keys_dir`."""
    material = secrets.token_bytes(KEY_BYTES)
    register_secret(material.hex())
    path = key_file(environ, key_id(material))
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write(path, (material.hex() + "\n").encode("ascii"), mode=0o600)
    return MasterKey(material, KeySource("raw", str(path))), path


def _argon2(passphrase: str, params: Mapping[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: PLC0415

    return Argon2id(
        salt=bytes.fromhex(params["salt"]),
        length=KEY_BYTES,
        iterations=int(params["iterations"]),
        lanes=int(params["lanes"]),
        memory_cost=int(params["memory_kib"]),
    ).derive(passphrase.encode("utf-8"))


def new_passphrase_kdf() -> dict[str, Any]:
    """KDF parameters (with a fresh salt) for a new file under a passphrase."""
    return {"name": "argon2id", **ARGON2_DEFAULTS, "salt": secrets.token_hex(16)}


def tampered(why: str) -> DevopsError:
    """The error for a secrets file changed outside devops-tasks."""
    return DevopsError(
        ErrorCode.SECRETS_TAMPERED,
        f"The secrets file was modified outside devops-tasks: {why}",
        RESTORE_FIX,
    )


def check_key_id(value: object) -> str:
    """``value`` if it is a key id as :func:`key_id` makes them (it becomes a file name)."""
    if not isinstance(value, str) or not KEY_ID.fullmatch(value):
        raise tampered("its key_id is not 16 lower-case hexadecimal characters")
    return value


def check_kdf(kdf: object) -> dict[str, Any]:
    """Refuse a KDF header this version would not write, before anything is derived from it.

    ``{"name": "none"}``, or Argon2id with exactly its parameters and a salt, each parameter
    within [:data:`ARGON2_FLOOR`, :data:`ARGON2_CEILING`] and the salt 16 to 64 bytes.
    """
    if kdf == {"name": "none"}:
        return {"name": "none"}
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        raise tampered("its kdf is not one this version writes")
    if set(kdf) != {"name", "salt", *ARGON2_DEFAULTS}:
        raise tampered("its argon2id kdf does not have exactly the fields this version writes")
    problems = []
    for name, low in ARGON2_FLOOR.items():
        value, high = kdf[name], ARGON2_CEILING[name]
        if type(value) is not int:
            problems.append(f"a {name} that is not a whole number")
        elif value < low:
            problems.append(f"{name}={value}, below the floor of {low}")
        elif value > high:
            problems.append(f"{name}={value}, above the {high} this version writes")
    salt = kdf["salt"]
    try:
        if not isinstance(salt, str) or len(bytes.fromhex(salt)) not in _SALT_BYTES:
            problems.append("a salt that is not 16 to 64 bytes")
    except ValueError:
        problems.append("a salt that is not hexadecimal")
    if problems:
        raise tampered(f"it asks for Argon2id with {', '.join(problems)}")
    return kdf


def _passphrase_key(environ: Mapping[str, str], params: Mapping[str, Any]) -> MasterKey | None:
    passphrase = environ.get(ENV_PASSPHRASE)
    if not passphrase:
        return None
    register_secret(passphrase)
    material = _argon2(passphrase, params)
    register_secret(material.hex())
    return MasterKey(material, KeySource("passphrase", ENV_PASSPHRASE))


def _raw_from_environment(environ: Mapping[str, str]) -> MasterKey | None:
    if environ.get(ENV_KEY):
        return _raw_key(environ[ENV_KEY], ENV_KEY)
    if environ.get(ENV_KEY_FILE):
        return _read_key_file(Path(environ[ENV_KEY_FILE]).expanduser())
    return None


def for_new_file(
    environ: Mapping[str, str], prefix: str = "DEVOPS_"
) -> tuple[MasterKey, dict[str, Any]]:
    """The key (and KDF header) for a new file: a raw key first, then a passphrase.

    ``prefix="DEVOPS_NEW_"`` reads ``DEVOPS_NEW_MASTER_KEY`` / ``..._PASSPHRASE`` /
    ``..._KEY_FILE`` instead, for ``rotate-key``.
    """
    names = _prefixed(prefix)
    view = {ours: environ[theirs] for ours, theirs in names.items() if environ.get(theirs)}
    try:
        raw = _raw_from_environment(view)
        kdf = {"name": "none"} if raw is not None else new_passphrase_kdf()
        key = raw or _passphrase_key(view, kdf)
    except DevopsError as error:
        raise DevopsError(error.code, _relabel(error.message, names), error.fix) from None
    if key is None:
        raise missing_key_error(passphrase=False)
    origin = names.get(key.source.origin, key.source.origin)
    return MasterKey(key.material, KeySource(key.source.kind, origin)), kdf


def _prefixed(prefix: str) -> dict[str, str]:
    """Our variable names -> the ones to read (``DEVOPS_NEW_MASTER_KEY`` for rotation)."""
    return {
        ENV_KEY: prefix + "MASTER_KEY",
        ENV_PASSPHRASE: prefix + "MASTER_PASSPHRASE",
        ENV_KEY_FILE: prefix + "MASTER_KEY_FILE",
    }


def _relabel(message: str, names: Mapping[str, str]) -> str:
    for ours, theirs in names.items():
        message = message.replace(ours, theirs) if ours != theirs else message
    return message


def key_configured(environ: Mapping[str, str], prefix: str = "DEVOPS_") -> bool:
    """Whether any key variable (with ``prefix``) is set: then it must work, not be replaced."""
    return any(environ.get(name) for name in _prefixed(prefix).values())


def key_file(environ: Mapping[str, str] | None, key_id: object) -> Path:
    """Where :func:`create_key_file` keeps the key with ``key_id``: never outside
    :func:`keys_dir`, as the id is checked first."""
    return keys_dir(environ) / f"{check_key_id(key_id)}.key"


def for_header(environ: Mapping[str, str], header: Mapping[str, Any]) -> MasterKey:
    """The master key an existing file asks for: a passphrase, or a raw key (env, key file).

    The header's KDF is checked before anything is derived, its key id before it names a file.
    """
    kdf = check_kdf(header.get("kdf"))
    if kdf["name"] == "argon2id":
        key = _passphrase_key(environ, kdf)
        if key is None:
            raise missing_key_error(passphrase=True)
        return key
    key = _raw_from_environment(environ)
    if key is None:
        candidate = key_file(environ, header.get("key_id"))
        if candidate.is_file():
            key = _read_key_file(candidate)
    if key is None:
        raise missing_key_error(passphrase=False)
    return key


def missing_key_error(passphrase: bool) -> DevopsError:
    if passphrase:
        return DevopsError(
            ErrorCode.MASTER_KEY_MISSING,
            "The secrets file is locked with a passphrase and DEVOPS_MASTER_PASSPHRASE is not set",
            "Set DEVOPS_MASTER_PASSPHRASE (e.g. `read -rs DEVOPS_MASTER_PASSPHRASE; export "
            "DEVOPS_MASTER_PASSPHRASE`) and run the command again.",
        )
    return DevopsError(
        ErrorCode.MASTER_KEY_MISSING,
        "No master key: DEVOPS_MASTER_KEY, DEVOPS_MASTER_PASSPHRASE and DEVOPS_MASTER_KEY_FILE "
        "are unset and no key file matches",
        "Run `devops secrets.init` to create a key file, or set DEVOPS_MASTER_KEY "
        "(64 hex characters) or DEVOPS_MASTER_PASSPHRASE. Nothing was written.",
    )
