"""Top-level tasks: init, build, status, history, logs, rollback, schema."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from invoke import Context

from ..changes import KINDS
from ..errors import DevopsError, ErrorCode
from ..history import DeploymentHistory, Status, compact_entry
from ..output import Output
from ..platforms import create
from ..schemas import bundled
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
    _show_drift(result.get("drift"), out)


def _show_drift(drift: Mapping[str, Any] | None, out: Output) -> None:
    if drift is None:
        out.line("drift: this target cannot tell")
        return
    counts = ", ".join(f"{drift[k]['count']} {k}" for k in KINDS if drift[k]["count"])
    if drift["detected"]:
        what = "another release is live" if drift["replaced"] else ""
        out.line(f"drift: {'; '.join(filter(None, [what, counts]))}", style="bold red")
        for kind in KINDS:
            for path in drift[kind]["paths"]:
                out.line(f"  {kind}: {path}")
    else:
        out.line("drift: none", style="green")
    if drift["unknown"]:
        out.line(f"drift not fully known: {drift['unknown']}", style="yellow")


@command(
    human=_show_status,
    help={
        "env": ENV_HELP,
        "check": "Exit 1 (DRIFT_DETECTED, or DRIFT_UNKNOWN) unless the target still matches "
        "its last deployment; for cron and CI.",
    },
)
def status(c: Context, out: Output, env=None, check=False) -> dict[str, Any]:
    """Show what is live, what the records say should be, whether they agree, and drift."""
    return compact_status(deployer_for(c, out, env).status(check=check))


def compact_status(result: dict[str, Any]) -> dict[str, Any]:
    """``status`` without what it repeats: the deployment's null fields and those the answer
    already says, the kept releases (counted: ``infra.show`` lists them), a host's current
    release when it is the live one, and the locks nobody holds (``lock.status`` has all)."""
    known = {key: result[key] for key in ("environment", "platform")}
    live = result["live_release"]
    deployment = result["deployment"]
    return {
        **result,
        "deployment": compact_entry(deployment, known) if deployment else None,
        "target": _summary(result["target"], {**known, "live_release": live, "current": live}),
        "locks": [lock for lock in result["locks"] if lock.get("state") != "free"],
    }


def _summary(target: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """A target's description with its lists of releases counted (``kept_releases``)."""
    shown: dict[str, Any] = {}
    for key, value in target.items():
        if key == "releases" and isinstance(value, list):
            shown["kept_releases"] = len(value)
        elif key == "hosts" and isinstance(value, list):
            shown[key] = [_summary(h, known) if isinstance(h, dict) else h for h in value]
        elif not (key in known and known[key] == value):
            shown[key] = value
    return shown


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
    for host in result.get("remote_unread", []):
        out.warn(f"{host['host']} was not read: {host['error']}")
    if not rows:
        out.line("No deployments yet. Run `devops deploy` to make the first one.")
        return
    widths = {
        column: max(len(column), *(len(str(row.get(column) or "")) for row in rows))
        for column in _HISTORY_COLUMNS
    }
    # a column the query made empty (--env: every row's environment) is left out
    shown = [c for c in _HISTORY_COLUMNS if c == "id" or any(row.get(c) for row in rows)]
    room = out.console.width
    for column in (c for c in _DROPPED_FIRST if c in shown):
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
    rows = remote
    columns = [c for c in (*_REMOTE_COLUMNS, "hosts", "message") if any(r.get(c) for r in rows)]
    out.table(rows, columns)
    out.line()


#: How many deployments ``history`` lists without ``--limit``: a screenful for people, fewer
#: for programs, whose answer stays small (see the README's JSON budget).
HISTORY_LIMIT = 20
HISTORY_LIMIT_JSON = 10


def _limit(given: str | int | None, json_mode: bool) -> int:
    """``--limit`` as a count. The flag takes text, so a non-number is our INVALID_ARGUMENT
    rather than invoke's ValueError before any task code runs."""
    default = HISTORY_LIMIT_JSON if json_mode else HISTORY_LIMIT
    return _count("--limit", given, default, "how many deployments to list, e.g. --limit 50")


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
        "limit": f"How many, newest first (default {HISTORY_LIMIT}, "
        f"{HISTORY_LIMIT_JSON} with --json).",
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
    count = _limit(limit, out.json_mode)
    if status is not None and status not in {s.value for s in Status}:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"--status {status!r} is not a deployment status",
            f"Use one of: {', '.join(s.value for s in Status)}.",
        )
    query = {"environment": option(c, "env", env), "platform": platform, "status": status}
    entries = DeploymentHistory(project_for(c)).query(**query, limit=count)
    result: dict[str, Any] = {
        "count": len(entries),
        "deployments": [compact_entry(entry, query) for entry in entries],
    }
    if remote:
        target = deployer_for(c, out, env).platform
        known = {"environment": target.settings.environment, "platform": target.name}
        result["remote"] = merge_remote(target.remote_history(count), entries, known)
        if unread := target.unreachable():
            result["remote_unread"] = unread
    return result


def merge_remote(
    remote: list[dict[str, Any]], local: list[dict[str, Any]], known: dict[str, Any]
) -> list[dict[str, Any]]:
    """The platform's deploys, compact, each with the local record that made it (if any).

    A platform's own id (a Netlify deploy) links to the record that holds it; an entry of
    the hosts' audit log carries the deployment id itself (``deployment``, either way).
    Hosts are counted; only those where it did not go live are named (``failed_hosts``).
    """
    by_platform_id = {
        e["platform_deploy_id"]: e["id"] for e in local if e.get("platform_deploy_id")
    }
    recorded = {e["id"] for e in local}
    merged = []
    for item in remote:
        shown = compact_entry(item, known, keep=("release",))  # a target's list names it
        linked = by_platform_id.get(item.get("platform_deploy_id")) or (
            item.get("id") if item.get("id") in recorded else None
        )
        if linked:  # and nothing else that only repeats it (Netlify's deploy title)
            shown = {k: v for k, v in shown.items() if k == "id" or v != linked}
            shown["deployment"] = linked
        hosts = item.get("hosts")
        if isinstance(hosts, list):
            shown["hosts"] = len(hosts)
            failed = [
                _failed_host(h) for h in hosts if h.get("error") or h.get("status") not in _LIVE
            ]
            if failed:
                shown["failed_hosts"] = failed
        merged.append(shown)
    return merged


#: A host's outcome in an audit entry that needs no mention: the release went live there.
_LIVE = ("success", "switched", "healthy")


def _failed_host(host: dict[str, Any]) -> dict[str, Any]:
    return {key: host[key] for key in ("host", "status", "error") if host.get(key) is not None}


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
    result: dict[str, Any] = {"id": record.id, "status": record.status.value}
    if record.error:
        result["error"] = record.error
    result["log"] = record.to_dict()["log"]
    if record.platform_deploy_id:
        target = deployer_for(c, out, record.environment, record.platform).platform
        try:
            remote = target.deployment_log(record.platform_deploy_id)
        except DevopsError as error:  # the local log still stands on its own
            remote = {"error": error.message, "code": error.code.value}
        result["remote"] = {k: v for k, v in remote.items() if v is not None}
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


def _show_schema(result: Mapping[str, Any], out: Output) -> None:
    out.raw(json.dumps(result["schema"], indent=2, ensure_ascii=False) + "\n")


@command(
    human=_show_schema,
    positional=["task"],
    help={"task": "A task as you type it: deploy, status, config.set, secrets.rotate-key..."},
)
def schema(c: Context, out: Output, task) -> dict[str, Any]:
    """Print the JSON Schema of a task's --json answer (its success and every failure)."""
    return {"task": task, "schema": bundled(task)}
