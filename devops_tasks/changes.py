"""What differs between two sets of files, told the same way for every target.

``deploy --dry-run`` compares the build with what the target serves; ``status`` compares what
the target serves with what its last deployment put there (drift). Both come down to the
paths added, changed and deleted, with the bytes each holds. Each target finds its own
differences (a manifest, a listing, a digest map); this module is the one place that says
them: per kind a count, bytes and a few paths, never more paths in all than asked for, so
that an answer stays small whatever the size of the site.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DRIFT_PATHS", "KINDS", "PLAN_PATHS", "Changes", "Drift", "per_host"]

KINDS = ("added", "changed", "deleted")
#: Paths a dry run names in all (the counts are always whole).
PLAN_PATHS = 20
#: Paths a drift report names in all.
DRIFT_PATHS = 5

#: ``path -> (what identifies its content, its size in bytes or None)``.
Fingerprints = Mapping[str, tuple[Hashable, "int | None"]]


@dataclass(frozen=True)
class Changes:
    """Paths added, changed and deleted, each with its size in bytes (None: not known).

    The size is the new content's for a path added or changed, the old one's for a path
    deleted.
    """

    added: Mapping[str, int | None] = field(default_factory=dict)
    changed: Mapping[str, int | None] = field(default_factory=dict)
    deleted: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def between(cls, before: Fingerprints, after: Fingerprints) -> Changes:
        """What turns ``before`` into ``after``: a path whose fingerprint differs changed."""
        return cls(
            added={p: size for p, (_, size) in after.items() if p not in before},
            changed={
                p: size for p, (mark, size) in after.items() if p in before and before[p][0] != mark
            },
            deleted={p: size for p, (_, size) in before.items() if p not in after},
        )

    @property
    def count(self) -> int:
        return len(self.added) + len(self.changed) + len(self.deleted)

    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in KINDS}

    def summary(self, shown: int, sizes: bool = True) -> dict[str, Any]:
        """Per kind ``{count, bytes, paths}`` (``bytes`` null if a size is unknown, left out
        without ``sizes``), naming at most ``shown`` paths in all, in turn from each kind."""
        groups = {kind: sorted(getattr(self, kind)) for kind in KINDS}
        quotas = _quotas([len(paths) for paths in groups.values()], shown)
        result: dict[str, Any] = {}
        for (kind, paths), quota in zip(groups.items(), quotas, strict=True):
            group: dict[str, Any] = {"count": len(paths)}
            if sizes:
                known = list(getattr(self, kind).values())
                group["bytes"] = None if None in known else sum(known)
            group["paths"] = paths[:quota]
            result[kind] = group
        return result


def _quotas(lengths: list[int], budget: int) -> list[int]:
    """How many of each list to show: one from each in turn, until ``budget`` or none left."""
    quotas = [0] * len(lengths)
    while budget > 0 and any(q < n for q, n in zip(quotas, lengths, strict=True)):
        for index, length in enumerate(lengths):
            if budget > 0 and quotas[index] < length:
                quotas[index] += 1
                budget -= 1
    return quotas


def per_host(found: Sequence[tuple[str, Changes]]) -> tuple[Changes, list[dict[str, Any]] | None]:
    """The changes of several hosts as one (each path once per kind), and each host's counts
    when the hosts differ (None when they all have the same changes)."""
    merged = Changes(
        **{kind: {p: s for _, c in found for p, s in getattr(c, kind).items()} for kind in KINDS}
    )
    if all(changes == found[0][1] for _, changes in found[1:]):
        return merged, None
    return merged, [{"host": host, **changes.counts()} for host, changes in found]


@dataclass(frozen=True)
class Drift:
    """How the files a target serves differ from what its last deployment put there."""

    changes: Changes = field(default_factory=Changes)
    #: The release whose manifest (or digest map) the files were compared with.
    against: str | None = None
    #: Why the target, or part of it, could not be compared (None: all of it was).
    unknown: str | None = None
    #: Per host, when the hosts differ: counts, or ``{"host", "code", "error"}`` for a host
    #: that could not be read.
    hosts: list[dict[str, Any]] | None = None

    def report(self, replaced: bool) -> dict[str, Any]:
        """``status``'s ``drift``: small whatever the site (counts, a few paths).

        ``replaced``: the target serves another release than the last deployment made live,
        which is drift too.
        """
        report: dict[str, Any] = {
            "detected": replaced or self.changes.count > 0,
            "replaced": replaced,
            "against": self.against,
            **self.changes.summary(DRIFT_PATHS, sizes=False),
            "unknown": self.unknown,
        }
        if self.hosts:
            report["hosts"] = self.hosts
        return report
