"""What devops-tasks keeps in a project's .devops/: never overwritten by accident, never litter."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest


@pytest.fixture
def initialised(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    assert cli("init", "--json").json["success"]
    assert cli("secrets.set", "TOKEN", "--value", "keep-me-safe", "--json").json["success"]
    return project


def test_config_export_refuses_to_overwrite_a_file_without_force(initialised, cli):
    Path("mine.json").write_text("my own notes")
    failure = cli("config.export", "--output", "mine.json", "--json").json
    assert failure["code"] == "FILE_EXISTS" and "--force" in failure["fix"]
    assert Path("mine.json").read_text() == "my own notes"


def test_config_export_with_force_replaces_the_file(initialised, cli):
    Path("mine.json").write_text("old")
    assert cli("config.export", "--output", "mine.json", "--force", "--json").json["success"]
    assert json.loads(Path("mine.json").read_text())["platform"] == "local"


@pytest.mark.parametrize(
    "target", [".devops/credentials.enc", ".devops/config.json", ".devops/new.json", ".devops"]
)
def test_config_export_never_writes_into_the_state_directory(initialised, cli, target):
    before = {p: p.read_bytes() for p in initialised.state_dir.rglob("*") if p.is_file()}
    failure = cli("config.export", "--output", target, "--force", "--json").json
    assert failure["code"] == "INVALID_ARGUMENT" and ".devops" in failure["fix"]
    after = {p: p.read_bytes() for p in initialised.state_dir.rglob("*") if p.is_file()}
    assert after == before


def test_config_export_through_a_link_into_the_state_directory_is_refused(initialised, cli):
    os.symlink(initialised.credentials_path, "innocent.json")
    before = initialised.credentials_path.read_bytes()
    failure = cli("config.export", "--output", "innocent.json", "--force", "--json").json
    assert failure["code"] == "INVALID_ARGUMENT"
    assert initialised.credentials_path.read_bytes() == before
    assert cli("secrets.get", "TOKEN", "--show", "--json").json["value"] == "keep-me-safe"


def _leftover(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("half written")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def test_a_temporary_file_left_by_a_killed_secrets_write_is_removed_by_the_next(initialised, cli):
    leftover = _leftover(initialised.state_dir, ".credentials.enc.k1ll3d.devops-tmp")
    assert cli("secrets.set", "OTHER", "--value", "another-value", "--json").json["success"]
    assert not leftover.exists()


def test_temporary_files_of_killed_writes_are_ignored_by_git(initialised):
    subprocess.run(["git", "init", "-q"], check=True)
    initialised.deployments_dir.mkdir(exist_ok=True)
    leftovers = [
        _leftover(initialised.state_dir, ".credentials.enc.x1.devops-tmp"),
        _leftover(initialised.state_dir, ".config.json.x2.devops-tmp"),
        _leftover(initialised.deployments_dir, ".index.json.x3.devops-tmp"),
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", *map(str, leftovers)], capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(map(str, leftovers))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_config_export_never_replaces_a_pipe_or_a_device_even_with_force(initialised, cli, kind):
    target = "/dev/null" if kind == "device" else "pipe"
    if kind == "fifo":
        os.mkfifo(target)
    failure = cli("config.export", "--output", target, "--force", "--json").json
    assert failure["code"] == "INVALID_ARGUMENT" and "not a" in failure["error"]
    mode = os.stat(target).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)


def test_a_link_planted_where_a_lock_goes_never_has_its_target_emptied(initialised, cli):
    victim = initialised.root / "victim.txt"
    victim.write_text("precious")
    lock = initialised.locks_dir / "config.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    failure = cli("config.set", "deployment.keep_releases", "4", "--json").json
    assert failure["code"] == "FILESYSTEM_ERROR" and "config.lock" in failure["error"]
    assert victim.read_text() == "precious"


def test_config_export_never_writes_through_dev_stdout(initialised, cli):
    Path("app.log").write_text("earlier lines\n")
    failure = cli("config.export", "--output", "/dev/stdout", "--force", "--json").json
    assert failure["code"] == "INVALID_ARGUMENT" and "stdout" in failure["fix"]
    assert Path("app.log").read_text() == "earlier lines\n"
