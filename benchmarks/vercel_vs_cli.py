"""Our Vercel deploy against the official Vercel CLI, on the same fake Vercel API.

Both tools deploy the same generated site (default 5,000 files, about 30 MB; the generator
is ``netlify_vs_cli.make_site``) to the spec-following fake in ``tests/fake_vercel.py``,
started once on 127.0.0.1 in this process. For each tool, on a fresh fake state
(``reset()`` and a new project, so the fake holds no files), the script times, as wall time
of the whole command:

1. the first deploy to production (every file is new, so everything is uploaded);
2. an unchanged re-deploy of the same files (nothing to upload).

It counts, from the fake's own records, the uploads and requests of each deploy, checks that
the deployment each tool names is READY, is the project's production deployment and holds
every file, and prints the medians of ``--runs`` runs and the ratios ours / CLI::

    # once: the Vercel CLI in a scratch directory outside the repository
    mkdir -p /tmp/vercel-cli-bench && cd /tmp/vercel-cli-bench && npm init -y >/dev/null \\
        && npm i -E vercel@58.10.0
    # then, from the repository root, with the project's interpreter
    .venv/bin/python benchmarks/vercel_vs_cli.py [--files 5000] [--megabytes 30] [--runs 1] \\
        [--skip-cli] [--cli-dir /tmp/vercel-cli-bench]

Ours runs as ``python -m devops_tasks deploy --dir SITE --json`` in a throwaway project whose
``.devops/config.json`` names the project (``poll_interval`` 0.05 s), with ``VERCEL_TOKEN``
and ``VERCEL_API_URL`` set. The CLI runs as ``vercel deploy SITE --prod --yes --token T
--api URL`` (``--api`` is the CLI's own flag for its API base URL), with
``VERCEL_ORG_ID``/``VERCEL_PROJECT_ID`` naming the project, ``HOME`` and its working
directory in scratch directories, telemetry off, and a Node preload (``--require``) that
refuses every TCP connection to a host other than this machine.

The CLI also follows the build through ``GET /v3/now/deployments/{id}/events?follow=1``, a
route that is not in the spec: the fake answers 404, which the CLI reports ("Deployment
events polling error") and then polls ``GET /v13/deployments/{id}`` as it does anyway. Its
create requests carry keys the spec does not declare (``env``, ``build``, ``source``,
``version``, and ``mode`` on every file); the fake records those as violations and serves the
requests all the same. The script prints the count of violations per tool. It checks the
requests against the spec after each deploy, outside the timed part: that check costs the
fake about 0.25 s for each create of 5,000 files, and more for a request that breaks the
spec 5,000 times, which would otherwise count against whichever tool sent it.

The fake runs in this script's process; ``measure.run_together`` keeps Python's cyclic garbage
collector from stalling its answers during a timed command (the spec check of the CLI's
requests leaves about 120,000 objects in reference cycles, whose collection took 0.25-1 s in
the middle of the next timed deploy, whichever tool's).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fake_vercel import FakeVercel  # noqa: E402
from measure import Row, peer_runs, run_measured  # noqa: E402
from netlify_vs_cli import (  # noqa: E402
    _children_cpu,
    _median,
    _spread,
    _startup,
    make_site,
    table_rows,
)

CLI_VERSION = "58.10.0"
DEFAULT_CLI_DIR = Path("/tmp/vercel-cli-bench")
TOKEN = "benchtoken0123456789abcdef"  # the CLI refuses a --token with "-" in it
OURS, CLI = "devops-tasks", "vercel-cli"
TARGETS = {"first": 0.5, "again": 0.25}  # ours / CLI, from the issue

# Refuses every TCP connection that does not go to this machine, whatever module makes it.
NODE_GUARD = r"""
const net = require('net');
const connect = net.Socket.prototype.connect;
const local = new Set(['127.0.0.1', 'localhost', '::1']);
net.Socket.prototype.connect = function (...args) {
  let options = Array.isArray(args[0]) ? args[0][0] : args[0];
  const host = options !== null && typeof options === 'object' ? options.host : args[1];
  const path = options !== null && typeof options === 'object' ? options.path : undefined;
  if (!path && host !== undefined && !local.has(host)) {
    process.stderr.write(`[benchmark] refused a connection to ${host}\n`);
    process.nextTick(() => this.destroy(new Error(`benchmark: refused ${host}`)));
    return this;
  }
  return connect.apply(this, args);
};
"""
_DEPLOYMENT_ID = re.compile(r"/_deployments/(dpl_[A-Za-z0-9]+)")


@dataclass
class Sample:
    """One deploy: wall time, what the fake saw, and whether it really went live."""

    seconds: float
    uploads: int = 0
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    fake_cpu: float = 0.0
    client_cpu: float = 0.0
    peak_mb: float = 0.0  # peak RSS of the deploying process (or a child it waited for)
    error: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def run_deploy(
    fake: FakeVercel,
    tool: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    project_id: str,
    expected: set[str],
    timeout: float,
) -> Sample:
    first_request, first_upload = len(fake.requests), len(fake.uploads)
    cpu, child_cpu = time.process_time(), _children_cpu()
    try:
        done = run_measured(cmd, cwd=cwd, env=env, timeout=timeout)
        seconds, peak_mb = done.seconds, done.peak_mb
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except OSError as exc:
        seconds, peak_mb, returncode, stdout, stderr = 0.0, 0.0, None, "", str(exc)
    sample = Sample(
        seconds,
        fake_cpu=time.process_time() - cpu,
        client_cpu=_children_cpu() - child_cpu,
        peak_mb=peak_mb,
    )
    sent = fake.requests[first_request:]
    sample.uploads = len(fake.uploads) - first_upload
    sample.requests = len(sent)
    sample.by_route = Counter(f"{r.method} {r.route or r.path.split('/dpl_')[0]}" for r in sent)
    sample.violations = len(fake.violations_of(sent))
    if returncode != 0:
        sample.error = "timed out" if returncode is None else f"exit status {returncode}"
    else:
        sample.error = _check_live(fake, tool, stdout, project_id, expected)
    if sample.error:
        tail = "\n".join((stdout + "\n" + stderr).strip().splitlines()[-25:])
        sample.detail = (
            tail + "\n" + "\n".join(f"  {r.status} {r.method} {r.path}" for r in sent[:30])
        )
    return sample


def _check_live(
    fake: FakeVercel, tool: str, stdout: str, project_id: str, expected: set[str]
) -> str | None:
    """None when the deployment the tool names is READY, in production and complete."""
    if tool == OURS:
        data = json.loads(stdout)
        if not data.get("success"):
            return f"success is false: {data.get('error')}"
        deployment_id = data.get("platform_deploy_id")
    else:
        found = _DEPLOYMENT_ID.search(stdout)
        deployment_id = found.group(1) if found else None
    deployment = fake.deployments.get(deployment_id or "")
    if deployment is None:
        return f"the fake has no deployment {deployment_id!r}"
    if deployment["readyState"] != "READY":
        return f"{deployment_id} is {deployment['readyState']}"
    if fake.production(project_id) != deployment_id:
        return f"{deployment_id} is not the project's production deployment"
    missing = expected - set(fake.deployment_files(deployment_id))
    return f"{deployment_id} lacks {len(missing)} files" if missing else None


def _base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VERCEL_", "DEVOPS_", "NOW_")) and k != "NODE_OPTIONS"
    }
    env.update(HOME=str(home), NO_COLOR="1")
    return env


def ours(fake: FakeVercel, scratch: Path, run: int, project_id: str, site: Path, home: Path):
    cwd = scratch / f"project-{run}"
    (cwd / ".devops").mkdir(parents=True)
    config = {"platform": "vercel", "vercel": {"project": project_id, "poll_interval": 0.05}}
    (cwd / ".devops" / "config.json").write_text(json.dumps({"version": 1, **config}))
    env = _base_env(home)
    env.update(VERCEL_TOKEN=fake.token, VERCEL_API_URL=fake.api_url)
    cmd = [sys.executable, "-m", "devops_tasks", "deploy", "--dir", str(site), "--json"]
    return cmd, env, cwd


def cli_binary(cli_dir: Path) -> Path:
    return cli_dir / "node_modules" / ".bin" / "vercel"


def cli_env(fake: FakeVercel, home: Path, guard: Path, project: dict) -> dict[str, str]:
    env = _base_env(home)
    env.update(
        VERCEL_ORG_ID=project["accountId"],
        VERCEL_PROJECT_ID=project["id"],
        VERCEL_TELEMETRY_DISABLED="1",
        NO_UPDATE_NOTIFIER="1",
        CI="1",
        NODE_OPTIONS=f"--require {guard}",
    )
    return env


def cli(fake, scratch, run, project, site, home, guard, cli_dir):  # type: ignore[no-untyped-def]
    cwd = scratch / f"cli-{run}"
    cwd.mkdir()
    cmd = [
        str(cli_binary(cli_dir)),
        "deploy",
        str(site),
        "--prod",
        "--yes",
        "--token",
        fake.token,
        "--api",
        fake.api_url,
    ]
    return cmd, cli_env(fake, home, guard, project), cwd


def report(results: dict[str, dict[str, list[Sample]]], startup: dict[str, float]) -> int:
    print()
    header = f"{'tool':<14}{'first deploy s':>24}{'re-deploy s':>20}{'uploads':>14}{'requests':>14}"
    print(header)
    print("-" * len(header))
    medians: dict[str, dict[str, float]] = {}
    failures = 0
    for tool, phases in results.items():
        good = {phase: [s for s in samples if s.ok] for phase, samples in phases.items()}
        failures += sum(not s.ok for samples in phases.values() for s in samples)
        medians[tool] = {p: _median([s.seconds for s in g]) for p, g in good.items() if g}
        cells = [
            f"{medians[tool][p]:.2f}{_spread([s.seconds for s in good[p]]).replace('-', '–')}"
            if p in medians[tool]
            else "failed"
            for p in ("first", "again")
        ]
        counts = [
            " / ".join(str(_median([getattr(s, a) for s in good[p]])) for p in ("first", "again"))
            if good["first"] and good["again"]
            else "-"
            for a in ("uploads", "requests")
        ]
        print(f"{tool:<14}{cells[0]:>24}{cells[1]:>20}{counts[0]:>14}{counts[1]:>14}")
    print("(uploads and requests: first deploy / re-deploy; times are medians of the runs)")
    if CLI in medians and OURS in medians:
        for phase, name in (("first", "first deploy"), ("again", "re-deploy")):
            if phase in medians[CLI] and phase in medians[OURS]:
                ratio = medians[OURS][phase] / medians[CLI][phase]
                verdict = "meets" if ratio <= TARGETS[phase] else "MISSES"
                print(
                    f"ours / vercel-cli, {name}: {ratio:.2f}x ({verdict} the target of "
                    f"{TARGETS[phase]}x)"
                )
    print("\ndetails (medians):")
    for tool, phases in results.items():
        if tool in startup:
            print(f"  {tool:<14} startup (--version) {startup[tool]:.2f} s")
        for phase, samples in phases.items():
            good = [s for s in samples if s.ok]
            if not good:
                continue
            routes: Counter[str] = Counter()
            for s in good:
                routes.update(s.by_route)
            per_run = ", ".join(f"{k} x{v / len(good):g}" for k, v in sorted(routes.items()))
            print(
                f"  {tool:<14} {phase:<6} client CPU {_median([s.client_cpu for s in good]):.2f} s,"
                f" fake CPU {_median([s.fake_cpu for s in good]):.2f} s,"
                f" spec violations {_median([s.violations for s in good]):g}; {per_run}"
            )
    return failures


INSTALL = "mkdir -p {cli_dir} && cd {cli_dir} && npm init -y && npm i -E vercel@" + CLI_VERSION


def measure(
    files: int = 5000,
    megabytes: float = 30.0,
    runs: int = 1,
    cli_dir: Path | None = DEFAULT_CLI_DIR,
    seed: int = 1,
    timeout: float = 900.0,
    log: Callable[[str], object] = print,
) -> tuple[dict[str, dict[str, list[Sample]]], dict[str, float]]:
    """Both deploys of each tool, ``runs`` times: samples by tool and phase, and start-up times.

    The CLI is left out when ``cli_dir`` is None (``--skip-cli``), holds no CLI, or there is
    no ``node``.
    """
    tools = [OURS]
    binary = None if cli_dir is None else cli_binary(cli_dir)
    if peer_runs(CLI, binary, INSTALL.format(cli_dir=cli_dir), log):
        tools.append(CLI)

    scratch = Path(tempfile.mkdtemp(prefix="vercel-bench-"))
    fake = FakeVercel(token=TOKEN)
    try:
        fake.start()
        site = make_site(scratch / "site", files, megabytes, seed)
        expected = set(site.paths)
        guard = scratch / "guard.cjs"
        guard.write_text(NODE_GUARD)
        home = scratch / "home"
        home.mkdir()
        log(
            f"site: {len(site.paths)} files, {site.total_bytes / 1e6:.1f} MB "
            f"({site.binaries} binaries, {site.duplicates} duplicate contents, "
            f"{site.directories} directories), written in {site.seconds:.1f} s"
        )
        log(
            f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"fake Vercel API at {fake.base} (threads in this process)"
        )
        startup: dict[str, float] = {}
        startup[OURS], version = _startup(
            [sys.executable, "-m", "devops_tasks", "--version"], _base_env(home), scratch
        )
        log(f"devops-tasks: {version}")
        if cli_dir is not None and CLI in tools:
            startup[CLI], version = _startup(
                [str(cli_binary(cli_dir)), "--version"],
                cli_env(fake, home, guard, {"accountId": "", "id": ""}),
                scratch,
            )
            log(f"vercel-cli: {version}")

        results: dict[str, dict[str, list[Sample]]] = {
            tool: {"first": [], "again": []} for tool in tools
        }
        for run in range(1, runs + 1):
            for tool in tools:
                fake.reset()  # no stored files: the first deploy uploads everything
                fake.check_requests = False  # checked after each deploy, outside its time
                project = fake.add_project(f"bench-{'ours' if tool == OURS else 'cli'}-{run}")
                if tool == OURS:
                    cmd, env, cwd = ours(fake, scratch, run, project["id"], site.root, home)
                else:
                    cmd, env, cwd = cli(
                        fake, scratch, run, project, site.root, home, guard, cli_dir
                    )
                for phase in ("first", "again"):
                    sample = run_deploy(fake, tool, cmd, env, cwd, project["id"], expected, timeout)
                    results[tool][phase].append(sample)
                    log(
                        f"run {run} {tool:<13} {phase:<6} {sample.seconds:7.2f} s  "
                        f"{sample.uploads:5d} uploads  {sample.requests:5d} requests  "
                        f"{'ok' if sample.ok else 'FAILED: ' + str(sample.error)}"
                    )
                    if not sample.ok:
                        log(sample.detail)
                        break
        return results, startup
    finally:
        fake.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def rows(
    files: int = 5000,
    megabytes: float = 30.0,
    runs: int = 1,
    cli_dir: Path = DEFAULT_CLI_DIR,
    log: Callable[[str], object] = print,
) -> list[Row]:
    """The table's rows (run_all.py): first and unchanged deploys, ours and the CLI's."""
    cli_dir = cli_dir.resolve()
    results, _ = measure(files, megabytes, runs, cli_dir, log=log)
    missing = (
        "no `node` on PATH"
        if cli_binary(cli_dir).exists()
        else f"not installed: `{INSTALL.format(cli_dir=cli_dir)}`"
    )
    return table_rows(
        "Vercel",
        results,
        CLI,
        {
            "first": f"first deploy, {files:,} files / {megabytes:g} MB",
            "again": "unchanged re-deploy",
        },
        TARGETS,
        missing,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="files in the site (5000)")
    parser.add_argument("--megabytes", type=float, default=30.0, help="site size in MB (30)")
    parser.add_argument("--runs", type=int, default=1, help="runs per tool (1)")
    parser.add_argument("--skip-cli", action="store_true", help="time only devops-tasks")
    parser.add_argument(
        "--cli-dir",
        type=Path,
        default=DEFAULT_CLI_DIR,
        help=f"where `npm i -E vercel@{CLI_VERSION}` was run ({DEFAULT_CLI_DIR})",
    )
    parser.add_argument("--seed", type=int, default=1, help="site content seed (1)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per deploy (900)")
    args = parser.parse_args(argv)
    if args.files < 10 or args.runs < 1 or args.megabytes <= 0:
        parser.error("--files must be >= 10, --runs >= 1 and --megabytes > 0")
    if importlib.util.find_spec("devops_tasks") is None:
        parser.error(f"{sys.executable} cannot import devops_tasks: use the project's venv")

    results, startup = measure(
        args.files,
        args.megabytes,
        args.runs,
        None if args.skip_cli else args.cli_dir.resolve(),
        args.seed,
        args.timeout,
        log=lambda line: print(line, flush=True),
    )
    failures = report(results, startup)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
