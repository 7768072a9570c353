"""``config.*``: read, change, check, export and import ``.devops/config.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke import Collection, Context

from ..config import ConfigStore
from ..durable import write_json
from ..errors import DevopsError, ErrorCode
from ..output import Output
from ._command import command, option
from ._context import project_for

ENV_HELP = "Environment whose effective settings to use (default: the configured one)."


def _store(c: Any) -> ConfigStore:
    return ConfigStore(project_for(c))


def _show_json(key: str) -> Any:
    def view(result: Mapping[str, Any], out: Output) -> None:
        out.stdout.write(json.dumps(result[key], indent=2, ensure_ascii=False) + "\n")

    return view


@command(
    human=_show_json("config"),
    help={
        "env": ENV_HELP,
        "raw": "Show the file as written, without defaults, environment or DEVOPS__* overrides.",
    },
)
def show(c: Context, out: Output, env=None, raw=False) -> dict[str, Any]:
    """Show the effective settings of an environment (or the raw file)."""
    store = _store(c)
    if raw:
        return {"path": str(store.path), "config": store.read()}
    settings = store.settings(option(c, "env", env))
    return {
        "path": str(store.path),
        "environment": settings.environment,
        "config": dict(settings.data),
    }


@command(
    human=_show_json("value"), help={"key": "Dotted setting name, e.g. build.dir.", "env": ENV_HELP}
)
def get(c: Context, out: Output, key, env=None) -> dict[str, Any]:
    """Print one effective setting."""
    settings = _store(c).settings(option(c, "env", env))
    missing = object()
    value = settings.get(key, missing)
    if value is missing:
        raise DevopsError(
            ErrorCode.NOT_FOUND,
            f"No setting {key!r}",
            "See `devops config.show` for the settings that exist.",
        )
    return {"key": key, "environment": settings.environment, "value": value}


def _show_set(result: Mapping[str, Any], out: Output) -> None:
    where = f" (environments.{result['environment']})" if result["environment"] else ""
    out.line(f"{result['key']} = {json.dumps(result['value'])}{where}", style="green")


@command(
    name="set",
    human=_show_set,
    help={
        "key": "Dotted setting name, e.g. deployment.keep_releases.",
        "value": "New value: JSON (3, true, null, [..]) or plain text.",
        "env": "Set it only for this environment (under environments.<env>).",
    },
)
def set_(c: Context, out: Output, key, value, env=None) -> dict[str, Any]:
    """Change one setting; the file is validated first and never left half-written."""
    stored = _store(c).set(key, value, env)
    return {"key": key, "value": stored, "environment": env}


def _show_validate(result: Mapping[str, Any], out: Output) -> None:
    out.line(
        f"{result['path']} is valid; environments: {', '.join(result['environments'])}",
        style="green",
    )


@command(human=_show_validate)
def validate(c: Context, out: Output) -> dict[str, Any]:
    """Check the config file and every environment's merged settings."""
    store = _store(c)
    data = store.read()
    names = sorted({*store.environment_names(data), store.settings(None, data).environment})
    for name in names:
        store.settings(name, data)
    return {"path": str(store.path), "valid": True, "environments": names}


def _show_export(result: Mapping[str, Any], out: Output) -> None:
    if result.get("output"):
        out.line(f"Wrote {result['output']}", style="green")
    else:
        _show_json("config")(result, out)


@command(
    human=_show_export,
    help={
        "output": "Write to this file instead of stdout (a new file, unless --force).",
        "force": "Replace --output if it exists (never a file under .devops/).",
    },
)
def export(c: Context, out: Output, output=None, force=False) -> dict[str, Any]:
    """Export the config file (to stdout, or to --output)."""
    project = project_for(c)
    data = ConfigStore(project).read()
    if output:
        _write_export(project.state_dir, Path(output), data, force)
    return {"config": data, "output": output}


def _write_export(state_dir: Path, target: Path, data: Any, force: bool) -> None:
    """Write ``data`` to ``target``: never into .devops/, and over a file only if forced."""
    if target.absolute().parts[1:2] in (("dev",), ("proc",)):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{target} is a device or process file, not a file to write",
            "Leave out --output to print the config on stdout (redirect it where you like).",
        )
    resolved = target.resolve()
    if resolved == state_dir.resolve() or state_dir.resolve() in resolved.parents:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{target} is inside {state_dir}, where devops-tasks keeps its own state",
            "Export to a path outside .devops/, e.g. --output devops-config.json.",
        )
    if resolved.exists() and not resolved.is_file():
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{target} is not a regular file (a directory, a device or a pipe)",
            "Name a file to write, e.g. --output devops-config.json.",
        )
    try:
        write_json(resolved, data, replace=force)
    except FileExistsError:
        raise DevopsError(
            ErrorCode.FILE_EXISTS,
            f"{target} already exists",
            "Choose another --output, or pass --force to replace it.",
        ) from None


@command(
    name="import",
    help={
        "file": "A JSON config file to import.",
        "force": "Replace an existing config.",
    },
)
def import_(c: Context, out: Output, file, force=False) -> dict[str, Any]:
    """Import a config file after validating it in full."""
    store = _store(c)
    store.import_file(Path(file), force)
    return {"path": str(store.path), "imported": file}


ns = Collection("config", show, get, set_, validate, export, import_)
