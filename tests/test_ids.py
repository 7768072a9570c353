"""Ids and names that go into paths and URLs: one rule each, checked before use."""

from __future__ import annotations

import json

import pytest
from helpers import REPO

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.ids import ENVIRONMENT, check_environment, check_id


def test_the_environment_rule_is_the_config_schemas_own():
    schema = json.loads((REPO / "devops_tasks" / "config" / "schema.json").read_text())
    assert schema["$defs"]["environmentName"]["pattern"] == f"^{ENVIRONMENT.pattern}$"


@pytest.mark.parametrize("name", ["../x", "A", "a b", "", "-x", "x" * 64, "prod\n", "é"])
def test_a_name_that_could_leave_its_directory_is_not_an_environment(name):
    with pytest.raises(DevopsError) as refused:
        check_environment(name, "--env")
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT and "--env" in refused.value.message


@pytest.mark.parametrize("value", ["..", ".", "a/b", "", "x y", "a\\b", "%2e", ".hidden"])
def test_an_id_must_be_one_plain_path_segment(value):
    with pytest.raises(DevopsError) as refused:
        check_id(value, "deploy id", "copy it")
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT


def test_ids_made_of_letters_digits_dots_dashes_and_underscores_pass():
    for value in ("5f3c0a1b2c3d4e5f6a7b8c9d", "my-site.netlify.app", "dep_1_ab"):
        assert check_id(value, "id", "") == value
