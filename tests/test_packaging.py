"""The three ways in: the repo's tasks.py, the `devops` program, and a mounted collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO, run_devops, write_site

NAMESPACES = (
    "deploy.local",
    "config.set",
    "infra.show",
    "init",
    "build",
    "status",
    "history",
    "logs",
    "rollback",
)
HEAVY_MODULES = (
    "boto3",
    "botocore",
    "google.cloud",
    "azure",
    "paramiko",
    "fabric",
    "jsonschema",
    "requests",
    "rich",
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_invoke_list_in_the_repo_shows_every_namespace():
    listing = _run([sys.executable, "-m", "invoke", "--list"], REPO).stdout
    for name in (*NAMESPACES, "test", "demo"):
        assert name in listing


def test_devops_program_lists_every_namespace_without_a_tasks_file(tmp_path):
    listing = run_devops("--list", cwd=tmp_path).stdout
    for name in NAMESPACES:
        assert name in listing


def test_devops_program_reports_its_version(tmp_path):
    from devops_tasks import __version__

    assert __version__ in run_devops("--version", cwd=tmp_path).stdout


def test_a_users_tasks_file_can_mount_the_collection_under_another_name(tmp_path):
    (tmp_path / "tasks.py").write_text(
        textwrap.dedent("""
        from invoke import Collection, task
        import devops_tasks

        @task
        def hello(c):
            print("hello")

        ns = Collection(hello)
        ns.add_collection(devops_tasks.namespace, "ops")
    """)
    )
    write_site(tmp_path / "dist")
    result = _run([sys.executable, "-m", "invoke", "ops.deploy.local", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "success"
    assert (tmp_path / ".devops" / "local" / "production" / "current").is_symlink()


def test_a_mounting_project_overrides_defaults_through_its_own_config(tmp_path):
    (tmp_path / "tasks.py").write_text(
        "from invoke import Collection\nimport devops_tasks\n"
        "ns = Collection()\nns.add_collection(devops_tasks.namespace, 'ops')\n"
    )
    (tmp_path / "invoke.yaml").write_text("devops:\n  env: staging\n  json: true\n")
    write_site(tmp_path / "dist")
    result = _run([sys.executable, "-m", "invoke", "ops.deploy.local"], tmp_path)
    assert json.loads(result.stdout)["environment"] == "staging"


def test_listing_tasks_imports_no_sdk_or_heavy_library():
    probe = textwrap.dedent(f"""
        import sys
        from invoke.main import program
        program.run(["invoke", "--list"], exit=False)
        heavy = [m for m in sys.modules if m.split(".")[0] in {HEAVY_MODULES!r}
                 or m.startswith("google.cloud")]
        print("HEAVY=" + ",".join(sorted(heavy)))
    """)
    output = _run([sys.executable, "-c", probe], REPO).stdout
    assert output.strip().splitlines()[-1] == "HEAVY="


def test_a_local_deploy_imports_no_cloud_sdk(tmp_path):
    write_site(tmp_path / "dist")
    probe = textwrap.dedent("""
        import sys
        from devops_tasks.cli import program
        try:
            program.run(["devops", "deploy.local", "--json"])
        except SystemExit:
            pass
        cloud = [m for m in sys.modules if m.split(".")[0] in ("boto3", "azure", "paramiko")
                 or m.startswith("google.cloud")]
        sys.stderr.write("CLOUD=" + ",".join(cloud))
    """)
    result = _run([sys.executable, "-c", probe], tmp_path)
    assert json.loads(result.stdout)["success"] is True
    assert result.stderr.strip().endswith("CLOUD=")


def test_devops_answers_a_bad_flag_in_json_when_json_was_asked_for(tmp_path):
    result = run_devops("deploy.local", "--bogus", "--json", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.json["code"] == "INVALID_ARGUMENT" and "--dir" in result.json["error"]


def test_devops_help_keeps_only_the_core_flags_that_mean_something_here(tmp_path):
    shown = run_devops("--help", cwd=tmp_path).stdout
    for kept in ("--json", "--env", "--debug", "--list", "--version", "--config", "--complete"):
        assert kept in shown
    for gone in ("--dry", "--echo", "--hide", "--pty", "--warn-only", "--command-timeout"):
        assert gone not in shown
    assert "--prompt-for-sudo-password" not in shown and "--write-pyc" not in shown


def test_a_mounted_collection_deploys_for_real_whatever_invoke_is_told(tmp_path):
    (tmp_path / "tasks.py").write_text(
        "from invoke import Collection\nimport devops_tasks\n"
        "ns = Collection()\nns.add_collection(devops_tasks.namespace, 'ops')\n"
    )
    write_site(tmp_path / "dist")
    invoke = [sys.executable, "-m", "invoke"]
    dry = subprocess.run(
        [*invoke, "--dry", "--echo", "ops.deploy.local", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INVOKE_RUN_DRY": "1"},
    )
    deployed = json.loads(dry.stdout)
    status = json.loads(_run([*invoke, "ops.status", "--json"], tmp_path).stdout)
    assert status["in_sync"] is True and status["live_release"] == deployed["id"]


def test_devops_answers_an_unknown_task_in_plain_text_without_json(tmp_path):
    result = run_devops("deploy.nowhere", cwd=tmp_path)
    assert result.exit_code == 1 and result.stdout == "" and "deploy.nowhere" in result.stderr


def test_the_quick_start_demo_deploys_rolls_back_and_reports(tmp_path):
    result = _run([sys.executable, "-m", "invoke", "demo", "--where", str(tmp_path / "demo")], REPO)
    assert result.returncode == 0, result.stderr
    assert "Rollback" in result.stdout and "rolled_back" in result.stdout
    current = tmp_path / "demo" / ".devops" / "local" / "production" / "current"
    assert "v1" in (current / "index.html").read_text()


def test_a_reader_that_leaves_early_ends_devops_quietly(tmp_path):
    """``devops history | head``: once stdout's reader is gone, exit 1 without a word."""
    for args in (["--list"], ["status", "--json"]):
        child = subprocess.Popen(
            [sys.executable, "-m", "devops_tasks", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        child.stdout.close()  # before the child can write a byte
        assert child.wait(timeout=60) == 1
        assert child.stderr.read() == b""
        child.stderr.close()
