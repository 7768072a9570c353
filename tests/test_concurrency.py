"""Concurrent deploys of one project: every record survives and the index stays valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import CliResult, write_site

from devops_tasks.history import DeploymentHistory
from devops_tasks.project import Project

PROCESSES = 8


def test_eight_concurrent_deploys_lose_no_record_and_leave_a_valid_index(tmp_path):
    write_site(tmp_path / "dist")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "devops_tasks", "deploy.local", "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        results.append(CliResult(worker.returncode, out, err))
    ids = {r.json["id"] for r in results if r.json["success"]}
    assert len(ids) == PROCESSES, [r.stderr for r in results]

    project = Project(tmp_path)
    index = json.loads((project.deployments_dir / "index.json").read_text())
    assert {e["id"] for e in index["deployments"]} == ids
    assert {p.stem for p in project.deployments_dir.glob("dep_*.json")} == ids
    history = DeploymentHistory(project)
    assert all(history.get(i).status.value == "success" for i in ids)
    live = os.readlink(tmp_path / ".devops/local/production/current")
    assert live == f"releases/{max(ids)}"


def test_eight_concurrent_secrets_set_processes_store_all_eight(tmp_path):
    env = {**os.environ, "DEVOPS_MASTER_KEY": "ab" * 32}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devops_tasks",
                "secrets.set",
                f"TOKEN_{n}",
                "--value",
                f"value-{n}",
                "--json",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert CliResult(worker.returncode, out, err).json["success"], err
    listed = subprocess.run(
        [sys.executable, "-m", "devops_tasks", "secrets.list", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    names = [s["name"] for s in json.loads(listed.stdout)["secrets"]]
    assert names == [f"TOKEN_{n}" for n in range(PROCESSES)]
