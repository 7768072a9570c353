"""The order in which a fleet's hosts take a new release, and when a rollout stops.

A target with several hosts prepares the release on every host first (phase 1: nothing is
switched anywhere until every host that will switch has the release), then switches them in
batches (phase 2). Each host of a batch switches, runs its ``after_switch`` hook and passes
the health gate before the next batch starts:

- ``rolling``: batches of ``deployment.batch_size`` hosts (default: all at once);
- ``canary``: ``deployment.canary`` hosts first, checked, held for ``canary_wait`` seconds,
  checked again, then the rest as rolling;
- ``blue-green``: one batch of every host, switched together once all are prepared.

Up to ``deployment.max_fail`` hosts may fail (in either phase) and the rollout goes on
without them: they keep, or go back to, what they served. One more failure stops it; with
``rollback_on_failure`` every host already switched goes back to its previous release.

The rollout knows nothing of SSH: a :class:`Fleet` does the work on one host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .errors import DevopsError

__all__ = ["Fleet", "Plan", "Rollout", "host_count", "rollout_error"]

H = TypeVar("H")


def host_count(value: int | str | None, total: int, default: int, at_least: int = 0) -> int:
    """How many of ``total`` hosts ``value`` means: a number, or a percentage such as ``"25%"``.

    A percentage rounds up for batch sizes (``at_least`` 1) and down for ``max_fail``: 10% of
    three hosts allows no failure rather than one.
    """
    if value is None:
        return default
    if isinstance(value, str):
        share = total * int(value.rstrip("%")) / 100
        count = math.ceil(share) if at_least else math.floor(share)
    else:
        count = value
    return min(max(count, at_least), max(total, at_least))


@dataclass(frozen=True)
class Plan:
    """How one rollout goes: batch sizes, failures it may absorb, the canary's wait."""

    batch_size: int
    max_fail: int = 0
    #: Hosts in the first batch when it is a canary (0: no canary).
    canary: int = 0
    canary_wait: float = 0

    @classmethod
    def from_settings(cls, settings: Any, total: int) -> Plan:
        """The plan ``deployment.*`` settings describe for a fleet of ``total`` hosts."""
        strategy = settings.get("deployment.strategy")
        size = host_count(settings.get("deployment.batch_size"), total, total, at_least=1)
        canary = 0
        if strategy == "blue-green":
            size = total
        elif strategy == "canary":
            canary = host_count(settings.get("deployment.canary"), total, 1, at_least=1)
        return cls(
            batch_size=max(size, 1),
            max_fail=host_count(settings.get("deployment.max_fail"), total, 0),
            canary=canary,
            canary_wait=float(settings.get("deployment.canary_wait") or 0) if canary else 0,
        )

    def batches(self, hosts: Sequence[H]) -> list[list[H]]:
        """``hosts`` in the order they switch: the canary first, then ``batch_size`` at a time."""
        first = [list(hosts[: self.canary])] if self.canary else []
        rest = hosts[self.canary :]
        return first + [
            list(rest[i : i + self.batch_size]) for i in range(0, len(rest), self.batch_size)
        ]


class Fleet(Protocol[H]):
    """What a rollout needs of a multi-host target; each call works on one host."""

    def label(self, host: H) -> str: ...

    def prepare(self, host: H) -> None:
        """Phase 1: the release in place on ``host``, not live."""

    def switch(self, host: H) -> None:
        """Make the release live on ``host``."""

    def settle(self, host: H) -> None:
        """What follows a switch on ``host`` (a hook); a failure fails the host, switched."""

    def check(self, host: H, stage: str) -> bool:
        """Raise HEALTH_CHECK_FAILED if ``host`` is not healthy; False if nothing is checked."""

    def switch_back(self, host: H) -> None:
        """Put back what ``host`` served before :meth:`switch`."""

    def in_parallel(
        self, hosts: Sequence[H], action: Callable[[H], Any]
    ) -> list[tuple[H, Any | DevopsError]]:
        """``action`` on every host at once; a failure comes back as its error."""

    def mark(self, host: H, status: str, error: str | None = None) -> None:
        """Record ``host``'s outcome: prepared, switched, healthy, rolled_back or failed."""

    def note(self, message: str) -> None:
        """A step of the deployment's record."""


class Rollout(Generic[H]):
    """Runs a :class:`Plan` over a :class:`Fleet`, keeping every host's outcome."""

    def __init__(
        self,
        fleet: Fleet[H],
        plan: Plan,
        rollback_on_failure: bool,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fleet = fleet
        self.plan = plan
        self.rollback_on_failure = rollback_on_failure
        self.sleep = sleep
        self.failed: list[tuple[H, DevopsError]] = []
        #: Hosts serving the new release now, and every host that served it at some point.
        self.switched: list[H] = []
        self.ever_switched: list[H] = []
        #: Hosts that could not be switched back: they still serve the new release.
        self.stuck: list[H] = []

    def prepare(self, hosts: Sequence[H], what: str) -> list[H]:
        """Phase 1 on every host; the hosts that have the release (raises beyond max_fail)."""
        ready = []
        for host, result in self.fleet.in_parallel(hosts, self.fleet.prepare):
            if isinstance(result, DevopsError):
                self._fail(host, result)
            else:
                ready.append(host)
                self.fleet.mark(host, "prepared")
        self._stop_if_beyond(what)
        return ready

    def switch(self, hosts: Sequence[H], what: str) -> None:
        """Phase 2: ``hosts`` switched batch by batch, each batch gated before the next."""
        batches = self.plan.batches(hosts)
        for number, batch in enumerate(batches, 1):
            if len(batches) > 1:
                names = ", ".join(self.fleet.label(h) for h in batch)
                self.fleet.note(f"batch {number}/{len(batches)}: {names}")
            healthy = self._gate(batch, self._switch_and_check)
            if number == 1 and self.plan.canary and len(batches) > 1:
                self._stop_if_beyond(what, "the canary")
                if self.plan.canary_wait:
                    self.fleet.note(f"canary: waiting {self.plan.canary_wait:g} s")
                    self.sleep(self.plan.canary_wait)
                self._gate(healthy, lambda h: self.fleet.check(h, "canary"))
            self._stop_if_beyond(
                what, f"batch {number} of {len(batches)}" if len(batches) > 1 else ""
            )

    def undo(self) -> bool:
        """Every host that serves the new release back to what it served; False if none did.

        A host that cannot go back is marked failed, saying so.
        """
        hosts = list(self.switched)
        if hosts:
            self._switch_back(hosts, reason=None)
        return bool(hosts)

    def _switch_and_check(self, host: H) -> bool:
        self.fleet.switch(host)
        # live from here on, whatever follows: a failing hook or check puts it back
        self.switched.append(host)
        self.ever_switched.append(host)
        self.fleet.mark(host, "switched")
        self.fleet.settle(host)
        return self.fleet.check(host, "live")

    def _gate(self, batch: list[H], action: Callable[[H], bool]) -> list[H]:
        """``action`` on each host of ``batch``; a host that fails is put back; returns the rest."""
        passed = []
        for host, result in self.fleet.in_parallel(batch, action):
            if isinstance(result, DevopsError):
                self._fail(host, result)
                if host in self.switched and self.rollback_on_failure:
                    self._switch_back([host], reason=result.message)
            else:
                passed.append(host)
                if result:
                    self.fleet.mark(host, "healthy")
        return passed

    def _fail(self, host: H, error: DevopsError) -> None:
        self.failed.append((host, error))
        self.fleet.mark(host, "failed", error.message)

    def _stop_if_beyond(self, what: str, where: str = "") -> None:
        """Past ``max_fail``: every switched host back (if configured), then the error."""
        if len(self.failed) <= self.plan.max_fail:
            return
        if self.rollback_on_failure and self.switched:
            self._switch_back(list(self.switched), reason=None)
        failed = [(self.fleet.label(h), e) for h, e in self.failed]
        stuck = ", ".join(self.fleet.label(h) for h in self.stuck)
        rolled_back = bool(self.ever_switched) and self.rollback_on_failure and not stuck
        if stuck:
            outcome = f"{stuck} could not be switched back and still serve the new release"
        elif rolled_back:
            outcome = "every switched host went back to its previous release"
        elif self.ever_switched:
            outcome = "the hosts already switched still serve the new release"
        else:
            outcome = "no host was switched, the previous release still serves everywhere"
        raise rollout_error(
            failed,
            what,
            where,
            outcome,
            rolled_back=rolled_back,
        )

    def _switch_back(self, hosts: list[H], reason: str | None) -> None:
        for host, result in self.fleet.in_parallel(hosts, self.fleet.switch_back):
            self.switched.remove(host)
            if isinstance(result, DevopsError):
                self.stuck.append(host)
                self.fleet.mark(host, "failed", f"could not switch back: {result.message}")
            else:
                self.fleet.mark(host, "rolled_back", reason)


def rollout_error(
    failed: list[tuple[str, DevopsError]],
    what: str,
    where: str = "",
    outcome: str | None = None,
    **details: Any,
) -> DevopsError:
    """One error for the hosts that failed: the first one's code and fix, every host named.

    ``what`` ends with a preposition ("switch to release X on"): the message reads
    "Could not <what> <hosts> (<where>); <outcome>: <each host's error>".
    """
    first = failed[0][1]
    if len(failed) == 1 and outcome is None:
        message = first.message
    else:
        message = f"Could not {what} " + ", ".join(label for label, _ in failed)
        message += (f" ({where})" if where else "") + (f"; {outcome}" if outcome else "")
        message += ": " + "; ".join(error.message for _, error in failed)
    return DevopsError(
        first.code,
        message,
        first.fix,
        hosts=[{"host": label, "code": e.code.value, "error": e.message} for label, e in failed],
        **details,
    )
