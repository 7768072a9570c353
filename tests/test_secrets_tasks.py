"""The secrets.* tasks as people and agents run them."""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path

import pytest
from helpers import run_devops

KEY = "ab" * 32
OTHER_KEY = "cd" * 32


@pytest.fixture
def keyed(project, monkeypatch):
    """A project whose master key comes from DEVOPS_MASTER_KEY."""
    monkeypatch.setenv("DEVOPS_MASTER_KEY", KEY)
    return project


def test_set_without_any_key_is_master_key_missing_and_writes_nothing(project, cli):
    result = cli("secrets.set", "TOKEN", "--value", "x-value-1", "--json")
    assert result.json["code"] == "MASTER_KEY_MISSING" and "secrets.init" in result.json["fix"]
    assert not project.credentials_path.exists()
    assert not (project.state_dir / "locks").exists() or not any(
        p.suffix == ".enc" for p in project.state_dir.rglob("*")
    )


def test_init_creates_the_file_and_a_key_file_then_refuses_twice(project, cli):
    created = cli("secrets.init", "--json").json
    assert Path(created["key_source"]).is_file() and project.credentials_path.is_file()
    assert oct(project.credentials_path.stat().st_mode)[-3:] == "600"
    assert cli("secrets.init", "--json").json["code"] == "CONFIG_EXISTS"


def test_set_with_value_flag_warns_about_shell_history(keyed, cli):
    result = cli("secrets.set", "TOKEN", "--value", "v-123456", "--json")
    assert result.json["success"] and "shell history" in result.stderr


def test_set_reads_the_value_from_stdin_without_the_trailing_newline(keyed, cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-value\n"))
    cli("secrets.set", "TOKEN", "--json")
    assert cli("secrets.get", "TOKEN", "--show", "--json").json["value"] == "from-stdin-value"


def test_set_prompts_without_echo_on_a_terminal(keyed, cli, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed-secret-value")
    cli("secrets.set", "TOKEN", "--json")
    assert cli("secrets.get", "TOKEN", "--show", "--json").json["value"] == "typed-secret-value"


def test_get_masks_unless_show(keyed, cli):
    cli("secrets.set", "NETLIFY_AUTH_TOKEN", "--value", "nfp_abcdefghijklmnopz123", "--json")
    masked = cli("secrets.get", "NETLIFY_AUTH_TOKEN", "--json").json
    assert masked["value"] == "nfp_••••••••z123" and masked["masked"] is True
    assert cli("secrets.get", "NETLIFY_AUTH_TOKEN").stdout == "nfp_••••••••z123\n"
    shown = cli("secrets.get", "NETLIFY_AUTH_TOKEN", "--show").stdout
    assert shown == "nfp_abcdefghijklmnopz123\n"


def test_get_of_a_short_value_shows_none_of_it(keyed, cli):
    cli("secrets.set", "PIN", "--value", "482913", "--json")
    assert cli("secrets.get", "PIN", "--json").json["value"] == "••••••••"


def test_get_unknown_is_not_found_with_the_set_command(keyed, cli):
    assert "secrets.set NOPE" in cli("secrets.get", "NOPE", "--json").json["fix"]


def test_invalid_secret_name_is_refused(keyed, cli):
    assert cli("secrets.set", "9-bad", "--value", "x", "--json").json["code"] == "INVALID_ARGUMENT"


def test_environment_scoped_value_wins_over_shared(keyed, cli):
    cli("secrets.set", "TOKEN", "--value", "shared-value", "--json")
    cli("secrets.set", "TOKEN", "--value", "prod-value", "--env", "production", "--json")
    get = lambda *a: cli("secrets.get", "TOKEN", "--show", *a, "--json").json["value"]  # noqa: E731
    assert (get("--env", "production"), get("--env", "staging"), get()) == (
        "prod-value",
        "shared-value",
        "shared-value",
    )


def test_list_shows_names_scopes_and_times_but_no_values(keyed, cli):
    cli("secrets.set", "A_TOKEN", "--value", "alpha-secret-value", "--json")
    cli("secrets.set", "B_TOKEN", "--value", "beta-secret-value", "--env", "staging", "--json")
    listed = cli("secrets.list", "--env", "staging", "--json")
    names = [(s["name"], s["scope"]) for s in listed.json["secrets"]]
    assert names == [("A_TOKEN", "_shared"), ("B_TOKEN", "staging")]
    assert all(s["updated"].endswith("Z") for s in listed.json["secrets"])
    assert "secret-value" not in listed.stdout and "A_TOKEN" in cli("secrets.list").stdout


def test_list_when_empty_says_how_to_add_one(project, cli):
    assert "secrets.set" in cli("secrets.list").stdout


def test_delete_removes_one_scope_and_reports_unknown(keyed, cli):
    cli("secrets.set", "TOKEN", "--value", "shared-value", "--json")
    cli("secrets.set", "TOKEN", "--value", "prod-value", "--env", "production", "--json")
    assert cli("secrets.delete", "TOKEN", "--env", "production", "--json").json["success"]
    assert (
        cli("secrets.get", "TOKEN", "--env", "production", "--show", "--json").json["value"]
        == "shared-value"
    )
    assert (
        cli("secrets.delete", "TOKEN", "--env", "production", "--json").json["code"] == "NOT_FOUND"
    )


def test_import_reads_a_dotenv_file_in_one_write(keyed, cli, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('# comment\nAPI_KEY="quoted value"\nexport DB_URL=postgres://u:p@h/db\n')
    result = cli("secrets.import", str(env_file), "--json").json
    assert result["imported"] == ["API_KEY", "DB_URL"]
    assert cli("secrets.get", "API_KEY", "--show", "--json").json["value"] == "quoted value"


def test_import_of_a_missing_file_is_not_found(keyed, cli):
    assert cli("secrets.import", "nope.env", "--json").json["code"] == "NOT_FOUND"


def test_export_env_format_is_shell_safe_and_warns(keyed, cli):
    tricky = 'it\'s $HOME; `rm -rf` "quoted"'
    cli("secrets.set", "TRICKY", "--value", tricky, "--json")
    result = cli("secrets.export")
    assert "plain text" in result.stderr
    assert shlex.split(result.stdout.strip()) == [f"TRICKY={tricky}"]


def test_export_json_format(keyed, cli):
    cli("secrets.set", "TOKEN", "--value", "exported-value", "--json")
    assert json.loads(cli("secrets.export", "--format", "json").stdout) == {
        "TOKEN": "exported-value"
    }
    assert cli("secrets.export", "--format", "json", "--json").json["secrets"] == {
        "TOKEN": "exported-value"
    }
    assert cli("secrets.export", "--format", "xml", "--json").json["code"] == "INVALID_ARGUMENT"


def test_exec_gives_the_command_the_secrets_and_masks_its_output(keyed, cli, tmp_path):
    cli("secrets.set", "TOKEN", "--value", "exec-secret-value", "--json")
    probe = tmp_path / "seen.txt"
    result = cli("secrets.exec", "--command", f'echo "$TOKEN" > {probe}; echo "$TOKEN"')
    assert probe.read_text().strip() == "exec-secret-value"
    assert "exec-secret-value" not in result.stdout and "••••" in result.stdout


def test_exec_in_json_mode_keeps_stdout_one_object(keyed, cli):
    cli("secrets.set", "TOKEN", "--value", "exec-secret-value", "--json")
    result = cli("secrets.exec", "--command", "echo child-output", "--json")
    assert result.json["secrets"] == ["TOKEN"] and "child-output" in result.stderr


def test_exec_failure_reports_the_exit_status(keyed, cli):
    payload = cli("secrets.exec", "--command", "exit 7", "--json").json
    assert payload["code"] == "COMMAND_FAILED" and payload["exit_status"] == 7


def test_exec_without_a_command_says_how_to_give_one(keyed, cli):
    assert "--" in cli("secrets.exec", "--json").json["fix"]


def test_exec_takes_the_command_after_double_dash_in_the_devops_program(keyed, tmp_path):
    env = {"DEVOPS_MASTER_KEY": KEY}
    run_devops("secrets.set", "TOKEN", "--value", "dash-secret-value", cwd=keyed.root, env=env)
    out = tmp_path / "out.txt"
    result = run_devops(
        "secrets.exec",
        "--json",
        "--",
        "sh",
        "-c",
        f"printenv TOKEN > {out}",
        cwd=keyed.root,
        env=env,
    )
    assert result.json["success"] and out.read_text().strip() == "dash-secret-value"


def test_rotate_key_then_new_key_reads_and_old_key_fails(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", KEY)
    cli("secrets.set", "TOKEN", "--value", "rotated-value", "--json")
    monkeypatch.setenv("DEVOPS_NEW_MASTER_KEY", OTHER_KEY)
    rotated = cli("secrets.rotate-key", "--json").json
    assert rotated["success"] and rotated["key_id"] != rotated["old_key_id"]
    assert cli("secrets.get", "TOKEN", "--json").json["code"] == "MASTER_KEY_WRONG"
    monkeypatch.setenv("DEVOPS_MASTER_KEY", OTHER_KEY)
    assert cli("secrets.get", "TOKEN", "--show", "--json").json["value"] == "rotated-value"


def test_wrong_key_is_reported_and_the_file_is_untouched(keyed, cli, monkeypatch):
    cli("secrets.set", "TOKEN", "--value", "stay-put-value", "--json")
    before = keyed.credentials_path.read_bytes()
    monkeypatch.setenv("DEVOPS_MASTER_KEY", OTHER_KEY)
    assert (
        cli("secrets.set", "OTHER", "--value", "v-1234", "--json").json["code"]
        == "MASTER_KEY_WRONG"
    )
    assert keyed.credentials_path.read_bytes() == before


def test_a_secrets_mode_without_a_backend_is_rejected_by_the_schema(project, cli):
    cli("init", "--json")
    payload = cli("config.set", "secrets.mode", "vault", "--json").json
    assert payload["code"] == "CONFIG_INVALID"
    assert payload["problems"][0]["allowed"] == ["local", "aws", "gcp", "azure"]


def test_rotate_key_on_a_backend_without_our_key_is_not_supported(project, cli):
    from devops_tasks.secrets.base import SecretsBackend

    class Bare(SecretsBackend):
        name = "bare"
        get = set_many = delete = list = lambda *a, **k: None

    with pytest.raises(Exception) as failure:
        Bare().rotate_key()
    assert failure.value.code.value == "NOT_SUPPORTED"
    with pytest.raises(Exception) as failure:
        Bare().create()
    assert failure.value.code.value == "NOT_SUPPORTED"


def test_set_with_nothing_on_stdin_refuses_rather_than_storing_empty(keyed, cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli("secrets.set", "TOKEN", "--json").json["code"] == "INVALID_ARGUMENT"
    assert not keyed.credentials_path.exists()


def test_an_empty_value_can_be_stored_on_purpose(keyed, cli):
    cli("secrets.set", "EMPTY", "--value", "", "--json")
    assert cli("secrets.get", "EMPTY", "--show", "--json").json["value"] == ""


def test_the_tasks_work_the_same_with_aws_secrets_manager(project, cli, aws_env):
    cli("init", "--json")
    cli("config.set", "secrets.mode", "aws", "--json")
    assert cli(
        "secrets.set", "TOKEN", "--value", "aws-held-value", "--env", "staging", "--json"
    ).json["success"]
    assert (
        cli("secrets.get", "TOKEN", "--env", "staging", "--show", "--json").json["value"]
        == "aws-held-value"
    )
    assert [
        s["scope"] for s in cli("secrets.list", "--env", "staging", "--json").json["secrets"]
    ] == ["staging"]
    assert not project.credentials_path.exists()
    assert cli("secrets.rotate-key", "--json").json["code"] == "NOT_SUPPORTED"


def test_a_secrets_file_made_without_init_is_still_kept_out_of_git(keyed, cli):
    cli("secrets.set", "TOKEN", "--value", "v-1234567", "--json")
    assert ".devops/credentials.enc" in Path(".gitignore").read_text().splitlines()
