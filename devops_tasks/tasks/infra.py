"""``infra.*``: what a target is made of, what creating it would do, and creating it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invoke import Collection, Context

from ..errors import DevopsError, ErrorCode
from ..output import Output
from ..platforms import create
from ._command import command
from ._context import project_for, settings_for, store_settings

ENV_HELP = "Environment (default: `environment` in config, else production)."


def _show_infra(result: Mapping[str, Any], out: Output) -> None:
    infra = result["infra"]
    # A list of objects (a fleet's hosts) is a table; any other list is one line.
    tables = {k: v for k, v in infra.items() if isinstance(v, list) and v and _all_mappings(v)}
    out.fields(
        {
            key: ", ".join(value) if isinstance(value, list) else value
            for key, value in infra.items()
            if key not in tables
        }
    )
    for rows in tables.values():
        out.table(
            [
                {k: ", ".join(v) if isinstance(v, list) else v for k, v in row.items()}
                for row in rows
            ],
            list(rows[0]),
        )
    if result.get("config_updated"):
        out.line(f"Saved to .devops/config.json: {', '.join(result['config_updated'])}")


def _all_mappings(values: list[Any]) -> bool:
    return all(isinstance(value, Mapping) for value in values)


def _platform(c: Any, env: str | None) -> Any:
    return create(project_for(c), settings_for(c, env), c)


@command(human=_show_infra, help={"env": ENV_HELP})
def show(c: Context, out: Output, env=None) -> dict[str, Any]:
    """Describe the environment's target (paths, ids, releases)."""
    with _platform(c, env) as platform:
        return {"infra": platform.describe()}


PUBLIC_HELP = "Let anyone read the site's objects (bucket targets; off unless asked)."


@command(human=_show_infra, help={"env": ENV_HELP, "public": PUBLIC_HELP})
def up(c: Context, out: Output, env=None, public=False) -> dict[str, Any]:
    """Create what the environment's target needs; safe to run again."""
    with _platform(c, env) as platform:
        platform.flags["public"] = public
        infra, updates = platform.provision()
    if updates:
        store_settings(project_for(c), platform.settings.environment, updates)
    return {"infra": infra, "config_updated": sorted(updates)}


def _show_plan(result: Mapping[str, Any], out: Output) -> None:
    actions = result["actions"]
    if actions:
        columns = ["action", "what", "where"]
        out.table(actions, columns + (["error"] if any("error" in a for a in actions) else []))
    if result["changes"]:
        out.line(f"{result['changes']} to create: run `devops infra.up`.", style="bold")
    else:
        out.line("Nothing to create.", style="bold green")
    if result["problems"]:
        out.line(f"{result['problems']} problem(s): see the error column.", style="bold red")


@command(human=_show_plan, help={"env": ENV_HELP, "public": PUBLIC_HELP})
def plan(c: Context, out: Output, env=None, public=False) -> dict[str, Any]:
    """Show what infra.up would create, changing nothing."""
    with _platform(c, env) as platform:
        platform.flags["public"] = public
        actions = platform.plan()
    return {
        "platform": platform.name,
        "environment": platform.settings.environment,
        "actions": actions,
        "changes": sum(a["action"] == "create" for a in actions),
        "problems": sum("error" in a for a in actions),
    }


@command(
    human=_show_infra,
    help={
        "env": ENV_HELP,
        "yes": "Really delete (required).",
        "force": "Also delete a bucket devops-tasks did not create, with its objects.",
    },
)
def down(c: Context, out: Output, env=None, yes=False, force=False) -> dict[str, Any]:
    """Delete what infra.up created (the bucket and every object in it)."""
    if not yes:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "infra.down deletes the target and everything in it; it needs --yes",
            "Run `devops infra.down --yes` if that is what you want.",
        )
    with _platform(c, env) as platform:
        return {"infra": platform.teardown(force)}


ns = Collection("infra", show, plan, up, down)
