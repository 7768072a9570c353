"""The audit log on each ssh host, and what it makes possible from a checkout with no records.

Each host's log is read right on disk at ``<root>/.devops/audit.log`` (the test hosts share
this machine's filesystem); ``history --remote``, ``status`` and ``rollback`` read it over ssh.
"""

from __future__ import annotations

import json
import pwd
import shutil
from pathlib import Path
from typing import Any

import pytest
from fleet import configure, live
from helpers import write_site

from devops_tasks.history import Deployment, DeploymentHistory
from devops_tasks.host_state import MAX_AUDIT_LINE_BYTES, audit_line

ODD = (
    "$(touch {fleet}/pwned) `touch {fleet}/pwned2` 'single' \"double\" %s %n \\\nline two; rm -rf /"
)


def _audit(root: Path) -> list[dict[str, Any]]:
    log = root / ".devops" / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


def _label(ssh_servers, host) -> str:
    return f"{ssh_servers.user}@{host.ip}:{host.port}"


def _second_checkout(project, tmp_path, monkeypatch) -> Path:
    """Another clone of the project, made current: the same config, no records at all."""
    other = tmp_path / "other-checkout"
    (other / ".devops").mkdir(parents=True)
    shutil.copy(project.config_path, other / ".devops" / "config.json")
    monkeypatch.chdir(other)
    return other


def test_every_deploy_and_rollback_appends_one_line_to_each_hosts_audit_log(
    project, cli, ssh_servers, hosts
):
    first = cli("deploy", "--json", "--message", "first").json
    second = cli("deploy", "--json").json
    back = cli("rollback", "--json", "--message", "second broke the cart").json

    for host, root in zip(ssh_servers.hosts, hosts, strict=True):
        lines = _audit(root)
        assert [(e["id"], e["action"], e["status"]) for e in lines] == [
            (first["id"], "deploy", "success"),
            (second["id"], "deploy", "success"),
            (back["id"], "rollback", "success"),
        ]
        assert {e["host"] for e in lines} == {_label(ssh_servers, host)}
        assert lines[0]["outcome"] == {"status": "switched"}
        assert lines[0]["message"] == "first" and lines[0]["actor"] == first["actor"]
        assert lines[2]["release"] == first["release"] and lines[2]["rollback_of"] == second["id"]
        assert lines[2]["message"] == "second broke the cart"


def test_a_failed_deploy_is_audited_on_each_host_with_the_error_and_its_outcome(
    project, cli, hosts
):
    cli("deploy", "--json")
    check = {"enabled": True, "url": "http://127.0.0.1:9/up", "retries": 0, "timeout": 1}
    cli("config.set", "deployment.health_check", json.dumps(check), "--json")

    assert cli("deploy", "--json").json["code"] == "HEALTH_CHECK_FAILED"

    failed = cli("logs", "--json").json["id"]
    for root in hosts:
        line = _audit(root)[-1]
        assert line["id"] == failed
        assert line["status"] == "rolled_back" and line["error"]["code"] == "HEALTH_CHECK_FAILED"
        assert line["outcome"] == {"status": "rolled_back"}


def test_a_host_failing_phase_one_is_audited_as_failed_and_the_others_as_discarded(
    project, cli, ssh_servers, fleet, hosts
):
    cli("deploy", "--json")
    (hosts[1] / "releases").chmod(0o555)  # the login user cannot unpack a release there
    write_site(project.root / "dist", "v2")
    try:
        failed = cli("deploy", "--json").json
    finally:
        (hosts[1] / "releases").chmod(0o755)

    assert failed["code"] == "DEPLOY_FAILED"
    outcomes = [_audit(root)[-1]["outcome"] for root in hosts]
    assert [o["status"] for o in outcomes] == ["discarded", "failed", "discarded"]
    assert "Permission denied" in outcomes[1]["error"]


def test_an_audit_log_a_host_cannot_take_is_a_warning_never_a_failed_deploy(
    project, cli, hosts, ssh_servers
):
    cli("deploy", "--json")
    log = hosts[2] / ".devops" / "audit.log"
    log.unlink()
    log.mkdir()  # appending to it fails

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    record = cli("logs", "--json").json
    assert record["log"][-1]["step"] == "audit" and "warning" in record["log"][-1]["message"]
    assert ssh_servers.hosts[2].ip in record["log"][-1]["message"]
    assert [len(_audit(root)) for root in hosts[:2]] == [2, 2]


def test_history_remote_merges_the_hosts_audit_logs_with_the_local_records(
    project, cli, ssh_servers, hosts
):
    first = cli("deploy", "--json").json
    second = cli("deploy", "--json", "--message", "v2").json
    (hosts[0] / ".devops" / "audit.log").open("a").write('not json\n{"id": "../x"}\n')

    remote = cli("history", "--remote", "--json").json["remote"]

    assert [(r["id"], r["deployment"]) for r in remote] == [
        (second["id"], second["id"]),
        (first["id"], first["id"]),
    ]
    assert remote[0]["message"] == "v2" and remote[0]["status"] == "success"
    assert remote[0]["hosts"] == len(ssh_servers.hosts) and "failed_hosts" not in remote[0]


def test_history_remote_reads_the_hosts_that_answer_and_names_those_that_do_not(
    project, cli, ssh_servers, fleet, hosts
):
    deployed = cli("deploy", "--json").json
    down = f"127.0.0.5:{ssh_servers.hosts[0].port}"
    configure(
        project, ssh_servers, fleet, hosts=[f"{h.ip}:{h.port}" for h in ssh_servers.hosts] + [down]
    )

    answer = cli("history", "--remote", "--json").json

    assert answer["success"] and [r["id"] for r in answer["remote"]] == [deployed["id"]]
    assert answer["remote"][0]["hosts"] == len(ssh_servers.hosts)
    (unread,) = answer["remote_unread"]
    assert unread["host"].endswith(down) and unread["code"] == "HOST_UNREACHABLE"


def test_history_remote_for_people_says_which_host_was_not_read(project, cli, ssh_servers, fleet):
    down = f"127.0.0.5:{ssh_servers.hosts[0].port}"
    hosts = [f"{h.ip}:{h.port}" for h in ssh_servers.hosts[:1]] + [down]
    configure(project, ssh_servers, fleet, hosts=hosts)

    shown = cli("history", "--remote")

    assert shown.exit_code == 0, shown.stderr
    assert f"{down} was not read" in shown.stdout + shown.stderr


def test_history_remote_with_no_host_answering_fails_naming_them(project, cli, ssh_servers, fleet):
    configure(project, ssh_servers, fleet, hosts=[f"127.0.0.5:{ssh_servers.hosts[0].port}"])

    failed = cli("history", "--remote", "--json").json

    assert not failed["success"] and "127.0.0.5" in failed["error"]


def test_history_remote_lists_only_what_reached_the_hosts_and_limits_it(project, cli, hosts):
    ids = [cli("deploy", "--json").json["id"] for _ in range(3)]

    remote = cli("history", "--remote", "--limit", "2", "--json").json["remote"]

    assert [r["id"] for r in remote] == ids[:0:-1]


def test_status_from_a_second_checkout_shows_each_hosts_release_and_the_deployment(
    project, cli, hosts, tmp_path, monkeypatch
):
    deployed = cli("deploy", "--json", "--message", "from the laptop").json
    other = _second_checkout(project, tmp_path, monkeypatch)

    status = cli("status", "--json").json

    assert status["live_release"] == deployed["release"] and status["in_sync"]
    assert status["target"]["hosts_agree"] and len(status["target"]["hosts"]) == 3
    assert not [host for host in status["target"]["hosts"] if "current" in host]  # the live one
    assert status["deployment"]["id"] == deployed["id"]
    assert status["deployment"].get("version") == deployed["version"]  # null: left out
    assert status["deployment"]["message"] == "from the laptop"
    assert status["locks"] == []  # free locks are left to lock.status
    assert not (other / ".devops" / "deployments").exists()


def test_rollback_from_a_second_checkout_restores_the_previous_good_release(
    project, cli, hosts, tmp_path, monkeypatch
):
    first = cli("deploy", "--json").json
    cli("deploy", "--json")
    check = {"enabled": True, "url": "http://127.0.0.1:9/up", "retries": 0, "timeout": 1}
    cli("config.set", "deployment.health_check", json.dumps(check), "--json")
    write_site(project.root / "dist", "v3")
    assert cli("deploy", "--json").json["code"] == "HEALTH_CHECK_FAILED"  # audited, failed
    _second_checkout(project, tmp_path, monkeypatch)

    # the last good deploy is live: the one before it is the target, never the failed one
    rolled_back = cli("rollback", "--json", "--message", "from CI").json

    assert rolled_back["success"], rolled_back
    assert rolled_back["release"] == first["release"]
    assert rolled_back["details"]["restored"] == first["id"]
    assert [live(root) for root in hosts] == [first["release"]] * 3
    assert _audit(hosts[0])[-1]["action"] == "rollback"
    assert _audit(hosts[0])[-1]["message"] == "from CI"
    assert DeploymentHistory(project).query()[0]["action"] == "deploy"  # not the laptop's


def test_rollback_from_a_second_checkout_with_nothing_earlier_is_unavailable(
    project, cli, hosts, tmp_path, monkeypatch
):
    cli("deploy", "--json")
    _second_checkout(project, tmp_path, monkeypatch)

    refused = cli("rollback", "--json").json

    assert refused["code"] == "ROLLBACK_UNAVAILABLE"


def test_a_message_with_shell_metacharacters_is_only_text_everywhere(
    project, cli, hosts, fleet, ssh_servers
):
    message = ODD.format(fleet=fleet)

    deployed = cli("deploy", "--json", "--message", message).json
    cli("deploy", "--json")
    rolled = cli("rollback", "--json", "--message", message).json

    assert deployed["message"] == message and rolled["message"] == message
    assert DeploymentHistory(project).get(deployed["id"]).message == message
    assert cli("history", "--json").json["deployments"][-1]["message"] == message
    for root in hosts:
        assert [line["message"] for line in _audit(root)] == [message, None, message]
    assert cli("history", "--remote", "--json").json["remote"][0]["message"] == message
    home = Path(pwd.getpwnam(ssh_servers.user).pw_dir)
    for name in ("pwned", "pwned2"):
        assert not (fleet / name).exists() and not (home / name).exists()


@pytest.mark.parametrize("message", ["x" * 501, "colour \x1b[31mred", "bell\x07"])
def test_a_message_too_long_or_with_control_characters_is_refused_before_anything_runs(
    project, cli, hosts, message
):
    refused = cli("deploy", "--json", "--message", message).json

    assert refused["code"] == "INVALID_ARGUMENT" and "--message" in refused["error"]
    assert all(not (root / ".devops").exists() for root in hosts)


def test_an_audit_line_stays_one_small_append_whatever_its_texts_hold():
    record = Deployment(
        id="dep_1764111420000_ab12cd34",
        platform="ssh",
        environment="production",
        message="🚀" * 500,
        error={"code": "DEPLOY_FAILED", "error": "é" * 5000},
        details={"hosts": [{"host": "h1", "status": "failed", "error": "x\n" * 5000}]},
    )

    line = audit_line(record.audit_entry(), "h1")

    assert len(line.encode()) <= MAX_AUDIT_LINE_BYTES and "\n" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["id"] == record.id and parsed["outcome"]["status"] == "failed"
    assert parsed["message"].startswith("🚀") and parsed["message"].endswith("…")


def test_rollback_on_netlify_without_local_records_goes_back_to_the_previous_published_deploy(
    netlify, cli
):
    first = cli("deploy", "--json").json
    write_site(Path("dist"), "v2")
    cli("deploy", "--json")
    shutil.rmtree(".devops/deployments")  # a checkout that never deployed

    rolled_back = cli("rollback", "--json").json

    assert rolled_back["success"] and rolled_back["release"] == first["release"]
    assert netlify.sites[netlify.site["id"]]["published_deploy"]["id"] == first["release"]
    assert cli("status", "--json").json["deployment"]["release"] == first["release"]


def test_history_remote_for_people_shows_the_hosts_deployments_from_a_second_checkout(
    project, cli, hosts, tmp_path, monkeypatch
):
    deployed = cli("deploy", "--json", "--message", "shipped").json
    _second_checkout(project, tmp_path, monkeypatch)

    shown = cli("history", "--remote")

    assert shown.exit_code == 0, shown.stderr
    assert "On the target (1):" in shown.stdout
    row = next(line for line in shown.stdout.splitlines() if deployed["id"] in line)
    assert "deploy" in row and "success" in row and "shipped" in row and " 3 " in row


def test_rollback_to_a_release_id_from_a_second_checkout_restores_it(
    project, cli, hosts, tmp_path, monkeypatch
):
    first = cli("deploy", "--json").json
    cli("deploy", "--json")
    cli("deploy", "--json")
    _second_checkout(project, tmp_path, monkeypatch)

    rolled_back = cli("rollback", "--to", first["release"], "--json").json

    assert rolled_back["success"], rolled_back
    assert [live(root) for root in hosts] == [first["release"]] * 3
