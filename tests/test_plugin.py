"""The Claude Code plugin: its manifests, and skills whose every command line runs a real task."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import REPO
from invoke.parser import Parser, ParserContext

from devops_tasks import __version__, namespace
from devops_tasks.cli import program

SKILLS = REPO / "skills"
PLUGIN = REPO / ".claude-plugin"
NINE = {"init", "deploy", "build", "infra", "status", "logs", "rollback", "config", "secrets"}
#: Skills that change a live environment, the infrastructure or the secrets (build: its remote
#: mode starts a build on the platform): only a person may start them.
STATE_CHANGING = {"deploy", "rollback", "infra", "secrets", "build"}
#: The frontmatter keys Claude Code's skills reference documents.
FRONTMATTER_KEYS = {
    "name",
    "description",
    "argument-hint",
    "allowed-tools",
    "disable-model-invocation",
    "user-invocable",
    "model",
    "effort",
    "context",
    "agent",
    "hooks",
}
#: The one way a skill may allow a tool: exactly one devops task, any arguments.
ALLOWED_TOOL = re.compile(r"^Bash\(devops (\S+) \*\)$")

_URL = {"type": "string", "pattern": r"^https://\S+$"}
_PERSON = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "email": {"type": "string"},
        "url": _URL,
    },
    "additionalProperties": False,
}
_KEBAB = {"type": "string", "pattern": r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"}
#: plugin.json as the plugins reference describes it (metadata fields and their types).
PLUGIN_SCHEMA = {
    "type": "object",
    "required": [
        "name",
        "version",
        "description",
        "author",
        "homepage",
        "repository",
        "license",
        "keywords",
    ],
    "properties": {
        "name": _KEBAB,
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"},
        "description": {"type": "string", "minLength": 50},
        "author": _PERSON,
        "homepage": _URL,
        "repository": _URL,
        "license": {"type": "string", "minLength": 1},
        "keywords": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "uniqueItems": True,
        },
    },
    "additionalProperties": False,
}
#: marketplace.json as the marketplace reference describes it; the plugin sits at its root.
MARKETPLACE_SCHEMA = {
    "type": "object",
    "required": ["name", "owner", "plugins"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
        "owner": _PERSON,
        "description": {"type": "string"},
        "plugins": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "source"],
                "properties": {
                    "name": _KEBAB,
                    "source": {"type": "string", "pattern": r"^\./"},
                    "description": {"type": "string"},
                    "category": {"type": "string"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def skill(name: str) -> tuple[dict[str, Any], str]:
    """A skill's frontmatter (parsed) and its body."""
    _, front, body = (SKILLS / name / "SKILL.md").read_text(encoding="utf-8").split("---\n", 2)
    meta = yaml.safe_load(front)
    assert isinstance(meta, dict), name
    return meta, body


def skill_names() -> list[str]:
    return sorted(path.parent.name for path in SKILLS.glob("*/SKILL.md"))


def allowed_tasks(meta: dict[str, Any]) -> set[str]:
    tools = meta["allowed-tools"]
    tools = [tools] if isinstance(tools, str) else tools
    matches = [ALLOWED_TOOL.match(tool) for tool in tools]
    assert all(matches), tools
    return {match[1] for match in matches if match}


def command_lines(body: str) -> tuple[list[str], list[str]]:
    """The ``devops ...`` lines of the fenced blocks, and those in inline code spans."""
    fenced = [
        line.strip()
        for block in re.findall(r"^```\w*\n(.*?)^```", body, re.M | re.S)
        for line in block.splitlines()
        if line.strip().startswith("devops ")
    ]
    inline = [span for span in re.findall(r"(?<!`)`(devops [^`]+)`", body)]
    return fenced, inline


def parsed(line: str) -> ParserContext:
    """The task context the devops program would run ``line`` with (redirection cut off)."""
    words = shlex.split(line.split(" < ")[0])
    assert words[0] == "devops"
    parser = Parser(
        initial=ParserContext(args=program.core_args()), contexts=namespace.to_contexts()
    )
    contexts = parser.parse_argv(words[1:])  # a task or flag that does not exist raises
    assert len(contexts) == 2, line  # exactly one task
    return contexts[1]


def typed_name(context: ParserContext) -> set[str]:
    return {str(context.name), *context.aliases}


def test_the_nine_commands_and_history_are_skills():
    assert set(skill_names()) == NINE | {"history"}
    assert not (REPO / "commands").exists()  # one place for them: skills/


@pytest.mark.parametrize("name", skill_names())
def test_a_skill_has_valid_frontmatter_with_a_short_description(name):
    meta, _ = skill(name)

    assert set(meta) <= FRONTMATTER_KEYS, set(meta) - FRONTMATTER_KEYS
    assert meta["name"] == name
    assert 40 <= len(meta["description"]) <= 70, meta["description"]
    assert isinstance(meta["argument-hint"], str) and meta["argument-hint"]
    assert meta.get("disable-model-invocation", False) in (True, False)
    assert allowed_tasks(meta) <= set(namespace.task_names) | {"deploy"}


@pytest.mark.parametrize("name", skill_names())
def test_every_command_line_of_a_skill_runs_a_task_it_allows_with_flags_that_exist(name):
    meta, body = skill(name)
    fenced, inline = command_lines(body)
    assert fenced, "a skill shows the command it runs"

    ran = [typed_name(parsed(line)) for line in fenced + inline]

    allowed = allowed_tasks(meta)
    assert all(names & allowed for names in ran), (ran, allowed)
    assert allowed <= set().union(*ran)  # it allows no task it never runs
    assert all(parsed(line).args["json"].value for line in fenced)


@pytest.mark.parametrize("name", skill_names())
def test_every_flag_a_skill_mentions_is_a_flag_of_one_of_its_tasks(name):
    _, body = skill(name)
    fenced, inline = command_lines(body)
    contexts = [parsed(line) for line in fenced + inline]
    flags = {flag for context in contexts for flag in context.flags}

    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", body))

    assert mentioned <= flags, mentioned - flags


def test_the_skills_that_change_things_only_a_person_can_start():
    disabled = {name for name in skill_names() if skill(name)[0].get("disable-model-invocation")}

    assert disabled == STATE_CHANGING


@pytest.mark.parametrize("name", sorted(STATE_CHANGING))
def test_a_state_changing_skill_asks_for_confirmation_naming_the_environment(name):
    _, body = skill(name)

    assert re.search(r"\*\*(ENV|production)\*\*[^\n]*\(yes/no\)", body)


def test_no_skill_puts_a_secret_value_on_a_command_line_or_prints_one():
    for name in skill_names():
        meta, body = skill(name)
        fenced, inline = command_lines(body)
        for context in map(parsed, fenced + inline):
            if str(context.name).startswith("secrets."):
                assert "value" not in context.args or context.args["value"].value is None
        assert "--value" not in body and "--show" not in body, name
        assert not allowed_tasks(meta) & {"secrets.get", "secrets.export", "secrets.exec"}


def test_the_plugin_manifest_is_valid_and_has_the_package_version():
    manifest = json.loads((PLUGIN / "plugin.json").read_text())

    jsonschema.validate(manifest, PLUGIN_SCHEMA)
    assert manifest["name"] == "devops-tasks" and manifest["version"] == __version__


def test_the_marketplace_lists_the_plugin_at_its_own_root():
    marketplace = json.loads((PLUGIN / "marketplace.json").read_text())
    manifest = json.loads((PLUGIN / "plugin.json").read_text())

    jsonschema.validate(marketplace, MARKETPLACE_SCHEMA)
    [entry] = marketplace["plugins"]
    assert entry["name"] == manifest["name"] and entry["source"] == "./"


def test_the_schemas_refuse_what_the_references_do_not_allow():
    manifest = json.loads((PLUGIN / "plugin.json").read_text())
    for broken in ({**manifest, "name": "Devops Tasks"}, {**manifest, "version": "1.0"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, PLUGIN_SCHEMA)


def test_the_plugin_icon_is_a_square_png_the_plugin_directory_accepts():
    data = (PLUGIN / "icon.png").read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

    assert data[:8] == b"\x89PNG\r\n\x1a\n" and width == height and 512 <= width <= 2048
    assert len(data) < 2 * 1024 * 1024
