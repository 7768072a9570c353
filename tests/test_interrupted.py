"""Deploys killed with SIGKILL: the next command finds the truth and acts on what is live."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import write_site

from devops_tasks.history import DeploymentHistory
from devops_tasks.project import Project


def _deploy_killed_when(project: Path, ready: Callable[[], bool], *args: str) -> None:
    """Start ``devops deploy ARGS`` and SIGKILL it as soon as ``ready()`` holds."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "devops_tasks", "deploy", "--json", *args],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert worker.poll() is None, "the deploy ended before it could be killed"
            assert time.monotonic() < deadline, "the deploy never reached the point to kill it"
            time.sleep(0.02)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL that accepts connections and never answers: a health check there hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"


@pytest.fixture
def local(project, cli) -> Project:
    assert cli("init", "--json").json["success"]
    return project


def _hang_in_the_health_check(cli, url: str) -> None:
    check = {"enabled": True, "url": url, "timeout": 60, "retries": 0}
    assert cli("config.set", "deployment.health_check", json.dumps(check), "--json").json["success"]


def _current(project: Project) -> str:
    return os.readlink(project.state_dir / "local" / "production" / "current").rsplit("/")[-1]


def test_rollback_after_a_kill_that_followed_the_switch_restores_the_last_good_release(
    local, cli, silent_server
):
    project = local
    first = cli("deploy", "--json").json["id"]
    write_site(project.root / "dist", "v2")
    good = cli("deploy", "--json").json["id"]
    _hang_in_the_health_check(cli, silent_server)
    write_site(project.root / "dist", "v3")
    _deploy_killed_when(project.root, lambda: _current(project) not in (first, good))
    killed = _current(project)

    rolled_back = cli("rollback", "--json").json
    assert rolled_back["success"] and rolled_back["details"]["restored"] == good
    assert rolled_back["rollback_of"] == killed
    assert _current(project) == good
    history = DeploymentHistory(project)
    assert history.get(good).status.value == "success"
    assert history.get(first).status.value == "success"


def test_the_next_deploy_after_such_a_kill_never_prunes_the_last_good_release(
    local, cli, silent_server
):
    project = local
    cli("config.set", "deployment.keep_releases", "2", "--json")
    cli("deploy", "--json")
    write_site(project.root / "dist", "v2")
    good = cli("deploy", "--json").json["id"]
    _hang_in_the_health_check(cli, silent_server)
    write_site(project.root / "dist", "v3")
    _deploy_killed_when(project.root, lambda: _current(project) != good)
    cli("config.set", "deployment.health_check.enabled", "false", "--json")
    write_site(project.root / "dist", "v4")
    assert cli("deploy", "--json").json["success"]

    rolled_back = cli("rollback", "--json").json
    assert rolled_back["success"] and rolled_back["details"]["restored"] == good


def test_a_record_killed_after_the_switch_says_its_release_went_live(local, cli, silent_server):
    project = local
    cli("deploy", "--json")
    _hang_in_the_health_check(cli, silent_server)
    before = _current(project)
    _deploy_killed_when(project.root, lambda: _current(project) != before)
    killed = _current(project)

    cli("status", "--json")  # reading shows it interrupted; the next deploy records it so
    cli("config.set", "deployment.health_check.enabled", "false", "--json")
    assert cli("deploy", "--json").json["success"]
    record = DeploymentHistory(project).get(killed)
    assert record.status.value == "interrupted"
    assert record.release == killed and record.details["went_live"] is True
    assert "went live" in record.log[-1]["message"]


def _records(project: Project) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(project.deployments_dir.glob("dep_*.json"))]


def _index_entries(project) -> list[dict]:
    index = project.deployments_dir / "index.json"
    return json.loads(index.read_text())["deployments"] if index.is_file() else []


def test_an_interrupted_netlify_deploy_keeps_its_netlify_deploy_id(netlify, project, cli):
    netlify.ready_after_polls = 10**9  # the deploy waits for "ready" until it is killed
    _deploy_killed_when(
        project.root,
        lambda: (
            project.deployments_dir.is_dir()
            and any(r.get("platform_deploy_id") for r in _records(project))
            # the record is saved before its index entry: kill once both have the id
            and any(e.get("platform_deploy_id") for e in _index_entries(project))
        ),
    )
    (killed,) = _records(project)
    assert killed["platform_deploy_id"] in netlify.deploys
    listed = cli("history", "--json").json["deployments"]
    assert [e["platform_deploy_id"] for e in listed] == [killed["platform_deploy_id"]]

    netlify.ready_after_polls = 1
    assert cli("deploy", "--json").json["success"]
    record = DeploymentHistory(project).get(killed["id"])
    assert record.status.value == "interrupted"
    assert record.platform_deploy_id == killed["platform_deploy_id"]
    assert "went_live" not in record.details  # it never became the published deploy


def test_an_index_entry_whose_record_is_gone_heals_instead_of_blocking_deploys(project, cli):
    kept = cli("deploy", "--json").json["id"]
    orphan = "dep_1700000000000_0000dead"
    index_path = project.deployments_dir / "index.json"
    index = json.loads(index_path.read_text())
    index["deployments"].insert(
        0, {**index["deployments"][0], "id": orphan, "status": "in_progress"}
    )
    index_path.write_text(json.dumps(index))

    assert cli("deploy", "--json").json["success"]
    ids = [e["id"] for e in json.loads(index_path.read_text())["deployments"]]
    assert orphan not in ids and kept in ids and len(ids) == 2
