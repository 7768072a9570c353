"""Our Netlify deploy against the official netlify-cli, on the same fake Netlify API.

Both tools deploy the same generated site (default 5,000 files, about 30 MB) to the
spec-following fake in ``tests/fake_netlify.py``, started once on 127.0.0.1 in this
process. For each tool, on a fresh fake state (``reset()`` and a new site, so the fake holds
no blobs), the script times, as wall time of the whole command:

1. the first deploy (every file is new, so everything is uploaded);
2. an unchanged re-deploy of the same files to the same site (nothing to upload).

It also counts, from the fake's own records, the file uploads and the HTTP requests each
deploy made, and prints the medians of ``--runs`` runs and the ratios netlify-cli / ours::

    # once: netlify-cli in a scratch directory outside the repository
    mkdir -p /tmp/netlify-cli-bench && cd /tmp/netlify-cli-bench && npm init -y >/dev/null \\
        && npm i -E netlify-cli@27.10.2
    # then, from the repository root, with the project's interpreter
    /tmp/venv/bin/python benchmarks/netlify_vs_cli.py [--files 5000] [--megabytes 30] \\
        [--runs 1] [--skip-cli] [--cli-dir /tmp/netlify-cli-bench]

Ours runs as ``python -m devops_tasks deploy --dir SITE --json`` in a throwaway project
whose ``.devops/config.json`` names the site (``poll_interval`` 0.05 s). netlify-cli runs as
``netlify deploy --dir SITE --prod --no-build --json``, with ``HOME`` and its working
directory in scratch directories and telemetry pointed at the fake.

netlify-cli (through ``@netlify/config``) also fetches the site's extensions from
``https://api.netlifysdk.com``, a host that ``NETLIFY_API_URL`` does not change. Without
that answer its config resolution fails, it falls back to an offline config, and it then
looks the site up by *name* (``GET /sites?name=<NETLIFY_SITE_ID>``), keeping only a site
whose ``name`` equals the id it was given. Against a site named anything but its own
id, that ends with "Project not found. Please rerun "netlify link"". The script therefore
preloads a tiny ES module (``node --import``) that sends ``fetch`` calls for
``api.netlifysdk.com`` to the fake (it serves the extension routes) and refuses any other
``fetch`` that would leave 127.0.0.1. With the redirect, netlify-cli takes the path it takes
against the real API.
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

from fake_netlify import API_PREFIX, FakeNetlify  # noqa: E402
from measure import Row, peer_runs, run_measured  # noqa: E402

CLI_VERSION = "27.10.2"
DEFAULT_CLI_DIR = Path("/tmp/netlify-cli-bench")
TOKEN = "bench-token-0123456789abcdef"
OURS, CLI = "devops-tasks", "netlify-cli"
TARGETS = {"first": 0.35, "again": 0.1}  # ours / netlify-cli at most, from issue 14

# A preload for netlify-cli's Node process: the extensions API goes to the fake, and any
# other fetch() to a host that is not 127.0.0.1 is refused (nothing leaves the machine).
NODE_PRELOAD = r"""
const fake = process.env.BENCH_FAKE_BASE;
const original = globalThis.fetch;
const SDK = 'https://api.netlifysdk.com/';
globalThis.fetch = (input, init) => {
  const isReq = typeof input !== 'string' && !(input instanceof URL);
  let url = isReq ? input.url : String(input);
  if (url.startsWith(SDK)) {
    url = fake + '/' + url.slice(SDK.length);
    input = isReq ? new Request(url, input) : url;
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
    """One deploy: wall time, what the fake saw, and whether it really went live."""

    seconds: float
    uploads: int = 0
    requests: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    fake_cpu: float = 0.0  # CPU of this process (the fake's threads) during the deploy
    client_cpu: float = 0.0  # CPU of the deploying process and its children
    peak_mb: float = 0.0  # peak RSS of the deploying process (or a child it waited for)
    deploy_id: str | None = None
    error: str | None = None
    detail: str = ""  # output and request log of a failure

    @property
    def ok(self) -> bool:
        return self.error is None


def _kind(path: str, route: str | None) -> str:
    if route == "/deploys/{deploy_id}/files/{path}":
        return "upload"
    if path.startswith(API_PREFIX):
        return "api"
    if path.startswith("/telemetry"):
        return "telemetry"
    if "integrations" in path:
        return "extensions"
    return "other"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_deploy(
    fake: FakeNetlify,
    tool: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    site: dict[str, Any],
    expected: set[str],
    timeout: float,
) -> Sample:
    first_request, first_upload = len(fake.requests), len(fake.uploads)
    first_violation = len(fake.violations)
    cpu, child_cpu = time.process_time(), _children_cpu()
    launch_error = None
    try:
        done = run_measured(cmd, cwd=cwd, env=env, timeout=timeout)
        seconds, peak_mb = done.seconds, done.peak_mb
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except OSError as exc:  # no node, no executable bit, ...
        seconds, peak_mb, returncode, stdout, stderr = 0.0, 0.0, None, "", ""
        launch_error = str(exc)
    sample = Sample(
        seconds,
        fake_cpu=time.process_time() - cpu,
        client_cpu=_children_cpu() - child_cpu,
        peak_mb=peak_mb,
    )
    requests = fake.requests[first_request:]
    sample.uploads = len(fake.uploads) - first_upload
    sample.requests = len(requests)
    sample.by_kind = Counter(_kind(r.path, r.route) for r in requests)
    sample.violations = len(fake.violations) - first_violation

    if launch_error:
        sample.error = launch_error
    elif returncode is None:
        sample.error = f"timed out after {timeout:.0f} s"
    elif returncode != 0:
        sample.error = f"exit status {returncode}"
    else:
        sample.error = _check_live(fake, tool, stdout, site, expected, sample)
    if sample.error:
        sample.detail = _failure_detail(stdout, stderr, requests)
    return sample


def _check_live(
    fake: FakeNetlify,
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
    deploy = fake.deploys.get(sample.deploy_id)
    if deploy is None:
        return f"the fake has no deploy {deploy_id}"
    if deploy["state"] != "ready":
        return f"deploy {deploy_id} is {deploy['state']}, not ready"
    published = fake.sites[site["id"]].get("published_deploy") or {}
    if published.get("id") != sample.deploy_id:
        return f"deploy {deploy_id} is not the site's published deploy"
    missing = expected - set(fake.deploy_files(sample.deploy_id))
    if missing:
        return (
            f"deploy {deploy_id} lacks {len(missing)} of the site's files, e.g. "
            f"{sorted(missing)[:3]}"
        )
    return None


def _failure_detail(stdout: str, stderr: str, requests: list[Any]) -> str:
    lines = []
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        text = text.strip()
        if text:
            tail = text.splitlines()[-25:]
            lines.append(f"  {name} (last {len(tail)} lines):")
            lines.extend("    " + line for line in tail)
    uploads = sum(1 for r in requests if r.route == "/deploys/{deploy_id}/files/{path}")
    others = [r for r in requests if r.route != "/deploys/{deploy_id}/files/{path}"]
    lines.append(f"  requests the fake received ({len(requests)}, {uploads} of them uploads):")
    for r in others[:40]:
        query = "&".join(f"{k}={v}" for k, v in r.query.items())
        message = ""
        if r.status is not None and r.status >= 400 and isinstance(r.response, dict):
            message = f"  {r.response.get('message', '')}"
        elif r.route == "/sites" and r.query.get("name") and isinstance(r.response, list):
            names = [site.get("name") for site in r.response if isinstance(site, dict)]
            message = f"  -> sites named {names} (netlify-cli keeps only name == {r.query['name']})"
        lines.append(f"    {r.status} {r.method} {r.path}{'?' + query if query else ''}{message}")
    if len(others) > 40:
        lines.append(f"    ... and {len(others) - 40} more")
    if not any("integrations" in r.path for r in requests):
        lines.append(
            "  The extensions lookup never reached the fake (see the module docstring: "
            "without it netlify-cli falls back to a lookup of the site by name)."
        )
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


def ours_env(fake: FakeNetlify, home: Path) -> dict[str, str]:
    env = _base_env(home)
    env.update(NETLIFY_AUTH_TOKEN=fake.token, NETLIFY_API_URL=fake.api_url, NO_COLOR="1")
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


def cli_env(fake: FakeNetlify, home: Path, preload: Path, site_id: str) -> dict[str, str]:
    env = _base_env(home)
    env.update(
        NETLIFY_API_URL=fake.api_url,
        NETLIFY_AUTH_TOKEN=fake.token,
        NETLIFY_SITE_ID=site_id,
        NETLIFY_TEST_TRACK_URL=f"{fake.base}/telemetry/track",
        NETLIFY_TEST_IDENTIFY_URL=f"{fake.base}/telemetry/identify",
        NETLIFY_TEST_ERROR_REPORT_URL=f"{fake.base}/telemetry/error",
        NETLIFY_TELEMETRY_DISABLED="1",
        CI="1",
        NO_UPDATE_NOTIFIER="1",
        NO_COLOR="1",
        BENCH_FAKE_BASE=fake.base,
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
    values = sorted({getattr(s, attr) for s in samples})
    if not values:
        return "-"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def report(results: dict[str, dict[str, list[Sample]]], startup: dict[str, float]) -> int:
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
        f"{'fake CPU s':>12}  requests by kind, spec violations"
    )
    print(detail)
    for tool, phases in results.items():
        if tool in startup:
            print(
                f"  {tool:<14}{'startup':<8}{startup[tool]:>8.2f}"
                f"{'':>14}{'':>14}{'':>12}  (--version)"
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
                f"{_median([s.fake_cpu for s in good]):>12.2f}"
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

    netlify-cli is left out when ``cli_dir`` is None (``--skip-cli``), holds no CLI, or there
    is no ``node``.
    """
    tools = [OURS]
    binary = None if cli_dir is None else cli_binary(cli_dir)
    if peer_runs(CLI, binary, INSTALL.format(cli_dir=cli_dir), log):
        tools.append(CLI)

    scratch = Path(tempfile.mkdtemp(prefix="netlify-bench-"))
    fake = FakeNetlify(token=TOKEN)
    try:
        fake.start()
        site = make_site(scratch / "site", files, megabytes, seed)
        expected = {"/" + p for p in site.paths}
        preload = scratch / "netlify-preload.mjs"
        preload.write_text(NODE_PRELOAD)
        home = scratch / "home"
        home.mkdir()

        log(
            f"site: {len(site.paths)} files, {site.total_bytes / 1e6:.1f} MB "
            f"({site.binaries} binaries of 100 KiB-1 MiB, {site.duplicates} duplicate "
            f"contents, {site.directories} directories), written in {site.seconds:.1f} s"
        )
        log(
            f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"fake Netlify at {fake.base} (threads in this process)"
        )

        startup: dict[str, float] = {}
        startup[OURS], version = _startup(
            [sys.executable, "-m", "devops_tasks", "--version"], ours_env(fake, home), scratch
        )
        log(f"devops-tasks: {version}")
        if cli_dir is not None and CLI in tools:
            startup[CLI], version = _startup(
                [str(cli_binary(cli_dir)), "--version"],
                cli_env(fake, home, preload, "none"),
                scratch,
            )
            node = subprocess.run(
                ["node", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            log(f"netlify-cli: {version} (node {node})")
            if CLI_VERSION not in version:
                log(f"   note: the figures in benchmarks/README.md are for {CLI_VERSION}")

        results: dict[str, dict[str, list[Sample]]] = {
            tool: {"first": [], "again": []} for tool in tools
        }
        for run in range(1, runs + 1):
            for tool in tools:
                fake.reset()  # an empty blob store: the first deploy uploads everything
                target = fake.add_site(f"bench-{'ours' if tool == OURS else 'cli'}-{run}")
                if tool == OURS:
                    cwd = ours_project(scratch, f"project-{run}", target["id"])
                    cmd, env = ours_command(site.root), ours_env(fake, home)
                else:
                    cwd = scratch / f"cli-{run}"
                    cwd.mkdir()
                    cmd = cli_command(cli_dir or DEFAULT_CLI_DIR, site.root)
                    env = cli_env(fake, home, preload, target["id"])
                for phase in ("first", "again"):
                    sample = run_deploy(fake, tool, cmd, env, cwd, target, expected, timeout)
                    results[tool][phase].append(sample)
                    status = "ok" if sample.ok else "FAILED"
                    log(
                        f"run {run} {tool:<13} {phase:<6} {sample.seconds:7.2f} s  "
                        f"{sample.uploads:5d} uploads  {sample.requests:5d} requests  "
                        f"{status}"
                    )
                    if not sample.ok:
                        print_failure(tool, phase, run, sample, log)
                        break  # no re-deploy on top of a failed first deploy
        return results, startup
    finally:
        fake.stop()
        shutil.rmtree(scratch, ignore_errors=True)


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
) -> list[Row]:
    """The table's rows (run_all.py): first and unchanged deploys, ours and netlify-cli's."""
    cli_dir = cli_dir.resolve()
    results, _ = measure(files, megabytes, runs, cli_dir, log=log)
    return table_rows(
        "Netlify",
        results,
        CLI,
        {
            "first": f"first deploy, {files:,} files / {megabytes:g} MB",
            "again": "unchanged re-deploy",
        },
        TARGETS,
        f"not installed: `{INSTALL.format(cli_dir=cli_dir)}`",
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
    if importlib.util.find_spec("devops_tasks") is None:
        parser.error(
            f"{sys.executable} cannot import devops_tasks: run this with the "
            "project's interpreter (e.g. /tmp/venv/bin/python)"
        )

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
    if failures:
        print(f"\n{failures} deploy(s) failed; see the messages above.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
