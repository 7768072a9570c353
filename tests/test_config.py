"""Specification of the project config: ``.devops/config.json``, its schema and its layers.

The file is validated against ``schema.json`` before it is used and before it is written;
a broken file or a refused edit raises CONFIG_INVALID naming every problem by dotted path,
and a refused edit leaves the file exactly as it was. Effective settings are, lowest first:
built-in defaults, the file, ``environments.<env>``, then ``DEVOPS__*`` variables.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devops_tasks.config import store as store_module
from devops_tasks.config.store import (
    DEFAULTS,
    ConfigStore,
    Problem,
    Settings,
    deep_merge,
    parse_value,
)
from devops_tasks.durable import FileLock
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project

# --------------------------------------------------------------------------- helpers


def write_config(project: Project, data: Any) -> bytes:
    """Write ``data`` as the project's config file (unchecked); returns the exact bytes."""
    project.state_dir.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    project.config_path.write_bytes(raw)
    return raw


def write_config_text(project: Project, text: str) -> bytes:
    project.state_dir.mkdir(parents=True, exist_ok=True)
    project.config_path.write_text(text, encoding="utf-8")
    return project.config_path.read_bytes()


def store_for(project: Project, environ: dict[str, str] | None = None) -> ConfigStore:
    """A store that sees only ``environ`` (never the real process environment)."""
    return ConfigStore(project, environ={} if environ is None else environ)


MINIMAL = {"version": 1, "platform": "local"}


@pytest.fixture
def configured(project: Project) -> Project:
    """A project whose config file is the minimal valid one."""
    write_config(project, MINIMAL)
    return project


# --------------------------------------------------------------------------- read


def test_read_returns_the_file_content_when_it_is_valid(project: Project) -> None:
    data = {"version": 1, "platform": "ssh", "project": "shop", "deployment": {"keep_releases": 3}}
    write_config(project, data)

    assert store_for(project).read() == data


def test_read_without_a_config_file_raises_config_missing_with_a_fix(project: Project) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    assert caught.value.code is ErrorCode.CONFIG_MISSING
    assert "config.json" in caught.value.message
    assert "devops init" in caught.value.fix


def test_read_of_malformed_json_raises_config_invalid_saying_where(project: Project) -> None:
    write_config_text(project, '{"version": 1,\n "platform": "local",,\n}')

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    error = caught.value
    assert error.code is ErrorCode.CONFIG_INVALID
    assert "not valid JSON" in error.message
    assert "line 2" in error.message
    assert error.details["problems"][0]["path"] == ""


def test_read_of_a_json_value_that_is_not_an_object_raises_config_invalid(
    project: Project,
) -> None:
    write_config_text(project, "[1, 2, 3]\n")

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert "must be a JSON object" in caught.value.message
    assert caught.value.details["problems"] == [
        {"path": "", "message": "must be a JSON object", "value": [1, 2, 3]}
    ]


def test_read_of_a_wrong_enum_value_names_the_dotted_field_and_allowed_values(
    project: Project,
) -> None:
    write_config(project, {**MINIMAL, "deployment": {"strategy": "fast"}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    error = caught.value
    assert error.code is ErrorCode.CONFIG_INVALID
    assert "deployment.strategy" in error.message
    assert error.details["problems"] == [
        {
            "path": "deployment.strategy",
            "message": "'fast' is not allowed",
            "value": "fast",
            "allowed": ["rolling", "blue-green", "canary"],
        }
    ]


def test_read_of_a_config_without_platform_names_the_missing_field(project: Project) -> None:
    write_config(project, {"version": 1})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    error = caught.value
    assert error.code is ErrorCode.CONFIG_INVALID
    assert "platform" in error.message
    [problem] = error.details["problems"]
    assert problem["path"] == "platform"
    assert "required" in problem["message"]


def test_read_of_an_unknown_top_level_key_names_it_without_listing_every_known_key(
    project: Project,
) -> None:
    write_config(project, {**MINIMAL, "colour": "red", "platfrom": "local"})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    error = caught.value
    assert error.code is ErrorCode.CONFIG_INVALID
    assert "colour" in error.message
    colour, typo = error.details["problems"]
    assert colour == {"path": "colour", "message": "is not a known setting", "value": "red"}
    assert typo["message"] == "is not a known setting (did you mean platform?)"
    assert "deployment" not in error.message


def test_read_of_an_unknown_nested_key_names_its_full_dotted_path(project: Project) -> None:
    write_config(project, {**MINIMAL, "deployment": {"keep_releasez": 3}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    [problem] = caught.value.details["problems"]
    assert problem["path"] == "deployment.keep_releasez"
    assert "did you mean keep_releases?" in problem["message"]
    assert "deployment.keep_releasez" in caught.value.message


def test_read_of_a_bad_value_inside_an_environment_override_names_its_path(
    project: Project,
) -> None:
    write_config(
        project,
        {
            **MINIMAL,
            "environments": {"staging": {"deployment": {"strategy": "fast"}}},
        },
    )

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    [problem] = caught.value.details["problems"]
    assert problem["path"] == "environments.staging.deployment.strategy"
    assert problem["allowed"] == ["rolling", "blue-green", "canary"]


def test_read_of_a_value_of_the_wrong_type_names_the_field_and_expected_type(
    project: Project,
) -> None:
    write_config(project, {**MINIMAL, "deployment": {"keep_releases": "five"}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    [problem] = caught.value.details["problems"]
    assert problem["path"] == "deployment.keep_releases"
    assert problem["value"] == "five"
    assert "integer" in problem["message"]


def test_read_reports_every_problem_and_counts_the_extra_ones_in_the_message(
    project: Project,
) -> None:
    write_config(project, {"version": 1, "platform": "moon", "deployment": {"strategy": "fast"}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    paths = [p["path"] for p in caught.value.details["problems"]]
    assert sorted(paths) == ["deployment.strategy", "platform"]
    assert "(and 1 more problem(s))" in caught.value.message


def test_config_invalid_error_serialises_code_and_problems_for_the_json_contract(
    project: Project,
) -> None:
    write_config(project, {"version": 2, "platform": "local"})

    with pytest.raises(DevopsError) as caught:
        store_for(project).read()

    payload = caught.value.to_dict()
    assert payload["code"] == "CONFIG_INVALID"
    assert payload["problems"][0]["path"] == "version"
    assert payload["problems"][0]["allowed"] == [1]
    assert json.loads(json.dumps(payload)) == payload


# --------------------------------------------------------------------------- Problem


def test_problem_to_dict_omits_allowed_when_nothing_specific_is_allowed() -> None:
    assert Problem("build.dir", "must be of type string", 3).to_dict() == {
        "path": "build.dir",
        "message": "must be of type string",
        "value": 3,
    }


def test_problem_str_names_path_message_and_allowed_values() -> None:
    problem = Problem("deployment.strategy", "'fast' is not allowed", "fast", ["rolling", "canary"])

    assert str(problem) == "deployment.strategy: 'fast' is not allowed (allowed: rolling, canary)"


def test_problem_str_calls_an_empty_path_the_top_level() -> None:
    assert str(Problem("", "must be a JSON object")) == "(top level): must be a JSON object"


# --------------------------------------------------------------------------- write


def test_write_stores_valid_data_as_readable_json(project: Project) -> None:
    data = {**MINIMAL, "build": {"command": "npm run build", "dir": "public"}}

    store_for(project).write(data)

    assert json.loads(project.config_path.read_text(encoding="utf-8")) == data


def test_write_refuses_invalid_data_and_creates_no_file(project: Project) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project).write({"version": 1, "platform": "moon"})

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert not project.config_path.exists()


def test_write_refuses_while_the_config_lock_is_held_and_leaves_file_unchanged(
    configured: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = configured.config_path.read_bytes()
    monkeypatch.setattr(store_module, "FileLock", functools.partial(FileLock, timeout=0.1))

    with FileLock(configured.locks_dir / "config.lock", owner="another editor"):
        with pytest.raises(DevopsError) as caught:
            store_for(configured).write({**MINIMAL, "project": "shop"})

    assert caught.value.code is ErrorCode.LOCKED
    assert configured.config_path.read_bytes() == before


# --------------------------------------------------------------------------- set


def test_set_stores_an_integer_for_a_numeric_text(configured: Project) -> None:
    returned = store_for(configured).set("deployment.keep_releases", "3")

    assert returned == 3 and type(returned) is int
    assert store_for(configured).read()["deployment"]["keep_releases"] == 3


def test_set_stores_a_boolean_for_true(configured: Project) -> None:
    store_for(configured).set("deployment.require_clean_git", "true")

    assert store_for(configured).read()["deployment"]["require_clean_git"] is True


def test_set_keeps_text_that_is_not_json_as_a_string(configured: Project) -> None:
    returned = store_for(configured).set("build.command", "npm run build")

    assert returned == "npm run build"
    assert store_for(configured).read()["build"]["command"] == "npm run build"


def test_set_keeps_numeric_text_as_a_string_where_the_schema_wants_a_string(
    configured: Project,
) -> None:
    returned = store_for(configured).set("project", "123")

    assert returned == "123"
    assert store_for(configured).read()["project"] == "123"


def test_set_stores_a_json_list(configured: Project) -> None:
    store_for(configured).set("deployment.pre_deploy", '["npm test", "npm run lint"]')

    assert store_for(configured).read()["deployment"]["pre_deploy"] == ["npm test", "npm run lint"]


def test_set_creates_intermediate_sections_and_keeps_sibling_settings(project: Project) -> None:
    write_config(project, {**MINIMAL, "deployment": {"strategy": "canary"}})

    store_for(project).set("deployment.health_check.retries", "7")

    deployment = store_for(project).read()["deployment"]
    assert deployment == {"strategy": "canary", "health_check": {"retries": 7}}


def test_set_with_an_environment_writes_under_environments(configured: Project) -> None:
    store_for(configured).set("deployment.keep_releases", "2", environment="staging")

    data = store_for(configured).read()
    assert data["environments"] == {"staging": {"deployment": {"keep_releases": 2}}}
    assert "deployment" not in data


def test_set_refuses_invalid_value_and_leaves_file_unchanged(project: Project) -> None:
    before = write_config(project, {**MINIMAL, "deployment": {"strategy": "rolling"}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).set("deployment.strategy", "fast")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert "deployment.strategy" in caught.value.message
    assert caught.value.details["problems"][0]["allowed"] == ["rolling", "blue-green", "canary"]
    assert project.config_path.read_bytes() == before


def test_set_refuses_a_value_out_of_range_and_leaves_file_unchanged(configured: Project) -> None:
    before = configured.config_path.read_bytes()

    with pytest.raises(DevopsError) as caught:
        store_for(configured).set("deployment.keep_releases", "0")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert caught.value.details["problems"][0]["path"] == "deployment.keep_releases"
    assert configured.config_path.read_bytes() == before


def test_set_refuses_an_unknown_key_and_leaves_file_unchanged(configured: Project) -> None:
    before = configured.config_path.read_bytes()

    with pytest.raises(DevopsError) as caught:
        store_for(configured).set("deployment.colour", "red")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert caught.value.details["problems"][0]["path"] == "deployment.colour"
    assert configured.config_path.read_bytes() == before


def test_set_refuses_an_invalid_environment_name_and_leaves_file_unchanged(
    configured: Project,
) -> None:
    before = configured.config_path.read_bytes()

    with pytest.raises(DevopsError) as caught:
        store_for(configured).set("deployment.keep_releases", "2", environment="Prod Env")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert configured.config_path.read_bytes() == before


@pytest.mark.parametrize("key", ["", ".", "deployment.", ".keep_releases", "deployment..x"])
def test_set_refuses_a_key_that_is_not_a_dotted_name_and_leaves_file_unchanged(
    configured: Project,
    key: str,
) -> None:
    before = configured.config_path.read_bytes()

    with pytest.raises(DevopsError) as caught:
        store_for(configured).set(key, "1")

    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert configured.config_path.read_bytes() == before


def test_set_without_a_config_file_raises_config_missing_and_creates_nothing(
    project: Project,
) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project).set("deployment.keep_releases", "3")

    assert caught.value.code is ErrorCode.CONFIG_MISSING
    assert not project.config_path.exists()


def test_set_on_a_broken_file_raises_config_invalid_and_does_not_repair_it(
    project: Project,
) -> None:
    before = write_config(project, {**MINIMAL, "deployment": {"strategy": "fast"}})

    with pytest.raises(DevopsError) as caught:
        store_for(project).set("deployment.strategy", "canary")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert project.config_path.read_bytes() == before


def test_set_refuses_nan_for_a_number_setting_and_leaves_file_unchanged(
    configured: Project,
) -> None:
    before = configured.config_path.read_bytes()

    with pytest.raises(DevopsError) as caught:
        store_for(configured).set("deployment.lock_timeout", "NaN")

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert configured.config_path.read_bytes() == before


def test_set_of_a_valid_file_edit_does_not_depend_on_devops_environment_variables(
    project: Project,
) -> None:
    write_config(project, {**MINIMAL, "environments": {"staging": {}}})
    environ = {"DEVOPS__DEPLOYMENT__STRATEGY": "fast"}

    store_for(project, environ).set("deployment.keep_releases", "4")

    assert store_for(project).read()["deployment"]["keep_releases"] == 4


# --------------------------------------------------------------------------- import_file


def test_import_file_writes_a_valid_file_when_there_is_no_config(
    project: Project,
    tmp_path: Path,
) -> None:
    source = tmp_path / "exported.json"
    source.write_text(json.dumps({**MINIMAL, "project": "shop"}), encoding="utf-8")

    store_for(project).import_file(source)

    assert store_for(project).read() == {**MINIMAL, "project": "shop"}


def test_import_file_refuses_to_replace_an_existing_config_without_force(
    configured: Project,
    tmp_path: Path,
) -> None:
    before = configured.config_path.read_bytes()
    source = tmp_path / "exported.json"
    source.write_text(json.dumps({**MINIMAL, "project": "shop"}), encoding="utf-8")

    with pytest.raises(DevopsError) as caught:
        store_for(configured).import_file(source)

    assert caught.value.code is ErrorCode.CONFIG_EXISTS
    assert "--force" in caught.value.fix
    assert configured.config_path.read_bytes() == before


def test_import_file_with_force_replaces_an_existing_config(
    configured: Project,
    tmp_path: Path,
) -> None:
    source = tmp_path / "exported.json"
    source.write_text(json.dumps({"version": 1, "platform": "netlify"}), encoding="utf-8")

    store_for(configured).import_file(source, force=True)

    assert store_for(configured).read()["platform"] == "netlify"


def test_import_file_of_an_invalid_config_raises_config_invalid_and_leaves_file_unchanged(
    configured: Project,
    tmp_path: Path,
) -> None:
    before = configured.config_path.read_bytes()
    source = tmp_path / "exported.json"
    source.write_text(json.dumps({**MINIMAL, "deployment": {"strategy": "fast"}}), encoding="utf-8")

    with pytest.raises(DevopsError) as caught:
        store_for(configured).import_file(source, force=True)

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert caught.value.details["problems"][0]["path"] == "deployment.strategy"
    assert configured.config_path.read_bytes() == before


def test_import_file_of_malformed_json_names_the_source_and_leaves_file_unchanged(
    configured: Project,
    tmp_path: Path,
) -> None:
    before = configured.config_path.read_bytes()
    source = tmp_path / "exported.json"
    source.write_text('{"version": 1, "platform": ', encoding="utf-8")

    with pytest.raises(DevopsError) as caught:
        store_for(configured).import_file(source, force=True)

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert str(source) in caught.value.message
    assert configured.config_path.read_bytes() == before


def test_import_file_of_a_missing_source_raises_not_found(
    project: Project,
    tmp_path: Path,
) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project).import_file(tmp_path / "nope.json")

    assert caught.value.code is ErrorCode.NOT_FOUND
    assert not project.config_path.exists()


# --------------------------------------------------------------------------- settings


def test_settings_without_a_config_file_are_the_built_in_defaults(project: Project) -> None:
    settings = store_for(project).settings()

    assert settings.platform == "local"
    assert settings.environment == "production"
    assert settings.get("build.dir") == "dist"
    assert settings.get("deployment.keep_releases") == 5
    assert dict(settings.data) == {**DEFAULTS, "environment": "production"}


def test_settings_lay_the_file_over_the_defaults_key_by_key(project: Project) -> None:
    write_config(project, {"version": 1, "platform": "ssh", "deployment": {"keep_releases": 9}})

    settings = store_for(project).settings()

    assert settings.platform == "ssh"
    assert settings.get("deployment.keep_releases") == 9
    assert settings.get("deployment.strategy") == "rolling"  # default kept beside it
    assert settings.get("deployment.health_check.timeout") == 10


def test_settings_of_a_named_environment_deep_merge_its_overrides(project: Project) -> None:
    write_config(
        project,
        {
            **MINIMAL,
            "deployment": {"strategy": "canary", "keep_releases": 9},
            "environments": {"staging": {"deployment": {"keep_releases": 2}}},
        },
    )

    settings = store_for(project).settings("staging")

    assert settings.environment == "staging"
    assert settings.get("deployment.keep_releases") == 2
    assert settings.get("deployment.strategy") == "canary"


def test_settings_of_another_environment_ignore_overrides_of_staging(project: Project) -> None:
    write_config(
        project,
        {
            **MINIMAL,
            "environments": {"staging": {"deployment": {"keep_releases": 2}}},
        },
    )

    assert store_for(project).settings("production").get("deployment.keep_releases") == 5


def test_settings_use_the_file_environment_when_none_is_named(project: Project) -> None:
    write_config(
        project,
        {
            **MINIMAL,
            "environment": "staging",
            "environments": {"staging": {"build": {"dir": "out"}}},
        },
    )

    settings = store_for(project).settings()

    assert settings.environment == "staging"
    assert settings.get("build.dir") == "out"


def test_settings_keep_project_but_not_version_or_environments(project: Project) -> None:
    write_config(project, {**MINIMAL, "project": "shop", "environments": {"staging": {}}})

    data = store_for(project).settings().data

    assert data["project"] == "shop"
    assert "version" not in data
    assert "environments" not in data


def test_environment_variable_overrides_a_nested_setting_typed(project: Project) -> None:
    write_config(project, {**MINIMAL, "deployment": {"keep_releases": 9}})

    settings = store_for(project, {"DEVOPS__DEPLOYMENT__KEEP_RELEASES": "3"}).settings()

    assert settings.get("deployment.keep_releases") == 3


def test_environment_variable_wins_over_an_environment_override(project: Project) -> None:
    write_config(
        project,
        {
            **MINIMAL,
            "environments": {"staging": {"deployment": {"strategy": "canary"}}},
        },
    )
    environ = {"DEVOPS__DEPLOYMENT__STRATEGY": "blue-green"}

    settings = store_for(project, environ).settings("staging")

    assert settings.get("deployment.strategy") == "blue-green"


def test_environment_variable_overrides_apply_without_a_config_file(project: Project) -> None:
    settings = store_for(project, {"DEVOPS__BUILD__DIR": "public"}).settings()

    assert settings.get("build.dir") == "public"
    assert settings.get("build.command") is None


def test_environment_variables_without_the_devops_prefix_are_ignored(project: Project) -> None:
    environ = {
        "DEVOPS_DEPLOYMENT__KEEP_RELEASES": "3",
        "DEPLOYMENT__KEEP_RELEASES": "3",
        "DEVOPS__": "x",
        "PATH": "/bin",
    }

    settings = store_for(project, environ).settings()

    assert settings.get("deployment.keep_releases") == 5


def test_store_reads_os_environ_when_no_environ_is_given(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEVOPS__DEPLOYMENT__KEEP_RELEASES", "4")

    assert ConfigStore(project).settings().get("deployment.keep_releases") == 4


def test_environment_variable_with_a_bad_enum_value_raises_config_invalid(
    project: Project,
) -> None:
    write_config(project, MINIMAL)
    store = store_for(project, {"DEVOPS__DEPLOYMENT__STRATEGY": "fast"})

    with pytest.raises(DevopsError) as caught:
        store.settings()

    error = caught.value
    assert error.code is ErrorCode.CONFIG_INVALID
    assert "deployment.strategy" in error.message
    assert "DEVOPS__" in error.fix
    assert error.details["problems"][0]["value"] == "fast"


def test_environment_variable_naming_an_unknown_setting_raises_config_invalid(
    project: Project,
) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project, {"DEVOPS__DEPLOYMENT__COLOUR": "red"}).settings()

    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert caught.value.details["problems"][0]["path"] == "deployment.colour"


def test_conflicting_environment_variables_raise_config_invalid_not_a_crash(
    project: Project,
) -> None:
    environ = {"DEVOPS__DEPLOYMENT": "5", "DEVOPS__DEPLOYMENT__KEEP_RELEASES": "3"}

    with pytest.raises(DevopsError) as caught:
        store_for(project, environ).settings()

    assert caught.value.code is ErrorCode.CONFIG_INVALID


def test_environment_variable_keeps_numeric_text_where_the_schema_wants_a_string(
    project: Project,
) -> None:
    settings = store_for(project, {"DEVOPS__BUILD__DIR": "2024"}).settings()

    assert settings.get("build.dir") == "2024"


def test_invalid_settings_of_a_named_environment_say_which_environment(
    project: Project,
) -> None:
    with pytest.raises(DevopsError) as caught:
        store_for(project, {"DEVOPS__PLATFORM": "moon"}).settings("staging")

    assert "'staging'" in caught.value.message
    assert caught.value.details["problems"][0]["path"] == "platform"


# --------------------------------------------------------------------------- Settings


def test_settings_get_walks_a_dotted_key_and_falls_back_to_the_default() -> None:
    settings = Settings("production", {"deployment": {"health_check": {"retries": 3}}})

    assert settings.get("deployment.health_check.retries") == 3
    assert settings.get("deployment.health_check.url") is None
    assert settings.get("deployment.health_check.retries.x", "dflt") == "dflt"
    assert settings.get("nothing.here", 7) == 7


def test_settings_section_is_a_copy_and_empty_when_missing() -> None:
    settings = Settings("production", {"platform": "ssh", "ssh": {"host": "web1"}})

    section = settings.section("ssh")
    section["host"] = "changed"

    assert settings.section("ssh") == {"host": "web1"}
    assert settings.section("netlify") == {}


# --------------------------------------------------------------------------- parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2.5", -2.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ('"quoted"', "quoted"),
        ('["a", 1]', ["a", 1]),
        ('{"a": {"b": 1}}', {"a": {"b": 1}}),
        ("npm run build", "npm run build"),
        ("", ""),
        ("True", "True"),
        ("https://example.com/health", "https://example.com/health"),
    ],
)
def test_parse_value_types_json_and_keeps_anything_else_as_text(text: str, expected: Any) -> None:
    value = parse_value(text)

    assert value == expected
    assert type(value) is type(expected)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(json_scalars)
@hsettings(max_examples=200, deadline=None)
def test_parse_value_round_trips_the_json_text_of_any_scalar(value: Any) -> None:
    parsed = parse_value(json.dumps(value))

    assert parsed == value
    assert type(parsed) is type(value)


@given(st.text())
@hsettings(max_examples=200, deadline=None)
def test_parse_value_returns_text_that_is_not_json_unchanged(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        assume(False)  # only texts that are not JSON

    assert parse_value(text) is text


# --------------------------------------------------------------------------- deep_merge


def test_deep_merge_merges_nested_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}
    override = {"a": {"y": [3]}, "c": 5, "d": {"new": True}}

    assert deep_merge(base, override) == {
        "a": {"x": 1, "y": [3]},
        "b": 1,
        "c": 5,
        "d": {"new": True},
    }


def test_deep_merge_leaves_both_inputs_untouched_and_shares_no_containers() -> None:
    base = {"a": {"x": [1]}}
    override = {"b": {"y": [2]}}

    merged = deep_merge(base, override)
    merged["a"]["x"].append(99)
    merged["b"]["y"].append(99)

    assert base == {"a": {"x": [1]}}
    assert override == {"b": {"y": [2]}}


keys = st.text(alphabet="abcde", min_size=1, max_size=3)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.lists(st.integers(), max_size=3)
)
nested_dicts = st.recursive(
    st.dictionaries(keys, leaves, max_size=4),
    lambda children: st.dictionaries(keys, children | leaves, max_size=4),
    max_leaves=20,
)


def _leaf_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaf_paths(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@given(nested_dicts)
@hsettings(max_examples=100, deadline=None)
def test_deep_merge_with_an_empty_override_is_identity(data: dict[str, Any]) -> None:
    assert deep_merge(data, {}) == data


@given(nested_dicts)
@hsettings(max_examples=100, deadline=None)
def test_deep_merge_onto_an_empty_base_gives_the_override(data: dict[str, Any]) -> None:
    assert deep_merge({}, data) == data


@given(nested_dicts, nested_dicts)
@hsettings(max_examples=100, deadline=None)
def test_deep_merge_every_leaf_of_the_override_wins(
    base: dict[str, Any],
    override: dict[str, Any],
) -> None:
    merged = deep_merge(base, override)

    for path, value in _leaf_paths(override):
        assert _at(merged, path) == value


@given(nested_dicts, nested_dicts)
@hsettings(max_examples=100, deadline=None)
def test_deep_merge_keeps_every_base_key_the_override_does_not_name(
    base: dict[str, Any],
    override: dict[str, Any],
) -> None:
    merged = deep_merge(base, override)

    assert set(merged) == set(base) | set(override)
    for key in set(base) - set(override):
        assert merged[key] == base[key]


# --------------------------------------------------------------------------- checked once


def run_python(script: str) -> str:
    """What ``script`` prints, run by this interpreter in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _checked_digests(project: Project) -> list[str]:
    return (project.cache_dir / "config-checked").read_text().split()


def test_a_valid_config_is_remembered_so_later_commands_skip_the_schema(
    project: Project,
) -> None:
    write_config(project, {"version": 1, "platform": "local"})

    ConfigStore(project).settings()

    assert len(_checked_digests(project)) == 2  # the file, and the merged settings
    script = (
        "import sys; from devops_tasks.config import ConfigStore;"
        "from devops_tasks.project import Project; from pathlib import Path;"
        f"ConfigStore(Project(Path({str(project.root)!r}))).settings();"
        "print('jsonschema' in sys.modules)"
    )
    assert run_python(script) == "False"


def test_a_remembered_config_edited_into_an_invalid_one_is_still_refused(
    project: Project,
) -> None:
    write_config(project, {"version": 1, "platform": "local"})
    ConfigStore(project).settings()
    write_config(project, {"version": 1, "platform": "local", "deployment": {"strategy": "x"}})

    with pytest.raises(DevopsError) as raised:
        ConfigStore(project).settings()

    assert raised.value.code is ErrorCode.CONFIG_INVALID


def test_a_corrupt_record_of_checked_configs_is_ignored_and_rewritten(project: Project) -> None:
    write_config(project, {"version": 1, "platform": "local"})
    project.cache_dir.mkdir(parents=True)
    (project.cache_dir / "config-checked").write_bytes(b"\xff\xfe not digests")

    assert ConfigStore(project).settings().platform == "local"
    assert len(_checked_digests(project)) == 2


def test_a_config_given_by_environment_variables_is_checked_with_them(
    project: Project,
) -> None:
    write_config(project, {"version": 1, "platform": "local"})
    ConfigStore(project).settings()
    store = ConfigStore(project, environ={"DEVOPS__DEPLOYMENT__STRATEGY": "sideways"})

    with pytest.raises(DevopsError) as raised:
        store.settings()

    assert raised.value.code is ErrorCode.CONFIG_INVALID
