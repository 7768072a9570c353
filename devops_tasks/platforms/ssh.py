"""The ``ssh`` target: the same releases as ``local``, on several hosts, switched together.

Each host runs the :class:`~devops_tasks.releases.ReleaseEngine` over one verified fabric
connection (:func:`devops_tasks.ssh_hosts.connect`). Connections are opened in parallel the
first time a command needs them, reused for everything it does, and closed when it ends.

A deploy has two phases so that the fleet never serves two releases for longer than one
switch takes. Phase 1 puts the release in ``releases/<id>/`` on every host; only when every
host has it does phase 2 switch ``current`` on every host. A host failing in phase 1 means
nothing is switched anywhere (the deployer then discards the release); a host failing its
switch means the hosts already switched go back to what they served before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import queue
import re
import shlex
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..background import Background
from ..changes import PLAN_PATHS, Changes, Drift, per_host
from ..channels import run_timed
from ..config.store import Problem
from ..errors import DevopsError, ErrorCode, describe_problem
from ..health import HostGate
from ..host_state import HostState, audit_line, merge_audits, release_reason
from ..known_releases import KnownReleases
from ..output import NullProgress
from ..releases import ReleaseEngine, no_manifest
from ..rollout import Plan, Rollout, rollout_error
from ..ssh_hosts import DEFAULT_CONNECT_TIMEOUT, RemoteLines, connect, is_listed, trust
from .base import DeployOutcome, Platform

if TYPE_CHECKING:
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress

__all__ = ["Host", "SshPlatform"]

T = TypeVar("T")

#: A host's outcome when the deploy left it serving the new release.
LIVE_STATUSES = ("switched", "healthy")
DEFAULT_PORT = 22
DEFAULT_KEY_FILE = "~/.ssh/id_ed25519"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_CONCURRENCY = 10
DEFAULT_COMMAND_TIMEOUT = 600.0
#: What ``logs --lines`` keeps of one host's answer at most, whatever the host sends.
_LOG_CHARACTERS = 8 << 20
_MAX_PORT = 65535
#: Connections :meth:`SshPlatform.read_ahead` opened before the program loaded, by fleet.
_READ_AHEAD: dict[tuple[Any, ...], Background] = {}
#: ``user@host:port`` as the schema admits it; an IPv6 address comes in brackets.
_HOST_STRING = re.compile(
    r"(?:(?P<user>[^@]+)@)?(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:]+))(?::(?P<port>\d+))?"
)


@dataclass(frozen=True)
class Host:
    """One host of the fleet, with every setting resolved (its own, else the section's)."""

    host: str
    user: str
    port: int
    key_file: str
    path: str
    roles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``user@host:port``, the way messages and records name the host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """How status and records name the host."""
        named: dict[str, Any] = {"host": self.label, "path": self.path}
        if self.roles:
            named["roles"] = list(self.roles)
        return named


@dataclass
class _Member:
    """A connected host and the engine that drives its releases."""

    host: Host
    engine: ReleaseEngine

    def close(self) -> None:
        self.engine.connection.close()  # type: ignore[attr-defined]


class SshPlatform(Platform):
    name = "ssh"
    first_steps = (
        """devops config.set ssh.hosts '["deploy@web1.example.com", "deploy@web2.example.com"]'""",
        "devops infra.up",
    )
    checks_hosts = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hosts = self._resolve_hosts()
        self._members: list[_Member] | None = None
        #: Per-host outcome of the release being deployed (its record's ``details.hosts``).
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._deploying: str | None = None
        #: The hosts a look-only command reached, and those it could not (see ``_view``).
        self._seen: tuple[list[_Member], list[tuple[Host, DevopsError]]] | None = None
        #: What :meth:`deploy` prepared and :meth:`publish` switches.
        self._publishing: tuple[Rollout[_Member], list[_Member]] | None = None
        #: The connections :meth:`prefetch` opens while the build is scanned.
        self._connecting: Background | None = None
        #: Hosts a deploy goes on without: unreachable, within ``deployment.max_fail``.
        self._absent: list[tuple[Host, DevopsError]] = []
        self._known = KnownReleases(self.project.cache_dir / "releases")

    # -- configuration ---------------------------------------------------------------------

    def _resolve_hosts(self) -> list[Host]:
        """Every host with a user, an address, a port, a key and a path, or CONFIG_INVALID.

        Checked after the environments are merged: a host may take its user from the
        section, the section may sit in another layer, so the schema alone cannot tell.
        """
        section = self.options
        entries = section.get("hosts") or []
        problems: list[Problem] = []
        if not entries:
            problems.append(Problem("ssh.hosts", "is required but missing"))
        hosts: list[Host] = []
        for index, entry in enumerate(entries):
            where = f"ssh.hosts.{index}"
            item = _host_fields(entry)
            user = item.get("user") or section.get("user")
            path = item.get("path") or section.get("path")
            port = int(
                next(
                    (p for p in (item.get("port"), section.get("port")) if p is not None),
                    DEFAULT_PORT,
                )
            )
            if not user:
                problems.append(Problem(f"{where}.user", "is required: set it or ssh.user"))
            if not path:
                problems.append(Problem(f"{where}.path", "is required: set it or ssh.path"))
            if not 1 <= port <= _MAX_PORT:
                problems.append(Problem(f"{where}.port", "must be 1 to 65535", port))
            if user and path:
                hosts.append(
                    Host(
                        host=item["host"],
                        user=user,
                        port=port,
                        key_file=item.get("key_file") or section.get("key_file", DEFAULT_KEY_FILE),
                        path=path.replace("{host}", item["host"]).replace(
                            "{env}", self.settings.environment
                        ),
                        roles=tuple(item.get("roles") or ()),
                    )
                )
        roots: dict[tuple[str, int, str], int] = {}
        for index, host in enumerate(hosts):
            first = roots.setdefault((host.host, host.port, host.path), index)
            if first != index:
                problems.append(
                    Problem(
                        f"ssh.hosts.{index}",
                        f"deploys to the same root as ssh.hosts.{first} ({host.path})",
                        host.label,
                    )
                )
        if problems:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"settings for environment {self.settings.environment!r}: "
                + describe_problem(problems[0].to_dict())
                + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""),
                "Give every host of ssh.hosts a user, an address and a path (its own or the "
                "section's ssh.user and ssh.path; put {host} in the path when hosts share a "
                "filesystem), then `devops config.validate`.",
                problems=[p.to_dict() for p in problems],
            )
        return hosts

    def _local_path(self, value: str) -> Path:
        """A key or known_hosts path: ``~`` expanded, relative to the project."""
        return self.project.resolve(Path(value).expanduser())

    # -- connections -----------------------------------------------------------------------

    def prefetch(self) -> None:
        """Connect to every host (key exchange, login) while the build is scanned, and start
        reading what each has to link from (see :meth:`ReleaseEngine.survey_ahead`); or take
        over the connections :meth:`read_ahead` opened to the same fleet the same way."""
        if self._members is None and self._seen is None and self._connecting is None:
            self._connecting = _taken_ahead(self._fleet_key()) or self._look_ahead()

    def read_ahead(self) -> None:
        """Connect before the program has loaded (see :mod:`devops_tasks.early`), unless the
        host key policy may write: under ``accept-new`` only the command pins a new host."""
        if self.options.get("host_key_policy", "strict") == "strict":
            _READ_AHEAD[self._fleet_key()] = self._look_ahead()

    def _look_ahead(self) -> Background:
        return Background(lambda: self._in_parallel(self.hosts, self._looking))

    def _fleet_key(self) -> tuple[Any, ...]:
        """What the connections and the engines on them depend on."""
        return (
            tuple(self.hosts),
            self.known_hosts,
            *(
                self.options.get(name)
                for name in ("host_key_policy", "connect_timeout", "command_timeout", "concurrency")
            ),
        )

    def _looking(self, host: Host) -> _Member:
        member = self._connect(host)
        member.engine.survey_ahead()
        return member

    def _connected(self) -> list[tuple[Host, _Member | DevopsError]]:
        """Each host's connection or why there is none: the prefetched ones, or new ones."""
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            return connecting.result()
        return self._in_parallel(self.hosts, self._connect)

    def _fleet(self, tolerated: int = 0) -> list[_Member]:
        """Every host, connected (once per command, in parallel); raises if any is not.

        Up to ``tolerated`` unreachable hosts are left out instead (see :attr:`_absent`).
        """
        if self._members is None:
            results = self._connected()
            members = [m for _, m in results if isinstance(m, _Member)]
            failed = [(host, e) for host, e in results if isinstance(e, DevopsError)]
            if len(failed) > tolerated or not members:
                for member in members:
                    member.close()
                raise rollout_error([(h.label, e) for h, e in failed], "connect to")
            self._members, self._absent = members, failed
        return self._members

    def _connect(self, host: Host) -> _Member:
        connection = connect(
            host.host,
            user=host.user,
            port=host.port,
            key_file=self._local_path(host.key_file),
            known_hosts=self.known_hosts,
            policy=self.options.get("host_key_policy", "strict"),
            connect_timeout=float(self.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        )
        timeout = float(self.options.get("command_timeout", DEFAULT_COMMAND_TIMEOUT))
        engine = ReleaseEngine(connection, host.path, timeout, self._known)
        return _Member(host, engine)

    def _view(self) -> tuple[list[_Member], list[tuple[Host, DevopsError]]]:
        """For what only looks: the hosts that answer, and the error of each that does not.

        One host being down is part of the answer of ``status`` or ``lock.status``, not a
        reason to say nothing of the others. A complete view is the command's fleet.
        """
        if self._members is not None:
            return self._members, self._absent
        if self._seen is None:
            results = self._connected()
            members = [m for _, m in results if isinstance(m, _Member)]
            down = [(h, e) for h, e in results if isinstance(e, DevopsError)]
            self._seen = (members, down)
            if not down:
                self._members = members
        return self._seen

    def _from_view(
        self, action: Callable[[_Member], dict[str, Any]], what: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """``action`` on every host that answers, and an error entry for each that does not."""
        members, down = self._view()
        answers = self._from_each_of(members, action, what)
        by_host = {m.host.label: a for m, a in zip(members, answers, strict=True)}
        by_host |= {
            h.label: {**h.to_dict(), "code": e.code.value, "error": e.message} for h, e in down
        }
        entries = [by_host[host.label] for host in self.hosts]
        return entries, not down

    def close(self) -> None:
        if self._connecting is not None:  # prefetched, never used: the command failed first
            self._view()
        seen = self._seen[0] if self._seen else []
        for member in {id(m): m for m in [*(self._members or []), *seen]}.values():
            member.close()
        self._members = None
        self._seen = None

    def _in_parallel(
        self, items: list[Any], action: Callable[[Any], T], progress: Progress | None = None
    ) -> list[tuple[Any, T | DevopsError]]:
        """``action`` on every item, ``ssh.concurrency`` at a time; failures come back as errors.

        Each failure names its host, so one bad host never hides what happened on the others.
        """
        workers = min(int(self.options.get("concurrency", DEFAULT_CONCURRENCY)), len(items))
        with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
            futures = [pool.submit(_attempt, action, item) for item in items]
            for _ in as_completed(futures):
                if progress is not None:
                    progress.advance(1)
        return [(item, future.result()) for item, future in zip(items, futures, strict=True)]

    def _on_each(
        self, action: Callable[[_Member], T], progress: Progress | None = None
    ) -> list[tuple[_Member, T | DevopsError]]:
        return self._in_parallel(self._fleet(), action, progress)

    def _from_each(self, action: Callable[[_Member], T], what: str) -> list[T]:
        """``action``'s result on every host, in host order; raises if any host failed."""
        return self._from_each_of(self._fleet(), action, what)

    def _from_each_of(
        self, members: list[_Member], action: Callable[[_Member], T], what: str
    ) -> list[T]:
        results = self._in_parallel(members, action)
        failed = [(m.host.label, r) for m, r in results if isinstance(r, DevopsError)]
        if failed:
            raise rollout_error(failed, what)
        return [r for _, r in results if not isinstance(r, DevopsError)]

    # -- deploy ----------------------------------------------------------------------------

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        shared = self.options.get("shared") or []

        def upload(host: _Member) -> dict[str, int]:
            sent = host.engine.upload(deployment.id, files, NullProgress(), shared=shared)
            return {"files": sent.files_sent, "bytes": sent.bytes_sent, "linked": sent.files_linked}

        what = f"{len(files)} files in releases/{deployment.id}"
        self._roll_out(deployment, upload, progress, publish, ("upload", what))
        return self._outcome(deployment, len(files), publish)

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """On each host, hard links to (else a copy of) ``source``'s release there.

        Every host of this environment must be a host of ``source`` (same user, address
        and port): nothing is streamed between hosts.
        """
        if not isinstance(source, SshPlatform):
            raise self._unsupported("promotes only from another ssh environment", "deploy")
        roots = {host.label: host.path for host in source.hosts}
        strangers = [host.label for host in self.hosts if host.label not in roots]
        if strangers:
            raise DevopsError(
                ErrorCode.NOT_SUPPORTED,
                f"{source.settings.environment} has no release on {', '.join(strangers)}: "
                "a promote copies a release on each host, never between hosts",
                f"Deploy the build to {self.settings.environment} instead, or give both "
                "environments the same hosts (each its own ssh.path).",
            )
        counts: dict[str, int] = {}

        def copy(host: _Member) -> dict[str, Any]:
            origin = ReleaseEngine(
                host.engine.connection, roots[host.host.label], host.engine.command_timeout
            )
            linked = host.engine.copy_release(origin, release, deployment.id)
            counts[host.host.label] = len(host.engine.manifest(deployment.id) or {})
            return {"files": 0, "bytes": 0, "promoted_by": "linked" if linked else "copied"}

        what = f"release {release} of {source.settings.environment} as releases/{deployment.id}"
        self._roll_out(deployment, copy, progress, publish, ("copy", what))
        return self._outcome(deployment, max(counts.values(), default=0), publish)

    def _roll_out(
        self,
        deployment: Deployment,
        put: Callable[[_Member], dict[str, Any]],
        progress: Progress,
        publish: bool,
        step: tuple[str, str],
    ) -> None:
        """Phase 1 (``put`` the release on each host, then log ``step``: what it did) in the
        strategy's batches, then phase 2 unless not ``publish``."""
        release = deployment.id
        fleet = self._fleet()
        self._deploying = release
        self._outcomes = {m.host.label: m.host.to_dict() for m in fleet}
        for host, error in self._absent:  # the deploy goes on without them (max_fail)
            self._outcomes[host.label] = {**host.to_dict(), "status": "failed"}
            self._outcomes[host.label]["error"] = f"unreachable: {error.message}"
        self._outcomes = {h.label: self._outcomes[h.label] for h in self.hosts}
        deployment.details["hosts"] = list(self._outcomes.values())
        work = _FleetRelease(self, release, deployment, put, progress)
        plan = Plan.from_settings(self.settings, len(self.hosts))
        rollout = Rollout(
            work,
            dataclasses.replace(plan, max_fail=plan.max_fail - len(self._absent)),
            rollback_on_failure=bool(self.settings.get("deployment.rollback_on_failure")),
        )
        progress.start(f"Uploading to {len(fleet)} host(s)", total=len(fleet))
        try:
            ready = rollout.prepare(fleet, f"prepare release {release} on")
        finally:
            progress.finish()
            work.note_sweeps()
        deployment.step(step[0], f"{step[1]} on {len(ready)} hosts")
        self._publishing = (rollout, ready)
        if publish:
            self.publish(release)

    def _outcome(self, deployment: Deployment, files: int, publish: bool) -> DeployOutcome:
        """What :meth:`_roll_out` did, as the deployer's outcome."""
        ready = self._publishing[1] if self._publishing else []
        return DeployOutcome(
            release=deployment.id,
            files_deployed=files,
            bytes_uploaded=sum(self._outcomes[m.host.label]["sent"]["bytes"] for m in ready),
            rollback_available=True,
            published=publish,
            details={"hosts": deployment.details["hosts"]},
        )

    def publish(self, release: str) -> None:
        """Switch the hosts :meth:`deploy` prepared, in the batches of the strategy."""
        if self._publishing is None or release != self._deploying:
            self.restore(release)
            return
        rollout, ready = self._publishing
        rollout.switch(ready, f"switch to release {release} on")
        live = sum(
            1 for outcome in self._outcomes.values() if outcome.get("status") in LIVE_STATUSES
        )
        failed = len(rollout.failed) + len(self._absent)
        if failed:
            rollout.fleet.note(
                f"{live} of {len(self._outcomes)} hosts serve {release}; {failed} failed "
                f"(deployment.max_fail allows {rollout.plan.max_fail + len(self._absent)})"
            )

    def undo(self, previous: str | None) -> bool:
        """After the deploy under way went live: each host back to what it served before."""
        if self._publishing is None:
            return super().undo(previous)
        return self._publishing[0].undo()

    def restore(self, release: str) -> None:
        """Switch every host to ``release``; if one cannot switch, the others switch back.

        Each host that switched runs the ``after_rollback`` hook.
        """
        fleet = self._fleet()
        work = _FleetRelease(self, release, None)
        Rollout(work, Plan(batch_size=len(fleet)), rollback_on_failure=True).switch(
            fleet, f"switch to release {release} on"
        )

    def _mark(self, host: Host, status: str, error: str | None = None) -> None:
        """Record ``host``'s outcome in the deploy under way (if one is)."""
        outcome = self._outcomes.get(host.label)
        if outcome is not None:
            outcome["status"] = status
            if error is None:
                outcome.pop("error", None)
            else:
                outcome["error"] = error

    def discard(self, release: str) -> None:
        """Remove ``release`` from every host that does not serve it."""

        def remove(member: _Member) -> bool:
            if member.engine.current() == release:
                return False  # left live by a failure without rollback_on_failure
            member.engine.remove(release)
            return True

        results = self._on_each(remove)
        failed = [(m.host.label, r) for m, r in results if isinstance(r, DevopsError)]
        for member, removed in results:
            if removed is True and self._status(member.host) == "prepared":
                self._mark(member.host, "discarded")
        if failed:
            raise rollout_error(failed, f"remove release {release} from")

    def _status(self, host: Host) -> str | None:
        return self._outcomes.get(host.label, {}).get("status")

    # -- what is there ---------------------------------------------------------------------

    def live_release(self) -> str | None:
        """The release every host serves; ``None`` if they disagree or one is down."""
        members, down = self._view()
        current = set(
            self._from_each_of(members, lambda m: m.engine.current(), "read the live release of")
        )
        return current.pop() if len(current) == 1 and not down else None

    def can_restore(self, release: str) -> bool:
        return all(self._from_each(lambda m: m.engine.exists(release), "list the releases of"))

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        removed = self._from_each(lambda m: m.engine.prune(keep, protect), "prune releases on")
        return sorted({release for host_removed in removed for release in host_removed})

    def describe(self) -> dict[str, Any]:
        hosts, complete = self._from_view(
            lambda m: {
                **m.host.to_dict(),
                "current": m.engine.current(),
                "releases": m.engine.releases(),
            },
            "describe",
        )
        live = {host.get("current") for host in hosts}
        agree = len(live) <= 1 and complete
        return {
            "platform": self.name,
            "live_release": live.pop() if agree and live else None,
            "hosts_agree": agree,
            "hosts": hosts,
        }

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        """Each host's plan against its own current release; one summary, and each host's
        counts when the hosts differ."""
        shared = self.options.get("shared") or []
        found = self._from_each(
            lambda m: m.engine.planned(files, shared), "read the current release of"
        )
        labelled = [(m.host.label, c) for m, (_, c) in zip(self._fleet(), found, strict=True)]
        changes, hosts = per_host(labelled)
        live = {current for current, _ in found}
        plan = {
            **changes.summary(PLAN_PATHS),
            "live_release": live.pop() if len(live) == 1 else None,
            "steps": self._rollout_steps(),
        }
        if hosts:
            plan["hosts"] = hosts
        return plan

    def _rollout_steps(self) -> list[str]:
        """What a deploy does on the fleet, in order, as the strategy and hooks make it."""
        hooks: dict[str, str] = self.options.get("hooks") or {}
        gate = HostGate(self.settings.get("deployment.health_check") or {})
        plan = Plan.from_settings(self.settings, len(self.hosts))
        steps = [
            f"on each of {len(self.hosts)} host(s): build releases/<new release>, sending the "
            "added and changed files and linking the others from its current release"
        ]
        if hooks.get("before_switch"):
            steps.append(f"on each host: before_switch hook `{hooks['before_switch']}`")
        if gate.command and self.settings.get("deployment.strategy") == "blue-green":
            steps.append(f"on each host, before any switch: check `{gate.command}`")
        after = (
            [f"after_switch hook `{hooks['after_switch']}`"] if hooks.get("after_switch") else []
        )
        if gate.url or gate.command:
            after.append("check each host")
        for index, batch in enumerate(plan.batches([h.label for h in self.hosts])):
            canary = bool(plan.canary) and index == 0
            step = f"switch {'the canary' if canary else f'batch {index + 1}'}: {', '.join(batch)}"
            step += "".join(f"; {what}" for what in after)
            if canary and plan.canary_wait:
                step += f"; wait {plan.canary_wait:g} s and check again"
            steps.append(step)
        if plan.max_fail:
            steps.append(f"go on without up to {plan.max_fail} failed host(s)")
        return steps

    def drift(self, expected: str | None) -> Drift:
        """Each reachable host's files against its current release's manifest; a host that
        cannot be read (or has no manifest) makes the drift partly unknown."""

        def look(member: _Member) -> dict[str, Any]:
            current, changes = member.engine.drift()
            return {"host": member.host.label, "current": current, "changes": changes}

        entries, _ = self._from_view(look, "read the current release of")
        read = [(e["host"], e["changes"]) for e in entries if e.get("changes") is not None]
        changes, rows = per_host(read) if read else (Changes(), None)
        unknown = [
            {"host": e["host"], "unknown": no_manifest(e["current"])}
            if "current" in e
            else {"host": e["host"], "code": e["code"], "error": e["error"]}
            for e in entries
            if e.get("changes") is None
        ]
        if unknown:
            rows = [{"host": host, **found.counts()} for host, found in read] + unknown
        live = {e["current"] for e in entries if "current" in e}
        return Drift(
            changes,
            against=live.pop() if len(live) == 1 else None,
            unknown=f"{len(unknown)} of {len(entries)} host(s) could not be compared"
            if unknown
            else None,
            hosts=rows,
        )

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self._from_each(
            lambda m: _checked_run(m, f"mkdir -p -- {_quoted(self._layout(m))}", "create"),
            "create the layout on",
        )
        return self.describe(), {}

    # -- locks and the audit log on the hosts ----------------------------------------------

    def _state(self, member: _Member) -> HostState:
        return HostState(
            member.engine.connection,
            member.host.path,
            member.host.label,
            member.engine.command_timeout,
        )

    def _max_fail(self) -> int:
        """How many hosts a deploy may lose: ``deployment.max_fail`` of the whole fleet."""
        return Plan.from_settings(self.settings, len(self.hosts)).max_fail

    def _lock_ttl(self) -> float:
        return float(self.settings.get("deployment.lock_ttl"))

    @contextlib.contextmanager
    def hold(self, holder: dict[str, Any]) -> Iterator[None]:
        """Lock the host first in the order of their names, then every other host at once,
        then work.

        The one order means two deploys of one fleet both start at the same host: one gets
        it and the other fails there, never each holding part of the fleet; the one that
        got it is the only one asking the others. (The others at once: a fleet of ten is
        two round trips, not ten.) A host already locked lets go of the locks taken so far
        and fails with LOCKED, naming its holder. The locks are released however the work
        ends (SIGINT and SIGTERM included), each only if its token is still ours; one that
        cannot be (its host went away) stays, and ``lock.status`` shows it.
        """
        tolerated = self._max_fail() if holder.get("action") == "deploy" else 0
        ordered = sorted(self._fleet(tolerated), key=lambda m: m.host.label)
        taken: list[_Member] = []
        try:
            for batch in (ordered[:1], ordered[1:]):
                taken += batch  # first: an interrupted take may have happened
                results = self._in_parallel(batch, lambda m: self._take(m, holder))
                refused = [(m, e) for m, e in results if isinstance(e, DevopsError)]
                if refused:
                    held_elsewhere = {id(m) for m, _ in refused}
                    taken = [m for m in taken if id(m) not in held_elsewhere]
                    raise _lock_error(refused[0][1], [m.host for m in taken]) from None
            yield
        finally:
            self._in_parallel(taken, lambda m: self._state(m).release(holder["token"]))

    def _take(self, member: _Member, holder: dict[str, Any]) -> None:
        """Lock ``member``, and in the same round trip look at what the deploy reads first
        (its live release, what a killed run left)."""
        looked = self._state(member).take(holder, self._lock_ttl(), member.engine.look_command())
        member.engine.seen(looked)

    def lock_states(self) -> list[dict[str, Any]]:
        ttl = self._lock_ttl()
        states, _ = self._from_view(
            lambda m: self._state(m).inspect(ttl).to_dict(), "read the lock of"
        )
        # a host that cannot be asked may well be locked
        return [
            state if "state" in state else {**state, "state": "unreachable"} for state in states
        ]

    def release_locks(self, force: bool) -> list[dict[str, Any]]:
        ttl = self._lock_ttl()

        def release(member: _Member) -> dict[str, Any]:
            host = self._state(member)
            lock = host.inspect(ttl)
            reason = release_reason(lock, force)
            released = reason is not None and host.release(lock.token)
            return {**lock.to_dict(), "released": released, "reason": reason}

        return self._from_each(release, "release the lock of")

    def record_audit(self, entry: dict[str, Any]) -> None:
        self._from_each(
            lambda m: self._state(m).append_audit(audit_line(entry, m.host.label)),
            "append to the audit log of",
        )

    def remote_history(self, limit: int) -> list[dict[str, Any]]:
        """The audit logs (their last ``limit`` lines) of the hosts that answer, merged by
        deployment; those that do not are :meth:`unreachable`. Raises if none answers."""
        environment = self.settings.environment
        members, down = self._view()
        if not members:
            raise rollout_error([(h.label, e) for h, e in down], "read the audit log of")
        read = self._from_each_of(
            members,
            lambda m: (m.host.label, self._state(m).read_audit(limit)),
            "read the audit log of",
        )
        return merge_audits(
            [(host, [e for e in log if e.get("environment") == environment]) for host, log in read],
            limit,
        )

    def unreachable(self) -> list[dict[str, Any]]:
        _, down = self._seen or ([], [])
        return [{**h.to_dict(), "code": e.code.value, "error": e.message} for h, e in down]

    # -- host keys, host logs, plans: ssh.trust, logs --lines/--follow, infra.plan ---------

    @property
    def known_hosts(self) -> Path:
        return self._local_path(self.options.get("known_hosts", DEFAULT_KNOWN_HOSTS))

    def trust(self, wanted: str | None = None, fingerprint: str | None = None) -> dict[str, Any]:
        """Pin the host keys of ``wanted`` (as ssh.hosts writes it, ``host`` or ``host:port``),
        else of every host ``known_hosts`` does not list yet (``ssh.trust``)."""
        known_hosts = self.known_hosts
        hosts = self._named(wanted) if wanted else self._unlisted(known_hosts)
        if fingerprint is not None and len(hosts) > 1:
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"A fingerprint is one host's key, and {len(hosts)} hosts are to be trusted",
                "Name the host it belongs to: `devops ssh.trust --host HOST --fingerprint "
                f"{fingerprint}`.",
            )
        timeout = float(self.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))

        def pin(host: Host) -> dict[str, Any]:
            pinned = trust(
                host.host,
                port=host.port,
                known_hosts=known_hosts,
                fingerprint=fingerprint,
                timeout=timeout,
            )
            return {"host": host.label, **pinned}

        results = self._in_parallel(hosts, pin)
        trusted = [r for _, r in results if not isinstance(r, DevopsError)]
        failed = [(host.label, r) for host, r in results if isinstance(r, DevopsError)]
        if failed:
            raise rollout_error(failed, "pin the host key of", trusted=trusted)
        return {"known_hosts": str(known_hosts), "hosts": trusted}

    def _named(self, wanted: str) -> list[Host]:
        """The hosts ``wanted`` names, or INVALID_ARGUMENT listing the ones there are."""
        found = _distinct(h for h in self.hosts if wanted in _names_of(h))
        if not found:
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{wanted!r} is not a host of ssh.hosts (environment {self.settings.environment})",
                f"Name one of: {', '.join(h.label for h in self.hosts)} (as ssh.hosts writes "
                "it, or host, or host:port), or add it to ssh.hosts first.",
            )
        return found

    def _unlisted(self, known_hosts: Path) -> list[Host]:
        return _distinct(h for h in self.hosts if not is_listed(known_hosts, h.host, h.port))

    def _log_command(self, host: Host, lines: int, follow: bool) -> str:
        """``tail`` of ``ssh.log_file`` or ``journalctl`` of ``ssh.journal_unit`` on ``host``."""
        log_file, unit = self.options.get("log_file"), self.options.get("journal_unit")
        if bool(log_file) == bool(unit):
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "ssh.log_file and ssh.journal_unit are both set"
                if log_file
                else "Neither ssh.log_file nor ssh.journal_unit is set",
                "Set one of them: `devops config.set ssh.log_file /var/log/app.log` (a file "
                "on each host) or `devops config.set ssh.journal_unit app.service`.",
            )
        if unit:  # colours off: a followed journal has a terminal
            return (
                f"SYSTEMD_COLORS=0 journalctl -u {shlex.quote(unit)} -n {lines}"
                f"{' -f' if follow else ''} --no-pager"
            )
        path = (
            str(log_file).replace("{host}", host.host).replace("{env}", self.settings.environment)
        )
        if not path.startswith("/"):
            path = f"{host.path.rstrip('/')}/{path}"
        return f"tail -n {lines}{' -F' if follow else ''} -- {shlex.quote(path)}"

    def host_logs(self, lines: int) -> list[dict[str, Any]]:
        commands = {h: self._log_command(h, lines, follow=False) for h in self.hosts}
        self.credentials.mask_stored()  # a log may quote any of them
        timeout = float(self.options.get("command_timeout", DEFAULT_COMMAND_TIMEOUT))

        def read(member: _Member) -> dict[str, Any]:
            output = RemoteLines(member.engine.connection, commands[member.host])
            kept = _last(output.lines(timeout), lines)
            status = output.exit_status()
            if status != 0:
                raise DevopsError(
                    ErrorCode.COMMAND_FAILED,
                    f"`{output.command}` failed (exit status {status}): "
                    f"{output.errors or 'it said nothing'}",
                    f"Check that what ssh.log_file or ssh.journal_unit names exists on "
                    f"{member.host.host} and that {member.host.user} may read it.",
                )
            return {"host": member.host.label, "lines": kept}

        with self._reachable() as (members, unreachable):
            results = self._in_parallel(members, read)
        failed = unreachable + [(m.host, r) for m, r in results if isinstance(r, DevopsError)]
        if len(failed) == len(self.hosts):
            raise rollout_error([(h.label, e) for h, e in failed], "read the logs of")
        answers = {m.host: r for m, r in results if not isinstance(r, DevopsError)}
        answers.update(
            {h: {"host": h.label, "code": e.code.value, "error": e.message} for h, e in failed}
        )
        return [answers[host] for host in self.hosts]

    def follow_logs(
        self, lines: int, emit: Callable[[str, str], None], warn: Callable[[str], None]
    ) -> None:
        commands = {h: self._log_command(h, lines, follow=True) for h in self.hosts}
        self.credentials.mask_stored()
        #: (host, text, ended): a line of a host's log, or why its stream ended.
        events: queue.Queue[tuple[str, str, bool]] = queue.Queue()

        def pump(label: str, output: RemoteLines) -> None:
            ended = f"{label}: the log stream ended"
            try:
                for line in output.lines():
                    events.put((label, line, False))
                ended += f" (exit status {output.exit_status()})"
            except Exception as exc:  # noqa: BLE001 - one host's stream must not stop the others
                ended += f": {exc}"
            finally:
                events.put((label, ended, True))

        with self._reachable() as (members, unreachable):
            for _, error in unreachable:
                warn(error.message)
            if not members:
                raise rollout_error([(h.label, e) for h, e in unreachable], "connect to")
            streams = []
            try:
                for member in members:
                    label, command = member.host.label, commands[member.host]
                    try:
                        output = RemoteLines(member.engine.connection, command, pty=True)
                    except Exception as exc:  # noqa: BLE001 - reported, the others go on
                        warn(f"{label}: could not start `{command}`: {exc}")
                        continue
                    streams.append(output)
                    threading.Thread(target=pump, args=(label, output), daemon=True).start()
                running = len(streams)
                while running:
                    label, text, ended = events.get()
                    if ended:
                        running -= 1
                        warn(text)
                    else:
                        emit(label, text)
            finally:
                for output in streams:
                    output.close()

    def plan(self) -> list[dict[str, Any]]:
        """Each host's layout directories: there (``none``) or to be made (``create``)."""

        def check(member: _Member) -> list[dict[str, Any]]:
            layout = self._layout(member)
            answers = _checked_run(
                member,
                f'for d in {_quoted(layout)}; do if [ -d "$d" ]; then echo none; '
                'elif [ -e "$d" ] || [ -L "$d" ]; then echo conflict; else echo create; fi; done',
                "inspect",
            ).split()
            return [
                _planned(action, path, member.host.label)
                for action, path in zip(answers, layout, strict=True)
            ]

        with self._reachable() as (members, unreachable):
            results = self._in_parallel(members, check)
        answers: dict[Host, list[dict[str, Any]]] = {
            h: [{"action": "unknown", "what": h.path, "where": h.label, "error": e.message}]
            for h, e in unreachable
        }
        for member, result in results:
            answers[member.host] = (
                [
                    {
                        "action": "unknown",
                        "what": member.host.path,
                        "where": member.host.label,
                        "error": result.message,
                    }
                ]
                if isinstance(result, DevopsError)
                else result
            )
        return [row for host in self.hosts for row in answers[host]]

    def _layout(self, member: _Member) -> list[str]:
        """The directories ``infra.up`` makes on a host (and ``infra.plan`` looks for)."""
        engine = member.engine
        shared = [f"{engine.root}/shared"] if self.options.get("shared") else []
        return [engine.root, engine.releases_dir, *shared]

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[tuple[list[_Member], list[tuple[Host, DevopsError]]]]:
        """The hosts that answer, connected, and the error of each that does not.

        For commands that only look: one host being down is part of their answer, not a
        reason to tell nothing about the others. The connections close on leaving.
        """
        results = self._in_parallel(self.hosts, self._connect)
        members = [m for _, m in results if isinstance(m, _Member)]
        try:
            yield members, [(h, e) for h, e in results if isinstance(e, DevopsError)]
        finally:
            for member in members:
                member.close()


def _taken_ahead(fleet: tuple[Any, ...]) -> Background | None:
    """The connections :meth:`SshPlatform.read_ahead` opened to ``fleet``, if it did; any
    others it opened are closed once made (this command is the one they were opened for)."""
    taken = _READ_AHEAD.pop(fleet, None)
    for unused in _READ_AHEAD.values():
        Background(functools.partial(_close_all, unused))
    _READ_AHEAD.clear()
    return taken


def _close_all(connecting: Background) -> None:
    connected: list[tuple[Host, _Member | DevopsError]] = connecting.result()
    for _, member in connected:
        if isinstance(member, _Member):
            member.close()


def _host_fields(entry: str | dict[str, Any]) -> dict[str, Any]:
    """A ``hosts`` item as a mapping: ``"user@host:port"`` split into its parts."""
    if isinstance(entry, dict):
        return entry
    match = _HOST_STRING.fullmatch(entry)
    assert match is not None  # the schema admits only strings of this form
    parts = {"host": match["ipv6"] or match["host"], "user": match["user"]}
    if match["port"]:
        parts["port"] = int(match["port"])
    return parts


def _names_of(host: Host) -> set[str]:
    """The names ``ssh.trust`` knows ``host`` by: as ssh.hosts has it, ``host``, ``host:port``."""
    bracketed = f"[{host.host}]"
    return {
        host.label,
        host.host,
        bracketed,
        f"{host.host}:{host.port}",
        f"{bracketed}:{host.port}",
        f"{host.user}@{host.host}",
        f"{host.user}@{bracketed}",
        f"{host.user}@{host.host}:{host.port}",
    }


def _distinct(hosts: Iterable[Host]) -> list[Host]:
    """One host per address and port (two roots on one server share its key)."""
    first: dict[tuple[str, int], Host] = {}
    for host in hosts:
        first.setdefault((host.host, host.port), host)
    return list(first.values())


def _quoted(paths: list[str]) -> str:
    return " ".join(map(shlex.quote, paths))


def _checked_run(member: _Member, command: str, what: str) -> str:
    """``command``'s output on ``member``; DEPLOY_FAILED with what the host said if it fails."""
    engine = member.engine
    result = run_timed(
        engine.connection, command, f"{what} {member.host.path}", engine.command_timeout
    )
    if result.failed:
        said = (result.stderr or result.stdout or "").strip()
        raise DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"Could not {what} {member.host.path}: {said or f'exit status {result.exited}'}",
            f"Check that {member.host.user} may create {member.host.path} on "
            f"{member.host.host} (or create it for them), then run it again.",
        )
    return str(result.stdout)


def _planned(action: str, path: str, where: str) -> dict[str, Any]:
    row = {"action": action, "what": path, "where": where}
    if action == "conflict":
        row["error"] = "exists and is not a directory: infra.up cannot create it"
    return row


def _last(lines: Iterator[str], count: int) -> list[str]:
    """The last ``count`` of ``lines``, and no more than :data:`_LOG_CHARACTERS` of them."""
    kept: deque[str] = deque()
    size = 0
    for line in lines:
        kept.append(line)
        size += len(line)
        while len(kept) > count or size > _LOG_CHARACTERS:
            size -= len(kept.popleft())
    return list(kept)


class _FleetRelease:
    """One release's rollout on the fleet: the :class:`~devops_tasks.rollout.Fleet` of a deploy.

    With no ``deployment``, it is a restore: switching runs ``after_rollback`` instead of
    ``after_switch``, and no health gate.
    """

    def __init__(
        self,
        platform: SshPlatform,
        release: str,
        deployment: Deployment | None,
        put: Callable[[_Member], dict[str, Any]] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.platform = platform
        #: Advanced by one as each host's phase 1 ends.
        self.progress = progress or NullProgress()
        self.release = release
        self.deployment = deployment
        self.put = put
        self.hooks: dict[str, str] = platform.options.get("hooks") or {}
        check = platform.settings.get("deployment.health_check") or {}
        self.gate = HostGate(check)
        if any(self.hooks.values()) or check.get("remote"):  # their output is shown on failure
            platform.credentials.mask_stored()
        #: What each host served before it switched, to switch it back.
        self.previous: dict[str, str | None] = {}
        self.swept: dict[str, list[str]] = {}

    def label(self, host: _Member) -> str:
        return host.host.label

    def prepare(self, host: _Member) -> None:
        # The deployer holds this environment's lock, hence every host's root.
        assert self.put is not None
        self.swept[host.host.label] = host.engine.sweep()
        self.platform._outcomes[host.host.label]["sent"] = self.put(host)
        self._hook(host, "before_switch", self.release)
        if self.platform.settings.get("deployment.strategy") == "blue-green":
            self.check(host, "before switch", live=False)  # all switch together: check first
        self.progress.advance(1)

    def note_sweeps(self) -> None:
        for label, swept in self.swept.items():
            if swept:
                self.note(f"{label}: removed {', '.join(swept)}")

    def switch(self, host: _Member) -> None:
        self.previous[host.host.label] = host.engine.activate(self.release)

    def settle(self, host: _Member) -> None:
        self._hook(host, "after_switch" if self.deployment else "after_rollback", self.release)

    def check(self, host: _Member, stage: str, live: bool = True) -> bool:
        if self.deployment is None:
            return False
        results = self.gate.check(
            host.host.host, lambda command: self._probe(host, command), live=live
        )
        outcome = self.platform._outcomes.get(host.host.label)
        if outcome is not None and results:
            outcome.setdefault("health", []).extend(r.to_dict() | {"stage": stage} for r in results)
        for result in results:
            if not result.healthy:
                raise DevopsError(
                    ErrorCode.HEALTH_CHECK_FAILED,
                    f"{stage} health check of {result.url} failed after "
                    f"{result.attempts} attempt(s): {result.detail}",
                    "See `devops logs` on the hosts; fix the release, then deploy again.",
                )
        return bool(results)

    def switch_back(self, host: _Member) -> None:
        before = self.previous.get(host.host.label)
        if before:
            host.engine.activate(before)
            self._hook(host, "after_rollback", before)
        else:
            host.engine.deactivate(self.release)

    def in_parallel(
        self, hosts: Sequence[_Member], action: Callable[[_Member], Any]
    ) -> list[tuple[_Member, Any]]:
        return self.platform._in_parallel(list(hosts), action)

    def mark(self, host: _Member, status: str, error: str | None = None) -> None:
        if self.deployment is None:  # a restore: recorded only as a deploy's recovery
            if not self.platform._deploying:
                return
            status = "rolled_back" if status in ("switched", "healthy") else status
        self.platform._mark(host.host, status, error)

    def note(self, message: str) -> None:
        if self.deployment is not None:
            self.deployment.step("rollout", message)

    def _probe(self, host: _Member, command: str) -> tuple[bool, str]:
        """Run a health check command on ``host``, in the release: passed on exit status 0."""
        try:
            host.engine.run_in_release(self.release, command)
        except DevopsError as error:
            return False, error.message
        return True, "exit status 0"

    def _hook(self, host: _Member, name: str, release: str) -> None:
        command = self.hooks.get(name)
        if command:
            try:
                host.engine.run_in_release(release, command)
            except DevopsError as error:
                raise DevopsError(
                    error.code,
                    f"the {name} hook failed: {error.message}",
                    f"Fix ssh.hooks.{name} (it runs in the release directory on each host), "
                    "then deploy again.",
                ) from None


def _attempt(action: Callable[[Any], T], item: Any) -> T | DevopsError:
    """``action(item)``, or what went wrong as an error naming the host."""
    host: Host = item.host if isinstance(item, _Member) else item
    try:
        return action(item)
    except DevopsError as error:
        named = error.message.startswith(f"{host.label}: ")  # it says which host already
        return DevopsError(
            error.code,
            error.message if named else f"{host.label}: {error.message}",
            error.fix,
            **{**error.details, "host": host.label},
        )
    except Exception as exc:  # noqa: BLE001 - a host failing in any way must not hide the others
        return DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"{host.label}: {type(exc).__name__}: {exc}",
            f"Check that {host.label} is up and reachable, then run it again.",
            host=host.label,
        )


def _lock_error(error: DevopsError, released: list[Host]) -> DevopsError:
    """``error`` (taking a host's lock failed), saying which locks were let go again."""
    if not released:
        return error
    names = ", ".join(host.label for host in released)
    return DevopsError(
        error.code,
        f"{error.message} (the locks already taken, on {names}, were released)",
        error.fix,
        **{**error.details, "released": [host.label for host in released]},
    )
