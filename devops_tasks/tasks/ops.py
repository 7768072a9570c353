"""Top-level tasks: init, build, status, history, logs, rollback."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from invoke import Context

from ..errors import DevopsError, ErrorCode
from ..history import DeploymentHistory, Status
from ..output import Output
from ..platforms import create
from ._command import command, option
from ._context import deployer_for, project_for, settings_for
from .deploy import show_deployment
from .lock import lock_line

ENV_HELP = "Environment (default: `environment` in config, else production)."


def _show_init(result: Mapping[str, Any], out: Output) -> None:
    out.line(
        f"Created {result['config']} for {result['platform']} ({result['environment']}).",
        style="bold green",
    )
    if result["gitignore_added"]:
        out.line(f"Added to .gitignore: {', '.join(result['gitignore_added'])}")
    out.line("Next:")
    for step in result["next"]:
        out.line(f"  {step}")


@command(
    human=_show_init,
    help={
        "platform": "Target platform (a template in templates/).",
        "env": "Default environment written to the config (default production).",
        "force": "Replace an existing .devops/config.json.",
    },
)
def init(c: Context, out: Output, platform="local", env=None, force=False) -> dict[str, Any]:
    """Create .devops/config.json for a platform and protect secrets in .gitignore."""
    from ..scaffold import init_project  # noqa: PLC0415 - templates: only `init` reads them

    return init_project(project_for(c), platform, env, force)


@command(
    help={
        "env": ENV_HELP,
        "remote": "Build on the platform's side instead (e.g. a Netlify build or build hook).",
        "wait": "With --remote: wait until the remote build finishes.",
    }
)
def build(c: Context, out: Output, env=None, remote=False, wait=False) -> dict[str, Any]:
    """Run the configured build.command (streamed; its exit status is respected)."""
    deployer = deployer_for(c, out, env)
    return deployer.platform.trigger_build(wait) if remote else deployer.build()


def _show_status(result: Mapping[str, Any], out: Output) -> None:
    deployment = result["deployment"] or {}
    state = "in sync" if result["in_sync"] else "OUT OF SYNC with the records"
    out.line(
        f"{result['environment']} ({result['platform']}): {state}",
        style="bold green" if result["in_sync"] else "bold red",
    )
    out.fields(
        {
            "live release": result["live_release"] or "(nothing deployed)",
            "deployment": deployment.get("id"),
            "version": deployment.get("version"),
            "deployed at": deployment.get("timestamp"),
            "url": deployment.get("url"),
            "in progress": result["in_progress"],
        }
    )
    for lock in result.get("locks") or []:
        if lock["state"] != "free":
            out.line(lock_line(lock), style="bold yellow")


@command(human=_show_status, help={"env": ENV_HELP})
def status(c: Context, out: Output, env=None) -> dict[str, Any]:
    """Show what is live, what the records say should be, and whether they agree."""
    return deployer_for(c, out, env).status()


# The history table's columns, and the order in which they go when the terminal is narrow.
_HISTORY_COLUMNS = ["id", "action", "environment", "platform", "status", "version", "timestamp"]
_DROPPED_FIRST = ["platform", "version", "environment", "timestamp", "action", "status"]
_COLUMN_GAP = 2  # rich's padding between columns of a box-less table


def _show_history(result: Mapping[str, Any], out: Output) -> None:
    """A table that never cuts an id (users copy them for --to and --id): on a narrow
    terminal other columns go instead, and with no room for a table, one id a line."""
    rows = result["deployments"]
    if "remote" in result:
        _show_remote_history(result["remote"], out)
    if not rows:
        out.line("No deployments yet. Run `devops deploy` to make the first one.")
        return
    widths = {
        column: max(len(column), *(len(str(row.get(column) or "")) for row in rows))
        for column in _HISTORY_COLUMNS
    }
    shown = list(_HISTORY_COLUMNS)
    room = out.console.width
    for column in _DROPPED_FIRST:
        if sum(widths[c] for c in shown) + _COLUMN_GAP * (len(shown) - 1) <= room:
            break
        shown.remove(column)
    if widths["id"] > room:
        for row in rows:
            out.line(row["id"])
        return
    out.table(rows, shown)


#: What a remote history row may say (an audit entry, or a platform's own deploy).
_REMOTE_COLUMNS = ("id", "platform_deploy_id", "action", "status", "version", "created_at")


def _show_remote_history(remote: list[dict[str, Any]], out: Output) -> None:
    """The target's own history, above the local one: what each row holds, and its hosts."""
    out.line(f"On the target ({len(remote)}):", style="bold")
    rows = [
        {**row, "hosts": len(row["hosts"]) if isinstance(row.get("hosts"), list) else None}
        for row in remote
    ]
    columns = [c for c in (*_REMOTE_COLUMNS, "hosts", "message") if any(r.get(c) for r in rows)]
    out.table(rows, columns)
    out.line()


def _limit(given: str | int | None) -> int:
    """``--limit`` as a count. The flag takes text, so a non-number is our INVALID_ARGUMENT
    rather than invoke's ValueError before any task code runs."""
    return _count("--limit", given, 20, "how many deployments to list, e.g. --limit 50")


def _count(flag: str, given: str | int | None, default: int, what: str, most: int = 0) -> int:
    """A flag's positive whole number (at most ``most``, if given), or INVALID_ARGUMENT."""
    text = str(default) if given is None else str(given)
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= (most or int(text))):
        bound = f" up to {most:,}" if most else ""
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{flag} {text!r} is not a positive whole number{bound}",
            f"Pass {what}.",
        )
    return int(text)


@command(
    human=_show_history,
    help={
        "env": "Only this environment.",
        "platform": "Only this platform.",
        "status": "Only this status (success, failed, rolled_back, in_progress, interrupted).",
        "limit": "How many, newest first (default 20).",
        "remote": "Also ask the platform for its own deploy list and merge it in.",
    },
)
def history(
    c,
    out,
    env=None,
    platform=None,
    status=None,
    limit=None,
    remote=False,
):
    """List deployments, newest first."""
    count = _limit(limit)
    if status is not None and status not in {s.value for s in Status}:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"--status {status!r} is not a deployment status",
            f"Use one of: {', '.join(s.value for s in Status)}.",
        )
    entries = DeploymentHistory(project_for(c)).query(
        environment=option(c, "env", env),
        platform=platform,
        status=status,
        limit=count,
    )
    result: dict[str, Any] = {"count": len(entries), "deployments": entries}
    if remote:
        target = deployer_for(c, out, env).platform
        result["remote"] = merge_remote(target.remote_history(count), entries)
    return result


def merge_remote(remote: list[dict[str, Any]], local: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The platform's deploys, each with the local record that made it (if any).

    A platform's own id (a Netlify deploy) links to the record that holds it; an entry of
    the hosts' audit log carries the deployment id itself.
    """
    by_platform_id = {
        e["platform_deploy_id"]: e["id"] for e in local if e.get("platform_deploy_id")
    }
    recorded = {e["id"] for e in local}
    return [
        {
            **item,
            "deployment": by_platform_id.get(item.get("platform_deploy_id"))
            or (item.get("id") if item.get("id") in recorded else None),
        }
        for item in remote
    ]


def _show_logs(result: Mapping[str, Any], out: Output) -> None:
    if "followed" in result:  # its lines were shown as they came
        return
    if "hosts" in result:
        _show_host_logs(result, out)
        return
    out.line(f"{result['id']} ({result['status']})", style="bold")
    for entry in result["log"]:
        out.line(f"{entry['time']}  {entry['step']:<10} {entry['message']}")


def _show_host_logs(result: Mapping[str, Any], out: Output) -> None:
    """Each host's lines, prefixed by the host; a host that failed says why on stderr."""
    for host in result["hosts"]:
        if "error" in host:
            out.warn(host["error"])
        for line in host.get("lines", []):
            out.raw(_host_line(host["host"], line))


def _host_line(host: str, line: str) -> str:
    return f"{host} | {line}\n"


#: How many lines of each host's log ``--follow`` starts with, unless ``--lines`` says.
FOLLOW_LINES = 10
#: The most ``--lines`` takes: a log, not a download.
MAX_LOG_LINES = 10_000


@command(
    human=_show_logs,
    help={
        "id": "Deployment id (default: the latest of --env).",
        "env": ENV_HELP,
        "lines": "Instead: the last N lines of the service's log on every host "
        "(ssh.log_file or ssh.journal_unit).",
        "follow": "Instead: stream every host's log as it grows, until Ctrl-C (not with --json).",
    },
)
def logs(c: Context, out: Output, id=None, env=None, lines=None, follow=False) -> dict[str, Any]:
    """Show the step-by-step log of a deployment, or with --lines/--follow the hosts' own logs."""
    if lines is not None or follow:
        return _host_logs(c, out, id, env, lines, follow)
    history = DeploymentHistory(project_for(c))
    if id is None:
        environment = settings_for(c, env).environment
        latest = history.latest(environment=environment)
        if latest is None:
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"No deployments of {environment} yet",
                "Deploy first with `devops deploy`, or pass --id.",
            )
        id = latest["id"]
    record = history.get(id)
    result = {
        "id": record.id,
        "status": record.status.value,
        "error": record.error,
        "log": record.to_dict()["log"],
    }
    if record.platform_deploy_id:
        target = deployer_for(c, out, record.environment, record.platform).platform
        try:
            result["remote"] = target.deployment_log(record.platform_deploy_id)
        except DevopsError as error:  # the local log still stands on its own
            result["remote"] = {"error": error.message, "code": error.code.value}
    return result


def _host_logs(
    c: Any, out: Output, id: str | None, env: str | None, lines: str | None, follow: bool
) -> dict[str, Any]:
    """``logs --lines N`` (one answer) or ``logs --follow`` (a stream until Ctrl-C)."""
    if id is not None:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "--id names a deployment, whose steps are not the hosts' logs",
            "Use --id alone for a deployment's steps, or --lines/--follow for the hosts' logs.",
        )
    if follow and out.json_mode:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            "--follow streams lines until Ctrl-C, which one JSON object cannot carry",
            "Use --lines N --json for the last N lines of each host, or --follow without --json.",
        )
    count = _count(
        "--lines",
        lines,
        FOLLOW_LINES,
        f"how many lines of each host's log to show, e.g. --lines 50 (at most {MAX_LOG_LINES:,})",
        MAX_LOG_LINES,
    )
    with create(project_for(c), settings_for(c, env), c) as target:
        if not follow:
            return {"hosts": target.host_logs(count)}
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a follow ends
            target.follow_logs(count, lambda host, line: out.raw(_host_line(host, line)), out.warn)
    return {"followed": True}


@command(
    human=show_deployment,
    help={
        "env": ENV_HELP,
        "to": "Deployment id to make live (default: the previous good one).",
        "message": "Why (kept in the record, the hosts' lock and their audit log).",
    },
)
def rollback(c: Context, out: Output, env=None, to=None, message=None) -> dict[str, Any]:
    """Make the previous good release live again."""
    return deployer_for(c, out, env).rollback(to, message).result()
