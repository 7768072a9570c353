"""Secrets: an encrypted local store, AWS Secrets Manager, Google Secret Manager, Azure Key
Vault, and one way to open any of them.

``secrets.mode`` in the config picks the backend; the schema only accepts modes that have
one, so a mode that does not exist yet is a CONFIG_INVALID error, not a silent fallback.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import SHARED_SCOPE, SecretInfo, SecretsBackend, check_name

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project

__all__ = [
    "BACKENDS",
    "SHARED_SCOPE",
    "SecretInfo",
    "SecretsBackend",
    "check_name",
    "open_backend",
]

#: mode -> "module:Class"; backends import their SDKs lazily.
BACKENDS = {
    "local": "devops_tasks.secrets.local:LocalSecretsStore",
    "aws": "devops_tasks.secrets.aws:AwsSecretsBackend",
    "gcp": "devops_tasks.secrets.gcp:GcpSecretsBackend",
    "azure": "devops_tasks.secrets.azure:AzureSecretsBackend",
}


def open_backend(
    project: Project, settings: Settings, environ: Mapping[str, str] | None = None
) -> SecretsBackend:
    """The backend ``secrets.mode`` names (``local`` by default)."""
    options = settings.section("secrets")
    mode = options.get("mode", "local")
    module_name, class_name = BACKENDS[mode].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(project, options.get(mode, {}), os.environ if environ is None else environ)
