"""``infra.*``: what a target is made of, and creating it."""

from __future__ import annotations

from typing import Any

from invoke import Collection

from ..platforms import create
from ._command import command
from ._context import project_for, settings_for

ENV_HELP = "Environment (default: `environment` in config, else production)."


def _platform(c: Any, env: str | None) -> Any:
    return create(project_for(c), settings_for(c, env), c)


@command(help={"env": ENV_HELP})
def show(c, out, env=None):  # type: ignore[no-untyped-def]
    """Describe the environment's target (paths, ids, releases)."""
    return {"infra": _platform(c, env).describe()}


@command(help={"env": ENV_HELP})
def up(c, out, env=None):  # type: ignore[no-untyped-def]
    """Create what the environment's target needs; safe to run again."""
    return {"infra": _platform(c, env).provision()}


ns = Collection("infra", show, up)
