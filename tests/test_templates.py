"""A template for every target: valid under the schema, and ``init``'s next steps work as
printed against the emulators and fake APIs the tests start."""

from __future__ import annotations

import io
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from helpers import REPO

from devops_tasks.scaffold import template_names

SCHEMA = json.loads((REPO / "devops_tasks" / "config" / "schema.json").read_text())
PLATFORMS = ["local", "ssh", "netlify", "aws", "gcp", "azure", "vercel"]


def test_there_is_a_template_for_each_of_the_seven_targets():
    assert sorted(template_names()) == sorted(PLATFORMS)
    assert set(SCHEMA["$defs"]["settings"]["properties"]["platform"]["enum"]) == set(PLATFORMS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_template_is_valid_under_the_config_schema(platform):
    template = json.loads((REPO / "templates" / f"{platform}.json").read_text())

    jsonschema.Draft202012Validator(SCHEMA).validate(template)
    assert template["platform"] == platform


@pytest.mark.parametrize("platform", PLATFORMS)
def test_init_then_config_validate_succeeds(project, cli, platform):
    created = cli("init", "--platform", platform, "--json").json
    assert created["success"] and created["platform"] == platform

    checked = cli("config.validate", "--json").json

    assert checked["success"] and checked["valid"] is True
    assert created["next"][-1] == "devops deploy --dir dist"


def run_steps(cli: Any, steps: list[str], stdin: dict[str, str], monkeypatch) -> None:
    """Each step exactly as printed; a ``secrets.set NAME`` step reads ``stdin[NAME]``."""
    for step in steps:
        program, task, *args = shlex.split(step)
        if task == "secrets.set":
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin[args[0]] + "\n"))
        ran = cli(task, *args, "--json")
        assert (program, ran.exit_code) == ("devops", 0), f"{step}\n{ran.stdout}{ran.stderr}"


def local_target(request, monkeypatch) -> dict[str, str]:
    return {}


def aws_target(request, monkeypatch) -> dict[str, str]:
    request.getfixturevalue("aws_env")  # moto, and credentials for it in the environment
    return {}


def gcp_target(request, monkeypatch) -> dict[str, str]:
    import gcs_emulator

    server = request.getfixturevalue("gcs_server")
    gcs_emulator.reset(server.url)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    return {}


def azure_target(request, monkeypatch) -> dict[str, str]:
    import azurite

    emulator = request.getfixturevalue("azurite_server")
    azurite.reset(emulator)
    return {"AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string}


def vercel_target(request, monkeypatch) -> dict[str, str]:
    from fake_vercel import FakeVercel

    server = FakeVercel().start()
    request.addfinalizer(server.stop)
    monkeypatch.setenv("VERCEL_API_URL", server.api_url)
    return {"VERCEL_TOKEN": server.token}


TARGETS: dict[str, Callable[..., dict[str, str]]] = {
    "local": local_target,
    "aws": aws_target,
    "gcp": gcp_target,
    "azure": azure_target,
    "vercel": vercel_target,
}


@pytest.mark.parametrize("platform", sorted(TARGETS))
def test_the_next_steps_init_prints_work_as_printed(project, cli, request, monkeypatch, platform):
    """(netlify: tests/test_init_next_steps.py; ssh's hosts are the user's own to fill in.)"""
    secrets = TARGETS[platform](request, monkeypatch)
    steps = cli("init", "--platform", platform, "--json").json["next"]

    run_steps(cli, steps, secrets, monkeypatch)

    status = cli("status", "--json").json
    assert status["in_sync"] and status["live_release"], status
