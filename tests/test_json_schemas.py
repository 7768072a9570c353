"""Every task's ``--json`` answer has the shape its shipped schema says, and stays small.

Each test runs tasks for real in their common case (the local target, the fake Netlify API,
the three test sshd hosts) and checks each answer against ``devops schema TASK``'s schema and
against the 1 KB budget, save the answers named in ``OVER_BUDGET``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import CliResult

from devops_tasks import namespace
from devops_tasks.cli import typed_names
from devops_tasks.commands import OUTPUT_TAIL_CHARS
from devops_tasks.errors import ErrorCode
from devops_tasks.schemas import bundled, load, task_names

#: The most bytes a task's answer takes in the common case (the README's JSON budget).
BUDGET = 1024
#: What one ``history`` entry may take: ten of them (the default) are over the budget.
ENTRY_BUDGET = 170
#: The answers that may be larger, and why (the README lists the same).
OVER_BUDGET = {
    "schema": "a JSON Schema is a document of its own (about 2 to 6 KB)",
    "config.show": "the user's own config, as large as they made it",
    "config.export": "the user's own config, as large as they made it",
    "secrets.export": "every secret value, as asked",
    "history --remote": "the platform's own list beside the local one (about 250 bytes a deploy)",
}


def _over_budget_allowed(task: str, args: tuple[str, ...]) -> bool:
    return task in OVER_BUDGET or any(f"{task} {arg}" in OVER_BUDGET for arg in args)


def answer(cli: Any, task: str, *args: str) -> dict[str, Any]:
    """Run ``devops TASK ARGS --json``; check its answer against the schema and the budget."""
    result: CliResult = cli(task, *args, "--json")
    data = result.json
    jsonschema.Draft202012Validator(bundled(task)).validate(data)
    size = len(result.stdout.strip().encode("utf-8"))
    assert _over_budget_allowed(task, args) or size <= BUDGET, f"{task} {args}: {size} bytes"
    return data


def ok(cli: Any, task: str, *args: str) -> dict[str, Any]:
    data = answer(cli, task, *args)
    assert data["success"], data
    return data


def failed(cli: Any, task: str, *args: str) -> dict[str, Any]:
    data = answer(cli, task, *args)
    assert not data["success"], data
    return data


def test_every_task_of_the_collection_has_a_schema_file():
    assert sorted(typed_names(namespace).values()) == task_names()


def test_the_failure_schema_allows_every_error_code_and_no_other():
    codes = load("failure")["properties"]["code"]["enum"]
    assert codes == [code.value for code in ErrorCode]


def test_every_schema_is_a_valid_json_schema():
    for task in task_names():
        jsonschema.Draft202012Validator.check_schema(bundled(task))


def test_devops_schema_prints_a_schema_that_needs_no_other_file(project, cli):
    printed = json.loads(cli("schema", "deploy").stdout)
    assert set(printed["$defs"]) == {"failure", "record", "deploy"} - {"deploy"}
    deployed = cli("deploy", "--json").json
    jsonschema.Draft202012Validator(printed).validate(deployed)


def test_devops_schema_of_no_such_task_is_not_found(project, cli):
    assert failed(cli, "schema", "nowhere")["code"] == "NOT_FOUND"


def test_a_schema_refuses_an_answer_of_another_shape(project, cli):
    validator = jsonschema.Draft202012Validator(bundled("history"))
    assert not validator.is_valid({"success": True, "deployments": []})
    assert not validator.is_valid({"success": False, "error": "x", "code": "NOPE", "fix": "y"})


def test_local_deploys_and_what_follows_answer_small(project, cli):
    ok(cli, "init", "--force")
    ok(cli, "config.set", "build.command", "echo built")
    ok(cli, "build")
    first = ok(cli, "deploy")
    ok(cli, "deploy.local", "--message", "second")
    ok(cli, "deploy")
    status = ok(cli, "status")
    assert status["target"]["kept_releases"] == 3 and "releases" not in status["target"]
    ok(cli, "logs")
    ok(cli, "logs", "--id", first["id"])
    ok(cli, "rollback")
    assert ok(cli, "history")["count"] == 4
    assert ok(cli, "history", "--env", "production", "--status", "success")["count"] == 3


def test_history_answers_at_most_ten_entries_by_default_each_without_nulls_or_the_query(
    project, cli
):
    for _ in range(11):
        cli("deploy.local", "--json")
    result = cli("history", "--env", "production", "--json")
    history = result.json
    jsonschema.Draft202012Validator(bundled("history")).validate(history)
    entries = history["deployments"]
    assert history["count"] == len(entries) == 10
    for entry in entries:
        assert None not in entry.values()
        assert "environment" not in entry and "release" not in entry
    assert len(result.stdout.encode()) <= 100 + 10 * ENTRY_BUDGET
    assert len(cli("history").stdout.splitlines()) > 11  # people get a screenful


def test_config_tasks_answer_small(project, cli, tmp_path):
    ok(cli, "init", "--force")
    ok(cli, "config.set", "deployment.keep_releases", "3", "--env", "staging")
    ok(cli, "config.get", "build.dir")
    ok(cli, "config.show")
    ok(cli, "config.validate")
    exported = tmp_path / "exported.json"
    ok(cli, "config.export", "--output", str(exported))
    ok(cli, "config.import", str(exported), "--force")


def test_config_invalid_names_each_problem_once_without_the_list_of_known_keys(project, cli):
    ok(cli, "init", "--force")
    config = json.loads(project.config_path.read_text())
    config["deployment"].update(colour="red", keep_releasez=3, strategy="sideways")
    project.config_path.write_text(json.dumps(config))
    failure = failed(cli, "config.validate")
    assert failure["code"] == "CONFIG_INVALID" and len(failure["problems"]) == 3
    assert "allowed" not in json.dumps(failure["problems"][:2])


def test_a_failed_build_keeps_only_the_tail_of_its_output(project, cli):
    ok(cli, "init", "--force")
    ok(cli, "config.set", "build.command", "seq 1 5000; exit 3")
    failure = failed(cli, "build")
    assert failure["code"] == "BUILD_FAILED" and failure["exit_status"] == 3
    assert len(failure["output_tail"]) == OUTPUT_TAIL_CHARS
    assert failure["output_tail"].endswith("4999\n5000\n")


def test_infra_and_lock_tasks_answer_small(project, cli):
    ok(cli, "init", "--force")
    ok(cli, "deploy")
    ok(cli, "infra.plan")
    ok(cli, "infra.up")
    ok(cli, "infra.show")
    assert failed(cli, "infra.down", "--yes")["code"] == "NOT_SUPPORTED"
    ok(cli, "lock.status")
    ok(cli, "lock.release")
    assert failed(cli, "history", "--remote")["code"] == "NOT_SUPPORTED"


def test_secrets_tasks_answer_small(project, cli, tmp_path):
    ok(cli, "secrets.init")
    ok(cli, "secrets.set", "API_TOKEN", "--value", "abcdefghijklmnop1234")
    ok(cli, "secrets.get", "API_TOKEN")
    ok(cli, "secrets.list")
    dotenv = tmp_path / "prod.env"
    dotenv.write_text("DB_PASSWORD=correct-horse-battery\n")
    ok(cli, "secrets.import", str(dotenv), "--env", "production")
    ok(cli, "secrets.export")
    ok(cli, "secrets.exec", "--command", "true")
    ok(cli, "secrets.rotate-key")
    ok(cli, "secrets.delete", "API_TOKEN")


@pytest.mark.parametrize("task", ["deploy.aws", "deploy.gcp", "deploy.azure", "deploy.vercel"])
def test_cloud_deploys_without_their_settings_fail_in_the_shape_of_every_failure(
    project, cli, task
):
    assert failed(cli, task)["code"] in {"VALIDATION_FAILED", "CONFIG_INVALID"}


def test_vercel_env_sync_without_vercel_settings_fails_in_the_common_shape(project, cli):
    failed(cli, "vercel.env-sync")


def test_netlify_deploys_and_what_follows_answer_small(netlify, cli):
    ok(cli, "deploy")
    ok(cli, "deploy.netlify")
    ok(cli, "status")
    remote = ok(cli, "history", "--remote")
    assert all("deployment" in item and "title" not in item for item in remote["remote"])
    ok(cli, "logs")
    ok(cli, "rollback")
    ok(cli, "build", "--remote")
    ok(cli, "infra.show")
    ok(cli, "infra.plan")


def test_ssh_fleet_deploys_and_what_follows_answer_small(project, cli, hosts: list[Path]):
    ok(cli, "deploy")
    ok(cli, "deploy.ssh")
    status = ok(cli, "status")
    assert all("current" not in host for host in status["target"]["hosts"])
    remote = ok(cli, "history", "--remote")
    assert [item["hosts"] for item in remote["remote"]] == [3, 3]
    ok(cli, "logs")
    ok(cli, "infra.show")
    ok(cli, "lock.status")
    ok(cli, "lock.release")
    ok(cli, "ssh.trust")
    ok(cli, "rollback")


def test_a_remote_item_counts_its_hosts_and_names_only_those_where_it_did_not_go_live():
    from devops_tasks.tasks.ops import merge_remote

    item = {
        "id": "dep_1_ab",
        "action": "deploy",
        "environment": "production",
        "platform": "ssh",
        "status": "failed",
        "release": "dep_1_ab",
        "message": None,
        "hosts": [
            {"host": "web1", "status": "switched"},
            {"host": "web2", "status": "rolled_back", "error": "health check failed"},
        ],
    }
    [shown] = merge_remote([item], [], {"environment": "production", "platform": "ssh"})
    assert shown == {
        "id": "dep_1_ab",
        "action": "deploy",
        "status": "failed",
        "release": "dep_1_ab",
        "hosts": 2,
        "failed_hosts": [{"host": "web2", "status": "rolled_back", "error": "health check failed"}],
    }
    jsonschema.Draft202012Validator(bundled("history")).validate(
        {"success": True, "count": 0, "deployments": [], "remote": [shown]}
    )
