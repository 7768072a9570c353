"""What every benchmark shares: commands timed with their peak memory, and the rows of the table.

Each ``*_vs_*.py`` script (and ``history_query.py``) runs its commands through ``run_measured``
or ``run_together`` and offers a ``rows(...)`` entry point that returns ``Row``s; ``run_all.py``
gathers those rows into one Markdown table.

Peak memory is the ``ru_maxrss`` that ``wait4`` reports for the command: the largest resident
set of the process or of any child it waited for (a CLI's worker processes included), in MB.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


@dataclass
class Finished:
    """One command's outcome; ``returncode`` is None when it was killed at its timeout."""

    seconds: float  # wall time until the last command of its group ended
    peak_mb: float
    returncode: int | None
    stdout: str
    stderr: str


def run_measured(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Finished:
    """Run ``argv`` to its end (or ``timeout``): wall time, peak RSS and output."""
    return run_together([argv], cwd=cwd, env=env, timeout=timeout)[0]


def run_together(
    argv_sets: Sequence[Sequence[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> list[Finished]:
    """Start every argv at once and wait for all; each outcome carries the group's wall time.

    Output goes to temporary files, not pipes, so no command blocks on a full pipe while
    another is waited for; ``wait4`` reaps each one and reports its peak RSS.
    """
    with contextlib.ExitStack() as stack:
        files = [
            (
                stack.enter_context(tempfile.TemporaryFile()),
                stack.enter_context(tempfile.TemporaryFile()),
            )
            for _ in argv_sets
        ]
        deadline = None if timeout is None else time.monotonic() + timeout
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
            for argv, (out, err) in zip(argv_sets, files, strict=True)
        ]
        waited = [_wait(proc, deadline) for proc in procs]
        seconds = time.perf_counter() - started
        return [
            Finished(seconds, peak_mb, returncode, _read(out), _read(err))
            for (returncode, peak_mb), (out, err) in zip(waited, files, strict=True)
        ]


def _wait(proc: subprocess.Popen[bytes], deadline: float | None) -> tuple[int | None, float]:
    """Reap ``proc`` (killed at ``deadline``): exit code, or None if killed; peak RSS in MB."""
    killed = False
    if deadline is not None:
        pidfd = os.pidfd_open(proc.pid)
        try:
            remaining = max(deadline - time.monotonic(), 0.0)
            if not select.select([pidfd], [], [], remaining)[0]:
                proc.kill()
                killed = True
        finally:
            os.close(pidfd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return (None if killed else proc.returncode), usage.ru_maxrss / 1024


def _read(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")


@dataclass
class Row:
    """One line of the table: our figure against one peer's, for one scenario.

    A figure that could not be measured is None, and its note says why ("not installed: how
    to install it", "failed: ..."); a figure is never made up.
    """

    target: str
    scenario: str
    ours_s: float | None
    peer: str  # "none" when no other tool does this job
    peer_s: float | None
    ours_mb: float | None = None
    peer_mb: float | None = None
    ours_note: str = ""
    peer_note: str = ""
    max_ratio: float | None = None  # ours / peer time at most, from the issues
    max_memory_ratio: float | None = None  # ours / peer peak memory at most

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
