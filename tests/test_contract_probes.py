"""Whatever goes wrong, ``devops ... --json`` answers with one JSON object and a specific code.

Each probe sets up one hostile environment (a file system that refuses writes, a config that
is not UTF-8, a FIFO where a file should be...) and runs the real ``devops`` program in a new
process, as an agent would. CI runs as root, so a "read-only project" is one that stops root
too: ``/sys``, where even root may not create a directory.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import CliResult, run_devops, write_site

from devops_tasks import namespace

NOT_UTF8_NAME = os.fsdecode(b"conf\xff.json")


def _project(tmp_path: Path, config: bytes = b'{"version": 1, "platform": "local"}') -> Path:
    root = tmp_path / "proj"
    write_site(root / "dist")
    (root / ".devops").mkdir()
    (root / ".devops" / "config.json").write_bytes(config)
    return root


def _bare(tmp_path: Path) -> Path:
    root = tmp_path / "bare"
    write_site(root / "dist")
    return root


def _state_dir_is_a_file(tmp_path: Path) -> Path:
    root = _bare(tmp_path)
    (root / ".devops").write_text("not a directory")
    return root


def _state_dir_is_a_broken_link(tmp_path: Path) -> Path:
    root = _bare(tmp_path)
    (root / ".devops").symlink_to(tmp_path / "gone")
    return root


def _state_dir_is_a_link_to_itself(tmp_path: Path) -> Path:
    root = _bare(tmp_path)
    (root / ".devops").symlink_to(".devops")
    return root


def _home_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "home").write_text("a file, not a directory")
    return _bare(tmp_path)


def _with_file(name: str, content: bytes) -> Callable[[Path], Path]:
    def setup(tmp_path: Path) -> Path:
        root = _project(tmp_path)
        (root / name).write_bytes(content)
        return root

    return setup


def _config_is_a_fifo(tmp_path: Path) -> Path:
    root = _project(tmp_path)
    (root / ".devops" / "config.json").unlink()
    os.mkfifo(root / ".devops" / "config.json")
    return root


def _with_fifo(tmp_path: Path) -> Path:
    root = _project(tmp_path)
    os.mkfifo(root / "fifo.json")
    return root


@dataclass
class Probe:
    args: list[str]
    code: str
    setup: Callable[[Path], Path] = _project
    env: dict[str, str] = field(default_factory=dict)
    mentions: str | None = None


PROBES = {
    "limit_not_a_number": Probe(
        ["history", "--limit", "abc"], "INVALID_ARGUMENT", mentions="--limit"
    ),
    "json_flag_given_a_value": Probe(["status", "--json=1"], "INVALID_ARGUMENT", mentions="--json"),
    "env_with_a_path_in_it": Probe(
        ["status", "--env", "../x"], "INVALID_ARGUMENT", mentions="--env"
    ),
    "env_with_a_space": Probe(["deploy", "--env", "A B"], "INVALID_ARGUMENT", mentions="--env"),
    "empty_env_before_the_task": Probe(
        ["--env", "", "status"], "INVALID_ARGUMENT", mentions="--env"
    ),
    "read_only_project": Probe(
        ["init"], "PERMISSION_DENIED", setup=lambda _: Path("/sys"), mentions="/sys/.devops"
    ),
    "state_dir_is_a_file": Probe(["deploy"], "FILESYSTEM_ERROR", setup=_state_dir_is_a_file),
    "state_dir_is_a_broken_link": Probe(
        ["deploy"], "FILESYSTEM_ERROR", setup=_state_dir_is_a_broken_link, mentions=".devops"
    ),
    "home_is_a_file": Probe(
        ["secrets.init"],
        "FILESYSTEM_ERROR",
        setup=_home_is_a_file,
        env={"HOME": "{tmp}/home", "XDG_CONFIG_HOME": ""},
        mentions="home/.config",
    ),
    "config_not_utf8": Probe(
        ["status"],
        "CONFIG_INVALID",
        setup=lambda tmp: _project(tmp, b'{"version": 1, "platform": "loc\xff"}'),
        mentions="config.json",
    ),
    "config_is_a_fifo": Probe(["config.show", "--raw"], "CONFIG_INVALID", setup=_config_is_a_fifo),
    "config_with_nan": Probe(
        ["config.show"],
        "CONFIG_INVALID",
        setup=lambda tmp: _project(tmp, b'{"version": 1, "platform": "local", "x": NaN}'),
        mentions="NaN",
    ),
    "config_with_a_duplicate_key": Probe(
        ["status"],
        "CONFIG_INVALID",
        setup=lambda tmp: _project(tmp, b'{"version": 1, "platform": "local", "platform": "x"}'),
        mentions="'platform'",
    ),
    "config_nested_too_deeply": Probe(
        ["status"],
        "CONFIG_INVALID",
        setup=lambda tmp: _project(tmp, b"[" * 100_000 + b"]" * 100_000),
        mentions="nested",
    ),
    "import_a_file_whose_name_is_not_utf8": Probe(
        ["config.import", NOT_UTF8_NAME, "--force"],
        "CONFIG_INVALID",
        setup=_with_file(NOT_UTF8_NAME, b"{"),
        mentions="conf\\xff.json",
    ),
    "import_a_fifo": Probe(
        ["config.import", "fifo.json", "--force"], "INVALID_ARGUMENT", setup=_with_fifo
    ),
    "import_dev_zero": Probe(["config.import", "/dev/zero", "--force"], "INVALID_ARGUMENT"),
    "import_a_file_over_1_mib": Probe(
        ["config.import", "big.json", "--force"],
        "INVALID_ARGUMENT",
        setup=_with_file("big.json", b" " * (1 << 20) + b"{}"),
    ),
    "broken_devops_yaml": Probe(
        ["status"], "CONFIG_INVALID", setup=_with_file("devops.yaml", b"devops: ["), mentions="yaml"
    ),
    "devops_yaml_section_not_a_mapping": Probe(
        ["status"], "CONFIG_INVALID", setup=_with_file("devops.yaml", b"devops: 3\n")
    ),
    "devops_yaml_not_utf8": Probe(
        ["status"], "CONFIG_INVALID", setup=_with_file("devops.yaml", b"devops: caf\xe9\n")
    ),
    "devops_yaml_not_a_mapping": Probe(
        ["status"], "CONFIG_INVALID", setup=_with_file("devops.yaml", b"- env\n")
    ),
    "flag_the_program_does_not_have": Probe(["--dry", "deploy"], "INVALID_ARGUMENT"),
    "core_flag_value_not_a_number": Probe(["--list-depth", "abc", "status"], "INVALID_ARGUMENT"),
    "no_task_at_all": Probe([], "INVALID_ARGUMENT"),
    "devops_yaml_nested_too_deeply": Probe(
        ["status"], "CONFIG_INVALID", setup=_with_file("devops.yaml", b"[" * 50_000)
    ),
    "config_nested_deeper_than_the_schema_check_goes": Probe(
        ["status"],
        "CONFIG_INVALID",
        setup=lambda tmp: _project(tmp, b'{"version": 1, "x": ' + b"[" * 900 + b"]" * 900 + b"}"),
    ),
    "list_of_no_collection": Probe(["--list", "hunter2"], "INVALID_ARGUMENT"),
    "list_format_of_no_kind": Probe(["-F", "hunter2", "--list"], "INVALID_ARGUMENT"),
    "history_status_of_no_kind": Probe(["history", "--status", "bogus"], "INVALID_ARGUMENT"),
    "state_dir_a_link_to_itself": Probe(
        ["status"], "FILESYSTEM_ERROR", setup=_state_dir_is_a_link_to_itself
    ),
    "devops_yaml_billion_laughs": Probe(
        ["status"],
        "CONFIG_INVALID",
        setup=_with_file(
            "devops.yaml",
            "\n".join(
                ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
            ).encode(),
        ),
        mentions="aliases",
    ),
    "config_file_of_no_known_type": Probe(["-f", "/dev/zero", "status"], "CONFIG_INVALID"),
}


def _assert_one_failure(result: CliResult, code: str) -> dict[str, object]:
    assert result.exit_code == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    payload = result.json  # exactly one JSON object on stdout
    assert payload["success"] is False and payload["code"] == code, payload
    assert payload["error"] and payload["fix"]
    return payload


@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_environment_failure_is_one_json_object_with_a_specific_code(name, tmp_path):
    probe = PROBES[name]
    cwd = probe.setup(tmp_path)
    env = {name: value.format(tmp=tmp_path) for name, value in probe.env.items()}
    result = run_devops(*probe.args, "--json", cwd=cwd, env=env)
    payload = _assert_one_failure(result, probe.code)
    if probe.mentions:
        assert probe.mentions in str(payload["error"]), payload


def test_a_project_300_directories_deep_is_a_filesystem_error(tmp_path):
    """Deeper than PATH_MAX: neither subprocess's cwd= nor one chdir can get there."""
    climb = textwrap.dedent("""
        import os, runpy, sys
        for _ in range(300):
            os.mkdir("d" * 20)
            os.chdir("d" * 20)
        sys.argv = ["devops", "status", "--json"]
        runpy.run_module("devops_tasks", run_name="__main__")
    """)
    completed = subprocess.run(
        [sys.executable, "-c", climb], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    result = CliResult(completed.returncode, completed.stdout, completed.stderr)
    payload = _assert_one_failure(result, "FILESYSTEM_ERROR")
    assert payload["errno"] == "ENAMETOOLONG" and len(str(payload["error"])) < 300


def test_a_current_directory_that_was_removed_is_a_filesystem_error(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    climb = f"import os, runpy, sys\nos.chdir({str(gone)!r})\nos.rmdir({str(gone)!r})\n"
    climb += "sys.argv = ['devops', 'status', '--json']\n"
    climb += "runpy.run_module('devops_tasks', run_name='__main__')\n"
    completed = subprocess.run(
        [sys.executable, "-c", climb], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    result = CliResult(completed.returncode, completed.stdout, completed.stderr)
    assert "no longer exists" in str(_assert_one_failure(result, "FILESYSTEM_ERROR")["error"])


def test_output_about_a_name_that_is_not_utf8_is_valid_utf8(tmp_path):
    root = _project(tmp_path)
    (root / NOT_UTF8_NAME).write_bytes(b"{")
    completed = subprocess.run(
        [sys.executable, "-m", "devops_tasks", "config.import", NOT_UTF8_NAME, "--force", "--json"],
        cwd=root,
        capture_output=True,
        timeout=60,
    )
    payload = json.loads(completed.stdout.decode("utf-8"))  # strict: raises on invalid UTF-8
    assert payload["error"].startswith("conf\\xff.json is not valid JSON")


def test_a_deploy_from_a_directory_whose_name_is_not_utf8_succeeds(tmp_path):
    root = tmp_path / os.fsdecode(b"caf\xe9")
    write_site(root / "dist")
    deployed = run_devops("deploy", "--json", cwd=root).json
    assert deployed["success"] and "caf\\xe9" in deployed["details"]["path"]
    history = run_devops("history", "--json", cwd=root).json
    assert [entry["id"] for entry in history["deployments"]] == [deployed["id"]]


SECRET = "hunter2-CANARY-5150"


@pytest.mark.parametrize("mode", [[], ["--json"], ["--debug"], ["--json", "--debug"]])
def test_a_secret_typed_as_an_argument_is_never_echoed(mode, tmp_path):
    result = run_devops("secrets.set", "API_KEY", SECRET, *mode, cwd=_bare(tmp_path))
    assert result.exit_code == 1
    assert SECRET not in result.stdout + result.stderr
    assert "not shown" in result.stdout + result.stderr and "stdin" in result.stdout + result.stderr


def test_an_unexpected_argument_names_what_the_task_takes(cli, project):
    payload = cli("deploy.local", "--bogus", "--json").json
    assert payload["code"] == "INVALID_ARGUMENT" and "--bogus" not in payload["error"]
    assert "--dir" in payload["error"] and "devops --help deploy.local" in payload["fix"]


def test_a_flag_missing_its_value_is_named(cli, project):
    payload = cli("history", "--json", "--limit").json
    assert payload["code"] == "INVALID_ARGUMENT" and "--limit needs a value" in payload["error"]


def test_a_missing_positional_argument_is_named(cli, project):
    payload = cli("config.get", "--json").json
    assert payload["code"] == "INVALID_ARGUMENT" and "key" in payload["error"]


def test_an_unknown_task_is_named_without_json_too(cli, project):
    result = cli("deploy.nowhere")
    assert result.exit_code == 1 and result.stdout == ""
    assert "Error [INVALID_ARGUMENT]: devops has no task deploy.nowhere" in result.stderr


def test_a_value_where_a_task_name_belongs_is_not_shown(cli, project):
    payload = cli(f"{SECRET}!", "--json").json
    assert payload["code"] == "INVALID_ARGUMENT" and SECRET not in payload["error"]


ENV_TASKS = sorted(
    name
    for name in namespace.task_names
    if "env" in inspect.signature(namespace[name].body).parameters
)


@pytest.mark.parametrize("bad", ["../x", "A B", ""])
@pytest.mark.parametrize("task_name", ENV_TASKS)
def test_a_bad_env_is_invalid_argument_about_the_flag_for_every_task(cli, project, task_name, bad):
    positionals = ["x"] * len(namespace[task_name].positional)
    payload = cli(task_name, *positionals, "--env", bad, "--json").json
    assert payload["code"] == "INVALID_ARGUMENT" and payload["error"].startswith("--env ")
