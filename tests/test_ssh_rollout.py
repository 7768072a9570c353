"""Rolling, canary and blue-green deploys to three real sshd hosts, and how they stop.

The hosts share this machine's filesystem (see fleet.py), so a per-host check can tell the
hosts apart by the release directory it runs in (``.../<ip>/production/releases/<id>``), and
a per-host URL by the address the request reached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fleet import configure, live, releases, roots
from helpers import write_site

from devops_tasks import redaction
from devops_tasks.history import DeploymentHistory
from devops_tasks.rollout import Plan, host_count


def fails_on(ip: str) -> str:
    """A remote check that fails on the host whose root is ``ip``'s, passes elsewhere."""
    return f'case "$PWD" in */{ip}/*) echo "{ip} is sick" >&2; exit 1;; esac'


def deployment(cli, **settings: Any) -> None:
    for key, value in settings.items():
        assert cli("config.set", f"deployment.{key}", json.dumps(value), "--json").json["success"]


def health(remote: str | None = None, url: str | None = None) -> dict[str, Any]:
    check: dict[str, Any] = {"enabled": True, "retries": 0, "interval": 0, "timeout": 2}
    if remote:
        check["remote"] = remote
    if url:
        check["url"] = url
    return check


def outcomes(result: dict[str, Any]) -> dict[str, str]:
    return {h["host"].split("@")[1].split(":")[0]: h["status"] for h in result["hosts"]}


@pytest.fixture
def v1(project, cli, hosts) -> str:
    """The fleet serves a first release; the build dir then holds a second version."""
    release = cli("deploy", "--json").json["release"]
    write_site(project.root / "dist", "v2")
    return release


def steps(project, deployment_id: str) -> list[str]:
    return [s["message"] for s in DeploymentHistory(project).get(deployment_id).log]


# -- plans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "at_least", "expected"),
    [(None, 7, 1, 5), (2, 7, 1, 2), ("25%", 7, 1, 2), ("10%", 3, 0, 0), ("50%", 3, 0, 1),
     (0, 3, 1, 1), (9, 3, 1, 3), ("100%", 4, 0, 4)],
)  # fmt: skip
def test_a_host_count_is_a_number_or_a_share_of_the_fleet(value, total, at_least, expected):
    assert host_count(value, total, default=5, at_least=at_least) == expected


def test_a_canary_plan_switches_the_canary_first_then_batches():
    plan = Plan(batch_size=2, canary=1)

    assert plan.batches(list("abcdef")) == [["a"], ["b", "c"], ["d", "e"], ["f"]]


# -- strategies ----------------------------------------------------------------------------


def test_a_rolling_deploy_switches_one_batch_after_another(project, cli, hosts, v1):
    deployment(cli, batch_size=1)

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    assert [live(root) for root in hosts] == [deployed["release"]] * 3
    batches = [m for m in steps(project, deployed["id"]) if m.startswith("batch")]
    assert [m.split(":")[0] for m in batches] == ["batch 1/3", "batch 2/3", "batch 3/3"]
    assert "127.0.0.2" in batches[0] and "127.0.0.4" in batches[2]


def test_a_canary_deploy_checks_the_canary_waits_and_checks_it_again(project, cli, hosts, v1):
    deployment(cli, strategy="canary", canary=1, canary_wait=0.2, health_check=health("true"))

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    assert [live(root) for root in hosts] == [deployed["release"]] * 3
    assert set(outcomes(deployed["details"]).values()) == {"healthy"}
    canary = deployed["details"]["hosts"][0]["health"]
    assert [check["stage"] for check in canary] == ["live", "canary"]
    assert "canary: waiting 0.2 s" in steps(project, deployed["id"])


def test_a_sick_canary_stops_the_deploy_before_any_other_host_switches(project, cli, hosts, v1):
    deployment(
        cli, strategy="canary", canary=1, health_check=health(fails_on("127.0.0.2"))
    )  # 127.0.0.2 is the first host, hence the canary

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED" and "127.0.0.2 is sick" in failed["error"]
    assert [live(root) for root in hosts] == [v1] * 3
    assert all(releases(root) == [v1] for root in hosts)


def test_a_blue_green_deploy_switches_every_host_once_all_are_prepared(project, cli, hosts, v1):
    deployment(cli, strategy="blue-green", batch_size=1, health_check=health("true"))

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    assert [live(root) for root in hosts] == [deployed["release"]] * 3
    assert not [m for m in steps(project, deployed["id"]) if m.startswith("batch")]
    assert set(outcomes(deployed["details"]).values()) == {"healthy"}


# -- failures ------------------------------------------------------------------------------


def test_a_failing_check_in_batch_two_puts_every_host_back_and_records_rolled_back(
    project, cli, hosts, v1
):
    deployment(cli, batch_size=1, health_check=health(fails_on("127.0.0.3")))

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED"
    assert "batch 2 of 3" in failed["error"] and "127.0.0.3 is sick" in failed["error"]
    assert [live(root) for root in hosts] == [v1] * 3
    assert all(releases(root) == [v1] for root in hosts)
    record = DeploymentHistory(project).get(failed["deployment_id"])
    assert record.status.value == "rolled_back"
    assert outcomes(record.details) == {
        "127.0.0.2": "rolled_back",
        "127.0.0.3": "rolled_back",
        "127.0.0.4": "discarded",
    }
    sick = record.details["hosts"][1]
    assert "127.0.0.3 is sick" in sick["error"] and sick["health"][0]["healthy"] is False


def test_failures_within_max_fail_leave_that_host_behind_and_the_deploy_succeeds(
    project, cli, hosts, v1
):
    deployment(cli, batch_size=1, max_fail=1, health_check=health(fails_on("127.0.0.3")))

    deployed = cli("deploy", "--json").json

    assert deployed["success"]
    assert [live(root) for root in hosts] == [deployed["release"], v1, deployed["release"]]
    assert outcomes(deployed["details"]) == {
        "127.0.0.2": "healthy",
        "127.0.0.3": "rolled_back",
        "127.0.0.4": "healthy",
    }
    assert any("2 of 3 hosts serve" in m for m in steps(project, deployed["id"]))


def test_max_fail_as_a_percentage_rounds_down(project, cli, hosts, v1):
    deployment(cli, max_fail="50%", health_check=health(fails_on("127.0.0.3")))
    assert cli("deploy", "--json").json["success"]  # 50% of 3 is one host

    deployment(cli, max_fail="30%")  # of 3 is none
    write_site(project.root / "dist", "v3")
    assert cli("deploy", "--json").json["code"] == "HEALTH_CHECK_FAILED"


def test_without_rollback_on_failure_the_switched_hosts_keep_the_new_release(
    project, cli, hosts, v1
):
    deployment(
        cli, batch_size=1, rollback_on_failure=False, health_check=health(fails_on("127.0.0.3"))
    )

    failed = cli("deploy", "--json").json

    new = failed["deployment_id"]
    assert "still serve the new release" in failed["error"]
    assert [live(root) for root in hosts] == [new, new, v1]
    assert releases(hosts[2]) == [v1]  # never switched there: removed
    record = DeploymentHistory(project).get(new)
    assert record.status.value == "failed"


def test_a_failing_before_switch_hook_on_one_host_switches_nothing_anywhere(
    project, cli, ssh_servers, fleet, hosts, v1
):
    configure(project, ssh_servers, fleet, hooks={"before_switch": fails_on("127.0.0.4")})

    failed = cli("deploy", "--json").json

    assert failed["code"] == "DEPLOY_FAILED" and "before_switch" in failed["error"]
    assert "no host was switched" in failed["error"]
    assert [live(root) for root in hosts] == [v1] * 3
    assert all(releases(root) == [v1] for root in hosts)


def test_a_failing_hook_that_prints_a_stored_secret_shows_it_masked(
    project, cli, ssh_servers, fleet, v1, monkeypatch
):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    assert cli("secrets.init", "--json").json["success"]
    assert cli("secrets.set", "API_KEY", "--value", "k-9f8e7d6c5b", "--json").json["success"]
    hook = "echo using k-9f8e7d6c5b >&2; false"
    configure(project, ssh_servers, fleet, hooks={"before_switch": hook})
    monkeypatch.setattr(redaction, "_secrets", set())  # as a new process: nothing read yet

    failed = cli("deploy", "--json")

    assert failed.json["code"] == "DEPLOY_FAILED"
    assert f"using {redaction.MASK}" in failed.json["error"]
    assert "k-9f8e7d6c5b" not in failed.stdout + failed.stderr


def test_hooks_run_in_the_release_directory_on_each_host(project, cli, ssh_servers, fleet, v1):
    log = fleet / "hooks.log"
    hooks = {
        name: f'echo "{name} $PWD" >> {log}'
        for name in ("before_switch", "after_switch", "after_rollback")
    }
    configure(project, ssh_servers, fleet, hooks=hooks)

    deployed = cli("deploy", "--json").json["release"]
    cli("rollback", "--json")

    lines = sorted(log.read_text().splitlines())
    for root in roots(ssh_servers, fleet):
        assert f"before_switch {root}/releases/{deployed}" in lines
        assert f"after_switch {root}/releases/{deployed}" in lines
        assert f"after_rollback {root}/releases/{v1}" in lines
    assert len(lines) == 9


def test_a_host_whose_connection_drops_mid_rollout_fails_the_deploy_and_every_host_goes_back(
    project, cli, ssh_servers, fleet, hosts, v1
):
    # the hook ends the host's sshd session: the connection dies after that host switched
    configure(
        project,
        ssh_servers,
        fleet,
        hooks={"after_switch": 'case "$PWD" in */127.0.0.3/*) kill -9 $PPID;; esac'},
    )

    failed = cli("deploy", "--json").json

    assert not failed["success"] and "127.0.0.3" in failed["error"]
    # the connection is opened again to put the host back
    assert [live(root) for root in hosts] == [v1] * 3
    dropped = next(h for h in failed["hosts"] if "127.0.0.3" in h["host"])
    assert dropped["status"] == "rolled_back" and dropped["error"]


# -- per-host URLs -------------------------------------------------------------------------


class _PerHost(BaseHTTPRequestHandler):
    sick: str = ""

    def do_GET(self) -> None:
        address = self.connection.getsockname()[0]
        self.send_response(503 if address == self.sick else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def per_host_site() -> Iterator[tuple[int, type[_PerHost]]]:
    """An HTTP server on every loopback address that answers 503 on the one named ``sick``."""
    handler = type("Handler", (_PerHost,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.server_close()
    port = server.server_address[1]
    server = ThreadingHTTPServer(("", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_health_url_with_host_is_checked_on_each_host(project, cli, hosts, v1, per_host_site):
    port, handler = per_host_site
    deployment(cli, batch_size=1, health_check=health(url=f"http://{{host}}:{port}/up"))
    assert cli("deploy", "--json").json["success"]

    handler.sick = "127.0.0.4"
    write_site(project.root / "dist", "v3")
    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED" and f"127.0.0.4:{port}" in failed["error"]
    assert "batch 3 of 3" in failed["error"]


def test_a_per_host_check_on_a_target_without_hosts_is_refused(project, cli):
    write_site(project.root / "dist", "v1")
    cli("init", "--platform", "local", "--json")
    deployment(cli, health_check=health(remote="true"))

    refused = cli("deploy", "--json").json

    assert refused["code"] == "VALIDATION_FAILED" and "remote" in refused["error"]


def test_host_roles_are_shown_in_status_and_in_the_record(project, cli, ssh_servers, fleet):
    first, *others = ssh_servers.hosts
    configure(
        project,
        ssh_servers,
        fleet,
        hosts=[
            {"host": first.ip, "port": first.port, "roles": ["web", "canary"]},
            *(f"{h.ip}:{h.port}" for h in others),
        ],
    )

    deployed = cli("deploy", "--json").json
    status = cli("status", "--json").json

    assert deployed["details"]["hosts"][0]["roles"] == ["web", "canary"]
    assert "roles" not in deployed["details"]["hosts"][1]
    assert status["target"]["hosts"][0]["roles"] == ["web", "canary"]


def test_a_failing_after_switch_hook_puts_every_host_back(
    project, cli, ssh_servers, fleet, hosts, v1
):
    configure(project, ssh_servers, fleet, hooks={"after_switch": fails_on("127.0.0.3")})

    failed = cli("deploy", "--json").json

    assert failed["code"] == "DEPLOY_FAILED" and "after_switch" in failed["error"]
    assert [live(root) for root in hosts] == [v1] * 3
    assert failed["deployment_status"] == "rolled_back"
    assert "every switched host went back" in failed["error"]


def test_a_failing_after_rollback_hook_on_one_host_leaves_the_fleet_whole(
    project, cli, ssh_servers, fleet, hosts, v1
):
    second = cli("deploy", "--json").json["release"]
    configure(project, ssh_servers, fleet, hooks={"after_rollback": fails_on("127.0.0.3")})

    failed = cli("rollback", "--json").json

    assert not failed["success"] and "after_rollback" in failed["error"]
    assert [live(root) for root in hosts] == [second] * 3


def test_a_blue_green_deploy_checks_each_prepared_release_before_any_host_switches(
    project, cli, hosts, v1
):
    deployment(cli, strategy="blue-green", health_check=health(fails_on("127.0.0.4")))

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED" and "127.0.0.4 is sick" in failed["error"]
    assert failed["deployment_status"] == "failed"
    assert "switched" not in set(outcomes(failed).values())
    assert [live(root) for root in hosts] == [v1] * 3
    assert all(releases(root) == [v1] for root in hosts)


def test_a_blue_green_deploy_failing_its_checks_once_live_is_recorded_rolled_back(
    project, cli, hosts, v1
):
    serving_it = 'test "$(readlink -f ../../current)" != "$(pwd -P)"'  # passes until live
    deployment(cli, strategy="blue-green", health_check=health(serving_it))

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED"
    assert failed["deployment_status"] == "rolled_back"
    assert [live(root) for root in hosts] == [v1] * 3


def test_a_failing_site_check_puts_each_host_back_even_when_hosts_disagreed(
    project, cli, hosts, v1, per_host_site
):
    port, handler = per_host_site
    deployment(cli, max_fail=1, health_check=health(fails_on("127.0.0.3")))
    second = cli("deploy", "--json").json["release"]
    assert [live(root) for root in hosts] == [second, v1, second]  # they disagree now
    handler.sick = "127.0.0.1"
    deployment(cli, health_check=health(url=f"http://127.0.0.1:{port}/"))
    write_site(project.root / "dist", "v3")

    failed = cli("deploy", "--json").json

    assert failed["code"] == "HEALTH_CHECK_FAILED"
    assert failed["deployment_status"] == "rolled_back"
    assert [live(root) for root in hosts] == [second, v1, second]
