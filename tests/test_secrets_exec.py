"""``secrets.exec``: the words after ``--`` run exactly as given; ``--command`` is a shell line."""

from __future__ import annotations

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
