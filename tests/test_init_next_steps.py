"""The next steps ``init`` prints work as printed, in order, on the machine that ran it."""

from __future__ import annotations

import io
import secrets
import shlex
import sys

import pytest
from helpers import run_devops

NETLIFY_STEPS = [
    "devops secrets.set NETLIFY_AUTH_TOKEN",
    "devops infra.up",
    "devops deploy --dir dist",
]


def printed_steps(stdout: str) -> list[str]:
    """The commands under "Next:" in init's output, as a person copies them."""
    lines = stdout.splitlines()
    return [line.strip() for line in lines[lines.index("Next:") + 1 :]]


def test_the_netlify_steps_init_prints_succeed_as_printed_on_a_machine_without_a_key(
    project, netlify_server, monkeypatch
):
    netlify_server.reset()
    monkeypatch.delenv("NETLIFY_AUTH_TOKEN", raising=False)  # the token must come from the steps
    env = {"NETLIFY_API_URL": netlify_server.api_url, "DEVOPS__NETLIFY__POLL_INTERVAL": "0.01"}
    init = run_devops("init", "--platform", "netlify", cwd=project.root, env=env)
    assert init.exit_code == 0, init.stderr

    for step in printed_steps(init.stdout):
        program, task, *args = shlex.split(step)
        token = netlify_server.token + "\n" if task == "secrets.set" else None
        ran = run_devops(task, *args, cwd=project.root, env=env, stdin=token)
        assert (program, ran.exit_code) == ("devops", 0), f"{step}\n{ran.stdout}{ran.stderr}"

    status = run_devops("status", "--json", cwd=project.root, env=env).json
    assert status["in_sync"] and status["live_release"], status
    assert netlify_server.violations == []


@pytest.mark.parametrize(
    "ready",
    ["DEVOPS_MASTER_KEY", "DEVOPS_MASTER_PASSPHRASE", "DEVOPS_MASTER_KEY_FILE", "a-secrets-file"],
)
def test_init_prints_no_secrets_init_when_secrets_set_works_already(
    project, cli, monkeypatch, tmp_path, ready
):
    if ready == "a-secrets-file":
        assert cli("secrets.init", "--json").json["success"]
    elif ready == "DEVOPS_MASTER_KEY_FILE":
        (tmp_path / "my.key").write_text(secrets.token_hex(32))
        monkeypatch.setenv(ready, str(tmp_path / "my.key"))
    else:
        monkeypatch.setenv(ready, secrets.token_hex(32))

    steps = cli("init", "--platform", "netlify", "--json").json["next"]

    assert steps == NETLIFY_STEPS
    monkeypatch.setattr(sys, "stdin", io.StringIO("nfp_a-token-from-stdin\n"))
    assert cli(*shlex.split(steps[0])[1:], "--json").json["success"]
