"""``lock.status`` and ``lock.release``: the locks a deploy holds, on its hosts and here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invoke import Collection, Context

from ..durable import FileLock
from ..host_state import holder_text
from ..output import Output
from ._command import command
from ._context import deployer_for

ENV_HELP = "Environment (default: `environment` in config, else production)."


def lock_line(lock: Mapping[str, Any]) -> str:
    """One host's lock for people: ``free``, or who holds it, since when, for what."""
    state = lock["state"]
    if state == "free":
        return f"{lock['host']}  free"
    if state == "unreachable":
        return f"{lock['host']}  could not be asked: {lock['error']}"
    shown = {"held": "locked", "stale": "STALE lock", "unknown": "LOCKED"}[state]
    return f"{lock['host']}  {shown} by {holder_text(lock)}"


def _show_status(result: Mapping[str, Any], out: Output) -> None:
    if not result["hosts"]:
        out.line(f"The {result['platform']} target keeps no locks of its own.")
    for lock in result["hosts"]:
        out.line(lock_line(lock), style=None if lock["state"] == "free" else "bold yellow")
    project = result["project_lock"]
    if project["held"]:
        out.line(f"this project's own lock: held by {project['holder'] or 'another process'}")


@command(human=_show_status, help={"env": ENV_HELP})
def status(c: Context, out: Output, env=None) -> dict[str, Any]:
    """Show each host's deploy lock (free, held by whom since when, or stale)."""
    deployer = deployer_for(c, out, env)
    with deployer.platform:
        hosts = deployer.platform.lock_states()
    path = deployer.project.deploy_lock_path(deployer.environment)
    held = FileLock.is_held(path)
    return {
        "environment": deployer.environment,
        "platform": deployer.platform.name,
        "lock_ttl": deployer.settings.get("deployment.lock_ttl"),
        "hosts": hosts,
        "project_lock": {"held": held, "holder": _owner(path) if held else None},
    }


def _owner(path: Any) -> str | None:
    """Who holds the project's lock, as its holder wrote it (a line, bounded)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as lock:
            return lock.read(512).strip() or None
    except OSError:
        return None


def _show_release(result: Mapping[str, Any], out: Output) -> None:
    held = [lock for lock in result["hosts"] if lock["state"] != "free"]
    if not held:
        out.line("No host is locked.")
    for lock in held:
        if lock["released"]:
            out.line(f"released ({lock['reason']}): {lock_line(lock)}", style="green")
        else:
            out.line(f"kept: {lock_line(lock)}", style="yellow")
    if any(not lock["released"] for lock in held):
        out.line("A kept lock may belong to a run still going on; --force removes it anyway.")


@command(
    human=_show_release,
    help={
        "env": ENV_HELP,
        "force": "Remove every lock, whoever holds it (make sure its run is over).",
    },
)
def release(c: Context, out: Output, env=None, force=False) -> dict[str, Any]:
    """Remove stale locks, and those of ended processes of this machine (any, with --force)."""
    deployer = deployer_for(c, out, env)
    with deployer.platform:
        hosts = deployer.platform.release_locks(bool(force))
    return {
        "environment": deployer.environment,
        "platform": deployer.platform.name,
        "hosts": hosts,
        "released": [lock["host"] for lock in hosts if lock["released"]],
    }


ns = Collection("lock", status, release)
