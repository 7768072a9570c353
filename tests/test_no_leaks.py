"""No secret value ever leaves the process: not in output, errors, tracebacks or records.

Distinctive values are stored, then every task runs — succeeding and failing, in JSON and
for people, with --debug — and everything printed or written under .devops/ is searched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devops_tasks import namespace

MASTER_KEY = "5eed" * 16
SECRETS = {
    "NETLIFY_AUTH_TOKEN": "nfp_CANARYtoken0123456789abcdef",
    "DB_PASSWORD": "pässwörd-CANARY-秘密-4242",
    "SHORTISH": "CANARY42",
}
# Explicit reveals are the only exceptions: `secrets.get --show` and `secrets.export`.
REVEALING = {"secrets.export"}


def _args(task: str) -> list[str]:
    return {
        "config.get": ["build.command"],
        "config.set": ["deployment.keep_releases", "4"],
        "config.import": ["imported.json", "--force"],
        "init": ["--force"],
        "secrets.set": ["DB_PASSWORD", "--value", SECRETS["DB_PASSWORD"]],
        "secrets.get": ["NETLIFY_AUTH_TOKEN"],
        "secrets.delete": ["SHORTISH"],
        "secrets.import": ["leak.env"],
        "secrets.exec": ["--command", 'echo "$NETLIFY_AUTH_TOKEN $DB_PASSWORD"; env'],
    }.get(task, [])


FAILING_RUNS = [
    # a value offered where the schema refuses it: the error echoes the bad value
    ["config.set", "deployment.strategy", SECRETS["NETLIFY_AUTH_TOKEN"]],
    # a build that prints secrets and fails: output and output_tail
    ["deploy", "--build"],
    ["secrets.set", "bad-name", "--value", SECRETS["DB_PASSWORD"]],
    ["secrets.exec", "--command", 'echo "$DB_PASSWORD" >&2; exit 3'],
    ["rollback", "--to", "dep_1_00000000"],
    ["logs", "--id", "../../etc"],
]


@pytest.fixture
def seeded(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("DEVOPS_MASTER_PASSPHRASE", "CANARY-passphrase-unused")
    assert cli("init", "--json").json["success"]
    for name, value in SECRETS.items():
        assert cli("secrets.set", name, "--value", value, "--json").json["success"]
    Path("leak.env").write_text(f"IMPORTED={SECRETS['DB_PASSWORD']}x\n")
    Path("imported.json").write_text(json.dumps({"version": 1, "platform": "local"}))
    cli(
        "config.set",
        "build.command",
        'echo "building with $(cat leak.env)"; printenv DEVOPS_MASTER_KEY; exit 1',
        "--json",
    )
    return project


def _everything_written(project) -> str:
    chunks = []
    for path in sorted(project.state_dir.rglob("*")):
        if path.is_file():
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def _assert_clean(text: str, where: str) -> None:
    for value in [*SECRETS.values(), MASTER_KEY, "CANARY-passphrase-unused"]:
        assert value not in text, f"{value!r} leaked in {where}"
    assert "CANARY" not in text.replace("CANARY-passphrase", ""), f"part of a secret in {where}"


@pytest.mark.parametrize("mode", [["--json"], [], ["--json", "--debug"], ["--debug"]])
def test_no_task_prints_or_writes_a_secret_value(seeded, cli, mode):
    printed = []
    for task in sorted(namespace.task_names):
        if task in REVEALING:
            continue
        result = cli(task, *_args(task), *mode)
        printed.append(f"== {task}\n{result.stdout}\n{result.stderr}")
    for run in FAILING_RUNS:
        result = cli(*run, *mode)
        assert result.exit_code == 1, run
        printed.append(f"== {run[0]}\n{result.stdout}\n{result.stderr}")
    _assert_clean("\n".join(printed), f"output ({' '.join(mode) or 'human'})")
    _assert_clean(_everything_written(seeded), ".devops/")


def test_the_canaries_are_really_there_to_find(seeded, cli):
    """The search above can fail: the values are stored and reachable on explicit request."""
    shown = cli("secrets.get", "DB_PASSWORD", "--show", "--json").json["value"]
    assert shown == SECRETS["DB_PASSWORD"]
    assert SECRETS["NETLIFY_AUTH_TOKEN"] in cli("secrets.export").stdout


def test_a_secret_equal_to_a_word_the_program_writes_leaves_its_answers_readable(project, cli):
    """Masking free text must not rewrite keys or fields: an agent still reads the answer."""
    cli("secrets.init", "--json")
    for name, value in {"A": "production", "B": "success", "C": "local", "D": "deploy"}.items():
        assert cli("secrets.set", name, "--value", value, "--json").json["success"]

    deployed = cli("deploy", "--json").json
    assert (deployed["success"], deployed["environment"], deployed["platform"]) == (
        True,
        "production",
        "local",
    )
    assert deployed["action"] == "deploy" and deployed["status"] == "success"
    status = cli("status", "--json").json
    assert status["environment"] == "production" and status["in_sync"] is True
    assert cli("history", "--json").json["deployments"][0]["environment"] == "production"
    listed = cli("secrets.list", "--json").json["secrets"]
    assert [s["name"] for s in listed] == ["A", "B", "C", "D"]


def test_a_platform_token_from_the_environment_is_masked_in_the_build_output(netlify, cli):
    cli("config.set", "build.command", 'echo "token is $NETLIFY_AUTH_TOKEN"', "--json")
    for mode in ([], ["--json"]):
        result = cli("deploy", "--build", *mode)
        assert result.exit_code == 0, result.stderr
        assert netlify.token not in result.stdout + result.stderr
        assert "token is ••••••••" in result.stdout + result.stderr


def test_a_value_too_short_to_be_masked_is_stored_with_a_warning(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", MASTER_KEY)
    result = cli("secrets.set", "PIN", "--value", "123", "--json")
    assert result.json["success"] and "too short to be masked" in result.stderr
    assert cli("secrets.get", "PIN", "--show", "--json").json["value"] == "123"


@pytest.mark.parametrize("task", ["secrets.set", "secrets.get", "secrets.delete"])
def test_a_value_typed_as_name_equals_value_is_never_echoed(project, cli, monkeypatch, task):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", MASTER_KEY)
    for mode in (["--json"], []):
        result = cli(task, "NETLIFY_AUTH_TOKEN=hunter2secret", *mode)
        assert result.exit_code == 1
        assert "hunter2secret" not in result.stdout + result.stderr


def test_a_value_with_a_nul_character_is_refused_before_it_is_stored(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", MASTER_KEY)
    failure = cli("secrets.set", "BINARY", "--value", "abcd\0efgh", "--json").json
    assert failure["code"] == "INVALID_ARGUMENT" and "NUL" in failure["error"]
    assert cli("secrets.exec", "--json", "--", "true").json["success"]
