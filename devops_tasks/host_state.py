"""What devops-tasks keeps on each host itself: its deploy lock and its audit log.

Both live in ``<root>/.devops/`` on the host, so that every machine deploying the same hosts
(a laptop, a colleague's, CI) sees them, and they are driven over any connection that can
``run`` a command (a fabric ``Connection``; invoke's ``Context`` through
:class:`~devops_tasks.releases.LocalConnection`).

**The lock** is a directory, ``.devops/lock``: ``mkdir`` either creates it or fails, atomically,
so exactly one deploy gets it. The same command writes ``lock/holder.json`` (who, on which
machine, which process, what for, and a random token) and stamps it with the host's own clock,
so a lock's age is always measured on one clock and a skewed laptop cannot make a fresh lock
look stale. A holder releases only a lock whose token is its own.

**The audit log** is ``.devops/audit.log``: one JSON line per deploy or rollback, appended with
a single ``>>`` of less than 4 KiB (one ``write``, so concurrent appends never interleave), and
read back from its tail only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .channels import run_timed
from .durable import parse_json
from .errors import DevopsError, ErrorCode
from .ids import DEPLOYMENT_ID
from .project import actor
from .redaction import redact
from .releases import Connection

__all__ = [
    "MAX_AUDIT_LINE_BYTES",
    "HostState",
    "LockState",
    "audit_line",
    "holder_text",
    "lock_holder",
    "merge_audits",
    "release_reason",
]

STATE_DIR = ".devops"
#: An audit line is appended with one ``write``: below PIPE_BUF it is never interleaved.
MAX_AUDIT_LINE_BYTES = 4000
#: A holder file is ours and small; anything larger is not read past this.
_MAX_HOLDER_BYTES = 8192
#: The holder's fields a user sees (the token stays between the holder and the host).
_HOLDER_FIELDS = ("actor", "machine", "pid", "deployment", "action", "version", "message")
_TEXT_LIMIT = 600
#: A host time beyond this (year 9999) is no time of ours.
_LAST_EPOCH = 253402300800
_TAKEN, _HELD, _FREE = "taken", "held", "free"


def lock_holder(
    deployment_id: str, action: str, version: str | None, message: str | None
) -> dict[str, Any]:
    """Who is about to hold the hosts' locks, as ``holder.json`` (and ``LOCKED``) tell it."""
    return {
        "actor": actor(),
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "deployment": deployment_id,
        "action": action,
        "version": version,
        "message": redact(message) if message else message,
        "token": secrets.token_hex(16),
    }


@dataclass(frozen=True)
class LockState:
    """One host's lock as read on that host: free, or held by someone for ``age`` seconds."""

    host: str
    held: bool = False
    #: The holder's fields (no token); ``None`` when held but ``holder.json`` is unreadable.
    holder: dict[str, Any] | None = None
    token: str | None = None
    #: Seconds since the lock was taken, on the host's clock; ``None`` if unknown.
    age: int | None = None
    stale: bool = False

    @property
    def state(self) -> str:
        if not self.held:
            return "free"
        if self.holder is None:
            return "unknown"
        return "stale" if self.stale else "held"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"host": self.host, "state": self.state}
        if self.held:
            data["holder"] = self.holder
            data["age_seconds"] = self.age
        return data

    def locked_error(self, ttl: float) -> DevopsError:
        """LOCKED, naming the holder, with what to do about it."""
        if self.stale:
            why = f"; the lock is stale (older than deployment.lock_ttl, {ttl:g} s)"
            fix = (
                "If that run is no longer going on, clear its lock with `devops lock.release` "
                "(stale locks go without --force), then run the command again."
            )
        else:
            why = ""
            fix = (
                "Wait for that run to finish, then run the command again (`devops lock.status` "
                "shows every host's lock). If it is no longer running: `devops lock.release` "
                "clears a lock left by a dead process of this machine; `devops lock.release "
                "--force` clears any lock."
            )
        return DevopsError(
            ErrorCode.LOCKED,
            f"{self.host} is locked by {holder_text(self.to_dict())}{why}",
            fix,
            host=self.host,
            holder=self.holder,
            stale=self.stale,
            age_seconds=self.age,
        )


def holder_text(lock: Mapping[str, Any]) -> str:
    """Who holds a lock (:meth:`LockState.to_dict`), for people.

    ``alice@laptop on laptop (pid 42) since 2025-…Z (12 s ago), deploy dep_…: 'message'``
    """
    holder = lock.get("holder")
    if not holder:
        return "an unknown holder (its holder.json is missing or unreadable)"
    text = (
        f"{holder.get('actor')} on {holder.get('machine')} (pid {holder.get('pid')}) since "
        f"{holder.get('since')} ({lock.get('age_seconds')} s ago), "
        f"{holder.get('action')} {holder.get('deployment')}"
    )
    if holder.get("message"):
        text += f": {holder['message']!r}"
    return text


class HostState:
    """The lock and the audit log under ``<root>/.devops`` of one host (``name`` in messages)."""

    def __init__(
        self, connection: Connection, root: str, name: str, timeout: float | None = None
    ) -> None:
        self.connection = connection
        #: Seconds any of its commands may take (``ssh.command_timeout``).
        self.timeout = timeout
        self.name = name
        self.dir = f"{root.rstrip('/') or ''}/{STATE_DIR}"
        self.lock = f"{self.dir}/lock"
        self.holder_file = f"{self.lock}/holder.json"
        self.audit_log = f"{self.dir}/audit.log"

    # -- the lock --------------------------------------------------------------------------

    def take(self, holder: dict[str, Any], ttl: float, then: str = "") -> str:
        """Take the lock for ``holder`` (which has a ``token``); LOCKED naming whoever has it.

        ``then``: a command to run once the lock is taken, in the same round trip (its
        failure fails nothing); its output is returned.
        """
        state_dir, lock, holder_file = map(shlex.quote, (self.dir, self.lock, self.holder_file))
        # The holder's JSON is closed by the host's clock: {..., "since": <host epoch>}
        opening = _dump(holder)[:-1] + ', "since": '
        output = self._run(
            f"mkdir -p {state_dir} && if mkdir {lock} 2>/dev/null; then"
            f" {{ printf '%s' {shlex.quote(opening)} && date +%s && echo '}}'; }} > {holder_file}"
            f" || {{ rm -f {holder_file}; rmdir {lock}; exit 1; }}; echo {_TAKEN};"
            + (f" {{ {then}\n}} 2>/dev/null; true;" if then else "")
            + f" elif test -d {lock}; then echo {_HELD}; {self._show_lock()};"
            f" else echo {shlex.quote(f'cannot create {self.lock}')} >&2; exit 1; fi",
            "take the deploy lock",
        )
        first, _, rest = output.partition("\n")
        if first.strip() == _TAKEN:
            return rest
        raise self._parse_lock(rest, ttl).locked_error(ttl)

    def release(self, token: str | None) -> bool:
        """Remove the lock if its holder's token is ``token`` (any holder: ``None``).

        Returns whether it was removed. Only the files the lock is made of are removed: a
        lock directory holding anything else stays, and the command fails saying so.
        """
        lock, holder_file = shlex.quote(self.lock), shlex.quote(self.holder_file)
        ours = f"grep -qF {shlex.quote(token)} {holder_file} 2>/dev/null" if token else "true"
        output = self._run(
            f"if ! test -d {lock}; then echo {_FREE}; elif {ours}; then"
            f" rm -f {holder_file} && rmdir {lock} && echo released; else echo {_HELD}; fi",
            "release the deploy lock",
        )
        return output.strip() == "released"

    def inspect(self, ttl: float) -> LockState:
        """The lock as it is now, its age measured on the host's clock."""
        return self._parse_lock(self._run(self._show_lock(), "read the deploy lock"), ttl)

    def _show_lock(self) -> str:
        """A command printing the host's time, then ``held`` and the holder (if locked)."""
        lock, holder_file = shlex.quote(self.lock), shlex.quote(self.holder_file)
        return (
            f"date +%s; if test -d {lock}; then echo {_HELD};"
            f" head -c {_MAX_HOLDER_BYTES} {holder_file} 2>/dev/null; fi"
        )

    def _parse_lock(self, output: str, ttl: float) -> LockState:
        now_text, _, rest = output.partition("\n")
        mark, _, holder_text = rest.partition("\n")
        if mark.strip() != _HELD:
            return LockState(self.name)
        try:
            raw = parse_json(holder_text)
            now = int(now_text.strip())
        except ValueError:
            return LockState(self.name, held=True)
        since = raw.get("since") if isinstance(raw, dict) else None
        if not isinstance(since, int) or not 0 <= since < _LAST_EPOCH:
            return LockState(self.name, held=True)
        holder: dict[str, Any] = {key: _plain(raw.get(key)) for key in _HOLDER_FIELDS}
        holder["since"] = _iso(since)
        age = max(now - since, 0)
        token = raw.get("token") if isinstance(raw.get("token"), str) else None
        return LockState(self.name, True, holder, token, age, stale=age > ttl)

    # -- the audit log ---------------------------------------------------------------------

    def append_audit(self, line: str) -> None:
        """Append one line (see :func:`audit_line`) to the host's audit log."""
        self._run(
            f"mkdir -p {shlex.quote(self.dir)}"
            f" && printf '%s\\n' {shlex.quote(line)} >> {shlex.quote(self.audit_log)}",
            "append to the audit log",
        )

    def read_audit(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries of the audit log, oldest first; damaged lines skipped."""
        output = self._run(
            f"tail -n {int(limit)} {shlex.quote(self.audit_log)} 2>/dev/null"
            f" | tail -c {int(limit) * MAX_AUDIT_LINE_BYTES}",
            "read the audit log",
        )
        entries = []
        for line in output.splitlines():
            with contextlib.suppress(ValueError):
                entry = parse_json(line)
                if _is_audit_entry(entry):
                    entries.append(entry)
        return entries

    def _run(self, command: str, what: str) -> str:
        result = run_timed(self.connection, command, f"{what} on {self.name}", self.timeout)
        if result.failed:
            detail = (result.stderr or result.stdout or "").strip()
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"{self.name}: could not {what}: {detail or f'exit status {result.exited}'}",
                f"Check that {self.dir} can be created and written by the login user.",
                host=self.name,
            )
        return str(result.stdout)


def release_reason(state: LockState, force: bool) -> str | None:
    """Why ``lock.release`` may remove this lock, or ``None`` if it must stay.

    Without ``force``: a stale lock, or one whose holder is a process of this machine that
    is gone. With ``force``: any lock.
    """
    if not state.held:
        return None
    if state.stale:
        return "stale"
    holder = state.holder or {}
    if holder.get("machine") == socket.gethostname() and _process_gone(holder.get("pid")):
        return "its process has ended"
    return "forced" if force else None


def audit_line(entry: dict[str, Any], host: str) -> str:
    """``entry`` as one host's audit line (its own outcome only), shortened to fit one append.

    ASCII only (``\\u`` escapes), so no byte of a message can upset the remote shell.
    """
    outcomes = entry.get("hosts") or {}
    # copies: trimming one host's line must leave the others' whole
    line = {key: _copy(value) for key, value in entry.items() if key != "hosts"}
    line["host"] = host
    line["outcome"] = dict(outcomes.get(host) or {"status": entry.get("status")})
    for trim in (_without_error_text, _shorter_message):
        while len(_dump(line)) > MAX_AUDIT_LINE_BYTES and trim(line):
            pass
    return _dump(line)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=True)


def _without_error_text(line: dict[str, Any]) -> bool:
    """Drop one error text (the host's, then the deployment's); False when none is left."""
    for part, key in ((line["outcome"], "error"), (line.get("error") or {}, "message")):
        if part.get(key):
            del part[key]
            return True
    return False


def _shorter_message(line: dict[str, Any]) -> bool:
    """Halve the message (marked as cut); False when it is already gone."""
    message = line.get("message") or ""
    if not message:
        return False
    line["message"] = message[: len(message) // 2] + "…" if len(message) > 1 else None
    return True


def merge_audits(
    per_host: list[tuple[str, list[dict[str, Any]]]], limit: int
) -> list[dict[str, Any]]:
    """Every host's audit entries as one list of deployments, newest first.

    ``per_host`` pairs each host's name with the entries read from it. A deployment appears
    on every host it reached; merged, it lists each of them and its outcome under ``hosts``.
    """
    merged: dict[str, dict[str, Any]] = {}
    for host, entries in per_host:
        for entry in entries:
            item = merged.setdefault(
                entry["id"],
                {k: v for k, v in entry.items() if k not in ("host", "outcome")} | {"hosts": []},
            )
            outcome = entry.get("outcome")
            item["hosts"].append({**(outcome if isinstance(outcome, dict) else {}), "host": host})
    return sorted(merged.values(), key=lambda item: item["id"], reverse=True)[:limit]


def _is_audit_entry(entry: Any) -> bool:
    """A line that can be an audit entry of ours: its ids are ids, its release a release."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and DEPLOYMENT_ID.fullmatch(entry["id"]) is not None
        and (
            entry.get("release") is None
            or (
                isinstance(entry["release"], str)
                and DEPLOYMENT_ID.fullmatch(entry["release"]) is not None
            )
        )
    )


def _plain(value: Any) -> Any:
    """A holder field as shown: a number or bounded text; anything else is dropped."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    return str(value)[:_TEXT_LIMIT] if isinstance(value, str) else None


def _iso(epoch: int) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _process_gone(pid: Any) -> bool:
    """Whether no process ``pid`` runs on this machine (a pid of another user's: running)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
