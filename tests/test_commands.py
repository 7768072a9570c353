"""Commands devops-tasks starts: output masked however it arrives, and no master key inherited."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context

from devops_tasks.commands import require_clean_git, run_command
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project
from devops_tasks.redaction import MASK, register_secret

MASTER = {
    "DEVOPS_MASTER_KEY": "ab" * 32,
    "DEVOPS_MASTER_PASSPHRASE": "a passphrase",
    "DEVOPS_MASTER_KEY_FILE": "/keys/k.key",
    "DEVOPS_NEW_MASTER_KEY": "cd" * 32,
}
# Longer than invoke's 1,000-byte reads, so it always arrives split.
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "\n".join(secrets.token_urlsafe(48) for _ in range(40))
    + "\n-----END PRIVATE KEY-----\n"
)


def _run(tmp_path: Path, command: str, json_mode: bool = False) -> None:
    run_command(
        Context(), command, cwd=str(tmp_path), code=ErrorCode.COMMAND_FAILED, json_mode=json_mode
    )


@pytest.mark.parametrize("json_mode", [False, True])
def test_a_long_multi_line_secret_printed_by_a_command_never_appears(tmp_path, capsys, json_mode):
    register_secret(PEM)
    (tmp_path / "key.pem").write_text(PEM)
    _run(tmp_path, "cat key.pem; cat key.pem >&2; sed 's/^/| /' key.pem", json_mode)
    printed = capsys.readouterr()
    everything = printed.out + printed.err
    assert all(line not in everything for line in PEM.splitlines()[1:-1])
    assert everything.count(MASK) >= 2 + 40
    assert (printed.out == "") is json_mode  # with --json, stdout is kept for the answer


def test_the_output_tail_of_a_failing_command_holds_no_part_of_a_secret(tmp_path):
    register_secret(PEM)
    (tmp_path / "key.pem").write_text(PEM)
    with pytest.raises(DevopsError) as failure:
        _run(tmp_path, "cat key.pem; echo done; exit 3")
    tail = failure.value.details["output_tail"]
    assert tail == f"{MASK}\ndone\n"
    assert failure.value.details["exit_status"] == 3


def test_commands_never_inherit_the_master_key_variables(tmp_path, monkeypatch):
    for name, value in MASTER.items():
        monkeypatch.setenv(name, value)
    _run(tmp_path, "env > seen.txt")
    seen = (tmp_path / "seen.txt").read_text()
    assert "DEVOPS_MASTER" not in seen and "DEVOPS_NEW_MASTER" not in seen
    assert "PATH=" in seen


def _git_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that records the environment it was given, then runs git."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    seen = tmp_path / "git-env.txt"
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nenv >> {seen}\nexec {real_git} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    for name, value in MASTER.items():
        monkeypatch.setenv(name, value)
    return seen


def test_git_describe_behind_version_does_not_inherit_the_master_key(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    seen = _git_shim(tmp_path, monkeypatch)
    Project(tmp_path).version()
    assert seen.is_file() and "DEVOPS_MASTER" not in seen.read_text()


def test_outside_any_git_checkout_there_is_no_version_and_git_is_not_started(tmp_path, monkeypatch):
    seen = _git_shim(tmp_path, monkeypatch)

    assert Project(tmp_path).version() is None
    assert not seen.exists()


def test_the_clean_git_check_does_not_inherit_the_master_key(tmp_path, monkeypatch):
    seen = _git_shim(tmp_path, monkeypatch)
    with pytest.raises(DevopsError):
        require_clean_git(Project(tmp_path))  # not a repository
    assert seen.is_file() and "DEVOPS_MASTER" not in seen.read_text()


def test_the_clean_git_check_without_git_installed_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevopsError) as failure:
        require_clean_git(Project(tmp_path))
    assert failure.value.code is ErrorCode.CHECK_FAILED
    assert "git could not run" in failure.value.message


def test_a_non_ascii_secret_split_across_two_reads_is_still_masked(tmp_path, capsys):
    secret = "pä$$.*(wörd)[x]"
    register_secret(secret)
    script = tmp_path / "child.py"
    # 998 bytes first: the secret's "ä" straddles invoke's 1,000-byte read boundary
    script.write_text(
        "import sys\n"
        f"sys.stdout.buffer.write(b'x' * 998 + {secret.encode()!r} + b'\\n')\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(DevopsError) as failure:
        _run(tmp_path, f"{sys.executable} child.py", json_mode=True)
    printed = capsys.readouterr()
    assert "wörd" not in printed.err + failure.value.details["output_tail"]
    assert failure.value.details["output_tail"].endswith(f"x{MASK}\n")
