"""Concurrent processes on one project: every record, secret and setting survives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import CliResult, run_devops, write_site

from devops_tasks.history import DeploymentHistory
from devops_tasks.project import Project

PROCESSES = 8


def _run_at_once(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> list[CliResult]:
    """Start ``devops ARGV`` for every argv together, then wait for all of them."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "devops_tasks", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        results.append(CliResult(worker.returncode, out, err))
    return results


def test_eight_concurrent_deploys_lose_no_record_and_leave_a_valid_index(tmp_path):
    write_site(tmp_path / "dist")
    assert run_devops("init", "--json", cwd=tmp_path).json["success"]
    # they take turns: each waits for the lock instead of failing at once
    waits = run_devops("config.set", "deployment.lock_timeout", "120", "--json", cwd=tmp_path)
    assert waits.json["success"]
    results = _run_at_once([["deploy.local", "--json"]] * PROCESSES, tmp_path, dict(os.environ))
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
    argvs = [
        ["secrets.set", f"TOKEN_{n}", "--value", f"value-{n}", "--json"] for n in range(PROCESSES)
    ]
    for result in _run_at_once(argvs, tmp_path, env):
        assert result.json["success"], result.stderr
    listed = run_devops("secrets.list", "--json", cwd=tmp_path, env=env).json
    assert [s["name"] for s in listed["secrets"]] == [f"TOKEN_{n}" for n in range(PROCESSES)]


def test_sixteen_concurrent_config_set_processes_keep_all_sixteen_settings(tmp_path):
    assert run_devops("init", "--json", cwd=tmp_path).json["success"]
    argvs = [
        ["config.set", "deployment.keep_releases", str(n + 1), "--env", f"env{n}", "--json"]
        for n in range(16)
    ]
    for result in _run_at_once(argvs, tmp_path, dict(os.environ)):
        assert result.json["success"], result.stderr
    saved = json.loads((tmp_path / ".devops" / "config.json").read_text())
    kept = {
        name: env["deployment"]["keep_releases"]
        for name, env in saved["environments"].items()
        if name.startswith("env")
    }
    assert kept == {f"env{n}": n + 1 for n in range(16)}
