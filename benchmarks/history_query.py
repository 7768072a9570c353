"""How fast `devops history` answers from a large deployment history.

Builds a throwaway project holding N deployment records (default 10,000) written exactly as
``DeploymentHistory.save`` writes them, then times the read paths the CLI uses::

    /tmp/venv/bin/python benchmarks/history_query.py [--records 10000] [--repeat 20] [--cli-runs 5]

Setup does not call ``save()`` N times (that rewrites the whole index on every call, which
is O(N^2)); instead each record is written with the module's own ``Deployment.to_dict`` and
``durable.write_json`` (the same call ``save`` makes), and the index is then produced once
by ``DeploymentHistory.rebuild_index()``, i.e. by the module itself from those records.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from measure import Row, run_measured

from devops_tasks.durable import write_json
from devops_tasks.history import Deployment, DeploymentHistory, Status
from devops_tasks.project import Project

QUERY = "query(limit=10)"
CLI = "devops history --limit 10 --json  [subprocess]"

ENVIRONMENTS = ("production", "staging", "preview")
PLATFORMS = ("local", "ssh", "netlify", "aws")


def make_deployments(count: int, seed: int = 1, end_ms: int | None = None) -> list[Deployment]:
    """``count`` finished deployments, oldest first, one a minute up to ``end_ms`` (now)."""
    rng = random.Random(seed)
    start_ms = (end_ms or int(time.time() * 1000)) - count * 60_000
    deployments = []
    for n in range(count):
        epoch_ms = start_ms + n * 60_000
        action = "rollback" if rng.random() < 0.05 else "deploy"
        status = rng.choices(
            (Status.SUCCESS, Status.FAILED, Status.ROLLED_BACK), weights=(85, 10, 5)
        )[0]
        deployment = Deployment(
            id=f"dep_{epoch_ms}_{rng.getrandbits(32):08x}",
            platform=rng.choice(PLATFORMS),
            environment=rng.choices(ENVIRONMENTS, weights=(50, 35, 15))[0],
            action=action,
            timestamp=datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),  # as history._now()
            status=status,
            version=f"v1.{n // 100}.{n % 100}",
            actor="deployer@ci",
            release=f"r{n:06d}",
            url="https://example.com/",
            duration_ms=rng.randint(800, 90_000),
            files_deployed=rng.randint(10, 400),
            bytes_uploaded=rng.randint(10_000, 5_000_000),
            rollback_available=n > 0,
        )
        deployment.step("start", f"{deployment.files_deployed} files from dist")
        if status is Status.FAILED:
            deployment.error = {
                "error": "upload refused",
                "code": "DEPLOY_FAILED",
                "fix": "Check the target's credentials.",
            }
            deployment.step("failed", "DEPLOY_FAILED: upload refused")
        else:
            deployment.step("done", "deployment is live")
        deployments.append(deployment)
    return deployments


def build_history(
    root: Path, count: int, end_ms: int | None = None
) -> tuple[DeploymentHistory, float, float]:
    """Write the records and the index; returns the history and both setup times in s."""
    history = DeploymentHistory(Project(root))
    deployments = make_deployments(count, end_ms=end_ms)
    started = time.perf_counter()
    # write_json fsyncs each file and the directory; threads overlap those waits.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda d: write_json(history._record_path(d.id), d.to_dict()), deployments))
    records_s = time.perf_counter() - started
    started = time.perf_counter()
    indexed = history.rebuild_index()
    index_s = time.perf_counter() - started
    if indexed != count:
        raise SystemExit(f"setup failed: the index holds {indexed} of {count} records")
    return history, records_s, index_s


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(min ms, median ms, last result) of ``repeat`` calls of ``fn``."""
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return min(samples), statistics.median(samples), result


def run_cli(args: list[str], cwd: Path, runs: int) -> tuple[float, float, str, float]:
    """(min ms, median ms, last stdout, peak MB) of ``runs`` runs of ``python -m devops_tasks``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVOPS")}
    samples, stdout, peak_mb = [], "", 0.0
    for _ in range(runs):
        done = run_measured(
            [sys.executable, "-m", "devops_tasks", *args], cwd=cwd, env=env, timeout=120
        )
        samples.append(done.seconds * 1000)
        peak_mb = max(peak_mb, done.peak_mb)
        if done.returncode != 0:
            raise SystemExit(f"devops {' '.join(args)} failed: {done.stdout}{done.stderr}")
        stdout = done.stdout
    return min(samples), statistics.median(samples), stdout, peak_mb


@dataclass
class Measured:
    """What one run of the benchmark found; ``rows`` are (label, min ms, median ms, runs)."""

    records: int
    index_kib: float
    records_s: float
    index_s: float
    rows: list[tuple[str, float, float, str]]
    cli_peak_mb: float


def measure(records: int, repeat: int, cli_runs: int) -> Measured:
    """Build a history of ``records`` records in a temporary project and time its reads."""
    with tempfile.TemporaryDirectory(prefix="devops-bench-") as tmp:
        root = Path(tmp)
        history, records_s, index_s = build_history(root, records)
        index_kib = history.index_path.stat().st_size / 1024

        rows: list[tuple[str, float, float, str]] = []

        def bench(label: str, fn: Callable[[], Any], check: Callable[[Any], bool]) -> None:
            best, median, result = timed(fn, repeat)
            if not check(result):
                raise SystemExit(f"{label}: unexpected result {result!r}")
            rows.append((label, best, median, f"x{repeat}"))

        bench(
            QUERY,
            lambda: history.query(limit=10),
            lambda r: len(r) == min(10, records),
        )
        bench(
            "query(environment='production', status='success', limit=10)",
            lambda: history.query(environment="production", status="success", limit=10),
            lambda r: all(e["environment"] == "production" and e["status"] == "success" for e in r),
        )
        bench(
            "latest(environment='production')",
            lambda: history.latest(environment="production"),
            lambda r: r is None or r["environment"] == "production",
        )
        bench(
            "query(environment='nowhere')  [full scan, no match]",
            lambda: history.query(environment="nowhere"),
            lambda r: r == [],
        )

        best, median, stdout, peak_mb = run_cli(
            ["history", "--limit", "10", "--json"], root, cli_runs
        )
        shown = json.loads(stdout)
        if not shown["success"] or shown["count"] != min(10, records):
            raise SystemExit(f"devops history returned {stdout!r}")
        rows.append((CLI, best, median, f"x{cli_runs}"))
        best, median, _, _ = run_cli(["--version"], root, cli_runs)
        rows.append(("devops --version  [subprocess, startup only]", best, median, f"x{cli_runs}"))
    return Measured(records, index_kib, records_s, index_s, rows, peak_mb)


def rows(records: int = 10_000, repeat: int = 20, cli_runs: int = 5) -> list[Row]:
    """The table's rows (run_all.py): the CLI end to end and the library's query; no peer."""
    measured = measure(records, repeat, cli_runs)
    median_s = {label: median / 1000 for label, _, median, _ in measured.rows}
    no_peer = "no peer: no other tool reads this history"
    return [
        Row(
            "History",
            f"`devops history --limit 10 --json`, {records:,} records",
            median_s[CLI],
            "none",
            None,
            ours_mb=measured.cli_peak_mb,
            peer_note=no_peer,
        ),
        Row(
            "History",
            f"`query(limit=10)` in-process, {records:,} records",
            median_s[QUERY],
            "none",
            None,
            peer_note=no_peer,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000, help="records to create")
    parser.add_argument("--repeat", type=int, default=20, help="repetitions of each query")
    parser.add_argument("--cli-runs", type=int, default=5, help="runs of the CLI command")
    args = parser.parse_args()
    measured = measure(args.records, args.repeat, args.cli_runs)

    print(
        f"devops-tasks history benchmark: {args.records} records, "
        f"index.json {measured.index_kib:,.0f} KiB, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPU(s)"
    )
    print(
        f"setup: records written in {measured.records_s:.1f} s, "
        f"index rebuilt from them in {measured.index_s * 1000:.0f} ms"
    )
    width = max(len(row[0]) for row in measured.rows)
    print(f"{'operation':<{width}}  {'min ms':>8}  {'median ms':>9}  runs")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 9}  ----")
    for label, best, median, runs in measured.rows:
        print(f"{label:<{width}}  {best:8.2f}  {median:9.2f}  {runs}")


if __name__ == "__main__":
    main()
