"""benchmarks/run_all.py: one table of every target against its peer; a missing peer is marked.

One quick run (small sizes) of the two cheapest targets: history, which has no peer, and
Vercel with its CLI pointed at an empty directory, so the peer is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO

RUN_ALL = REPO / "benchmarks" / "run_all.py"
COLUMNS = [
    "target",
    "scenario",
    "ours (s)",
    "peer",
    "peer (s)",
    "ratio",
    "ours peak MB",
    "peer peak MB",
    "target ratio",
]


@dataclass
class Table:
    exit_code: int
    text: str

    @property
    def rows(self) -> list[dict[str, str]]:
        """The table's rows as {column: cell}, from the line after the header's rule."""
        lines = [line for line in self.text.splitlines() if line.startswith("|")]
        header = _cells(lines[0])
        assert header == COLUMNS
        return [dict(zip(header, _cells(line), strict=True)) for line in lines[2:]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory: pytest.TempPathFactory) -> Table:
    scratch = tmp_path_factory.mktemp("run-all")
    no_cli = scratch / "no-vercel-cli"
    no_cli.mkdir()
    output = scratch / "results.md"
    argv = [sys.executable, str(RUN_ALL), "--quick", "--only", "history,vercel"]
    done = subprocess.run(
        [*argv, "--vercel-cli-dir", str(no_cli), "--output", str(output)],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert output.exists(), done.stderr
    return Table(done.returncode, output.read_text())


def _figure(cell: str) -> float:
    return float(cell.split()[0])


def test_the_table_opens_with_the_date_in_utc_and_the_machine(quick_table: Table) -> None:
    first = quick_table.text.splitlines()[0]
    assert re.match(
        r"Measured \d{4}-\d\d-\d\d \d\d:\d\d UTC on \d+ CPUs \(.+\), Python 3\.\d+\.\d+", first
    )


def test_every_row_has_the_nine_columns_and_the_targets_asked_for(quick_table: Table) -> None:
    assert [(row["target"], row["peer"]) for row in quick_table.rows] == [
        ("History", "none"),
        ("History", "none"),
        ("Vercel", "vercel-cli"),
        ("Vercel", "vercel-cli"),
    ]


def test_a_missing_peer_is_marked_with_how_to_install_it_and_has_no_figure(
    quick_table: Table,
) -> None:
    for row in (r for r in quick_table.rows if r["target"] == "Vercel"):
        assert row["peer (s)"].startswith("not installed: ")
        assert "npm i -E vercel@58.10.0" in row["peer (s)"]
        assert (row["ratio"], row["peer peak MB"]) == ("-", "-")
        assert _figure(row["ours (s)"]) > 0 and _figure(row["ours peak MB"]) > 8


def test_a_target_ratio_without_a_peer_figure_is_shown_but_not_judged(
    quick_table: Table,
) -> None:
    goals = [row["target ratio"] for row in quick_table.rows if row["target"] == "Vercel"]
    assert goals == ["≤0.5", "≤0.25"]


def test_history_has_no_peer_and_shows_our_figure(quick_table: Table) -> None:
    cli = quick_table.rows[0]
    assert cli["scenario"].startswith("`devops history --limit 10 --json`, 200 records")
    assert cli["peer (s)"].startswith("no peer")
    assert _figure(cli["ours (s)"]) > 0 and _figure(cli["ours peak MB"]) > 8
    assert (cli["ratio"], cli["target ratio"]) == ("-", "-")


def test_missing_peers_alone_do_not_fail_the_run(quick_table: Table) -> None:
    assert quick_table.exit_code == 0


def test_an_unknown_target_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--only", "history,heroku", "--output", "-"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "heroku" in done.stderr and "netlify, vercel, s3, ssh, history" in done.stderr
