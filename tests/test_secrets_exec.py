"""``secrets.exec``: the words after ``--`` run exactly as given; ``--command`` is a shell line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def keyed(project, monkeypatch, cli):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    assert cli("secrets.set", "TOKEN", "--value", "exec-secret-value", "--json").json["success"]
    return project


def test_words_after_the_double_dash_are_arguments_not_shell(keyed, cli):
    result = cli(
        "secrets.exec", "--", "printf", r"%s\n", "text; touch injected", "$(touch subst)", "$TOKEN"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["text; touch injected", "$(touch subst)", "$TOKEN"]
    assert not Path("injected").exists() and not Path("subst").exists()


def test_words_after_the_double_dash_keep_quotes_and_spaces(keyed, cli):
    result = cli("secrets.exec", "--", "printf", "[%s]", "two  spaces", 'it\'s "quoted"')
    assert result.stdout == '[two  spaces][it\'s "quoted"]'


def test_the_command_after_the_double_dash_gets_the_secrets(keyed, cli):
    result = cli("secrets.exec", "--json", "--", "sh", "-c", 'test "$TOKEN" = exec-secret-value')
    assert result.json == {"success": True, "exit_status": 0, "secrets": ["TOKEN"]}


def test_the_command_flag_is_a_shell_command_line(keyed, cli):
    result = cli("secrets.exec", "--command", "echo one; echo two > made")
    assert result.stdout.splitlines() == ["one"] and Path("made").read_text() == "two\n"


def test_ctrl_c_while_the_command_runs_is_interrupted_not_a_failed_command(keyed, tmp_path):
    started = tmp_path / "started"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devops_tasks",
            "secrets.exec",
            "--json",
            "--",
            "sh",
            "-c",
            f"touch {started}; sleep 30",
        ],
        cwd=keyed.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 1
    assert json.loads(out)["code"] == "INTERRUPTED"


def test_a_20_mb_output_streams_through_in_linear_time(keyed, cli, tmp_path):
    """invoke re-joins all captured output on every read; the runner must not."""
    script = tmp_path / "loud.py"
    script.write_text("import sys\nfor _ in range(200_000): sys.stdout.write('x' * 99 + '\\n')\n")
    result = cli("secrets.exec", "--json", "--", "python3", str(script))
    assert result.json["success"] and result.stderr.count("\n") == 200_000
