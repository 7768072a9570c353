"""The local secrets backend: ``.devops/credentials.enc``, encrypted, locked, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..durable import MAX_JSON_BYTES, FileLock, FileRefused, atomic_write, read_bounded
from ..errors import DevopsError, ErrorCode
from ..project import Project
from . import keys
from .base import SHARED_SCOPE, SecretInfo, SecretsBackend, check_name, check_value, scope_for
from .vault import Entry, Vault, now

__all__ = ["LocalSecretsStore"]

FILE_MODE = 0o600


class LocalSecretsStore(SecretsBackend):
    """Secrets in one encrypted file; every change is one locked, atomic rewrite."""

    name = "local"

    def __init__(
        self,
        project: Project,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = project.credentials_path
        self.lock_path = project.locks_dir / "secrets.lock"
        self.environ = os.environ if environ is None else environ

    def exists(self) -> bool:
        return self.path.is_file()

    def open(self) -> Vault | None:
        """The decrypted file, or ``None`` when there is none yet."""
        try:
            raw = read_bounded(self.path, MAX_JSON_BYTES)
        except FileNotFoundError:
            return None
        except FileRefused as refused:
            raise DevopsError(
                ErrorCode.SECRETS_CORRUPT,
                f"{self.path} {refused}: it is not a secrets file",
                "Restore .devops/credentials.enc from a backup, or move it away and start "
                "again with `devops secrets.init`.",
            ) from None
        return Vault.from_bytes(raw, lambda header: keys.for_header(self.environ, header))

    def create(self) -> dict[str, Any]:
        """Start an empty file under the key the environment offers, or a new key file."""
        with FileLock(self.lock_path):
            if self.exists():
                raise DevopsError(
                    ErrorCode.CONFIG_EXISTS,
                    f"{self.path} already exists",
                    "Keep using it; `devops secrets.rotate-key` changes its key.",
                )
            master, kdf, key_file = self._new_key("DEVOPS_")
            self._write(Vault.new(master, kdf))
        return {
            "path": str(self.path),
            "key_id": master.id,
            "key_source": str(key_file) if key_file else master.source.origin,
        }

    def _new_key(self, prefix: str) -> tuple[keys.MasterKey, dict[str, Any], Any]:
        """The key the ``<prefix>MASTER_*`` variables give, or (none set) a new key file."""
        if keys.key_configured(self.environ, prefix):
            master, kdf = keys.for_new_file(self.environ, prefix)
            return master, kdf, None
        master, key_file = keys.create_key_file(self.environ)
        return master, {"name": "none"}, key_file

    def _write(self, vault: Vault) -> None:
        atomic_write(self.path, vault.to_bytes(), mode=FILE_MODE, sweep=True)

    def _change(self, change: Any) -> Any:
        """Run ``change(vault)`` and save, under the lock; nothing is written on any error."""
        with FileLock(self.lock_path):
            vault = self.open()
            if vault is None:
                master, kdf = keys.for_new_file(self.environ)
                vault = Vault.new(master, kdf)
            result = change(vault)
            self._write(vault)
        return result

    # -- the backend interface -------------------------------------------------------------

    def get(self, name: str, environment: str | None = None) -> str | None:
        check_name(name)
        vault = self.open()
        if vault is None:
            return None
        for scope in _scopes(environment):
            entry = vault.entries.get(scope, {}).get(name)
            if entry is not None:
                return entry.value
        return None

    def set_many(self, values: Mapping[str, str], environment: str | None = None) -> None:
        for name, value in values.items():
            check_name(name)
            check_value(value)
        scope = scope_for(environment)
        stamp = now()

        def store(vault: Vault) -> None:
            scoped = vault.entries.setdefault(scope, {})
            for name, value in values.items():
                scoped[name] = Entry(value, stamp)

        self._change(store)

    def delete(self, name: str, environment: str | None = None) -> bool:
        check_name(name)
        scope_for(environment)
        if self.open() is None:
            return False

        def remove(vault: Vault) -> bool:
            scoped = vault.entries.get(scope_for(environment), {})
            existed = scoped.pop(name, None) is not None
            if not scoped:
                vault.entries.pop(scope_for(environment), None)
            return existed

        return bool(self._change(remove))

    def list(self, environment: str | None = None) -> list[SecretInfo]:
        vault = self.open()
        if vault is None:
            return []
        visible: dict[str, SecretInfo] = {}
        for scope in reversed(_scopes(environment)):  # shared first, so the own scope wins
            for name, entry in vault.entries.get(scope, {}).items():
                visible[name] = SecretInfo(name, scope, entry.updated)
        return [visible[name] for name in sorted(visible)]

    def rotate_key(self) -> dict[str, Any]:
        """New master key *and* new data key: every value is re-encrypted, in one write.

        The new key comes from ``DEVOPS_NEW_MASTER_KEY`` / ``DEVOPS_NEW_MASTER_PASSPHRASE`` /
        ``DEVOPS_NEW_MASTER_KEY_FILE``, or is a new key file. Key files are named by key id,
        so the new one is saved before the secrets file changes and a crash in between
        leaves the old file with its old key, both still on disk.
        """
        with FileLock(self.lock_path):
            old = self.open()
            if old is None:
                raise DevopsError(
                    ErrorCode.NOT_FOUND,
                    f"There is no {self.path} to rotate",
                    "Create it with `devops secrets.init` or `devops secrets.set`.",
                )
            master, kdf, key_file = self._new_key("DEVOPS_NEW_")
            fresh = Vault.new(master, kdf)
            fresh.entries = old.entries
            self._write(fresh)
        retired = self._retire_key_file(old.master)
        return {
            "path": str(self.path),
            "old_key_id": old.master.id,
            "key_id": master.id,
            "key_source": str(key_file) if key_file else master.source.origin,
            "retired_key_file": retired,
            "next": _after_rotation(old.master, key_file),
        }

    def _retire_key_file(self, old: keys.MasterKey) -> str | None:
        """Delete the old key's file if it lives in our keys directory (never a user's own)."""
        path = keys.key_file(self.environ, old.id)
        if old.source.origin == str(path) and path.is_file():
            path.unlink()
            return str(path)
        return None


def _scopes(environment: str | None) -> list[str]:
    """Where to look for ``environment``'s secrets, most specific first."""
    return [scope_for(environment), SHARED_SCOPE] if environment else [SHARED_SCOPE]


def _after_rotation(old: keys.MasterKey, key_file: Any) -> str:
    if old.source.origin in (keys.ENV_KEY, keys.ENV_PASSPHRASE, keys.ENV_KEY_FILE):
        where = f"the key file {key_file}" if key_file else "DEVOPS_NEW_MASTER_*"
        return f"Replace {old.source.origin} with the new key ({where}) wherever it is set."
    return "Nothing: the new key file is found by its id."
