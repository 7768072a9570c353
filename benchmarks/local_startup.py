"""How long `devops deploy` takes on an unchanged small site on the `local` target.

Issue 14's goal: under 0.35 s from start to finish. Most of that is the interpreter and the
imports, which ``devops --version`` shows alone. The script makes a throwaway project with
a small site, deploys it once, waits until the hash cache may remember the files (a file
changed less than 2 s before a deploy is hashed but not remembered), then times unchanged
deploys::

    .venv/bin/python benchmarks/local_startup.py [--files 50] [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import Finished, Row, run_measured

GOAL_S = 0.35


def _devops(project: Path, *args: str) -> Finished:
    done = run_measured([sys.executable, "-m", "devops_tasks", *args], cwd=project)
    if done.returncode != 0:
        raise RuntimeError(f"devops {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done


def measure(files: int = 50, runs: int = 10) -> tuple[list[Finished], list[Finished]]:
    """``runs`` unchanged deploys of a ``files``-file site, and as many ``devops --version``."""
    with tempfile.TemporaryDirectory(prefix="local-startup-") as scratch:
        project = Path(scratch)
        for n in range(files):
            page = project / "dist" / f"section-{n % 5}" / f"page-{n}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(f"<h1>page {n}</h1>\n" * 20)
        _devops(project, "deploy", "--json")
        time.sleep(2.1)
        _devops(project, "deploy", "--json")  # the cache now remembers every file
        deploys = [_devops(project, "deploy") for _ in range(runs)]
        versions = [_devops(project, "--version") for _ in range(runs)]
    return deploys, versions


def rows(files: int = 50, runs: int = 10) -> list[Row]:
    """The table's row (run_all.py): no peer, a goal in seconds."""
    deploys, _ = measure(files, runs)
    return [
        Row(
            "Local",
            f"unchanged `devops deploy`, {files} files",
            statistics.median(d.seconds for d in deploys),
            "none",
            None,
            ours_mb=max(d.peak_mb for d in deploys),
            peer_note="no peer: a goal of its own",
            max_seconds=GOAL_S,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50, help="files in the site (50)")
    parser.add_argument("--runs", type=int, default=10, help="timed deploys (10)")
    args = parser.parse_args()
    deploys, versions = measure(args.files, args.runs)
    for label, done in (("devops deploy (unchanged)", deploys), ("devops --version", versions)):
        seconds = [d.seconds for d in done]
        print(
            f"{label:<28} median {statistics.median(seconds):.3f} s, "
            f"min {min(seconds):.3f} s, peak {max(d.peak_mb for d in done):.0f} MB"
        )
    median = statistics.median(d.seconds for d in deploys)
    print(f"goal: under {GOAL_S} s: {'met' if median < GOAL_S else 'MISSED'}")


if __name__ == "__main__":
    main()
