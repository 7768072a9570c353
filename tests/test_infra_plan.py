"""``devops infra.plan``: what ``infra.up`` would create, found without changing anything."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from fleet import configure, roots


def tree(directory: Path) -> list[str]:
    """Every path under ``directory``, to show that nothing was created."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def plan(cli) -> dict:
    answer = cli("infra.plan", "--json").json
    assert answer["success"], answer
    return answer


def test_ssh_plans_each_hosts_root_and_releases_and_creates_nothing(cli, ssh_servers, hosts, fleet):
    answer = plan(cli)

    assert answer["platform"] == "ssh" and answer["changes"] == 6 and answer["problems"] == 0
    assert answer["actions"] == [
        {"action": "create", "what": str(path), "where": f"{ssh_servers.user}@{h.ip}:{h.port}"}
        for h, root in zip(ssh_servers.hosts, hosts, strict=True)
        for path in (root, root / "releases")
    ]
    assert tree(fleet) == []


def test_after_infra_up_the_ssh_plan_has_nothing_to_create(cli, hosts):
    assert cli("infra.up", "--json").json["success"]
    answer = plan(cli)
    assert answer["changes"] == 0 and {a["action"] for a in answer["actions"]} == {"none"}


def test_shared_paths_add_each_hosts_shared_directory_which_infra_up_makes(
    cli, project, ssh_servers, fleet
):
    configure(project, ssh_servers, fleet, shared=["uploads", ".env"])
    shared = [str(root / "shared") for root in roots(ssh_servers, fleet)]

    planned = [a["what"] for a in plan(cli)["actions"] if a["action"] == "create"]
    assert cli("infra.up", "--json").json["success"]

    assert set(shared) <= set(planned)
    assert all(Path(path).is_dir() for path in shared)
    assert plan(cli)["changes"] == 0


def test_a_file_where_a_directory_goes_is_a_conflict(cli, ssh_servers, hosts):
    cli("infra.up", "--json")
    (hosts[1] / "releases").rmdir()
    (hosts[1] / "releases").write_text("not a directory")

    answer = plan(cli)

    conflict = [a for a in answer["actions"] if a["action"] == "conflict"]
    assert [a["what"] for a in conflict] == [str(hosts[1] / "releases")]
    assert "not a directory" in conflict[0]["error"] and answer["problems"] == 1
    assert cli("infra.up", "--json").json["code"] == "DEPLOY_FAILED"  # the plan said so


def test_a_host_that_cannot_be_reached_is_reported_and_the_others_are_planned(
    cli, project, ssh_servers, fleet
):
    down = f"127.0.0.5:{ssh_servers.hosts[0].port}"
    configure(
        project, ssh_servers, fleet, hosts=[f"{h.ip}:{h.port}" for h in ssh_servers.hosts] + [down]
    )

    answer = plan(cli)

    unknown = answer["actions"][-1]
    assert unknown["action"] == "unknown" and "127.0.0.5" in unknown["where"]
    assert "Could not reach" in unknown["error"]
    assert answer["changes"] == 6 and answer["problems"] == 1


def test_a_root_with_shell_metacharacters_is_only_a_name(cli, project, ssh_servers, fleet):
    odd = f"{fleet}/{{host}}/a $(touch pwned) ;b"
    configure(project, ssh_servers, fleet, path=odd)

    answer = plan(cli)

    assert answer["actions"][0]["what"] == odd.replace("{host}", ssh_servers.hosts[0].ip)
    home = Path(pwd.getpwnam(ssh_servers.user).pw_dir)
    assert not (home / "pwned").exists() and tree(fleet) == []


def test_for_people_the_plan_is_a_table_and_a_summary(cli, hosts):
    shown = cli("infra.plan").stdout
    assert shown.splitlines()[0].split() == ["action", "what", "where"]
    assert shown.count("create") >= 6 and "6 to create: run `devops infra.up`." in shown
    cli("infra.up", "--json")
    assert "Nothing to create." in cli("infra.plan").stdout


def test_local_plans_its_release_root_creates_nothing_then_nothing_after_infra_up(cli, project):
    root = project.state_dir / "local" / "production"

    before = plan(cli)

    assert [(a["action"], a["what"]) for a in before["actions"]] == [
        ("create", str(root)),
        ("create", str(root / "releases")),
    ]
    assert not project.state_dir.exists()
    cli("infra.up", "--json")
    assert plan(cli)["changes"] == 0


def test_netlify_without_a_site_id_plans_a_site_and_creates_none(cli, netlify):
    cli("config.set", "netlify", json.dumps({"site_name": "brand-new"}), "--json")
    sites = dict(netlify.sites)

    answer = plan(cli)

    assert answer["actions"] == [{"action": "create", "what": "site brand-new", "where": "Netlify"}]
    assert netlify.sites == sites


def test_netlify_with_a_site_id_has_nothing_to_create(cli, netlify):
    answer = plan(cli)
    assert answer["changes"] == 0
    assert (
        answer["actions"][0]["action"] == "none"
        and netlify.site["id"] in answer["actions"][0]["what"]
    )


def test_the_plan_of_a_fleet_root_the_user_owns_already_starts_at_releases(cli, ssh_servers, hosts):
    login = pwd.getpwnam(ssh_servers.user)
    for root in hosts:
        root.mkdir(parents=True)
        os.chown(root.parent, login.pw_uid, login.pw_gid)
        os.chown(root, login.pw_uid, login.pw_gid)

    actions = plan(cli)["actions"]

    assert [a["action"] for a in actions] == ["none", "create"] * 3
