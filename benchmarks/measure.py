r"""What every benchmark shares: commands timed with their peak memory, and the rows of the table.

Each ``*_vs_*.py`` script (and ``history_query.py``) runs its commands through ``run_measured``
or ``run_together`` and offers a ``rows(...)`` entry point that returns ``Row``s; ``run_all.py``
gathers those rows into one Markdown table.

Peak memory is the ``ru_maxrss`` that ``wait4`` reports for the command: the largest resident
set of the process or of any child it waited for (a CLI's worker processes included), in MB.
A command is not started from the benchmark's own process but from a small launcher
(``LAUNCHER``, a bare ``python -I -S``): Linux carries the peak RSS of the address space a
process ``exec``\ s from into its ``ru_maxrss``, and Python's ``subprocess`` starts children with
``vfork``, which shares the parent's address space. Started straight from a benchmark that
holds a fake API or boto3, ``/bin/true`` reports the benchmark's own peak (70-300 MB here);
through the launcher it reports the launcher's, about 8 MB, the floor of every figure. The
launcher also times the command itself, so its own start-up is not counted.
"""

from __future__ import annotations

import compileall
import functools
import gc
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAUNCHER = """
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
ended = time.perf_counter()
with open(result, "w") as out:
    out.write(f"{started} {ended} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


@dataclass
class Finished:
    """One command's outcome; ``returncode`` is None when it was killed at its timeout."""

    seconds: float  # wall time from the first start to the last end of its group
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
    """Run ``argv`` to its end (or ``timeout``): wall time, peak RSS and output.

    Raises OSError when the command cannot be started (no such program, not executable).
    """
    return run_together([argv], cwd=cwd, env=env, timeout=timeout)[0]


def run_together(
    argv_sets: Sequence[Sequence[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> list[Finished]:
    """Start every argv at once and wait for all; each outcome carries the group's wall time.

    Output goes to files, not pipes, so no command blocks on a full pipe while another is
    waited for. At ``timeout`` the commands' process groups are killed.
    """
    compile_package()
    # What the command before wrote is put on disk first, not during this one's first fsync.
    os.sync()
    # A fake API answering from this process must not stop for a full collection of what the
    # benchmark left (a spec check's jsonschema errors: 120,000 objects in cycles stalled the
    # Vercel fake 0.25-1 s inside the next timed deploy, whichever tool's): it is collected
    # now, and what lives here is frozen until the commands end. No real API pauses so.
    gc.collect()
    gc.freeze()
    try:
        with tempfile.TemporaryDirectory(prefix="measure-") as scratch:
            names = [Path(scratch) / str(n) for n in range(len(argv_sets))]
            launchers = [
                _launch(argv, name, cwd, env) for argv, name in zip(argv_sets, names, strict=True)
            ]
            killed = _wait_all(launchers, timeout)
            outcomes = [
                _outcome(argv, name, dead)
                for argv, name, dead in zip(argv_sets, names, killed, strict=True)
            ]
    finally:
        gc.unfreeze()
    spans = [(o.started, o.ended) for o in outcomes if o.returncode is not None]
    seconds = max(e for _, e in spans) - min(s for s, _ in spans) if spans else timeout or 0.0
    return [Finished(seconds, o.peak_mb, o.returncode, o.stdout, o.stderr) for o in outcomes]


def peer_runs(name: str, binary: Path | None, install: str, log: Callable[[str], object]) -> bool:
    """Whether the peer CLI ``name`` (a Node program at ``binary``; None: skipped) can be
    timed; if not, ``log`` says why and how to install it, and only devops-tasks is timed."""
    if binary is None:
        reason = "not run (--skip-cli)"
    elif not binary.exists():
        reason = f"not installed (install it with `{install}`)"
    elif shutil.which("node") is None:
        reason = "no `node` on PATH"
    else:
        return True
    log(f"{name}: {reason}; timing devops-tasks alone\n")
    return False


@functools.cache
def compile_package() -> None:
    """Write devops_tasks' bytecode once, as installing a package does.

    An editable install has none until Python writes it on import, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on some machines and in CI images) it never does:
    every command would compile the whole package again, about a tenth of a second, which no
    installed copy pays.
    """
    spec = importlib.util.find_spec("devops_tasks")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)


@dataclass
class _Outcome:
    started: float  # perf_counter values in the launcher (CLOCK_MONOTONIC, machine-wide)
    ended: float
    peak_mb: float
    returncode: int | None
    stdout: str
    stderr: str


def _launch(
    argv: Sequence[str], name: Path, cwd: Path | None, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    with open(f"{name}.out", "wb") as out, open(f"{name}.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, f"{name}.result", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # one process group to kill at the timeout
        )


def _wait_all(launchers: list[subprocess.Popen[bytes]], timeout: float | None) -> list[bool]:
    """Wait for every launcher; at ``timeout``, kill the groups still running. Who was killed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    killed = []
    for launcher in launchers:
        try:
            launcher.wait(None if deadline is None else max(deadline - time.monotonic(), 0))
            killed.append(False)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
            killed.append(True)
    return killed


def _outcome(argv: Sequence[str], name: Path, killed: bool) -> _Outcome:
    stdout = Path(f"{name}.out").read_bytes().decode(errors="replace")
    stderr = Path(f"{name}.err").read_bytes().decode(errors="replace")
    result = Path(f"{name}.result")
    if killed or not result.exists():
        if not killed:  # the launcher could not start it: no such program, not executable
            reason = (stderr.strip().splitlines() or ["the launcher failed"])[-1]
            raise OSError(f"could not start {argv[0]}: {reason}")
        return _Outcome(0.0, 0.0, 0.0, None, stdout, stderr)
    started, ended, maxrss_kb, returncode = result.read_text().split()
    return _Outcome(
        float(started), float(ended), int(maxrss_kb) / 1024, int(returncode), stdout, stderr
    )


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
    max_seconds: float | None = None  # ours at most, where the goal is a time of its own

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
