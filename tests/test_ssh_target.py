"""The ssh target as users run it, against three real sshd hosts (see sshd.py).

The test hosts share this machine's filesystem, so each host's root is ``<fleet>/{host}/{env}``
and what a host serves is checked right on disk. Each test gets a fresh fleet directory that
the login user (``devops-test``) owns; the servers are the session's.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
from pathlib import Path

import pytest
from fleet import configure, live, releases, roots
from helpers import write_site

from devops_tasks import channels
from devops_tasks import releases as releases_module
from devops_tasks.channels import run_streamed
from devops_tasks.config import ConfigStore
from devops_tasks.files import SiteFiles
from devops_tasks.history import Deployment
from devops_tasks.output import NullProgress
from devops_tasks.platforms import create


def test_a_deploy_puts_the_same_release_live_on_every_host(project, cli, hosts):
    write_site(project.root / "dist", "fleet v1")

    deployed = cli("deploy", "--json").json

    assert deployed["success"] and deployed["platform"] == "ssh"
    assert [live(root) for root in hosts] == [deployed["release"]] * 3
    for root in hosts:
        assert (root / "current" / "index.html").read_text() == "<h1>fleet v1</h1>\n"
    assert [h["status"] for h in deployed["details"]["hosts"]] == ["switched"] * 3
    status = cli("status", "--json").json
    assert status["live_release"] == deployed["release"] and status["in_sync"]
    assert status["target"]["hosts_agree"]
    assert not [h for h in status["target"]["hosts"] if "current" in h]  # the live release


def test_a_one_file_redeploy_takes_seven_round_trips_per_host(project, cli, hosts, monkeypatch):
    """Lock (and a look at the live release and leftovers), the look ahead at what to link
    from, the release, the switch, the prune, the audit line, the unlock."""
    cli("deploy", "--json")
    write_site(project.root / "dist", "fleet v2")
    commands: list[str] = []

    def counted(connection, command, stdin, timeout, what):  # type: ignore[no-untyped-def]
        commands.append(what)
        return run_streamed(connection, command, stdin, timeout, what)

    monkeypatch.setattr(channels, "run_streamed", counted)
    monkeypatch.setattr(releases_module, "run_streamed", counted)

    assert cli("deploy", "--json").json["success"]

    assert len(commands) == 7 * len(hosts), commands


def test_rollback_restores_the_previous_release_on_every_host(project, cli, hosts):
    first = cli("deploy", "--json").json
    write_site(project.root / "dist", "v2")
    second = cli("deploy", "--json").json
    assert [live(root) for root in hosts] == [second["release"]] * 3

    rolled_back = cli("rollback", "--json").json

    assert rolled_back["success"] and rolled_back["details"]["restored"] == first["id"]
    assert [live(root) for root in hosts] == [first["release"]] * 3
    assert cli("status", "--json").json["in_sync"]


def with_a_fourth_host_down(project, ssh_servers, fleet) -> str:
    """The project deploys to the three hosts and to 127.0.0.5, where nothing listens."""
    down, port = "127.0.0.5", ssh_servers.hosts[0].port
    hosts = [*(f"{h.ip}:{port}" for h in ssh_servers.hosts), f"{down}:{port}"]
    configure(project, ssh_servers, fleet, hosts=hosts)
    return down


def test_a_host_that_refuses_connections_fails_the_deploy_and_nothing_switches(
    project, cli, ssh_servers, fleet
):
    configure(project, ssh_servers, fleet)
    first = cli("deploy", "--json").json
    down = with_a_fourth_host_down(project, ssh_servers, fleet)
    write_site(project.root / "dist", "v2")

    refused = cli("deploy", "--json").json

    assert refused["code"] == "HOST_UNREACHABLE" and down in refused["error"]
    assert [live(root) for root in roots(ssh_servers, fleet)] == [first["release"]] * 3
    assert [releases(root) for root in roots(ssh_servers, fleet)] == [[first["release"]]] * 3


def test_an_unreachable_host_within_max_fail_is_reported_and_the_others_deploy(
    project, cli, ssh_servers, fleet
):
    down = with_a_fourth_host_down(project, ssh_servers, fleet)
    cli("config.set", "deployment.max_fail", "1")

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    assert [live(root) for root in roots(ssh_servers, fleet)] == [deployed["release"]] * 3
    unreachable = deployed["details"]["hosts"][3]
    assert unreachable["status"] == "failed" and down in unreachable["host"]
    assert unreachable["error"].startswith("unreachable: ")
    status = cli("status", "--json").json
    assert not status["target"]["hosts_agree"]


def test_people_see_how_many_hosts_took_the_release_and_why_one_did_not(
    project, cli, ssh_servers, fleet
):
    down = with_a_fourth_host_down(project, ssh_servers, fleet)
    cli("config.set", "deployment.max_fail", "1")

    out = cli("deploy").stdout

    assert "hosts: 4 (1 failed, 3 switched)" in out
    assert f"@{down}:{ssh_servers.hosts[0].port}: unreachable: " in out


def test_a_host_failing_phase_one_switches_nothing_and_the_release_leaves_every_host(
    project, cli, ssh_servers, fleet
):
    configure(project, ssh_servers, fleet)
    first = cli("deploy", "--json").json
    locked = ssh_servers.hosts[1]
    # root owns the host's root, 0755: the login user can lock it (.devops is its own)
    # but cannot create releases/ there
    state = fleet / "locked" / locked.ip / ".devops"
    state.mkdir(parents=True)
    login = pwd.getpwnam(ssh_servers.user)
    os.chown(state, login.pw_uid, login.pw_gid)
    hosts = [
        {"host": h.ip, "port": h.port}
        | ({"path": f"{fleet}/locked/{{host}}"} if h is locked else {})
        for h in ssh_servers.hosts
    ]
    configure(project, ssh_servers, fleet, hosts=hosts)
    write_site(project.root / "dist", "v2")

    failed = cli("deploy", "--json").json

    assert failed["code"] == "DEPLOY_FAILED" and locked.ip in failed["error"]
    assert "no host was switched" in failed["error"]
    others = [fleet / h.ip / "production" for h in ssh_servers.hosts if h is not locked]
    assert [live(root) for root in others] == [first["release"]] * 2
    assert [releases(root) for root in others] == [[first["release"]]] * 2
    record = cli("logs", "--json").json
    assert record["status"] == "failed"


def test_blue_green_leaves_every_host_on_the_old_release_until_published(
    project, cli, ssh_servers, hosts
):
    first = cli("deploy", "--json").json
    settings = ConfigStore(project).settings()
    deployment = Deployment(
        id="dep_1764111420000_ab12cd34", platform="ssh", environment="production"
    )
    site = SiteFiles.scan(write_site(project.root / "dist", "green"))

    with create(project, settings) as target:
        outcome = target.deploy(deployment, site, NullProgress(), publish=False)
        assert not outcome.published
        assert [live(root) for root in hosts] == [first["release"]] * 3
        assert all(deployment.id in releases(root) for root in hosts)
        assert target.live_release() == first["release"]

        target.restore(deployment.id)

    assert [live(root) for root in hosts] == [deployment.id] * 3
    assert (hosts[2] / "current" / "index.html").read_text() == "<h1>green</h1>\n"


class _Recorded(NullProgress):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def start(self, description: str, total: int) -> None:
        self.events.append(("start", total))

    def advance(self, amount: int = 1) -> None:
        self.events.append(("advance", amount))


def test_the_upload_progress_advances_as_each_host_is_prepared(project, hosts):
    deployment = Deployment(
        id="dep_1764111420000_ab12cd34", platform="ssh", environment="production"
    )
    site = SiteFiles.scan(write_site(project.root / "dist", "v1"))
    progress = _Recorded()

    with create(project, ConfigStore(project).settings()) as target:
        target.deploy(deployment, site, progress, publish=False)

    assert progress.events == [("start", 3), ("advance", 1), ("advance", 1), ("advance", 1)]


def test_shell_metacharacters_in_the_path_are_only_a_name(project, cli, ssh_servers, fleet):
    odd = f"{fleet}/a b/$(touch pwned)`touch pwned2`;touch pwned3/{{host}}"
    configure(project, ssh_servers, fleet, path=odd)

    deployed = cli("deploy", "--json").json

    assert deployed["success"], deployed
    home = Path(pwd.getpwnam(ssh_servers.user).pw_dir)
    for host in ssh_servers.hosts:
        root = Path(odd.replace("{host}", host.ip))
        assert live(root) == deployed["release"]
    for name in ("pwned", "pwned2", "pwned3"):
        assert not (home / name).exists() and not (project.root / name).exists()


def test_an_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_is_deployed(
    project, cli, ssh_servers, fleet, tmp_path
):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(ssh_servers.hosts[0].known_hosts_line())  # the other two unknown
    configure(project, ssh_servers, fleet, known_hosts=str(known_hosts))

    refused = cli("deploy", "--json").json

    assert refused["code"] == "HOST_KEY_UNKNOWN"
    assert ssh_servers.hosts[1].ip in refused["error"] and "SHA256:" in refused["error"]
    assert os.listdir(fleet) == []
    assert known_hosts.read_text() == ssh_servers.hosts[0].known_hosts_line()


@pytest.mark.parametrize("first_deploy", [False, True])
def test_a_host_failing_its_switch_sends_the_switched_hosts_back(
    project, cli, ssh_servers, hosts, first_deploy
):
    before = None if first_deploy else cli("deploy", "--json").json["release"]
    stubborn = hosts[2]
    (stubborn / "current").unlink(missing_ok=True)
    (stubborn / "current").mkdir(parents=True)  # not a link: the engine never replaces it
    login = pwd.getpwnam(ssh_servers.user)
    for directory in (stubborn.parent, stubborn):
        os.chown(directory, login.pw_uid, login.pw_gid)
    write_site(project.root / "dist", "v2")

    failed = cli("deploy", "--json").json

    assert failed["code"] == "DEPLOY_FAILED" and ssh_servers.hosts[2].ip in failed["error"]
    assert "went back" in failed["error"]
    assert [live(root) for root in hosts[:2]] == [before, before]
    assert all(releases(root) == ([before] if before else []) for root in hosts)


def test_infra_up_creates_every_hosts_releases_directory_and_can_run_again(project, cli, hosts):
    for _ in range(2):
        infra = cli("infra.up", "--json").json["infra"]
        assert [h["releases"] for h in infra["hosts"]] == [[], [], []]
    assert all((root / "releases").is_dir() for root in hosts)
    shown = cli("infra.show", "--json").json["infra"]
    assert shown["hosts_agree"] and shown["live_release"] is None


def test_hosts_that_disagree_have_no_live_release_and_status_shows_each(project, cli, hosts):
    first = cli("deploy", "--json").json["release"]
    second = cli("deploy", "--json").json["release"]
    (hosts[0] / "current").unlink()
    (hosts[0] / "current").symlink_to(f"releases/{first}")

    status = cli("status", "--json").json

    assert status["live_release"] is None and not status["in_sync"]
    assert not status["target"]["hosts_agree"]
    assert [h["current"] for h in status["target"]["hosts"]] == [first, second, second]


def test_a_host_without_a_user_or_path_is_config_invalid_naming_where(project, cli, hosts):
    data = json.loads(project.config_path.read_text())
    del data["ssh"]["user"]
    data["ssh"]["hosts"] = ["web1.example.com", {"host": "web2.example.com", "user": "deploy"}]
    project.config_path.write_text(json.dumps(data))

    refused = cli("deploy", "--json").json

    assert refused["code"] == "CONFIG_INVALID"
    assert [p["path"] for p in refused["problems"]] == ["ssh.hosts.0.user"]


@pytest.mark.parametrize(
    ("hosts_value", "path"),
    [
        ([], "ssh.hosts"),
        (["deploy@bad host"], "ssh.hosts.0"),
        ([{"host": "a", "port": 0}], "ssh.hosts.0.port"),
    ],
)
def test_a_malformed_hosts_list_is_refused_by_the_schema_naming_the_item(
    project, cli, hosts, hosts_value, path
):
    refused = cli("config.set", "ssh.hosts", json.dumps(hosts_value), "--json").json

    assert refused["code"] == "CONFIG_INVALID"
    assert [p["path"] for p in refused["problems"]] == [path]


def test_deploy_ssh_without_hosts_says_which_setting_is_missing(project, cli):
    refused = cli("deploy.ssh", "--json").json

    assert refused["code"] == "CONFIG_INVALID"
    assert [p["path"] for p in refused["problems"]] == ["ssh.hosts"]


def test_init_for_ssh_writes_a_valid_config_and_next_steps_that_work(project, cli):
    created = cli("init", "--platform", "ssh", "--json").json

    assert created["next"][0].startswith("devops config.set ssh.hosts ")
    assert created["next"][1:] == ["devops infra.up", "devops deploy --dir dist"]
    assert cli(*shlex.split(created["next"][0])[1:], "--json").json["success"]
    assert cli("config.validate", "--json").json["environments"] == ["production", "staging"]


def test_infra_show_for_people_lists_each_host(project, cli, ssh_servers, hosts):
    deployed = cli("deploy", "--json").json

    shown = cli("infra.show")

    assert shown.exit_code == 0, shown.stderr
    for host in ssh_servers.hosts:
        assert f"{host.ip}:{host.port}" in shown.stdout
    assert shown.stdout.count(deployed["release"]) >= 3


def test_a_failed_health_check_puts_every_host_back_on_the_previous_release(project, cli, hosts):
    first = cli("deploy", "--json").json["release"]
    check = {"enabled": True, "url": "http://127.0.0.1:9/health", "retries": 0, "timeout": 1}
    cli("config.set", "deployment.health_check", json.dumps(check), "--json")
    write_site(project.root / "dist", "v2")

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED"
    assert [live(root) for root in hosts] == [first] * 3
    record = cli("logs", "--json").json
    assert any(step["step"] == "rollback" for step in record["log"])


def test_status_and_lock_status_report_the_hosts_that_answer_when_one_is_down(
    project, cli, ssh_servers, fleet
):
    configure(project, ssh_servers, fleet)
    deployed = cli("deploy", "--json").json["release"]
    port = ssh_servers.hosts[0].port
    down = "127.0.0.5"  # nothing listens there
    configure(
        project,
        ssh_servers,
        fleet,
        hosts=[*(f"{h.ip}:{port}" for h in ssh_servers.hosts), f"{down}:{port}"],
        connect_timeout=2,
    )

    status = cli("status", "--json").json
    locks = cli("lock.status", "--json").json

    assert status["success"] and status["live_release"] is None
    assert not status["target"]["hosts_agree"]
    assert [h.get("current") for h in status["target"]["hosts"]] == [deployed] * 3 + [None]
    assert status["target"]["hosts"][3]["code"] == "HOST_UNREACHABLE"
    assert [lock["state"] for lock in locks["hosts"]] == ["free"] * 3 + ["unreachable"]


def test_port_zero_in_a_host_string_is_refused_not_taken_for_22(project, cli, ssh_servers, fleet):
    configure(project, ssh_servers, fleet, hosts=["127.0.0.2:0"])

    refused = cli("deploy", "--json").json

    assert refused["code"] == "CONFIG_INVALID" and "ssh.hosts.0.port" in refused["error"]
