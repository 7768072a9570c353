"""Our Netlify deploy against the official netlify-cli, side by side on two Netlify APIs.

Both tools deploy the same generated site (default 5,000 files, about 30 MB), in one run, to
each of these servers in turn (``--server``, repeatable):

- ``project``: the project's spec-following fake, ``tests/fake_netlify.py``, served from
  threads of this process (it records every request and checks it against Netlify's OpenAPI
  description);
- ``independent``: ``tests/independent_netlify.mjs``, a Node server written from the OpenAPI
  description and netlify-cli's own client, apart from the project's fake and its client
  (started here, on 127.0.0.1);
- a URL: any Netlify-compatible API already running (a reviewer's own fake, say), with
  ``--token``. It is reached only through Netlify's API: a new site per tool and run
  (``POST /sites``), and whether a deploy went live is asked of it (the deploy ``ready``, the
  site's ``published_deploy``, ``GET /sites/{id}/files`` listing every path, where the
  server has that route). Request counts come from its ``GET /__stats`` if it has one,
  else they show as ``?``.

For each tool, on a fresh state (the server's reset where it has one, and a new site, so no
file is known yet), the script times, as wall time of the whole command:

1. the first deploy (every file is new, so everything is uploaded);
2. an unchanged re-deploy of the same files to the same site (nothing to upload).

It also counts the file uploads and the HTTP requests each deploy made, and prints per server
the medians of ``--runs`` runs and the ratios netlify-cli / ours. With ``--scale FILES/MB``
(run_all.py: 20000/80) it then times our unchanged re-deploy of that larger site on each
server with a warm hash cache (after a first deploy and one untimed re-deploy), against
issue 14's goal of 0.8 s::

    # once: netlify-cli in a scratch directory outside the repository
    mkdir -p /tmp/netlify-cli-bench && cd /tmp/netlify-cli-bench && npm init -y >/dev/null \\
        && npm i -E netlify-cli@27.10.2
    # then, from the repository root, with the project's interpreter
    /tmp/venv/bin/python benchmarks/netlify_vs_cli.py [--files 5000] [--megabytes 30] \\
        [--runs 1] [--skip-cli] [--cli-dir /tmp/netlify-cli-bench] \\
        [--server project --server independent --server URL --token T] [--scale 20000/80]

Ours runs as ``python -m devops_tasks deploy --dir SITE --json`` in a throwaway project
whose ``.devops/config.json`` names the site (``poll_interval`` 0.05 s). netlify-cli runs as
``netlify deploy --dir SITE --prod --no-build --json``, with ``HOME`` and its working
directory in scratch directories and telemetry pointed at the server.

netlify-cli (through ``@netlify/config``) also fetches the site's extensions from
``https://api.netlifysdk.com``, a host that ``NETLIFY_API_URL`` does not change. Without
that answer its config resolution fails, it falls back to an offline config, and it then
looks the site up by *name* (``GET /sites?name=<NETLIFY_SITE_ID>``), keeping only a site
whose ``name`` equals the id it was given. Against a site named anything but its own
id, that ends with "Project not found. Please rerun "netlify link"". The script therefore
preloads a tiny ES module (``node --import``) that answers those ``fetch`` calls itself with
no extension installed, and refuses any other ``fetch`` that would leave 127.0.0.1. With it,
netlify-cli takes the path it takes against the real API, on any server.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from measure import Row, peer_runs, run_measured  # noqa: E402
from netlify_servers import HttpNetlify, NetlifyServer, ServerError, serving  # noqa: E402

CLI_VERSION = "27.10.2"
DEFAULT_CLI_DIR = Path("/tmp/netlify-cli-bench")
TOKEN = "bench-token-0123456789abcdef"
OURS, CLI = "devops-tasks", "netlify-cli"
TARGETS = {"first": 0.35, "again": 0.1}  # ours / netlify-cli at most, from issue 14

# A preload for netlify-cli's Node process: the extensions API (``api.netlifysdk.com``, a host
# ``NETLIFY_API_URL`` does not move) is answered here with no extension installed, as it is for
# a site that has none, and any other fetch() to a host that is not 127.0.0.1 is refused
# (nothing leaves the machine).
NODE_PRELOAD = r"""
const original = globalThis.fetch;
const SDK = 'https://api.netlifysdk.com/';
globalThis.fetch = (input, init) => {
  const isReq = typeof input !== 'string' && !(input instanceof URL);
  const url = isReq ? input.url : String(input);
  if (url.startsWith(SDK)) {
    const none = new Response('[]', {status: 200, headers: {'content-type': 'application/json'}});
    return Promise.resolve(none);
  }
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost') {
    process.stderr.write(`[benchmark] refused fetch to ${url}\n`);
    return Promise.reject(new Error(`benchmark: refused fetch to ${host}`));
  }
  return original(input, init);
};
"""


# ---------------------------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------------------------

WORDS = [
    "deploy",
    "site",
    "netlify",
    "static",
    "page",
    "layout",
    "header",
    "footer",
    "section",
    "article",
    "grid",
    "flex",
    "button",
    "link",
    "image",
    "caption",
    "table",
    "list",
    "item",
    "nav",
    "menu",
    "search",
    "result",
    "price",
    "product",
    "cart",
    "checkout",
    "account",
    "profile",
    "settings",
    "docs",
    "guide",
    "tutorial",
    "release",
    "note",
    "blog",
    "post",
    "author",
    "date",
    "tag",
    "category",
    "index",
    "archive",
    "feed",
    "theme",
    "colour",
    "font",
    "weight",
    "margin",
    "padding",
    "border",
    "radius",
    "shadow",
    "hover",
    "focus",
    "active",
    "render",
    "hydrate",
    "bundle",
    "chunk",
]
SECTIONS = ("blog", "docs", "products", "news", "guides", "help")
TEXT_KINDS = (("html", 50), ("js", 20), ("css", 14), ("json", 8), ("svg", 8))
BINARY_KINDS = (
    ("img/photos", "jpg"),
    ("img/hero", "webp"),
    ("img/screens", "png"),
    ("fonts", "woff2"),
    ("media", "mp4"),
)
TEXT_MIN, TEXT_MAX = 1024, 10 * 1024
BIN_MIN, BIN_MAX = 100 * 1024, 1024 * 1024
DUPLICATE_SHARE = 0.01  # the same bytes at a second path (shared assets copied around)


@dataclass
class Site:
    root: Path
    paths: list[str]
    total_bytes: int
    binaries: int
    duplicates: int
    directories: int
    seconds: float


def _log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _text_path(rng: random.Random, kind: str, n: int) -> str:
    if kind == "html":
        depth = rng.randint(1, 4)
        parts = [rng.choice(SECTIONS)] + [f"d{rng.randrange(6)}" for _ in range(depth - 1)]
        return "/".join(parts) + f"/page-{n}.html"
    if kind == "js":
        return f"assets/js/chunks/{n % 16:02d}/chunk-{n}.js"
    if kind == "css":
        return f"assets/css/{rng.choice(SECTIONS)}/style-{n}.css"
    if kind == "json":
        return f"data/{rng.choice(SECTIONS)}/{n}.json"
    return f"img/icons/set-{n % 8}/icon-{n}.svg"


def _text_content(rng: random.Random, corpus: str, kind: str, path: str, size: int) -> bytes:
    head = {
        "html": f"<!doctype html>\n<!-- {path} -->\n<html><body><p>",
        "js": f"/* {path} */\nexport const text = `",
        "css": f'/* {path} */\n.c{{content:"',
        "json": f'{{"path": "{path}", "text": "',
        "svg": f'<svg xmlns="http://www.w3.org/2000/svg"><!-- {path} --><text>',
    }[kind]
    tail = {
        "html": "</p></body></html>\n",
        "js": "`;\n",
        "css": '"}\n',
        "json": '"}\n',
        "svg": "</text></svg>\n",
    }[kind]
    room = max(size - len(head) - len(tail), 0)
    start = rng.randrange(len(corpus) - room)
    return (head + corpus[start : start + room] + tail).encode()


#: Seconds a generated site is left alone before it is deployed (see ``make_site``).
SETTLE_S = 2.1


def make_site(root: Path, files: int, megabytes: float, seed: int) -> Site:
    """``files`` files of about ``megabytes`` MB (10^6 bytes) in nested dirs, from ``seed``."""
    started = time.perf_counter()
    rng = random.Random(seed)
    corpus = " ".join(rng.choice(WORDS) for _ in range(24_000))  # ~150 KB of words
    duplicates = int(files * DUPLICATE_SHARE)
    originals = files - duplicates
    target = int(megabytes * 1_000_000)
    text_mean = (TEXT_MAX - TEXT_MIN) / math.log(TEXT_MAX / TEXT_MIN)
    bin_mean = (BIN_MAX - BIN_MIN) / math.log(BIN_MAX / BIN_MIN)
    # Binaries fill what the text files (and their duplicates) leave of the target.
    binaries = round((target - files * text_mean) / bin_mean)
    binaries = max(0, min(binaries, originals // 4))
    texts = originals - binaries

    kinds = [k for k, _ in TEXT_KINDS]
    weights = [w for _, w in TEXT_KINDS]
    entries: list[tuple[str, bytes]] = []
    text_entries: list[tuple[str, bytes]] = []
    for n in range(texts):
        kind = rng.choices(kinds, weights)[0]
        path = _text_path(rng, kind, n)
        entry = (
            path,
            _text_content(rng, corpus, kind, path, _log_uniform(rng, TEXT_MIN, TEXT_MAX)),
        )
        entries.append(entry)
        text_entries.append(entry)
    copies = rng.sample(text_entries, min(duplicates, len(text_entries)))
    for n, (path, content) in enumerate(copies):
        entries.append((f"legacy/v{n % 3}/{path}", content))
    used = sum(len(content) for _, content in entries)
    if binaries:
        sizes = [_log_uniform(rng, BIN_MIN, BIN_MAX) for _ in range(binaries)]
        scale = max(target - used, 0) / sum(sizes)
        sizes = [min(max(int(s * scale), BIN_MIN), BIN_MAX) for s in sizes]
        for n, size in enumerate(sizes):
            folder, ext = BINARY_KINDS[n % len(BINARY_KINDS)]
            entries.append((f"{folder}/{n % 4}/asset-{n}.{ext}", rng.randbytes(size)))

    directories: set[Path] = set()
    for path, content in entries:
        target_path = root / path
        if target_path.parent not in directories:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            directories.add(target_path.parent)
        target_path.write_bytes(content)
    seconds = time.perf_counter() - started
    # As a built site is by the time anyone deploys it twice: on disk (else the kernel writes
    # its 30 MB back during whichever deploy next waits for the disk) and older than the 2 s
    # within which a hash cache does not trust a file's times.
    os.sync()
    time.sleep(SETTLE_S)
    return Site(
        root,
        sorted(p for p, _ in entries),
        sum(len(c) for _, c in entries),
        binaries,
        duplicates,
        len(directories),
        seconds,
    )


# ---------------------------------------------------------------------------------------------
# Running one deploy
# ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One deploy: wall time, what the server saw, and whether it really went live."""

    seconds: float
    uploads: int | None = None  # None: the server cannot say
    requests: int | None = None
    by_kind: Counter[str] = field(default_factory=Counter)
    violations: int | None = None
    fake_cpu: float | None = None  # CPU of the server while the deploy ran
    client_cpu: float = 0.0  # CPU of the deploying process and its children
    peak_mb: float = 0.0  # peak RSS of the deploying process (or a child it waited for)
    deploy_id: str | None = None
    error: str | None = None
    detail: str = ""  # output and request log of a failure

    @property
    def ok(self) -> bool:
        return self.error is None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_deploy(
    server: NetlifyServer,
    tool: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    site: dict[str, Any],
    expected: set[str],
    timeout: float,
) -> Sample:
    mark, child_cpu = server.mark(), _children_cpu()
    launch_error = None
    try:
        done = run_measured(cmd, cwd=cwd, env=env, timeout=timeout)
        seconds, peak_mb = done.seconds, done.peak_mb
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except OSError as exc:  # no node, no executable bit, ...
        seconds, peak_mb, returncode, stdout, stderr = 0.0, 0.0, None, "", ""
        launch_error = str(exc)
    seen = server.seen_since(mark)
    sample = Sample(
        seconds,
        uploads=seen.uploads,
        requests=seen.requests,
        by_kind=seen.by_kind,
        violations=seen.violations,
        fake_cpu=seen.server_cpu,
        client_cpu=_children_cpu() - child_cpu,
        peak_mb=peak_mb,
    )
    if launch_error:
        sample.error = launch_error
    elif returncode is None:
        sample.error = f"timed out after {timeout:.0f} s"
    elif returncode != 0:
        sample.error = f"exit status {returncode}"
    else:
        sample.error = _check_live(server, tool, stdout, site, expected, sample)
    if sample.error:
        sample.detail = _failure_detail(stdout, stderr, seen.log)
    return sample


def _check_live(
    server: NetlifyServer,
    tool: str,
    stdout: str,
    site: dict[str, Any],
    expected: set[str],
    sample: Sample,
) -> str | None:
    """None when the command's JSON names a deploy that is ready, live, and has every file."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return "stdout is not one JSON object"
    deploy_id = data.get("platform_deploy_id") if tool == OURS else data.get("deploy_id")
    if tool == OURS and not data.get("success"):
        return f"success is false: {data.get('error')}"
    if not deploy_id:
        return "the JSON names no deploy id"
    sample.deploy_id = str(deploy_id)
    return server.went_live(sample.deploy_id, site["id"], expected)


def _failure_detail(stdout: str, stderr: str, requests: list[str]) -> str:
    lines = []
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        text = text.strip()
        if text:
            tail = text.splitlines()[-25:]
            lines.append(f"  {name} (last {len(tail)} lines):")
            lines.extend("    " + line for line in tail)
    lines.append(f"  requests the server saw, uploads left out ({len(requests)}):")
    lines.extend(f"    {line}" for line in requests[:40])
    if len(requests) > 40:
        lines.append(f"    ... and {len(requests) - 40} more")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The two tools
# ---------------------------------------------------------------------------------------------


def _base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NETLIFY_", "DEVOPS_")) and k != "NODE_OPTIONS"
    }
    env["HOME"] = str(home)
    return env


def ours_command(site_dir: Path) -> list[str]:
    return [sys.executable, "-m", "devops_tasks", "deploy", "--dir", str(site_dir), "--json"]


def ours_env(server: NetlifyServer, home: Path) -> dict[str, str]:
    env = _base_env(home)
    env.update(NETLIFY_AUTH_TOKEN=server.token, NETLIFY_API_URL=server.api_url, NO_COLOR="1")
    return env


def ours_project(scratch: Path, name: str, site_id: str) -> Path:
    project = scratch / name
    (project / ".devops").mkdir(parents=True)
    config = {
        "version": 1,
        "platform": "netlify",
        "netlify": {"site_id": site_id, "poll_interval": 0.05},
    }
    (project / ".devops" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return project


def cli_binary(cli_dir: Path) -> Path:
    return cli_dir / "node_modules" / ".bin" / "netlify"


def cli_command(cli_dir: Path, site_dir: Path) -> list[str]:
    return [
        str(cli_binary(cli_dir)),
        "deploy",
        "--dir",
        str(site_dir),
        "--prod",
        "--no-build",
        "--json",
    ]


def cli_env(server: NetlifyServer, home: Path, preload: Path, site_id: str) -> dict[str, str]:
    env = _base_env(home)
    env.update(
        NETLIFY_API_URL=server.api_url,
        NETLIFY_AUTH_TOKEN=server.token,
        NETLIFY_SITE_ID=site_id,
        NETLIFY_TEST_TRACK_URL=f"{server.base}/telemetry/track",
        NETLIFY_TEST_IDENTIFY_URL=f"{server.base}/telemetry/identify",
        NETLIFY_TEST_ERROR_REPORT_URL=f"{server.base}/telemetry/error",
        NETLIFY_TELEMETRY_DISABLED="1",
        CI="1",
        NO_UPDATE_NOTIFIER="1",
        NO_COLOR="1",
        NODE_OPTIONS=f"--import {preload}",
    )
    return env


def _startup(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Wall time and output of ``--version`` (startup alone; also warms the page cache)."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return time.perf_counter() - started, f"(failed: {exc})"
    seconds = time.perf_counter() - started
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return seconds, lines[-1] if lines else f"(exit status {proc.returncode}, no output)"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> str:
    return f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""


def _count(samples: list[Sample], attr: str) -> str:
    """The range of a count over ``samples``: "-" with no sample, "?" where the server
    cannot count."""
    if not samples:
        return "-"
    values = sorted({v for s in samples if (v := getattr(s, attr)) is not None})
    if not values:
        return "?"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _cpu(samples: list[Sample]) -> str:
    known = [s.fake_cpu for s in samples if s.fake_cpu is not None]
    return f"{_median(known):.2f}" if known else "?"


def report(measured: list[Measured], startup: dict[str, float]) -> int:
    """Print each server's table; return how many deploys failed."""
    failures = 0
    for one in measured:
        print(f"\n== on the {one.server}")
        failures += _report(one.samples, startup)
        if one.scale:
            good = [s for s in one.scale if s.ok]
            failures += len(one.scale) - len(good)
            seconds = [s.seconds for s in good]
            figure = f"{_median(seconds):.2f} s{_spread(seconds)}" if good else "failed"
            print(
                f"\nunchanged re-deploy of {one.scale_size}, warm cache (devops-tasks): "
                f"{figure}; uploads {_count(good, 'uploads')} (goal < {SCALE_GOAL_S} s)"
            )
    return failures


def _report(results: dict[str, dict[str, list[Sample]]], startup: dict[str, float]) -> int:
    print()
    header = f"{'tool':<14}{'first deploy s':>18}{'re-deploy s':>16}{'uploads':>16}{'requests':>16}"
    print(header)
    print("-" * len(header))
    medians: dict[str, tuple[float, float | None]] = {}
    failures = 0
    for tool, phases in results.items():
        first = [s for s in phases["first"] if s.ok]
        again = [s for s in phases["again"] if s.ok]
        failures += sum(not s.ok for s in phases["first"] + phases["again"])
        if not first:
            print(f"{tool:<14}{'failed':>18}{'-':>16}{'-':>16}{'-':>16}")
            continue
        f_med = _median([s.seconds for s in first])
        a_med = _median([s.seconds for s in again]) if again else None
        medians[tool] = (f_med, a_med)
        uploads = f"{_count(first, 'uploads')} / {_count(again, 'uploads')}"
        requests = f"{_count(first, 'requests')} / {_count(again, 'requests')}"
        again_text = "failed" if a_med is None else f"{a_med:.2f}"
        print(f"{tool:<14}{f_med:>18.2f}{again_text:>16}{uploads:>16}{requests:>16}")
    print("(uploads and requests: first deploy / re-deploy; times are medians of the runs)")

    if OURS in medians and CLI in medians:
        (f_ours, a_ours), (f_cli, a_cli) = medians[OURS], medians[CLI]
        again_ratio = "n/a" if a_ours is None or a_cli is None else f"{a_cli / a_ours:.2f}x"
        print(
            f"\nnetlify-cli / ours:  first deploy {f_cli / f_ours:.2f}x,  re-deploy {again_ratio}"
        )

    print("\ndetails (medians):")
    detail = (
        f"  {'tool':<14}{'phase':<8}{'wall s':>8}{'range':>14}{'client CPU s':>14}"
        f"{'server CPU s':>13}  requests by kind, spec violations"
    )
    print(detail)
    for tool, phases in results.items():
        if tool in startup:
            print(
                f"  {tool:<14}{'startup':<8}{startup[tool]:>8.2f}"
                f"{'':>14}{'':>14}{'':>13}  (--version)"
            )
        for phase, name in (("first", "first"), ("again", "again")):
            good = [s for s in phases[phase] if s.ok]
            if not good:
                continue
            kinds: Counter[str] = Counter()
            for s in good:
                kinds.update(s.by_kind)
            per_run = ", ".join(f"{k} {v / len(good):g}" for k, v in sorted(kinds.items()))
            seconds = [s.seconds for s in good]
            print(
                f"  {tool:<14}{name:<8}{_median(seconds):>8.2f}"
                f"{_spread(seconds) or '':>14}"
                f"{_median([s.client_cpu for s in good]):>14.2f}"
                f"{_cpu(good):>13}"
                f"  {per_run}; violations {_count(good, 'violations')}"
            )
    return failures


def print_failure(
    tool: str, phase: str, run: int, sample: Sample, log: Callable[[str], object] = print
) -> None:
    log(
        f"\n!! {tool} {phase} deploy (run {run}) FAILED after {sample.seconds:.2f} s: "
        f"{sample.error}"
    )
    if sample.detail:
        log(sample.detail)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


INSTALL = "mkdir -p {cli_dir} && cd {cli_dir} && npm init -y && npm i -E netlify-cli@" + CLI_VERSION


#: What ``--server`` takes besides a URL: the two fakes this script can start itself.
SERVERS = ("project", "independent")
#: Issue 14: an unchanged re-deploy of 20,000 files / 80 MB with a warm cache, end to end.
SCALE_GOAL_S = 0.8


@dataclass
class Measured:
    """Everything timed on one server."""

    server: str  # its label
    samples: dict[str, dict[str, list[Sample]]]  # tool -> phase -> samples
    scale: list[Sample] = field(default_factory=list)  # ours, unchanged, at scale
    scale_size: str = ""


def measure(
    files: int = 5000,
    megabytes: float = 30.0,
    runs: int = 1,
    cli_dir: Path | None = DEFAULT_CLI_DIR,
    seed: int = 1,
    timeout: float = 900.0,
    log: Callable[[str], object] = print,
    servers: tuple[str, ...] = SERVERS,
    token: str = TOKEN,
    scale: tuple[int, float] | None = None,
) -> tuple[list[Measured], dict[str, float]]:
    """Both deploys of each tool, ``runs`` times, on each of ``servers`` (``project``,
    ``independent`` or the URL of a running Netlify API, whose ``token`` it is); then, with
    ``scale`` (files, megabytes), our unchanged re-deploy of that larger site with a warm
    cache. Returns the samples by server, and the tools' start-up times.

    netlify-cli is left out when ``cli_dir`` is None (``--skip-cli``), holds no CLI, or there
    is no ``node``.
    """
    tools = [OURS]
    binary = None if cli_dir is None else cli_binary(cli_dir)
    if peer_runs(CLI, binary, INSTALL.format(cli_dir=cli_dir), log):
        tools.append(CLI)

    scratch = Path(tempfile.mkdtemp(prefix="netlify-bench-"))
    try:
        site = make_site(scratch / "site", files, megabytes, seed)
        log(
            f"site: {len(site.paths)} files, {site.total_bytes / 1e6:.1f} MB "
            f"({site.binaries} binaries of 100 KiB-1 MiB, {site.duplicates} duplicate "
            f"contents, {site.directories} directories), written in {site.seconds:.1f} s"
        )
        large = None if scale is None else make_site(scratch / "large", *scale, seed)
        preload = scratch / "netlify-preload.mjs"
        preload.write_text(NODE_PRELOAD)
        home = scratch / "home"
        home.mkdir()
        startup = _startups(tools, cli_dir, home, preload, scratch, log)
        measured = []
        for which in servers:
            with serving(which, token) as server:
                log(f"server: the {server.label} at {server.base}")
                samples = _both_tools(
                    server, tools, cli_dir, site, scratch, home, preload, runs, timeout, log
                )
                one = Measured(server.label, samples)
                if large is not None:
                    one.scale = _at_scale(server, large, scratch, home, runs, timeout, log)
                    one.scale_size = (
                        f"{len(large.paths):,} files / {large.total_bytes / 1e6:.0f} MB"
                    )
                measured.append(one)
        return measured, startup
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _startups(
    tools: list[str],
    cli_dir: Path | None,
    home: Path,
    preload: Path,
    scratch: Path,
    log: Callable[[str], object],
) -> dict[str, float]:
    """Each tool's ``--version`` (start-up alone; it also warms the page cache)."""
    log(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    nowhere = HttpNetlify("http://127.0.0.1:9", TOKEN, "nothing")  # --version asks no API
    startup: dict[str, float] = {}
    startup[OURS], version = _startup(
        [sys.executable, "-m", "devops_tasks", "--version"], ours_env(nowhere, home), scratch
    )
    log(f"devops-tasks: {version}")
    if cli_dir is not None and CLI in tools:
        startup[CLI], version = _startup(
            [str(cli_binary(cli_dir)), "--version"],
            cli_env(nowhere, home, preload, "none"),
            scratch,
        )
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        log(f"netlify-cli: {version} (node {node})")
        if CLI_VERSION not in version:
            log(f"   note: the figures in benchmarks/README.md are for {CLI_VERSION}")
    return startup


def _both_tools(
    server: NetlifyServer,
    tools: list[str],
    cli_dir: Path | None,
    site: Site,
    scratch: Path,
    home: Path,
    preload: Path,
    runs: int,
    timeout: float,
    log: Callable[[str], object],
) -> dict[str, dict[str, list[Sample]]]:
    """Each tool's first deploy of ``site`` to a new site, then its unchanged re-deploy."""
    expected = {"/" + p for p in site.paths}
    results: dict[str, dict[str, list[Sample]]] = {t: {"first": [], "again": []} for t in tools}
    for run in range(1, runs + 1):
        for tool in tools:
            server.reset()  # no file known yet: the first deploy uploads everything
            target = server.add_site(f"bench-{'ours' if tool == OURS else 'cli'}-{run}")
            if tool == OURS:
                cwd = ours_project(scratch, f"project-{_slug(server)}-{run}", target["id"])
                cmd, env = ours_command(site.root), ours_env(server, home)
            else:
                cwd = scratch / f"cli-{_slug(server)}-{run}"
                cwd.mkdir()
                cmd = cli_command(cli_dir or DEFAULT_CLI_DIR, site.root)
                env = cli_env(server, home, preload, target["id"])
            for phase in ("first", "again"):
                sample = run_deploy(server, tool, cmd, env, cwd, target, expected, timeout)
                results[tool][phase].append(sample)
                _logged(log, run, tool, phase, sample)
                if not sample.ok:
                    break  # no re-deploy on top of a failed first deploy
    return results


def _at_scale(
    server: NetlifyServer,
    site: Site,
    scratch: Path,
    home: Path,
    runs: int,
    timeout: float,
    log: Callable[[str], object],
) -> list[Sample]:
    """Our unchanged re-deploys of a large site: after a first deploy, and one more that
    leaves the hash cache and the page cache warm, ``runs`` timed ones (each checked live
    and, where the server counts, with no upload)."""
    expected = {"/" + p for p in site.paths}
    server.reset()
    target = server.add_site("bench-scale")
    cwd = ours_project(scratch, f"project-{_slug(server)}-scale", target["id"])
    cmd, env = ours_command(site.root), ours_env(server, home)
    samples: list[Sample] = []
    for n in range(-1, runs + 1):
        sample = run_deploy(server, OURS, cmd, env, cwd, target, expected, timeout)
        if sample.ok and n > 0 and sample.uploads:
            sample.error = f"the unchanged re-deploy uploaded {sample.uploads} files"
        phase = {-1: "first", 0: "warm-up"}.get(n, "unchanged")
        _logged(log, max(n, 1), OURS, phase, sample)
        if not sample.ok:
            return [*samples, sample]
        if n > 0:
            samples.append(sample)
    return samples


def _logged(log: Callable[[str], object], run: int, tool: str, phase: str, sample: Sample) -> None:
    status = "ok" if sample.ok else "FAILED"
    uploads = "?" if sample.uploads is None else sample.uploads
    requests = "?" if sample.requests is None else sample.requests
    log(
        f"run {run} {tool:<13} {phase:<9} {sample.seconds:7.2f} s  {uploads:>5} uploads  "
        f"{requests:>5} requests  {status}"
    )
    if not sample.ok:
        print_failure(tool, phase, run, sample, log)


def _slug(server: NetlifyServer) -> str:
    return "".join(c if c.isalnum() else "-" for c in server.label)


def table_rows(
    target: str,
    results: dict[str, dict[str, list[Sample]]],
    peer: str,
    scenarios: dict[str, str],
    max_ratios: dict[str, float],
    missing: str,
) -> list[Row]:
    """Rows of the table for a tool against one CLI peer (this script's and vercel_vs_cli's).

    A phase whose deploys all failed has no figure, and says so; ``missing`` says why the peer
    has none when it was not run (not installed, or skipped).
    """

    def figure(tool: str, phase: str) -> tuple[float | None, float | None, str]:
        samples = results.get(tool, {}).get(phase, [])
        good = [s for s in samples if s.ok]
        if good:
            return _median([s.seconds for s in good]), max(s.peak_mb for s in good), ""
        if tool not in results:
            return None, None, missing
        failed = next((s.error for s in samples if not s.ok), "the first deploy failed")
        return None, None, f"failed: {failed}"

    table = []
    for phase, scenario in scenarios.items():
        ours_s, ours_mb, ours_note = figure(OURS, phase)
        peer_s, peer_mb, peer_note = figure(peer, phase)
        table.append(
            Row(
                target,
                scenario,
                ours_s,
                peer,
                peer_s,
                ours_mb=ours_mb,
                peer_mb=peer_mb,
                ours_note=ours_note,
                peer_note=peer_note,
                max_ratio=max_ratios.get(phase),
            )
        )
    return table


def rows(
    files: int = 5000,
    megabytes: float = 30.0,
    runs: int = 1,
    cli_dir: Path = DEFAULT_CLI_DIR,
    log: Callable[[str], object] = print,
    scale: tuple[int, float] | None = (20_000, 80.0),
    servers: tuple[str, ...] = SERVERS,
) -> list[Row]:
    """The table's rows (run_all.py): on each server, first and unchanged deploys, ours and
    netlify-cli's, and our unchanged re-deploy at ``scale``."""
    cli_dir = cli_dir.resolve()
    measured, _ = measure(files, megabytes, runs, cli_dir, log=log, servers=servers, scale=scale)
    table = []
    for one in measured:
        target = f"Netlify ({one.server})"
        table += table_rows(
            target,
            one.samples,
            CLI,
            {
                "first": f"first deploy, {files:,} files / {megabytes:g} MB",
                "again": "unchanged re-deploy",
            },
            TARGETS,
            f"not installed: `{INSTALL.format(cli_dir=cli_dir)}`",
        )
        if scale is not None:
            table.append(_scale_row(target, one))
    return table


def _scale_row(target: str, one: Measured) -> Row:
    good = [s for s in one.scale if s.ok]
    failed = next((s.error for s in one.scale if not s.ok), "no run")
    return Row(
        target,
        f"unchanged re-deploy, {one.scale_size}, warm cache: 0 uploads",
        _median([s.seconds for s in good]) if good else None,
        "none",
        None,
        ours_mb=max((s.peak_mb for s in good), default=None),
        ours_note="" if good else f"failed: {failed}",
        peer_note="no peer: a goal of its own",
        max_seconds=SCALE_GOAL_S,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="files in the site (5000)")
    parser.add_argument(
        "--megabytes",
        type=float,
        default=30.0,
        help="approximate site size in MB of 10^6 bytes (30)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs per tool; the report shows medians (1)"
    )
    parser.add_argument("--skip-cli", action="store_true", help="time only devops-tasks")
    parser.add_argument(
        "--cli-dir",
        type=Path,
        default=DEFAULT_CLI_DIR,
        help=f"where `npm i -E netlify-cli@{CLI_VERSION}` was run ({DEFAULT_CLI_DIR})",
    )
    parser.add_argument(
        "--server",
        action="append",
        help="where to deploy: 'project' (the project's fake), 'independent' (the Node fake "
        "written apart from it), or the URL of a Netlify API already running; repeat for "
        "several, one after the other (default: project, then independent)",
    )
    parser.add_argument(
        "--token",
        default=TOKEN,
        help="the token both tools send (for a server given by URL; the fakes take any)",
    )
    parser.add_argument(
        "--scale",
        default="0",
        metavar="FILES/MB",
        help="also time our unchanged re-deploy of a site of FILES files / MB megabytes "
        "with a warm cache, e.g. 20000/80 (default: not)",
    )
    parser.add_argument("--seed", type=int, default=1, help="site content seed (1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds before one deploy counts as failed (900)",
    )
    args = parser.parse_args(argv)
    if args.files < 10 or args.runs < 1 or args.megabytes <= 0:
        parser.error("--files must be >= 10, --runs >= 1 and --megabytes > 0")
    scale = None
    if args.scale != "0":
        files, _, megabytes = args.scale.partition("/")
        try:
            scale = (int(files), float(megabytes))
        except ValueError:
            parser.error(f"--scale takes FILES/MB, e.g. 20000/80, not {args.scale!r}")
    if importlib.util.find_spec("devops_tasks") is None:
        parser.error(
            f"{sys.executable} cannot import devops_tasks: run this with the "
            "project's interpreter (e.g. /tmp/venv/bin/python)"
        )

    try:
        measured, startup = _measure_from(args, scale)
    except ServerError as exc:
        print(f"\ncannot use the server: {exc}")
        return 1
    failures = report(measured, startup)
    if failures:
        print(f"\n{failures} deploy(s) failed; see the messages above.")
    return 1 if failures else 0


def _measure_from(
    args: argparse.Namespace, scale: tuple[int, float] | None
) -> tuple[list[Measured], dict[str, float]]:
    return measure(
        args.files,
        args.megabytes,
        args.runs,
        None if args.skip_cli else args.cli_dir.resolve(),
        args.seed,
        args.timeout,
        log=lambda line: print(line, flush=True),
        servers=tuple(args.server or SERVERS),
        token=args.token,
        scale=scale,
    )


if __name__ == "__main__":
    sys.exit(main())
