"""Deploys and rollbacks reported to GitHub as deployments with statuses (report.github)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_github import FakeGitHub
from local_server import free_port

from devops_tasks.project import Project

REPOSITORY = "octo/site"
_ACTIONS_VARIABLES = (
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
)


def _git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def head(project: Project) -> str:
    """The project is a git checkout of one commit; its sha."""
    _git(project.root, "init", "-q")
    _git(project.root, "add", "dist")
    _git(project.root, "commit", "-q", "-m", "site")
    return _git(project.root, "rev-parse", "HEAD").strip()


@pytest.fixture
def github(github_server, project, head, cli, monkeypatch) -> Iterator[FakeGitHub]:
    """A local project that reports to the fake GitHub's octo/site, with its token set."""
    github_server.reset()
    github_server.add_repository(REPOSITORY, commits={head})
    monkeypatch.setenv("GITHUB_API_URL", github_server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", github_server.token)
    for name in _ACTIONS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert cli("init", "--json").json["success"]
    _set(cli, "report.github", {"repository": REPOSITORY})
    yield github_server
    assert github_server.violations == []


def _set(cli, key: str, value: object) -> None:
    assert cli("config.set", key, json.dumps(value), "--json").json["success"]


def _bodies(fake: FakeGitHub, path_end: str) -> list[dict]:
    return [r.json for r in fake.requests if r.path.endswith(path_end) and r.status == 201]


def test_a_deploy_creates_one_github_deployment_of_its_commit(github, cli, head):
    result = cli("deploy", "--json").json

    assert result["success"]
    (deployment,) = github.deployments.values()
    assert result["details"]["github_deployment_id"] == deployment["id"]
    (sent,) = _bodies(github, "/deployments")
    assert sent["ref"] == head and sent["environment"] == "production"
    assert sent["task"] == "deploy" and sent["payload"]["devops_id"] == result["id"]
    assert sent["auto_merge"] is False and sent["required_contexts"] == []
    assert sent["production_environment"] is True and sent["transient_environment"] is False


def test_a_deploy_posts_in_progress_then_success(github, cli):
    result = cli("deploy", "--json").json

    (deployment_id,) = github.deployments
    assert github.states(deployment_id) == ["in_progress", "success"]
    final = _bodies(github, "/statuses")[-1]
    assert final["auto_inactive"] is True and result["id"] in final["description"]
    assert "warnings" not in result["details"]


def test_a_failed_deploy_posts_failure(github, cli):
    closed = f"http://127.0.0.1:{free_port()}/health"
    _set(cli, "deployment.health_check", {"enabled": True, "url": closed, "retries": 0})

    result = cli("deploy", "--json").json

    assert result["success"] is False and result["code"] == "HEALTH_CHECK_FAILED"
    (deployment_id,) = github.deployments
    assert github.states(deployment_id) == ["in_progress", "failure"]
    assert "HEALTH" not in _bodies(github, "/statuses")[-1]["description"]  # words, not codes
    assert "Health check" in _bodies(github, "/statuses")[-1]["description"]


def test_a_rollback_is_a_deployment_of_the_commit_it_restores(github, cli, project, head):
    cli("deploy", "--json")
    (project.root / "dist" / "index.html").write_text("<h1>v2</h1>\n")
    _git(project.root, "commit", "-q", "-am", "v2")
    github.add_repository(REPOSITORY)  # knows every commit
    cli("deploy", "--json")

    result = cli("rollback", "--json").json

    assert result["success"]
    rollback = github.deployments[result["details"]["github_deployment_id"]]
    assert rollback["task"] == "deploy:rollback" and rollback["sha"] == head
    assert github.states(rollback["id"]) == ["in_progress", "success"]


def test_a_promote_is_a_deployment_of_the_environment_it_goes_to(github, cli, head):
    cli("deploy", "--env", "staging", "--json")

    result = cli("promote", "--from", "staging", "--to", "production", "--json").json

    assert result["success"]
    promoted = github.deployments[result["details"]["github_deployment_id"]]
    assert promoted["task"] == "deploy:promote" and promoted["environment"] == "production"
    assert promoted["sha"] == head
    assert github.states(promoted["id"]) == ["in_progress", "success"]


def test_the_status_links_the_environment_and_the_actions_run(github, cli, monkeypatch):
    _set(cli, "deployment.health_check.url", "https://site.example.test/")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("GITHUB_RUN_ID", "42")

    cli("deploy", "--json")

    final = _bodies(github, "/statuses")[-1]
    assert final["environment_url"] == "https://site.example.test/"
    assert final["log_url"] == f"https://github.com/{REPOSITORY}/actions/runs/42"


def test_preview_environments_are_transient_and_not_production(github, cli):
    _set(cli, "report.github.transient_environments", ["pr-*"])

    cli("deploy", "--env", "pr-7", "--json")

    (sent,) = _bodies(github, "/deployments")
    assert sent["environment"] == "pr-7"
    assert sent["transient_environment"] is True and sent["production_environment"] is False


def test_a_new_success_makes_the_last_one_of_a_staging_environment_inactive(github, cli):
    first = cli("deploy", "--env", "staging", "--json").json["details"]["github_deployment_id"]
    cli("deploy", "--env", "staging", "--json")

    assert github.states(first) == ["in_progress", "success", "inactive"]


# -- reporting never fails the deploy ----------------------------------------------------------


def _warnings(result: dict) -> list[str]:
    return result["details"].get("warnings", [])


def test_github_down_is_a_warning_and_the_deploy_succeeds(github, cli, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")

    run = cli("deploy", "--json")

    assert run.json["success"] and run.exit_code == 0
    (warning,) = _warnings(run.json)
    assert "GitHub could not be reached" in warning
    assert "GitHub could not be reached" in run.stderr


def test_github_answering_500_is_a_warning_after_a_few_tries(github, cli):
    github.inject(r"/deployments$", status=500, times=10)

    started = time.monotonic()
    result = cli("deploy", "--json").json

    assert result["success"]
    assert "HTTP 500" in _warnings(result)[0]
    assert len([r for r in github.requests if r.path.endswith("/deployments")]) == 3
    assert time.monotonic() - started < 15
    assert github.deployments == {}


def test_a_status_refused_midway_is_a_warning_and_the_last_status_still_goes(github, cli):
    github.inject(r"/statuses$", status=500, times=3)  # the in_progress post, and its retries

    result = cli("deploy", "--json").json

    assert result["success"] and len(_warnings(result)) == 1
    (deployment_id,) = github.deployments
    assert github.states(deployment_id) == ["success"]


def test_an_answer_without_a_deployment_id_is_a_warning(github, cli):
    github.inject(r"/deployments$", status=201)  # answered with no deployment in it

    result = cli("deploy", "--json").json

    assert result["success"] and "names no deployment id" in _warnings(result)[0]
    assert not [r for r in github.requests if r.path.endswith("/statuses")]


def test_a_missing_token_is_a_warning_that_names_it(github, cli, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")

    result = cli("deploy", "--json").json

    assert result["success"] and "GITHUB_TOKEN is not set" in _warnings(result)[0]
    assert github.requests == []


def test_an_api_url_elsewhere_from_the_config_file_never_gets_the_token(github, cli, monkeypatch):
    monkeypatch.delenv("GITHUB_API_URL")
    _set(cli, "report.github.api_url", "https://api.example.com")

    result = cli("deploy", "--json").json

    assert result["success"] and "report.github.api_url" in _warnings(result)[0]


def test_an_api_url_on_this_machine_from_the_config_file_is_used(github, cli, monkeypatch):
    monkeypatch.delenv("GITHUB_API_URL")
    _set(cli, "report.github.api_url", github.api_url)

    result = cli("deploy", "--json").json

    assert "warnings" not in result["details"] and len(github.deployments) == 1


def test_the_token_never_appears_in_output_or_records(github, cli, project, monkeypatch):
    rejected = "ghp_rejected0token0that0must0stay0secret"
    monkeypatch.setenv("GITHUB_TOKEN", rejected)

    run = cli("deploy", "--json")

    assert "rejected the token" in _warnings(run.json)[0]  # GitHub answered 401
    written = "".join(p.read_text() for p in project.state_dir.rglob("*.json"))
    assert rejected not in run.stdout + run.stderr + written


def test_without_report_github_nothing_is_sent(github, cli):
    _set(cli, "report", {})

    assert cli("deploy", "--json").json["success"]
    assert github.requests == []


# -- interrupted deploys -----------------------------------------------------------------------


def _health_check_waiting(silent: socket.socket, path: str) -> socket.socket:
    """The connection on which the deploy has sent its whole health check (GET ``path``) and
    now waits for an answer; connections from anything else on this machine are closed.

    Signalling on ``accept()`` alone raced: the port is the machine's, and the deploy was
    still running Python between its connect and its read when the signal came.
    """
    while True:
        connection, _ = silent.accept()
        connection.settimeout(60)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = connection.recv(4096)
            if not chunk:
                break
            request += chunk
        if request.startswith(f"GET {path} ".encode()) and request.endswith(b"\r\n\r\n"):
            return connection
        connection.close()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_deploy_stopped_mid_way_posts_error(github, cli, project, stop):
    with socket.socket() as silent:  # accepts the health check's connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(60)
        path = f"/health-{os.getpid()}-{stop.name}"
        url = f"http://127.0.0.1:{silent.getsockname()[1]}{path}"
        _set(cli, "deployment.health_check", {"enabled": True, "url": url, "timeout": 60})
        worker = subprocess.Popen(
            [sys.executable, "-m", "devops_tasks", "deploy", "--json"],
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            with _health_check_waiting(silent, path):  # the deploy is live and being checked
                os.kill(worker.pid, stop)
                stdout, _ = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    assert json.loads(stdout)["code"] == "INTERRUPTED"
    (deployment_id,) = github.deployments
    assert github.states(deployment_id) == ["in_progress", "error"]


def test_a_ctrl_c_while_the_last_status_is_posted_waits_until_it_is_posted(github, cli):
    github.slow_states["success"] = 1.0

    def interrupt_during_the_post() -> None:
        deadline = time.monotonic() + 30
        while not any((r.json or {}).get("state") == "success" for r in github.requests):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_during_the_post)
    interrupter.start()
    run = cli("deploy", "--json")
    interrupter.join()

    assert run.json["success"]
    (deployment_id,) = github.deployments
    assert github.states(deployment_id) == ["in_progress", "success"]
