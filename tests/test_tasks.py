"""The tasks as users run them: flags in, one JSON object or readable text out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import run_devops, write_site

from devops_tasks import namespace
from devops_tasks.redaction import register_secret


def deploy_twice(cli) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    assert cli("init", "--json").exit_code == 0
    first = cli("deploy.local", "--json").json["id"]
    write_site(Path("dist"), "v2")
    second = cli("deploy.local", "--json").json["id"]
    return first, second


# Arguments that make every task runnable in a project that has two deployments.
TASK_ARGS = {
    "config.get": ["build.dir"],
    "config.set": ["deployment.keep_releases", "4"],
    "config.import": ["imported.json", "--force"],
    "init": ["--force"],
    "build": [],
    "secrets.set": ["TOKEN", "--value", "new-token-value"],
    "secrets.get": ["TOKEN"],
    "secrets.delete": ["TOKEN"],
    "secrets.import": ["secrets.env"],
    "secrets.exec": ["--command", "true"],
    "schema": ["deploy"],
}
# Tasks that cannot succeed in that project, and why (they must still answer in JSON).
EXPECTED_FAILURES = {
    "build": "no build.command is configured",
    "secrets.init": "the secrets file exists already",
    "deploy.netlify": "the project has no netlify.site_id (nor a token)",
    "deploy.ssh": "the project has no ssh.hosts",
    "ssh.trust": "the project has no ssh.hosts",
    "deploy.aws": "the project has no aws.bucket",
    "deploy.gcp": "the project has no gcp.bucket",
    "deploy.azure": "the project has no azure.account",
    "infra.down": "it needs --yes (and the local target is not torn down)",
    "deploy.vercel": "the project has no vercel.project (nor a token)",
    "vercel.env-sync": "the project has no vercel.env_sync",
}


@pytest.mark.parametrize("task_name", sorted(namespace.task_names))
def test_every_task_prints_exactly_one_json_object_with_success(
    project, cli, task_name, monkeypatch
):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    deploy_twice(cli)
    cli("secrets.set", "TOKEN", "--value", "token-value", "--json")
    Path("secrets.env").write_text("IMPORTED=1\n")
    Path("imported.json").write_text(json.dumps({"version": 1, "platform": "local"}))
    result = cli(task_name, *TASK_ARGS.get(task_name, []), "--json")
    payload = result.json
    assert result.exit_code == (0 if payload["success"] else 1)
    assert payload["success"] is (task_name not in EXPECTED_FAILURES), payload
    if not payload["success"]:
        assert payload["code"] and payload["error"] and payload["fix"]


def test_init_deploy_twice_status_rollback_status_history(project, cli):
    first, second = deploy_twice(cli)
    assert cli("status", "--json").json["live_release"] == second
    rolled = cli("rollback", "--json").json
    assert rolled["action"] == "rollback" and rolled["release"] == first
    status = cli("status", "--json").json
    assert status["live_release"] == first and status["in_sync"] is True
    statuses = {d["id"]: d["status"] for d in cli("history", "--json").json["deployments"]}
    assert statuses[first] == "success" and statuses[second] == "rolled_back"


def test_served_files_follow_the_current_link(project, cli):
    deploy_twice(cli)
    current = project.state_dir / "local" / "production" / "current"
    assert (current / "index.html").read_text() == "<h1>v2</h1>\n"
    cli("rollback", "--json")
    assert (current / "index.html").read_text() == "<h1>v1</h1>\n"


def test_deploy_without_config_uses_the_builtin_local_target(project, cli):
    result = cli("deploy", "--json")
    assert result.exit_code == 0
    assert result.json["platform"] == "local" and result.json["environment"] == "production"


def test_deploy_dir_flag_wins_over_config(project, cli, tmp_path):
    write_site(tmp_path / "elsewhere", "other")
    result = cli("deploy.local", "--dir", str(tmp_path / "elsewhere"), "--json").json
    live = project.state_dir / "local" / "production" / "current" / "index.html"
    assert result["success"] and live.read_text() == "<h1>other</h1>\n"


def test_env_flag_deploys_a_separate_environment(project, cli):
    cli("init", "--json")
    cli("deploy.local", "--env", "staging", "--json")
    assert (project.state_dir / "local" / "staging" / "current").is_symlink()
    assert not (project.state_dir / "local" / "production").exists()


def test_missing_build_dir_fails_with_validation_error_and_no_record(project, cli):
    cli("init", "--json")
    result = cli("deploy", "--dir", "nope", "--json")
    assert result.exit_code == 1
    assert result.json["code"] == "VALIDATION_FAILED"
    assert "build" in result.json["fix"].lower()
    assert cli("history", "--json").json["count"] == 0


def test_broken_config_json_gives_config_invalid_and_leaves_file(project, cli):
    project.state_dir.mkdir()
    project.config_path.write_text('{"version": 1, "platform": ')
    before = project.config_path.read_bytes()
    result = cli("deploy", "--json")
    assert result.exit_code == 1 and result.json["code"] == "CONFIG_INVALID"
    assert "line 1" in result.json["error"]
    assert project.config_path.read_bytes() == before


def test_wrong_enum_names_field_and_allowed_values(project, cli):
    cli("init", "--json")
    data = json.loads(project.config_path.read_text())
    data["deployment"]["strategy"] = "yolo"
    project.config_path.write_text(json.dumps(data))
    payload = cli("status", "--json").json
    assert payload["code"] == "CONFIG_INVALID"
    assert "deployment.strategy" in payload["error"]
    assert payload["problems"][0]["allowed"] == ["rolling", "blue-green", "canary"]


def test_missing_required_field_is_named(project, cli):
    project.state_dir.mkdir()
    project.config_path.write_text(json.dumps({"version": 1}))
    payload = cli("deploy", "--json").json
    assert payload["code"] == "CONFIG_INVALID" and "platform" in payload["error"]


def test_config_set_rejects_bad_value_and_keeps_file(project, cli):
    cli("init", "--json")
    before = project.config_path.read_bytes()
    result = cli("config.set", "deployment.keep_releases", "0", "--json")
    assert result.exit_code == 1 and result.json["code"] == "CONFIG_INVALID"
    assert project.config_path.read_bytes() == before


def test_config_set_types_values_and_get_reads_them_back(project, cli):
    cli("init", "--json")
    cli("config.set", "deployment.keep_releases", "3", "--json")
    assert cli("config.get", "deployment.keep_releases", "--json").json["value"] == 3


def test_config_set_for_an_environment_only_changes_that_environment(project, cli):
    cli("init", "--json")
    cli("config.set", "build.dir", "site", "--env", "qa", "--json")
    assert cli("config.get", "build.dir", "--env", "qa", "--json").json["value"] == "site"
    assert cli("config.get", "build.dir", "--json").json["value"] == "dist"


def test_config_get_unknown_key_is_not_found(project, cli):
    cli("init", "--json")
    assert cli("config.get", "nope.nothing", "--json").json["code"] == "NOT_FOUND"


def test_environment_variable_overrides_a_single_setting(project, cli, monkeypatch):
    cli("init", "--json")
    monkeypatch.setenv("DEVOPS__BUILD__DIR", "public")
    assert cli("config.get", "build.dir", "--json").json["value"] == "public"


def test_config_export_then_import_round_trips(project, cli, tmp_path):
    cli("init", "--json")
    exported = tmp_path / "exported.json"
    cli("config.export", "--output", str(exported), "--json")
    project.config_path.unlink()
    assert cli("config.import", str(exported), "--json").json["success"]
    assert json.loads(project.config_path.read_text()) == json.loads(exported.read_text())


def test_config_import_refuses_to_replace_without_force(project, cli, tmp_path):
    cli("init", "--json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"version": 1, "platform": "local"}))
    assert cli("config.import", str(other), "--json").json["code"] == "CONFIG_EXISTS"


def test_config_validate_reports_environments(project, cli):
    cli("init", "--json")
    payload = cli("config.validate", "--json").json
    assert payload["valid"] is True and payload["environments"] == ["production", "staging"]


def test_config_show_merges_environment_over_base(project, cli):
    cli("init", "--json")
    staging = cli("config.show", "--env", "staging", "--json").json["config"]
    assert staging["deployment"]["keep_releases"] == 3
    raw = cli("config.show", "--raw", "--json").json["config"]
    assert raw["deployment"]["keep_releases"] == 5


def test_init_refuses_to_overwrite_without_force(project, cli):
    cli("init", "--json")
    project.config_path.write_text(project.config_path.read_text().replace("dist", "out"))
    before = project.config_path.read_bytes()
    assert cli("init", "--json").json["code"] == "CONFIG_EXISTS"
    assert project.config_path.read_bytes() == before


def test_init_adds_gitignore_lines_once(project, cli):
    Path(".gitignore").write_text("node_modules/")
    cli("init", "--json")
    cli("init", "--force", "--json")
    lines = Path(".gitignore").read_text().splitlines()
    assert lines[0] == "node_modules/"
    assert lines.count(".devops/credentials.enc") == 1 and ".devops/local/" in lines


def test_init_names_the_next_command(project, cli):
    assert cli("init", "--json").json["next"] == ["devops deploy --dir dist"]


def test_init_for_netlify_names_the_token_and_the_site_first(project, cli):
    steps = cli("init", "--platform", "netlify", "--json").json["next"]
    assert steps == [
        "devops secrets.init",
        "devops secrets.set NETLIFY_AUTH_TOKEN",
        "devops infra.up",
        "devops deploy --dir dist",
    ]


def test_init_with_unknown_template_lists_the_known_ones(project, cli):
    payload = cli("init", "--platform", "nowhere", "--json").json
    assert payload["code"] == "INVALID_ARGUMENT" and "local" in payload["fix"]


def test_platform_without_an_implementation_is_not_supported(project, cli, monkeypatch):
    from devops_tasks import platforms

    cli("init", "--json")
    cli("config.set", "platform", "vercel", "--json")
    monkeypatch.delitem(platforms.AVAILABLE, "vercel")  # a build without that target
    payload = cli("deploy", "--json").json
    assert payload["code"] == "NOT_SUPPORTED" and "local" in payload["fix"]


def test_build_runs_the_configured_command_and_respects_exit_status(project, cli):
    cli("init", "--json")
    cli("config.set", "build.command", "echo built > dist/built.txt", "--json")
    assert cli("build", "--json").json["success"]
    assert Path("dist/built.txt").read_text().strip() == "built"
    cli("config.set", "build.command", "exit 3", "--json")
    failed = cli("build", "--json")
    assert failed.exit_code == 1
    assert failed.json["code"] == "BUILD_FAILED" and failed.json["exit_status"] == 3


def test_build_output_goes_to_stderr_in_json_mode(project, cli):
    cli("init", "--json")
    cli("config.set", "build.command", "echo compiling-$((40 + 2))", "--json")
    result = cli("build", "--json")
    assert "compiling-42" not in result.stdout and "compiling-42" in result.stderr
    assert result.json["success"]


def test_build_without_command_says_how_to_set_one(project, cli):
    cli("init", "--json")
    payload = cli("build", "--json").json
    assert payload["code"] == "CONFIG_INVALID" and "config.set build.command" in payload["fix"]


def test_deploy_with_build_flag_builds_first(project, cli):
    cli("init", "--json")
    cli("config.set", "build.command", "mkdir -p out && echo fresh > out/index.html", "--json")
    cli("config.set", "build.dir", "out", "--json")
    assert cli("deploy", "--build", "--json").json["files_deployed"] == 1


def test_logs_show_the_steps_of_the_latest_deployment(project, cli):
    _, second = deploy_twice(cli)
    payload = cli("logs", "--json").json
    assert payload["id"] == second
    assert [e["step"] for e in payload["log"]] == ["start", "upload", "activate", "done"]


def test_logs_before_any_deployment_is_not_found(project, cli):
    assert cli("logs", "--json").json["code"] == "NOT_FOUND"


def test_history_filters_by_status_and_limits(project, cli):
    deploy_twice(cli)
    cli("rollback", "--json")
    assert cli("history", "--limit", "1", "--json").json["deployments"][0]["action"] == "rollback"
    rolled = cli("history", "--status", "rolled_back", "--json").json
    assert rolled["count"] == 1


def test_rollback_with_nothing_earlier_is_unavailable(project, cli):
    cli("init", "--json")
    cli("deploy", "--json")
    payload = cli("rollback", "--json").json
    assert payload["code"] == "ROLLBACK_UNAVAILABLE" and payload["fix"]


def test_second_rollback_in_a_row_is_unavailable(project, cli):
    deploy_twice(cli)
    cli("rollback", "--json")
    assert cli("rollback", "--json").json["code"] == "ROLLBACK_UNAVAILABLE"


def test_rollback_to_a_named_deployment_rolls_forward_again(project, cli):
    first, second = deploy_twice(cli)
    cli("rollback", "--json")
    assert cli("rollback", "--to", second, "--json").json["release"] == second
    statuses = {d["id"]: d["status"] for d in cli("history", "--json").json["deployments"]}
    assert statuses[second] == "success" and statuses[first] == "rolled_back"


def test_rollback_to_unknown_id_is_not_found(project, cli):
    deploy_twice(cli)
    assert cli("rollback", "--to", "dep_1_deadbeef", "--json").json["code"] == "NOT_FOUND"


def test_status_notices_when_target_and_records_disagree(project, cli):
    first, _ = deploy_twice(cli)
    current = project.state_dir / "local" / "production" / "current"
    current.unlink()
    current.symlink_to(f"releases/{first}")
    status = cli("status", "--json").json
    assert status["in_sync"] is False and status["live_release"] == first


def test_infra_up_creates_the_release_directory_and_show_describes_it(project, cli):
    cli("init", "--json")
    up = cli("infra.up", "--json").json
    assert Path(up["infra"]["root"], "releases").is_dir()
    assert cli("infra.show", "--json").json["infra"]["releases"] == []


def test_keep_releases_prunes_old_releases_but_not_the_live_or_previous(project, cli):
    cli("init", "--json")
    cli("config.set", "deployment.keep_releases", "1", "--json")
    ids = [cli("deploy", "--json").json["id"] for _ in range(4)]
    releases = sorted(p.name for p in (project.state_dir / "local/production/releases").iterdir())
    assert releases == ids[-2:]


def test_human_output_is_text_not_json(project, cli):
    cli("init", "--json")
    result = cli("deploy")
    assert result.exit_code == 0
    assert "success" in result.stdout and not result.stdout.lstrip().startswith("{")


def test_human_error_goes_to_stderr_with_fix(project, cli):
    result = cli("rollback")
    assert result.exit_code == 1 and result.stdout == ""
    assert "ROLLBACK_UNAVAILABLE" in result.stderr and "Fix:" in result.stderr


def test_unexpected_error_is_internal_error_without_traceback(project, cli, monkeypatch):
    from devops_tasks import deployer

    def explode(self, *args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(deployer.Deployer, "status", explode)
    result = cli("status", "--json")
    assert result.json["code"] == "INTERNAL_ERROR" and "kaboom" in result.json["error"]
    assert "Traceback" not in result.stderr
    assert "Traceback" in cli("status", "--json", "--debug").stderr


def test_secret_values_are_masked_in_every_output(project, cli, monkeypatch):
    secret = "s3cr3t-value-4242"
    register_secret(secret)
    cli("init", "--json")
    cli("config.set", "build.command", f"echo {secret}", "--json")
    shown = cli("config.get", "build.command", "--json")
    assert secret not in shown.stdout and "••••" in shown.stdout
    failed = cli("config.set", "deployment.strategy", secret, "--json")
    assert secret not in failed.stdout + failed.stderr


def test_json_flag_can_come_from_invoke_config(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_DEVOPS_JSON", "1")
    assert cli("history").json["success"] is True


def test_a_failed_deploy_is_recorded_and_the_half_release_removed(project, cli, monkeypatch):
    from devops_tasks.platforms.local import LocalPlatform

    cli("init", "--json")
    good = cli("deploy", "--json").json["id"]

    def broken_activate(self, release):
        from devops_tasks.errors import DevopsError, ErrorCode

        raise DevopsError(ErrorCode.DEPLOY_FAILED, "disk on fire", "put it out")

    monkeypatch.setattr(
        LocalPlatform,
        "deploy",
        lambda self, d, f, p: (self.engine.upload(d.id, f, p), broken_activate(self, d.id)),
    )
    payload = cli("deploy", "--json").json
    assert payload["code"] == "DEPLOY_FAILED"
    latest = cli("history", "--limit", "1", "--json").json["deployments"][0]
    assert latest["status"] == "failed"
    releases = os.listdir(project.state_dir / "local/production/releases")
    assert releases == [good]


@pytest.mark.parametrize("source", ["DEVOPS_RUN_* variables", "devops.yaml"])
def test_a_dry_run_setting_cannot_make_a_deploy_record_a_release_it_never_made(project, source):
    env = {"DEVOPS_RUN_DRY": "1", "DEVOPS_RUN_ECHO": "1"} if "variables" in source else {}
    if source == "devops.yaml":
        Path("devops.yaml").write_text("run:\n  dry: true\n  echo: true\n")
    deployed = run_devops("deploy", "--json", cwd=project.root, env=env).json
    status = run_devops("status", "--json", cwd=project.root, env=env).json
    assert status["in_sync"] is True and status["live_release"] == deployed["id"]
    releases = project.state_dir / "local" / "production" / "releases"
    assert os.listdir(releases) == [deployed["id"]]  # no stray .tar beside it


def test_run_settings_from_devops_yaml_never_change_how_commands_run(project, cli):
    Path("devops.yaml").write_text("run:\n  shell: /bin/false\n  warn: false\n")
    assert cli("deploy", "--json").json["success"] is True


def test_json_env_and_debug_also_work_before_the_task_name(project, cli):
    assert cli("--json", "status").json["success"] is True
    assert cli("--env", "staging", "status", "--json").json["environment"] == "staging"
    failed = cli("--debug", "--json", "config.get", "nope")
    assert failed.json["code"] == "NOT_FOUND" and "Traceback" in failed.stderr


def test_a_tasks_own_env_flag_wins_over_the_one_before_it(project, cli):
    result = cli("--env", "staging", "status", "--env", "qa", "--json")
    assert result.json["environment"] == "qa"


def test_the_projects_devops_yaml_is_read_from_any_subdirectory(project, cli, monkeypatch):
    cli("init", "--json")
    Path("devops.yaml").write_text("devops:\n  env: staging\n")
    assert cli("status", "--json").json["environment"] == "staging"
    monkeypatch.chdir(project.root / "dist" / "css")
    assert cli("status", "--json").json["environment"] == "staging"


def test_an_empty_devops_yaml_sets_nothing(project, cli):
    Path("devops.yaml").write_text("")
    assert cli("status", "--json").json["environment"] == "production"


def test_a_devops_py_in_the_project_is_never_run(project, cli):
    Path("devops.py").write_text("open('ran.txt', 'w').close()\n")
    assert cli("status", "--json").json["success"] is True
    assert not Path("ran.txt").exists()
