"""Locks held on the ssh hosts themselves, against three real sshd hosts (see sshd.py).

The test hosts share this machine's filesystem, so each host's lock is checked right on
disk at ``<root>/.devops/lock``. Deploys that must be killed or raced run as real processes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fleet import configure, live, roots
from helpers import CliResult, run_devops

from devops_tasks.config import ConfigStore
from devops_tasks.durable import FileLock
from devops_tasks.host_state import HostState
from devops_tasks.interrupts import terminate_as_interrupt
from devops_tasks.platforms import create
from devops_tasks.project import Project
from devops_tasks.releases import LocalConnection

#: Someone else, deploying from another machine.
ALICE = {
    "actor": "alice@ci-runner-7",
    "machine": "ci-runner-7",
    "pid": 4242,
    "deployment": "dep_1764111420000_ab12cd34",
    "action": "deploy",
    "version": "v9",
    "message": "hotfix for the login page",
    "token": "a1" * 16,
}


def _lock(root: Path) -> Path:
    return root / ".devops" / "lock"


@pytest.fixture
def login(ssh_servers) -> pwd.struct_passwd:
    return pwd.getpwnam(ssh_servers.user)


def _owned_by(login: pwd.struct_passwd, top: Path) -> None:
    """Everything under ``top`` made the login user's, as if the hosts had written it."""
    for directory, _, names in os.walk(top):
        for path in (directory, *(os.path.join(directory, n) for n in names)):
            os.chown(path, login.pw_uid, login.pw_gid)


def _plant_lock(root: Path, login: pwd.struct_passwd, age: int = 0, **holder: Any) -> None:
    """A lock as a deploy leaves it on a host: taken ``age`` seconds ago (host clock)."""
    lock = _lock(root)
    lock.mkdir(parents=True)
    data = {**ALICE, **holder, "since": int(time.time()) - age}
    (lock / "holder.json").write_text(json.dumps(data) + "\n")
    _owned_by(login, root.parent)


def _settle(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def _all_locked(hosts: list[Path]) -> Callable[[], bool]:
    return lambda: all((_lock(root) / "holder.json").is_file() for root in hosts)


@pytest.fixture
def gate() -> Iterator[tuple[str, threading.Event]]:
    """A health check URL that answers 200 only once the test opens the gate."""
    opened = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            opened.wait(120)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"up")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/up", opened
    finally:
        opened.set()
        server.shutdown()
        server.server_close()


def _wait_at_the_gate(cli, url: str) -> None:
    """Deploys of this project hang in their health check until the gate opens."""
    check = {"enabled": True, "url": url, "timeout": 120, "retries": 0}
    assert cli("config.set", "deployment.health_check", json.dumps(check), "--json").json["success"]


def _start_deploy(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devops_tasks", "deploy", "--json", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _finish(worker: subprocess.Popen[str]) -> CliResult:
    stdout, stderr = worker.communicate(timeout=120)
    return CliResult(worker.returncode, stdout, stderr)


def _second_checkout(project: Project, tmp_path: Path) -> Path:
    """Another clone of the project: the same config, no records."""
    other = tmp_path / "other-checkout"
    (other / ".devops").mkdir(parents=True)
    shutil.copy(project.config_path, other / ".devops" / "config.json")
    shutil.copytree(project.root / "dist", other / "dist")
    return other


@pytest.fixture
def held_by_alice(project: Project, hosts: list[Path]) -> Iterator[None]:
    """Every host locked by ALICE's deploy (through the library, as her devops would)."""
    with create(project, ConfigStore(project).settings()) as target, target.hold(dict(ALICE)):
        yield


# -- taking the locks ------------------------------------------------------------------------


def test_a_held_lock_makes_a_deploy_fail_at_once_with_locked_naming_the_holder(
    project, cli, hosts, held_by_alice
):
    refused = cli("deploy", "--json").json

    assert refused["code"] == "LOCKED"
    for said in (
        "alice@ci-runner-7",
        "ci-runner-7",
        "pid 4242",
        "since",
        "deploy",
        ALICE["deployment"],
    ):
        assert said in refused["error"]
    assert refused["holder"]["actor"] == "alice@ci-runner-7" and not refused["stale"]
    assert "lock.status" in refused["fix"] and "lock.release" in refused["fix"]
    assert all(not (root / "releases").exists() for root in hosts)  # nothing uploaded
    for root in hosts:  # and her locks are still hers
        assert json.loads((_lock(root) / "holder.json").read_text())["token"] == ALICE["token"]


def test_every_host_lock_is_released_when_a_deploy_ends(project, cli, hosts):
    assert cli("deploy", "--json").json["success"]
    check = {"enabled": True, "url": "http://127.0.0.1:9/up", "retries": 0, "timeout": 1}
    cli("config.set", "deployment.health_check", json.dumps(check), "--json")

    assert cli("deploy", "--json").json["code"] == "HEALTH_CHECK_FAILED"

    assert [_lock(root).exists() for root in hosts] == [False] * 3
    assert all((root / ".devops").is_dir() for root in hosts)


def test_a_deploy_that_cannot_lock_the_first_host_by_name_asks_no_other(
    project, cli, ssh_servers, fleet, login
):
    first, middle, last = ssh_servers.hosts  # by name: 127.0.0.2 < .3 < .4
    configure(
        project, ssh_servers, fleet, hosts=[f"{h.ip}:{h.port}" for h in (last, middle, first)]
    )
    first_root, middle_root, last_root = roots(ssh_servers, fleet)
    _plant_lock(first_root, login)

    refused = cli("deploy", "--json").json

    assert refused["code"] == "LOCKED", refused  # the answer's error, if it is another one
    assert refused["host"].endswith(f"@{first.ip}:{first.port}")
    assert "released" not in refused
    assert not (middle_root / ".devops").exists() and not (last_root / ".devops").exists()


def test_after_the_first_host_the_others_are_locked_at_once_and_let_go_if_one_is_held(
    project, cli, ssh_servers, fleet, login
):
    first, middle, last = ssh_servers.hosts
    configure(
        project, ssh_servers, fleet, hosts=[f"{h.ip}:{h.port}" for h in (last, middle, first)]
    )
    first_root, middle_root, last_root = roots(ssh_servers, fleet)
    _plant_lock(middle_root, login)

    refused = cli("deploy", "--json").json

    assert refused["code"] == "LOCKED" and refused["host"].endswith(f"@{middle.ip}:{middle.port}")
    assert refused["released"] == [f"{ssh_servers.user}@{h.ip}:{h.port}" for h in (first, last)]
    assert not _lock(first_root).exists() and not _lock(last_root).exists()
    assert json.loads((_lock(middle_root) / "holder.json").read_text())["token"] == ALICE["token"]


def test_of_two_concurrent_deploys_from_two_checkouts_one_proceeds_and_the_other_is_locked(
    project, cli, hosts, gate, tmp_path
):
    url, opened = gate
    _wait_at_the_gate(cli, url)
    other = _second_checkout(project, tmp_path)
    first = _start_deploy(project.root)
    try:
        _settle(_all_locked(hosts), "the first deploy holds every host")

        second = run_devops("deploy", "--json", cwd=other)
    finally:
        opened.set()
        proceeded = _finish(first)

    assert proceeded.json["success"], proceeded.stdout + proceeded.stderr
    refused = second.json
    assert refused["code"] == "LOCKED" and refused["holder"]["pid"] == first.pid
    assert refused["holder"]["deployment"] == proceeded.json["id"]
    assert [live(root) for root in hosts] == [proceeded.json["release"]] * 3
    assert [_lock(root).exists() for root in hosts] == [False] * 3


# -- interruptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_a_signal_during_a_deploy_releases_every_host_lock(project, cli, hosts, gate, stop):
    _wait_at_the_gate(cli, gate[0])
    worker = _start_deploy(project.root)
    _settle(_all_locked(hosts), "the deploy holds every host")
    _settle(lambda: live(hosts[0]) is not None, "the deploy waits in its health check")

    worker.send_signal(stop)
    stopped = _finish(worker)

    assert stopped.json["code"] == "INTERRUPTED", stopped.stderr
    assert [_lock(root).exists() for root in hosts] == [False] * 3
    cli("config.set", "deployment.health_check.enabled", "false", "--json")
    assert cli("deploy", "--json").json["success"]


def test_after_kill_9_lock_status_shows_the_holder_and_then_stale_after_the_ttl(
    project, cli, hosts, gate
):
    _wait_at_the_gate(cli, gate[0])
    worker = _start_deploy(project.root, "--message", "friday deploy")
    _settle(_all_locked(hosts), "the deploy holds every host")
    worker.kill()
    worker.wait()

    held = cli("lock.status", "--json").json

    assert [lock["state"] for lock in held["hosts"]] == ["held"] * 3
    holder = held["hosts"][0]["holder"]
    assert holder["pid"] == worker.pid and holder["machine"] == socket.gethostname()
    assert holder["action"] == "deploy" and holder["message"] == "friday deploy"
    assert held["project_lock"] == {"held": False, "holder": None}  # the kernel let it go

    cli("config.set", "deployment.lock_ttl", "0.5", "--json")
    _settle(
        # the hosts were locked one after another, and ages are whole seconds of each host
        lambda: all(h["state"] == "stale" for h in cli("lock.status", "--json").json["hosts"]),
        "every lock is older than lock_ttl",
        timeout=10,
    )
    stale = cli("lock.status", "--json").json["hosts"]
    assert [lock["state"] for lock in stale] == ["stale"] * 3
    # the same holder on every host; each host took its lock at its own moment
    assert {**stale[2]["holder"], "since": None} == {**holder, "since": None}


def test_a_stale_lock_still_refuses_a_deploy_saying_it_is_stale_and_how_to_clear_it(
    project, cli, hosts, login
):
    _plant_lock(hosts[1], login, age=7200)

    refused = cli("deploy", "--json").json

    assert refused["code"] == "LOCKED" and refused["stale"] is True
    assert "stale" in refused["error"] and "alice@ci-runner-7" in refused["error"]
    assert "devops lock.release" in refused["fix"]
    assert not _lock(hosts[0]).exists()  # the lock it had taken first was let go


def test_a_lock_is_released_only_by_its_holder(project, hosts, login):
    _plant_lock(hosts[0], login)
    state = HostState(LocalConnection(), str(hosts[0]), "host-a")

    assert state.release("b2" * 16) is False
    assert _lock(hosts[0]).is_dir()
    assert state.release(ALICE["token"]) is True
    assert not _lock(hosts[0]).exists()


def test_a_locks_age_is_measured_on_the_hosts_clock(project, hosts, tmp_path, monkeypatch):
    """A host whose clock is two hours behind ours: its fresh lock is fresh, not 'future'."""
    behind = int(time.time()) - 7200
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "date").write_text(f"#!/bin/sh\necho {behind}\n")
    (fake / "date").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    state = HostState(LocalConnection(), str(tmp_path / "root"), "skewed")

    state.take(dict(ALICE), ttl=60)
    lock = state.inspect(ttl=60)

    assert lock.state == "held" and lock.age == 0
    assert lock.holder is not None and lock.holder["since"].startswith(
        time.strftime("%Y-%m-%dT", time.gmtime(behind))
    )


# -- lock.status and lock.release -------------------------------------------------------------


def test_lock_status_says_free_for_every_host_and_the_project_lock_when_held(project, cli, hosts):
    with FileLock(project.deploy_lock_path("production"), owner="bob@laptop (pid 77)"):
        shown = cli("lock.status", "--json").json

    assert [lock["state"] for lock in shown["hosts"]] == ["free"] * 3
    assert shown["project_lock"] == {"held": True, "holder": "bob@laptop (pid 77)"}
    assert shown["lock_ttl"] == 3600


def test_lock_status_for_people_names_each_host_and_the_holder(
    project, cli, ssh_servers, hosts, held_by_alice
):
    shown = cli("lock.status")

    assert shown.exit_code == 0, shown.stderr
    for host in ssh_servers.hosts:
        assert f"{host.ip}:{host.port}  locked by alice@ci-runner-7 on ci-runner-7" in shown.stdout
    assert "'hotfix for the login page'" in shown.stdout


def test_lock_release_without_force_keeps_a_live_lock_and_with_force_removes_it_naming_it(
    project, cli, hosts, login
):
    for root in hosts:
        _plant_lock(root, login)

    kept = cli("lock.release", "--json").json

    assert kept["released"] == [] and [h["released"] for h in kept["hosts"]] == [False] * 3
    assert all(_lock(root).is_dir() for root in hosts)

    forced = cli("lock.release", "--force", "--json").json

    assert len(forced["released"]) == 3
    assert {h["reason"] for h in forced["hosts"]} == {"forced"}
    assert forced["hosts"][0]["holder"]["actor"] == "alice@ci-runner-7"
    assert not any(_lock(root).exists() for root in hosts)


def test_lock_release_removes_stale_locks_and_those_of_ended_processes_of_this_machine(
    project, cli, hosts, login
):
    ended = subprocess.Popen(["true"])
    ended.wait()
    _plant_lock(hosts[0], login, age=7200)
    _plant_lock(hosts[1], login, machine=socket.gethostname(), pid=ended.pid)
    _plant_lock(hosts[2], login, machine=socket.gethostname(), pid=os.getpid())

    result = cli("lock.release", "--json").json

    assert [h["reason"] for h in result["hosts"]] == ["stale", "its process has ended", None]
    assert [_lock(root).exists() for root in hosts] == [False, False, True]
    assert cli("lock.release", "--force", "--json").json["released"] == [result["hosts"][2]["host"]]
    assert cli("deploy", "--json").json["success"]


def test_lock_release_for_people_says_what_it_removed_and_what_it_kept(project, cli, hosts, login):
    _plant_lock(hosts[0], login, age=7200)
    _plant_lock(hosts[1], login)

    shown = cli("lock.release")

    assert shown.exit_code == 0, shown.stderr
    assert "released (stale):" in shown.stdout and "kept:" in shown.stdout
    assert "--force" in shown.stdout


def test_lock_tasks_on_a_target_without_host_locks_say_so(project, cli):
    assert cli("init", "--json").json["success"]

    assert cli("lock.status", "--json").json["hosts"] == []
    assert "keeps no locks" in cli("lock.status").stdout
    assert cli("lock.release", "--json").json["released"] == []


def test_a_message_with_shell_metacharacters_is_only_text_in_the_lock(
    project, cli, hosts, fleet, ssh_servers
):
    message = (
        f"$(touch {fleet}/pwned) `touch {fleet}/pwned2` 'single' \"double\"\nsecond line; rm -rf /"
    )
    holder = {**ALICE, "message": message}

    with create(project, ConfigStore(project).settings()) as target, target.hold(holder):
        shown = cli("lock.status", "--json").json

    assert [lock["holder"]["message"] for lock in shown["hosts"]] == [message] * 3
    assert not (fleet / "pwned").exists() and not (fleet / "pwned2").exists()
    home = Path(pwd.getpwnam(ssh_servers.user).pw_dir)
    assert not (home / "pwned").exists()


def test_a_lock_whose_holder_cannot_be_read_is_shown_as_unknown_and_only_force_removes_it(
    project, cli, hosts, login
):
    _plant_lock(hosts[0], login)
    (_lock(hosts[0]) / "holder.json").write_text("{not json")

    shown = cli("lock.status", "--json").json["hosts"][0]
    kept = cli("lock.release", "--json").json
    refused = cli("deploy", "--json").json
    forced = cli("lock.release", "--force", "--json").json

    assert shown["state"] == "unknown" and shown["holder"] is None
    assert kept["released"] == [] and kept["hosts"][0]["state"] == "unknown"
    assert refused["code"] == "LOCKED" and "unknown holder" in refused["error"]
    assert forced["released"] == [shown["host"]] and not _lock(hosts[0]).exists()


def test_status_for_people_shows_who_holds_the_hosts(
    project, cli, ssh_servers, hosts, held_by_alice
):
    shown = cli("status")

    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.count("locked by alice@ci-runner-7 on ci-runner-7") == 3


def test_a_deploy_run_outside_the_main_thread_leaves_sigterm_alone():
    before = signal.getsignal(signal.SIGTERM)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with terminate_as_interrupt():
                assert signal.getsignal(signal.SIGTERM) is before
        except BaseException as exc:  # noqa: BLE001 - reported to the test's thread
            failures.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()

    assert failures == []


def test_a_host_whose_lock_cannot_be_made_is_named_once_with_the_fix(
    project, cli, ssh_servers, fleet, login
):
    configure(project, ssh_servers, fleet)
    first = ssh_servers.hosts[0]
    first_root = roots(ssh_servers, fleet)[0]
    first_root.mkdir(parents=True)
    (first_root / ".devops").write_text("not a directory\n")
    _owned_by(login, fleet)

    failed = cli("deploy", "--json").json

    label = f"{ssh_servers.user}@{first.ip}:{first.port}"
    assert failed["code"] == "DEPLOY_FAILED" and failed["error"].count(label) == 1
    assert "can be created and written by the login user" in failed["fix"]
