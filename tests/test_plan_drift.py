"""``deploy --dry-run`` and drift on every target, each against its real server or fake.

Each target is set up as its own tests set it up. A :class:`Target` says how to change a
served file by hand *on the target* (on a host's disk, a PUT straight into the bucket, a
deploy made outside devops-tasks on Netlify or Vercel) and how to see everything the target
holds, to prove that a dry run wrote nothing there.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azurite
import boto3
import gcs_emulator
import pytest
from fake_vercel import FakeVercel
from fleet import configure as configure_fleet
from fleet import settle

from devops_tasks.changes import KINDS, PLAN_PATHS, Changes, Drift
from devops_tasks.objectstore import Headers, ObjectStore
from devops_tasks.platforms import azure
from devops_tasks.platforms.azure import AzureStore
from devops_tasks.platforms.gcp import GcsStore
from devops_tasks.project import Project

TARGETS = ("local", "ssh", "netlify", "aws", "gcp", "azure", "vercel")
#: The same size as the page write_site() makes: only the content (and its time) differs.
EDITED_CSS = b"body { margin: 9 }\n"


@dataclass
class Target:
    name: str
    #: Change a served file (``path``) by hand, on the target itself.
    edit: Callable[[str, bytes], object]
    #: Everything the target holds, to compare before and after a dry run.
    holdings: Callable[[], Any]


def tree(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: a file's bytes and mtime, a link's target, a directory."""
    found: dict[str, Any] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def configure(project: Project, platform: str, section: dict[str, Any]) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": platform, platform: section})
    )


def listed(store: ObjectStore) -> list[tuple[str, int, str | None]]:
    return sorted((o.key, o.size, o.tag) for o in store.list())


def put(store: ObjectStore, key: str, body: bytes) -> None:
    store.put(key, io.BytesIO(body), len(body), Headers("text/css"))


# -- one setup per target ----------------------------------------------------------------------


def _local(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    root = project.root / ".devops" / "local" / "production"
    return Target(
        "local",
        lambda path, body: (root / "current" / path).write_bytes(body),
        lambda: tree(root) if root.exists() else {},
    )


def _ssh(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    roots: list[Path] = request.getfixturevalue("hosts")
    fleet = roots[0].parents[1]

    def holdings() -> dict[str, Any]:
        settle(roots)  # what the last deploy left to the hosts' background is done
        return tree(fleet)

    return Target(
        "ssh", lambda path, body: (roots[0] / "current" / path).write_bytes(body), holdings
    )


def _netlify(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    fake = request.getfixturevalue("netlify")
    site = fake.site["id"]
    return Target(
        "netlify",
        lambda path, body: fake.deploy_by_hand(site, {path: body}),
        lambda: (fake.sites[site].get("published_deploy"), sorted(fake.deploys), len(fake.blobs)),
    )


def _aws(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    url = request.getfixturevalue("aws_env")
    configure(project, "aws", {"bucket": "drift-bucket", "endpoint_url": url})
    assert cli("infra.up", "--json").json["success"]
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")

    def holdings() -> list[tuple[str, str]]:
        found = s3.list_objects_v2(Bucket="drift-bucket").get("Contents", [])
        return sorted((o["Key"], o["ETag"]) for o in found)

    return Target(
        "aws",
        lambda path, body: s3.put_object(Bucket="drift-bucket", Key=path, Body=body),
        holdings,
    )


def _gcp(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    server = request.getfixturevalue("gcs_server")
    gcs_emulator.reset(server.url)
    section = {"bucket": "drift-site", "project": "test-project", "endpoint_url": server.url}
    configure(project, "gcp", section)
    assert cli("infra.up", "--json").json["success"]
    store = GcsStore("drift-site", endpoint_url=server.url)
    request.addfinalizer(store.close)
    return Target("gcp", lambda path, body: put(store, path, body), lambda: listed(store))


def _azure(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    emulator = request.getfixturevalue("azurite_server")
    azurite.reset(emulator)
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv(azure.AZURE_STORAGE_CONNECTION_STRING, emulator.connection_string)
    configure(project, "azure", {"container": "$web"})
    assert cli("infra.up", "--json").json["success"]
    store = AzureStore(connection_string=emulator.connection_string)
    request.addfinalizer(store.close)
    return Target("azure", lambda path, body: put(store, path, body), lambda: listed(store))


def _vercel(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    fake: FakeVercel = request.getfixturevalue("vercel_fake")
    fake.reset()
    created = fake.add_project("my-site")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("VERCEL_TOKEN", fake.token)
    monkeypatch.setenv("VERCEL_API_URL", fake.api_url)
    configure(project, "vercel", {"project": created["id"], "poll_interval": 0.01})
    request.addfinalizer(lambda: _no_violations(fake))
    return Target(
        "vercel",
        lambda path, body: fake.deploy_by_hand(created["id"], {path: body}),
        lambda: (fake.production(created["id"]), sorted(fake.deployments), len(fake.blobs)),
    )


def _no_violations(fake: FakeVercel) -> None:
    assert fake.violations == [], "requests that Vercel's spec does not allow"


_SETUPS = {
    "local": _local,
    "ssh": _ssh,
    "netlify": _netlify,
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
    "vercel": _vercel,
}


@pytest.fixture(scope="module")
def vercel_fake() -> Iterator[FakeVercel]:
    server = FakeVercel().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, project: Project, cli: Any) -> Target:
    """A project configured for one target (its server fresh), with dist/ from write_site."""
    return _SETUPS[request.param](request, project, cli)


def deploy(cli: Any, *args: str) -> dict[str, Any]:
    result = cli("deploy", *args, "--json").json
    assert result["success"], result
    return result


def records(project: Project) -> list[str]:
    return sorted(p.name for p in project.deployments_dir.iterdir())


# -- deploy --dry-run ----------------------------------------------------------------------------


def test_a_dry_run_after_one_edit_lists_exactly_that_change(
    target: Target, cli: Any, project: Project
) -> None:
    deploy(cli)
    (project.root / "dist" / "index.html").write_text("<h1>v2, longer</h1>\n")

    plan = deploy(cli, "--dry-run")

    assert plan["dry_run"] is True and plan["platform"] == target.name
    assert plan["changed"] == {"count": 1, "bytes": 20, "paths": ["index.html"]}
    assert plan["added"]["count"] == plan["deleted"]["count"] == 0
    assert plan["steps"], "the steps a deploy would take"


def test_a_dry_run_writes_nothing_on_the_target_and_records_nothing(
    target: Target, cli: Any, project: Project
) -> None:
    deploy(cli)
    (project.root / "dist" / "index.html").write_text("<h1>v2</h1>\n")
    (project.root / "dist" / "new.html").write_text("new\n")
    before, made = target.holdings(), records(project)

    deploy(cli, "--dry-run")

    assert target.holdings() == before  # a lock taken there would show too
    assert records(project) == made


# -- drift --------------------------------------------------------------------------------------


def test_a_file_edited_by_hand_on_the_target_is_drift(target: Target, cli: Any) -> None:
    deploy(cli)
    assert cli("status", "--json").json["drift"]["detected"] is False

    target.edit("css/site.css", EDITED_CSS)
    drift = cli("status", "--json").json["drift"]

    assert drift["detected"] is True
    assert drift["changed"] == {"count": 1, "paths": ["css/site.css"]}
    assert drift["added"]["count"] == drift["deleted"]["count"] == 0
    # a digest-addressed target is edited by a deploy of its own, which replaces ours
    assert drift["replaced"] is (target.name in ("netlify", "vercel"))


def test_status_check_exits_1_on_drift_with_one_json_object(target: Target, cli: Any) -> None:
    deploy(cli)
    clean = cli("status", "--check", "--json")
    assert clean.exit_code == 0 and clean.json["success"] is True

    target.edit("css/site.css", EDITED_CSS)
    drifted = cli("status", "--check", "--json")

    assert drifted.exit_code == 1
    assert drifted.json["success"] is False and drifted.json["code"] == "DRIFT_DETECTED"
    assert "css/site.css" in drifted.json["error"] and drifted.json["fix"]
    assert drifted.json["drift"]["changed"]["paths"] == ["css/site.css"]


def test_a_deploy_repairs_drift(target: Target, cli: Any) -> None:
    deploy(cli)
    target.edit("css/site.css", EDITED_CSS)

    deploy(cli)

    assert cli("status", "--check", "--json").exit_code == 0


# -- what only some targets have ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["local", "ssh"], indirect=True)
def test_a_dry_run_before_the_first_deploy_lists_every_file_and_creates_nothing(
    target: Target, cli: Any
) -> None:
    plan = deploy(cli, "--dry-run")

    assert plan["added"] == {"count": 2, "bytes": 31, "paths": ["css/site.css", "index.html"]}
    assert plan["live_release"] is None
    assert target.holdings() == {}


def test_ssh_hosts_that_differ_are_counted_one_by_one(
    hosts: list[Path], cli: Any, project: Project
) -> None:
    deploy(cli)
    (hosts[1] / "current" / "css" / "site.css").write_bytes(EDITED_CSS)
    (hosts[2] / "current" / "extra.html").write_bytes(b"by hand")

    drift = cli("status", "--json").json["drift"]
    plan = deploy(cli, "--dry-run")

    counts = [(h["changed"], h["added"]) for h in drift["hosts"]]
    assert counts == [(0, 0), (1, 0), (0, 1)]
    assert drift["changed"]["paths"] == ["css/site.css"]
    assert drift["added"]["paths"] == ["extra.html"]
    # the deploy sends the edited file again to the host that has it edited, only there
    assert [(h["changed"], h["deleted"]) for h in plan["hosts"]] == [(0, 0), (1, 0), (0, 1)]


def test_ssh_steps_follow_the_canary_strategy_and_the_hooks(
    hosts: list[Path], cli: Any, project: Project
) -> None:
    config = json.loads(project.config_path.read_text())
    config["ssh"]["hooks"] = {"after_switch": "true"}
    config["deployment"] = {"strategy": "canary", "canary": 1, "canary_wait": 5, "batch_size": 2}
    project.config_path.write_text(json.dumps(config))

    steps = deploy(cli, "--dry-run")["steps"]

    switches = [step for step in steps if step.startswith("switch ")]
    assert len(switches) == 2
    assert switches[0].startswith("switch the canary: ") and "wait 5 s" in switches[0]
    assert switches[1].startswith("switch batch 2: ") and "after_switch hook" in switches[1]


def test_a_release_without_a_manifest_makes_status_check_say_drift_is_unknown(
    cli: Any, project: Project
) -> None:
    release = deploy(cli)["release"]
    (project.root / ".devops/local/production/.devops/manifests" / f"{release}.json").unlink()

    unknown = cli("status", "--check", "--json")

    assert unknown.exit_code == 1 and unknown.json["code"] == "DRIFT_UNKNOWN"
    assert "manifest" in unknown.json["drift"]["unknown"]


@pytest.mark.parametrize("target", ["netlify"], indirect=True)
def test_without_its_digest_map_a_replaced_deploy_is_drift_whose_files_are_unknown(
    target: Target, cli: Any, project: Project
) -> None:
    deploy(cli)
    for kept in (project.state_dir / "cache").rglob("*.json"):
        kept.unlink()
    target.edit("css/site.css", EDITED_CSS)

    drift = cli("status", "--json").json["drift"]

    assert drift["detected"] and drift["replaced"] and drift["changed"]["count"] == 0
    assert "no digest map" in drift["unknown"]


def test_people_see_the_drifted_paths_and_the_steps(cli: Any, project: Project) -> None:
    deploy(cli)
    (project.root / ".devops/local/production/current/index.html").write_text("by hand\n")

    status = cli("status").stdout
    plan = cli("deploy", "--dry-run").stdout

    assert "drift: 1 changed" in status and "changed: index.html" in status
    assert "changed: 1" in plan and "1. copy 1 file(s)" in plan


# -- the one shape ------------------------------------------------------------------------------


def test_a_summary_names_at_most_the_paths_asked_for_in_all_taking_each_kind_in_turn() -> None:
    changes = Changes(
        added={f"a{n:02}": 1 for n in range(30)},
        changed={"c": 2},
        deleted={f"d{n:02}": None for n in range(30)},
    )

    summary = changes.summary(PLAN_PATHS)

    assert [summary[k]["count"] for k in KINDS] == [30, 1, 30]
    assert [len(summary[k]["paths"]) for k in KINDS] == [10, 1, 9]
    assert summary["added"]["bytes"] == 30 and summary["deleted"]["bytes"] is None


def test_a_drift_report_is_counts_and_five_paths_without_bytes() -> None:
    report = Drift(Changes(changed={f"p{n}": 1 for n in range(9)})).report(replaced=False)

    assert report["detected"] and report["changed"] == {
        "count": 9,
        "paths": ["p0", "p1", "p2", "p3", "p4"],
    }


def test_a_dry_run_of_a_big_change_names_twenty_paths_in_all(cli: Any, project: Project) -> None:
    deploy(cli)
    (project.root / "dist" / "index.html").unlink()
    for n in range(30):
        (project.root / "dist" / f"page{n:02}.html").write_text(f"{n}\n")

    plan = deploy(cli, "--dry-run")

    assert (plan["added"]["count"], plan["deleted"]["count"]) == (30, 1)
    assert sum(len(plan[kind]["paths"]) for kind in KINDS) == PLAN_PATHS


def test_the_steps_name_the_checks_and_the_health_check_a_deploy_would_run(
    cli: Any, project: Project
) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps(
            {
                "version": 1,
                "platform": "local",
                "deployment": {
                    "pre_deploy": ["make test"],
                    "health_check": {"enabled": True, "url": "http://127.0.0.1:9/"},
                },
            }
        )
    )

    steps = deploy(cli, "--dry-run")["steps"]

    assert steps[0] == "check: make test"  # listed, not run
    assert "health check: http://127.0.0.1:9/" in steps


def test_a_host_that_cannot_be_read_makes_drift_partly_unknown(
    project: Project, cli: Any, ssh_servers: Any, fleet: Path
) -> None:
    configure_fleet(project, ssh_servers, fleet)
    deploy(cli)
    port = ssh_servers.hosts[0].port
    up = [f"{h.ip}:{port}" for h in ssh_servers.hosts]
    configure_fleet(project, ssh_servers, fleet, hosts=[*up, f"127.0.0.5:{port}"])

    checked = cli("status", "--check", "--json")

    assert checked.exit_code == 1 and checked.json["code"] == "DRIFT_UNKNOWN"
    drift = checked.json["drift"]
    assert drift["replaced"] is False and drift["unknown"] == "1 of 4 host(s) could not be compared"
    assert drift["hosts"][3]["code"] == "HOST_UNREACHABLE"
