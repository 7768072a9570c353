"""Pre-deploy checks: a failing one refuses the deploy before anything moves; skipping them is
recorded (who, which)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import commit_all, local_project_in_git


@pytest.fixture
def checked(project, cli):
    """A local project in git, committed, whose pre-deploy check can be made to fail."""
    local_project_in_git(cli)
    return project


def set_checks(cli, checks: list[str], clean: bool = False) -> None:
    assert cli("config.set", "deployment.pre_deploy", json.dumps(checks), "--json").json["success"]
    if clean:
        assert cli("config.set", "deployment.require_clean_git", "true", "--json").json["success"]
    commit_all()


def nothing_deployed(project) -> bool:
    return not (project.state_dir / "local" / "production" / "current").exists()


def test_a_production_deploy_whose_check_fails_is_refused_and_nothing_is_deployed(checked, cli):
    set_checks(cli, ["true", "exit 3"])

    refused = cli("deploy", "--env", "production", "--json")

    assert refused.exit_code == 1 and refused.json["code"] == "CHECK_FAILED"
    assert refused.json["exit_status"] == 3
    assert nothing_deployed(checked)
    assert cli("history", "--json").json["count"] == 0


def test_a_production_deploy_of_a_dirty_tree_is_refused_when_clean_git_is_required(checked, cli):
    set_checks(cli, [], clean=True)
    Path("dist/index.html").write_text("<h1>not committed</h1>\n")

    refused = cli("deploy", "--env", "production", "--json").json

    assert refused["code"] == "CHECK_FAILED" and "uncommitted" in refused["error"]
    assert nothing_deployed(checked)


def test_skip_checks_deploys_and_the_record_says_who_skipped_which_checks(checked, cli):
    set_checks(cli, ["exit 3"], clean=True)
    Path("dist/index.html").write_text("<h1>not committed</h1>\n")

    deployed = cli("deploy", "--env", "production", "--skip-checks", "--json").json

    assert deployed["success"], deployed
    skipped = deployed["details"]["checks_skipped"]
    assert skipped == {"by": deployed["actor"], "checks": ["require_clean_git", "exit 3"]}
    record = cli("logs", "--id", deployed["id"], "--json").json
    assert any(s["step"] == "checks" and "skipped by" in s["message"] for s in record["log"])


def test_a_deploy_without_skip_checks_records_no_skipped_checks(checked, cli):
    set_checks(cli, ["true"])

    deployed = cli("deploy", "--json").json

    assert deployed["success"] and "checks_skipped" not in deployed["details"]


def test_the_records_a_deploy_writes_do_not_make_the_next_deploy_dirty(checked, cli):
    set_checks(cli, [], clean=True)
    assert cli("deploy", "--json").json["success"]
    assert any((checked.state_dir / "deployments").iterdir())  # new, uncommitted records

    again = cli("deploy", "--json").json

    assert again["success"], again
