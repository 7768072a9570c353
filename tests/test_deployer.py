"""The deploy flow's safety nets: checks before, health after, recovery on failure, locks."""

from __future__ import annotations

import http.server
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import write_site

from devops_tasks.config import ConfigStore
from devops_tasks.deployer import Deployer
from devops_tasks.durable import FileLock
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.history import Deployment, DeploymentHistory, Status


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"ok healthy"

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server():
    """An HTTP server on 127.0.0.1 whose answer a test can change."""
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/health"
    yield handler
    server.shutdown()
    server.server_close()


def make_deployer(project, environ=None, **overrides) -> Deployer:
    store = ConfigStore(project, environ=environ or {})
    data = {"version": 1, "platform": "local", **overrides}
    return Deployer(project, store.settings(None, data))


def health(url: str, **extra) -> dict:
    return {
        "health_check": {
            "enabled": True,
            "url": url,
            "retries": 1,
            "interval": 0,
            "timeout": 2,
            **extra,
        }
    }


def test_passing_health_check_is_recorded(project, health_server):
    deployment = make_deployer(project, deployment=health(health_server.url)).deploy()
    assert deployment.status is Status.SUCCESS
    assert deployment.details["health_live"]["healthy"] is True


def test_failing_health_check_restores_the_previous_release(project, health_server):
    good = make_deployer(project).deploy()
    health_server.status = 503
    deployer = make_deployer(project, deployment=health(health_server.url))
    with pytest.raises(DevopsError) as failure:
        deployer.deploy()
    assert failure.value.code is ErrorCode.HEALTH_CHECK_FAILED
    assert "503" in failure.value.message
    assert deployer.platform.live_release() == good.id
    latest = DeploymentHistory(project).latest(environment="production")
    assert latest["status"] == "rolled_back"
    assert DeploymentHistory(project).get(latest["id"]).details["rolled_back_to"] == good.id


def test_a_deploy_that_failed_and_was_rolled_back_is_no_rollback_target(project, health_server):
    make_deployer(project).deploy()
    health_server.status = 503
    with pytest.raises(DevopsError):
        make_deployer(project, deployment=health(health_server.url)).deploy()
    broken = DeploymentHistory(project).latest(environment="production")

    with pytest.raises(DevopsError) as refused:
        make_deployer(project).rollback(to=broken["id"])

    assert refused.value.code is ErrorCode.ROLLBACK_UNAVAILABLE


def test_failing_health_check_without_rollback_on_failure_leaves_new_release(
    project, health_server
):
    make_deployer(project).deploy()
    health_server.status = 500
    settings = health(health_server.url)
    settings["rollback_on_failure"] = False
    deployer = make_deployer(project, deployment=settings)
    with pytest.raises(DevopsError):
        deployer.deploy()
    failed = DeploymentHistory(project).latest(environment="production")
    assert deployer.platform.live_release() == failed["release"]


def test_health_check_can_require_text_in_the_body(project, health_server):
    deployer = make_deployer(project, deployment=health(health_server.url, expect_text="v2"))
    with pytest.raises(DevopsError) as failure:
        deployer.deploy()
    assert "lacks 'v2'" in failure.value.message


def test_unreachable_health_url_fails_after_the_configured_retries(project):
    check = health("http://127.0.0.1:9/", retries=2)
    with pytest.raises(DevopsError) as failure:
        make_deployer(project, deployment=check).deploy()
    assert failure.value.code is ErrorCode.HEALTH_CHECK_FAILED
    record = DeploymentHistory(project).latest(environment="production")
    assert DeploymentHistory(project).get(record["id"]).details["health_live"]["attempts"] == 3


def test_pre_deploy_command_failure_stops_before_any_record(project):
    deployer = make_deployer(project, deployment={"pre_deploy": ["true", "false"]})
    with pytest.raises(DevopsError) as failure:
        deployer.deploy()
    assert failure.value.code is ErrorCode.CHECK_FAILED
    assert DeploymentHistory(project).query() == []


def test_require_clean_git_refuses_uncommitted_changes(project):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "site"], check=True)
    deployer = make_deployer(project, deployment={"require_clean_git": True})
    assert deployer.deploy().version  # clean: deploys, and records the commit
    Path("dist/index.html").write_text("changed")
    with pytest.raises(DevopsError) as failure:
        deployer.deploy()
    assert failure.value.code is ErrorCode.CHECK_FAILED and "uncommitted" in failure.value.message


def test_require_clean_git_outside_a_repository_says_so(project):
    with pytest.raises(DevopsError) as failure:
        make_deployer(project, deployment={"require_clean_git": True}).deploy()
    assert "not a git repository" in failure.value.message


def test_deploy_waits_for_the_environment_lock_then_reports_locked(project):
    deployer = make_deployer(project, deployment={"lock_timeout": 0.2})
    with FileLock(project.deploy_lock_path("production"), owner="alice@laptop (pid 1)"):
        with pytest.raises(DevopsError) as failure:
            deployer.deploy()
    assert failure.value.code is ErrorCode.LOCKED
    assert "alice@laptop" in failure.value.message


def test_a_record_left_in_progress_is_marked_interrupted_by_the_next_deploy(project):
    history = DeploymentHistory(project)
    history.save(Deployment(id="dep_1000_deadbeef", platform="local", environment="production"))
    make_deployer(project).deploy()
    record = history.get("dep_1000_deadbeef")
    assert record.status is Status.INTERRUPTED
    assert record.log[-1]["step"] == "interrupted"


def test_rollback_skips_releases_that_were_pruned(project):
    deployer = make_deployer(project, deployment={"keep_releases": 1})
    first, second, _ = (deployer.deploy() for _ in range(3))
    assert not deployer.platform.can_restore(first.id)
    assert deployer.rollback().release == second.id


def test_rollback_to_a_pruned_release_is_unavailable(project):
    deployer = make_deployer(project, deployment={"keep_releases": 1})
    first = deployer.deploy()
    for _ in range(3):
        deployer.deploy()
    with pytest.raises(DevopsError) as failure:
        deployer.rollback(first.id)
    assert failure.value.code is ErrorCode.ROLLBACK_UNAVAILABLE


def test_rollback_to_another_environments_deployment_is_refused(project):
    staging = make_deployer(project, environment="staging").deploy()
    make_deployer(project).deploy()
    with pytest.raises(DevopsError) as failure:
        make_deployer(project).rollback(staging.id)
    assert "not a successful deployment of production" in failure.value.message


def test_status_reports_a_running_deploy_while_its_lock_is_held(project):
    deployer = make_deployer(project)
    history = DeploymentHistory(project)
    history.save(Deployment(id="dep_2000_cafebabe", platform="local", environment="production"))
    with FileLock(project.deploy_lock_path("production")):
        assert deployer.status()["in_progress"] == "dep_2000_cafebabe"
    assert deployer.status()["in_progress"] is None


def test_local_root_can_be_configured(project, tmp_path):
    deployer = make_deployer(project, local={"root": str(tmp_path / "www")})
    deployer.deploy()
    assert (tmp_path / "www" / "current" / "index.html").is_file()


def test_symlink_leaving_the_build_dir_is_refused_before_any_record(project, tmp_path):
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    Path("dist/leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(DevopsError) as failure:
        make_deployer(project).deploy()
    assert failure.value.code is ErrorCode.VALIDATION_FAILED
    assert DeploymentHistory(project).query() == []


def test_redeploying_writes_a_new_release_each_time(project):
    deployer = make_deployer(project)
    first = deployer.deploy()
    write_site(Path("dist"), "v2")
    second = deployer.deploy()
    assert first.release != second.release
    assert deployer.platform.live_release() == second.release


def test_blue_green_on_the_local_target_switches_only_after_the_upload(project):
    deployer = make_deployer(project, deployment={"strategy": "blue-green"})
    deployment = deployer.deploy()
    assert [e["step"] for e in deployment.log] == ["start", "upload", "publish", "done"]
    assert deployer.platform.live_release() == deployment.release


def test_a_strategy_the_target_cannot_do_is_refused_before_anything_happens(project, monkeypatch):
    from devops_tasks.platforms.local import LocalPlatform

    monkeypatch.setattr(LocalPlatform, "strategies", frozenset({"rolling"}))
    with pytest.raises(DevopsError) as failure:
        make_deployer(project, deployment={"strategy": "canary"}).deploy()
    assert failure.value.code is ErrorCode.VALIDATION_FAILED
    assert "rolling" in failure.value.fix and DeploymentHistory(project).query() == []


def test_a_deploy_the_system_refuses_is_recorded_with_the_systems_reason(project, monkeypatch):
    deployer = make_deployer(project)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/site/releases")

    monkeypatch.setattr(deployer.platform.engine, "upload", refuse)
    with pytest.raises(DevopsError) as failure:
        deployer.deploy()
    assert failure.value.code is ErrorCode.PERMISSION_DENIED
    (record,) = DeploymentHistory(project).query()
    assert record["status"] == "failed"
    assert DeploymentHistory(project).get(record["id"]).error["code"] == "PERMISSION_DENIED"
