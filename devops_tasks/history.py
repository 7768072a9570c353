"""The audit trail: one human-readable JSON record per deployment, plus an index.

Records live in ``.devops/deployments/<id>.json``; ``index.json`` holds a compact summary of
every record so that ``history`` and ``status`` never open thousands of files. Every write is
atomic, and every change to the index happens under one lock, so concurrent deploys cannot
lose a record or corrupt the index. The index can always be rebuilt from the records.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .durable import FileLock, read_json, write_json
from .errors import DevopsError, ErrorCode
from .ids import DEPLOYMENT_ID
from .redaction import redact, redact_data

if TYPE_CHECKING:
    from .project import Project

__all__ = [
    "RELEASE_ACTIONS",
    "Deployment",
    "DeploymentHistory",
    "Status",
    "check_message",
    "compact_entry",
    "new_deployment_id",
]

#: The actions that put a new release in place (``promote`` brings one from another
#: environment): what rollback, status and pruning look for.
RELEASE_ACTIONS = ("deploy", "promote")

INDEX_VERSION = 1
# The summary fields copied into the index; everything a query filters or a table shows.
INDEX_FIELDS = (
    "id",
    "action",
    "timestamp",
    "platform",
    "environment",
    "status",
    "version",
    "release",
    "url",
    "platform_deploy_id",
    "duration_ms",
    "message",
)
_INDEX_KEYS = frozenset(INDEX_FIELDS)


class Status(str, enum.Enum):
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"


def new_deployment_id() -> str:
    """``dep_<epoch-ms>_<8 hex>``: sorts by time, unique across processes and hosts."""
    return f"dep_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


#: A deploy message is a line or a short paragraph; the bound keeps each host's audit line
#: (one ``>>`` append, atomic below 4 KiB) whole whatever the message holds.
MAX_MESSAGE_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: How much of an error's text an audit line keeps (the record keeps all of it).
_AUDIT_TEXT_CHARS = 300


def check_message(message: str | None) -> str | None:
    """``--message`` as given, if it can be kept as text everywhere; INVALID_ARGUMENT if not.

    Newlines, quotes and ``$(...)`` are fine (they are only ever JSON and shell-quoted);
    control characters that would drive a terminal reading ``history`` are not.
    """
    if message is None:
        return None
    if len(message) > MAX_MESSAGE_CHARS or _CONTROL.search(message):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"--message must be at most {MAX_MESSAGE_CHARS} characters of text "
            "(no control characters other than newline and tab)",
            "Shorten the message, or leave the details in your change log and link to it.",
        )
    return message


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Deployment:
    """One deployment (or rollback) of one environment, as written to its record."""

    id: str
    platform: str
    environment: str
    action: str = "deploy"
    timestamp: str = field(default_factory=_now)
    status: Status = Status.IN_PROGRESS
    version: str | None = None
    actor: str | None = None
    release: str | None = None
    url: str | None = None
    duration_ms: int | None = None
    files_deployed: int | None = None
    bytes_uploaded: int | None = None
    rollback_available: bool = False
    platform_deploy_id: str | None = None
    rollback_of: str | None = None
    #: The deployment (of another environment) whose release a promote made live here.
    promoted_from: str | None = None
    #: Why, in the words of whoever ran it (``--message``).
    message: str | None = None
    error: dict[str, Any] | None = None
    log: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._on_step: Callable[[Deployment], None] | None = None

    def on_step(self, callback: Callable[[Deployment], None]) -> None:
        """Call ``callback`` after every step, e.g. to save the record as the work goes on."""
        self._on_step = callback

    def step(self, step: str, message: str) -> None:
        """Append a line to this deployment's step log (secret values are masked)."""
        self.log.append({"time": _now(), "step": step, "message": redact(message)})
        if self._on_step is not None:
            self._on_step(self)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, every free-text value with secrets masked.

        Ids, status, environment and the other fields the program writes itself are never
        masked, or a secret equal to one would break the link between a record, its index
        entry and its release.
        """
        data = asdict(self)
        data["status"] = self.status.value
        masked: dict[str, Any] = redact_data(data)
        return masked

    def result(self) -> dict[str, Any]:
        """The record without its step log: what a deploy command reports (see ``logs``)."""
        data = self.to_dict()
        del data["log"]
        return data

    def summary(self) -> dict[str, Any]:
        data = self.to_dict()
        return {key: data[key] for key in INDEX_FIELDS}

    def audit_entry(self) -> dict[str, Any]:
        """The record as one audit line on each host says it: who, when, what, how it ended.

        ``hosts`` maps each host's name to its own outcome, where the record knows it (from
        ``details.hosts``, and the hosts the error names); free text is masked and errors are
        cut short, so that one line stays one small append.
        """
        data = self.to_dict()
        entry = {
            key: data[key]
            for key in (
                "id",
                "action",
                "timestamp",
                "environment",
                "platform",
                "actor",
                "status",
                "version",
                "release",
                "message",
                "rollback_of",
                "promoted_from",
                "duration_ms",
            )
        }
        error = data["error"] or {}
        if error:
            entry["error"] = {
                "code": error.get("code"),
                "message": _clip(str(error.get("error", "")), _AUDIT_TEXT_CHARS),
            }
        hosts: dict[str, dict[str, Any]] = {}
        for host in data["details"].get("hosts") or []:
            if isinstance(host, dict) and host.get("status"):
                hosts[str(host.get("host"))] = _outcome(host.get("status"), host.get("error"))
        for host in error.get("hosts") or []:
            if isinstance(host, dict) and str(host.get("host")) not in hosts:
                hosts[str(host.get("host"))] = _outcome("failed", host.get("error"))
        entry["time"] = _now()
        entry["hosts"] = hosts
        return entry

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = Status(values.get("status", Status.IN_PROGRESS))
        return cls(**values)


def compact_entry(
    entry: Mapping[str, Any], known: Mapping[str, Any], keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An index entry as answers show it: no nulls, no field whose value ``known`` already
    says (the query's filters, the answer's own fields), ``release`` only when it is not the
    entry's ``id`` (a local or ssh deploy's release is its id), and ``platform_deploy_id``
    only when it is not the ``release`` (a Netlify or bucket deploy's release is that id).
    The fields in ``keep`` stay whenever they are set."""
    repeats = {"release": entry.get("id"), "platform_deploy_id": entry.get("release")}
    repeats = {key: value for key, value in repeats.items() if key not in keep}
    return {
        key: value
        for key, value in entry.items()
        if value is not None
        and not (key in known and known[key] == value)
        and not (key in repeats and repeats[key] == value)
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _outcome(status: Any, error: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {"status": str(status)}
    if error:
        outcome["error"] = _clip(str(error), _AUDIT_TEXT_CHARS)
    return outcome


class DeploymentHistory:
    """A project's deployment records and their index."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.dir = project.deployments_dir
        self.index_path = self.dir / "index.json"
        self._lock_path = project.locks_dir / "history.lock"
        # What this process last put in the index for each deployment it saved.
        self._indexed: dict[str, dict[str, Any]] = {}

    # -- writing ---------------------------------------------------------------------------

    def save(self, deployment: Deployment, durable: bool = True) -> None:
        """Write ``deployment``'s record and its index entry (create or update); not
        ``durable``: flushed to the disk by the next durable save, not now."""
        path = self._record_path(deployment.id)
        write_json(path, deployment.to_dict(), sweep=True, durable=durable)
        summary = deployment.summary()
        with FileLock(self._lock_path):
            entries = self._load_index()
            for position in range(len(entries) - 1, -1, -1):
                if entries[position]["id"] == deployment.id:
                    entries[position] = summary
                    break
            else:
                entries.append(summary)
                entries.sort(key=lambda e: e["id"])
            self._write_index(entries, durable)
        self._indexed[deployment.id] = summary

    def save_progress(self, deployment: Deployment) -> None:
        """Save ``deployment`` as the work goes on: cheap enough for every step of a deploy.

        A process killed mid-deploy then leaves a record saying how far it got. The record
        is written each time; the index only when a field it holds changed (a platform
        deploy id learnt mid-deploy shows in ``history`` and ``status`` at once). Neither
        waits for the disk: these writes need only outlive the process, and the deploy's
        last save (:meth:`save`) is durable.
        """
        if deployment.summary() != self._indexed.get(deployment.id):
            self.save(deployment, durable=False)
        else:
            write_json(
                self._record_path(deployment.id), deployment.to_dict(), sweep=True, durable=False
            )

    def mark_interrupted(self, environment: str, live_release: str | None = None) -> list[str]:
        """Record every ``in_progress`` deployment of ``environment`` as interrupted.

        Call only while holding that environment's deploy lock: then nothing can still be
        running, so an ``in_progress`` record belongs to a process that died. When its
        release is ``live_release`` (the process died after the switch), the record says so
        (``details.went_live``). An index entry whose record is gone is dropped.
        """
        stale = [
            e["id"]
            for e in self._entries()
            if e["environment"] == environment and e["status"] == Status.IN_PROGRESS.value
        ]
        for deployment_id in stale:
            try:
                deployment = self.get(deployment_id)
            except DevopsError:
                self.rebuild_index()  # the record was deleted or damaged: heal the index
                continue
            deployment.status = Status.INTERRUPTED
            ids = (deployment.release, deployment.platform_deploy_id, deployment.id)
            if live_release is not None and live_release in ids:
                deployment.release = live_release
                deployment.details["went_live"] = True
                deployment.step(
                    "interrupted",
                    f"the process running this deployment stopped after {live_release} went live",
                )
            else:
                deployment.step("interrupted", "the process running this deployment stopped")
            self.save(deployment)
        return stale

    # -- reading ---------------------------------------------------------------------------

    def has(self, deployment_id: str) -> bool:
        """Whether this project keeps a record of ``deployment_id``."""
        return self._record_path(deployment_id).is_file()

    def get(self, deployment_id: str) -> Deployment:
        """The full record of ``deployment_id``; NOT_FOUND with a fix when there is none."""
        path = self._record_path(deployment_id)
        try:
            deployment = Deployment.from_dict(read_json(path))
        except (OSError, ValueError, TypeError, AttributeError):
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"No deployment record {deployment_id!r}",
                "Run `devops history` to list deployment ids.",
            ) from None
        deployment.status = Status(
            self._shown_status(deployment.status.value, deployment.environment)
        )
        return deployment

    def query(
        self,
        *,
        environment: str | None = None,
        platform: str | None = None,
        status: str | Iterable[str] | None = None,
        action: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Index entries, newest first, filtered; in-progress ones that died show interrupted."""
        wanted = {status} if isinstance(status, str) else set(status) if status else None
        actions = {action} if isinstance(action, str) else set(action) if action else None
        found: list[dict[str, Any]] = []
        for entry in reversed(self._entries()):
            shown = self._shown_status(entry["status"], entry["environment"])
            if shown != entry["status"]:
                entry = {**entry, "status": shown}
            if (
                (environment is None or entry["environment"] == environment)
                and (platform is None or entry["platform"] == platform)
                and (actions is None or entry["action"] in actions)
                and (wanted is None or entry["status"] in wanted)
            ):
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def latest(self, **filters: Any) -> dict[str, Any] | None:
        """The newest index entry matching ``filters`` (see :meth:`query`), or ``None``."""
        found = self.query(limit=1, **filters)
        return found[0] if found else None

    # -- internals -------------------------------------------------------------------------

    def _record_path(self, deployment_id: str) -> Path:
        if not DEPLOYMENT_ID.fullmatch(deployment_id):
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{deployment_id!r} is not a deployment id",
                "Deployment ids look like dep_1764111420000_ab12cd34; see `devops history`.",
            )
        return self.dir / f"{deployment_id}.json"

    def _shown_status(self, status: str, environment: str) -> str:
        """``interrupted`` for a record left ``in_progress`` by a process that has died.

        A running deploy holds its environment's lock, and the kernel drops that lock when
        the process dies; so ``in_progress`` with the lock free means nobody is running it.
        """
        if status == Status.IN_PROGRESS.value and not FileLock.is_held(
            self.project.deploy_lock_path(environment)
        ):
            return Status.INTERRUPTED.value
        return status

    def _entries(self) -> list[dict[str, Any]]:
        """The index for reading; a missing or damaged one is rebuilt and saved first."""
        entries = self._read_index()
        if entries is None:
            if not self.dir.exists():
                return []
            self.rebuild_index()
            entries = self._read_index() or []
        return entries

    def _load_index(self) -> list[dict[str, Any]]:
        """The index for a writer that already holds the history lock."""
        entries = self._read_index()
        return self._rebuild() if entries is None else entries

    def _read_index(self) -> list[dict[str, Any]] | None:
        """The index entries, or ``None`` when the file is missing, damaged or foreign."""
        try:
            index = read_json(self.index_path)
        except (OSError, ValueError):
            return None
        if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
            return None
        entries = index.get("deployments")
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and e.keys() >= _INDEX_KEYS for e in entries
        ):
            return None
        return entries

    def _rebuild(self) -> list[dict[str, Any]]:
        """The index made again from the records (it is only ever a cache of them)."""
        entries = []
        for path in sorted(self.dir.glob("dep_*.json")):
            try:
                entries.append(Deployment.from_dict(read_json(path)).summary())
            except (OSError, ValueError, TypeError, AttributeError):
                continue  # a foreign or damaged file is not a record; leave it be
        return entries

    def _write_index(self, entries: list[dict[str, Any]], durable: bool = True) -> None:
        write_json(
            self.index_path,
            {"version": INDEX_VERSION, "deployments": entries},
            indent=None,
            sweep=True,
            durable=durable,
        )

    def rebuild_index(self) -> int:
        """Rewrite the index from the records; returns how many records it holds."""
        with FileLock(self._lock_path):
            entries = self._rebuild()
            self._write_index(entries)
        return len(entries)
