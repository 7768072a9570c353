"""``devops logs --lines N`` and ``--follow``: the service's own log on every host.

The hosts share this machine's filesystem, so ``ssh.log_file`` holds ``{host}`` and each
host's log is written right on disk, in the fleet directory.
"""

from __future__ import annotations

import os
import pwd
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet import configure
from sshd import SshServers

from devops_tasks import redaction

LOG = "{host}/app.log"


def log_of(fleet: Path, ip: str, name: str = "app.log") -> Path:
    return fleet / ip / name


def write_logs(servers: SshServers, fleet: Path, count: int, name: str = "app.log") -> None:
    """``count`` numbered lines in each host's log, in a directory the login user owns."""
    login = pwd.getpwnam(servers.user)
    for host in servers.hosts:
        path = log_of(fleet, host.ip, name)
        path.parent.mkdir(exist_ok=True)
        os.chown(path.parent, login.pw_uid, login.pw_gid)
        path.write_text("".join(f"{host.ip} line {n}\n" for n in range(1, count + 1)))


def label(servers: SshServers, index: int) -> str:
    host = servers.hosts[index]
    return f"{servers.user}@{host.ip}:{host.port}"


@pytest.fixture
def logs(project, ssh_servers, fleet) -> Path:
    """Three hosts, each with a 100-line log at ``<fleet>/<ip>/app.log``."""
    configure(project, ssh_servers, fleet, log_file=f"{fleet}/{LOG}")
    write_logs(ssh_servers, fleet, 100)
    return fleet


def test_lines_n_gives_the_last_n_lines_of_every_host_in_host_order(cli, ssh_servers, logs):
    answer = cli("logs", "--lines", "3", "--json").json

    assert answer["success"]
    assert answer["hosts"] == [
        {"host": label(ssh_servers, i), "lines": [f"{h.ip} line {n}" for n in (98, 99, 100)]}
        for i, h in enumerate(ssh_servers.hosts)
    ]


def test_for_people_each_line_is_prefixed_by_its_host(cli, ssh_servers, logs):
    shown = cli("logs", "--lines", "2").stdout.splitlines()
    assert shown == [
        f"{label(ssh_servers, i)} | {h.ip} line {n}"
        for i, h in enumerate(ssh_servers.hosts)
        for n in (99, 100)
    ]


def test_a_relative_log_file_is_under_each_hosts_root(cli, project, ssh_servers, hosts, fleet):
    configure(project, ssh_servers, fleet, log_file="shared/log/app.log")
    for root in hosts:
        (root / "shared" / "log").mkdir(parents=True)
        (root / "shared" / "log" / "app.log").write_text(f"{root.parent.name} here\n")

    answer = cli("logs", "--lines", "5", "--json").json

    assert [h["lines"] for h in answer["hosts"]] == [[f"{h.ip} here"] for h in ssh_servers.hosts]


def test_a_host_whose_log_is_missing_is_reported_and_the_others_answer(cli, ssh_servers, logs):
    log_of(logs, ssh_servers.hosts[1].ip).unlink()

    answer = cli("logs", "--lines", "1", "--json").json
    human = cli("logs", "--lines", "1")

    assert answer["success"]
    failed = answer["hosts"][1]
    assert failed["code"] == "COMMAND_FAILED" and "lines" not in failed
    assert "No such file" in failed["error"] and ssh_servers.hosts[1].ip in failed["error"]
    assert [h.get("lines") for h in answer["hosts"][::2]] == [
        [f"{h.ip} line 100"] for h in ssh_servers.hosts[::2]
    ]
    assert human.exit_code == 0 and len(human.stdout.splitlines()) == 2
    assert "No such file" in human.stderr


def test_when_no_host_can_answer_it_is_a_failure(cli, ssh_servers, logs):
    for host in ssh_servers.hosts:
        log_of(logs, host.ip).unlink()
    failed = cli("logs", "--lines", "1", "--json").json
    assert failed["code"] == "COMMAND_FAILED" and len(failed["hosts"]) == 3


def test_a_host_that_is_down_is_reported_not_waited_for(cli, project, ssh_servers, logs):
    down = f"127.0.0.5:{ssh_servers.hosts[0].port}"
    configure(
        project,
        ssh_servers,
        logs,
        log_file=f"{logs}/{LOG}",
        hosts=[f"{h.ip}:{h.port}" for h in ssh_servers.hosts] + [down],
    )
    started = time.monotonic()

    answer = cli("logs", "--lines", "1", "--json").json

    assert time.monotonic() - started < 5
    assert [h.get("code") for h in answer["hosts"]] == [None, None, None, "HOST_UNREACHABLE"]


def test_a_journal_unit_is_read_with_journalctl_on_every_host(cli, project, ssh_servers, fleet):
    configure(project, ssh_servers, fleet, journal_unit="devops-tasks-test-none.service")
    answer = cli("logs", "--lines", "5", "--json").json
    # journalctl runs on each host; a unit that never logged has no entries
    assert [h["lines"] for h in answer["hosts"]] == [["-- No entries --"]] * 3


def test_a_log_path_with_shell_metacharacters_is_only_a_name(cli, project, ssh_servers, fleet):
    odd = "a $(touch pwned) ;b`touch pwned2`.log"
    configure(project, ssh_servers, fleet, log_file=f"{fleet}/{{host}}/{odd}")
    write_logs(ssh_servers, fleet, 2, name=odd)
    home = Path(pwd.getpwnam(ssh_servers.user).pw_dir)

    answer = cli("logs", "--lines", "1", "--json").json

    assert [h["lines"] for h in answer["hosts"]] == [[f"{h.ip} line 2"] for h in ssh_servers.hosts]
    assert not any((home / name).exists() for name in ("pwned", "pwned2"))


def test_secret_values_in_a_hosts_log_are_masked(cli, ssh_servers, logs):
    secret = "hunter2-very-secret"
    log_of(logs, ssh_servers.hosts[0].ip).write_text(f"password={secret}\n")
    redaction.register_secret(secret)

    printed = cli("logs", "--lines", "1").stdout + cli("logs", "--lines", "1", "--json").stdout

    assert secret not in printed and printed.count(f"password={redaction.MASK}") == 2


def test_a_host_sending_a_huge_line_gives_it_in_bounded_pieces(cli, ssh_servers, logs):
    from devops_tasks.ssh_hosts import MAX_LINE_BYTES

    log_of(logs, ssh_servers.hosts[0].ip).write_text("x" * (MAX_LINE_BYTES * 2 + 5) + "\n")
    lines = cli("logs", "--lines", "3", "--json").json["hosts"][0]["lines"]
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]


def test_without_lines_or_follow_logs_still_shows_a_deployments_steps(cli, ssh_servers, logs):
    deployed = cli("deploy", "--json").json
    steps = cli("logs", "--json").json
    assert steps["id"] == deployed["id"] and "hosts" not in steps
    assert steps["status"] == "success" and steps["log"]


def test_follow_with_json_is_refused_with_a_fix(cli, logs):
    refused = cli("logs", "--follow", "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--lines" in refused["fix"]


def test_an_id_with_lines_is_refused(cli, logs):
    refused = cli("logs", "--id", "dep_1", "--lines", "5", "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--id" in refused["error"]


@pytest.mark.parametrize("bad", ["0", "-3", "ten", "10001"])
def test_lines_must_be_a_whole_number_from_1_to_10000(cli, logs, bad):
    refused = cli("logs", "--lines", bad, "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--lines" in refused["error"]


def test_a_target_without_hosts_refuses_lines_with_a_fix(cli, project):
    refused = cli("logs", "--lines", "5", "--json").json
    assert refused["code"] == "NOT_SUPPORTED" and "without --lines" in refused["fix"]


@pytest.mark.parametrize("settings", [{}, {"log_file": "/x.log", "journal_unit": "app.service"}])
def test_neither_or_both_of_log_file_and_journal_unit_is_config_invalid(
    cli, project, ssh_servers, fleet, settings
):
    configure(project, ssh_servers, fleet, **settings)
    refused = cli("logs", "--lines", "5", "--json").json
    assert refused["code"] == "CONFIG_INVALID" and "ssh.log_file" in refused["fix"]


# -- --follow, in a real process that gets a real SIGINT --------------------------------------


def _lines_of(stream) -> queue.Queue[str]:
    """Every line ``stream`` gives, as it comes, for a test to wait on."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], expected: set[str], seconds: float = 20) -> None:
    missing, deadline = set(expected), time.monotonic() + seconds
    while missing:
        try:
            missing.discard(lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
        except queue.Empty:
            raise AssertionError(f"never printed: {sorted(missing)}") from None


def _tails_reading(path: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"tail .*{path}"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.fixture
def following(project, ssh_servers, logs) -> Iterator[tuple[subprocess.Popen[str], queue.Queue]]:
    """``devops logs --follow --lines 2`` running, its first lines read."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devops_tasks", "logs", "--follow", "--lines", "2"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        lines = _lines_of(process.stdout)
        _wait_for(
            lines,
            {
                f"{label(ssh_servers, i)} | {h.ip} line {n}"
                for i, h in enumerate(ssh_servers.hosts)
                for n in (99, 100)
            },
        )
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_follow_prints_each_hosts_new_lines_as_they_come_then_ctrl_c_ends_it_cleanly(
    ssh_servers, logs, following
):
    process, lines = following
    for round_ in (1, 2):
        for host in ssh_servers.hosts:
            with log_of(logs, host.ip).open("a") as log:
                log.write(f"{host.ip} new {round_}\n")
        _wait_for(
            lines,
            {
                f"{label(ssh_servers, i)} | {h.ip} new {round_}"
                for i, h in enumerate(ssh_servers.hosts)
            },
        )

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=15) == 0
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr and "INTERRUPTED" not in stderr
    deadline = time.monotonic() + 5
    while _tails_reading(logs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tails_reading(logs) == [], "a remote tail -F outlived the follow"


def test_follow_goes_on_with_a_log_that_appears_later(ssh_servers, logs, following):
    process, lines = following
    path = log_of(logs, ssh_servers.hosts[0].ip)
    path.unlink()
    time.sleep(1.5)  # tail -F notices the file is gone, then waits for it
    path.write_text("reborn\n")
    _wait_for(lines, {f"{label(ssh_servers, 0)} | reborn"})
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0


def test_a_value_in_the_secrets_store_is_masked_in_a_hosts_log_before_anything_reads_it(
    cli, ssh_servers, logs, monkeypatch
):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    assert cli("secrets.init", "--json").json["success"]
    assert cli("secrets.set", "DB_PASSWORD", "--value", "s3cr3t-in-the-store", "--json").json[
        "success"
    ]
    log_of(logs, ssh_servers.hosts[0].ip).write_text("connecting with s3cr3t-in-the-store\n")
    monkeypatch.setattr(redaction, "_secrets", set())  # as a new process: nothing read yet

    printed = cli("logs", "--lines", "1").stdout + cli("logs", "--lines", "1", "--json").stdout

    assert "s3cr3t-in-the-store" not in printed
    assert printed.count(f"connecting with {redaction.MASK}") == 2
