"""The local target as users run it: whose files it touches, which root each environment gets,
what a release of a build directory holds, and what a killed deploy leaves for the next one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CliResult, run_devops, write_site
from shims import without_privileges

from devops_tasks.history import DeploymentHistory, Status
from devops_tasks.project import Project
from devops_tasks.releases import LocalConnection


def configure(project: Project, **settings: object) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": "local", **settings}), encoding="utf-8"
    )


def files_under(directory: Path) -> list[str]:
    """Every file below ``directory``, relative, sorted (what a release holds)."""
    return sorted(
        os.path.relpath(os.path.join(d, name), directory)
        for d, _, names in os.walk(directory)
        for name in names
    )


def live(project: Project, root: str = ".devops/local/production") -> Path:
    return project.root / root / "current"


# --------------------------------------------------------------------------- whose files


def test_prune_leaves_the_users_own_files_in_a_root_that_had_a_releases_folder(project, cli):
    configure(project, local={"root": "www"}, deployment={"keep_releases": 1})
    theirs = project.root / "www" / "releases"
    (theirs / "2019-site").mkdir(parents=True)
    (theirs / "2019-site" / "index.html").write_text("the old site, kept by hand")
    (theirs / "notes.txt").write_text("mine")

    for version in ("v1", "v2", "v3"):
        write_site(project.root / "dist", version)
        assert cli("deploy", "--json").json["success"]

    assert (theirs / "2019-site" / "index.html").read_text() == "the old site, kept by hand"
    assert (theirs / "notes.txt").read_text() == "mine"
    assert len([n for n in os.listdir(theirs) if n.startswith("dep_")]) == 2  # live + previous


# --------------------------------------------------------------------------- one root each


def test_env_in_local_root_gives_each_environment_its_own_root(project, cli):
    configure(project, local={"root": "sites/{env}"}, environments={"staging": {}})

    production = cli("deploy", "--json").json
    staging = cli("deploy", "--env", "staging", "--json").json

    assert os.readlink(live(project, "sites/production")) == f"releases/{production['release']}"
    assert os.readlink(live(project, "sites/staging")) == f"releases/{staging['release']}"


@pytest.mark.parametrize("env", ["production", "staging"])
def test_two_environments_sharing_a_root_are_refused_before_anything_happens(project, cli, env):
    configure(
        project,
        local={"root": ".devops/local/production"},
        environments={"staging": {"deployment": {"keep_releases": 3}}},
    )

    refused = cli("deploy", "--env", env, "--json")

    assert refused.exit_code == 1
    assert refused.json["code"] == "VALIDATION_FAILED"
    assert "production and staging" in refused.json["error"]
    assert "{env}" in refused.json["fix"] and "environments.<env>.local.root" in refused.json["fix"]
    assert not (project.state_dir / "local").exists()
    assert DeploymentHistory(project).query() == []


def test_an_environment_the_file_does_not_name_still_counts(project, cli):
    configure(project, local={"root": "site"})

    refused = cli("deploy", "--env", "staging", "--json")

    assert refused.json["code"] == "VALIDATION_FAILED"
    assert "production and staging" in refused.json["error"]


def test_two_roots_that_are_one_directory_through_a_link_are_refused(project, cli):
    (project.root / "prod-site").mkdir()
    (project.root / "staging-site").symlink_to("prod-site", target_is_directory=True)
    configure(
        project,
        local={"root": "prod-site"},
        environments={"staging": {"local": {"root": "staging-site"}}},
    )

    refused = cli("deploy", "--env", "staging", "--json")

    assert refused.json["code"] == "VALIDATION_FAILED"
    assert str((project.root / "prod-site").resolve()) in refused.json["error"]


def test_an_environment_on_another_target_shares_no_local_root(project, cli):
    configure(
        project,
        local={"root": "site"},
        environments={"preview": {"platform": "netlify", "netlify": {"site_id": "x"}}},
    )

    assert cli("deploy", "--json").json["success"]


def test_a_rollback_is_refused_while_two_environments_share_a_root(project, cli):
    # deployed while production had a root of its own; then the config made them share one
    apart = {"root": "common"}
    configure(project, local=apart, environments={"production": {"local": {"root": "prod"}}})
    cli("deploy", "--env", "staging", "--json")
    write_site(project.root / "dist", "v2")
    second = cli("deploy", "--env", "staging", "--json").json
    configure(project, local=apart, environments={"staging": {}})

    refused = cli("rollback", "--env", "staging", "--json")

    assert refused.json["code"] == "CONFIG_INVALID"
    assert os.readlink(live(project, "common")) == f"releases/{second['release']}"


# --------------------------------------------------------------------------- what a release holds


def test_deploying_the_project_dir_twice_makes_releases_of_the_same_files(project, cli):
    first = cli("deploy", "--dir", ".", "--json").json
    second = cli("deploy", "--dir", ".", "--json").json

    assert second["files_deployed"] == first["files_deployed"]
    releases = project.state_dir / "local" / "production" / "releases"
    assert files_under(releases / first["release"]) == files_under(releases / second["release"])


def test_a_redeploy_copies_only_the_changed_file_and_links_the_rest(project, cli):
    first = cli("deploy", "--json").json
    (project.root / "dist" / "index.html").write_text("<h1>v2</h1>\n")

    second = cli("deploy", "--json").json

    assert second["bytes_uploaded"] == len("<h1>v2</h1>\n")
    assert (second["details"]["files_copied"], second["details"]["files_linked"]) == (1, 1)
    releases = project.state_dir / "local" / "production" / "releases"
    old, new = releases / first["release"], releases / second["release"]
    assert (old / "index.html").read_text() == "<h1>v1</h1>\n"
    assert (new / "css" / "site.css").stat().st_ino == (old / "css" / "site.css").stat().st_ino
    step = [
        e["message"]
        for e in DeploymentHistory(project).get(second["id"]).log
        if e["step"] == "upload"
    ]
    assert step == [f"copied 1 files to {new}, linked 1 unchanged from {first['release']}"]


def test_a_release_of_the_project_dir_holds_no_state_secrets_or_keys(project, cli):
    configure(project)
    project.credentials_path.write_bytes(b"DEVOPS-SECRETS encrypted")
    (project.root / "ops").mkdir()
    (project.root / "ops" / "master.key").write_text("ab" * 32)
    cli("deploy", "--dir", ".", "--json")

    result = cli("deploy", "--dir", ".", "--json").json

    shipped = files_under(live(project))
    assert shipped == ["dist/css/site.css", "dist/index.html"]
    assert result["details"]["warnings"] == [
        "ops/master.key was not deployed: secrets and keys never are"
    ]


def test_a_local_root_inside_the_build_dir_is_not_deployed(project, cli):
    configure(project, local={"root": "dist/_releases/{env}"})
    cli("deploy", "--json")

    cli("deploy", "--json")

    assert files_under(live(project, "dist/_releases/production")) == ["css/site.css", "index.html"]


def test_a_build_dir_inside_the_local_root_still_deploys(project, cli):
    configure(project, local={"root": "."})
    cli("deploy", "--json")

    cli("deploy", "--json")

    assert files_under(live(project, ".")) == ["css/site.css", "index.html"]


def test_a_deploy_records_the_links_its_scan_left_out(project, cli):
    (project.root / "dist" / "gone.html").symlink_to("was-here.html")

    result = cli("deploy", "--json").json

    warnings = ["gone.html was not deployed: it is a link to nothing"]
    assert result["details"]["warnings"] == warnings
    assert DeploymentHistory(project).get(result["id"]).details["warnings"] == warnings


def test_a_deploy_with_an_unreadable_directory_is_refused_and_deploys_nothing(project):
    private = project.root / "dist" / "private"
    private.mkdir()
    (private / "page.html").write_text("x")
    private.chmod(0)

    done = subprocess.run(
        without_privileges([sys.executable, "-m", "devops_tasks", "deploy", "--json"]),
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    refused = CliResult(done.returncode, done.stdout, done.stderr)

    assert refused.json["code"] == "VALIDATION_FAILED", refused.stderr
    assert "private/" in refused.json["error"]
    assert not live(project).exists() and not project.deployments_dir.exists()


# --------------------------------------------------------------------------- interrupted runs


def test_a_deploy_killed_mid_upload_leaves_only_what_the_next_deploy_removes(project, tmp_path):
    pages = project.root / "dist" / "pages"
    pages.mkdir()
    for n in range(3000):  # long enough a copy to be caught in the middle of it
        (pages / f"{n}.html").write_text(f"<p>page {n}</p>\n" * 20)
    releases = project.state_dir / "local" / "production" / "releases"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    killed = subprocess.Popen(
        [sys.executable, "-m", "devops_tasks", "deploy", "--json"],
        cwd=project.root,
        env={**os.environ, "TMPDIR": str(scratch)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while killed.poll() is None and time.monotonic() < deadline:
        partial = [p for p in releases.glob(".dep_*.partial") if any(p.iterdir())]
        if partial:
            break
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    left = sorted(os.listdir(releases))
    assert [name.rsplit(".", 1)[-1] for name in left] == ["partial"]  # caught mid-copy
    assert os.listdir(scratch) == []

    after = run_devops("deploy", "--json", cwd=project.root).json

    assert os.listdir(releases) == [after["release"]]
    assert [e["status"] for e in DeploymentHistory(project).query()] == [
        Status.SUCCESS.value,
        Status.INTERRUPTED.value,
    ]


def test_people_see_what_the_scan_left_out(project, cli):
    (project.root / "dist" / "gone.html").symlink_to("was-here.html")
    shown = cli("deploy").stdout
    assert "warning: gone.html was not deployed: it is a link to nothing" in shown


def test_a_rollback_is_refused_first_for_a_shared_root_even_with_nothing_to_roll_back_to(
    project, cli
):
    cli("deploy", "--env", "staging", "--json")
    configure(project, local={"root": "common"}, environments={"staging": {}})

    refused = cli("rollback", "--env", "staging", "--json").json

    assert refused["code"] == "CONFIG_INVALID" and "share" in refused["error"]


def test_an_unchanged_deploy_runs_two_shell_commands_the_look_and_the_switch(
    project, cli, monkeypatch
):
    assert cli("deploy", "--json").json["success"]
    ran: list[str] = []
    run = LocalConnection.run

    def recorded(self, command, **options):  # type: ignore[no-untyped-def]
        ran.append(command)
        return run(self, command, **options)

    monkeypatch.setattr(LocalConnection, "run", recorded)

    assert cli("deploy", "--json").json["success"]

    assert len(ran) == 2, ran
