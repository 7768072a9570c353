"""``secrets.*``: set, read, list, delete, rotate, import, export and use secrets."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke import Collection, Context

from ..commands import run_command
from ..errors import DevopsError, ErrorCode
from ..output import Output
from ..redaction import MASK, MIN_LENGTH, Revealed, register_secret
from ..secrets import SecretsBackend, check_name, open_backend
from ._command import command, option
from ._context import project_for, settings_for

ENV_HELP = "Scope to one environment (default: shared by all environments)."


def _backend(c: Any, env: str | None = None) -> SecretsBackend:
    """The backend ``secrets.mode`` names for ``env`` (a mode may differ per environment)."""
    return open_backend(project_for(c), settings_for(c, env))


def _protect(c: Context) -> None:
    """Keep a secrets file made without ``devops init`` out of git all the same."""
    project = project_for(c)
    if project.credentials_path.exists():
        from ..scaffold import ensure_gitignore  # noqa: PLC0415 - templates: only when needed

        ensure_gitignore(project)


def mask(value: str) -> str:
    """``nfp_••••••••z123`` for long values; short ones show nothing at all."""
    return f"{value[:4]}{MASK}{value[-4:]}" if len(value) >= 16 else MASK


def _read_value(out: Output, value: str | None) -> str:
    """The value from the argument, stdin (``-`` or piped), or a prompt without echo."""
    if value is not None and value != "-":
        out.warn(
            "a value given on the command line is kept in your shell history; "
            "pipe it on stdin or let the prompt ask for it instead"
        )
        return value
    if value == "-" or not sys.stdin.isatty():
        text = sys.stdin.read()
        if not text:  # most likely no value was piped at all: never store "" by accident
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                "No value on stdin",
                'Pipe the value in (`printf %s "$VALUE" | devops secrets.set NAME`), '
                "or pass --value '' to store an empty value on purpose.",
            )
        return text[:-1] if text.endswith("\n") else text
    return getpass.getpass("Value (not echoed): ")


def _show_done(result: Mapping[str, Any], out: Output) -> None:
    out.line(result["message"], style="green")


@command(human=_show_done)
def init(c: Context, out: Output) -> dict[str, Any]:
    """Create the encrypted secrets file and, unless a key is set, a new key file (0600)."""
    created = _backend(c).create()
    _protect(c)
    where = created["key_source"]
    return {
        **created,
        "message": f"Created {created['path']} (key {created['key_id']}, from {where})",
    }


@command(
    name="set",
    human=_show_done,
    help={
        "name": "Secret name (letters, digits, underscores).",
        "value": "The value (kept in shell history!); omit it to be prompted, or pipe it in.",
        "env": ENV_HELP,
    },
)
def set_(c: Context, out: Output, name, value=None, env=None) -> dict[str, Any]:
    """Store a secret (encrypted; the file is never left half-written)."""
    check_name(name)
    secret = _read_value(out, value)
    register_secret(secret)
    if 0 < len(secret.strip()) < MIN_LENGTH:
        out.warn(
            f"{name} is shorter than {MIN_LENGTH} characters, too short to be masked in output "
            "(it would hide ordinary words); it is stored all the same"
        )
    _backend(c, env).set(name, secret, env or None)
    _protect(c)
    scope = env or "all environments"
    return {"name": name, "environment": env, "message": f"Stored {name} ({scope})"}


def _show_get(result: Mapping[str, Any], out: Output) -> None:
    value = result["value"]
    out.raw(Revealed(value + "\n") if isinstance(value, Revealed) else value + "\n")


@command(
    human=_show_get,
    help={
        "name": "Secret name.",
        "env": "Environment whose value to read (its own, else shared).",
        "show": "Print the value itself instead of a masked form.",
    },
)
def get(c: Context, out: Output, name, env=None, show=False) -> dict[str, Any]:
    """Read a secret, masked unless --show."""
    value = _backend(c, env).get(check_name(name), env or None)
    if value is None:
        raise DevopsError(
            ErrorCode.NOT_FOUND,
            f"No secret {name}" + (f" for {env}" if env else ""),
            f"Store it with `devops secrets.set {name}`; see `devops secrets.list`.",
        )
    return {
        "name": name,
        "environment": env,
        "masked": not show,
        "value": Revealed(value) if show else mask(value),
    }


def _show_list(result: Mapping[str, Any], out: Output) -> None:
    if not result["secrets"]:
        out.line("No secrets yet. Add one with `devops secrets.set NAME`.")
        return
    out.table(result["secrets"], ["name", "scope", "updated"])


@command(name="list", human=_show_list, help={"env": "Show what this environment sees."})
def list_(c: Context, out: Output, env=None) -> dict[str, Any]:
    """List secret names and when they changed (never values)."""
    infos = _backend(c, env).list(env or None)
    return {"count": len(infos), "secrets": [i.to_dict() for i in infos]}


@command(human=_show_done, help={"name": "Secret name.", "env": ENV_HELP})
def delete(c: Context, out: Output, name, env=None) -> dict[str, Any]:
    """Delete a secret from one scope."""
    if not _backend(c, env).delete(check_name(name), env or None):
        raise DevopsError(
            ErrorCode.NOT_FOUND,
            f"No secret {name}" + (f" in {env}" if env else ""),
            "See `devops secrets.list` (use --env for environment-scoped ones).",
        )
    return {"name": name, "environment": env, "message": f"Deleted {name}"}


@command(name="rotate-key")
def rotate_key(c: Context, out: Output) -> dict[str, Any]:
    """Re-encrypt every secret under a new master key (DEVOPS_NEW_MASTER_* or a new key file)."""
    return _backend(c).rotate_key()


@command(name="import", human=_show_done, help={"file": "A .env file.", "env": ENV_HELP})
def import_(c: Context, out: Output, file, env=None) -> dict[str, Any]:
    """Import every NAME=value of a .env file, literally (no ${VAR} expansion), in one write."""
    from ..secrets.envfile import read_env_file  # noqa: PLC0415  (python-dotenv: only when used)

    values = read_env_file(Path(file))
    for value in values.values():
        register_secret(value)
    _backend(c, env).set_many(values, env or None)
    _protect(c)
    return {
        "imported": sorted(values),
        "count": len(values),
        "environment": env,
        "message": f"Imported {len(values)} secret(s) from {file}",
    }


def _show_export(result: Mapping[str, Any], out: Output) -> None:
    values = result["secrets"]
    out.raw(
        Revealed(
            json.dumps(values, indent=2, ensure_ascii=False) + "\n"
            if result["format"] == "json"
            else "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
        )
    )


@command(
    human=_show_export,
    help={
        "format": "env (KEY='value' lines) or json.",
        "env": "Export what this environment sees (its own over shared ones).",
    },
)
def export(c: Context, out: Output, format="env", env=None) -> dict[str, Any]:
    """Print every secret in plain text (explicit; mind where the output goes)."""
    if format not in ("env", "json"):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"Unknown format {format!r}",
            "Use --format env or --format json.",
        )
    values = _backend(c, env).values(env or None)
    out.warn("this prints secret values in plain text")
    return {
        "format": format,
        "count": len(values),
        "secrets": {k: Revealed(v) for k, v in values.items()},
    }


def _show_nothing(result: Mapping[str, Any], out: Output) -> None:
    """The command's own output is the whole story; nothing to add on success."""


@command(
    name="exec",
    human=_show_nothing,
    help={
        "command": "A shell command line to run (or, with the devops program, the program "
        "and its arguments after --, run as given without a shell).",
        "env": "Use what this environment sees (its own secrets over shared ones).",
    },
)
def exec_(c: Context, out: Output, command=None, env=None) -> dict[str, Any]:
    """Run a command with the secrets in its environment; nothing is written anywhere.

    ``--command`` is a shell command line. The words after ``--`` are an argument vector:
    each is passed exactly as given, so quotes, ``;`` or ``$(...)`` inside one never run.
    """
    words = option(c, "remainder")
    to_run = command or (shlex.join(words) if isinstance(words, list) and words else None)
    if not to_run:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "No command to run",
            "Give it after --: `devops secrets.exec -- ./deploy.sh`, or with --command.",
        )
    values = _backend(c, env).values(env or None)
    result = run_command(
        c,
        to_run,
        cwd=os.getcwd(),
        code=ErrorCode.COMMAND_FAILED,
        json_mode=out.json_mode,
        env=values,
    )
    return {"exit_status": result.exited, "secrets": sorted(values)}


ns = Collection("secrets", init, set_, get, list_, delete, rotate_key, import_, export, exec_)
