"""The plugin's guard: an agent's production deploy or rollback waits for a clean tree and
passing checks; everything else passes without a word."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, commit_all, local_project_in_git

from devops_tasks.agent_hook import GUARDED, refusal


@pytest.fixture
def repo(project, cli):
    """A local-target project in git with everything committed."""
    local_project_in_git(cli)
    return project


def configure(cli, key: str, value: object) -> None:
    assert cli("config.set", key, json.dumps(value), "--json").json["success"]
    commit_all()


def hook(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the guard as Claude Code does: a new process, the tool call as JSON on stdin."""
    call = {
        "session_id": "s",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "deploy"},
        "cwd": str(cwd),
    }
    return subprocess.run(
        [sys.executable, "-m", "devops_tasks.agent_hook"],
        input=json.dumps(call),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def denial(ran: subprocess.CompletedProcess[str]) -> str:
    """The reason of the deny decision the guard printed (fails if it printed none)."""
    assert ran.returncode == 0, ran.stderr
    output = json.loads(ran.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == "PreToolUse" and output["permissionDecision"] == "deny"
    return str(output["permissionDecisionReason"])


def passes(ran: subprocess.CompletedProcess[str]) -> bool:
    return ran.returncode == 0 and ran.stdout == ""


def refused(command: str, cwd: Path) -> str | None:
    return refusal({"tool_name": "Bash", "tool_input": {"command": command}, "cwd": str(cwd)})


def test_a_production_deploy_from_a_dirty_tree_is_denied_saying_why(repo):
    Path("dist/index.html").write_text("<h1>not committed</h1>\n")

    reason = denial(hook("devops deploy --env production --json", repo.root))

    assert "production" in reason and "1 uncommitted change(s)" in reason
    assert "dist/index.html" in reason


def test_a_production_deploy_from_a_clean_tree_whose_checks_pass_goes_ahead(repo, cli):
    configure(cli, "deployment.pre_deploy", ["true"])

    assert passes(hook("devops deploy --env production --json", repo.root))


def test_a_failing_pre_deploy_check_denies_a_production_deploy_even_with_skip_checks(repo, cli):
    configure(cli, "deployment.pre_deploy", ["true", "exit 4"])

    reason = denial(hook("devops deploy --env production --skip-checks --json", repo.root))

    assert "`exit 4` failed (exit status 4)" in reason and "--skip-checks" in reason


def test_a_production_rollback_from_a_dirty_tree_is_denied(repo):
    Path("notes.txt").write_text("scratch\n")

    reason = denial(hook("devops rollback --env production --json", repo.root))

    assert "rollback" in reason and "notes.txt" in reason


def test_a_rollback_is_not_held_back_by_the_checks_of_todays_tree(repo, cli):
    configure(cli, "deployment.pre_deploy", ["exit 4"])

    assert passes(hook("devops rollback --env production --json", repo.root))


def test_a_staging_deploy_goes_ahead_from_a_dirty_tree(repo):
    Path("dist/index.html").write_text("<h1>work in progress</h1>\n")

    assert passes(hook("devops deploy --env staging --json", repo.root))


@pytest.mark.parametrize(("default", "denied"), [("production", True), ("staging", False)])
def test_a_deploy_naming_no_environment_is_judged_by_the_default_one(repo, cli, default, denied):
    configure(cli, "environment", default)
    Path("notes.txt").write_text("scratch\n")

    assert (refused("devops deploy --json", repo.root) is not None) is denied


def test_agent_guard_false_in_the_config_switches_the_guard_off(repo, cli):
    configure(cli, "agent.guard", False)
    Path("notes.txt").write_text("scratch\n")

    assert passes(hook("devops deploy --env production --json", repo.root))


def test_the_protected_environments_are_the_configured_ones(repo, cli):
    configure(cli, "agent.protected_environments", ["live"])
    Path("notes.txt").write_text("scratch\n")

    assert refused("devops deploy --env production", repo.root) is None
    assert "live is a protected environment" in str(refused("devops deploy --env live", repo.root))


def test_outside_git_only_the_checks_hold_a_deploy_back(project, cli):
    assert cli("init", "--json").json["success"]
    assert refused("devops deploy --env production", project.root) is None
    cli("config.set", "deployment.pre_deploy", '["exit 1"]', "--json")

    assert "pre-deploy check" in str(refused("devops deploy --env production", project.root))


@pytest.mark.parametrize(
    "command",
    [
        "cd {root} && devops deploy --env production --json",
        "devops --env production deploy --json",
        "devops deploy.local -e production",
        "devops deploy.local --env=production --message 'ship it'",
        "{python} -m devops_tasks rollback --env production 2>&1 | tail -5",
        "bash -c 'devops deploy --env production --json'",
        "devops build deploy --env production",
        "invoke ops.deploy.local --env production",
        "true; echo start\ndevops rollback --env production",
        "DEVOPS__AGENT__GUARD=false devops deploy --env staging",
        "devops deploy --env $TARGET --json",
        "sudo devops deploy --env production",
    ],
)
def test_the_guard_finds_a_guarded_deploy_however_the_command_line_spells_it(repo, command):
    Path("notes.txt").write_text("scratch\n")
    line = command.format(root=repo.root, python=sys.executable)

    assert refused(line, repo.root.parent if "{root}" in command else repo.root)


@pytest.mark.parametrize(
    "command",
    [
        "devops status --env production --json",
        "devops history --env production",
        "echo devops deploy --env production",
        "devops deploy --env production --no-such-flag",  # devops refuses it: nothing runs
        "devops deploy --env production --help",
        "devops deploy --env production --dry-run --json",  # writes nothing
        "git commit -am 'devops deploy --env production'",
        "ls -la",
    ],
)
def test_the_guard_leaves_every_other_command_alone(repo, command):
    Path("notes.txt").write_text("scratch\n")

    assert passes(hook(command, repo.root))


def test_a_call_that_is_not_json_or_not_bash_passes(repo):
    garbage = subprocess.run(
        [sys.executable, "-m", "devops_tasks.agent_hook"],
        input="not json",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert passes(garbage)
    assert refusal({"tool_name": "Write", "tool_input": {"content": "devops deploy"}}) is None


def test_the_plugin_runs_the_guard_before_every_bash_command_that_may_be_guarded():
    hooks = json.loads((REPO / "hooks" / "hooks.json").read_text())
    [entry] = hooks["hooks"]["PreToolUse"]
    pyproject = (REPO / "pyproject.toml").read_text()

    assert entry["matcher"] == "Bash"
    # Claude Code starts the guard only for a command holding one of the words it looks for
    assert {handler["if"] for handler in entry["hooks"]} == {f"Bash(*{w}*)" for w in GUARDED}
    for handler in entry["hooks"]:
        assert handler["type"] == "command" and handler["timeout"] >= 300  # checks may be slow
        assert f'\n{handler["command"]} = "devops_tasks.agent_hook:main"\n' in pyproject


def test_a_guard_that_cannot_check_refuses_rather_than_lets_through(tmp_path):
    gone = tmp_path / "removed"  # a working directory that no longer exists: no project to read

    reason = denial(hook("devops deploy --env production", gone))

    assert "could not check this command (git could not run" in reason
