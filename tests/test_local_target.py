"""The local target as users run it: whose files it touches, and what a killed deploy leaves
for the next one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import run_devops, write_site
from shims import tar_shim

from devops_tasks.history import DeploymentHistory, Status
from devops_tasks.project import Project


def configure(project: Project, **settings: object) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": "local", **settings}), encoding="utf-8"
    )


def live(project: Project, root: str = ".devops/local/production") -> Path:
    return project.root / root / "current"


# --------------------------------------------------------------------------- whose files


def test_prune_leaves_the_users_own_files_in_a_root_that_had_a_releases_folder(project, cli):
    configure(project, local={"root": "www"}, deployment={"keep_releases": 1})
    theirs = project.root / "www" / "releases"
    (theirs / "2019-site").mkdir(parents=True)
    (theirs / "2019-site" / "index.html").write_text("the old site, kept by hand")
    (theirs / "notes.txt").write_text("mine")

    for version in ("v1", "v2", "v3"):
        write_site(project.root / "dist", version)
        assert cli("deploy", "--json").json["success"]

    assert (theirs / "2019-site" / "index.html").read_text() == "the old site, kept by hand"
    assert (theirs / "notes.txt").read_text() == "mine"
    assert len([n for n in os.listdir(theirs) if n.startswith("dep_")]) == 2  # live + previous


# --------------------------------------------------------------------------- interrupted runs


def test_a_deploy_killed_mid_upload_leaves_only_what_the_next_deploy_removes(
    project, tmp_path, monkeypatch
):
    plain_path = os.environ["PATH"]
    unpacked = tmp_path / "unpacked"
    tar_shim(tmp_path / "shims", monkeypatch, f'"$TAR" "$@"; touch "{unpacked}"; sleep 60')
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    killed = subprocess.Popen(
        [sys.executable, "-m", "devops_tasks", "deploy", "--json"],
        cwd=project.root,
        env={**os.environ, "TMPDIR": str(scratch)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not unpacked.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    releases = project.state_dir / "local" / "production" / "releases"
    left = sorted(os.listdir(releases))
    assert [name.rsplit(".", 1)[-1] for name in left] == ["partial", "tar"]  # mid-upload
    assert os.listdir(scratch) == []

    after = run_devops("deploy", "--json", cwd=project.root, env={"PATH": plain_path}).json

    assert os.listdir(releases) == [after["release"]]
    assert [e["status"] for e in DeploymentHistory(project).query()] == [
        Status.SUCCESS.value,
        Status.INTERRUPTED.value,
    ]


# --------------------------------------------------------------------------- how it runs


def test_the_dry_flag_cannot_make_a_deploy_that_did_nothing(project, cli):
    result = cli("--dry", "deploy", "--json").json

    assert os.readlink(live(project)) == f"releases/{result['release']}"
    assert (live(project) / "index.html").is_file()
