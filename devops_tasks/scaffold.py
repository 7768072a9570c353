"""``init``: a valid starting config from a template, and the right ``.gitignore`` lines."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .config import ConfigStore
from .durable import atomic_write
from .errors import DevopsError, ErrorCode
from .platforms import platform_class
from .project import Project
from .secrets.keys import key_configured

__all__ = ["GITIGNORE_LINES", "ensure_gitignore", "init_project", "template_names"]

#: What must never be committed: the encrypted secrets, the local target's releases, locks,
#: caches, and the temporary file of any write a killed process left behind.
GITIGNORE_LINES = (
    ".devops/credentials.enc",
    ".devops/local/",
    ".devops/locks/",
    ".devops/cache/",
    ".devops/**/*.devops-tmp",
)
_SET_SECRET = "devops secrets.set "


def _templates_dir() -> Path:
    """Templates ship inside the wheel; in a source checkout they sit at the repo top."""
    packaged = Path(str(resources.files("devops_tasks"))) / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "templates"


def template_names() -> list[str]:
    return sorted(p.stem for p in _templates_dir().glob("*.json"))


def init_project(
    project: Project,
    platform: str,
    environment: str | None = None,
    force: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``.devops/config.json`` for ``platform``; refuses to overwrite unless ``force``.

    ``next`` lists the commands to run next, each of which works as printed on this machine.
    """
    store = ConfigStore(project)
    if store.exists() and not force:
        raise DevopsError(
            ErrorCode.CONFIG_EXISTS,
            f"{project.config_path} already exists",
            "Keep it (see `devops config.show`), or pass --force to replace it.",
        )
    template = _templates_dir() / f"{platform}.json"
    if not template.is_file():
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"No template for platform {platform!r}",
            f"Choose one of: {', '.join(template_names())}.",
        )
    config = json.loads(template.read_text(encoding="utf-8"))
    config["project"] = project.root.name
    if environment:
        config["environment"] = environment
    store.write(config)
    added = ensure_gitignore(project)
    return {
        "config": str(project.config_path),
        "platform": platform,
        "environment": config.get("environment", "production"),
        "gitignore_added": added,
        "next": [
            *_first_steps(project, platform, os.environ if environ is None else environ),
            f"devops deploy --dir {config.get('build', {}).get('dir', 'dist')}",
        ],
    }


def _first_steps(project: Project, platform: str, environ: Mapping[str, str]) -> list[str]:
    """The platform's first steps, with ``secrets.init`` before the first ``secrets.set``
    when that would otherwise fail: no secrets file to add to and no master key variable set
    (the local store never invents a key; ``secrets.init`` makes the key file)."""
    steps = list(platform_class(platform).first_steps)
    setting = next((i for i, step in enumerate(steps) if step.startswith(_SET_SECRET)), None)
    if setting is not None and not (project.credentials_path.exists() or key_configured(environ)):
        steps.insert(setting, "devops secrets.init")
    return steps


def ensure_gitignore(project: Project) -> list[str]:
    """Append the lines the project's ``.gitignore`` lacks; returns them (none if all there)."""
    path = project.root / ".gitignore"
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip() for line in existing.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if missing:
        separator = "" if not existing or existing.endswith("\n") else "\n"
        block = "# devops-tasks: secrets and local releases\n" + "\n".join(missing) + "\n"
        atomic_write(path, (existing + separator + block).encode("utf-8"))
    return missing
