"""The ``devops`` program as a whole: its listing, version, short flags and variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from helpers import run_devops

from devops_tasks import __version__, namespace
from devops_tasks.cli import typed_names
from devops_tasks.tasks._command import SHORT_FLAGS


def _listed(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.startswith("  ")]


def test_the_default_deploy_task_is_listed_as_deploy(project, cli):
    listed = _listed(cli("--list").stdout)
    assert "deploy" in listed and "deploy.local" in listed
    assert not [name for name in listed if "configured" in name]


def test_the_nested_listing_puts_the_default_tasks_help_on_its_collections_line(project, cli):
    lines = cli("--list", "--list-format", "nested").stdout.splitlines()
    assert not [line for line in lines if line.split()[:1] == [".configured*"]]
    [deploy] = [line for line in lines if line.split()[:1] == ["deploy"]]
    assert "Deploy to the platform configured for the environment." in deploy


def test_a_nested_listing_of_deploy_starts_with_deploy_itself(project, cli):
    lines = cli("--list", "deploy", "--list-format", "nested").stdout.splitlines()
    assert lines[2].split()[0] == "deploy" and ".configured*" not in "".join(lines)


def test_a_listing_cut_at_a_depth_summarises_each_collection(project, cli):
    listed = cli("--list", "--list-depth", "1").stdout
    assert re.search(r"^  deploy \[\d+ tasks\]$", listed, re.M)


def test_a_listed_collection_names_its_default_task_by_the_collections_name(project, cli):
    listed = _listed(cli("--list", "deploy").stdout)
    assert listed[0] == "deploy" and set(listed) == {"deploy"} | {
        name for name in typed_names(namespace).values() if name.startswith("deploy.")
    }


def test_help_of_deploy_names_it_deploy(project, cli):
    shown = cli("--help", "deploy").stdout
    assert "devops [--core-opts] deploy [--options]" in shown
    assert "deploy.configured" not in shown


def test_a_bad_flag_on_deploy_is_reported_against_deploy(project, cli):
    failure = cli("deploy", "--bogus", "--json").json
    assert failure["error"].startswith("deploy got an unexpected argument")
    assert failure["fix"].startswith("Run `devops --help deploy`:")


def test_list_json_is_one_object_naming_every_task_as_typed(project, cli):
    listed = cli("--list", "--json").json
    names = [task["name"] for task in listed["tasks"]]
    assert listed["success"] and sorted(names) == sorted(typed_names(namespace).values())
    assert next(t for t in listed["tasks"] if t["name"] == "deploy")["help"].startswith("Deploy")


def test_list_format_json_answers_the_same_object(project, cli):
    assert cli("--list", "--list-format", "json").json == cli("--list", "--json").json


def test_version_names_invoke_fabric_and_paramiko_as_fab_does(project, cli):
    lines = cli("--version").stdout.splitlines()
    assert lines == [
        f"devops {__version__}",
        f"Invoke {metadata.version('invoke')}",
        f"Fabric {metadata.version('fabric')}",
        f"Paramiko {metadata.version('paramiko')}",
    ]


def test_version_with_json_is_one_object(project, cli):
    versions = cli("--version", "--json").json
    assert versions["devops"] == __version__
    assert versions["fabric"] == metadata.version("fabric")


def test_every_flag_has_one_short_form_on_every_task():
    for full in namespace.task_names:
        for argument in namespace[full].get_arguments():
            long_name = argument.name.replace("-", "_")
            short = SHORT_FLAGS.get(long_name) if not argument.positional else None
            shorts = {name for name in argument.names if len(name) == 1}
            assert shorts == ({short} if short else set()), (full, argument.name)


def test_no_short_flag_stands_for_two_flags():
    assert len(set(SHORT_FLAGS.values())) == len(SHORT_FLAGS)


def test_short_flags_work_before_and_after_the_task(project, cli):
    cli("deploy", "-j")
    before = cli("-j", "-e", "staging", "status").json
    after = cli("status", "-e", "staging", "-j").json
    assert before["environment"] == after["environment"] == "staging"


def test_a_bad_command_line_with_short_json_still_answers_one_object(project, cli):
    assert cli("status", "--bogus", "-j").json["code"] == "INVALID_ARGUMENT"


def test_devops_env_and_devops_json_set_the_programs_own_settings(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_ENV", "staging")
    monkeypatch.setenv("DEVOPS_JSON", "true")
    result = cli("status")
    assert result.json["environment"] == "staging" and result.stderr == ""


def test_devops_json_off_leaves_output_for_people(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_JSON", "0")
    assert not cli("status").stdout.startswith("{")


def test_a_switch_neither_on_nor_off_is_config_invalid(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_JSON", "maybe")
    failure = cli("status", "--json").json
    assert failure["code"] == "CONFIG_INVALID" and "DEVOPS_JSON" in failure["error"]


def test_the_old_devops_devops_variables_still_work_with_a_warning_on_stderr(
    project, cli, monkeypatch
):
    monkeypatch.setenv("DEVOPS_DEVOPS_ENV", "staging")
    result = cli("status", "--json")
    assert result.json["environment"] == "staging"
    assert result.stderr == (
        "warning: DEVOPS_DEVOPS_ENV is deprecated: use DEVOPS_ENV (one underscore after DEVOPS)\n"
    )


def test_the_new_variable_wins_over_the_old_one(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_DEVOPS_ENV", "staging")
    monkeypatch.setenv("DEVOPS_ENV", "qa")
    assert cli("status", "--json").json["environment"] == "qa"


def test_devops_project_dir_finds_the_project_from_elsewhere(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_devops(
        "status", "--json", cwd=elsewhere, env={"DEVOPS_PROJECT_DIR": str(project.root)}
    )
    assert result.json["success"] and result.stderr == ""


def _program_in(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``devops ARGS`` through its entry point, after ``script`` ran in the same process."""
    code = f"{script}\nimport sys\nsys.argv = ['devops', *{list(args)!r}]\n"
    code += "from devops_tasks.__main__ import main\nmain()\n"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=buffered,  # output waits in a buffer, as it does for most users
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_program_runs_the_exit_handlers_before_it_leaves(tmp_path):
    marker = tmp_path / "ran"
    done = _program_in(
        f"import atexit; atexit.register(lambda: open({str(marker)!r}, 'w').close())",
        tmp_path,
        "--version",
    )
    assert done.returncode == 0 and marker.exists()


def test_the_program_leaves_with_its_status_and_every_byte_of_its_output(tmp_path, cli):
    helped = _program_in("", tmp_path, "--help")  # printed by invoke: still in the buffer
    failed = _program_in("", tmp_path, "nosuchtask", "--json")
    assert helped.returncode == 0 and helped.stdout == cli("--help").stdout
    assert failed.returncode == 1 and json.loads(failed.stdout)["code"] == "INVALID_ARGUMENT"


def test_a_reader_that_went_away_does_not_make_the_program_fail_on_leaving(tmp_path):
    done = subprocess.run(
        f"{sys.executable} -m devops_tasks --list | head -c 10",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr
