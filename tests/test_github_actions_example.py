"""examples/github-actions/deploy.yml: valid YAML whose every devops command exists as written."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml
from helpers import REPO
from invoke.parser import ParseError, Parser

from devops_tasks import build_namespace

WORKFLOW = REPO / "examples" / "github-actions" / "deploy.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    parsed = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return parsed


def _commands(workflow: dict[str, Any]) -> list[list[str]]:
    """Every ``devops``/``invoke`` command of every ``run`` step, as argv (program first)."""
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] in ("devops", "invoke"):
                    found.append(words)
    return found


def test_every_devops_command_names_an_existing_task_with_flags_it_takes(workflow):
    parser = Parser(contexts=build_namespace().to_contexts())
    commands = _commands(workflow)

    assert {words[1] for words in commands} == {"build", "deploy", "status"}
    for words in commands:
        try:
            parser.parse_argv(words[1:])
        except ParseError as error:
            pytest.fail(f"{shlex.join(words)}: {error}")


def test_a_matrix_deploys_each_environment_one_run_at_a_time(workflow):
    deploy = workflow["jobs"]["deploy"]

    environments = deploy["strategy"]["matrix"]["environment"]
    assert len(environments) >= 2 and "production" not in environments
    assert deploy["concurrency"] == {
        "group": "deploy-${{ matrix.environment }}",
        "cancel-in-progress": False,
    }
    assert deploy["env"]["ENVIRONMENT"] == "${{ matrix.environment }}"


def test_production_waits_for_the_others_and_for_its_github_environment(workflow):
    production = workflow["jobs"]["production"]

    assert production["needs"] == "deploy"
    assert production["environment"]["name"] == "production"
    assert production["concurrency"]["group"] == "deploy-production"
    assert production["env"]["ENVIRONMENT"] == "production"


def test_the_store_key_comes_from_a_repository_secret_only_where_deploys_run(workflow):
    key = "DEVOPS_MASTER_KEY"  # README, Secrets: the variable that carries the master key
    assert f"`{key}`" in (REPO / "README.md").read_text(encoding="utf-8")
    jobs = workflow["jobs"]

    assert key not in jobs["build"].get("env", {}) and key not in workflow.get("env", {})
    for name in ("deploy", "production"):
        assert jobs[name]["env"][key] == "${{ secrets.DEVOPS_MASTER_KEY }}"


def test_deploys_report_to_github_with_the_runs_own_token(workflow):
    assert workflow["permissions"]["deployments"] == "write"
    for name in ("deploy", "production"):
        assert workflow["jobs"][name]["env"]["GITHUB_TOKEN"] == "${{ github.token }}"


def test_every_expression_reads_a_context_github_provides():
    text = WORKFLOW.read_text(encoding="utf-8")
    contexts = {m.split(".")[0] for m in re.findall(r"\$\{\{\s*([\w.]+)\s*\}\}", text)}
    assert contexts <= {"matrix", "secrets", "github"}
