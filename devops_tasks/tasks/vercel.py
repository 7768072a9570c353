"""``vercel.*``: what only the Vercel target has (its project's environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invoke import Collection, Context

from ..output import Output
from ._command import command
from ._context import project_for, settings_for

ENV_HELP = "Environment whose secrets and project to use (default: `environment` in config)."


def _show_synced(result: Mapping[str, Any], out: Output) -> None:
    out.line(
        f"Pushed {result['count']} secret(s) to Vercel project {result['project_id']} "
        "(encrypted; values not shown)",
        style="green",
    )
    out.table(
        [{"name": s["name"], "targets": ", ".join(s["targets"])} for s in result["synced"]],
        ["name", "targets"],
    )


@command(name="env-sync", human=_show_synced, help={"env": ENV_HELP})
def env_sync(c: Context, out: Output, env=None) -> dict[str, Any]:
    """Push the secrets vercel.env_sync names to the project's environment variables."""
    from ..platforms.vercel import VercelPlatform  # noqa: PLC0415 - requests only when used

    platform = VercelPlatform(project_for(c), settings_for(c, env, "vercel"), c)
    with platform:
        return platform.sync_env()


ns = Collection("vercel", env_sync)
