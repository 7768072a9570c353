"""An unchanged re-deploy of a large site on each object store and over SSH, beside its own
scan and the floor (the store's LIST; rsync's own unchanged run).

Issue 14 asks that an unchanged re-deploy of 20,000 files / 80 MB with a warm hash cache, on
the object stores and over SSH, makes no upload and stays within the same factor of its own
scan time. (SSH: three sshd hosts as ``ssh_vs_rsync.py`` starts them, root needed; the floor
is ``rsync -a --delete`` of the same site, which sends nothing; see ``measure_ssh``.)
For each store, on its emulator started here on 127.0.0.1 (moto server for S3,
gcp-storage-emulator for Cloud Storage, Azurite for Azure Blob; the same programs the tests
start, from the project's own dependencies), the script:

1. generates the site once (``--files`` files, ``--megabytes`` in all; pages, fingerprinted
   CSS and JS, images), waits until the hash cache may remember it (a file changed less than
   2 s before a deploy is hashed but not remembered), and deploys it once (``infra.up``, then
   ``devops deploy --json``), then once more untimed: the cache and the page cache are warm;
2. times ``--runs`` unchanged re-deploys (``python -m devops_tasks deploy --dir SITE --json``,
   the whole process, through ``measure.run_measured``) and checks each one's JSON: a no-op
   with 0 uploads, or the run fails;
3. times the scan alone, the same way: a process that loads the project and its settings and
   runs the deploy's own scan (``Deployer.validate``: the walk, the ignore rules, the checks,
   the digests from the same warm cache) and stops there;
4. times the floor no client can beat: the store answering one listing of the whole bucket
   (every page), read in-process through the project's own store, the fastest of three.

It prints, per store: the re-deploy, the scan, the listing (medians), re-deploy / scan,
re-deploy / listing and re-deploy / (scan + listing), the two sides an unchanged deploy must
read before it knows there is nothing to do::

    .venv/bin/python benchmarks/unchanged_at_scale.py [--files 20000] [--megabytes 80] \\
        [--runs 5] [--only s3,gcs,azure,ssh]

The first deploys take most of the time: each emulator stores 20,000 objects (one to two
minutes each). The Cloud Storage emulator runs without the metadata dump it makes after every
write (see ``GCS_EMULATOR``), which would make its first deploy take hours. ``rows()`` is
``run_all.py``'s entry (``--only scale``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from measure import Finished, Row, run_measured  # noqa: E402

STORES = ("s3", "gcs", "azure", "ssh")
LABELS = {
    "s3": "S3 (moto)",
    "gcs": "GCS (emulator)",
    "azure": "Azure (Azurite)",
    "ssh": "SSH (3 hosts)",
}
BUCKET = "scale-bench"
#: The deploy's own scan, stopped there: what a re-deploy cannot do without.
SCAN = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from devops_tasks.config import ConfigStore
from devops_tasks.deployer import Deployer
from devops_tasks.project import find_project
project = find_project(None)
files = Deployer(project, ConfigStore(project).settings(None)).validate(Path(sys.argv[1]))
print(json.dumps({"files": len(files), "seconds": time.perf_counter() - started}))
"""


#: gcp-storage-emulator as ``tests/gcs_emulator.py`` starts it, but without the dump of every
#: object's metadata to its (in-memory) store after each write: a JSON of all objects, so the
#: first deploy of 20,000 files would take hours (O(n) a write). An in-memory emulator only
#: reads that dump when it starts; what it answers is unchanged.
GCS_EMULATOR = """
import sys
from gcp_storage_emulator import storage
from gcp_storage_emulator.__main__ import main
storage.Storage._write_config_to_file = lambda self: None
main(sys.argv[1:])
"""


@dataclass
class Outcome:
    """One store's figures (seconds)."""

    first: float = 0.0
    redeploys: list[Finished] = field(default_factory=list)
    scans: list[Finished] = field(default_factory=list)
    listings: list[float] = field(default_factory=list)
    listed: int = 0

    @property
    def redeploy(self) -> float:
        return statistics.median(d.seconds for d in self.redeploys)

    @property
    def scan(self) -> float:
        return statistics.median(d.seconds for d in self.scans)

    @property
    def listing(self) -> float:
        return min(self.listings)


def generate_site(root: Path, files: int, megabytes: float, seed: int = 14) -> int:
    """``files`` files of ``megabytes`` in all, 100 to a folder; returns the bytes written."""
    rnd = random.Random(seed)
    mean = megabytes * 1e6 / files
    total = 0
    for n in range(files):
        size = max(64, int(rnd.uniform(0.25, 1.75) * mean))
        folder = f"s{n // 2000}/d{n // 100}"
        kind = n % 10
        if kind < 6:
            path = f"{folder}/page-{n}/index.html"
            data = (f"<html><body><h1>{n}</h1><p>" + "lorem ipsum " * (size // 12)).encode()
        elif kind < 8:
            ext = "css" if kind == 6 else "js"
            path = f"{folder}/bundle-{n}.{rnd.getrandbits(32):08x}.{ext}"
            data = (f"/* {n} */" + "a{b:c}" * (size // 6)).encode()
        else:
            path = f"{folder}/img-{n}.png"
            data = rnd.randbytes(size)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[:size])
        total += min(len(data), size)
    return total


# -- the stores: their emulator, the project's settings, the store itself ----------------------


@dataclass
class Emulated:
    """A store's emulator, running: the target's settings and environment to deploy there."""

    platform: str
    settings: dict[str, Any]
    env: dict[str, str]
    store: Callable[[], Any]


@contextlib.contextmanager
def emulator(name: str) -> Iterator[Emulated]:
    """Start ``name``'s emulator (as the tests do) and stop it after."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_"))}
    if name == "s3":
        import moto_server

        from devops_tasks.platforms.aws import S3Store
        from devops_tasks.platforms.aws_signed import SignedS3

        server = moto_server.start()
        keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        env = {**base, **keys, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        signed = SignedS3(BUCKET, "us-east-1", "testing", "testing", endpoint=server.url)
        try:
            yield Emulated(
                "aws",
                {"bucket": BUCKET, "endpoint_url": server.url},
                env,
                lambda: S3Store(_no_boto, BUCKET, "", "us-east-1", signed),
            )
        finally:
            server.stop()
    elif name == "gcs":
        import local_server

        from devops_tasks.platforms.gcp import GcsStore

        server = local_server.start(
            "gcp-storage-emulator",
            lambda port: [
                *(sys.executable, "-c", GCS_EMULATOR, "start", "--in-memory"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
        )
        try:
            yield Emulated(
                "gcp",
                {"bucket": BUCKET, "project": "scale-bench", "endpoint_url": server.url},
                base,
                lambda: GcsStore(BUCKET, endpoint_url=server.url),
            )
        finally:
            server.stop()
    else:
        import azurite

        from devops_tasks.platforms.azure import AZURE_STORAGE_CONNECTION_STRING, AzureStore

        server = azurite.start()
        try:
            yield Emulated(
                "azure",
                {"container": "$web"},
                {**base, AZURE_STORAGE_CONNECTION_STRING: server.connection_string},
                lambda: AzureStore(connection_string=server.connection_string),
            )
        finally:
            server.stop()


def _no_boto() -> Any:
    raise RuntimeError("the benchmark's listing goes through the signed transport only")


# -- the run ---------------------------------------------------------------------------------------


def _devops(project: Path, env: dict[str, str], *args: str) -> Finished:
    done = run_measured([sys.executable, "-m", "devops_tasks", *args], cwd=project, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"devops {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr}")
    return done


def _unchanged(done: Finished) -> Finished:
    """``done``, checked: a no-op deploy that uploaded nothing."""
    sync = json.loads(done.stdout)["details"]["sync"]
    if not sync["noop"] or sync["uploaded"] or sync["copied"] or sync["deleted"]:
        raise RuntimeError(f"the unchanged re-deploy wrote to the bucket: {sync}")
    return done


def measure_store(
    name: str, site: Path, scratch: Path, runs: int, log: Callable[[str], object] = print
) -> Outcome:
    """First deploy, warm-up, then ``runs`` timed re-deploys, scans and listings on ``name``."""
    outcome = Outcome()
    with emulator(name) as emulated:
        project = scratch / f"project-{name}"
        (project / ".devops").mkdir(parents=True)
        config = {"version": 1, "platform": emulated.platform, emulated.platform: emulated.settings}
        (project / ".devops" / "config.json").write_text(json.dumps(config))
        env = {**emulated.env, "HOME": str(scratch / "home")}
        _devops(project, env, "infra.up", "--json")
        outcome.first = _devops(project, env, "deploy", "--dir", str(site), "--json").seconds
        log(f"{LABELS[name]}: first deploy {outcome.first:.1f} s")
        _unchanged(_devops(project, env, "deploy", "--dir", str(site), "--json"))
        store = emulated.store()
        try:
            for _ in range(runs):
                deploy = _devops(project, env, "deploy", "--dir", str(site), "--json")
                outcome.redeploys.append(_unchanged(deploy))
                outcome.scans.append(_scan(project, env, site))
            for _ in range(3):
                started = time.perf_counter()
                outcome.listed = sum(1 for _ in store.list())
                outcome.listings.append(time.perf_counter() - started)
        finally:
            store.close()
    log(
        f"{LABELS[name]}: re-deploy {outcome.redeploy:.2f} s, scan {outcome.scan:.2f} s, "
        f"listing of {outcome.listed} objects {outcome.listing:.2f} s"
    )
    return outcome


def measure_ssh(
    site: Path, scratch: Path, runs: int, log: Callable[[str], object] = print
) -> Outcome:
    """The same on three sshd hosts (``tests/sshd.py``; needs root): the floor is rsync's
    own unchanged run (``rsync -a --delete`` of the site, which sends nothing), the command
    people use to keep a tree on a host in step. Each of our re-deploys makes a whole new
    release (every file linked on the host, nothing sent); after each, the hosts' background
    work is waited for, as ``ssh_vs_rsync.py`` does."""
    import sshd
    from ssh_vs_rsync import Bench

    outcome = Outcome()
    scratch.chmod(0o755)  # the login user reaches its fleets through it
    servers = sshd.start()
    try:
        bench = Bench(servers, scratch, site)
        fleet, theirs = bench.fleet("ssh-fleet"), bench.fleet("rsync-fleet")
        project = bench.project("project-ssh", fleet)
        served = [fleet / host.ip / "current" for host in servers.hosts]
        env = {**os.environ, "HOME": str(scratch / "home")}
        deploy = ("deploy", "--dir", str(site), "--json")
        outcome.first = _devops(project, env, *deploy).seconds
        log(f"{LABELS['ssh']}: first deploy {outcome.first:.1f} s")
        bench.settle(served)
        _nothing_sent(_devops(project, env, *deploy))
        bench.settle(served)
        bench.rsync(theirs)  # its first copy
        for _ in range(runs):
            outcome.redeploys.append(_nothing_sent(_devops(project, env, *deploy)))
            bench.settle(served)
            outcome.scans.append(_scan(project, env, site))
            outcome.listings.append(bench.rsync(theirs).seconds)
        outcome.listed = sum(len(names) for _, _, names in os.walk(site))
    finally:
        servers.stop()
    log(
        f"{LABELS['ssh']}: re-deploy {outcome.redeploy:.2f} s, scan {outcome.scan:.2f} s, "
        f"rsync's unchanged run {outcome.listing:.2f} s"
    )
    return outcome


def _nothing_sent(done: Finished) -> Finished:
    """``done``, checked: an SSH deploy that sent no file to any host."""
    result = json.loads(done.stdout)
    sent = [host["sent"]["files"] for host in result["details"]["hosts"]]
    if result.get("bytes_uploaded") or any(sent):
        raise RuntimeError(f"the unchanged re-deploy sent files: {sent}")
    return done


def _scan(project: Path, env: dict[str, str], site: Path) -> Finished:
    scan = run_measured([sys.executable, "-c", SCAN, str(site)], cwd=project, env=env)
    if scan.returncode != 0:
        raise RuntimeError(f"the scan failed: {scan.stderr[-2000:]}")
    return scan


def measure(
    files: int,
    megabytes: float,
    runs: int,
    stores: list[str],
    log: Callable[[str], object] = print,
) -> dict[str, Outcome]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as scratch_name:
        scratch = Path(scratch_name)
        site = scratch / "site"
        size = generate_site(site, files, megabytes)
        log(f"site: {files} files, {size / 1e6:.1f} MB")
        time.sleep(2.1)  # so that the first deploy's hash cache remembers every file
        return {
            name: measure_ssh(site, scratch, runs, log)
            if name == "ssh"
            else measure_store(name, site, scratch, runs, log)
            for name in stores
        }


def rows(
    files: int = 20_000,
    megabytes: float = 80.0,
    runs: int = 3,
    stores: list[str] | None = None,
    log: Callable[[str], object] = print,
) -> list[Row]:
    """The table's rows (run_all.py): per store, the re-deploy against its own scan, against
    the store's listing of the bucket (the floor), and against the two added up: what a
    deploy must read of both sides before it knows there is nothing to do."""
    measured = measure(files, megabytes, runs, list(stores or STORES), log)
    table = []
    for name, outcome in measured.items():
        scenario = f"unchanged re-deploy, {files:,} files / {megabytes:.0f} MB, warm cache"
        peak = max(d.peak_mb for d in outcome.redeploys)
        table.append(
            Row(
                LABELS[name],
                scenario + ": 0 uploads",
                outcome.redeploy,
                "own scan",
                outcome.scan,
                ours_mb=peak,
                peer_mb=max(d.peak_mb for d in outcome.scans),
            )
        )
        floor = (
            (
                "rsync -a --delete, nothing to send",
                f"against rsync's own run of its {outcome.listed:,} files",
            )
            if name == "ssh"
            else ("bare LIST", f"against one listing of its {outcome.listed:,} objects")
        )
        table.append(
            Row(
                LABELS[name],
                f"{scenario}, {floor[1]}",
                outcome.redeploy,
                floor[0],
                outcome.listing,
                ours_mb=peak,
            )
        )
        if name != "ssh":  # a bucket is read as well as the build: both sides, one after the other
            table.append(
                Row(
                    LABELS[name],
                    f"{scenario}, against the build's scan and the bucket's listing added up",
                    outcome.redeploy,
                    "own scan + bare LIST",
                    outcome.scan + outcome.listing,
                    ours_mb=peak,
                )
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--megabytes", type=float, default=80.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default=",".join(STORES), help="comma-separated stores")
    args = parser.parse_args()
    stores = [s for s in args.only.split(",") if s]
    unknown = [s for s in stores if s not in STORES]
    if unknown:
        parser.error(f"unknown store(s) {', '.join(unknown)}; choose from {', '.join(STORES)}")
    measured = measure(args.files, args.megabytes, args.runs, stores)
    print()
    print(
        f"{'store':<16} {'first s':>8} {'re-deploy s':>12} {'scan s':>7} {'LIST s':>7} "
        f"{'objects':>8} {'/ scan':>7} {'/ LIST':>7} {'/ both':>7} {'peak MB':>8}"
    )
    for name, o in measured.items():
        print(
            f"{LABELS[name]:<16} {o.first:>8.1f} {o.redeploy:>12.2f} {o.scan:>7.2f} "
            f"{o.listing:>7.2f} {o.listed:>8} {o.redeploy / o.scan:>7.2f} "
            f"{o.redeploy / o.listing:>7.2f} {o.redeploy / (o.scan + o.listing):>7.2f} "
            f"{max(d.peak_mb for d in o.redeploys):>8.0f}"
        )


if __name__ == "__main__":
    main()
