"""Every JSON file this package reads is JSON as RFC 8259 has it, and what it writes reads back.

Python's parser takes NaN, Infinity and a key given twice (keeping the last value); a config
or record that says so is refused instead. A name that is not UTF-8 survives a write and a
read, in a file that is valid UTF-8.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devops_tasks.durable import FileRefused, parse_json, read_bounded, read_json, write_json
from devops_tasks.tasks._command import printable_data

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# os.fsdecode() turns each byte that is not UTF-8 into one of these lone surrogates.
FILE_NAME_TEXT = st.text(
    st.characters(exclude_categories=["Cs"]) | st.integers(0xDC80, 0xDCFF).map(chr)
)


@given(JSON_VALUES)
def test_whatever_json_dumps_writes_parses_back_the_same(value):
    assert parse_json(json.dumps(value)) == value


@given(st.dictionaries(FILE_NAME_TEXT, FILE_NAME_TEXT, max_size=4))
def test_names_that_are_not_utf8_survive_a_write_and_a_read(tmp_path_factory, names):
    path = tmp_path_factory.mktemp("json") / "names.json"
    write_json(path, names)
    path.read_bytes().decode("utf-8")  # strict: the file itself is valid UTF-8
    assert read_json(path) == names


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_number_json_does_not_have_is_refused(constant):
    with pytest.raises(ValueError, match="is not a JSON number"):
        parse_json(f'{{"keep_releases": [1, {constant}]}}')


def test_a_key_given_twice_is_refused_at_any_depth():
    with pytest.raises(ValueError, match="duplicate key 'dir'"):
        parse_json('{"build": {"dir": "a", "dir": "b"}}')


def test_nesting_deeper_than_python_can_parse_is_a_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileRefused, match="not a regular file"):
        read_bounded(tmp_path / "fifo", 100)


def test_a_file_over_the_limit_is_refused(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    assert read_bounded(tmp_path / "big", 101) == b"x" * 101
    with pytest.raises(FileRefused, match="larger than 100 bytes"):
        read_bounded(tmp_path / "big", 100)


def test_a_record_holding_nan_is_not_a_record_and_no_output_holds_nan(project, cli):
    deployed = cli("deploy", "--json").json["id"]
    record = project.state_dir / "deployments" / f"{deployed}.json"
    record.write_text(re.sub(r'"duration_ms": \d+', '"duration_ms": NaN', record.read_text()))
    (project.state_dir / "deployments" / "index.json").unlink()
    listed = cli("history", "--json")
    assert "NaN" not in listed.stdout and listed.json["count"] == 0


def test_output_data_never_holds_a_number_json_does_not_have():
    data = {"ok": 1.5, "nan": float("nan"), "deep": [float("inf"), {"x": float("-inf")}]}
    assert printable_data(data) == {"ok": 1.5, "nan": None, "deep": [None, {"x": None}]}
