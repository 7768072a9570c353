"""A deploy's first reads start before the program loads, and are used only by that deploy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fleet import configure as configure_fleet
from s3_proxy import S3Proxy
from test_aws_target import BUCKET, configure, deploy, write_site

from devops_tasks import early
from devops_tasks.platforms import ssh as ssh_target


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["deploy"], early.Deploying()),
        (["--json", "deploy", "--env", "staging"], early.Deploying("staging")),
        (["deploy.aws", "-e", "prod", "--dir", "dist"], early.Deploying("prod", "aws", "dist")),
        (["-estaging", "deploy"], early.Deploying("staging")),
        (["deploy", "--env=prod", "-m", "fix"], early.Deploying("prod")),
        (["deploy", "--dir=out", "--no-cache"], early.Deploying(build_dir="out", cache=False)),
        (["status"], None),
        (["rollback", "--to", "deploy"], None),
        (["--help", "deploy"], None),
        (["deploy", "--build"], None),  # its reads would be as old as the build
        (["deploy", "-b"], None),
        ([], None),
    ],
)
def test_what_the_arguments_deploy(argv: list[str], expected: early.Deploying | None) -> None:
    assert early.deploying(argv) == expected


@pytest.fixture
def site_bucket(aws_env: str, s3_proxy: S3Proxy, project, cli) -> S3Proxy:  # type: ignore[no-untyped-def]
    """A bucket on moto (through the proxy) holding dist/ already; the proxy's record empty."""
    shutil.rmtree("dist")
    write_site(Path("dist"))
    configure(project, {"bucket": BUCKET, "endpoint_url": s3_proxy.url})
    assert cli("infra.up", "--json").json["success"]
    assert deploy(cli)["success"]
    s3_proxy.clear()
    return s3_proxy


def reads(proxy: S3Proxy) -> list[tuple[str, str, bool]]:
    return sorted((r.method, r.path, "list-type=2" in r.query) for r in proxy.requests)


def test_a_deploy_uses_the_reads_started_before_it_loaded(site_bucket: S3Proxy, cli) -> None:  # type: ignore[no-untyped-def]
    early.start(["deploy", "--json"])
    result = deploy(cli)
    assert result["success"] and result["details"]["sync"]["noop"]
    assert reads(site_bucket) == [  # not a second manifest GET nor a second listing
        ("GET", f"/{BUCKET}", True),
        ("GET", f"/{BUCKET}/.devops/manifest.json", False),
    ]


def test_reads_made_with_other_credentials_are_not_used(  # type: ignore[no-untyped-def]
    site_bucket: S3Proxy, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as other:
        other.setenv("AWS_ACCESS_KEY_ID", "someone-else")
        early.start(["deploy"])
    result = deploy(cli)
    assert result["success"] and result["details"]["sync"]["noop"]
    assert reads(site_bucket).count(("GET", f"/{BUCKET}/.devops/manifest.json", False)) == 2


def test_an_early_start_that_cannot_read_says_nothing_and_the_deploy_says_why(  # type: ignore[no-untyped-def]
    site_bucket: S3Proxy, cli, project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.config_path.write_text(json.dumps({"version": 1, "platform": "aws", "aws": 7}))
    early.start(["deploy"])
    assert capsys.readouterr() == ("", "")
    assert site_bucket.requests == []
    failed = cli("deploy", "--json").json
    assert not failed["success"] and failed["code"] == "CONFIG_INVALID"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SSH connection opened from now on, by host."""
    opened: list[str] = []
    connect = ssh_target.connect

    def counted(host: str, **options: Any) -> Any:
        opened.append(host)
        return connect(host, **options)

    monkeypatch.setattr(ssh_target, "connect", counted)
    return opened


def test_a_deploy_to_ssh_hosts_uses_the_connections_opened_before_it_loaded(  # type: ignore[no-untyped-def]
    project, cli, ssh_servers, fleet, connections: list[str]
) -> None:
    configure_fleet(project, ssh_servers, fleet)

    early.start(["deploy", "--json"])
    assert cli("deploy", "--json").json["success"]

    assert sorted(connections) == sorted(host.ip for host in ssh_servers.hosts)


def test_hosts_that_may_be_pinned_on_first_use_are_not_reached_before_the_deploy_loads(  # type: ignore[no-untyped-def]
    project, cli, ssh_servers, fleet, connections: list[str]
) -> None:
    configure_fleet(project, ssh_servers, fleet, host_key_policy="accept-new")

    early.start(["deploy", "--json"])
    assert connections == []
    assert cli("deploy", "--json").json["success"]
    assert len(connections) == len(ssh_servers.hosts)


def test_connections_opened_for_other_settings_are_not_used(  # type: ignore[no-untyped-def]
    project, cli, ssh_servers, fleet, connections: list[str]
) -> None:
    configure_fleet(project, ssh_servers, fleet)
    early.start(["deploy", "--json"])
    configure_fleet(project, ssh_servers, fleet, command_timeout=30)

    assert cli("deploy", "--json").json["success"]

    assert len(connections) == 2 * len(ssh_servers.hosts)


def test_a_changed_host_key_met_before_the_program_loaded_refuses_the_deploy(  # type: ignore[no-untyped-def]
    project, cli, ssh_servers, fleet
) -> None:
    configure_fleet(project, ssh_servers, fleet)
    with ssh_servers.changed_host_key(ssh_servers.hosts[1]):
        early.start(["deploy", "--json"])
        refused = cli("deploy", "--json").json

    assert refused["code"] == "HOST_KEY_CHANGED" and ssh_servers.hosts[1].ip in refused["error"]
    assert not any((fleet / host.ip).exists() for host in ssh_servers.hosts)
