"""One resolver for every platform's credentials: environment, then secrets, then the SDK.

An explicit environment variable wins (CI sets those), then the project's secrets backend
(for the environment being deployed, then shared), then — for platforms whose SDK has its
own chain, like boto3's ``~/.aws`` — nothing, so the SDK looks for itself. Whatever is found
is registered as secret, so it cannot appear in any output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .errors import DevopsError, ErrorCode
from .redaction import register_secret

if TYPE_CHECKING:
    from .config import Settings
    from .project import Project
    from .secrets import SecretsBackend

__all__ = ["Credentials"]


class Credentials:
    """Looks up named credentials for one environment of one project."""

    def __init__(
        self,
        project: Project,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        backend: Callable[[], SecretsBackend] | None = None,
        *,
        stored: bool = True,
    ) -> None:
        """``stored=False``: the environment only; the secrets store is never opened (it may
        ask for a passphrase)."""
        self.environment = settings.environment
        self.environ = os.environ if environ is None else environ
        self.stored = stored
        self._backend_factory = backend or (lambda: _open(project, settings, self.environ))
        self._backend: SecretsBackend | None = None
        self._found: dict[str, str | None] = {}

    def _store(self) -> SecretsBackend:
        if self._backend is None:
            self._backend = self._backend_factory()
        return self._backend

    def lookup(self, name: str) -> str | None:
        """The value of ``name`` from the environment or the secrets store, else ``None``."""
        if name not in self._found:
            value = self.environ.get(name) or (
                self._store().get(name, self.environment) if self.stored else None
            )
            if value:
                register_secret(value)
            self._found[name] = value or None
        return self._found[name]

    def mask_stored(self) -> None:
        """Register every value the secrets store holds for this environment, so that output
        this command relays but did not make (a host's log, a hook's) masks them too. A store
        that cannot be opened as things are (no master key at hand) is left alone: what it
        holds is then unknown here, and the command goes on."""
        if not self.stored:
            return
        try:
            values = self._store().values(self.environment)
        except DevopsError:
            return
        for value in values.values():
            register_secret(value)

    def require(self, name: str, purpose: str) -> str:
        """The value of ``name``, or CREDENTIALS_MISSING saying exactly how to provide it."""
        value = self.lookup(name)
        if value is None:
            raise DevopsError(
                ErrorCode.CREDENTIALS_MISSING,
                f"{name} is not set ({purpose})",
                f"Run `devops secrets.set {name}` (stored encrypted; add --env "
                f"{self.environment} for this environment only), or export {name} in the "
                "environment (CI).",
                credential=name,
            )
        return value


def _open(project: Project, settings: Settings, environ: Mapping[str, str]) -> SecretsBackend:
    from .secrets import open_backend  # noqa: PLC0415

    return open_backend(project, settings, environ)
