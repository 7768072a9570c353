"""secrets.import: each value is stored exactly as the .env file writes it, or nothing is stored.

Nothing is expanded (``${VAR}``, ``$VAR``), whatever the quoting; a line that is not
``NAME=value`` is refused by its number; only a small regular file is read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from helpers import run_devops
from hypothesis import given, settings
from hypothesis import strategies as st

from devops_tasks.secrets.envfile import MAX_BYTES, read_env_file

KEY = "ab" * 32
NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"


@pytest.fixture
def keyed(project, monkeypatch):
    """A project with a master key, in an environment where an expansion would be visible."""
    monkeypatch.setenv("DEVOPS_MASTER_KEY", KEY)
    monkeypatch.setenv("VAR", "expanded")
    monkeypatch.setenv("word", "expanded")
    return project


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def stored(cli) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return cli("secrets.export", "--format", "json", "--json").json["secrets"]


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("A=p4ss${word}X9\n", {"A": "p4ss${word}X9"}, id="dollar-brace"),
        pytest.param("A=$VAR/bin\n", {"A": "$VAR/bin"}, id="dollar-name"),
        pytest.param(
            "A='${VAR} $VAR \\n'\n", {"A": "${VAR} $VAR \\n"}, id="single-quotes-are-literal"
        ),
        pytest.param(
            "A='it\\'s a \\\\'\n", {"A": "it's a \\"}, id="single-quotes-unescape-quote-backslash"
        ),
        pytest.param('A="${VAR} $VAR"\n', {"A": "${VAR} $VAR"}, id="double-quotes-do-not-expand"),
        pytest.param(
            'A="tab\\tline\\nquote\\"back\\\\"\n',
            {"A": 'tab\tline\nquote"back\\'},
            id="double-quotes-decode-escapes",
        ),
        pytest.param("export A=exported\n", {"A": "exported"}, id="export-prefix"),
        pytest.param(
            "# a comment\n\n  # indented\nA=value # trailing comment\n",
            {"A": "value"},
            id="comments",
        ),
        pytest.param("A=#not-a-comment\n", {"A": "#not-a-comment"}, id="hash-right-after-equals"),
        pytest.param(
            'A="line one\nline two"\nB=2\n',
            {"A": "line one\nline two", "B": "2"},
            id="multi-line-double-quoted",
        ),
        pytest.param(
            "A='line one\r\nline two'\r\n",
            {"A": "line one\r\nline two"},
            id="multi-line-single-quoted-crlf",
        ),
        pytest.param(
            "A=postgres://u:p@h/db?x=1&y==2\n",
            {"A": "postgres://u:p@h/db?x=1&y==2"},
            id="equals-inside-the-value",
        ),
        pytest.param("A=\nB=  spaced out  \n", {"A": "", "B": "spaced out"}, id="empty-trimmed"),
        pytest.param("A=first\nA=second\n", {"A": "second"}, id="a-repeated-name-keeps-the-last"),
        pytest.param("\ufeffA=1", {"A": "1"}, id="byte-order-mark-no-final-newline"),
    ],
)
def test_an_imported_value_is_exactly_what_the_file_says(keyed, cli, text, expected):
    write("import.env", text)

    assert cli("secrets.import", "import.env", "--json").json["imported"] == sorted(expected)
    assert stored(cli) == expected


def test_a_reference_to_the_master_key_variable_stores_the_reference_never_the_key(
    keyed, cli, tmp_path
):
    write("import.env", "LEAK=${DEVOPS_MASTER_KEY}\nALSO=$DEVOPS_MASTER_KEY\n")
    cli("secrets.import", "import.env", "--json")
    seen = tmp_path / "seen.txt"

    cli("secrets.exec", "--command", f"printenv LEAK ALSO > {seen}", "--json")

    assert stored(cli) == {"LEAK": "${DEVOPS_MASTER_KEY}", "ALSO": "$DEVOPS_MASTER_KEY"}
    assert seen.read_text().splitlines() == ["${DEVOPS_MASTER_KEY}", "$DEVOPS_MASTER_KEY"]


def quoted(value: str, quote: str) -> str:
    """``value`` as a dotenv quoted value: only backslash and the quote itself are escaped."""
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(st.from_regex(NAME, fullmatch=True), st.text(), max_size=5),
    quote=st.sampled_from(["'", '"']),
)
def test_any_text_written_as_a_quoted_value_reads_back_exactly(values, quote):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, ".env")
        lines = "".join(f"{name}={quoted(value, quote)}\n" for name, value in values.items())
        path.write_text(lines, encoding="utf-8", newline="")

        assert read_env_file(path) == values


# -- refused as a whole, by line number ----------------------------------------------------


def assert_refused_at_line(cli, keyed, text: str, line: int, hidden: str) -> None:  # type: ignore[no-untyped-def]
    """Importing ``text`` is INVALID_ARGUMENT naming ``line``, quoting nothing, storing nothing."""
    cli("secrets.set", "KEPT", "--value", "kept-value", "--json")
    before = keyed.credentials_path.read_bytes()
    write("import.env", text)

    result = cli("secrets.import", "import.env", "--json")

    assert result.json["code"] == "INVALID_ARGUMENT"
    assert f"Line {line} of import.env" in result.json["error"] and result.json["line"] == line
    assert hidden not in result.stdout + result.stderr
    assert keyed.credentials_path.read_bytes() == before


@pytest.mark.parametrize(
    "text, line",
    [
        pytest.param('A=1\n\n\nB="s3cr3t-unclosed\nC=3\n', 4, id="an-unclosed-quote"),
        pytest.param("A=1\n# note\ns3cr3t-pasted-alone\n", 3, id="a-name-without-equals"),
        pytest.param("A=1\n=s3cr3t-without-a-name\n", 2, id="a-value-without-a-name"),
        pytest.param('A="closed" s3cr3t-after-the-quote\n', 1, id="text-after-the-quote"),
    ],
)
def test_a_malformed_line_is_invalid_argument_naming_its_line_and_nothing_is_imported(
    keyed, cli, text, line
):
    assert_refused_at_line(cli, keyed, text, line, hidden="s3cr3t")


@pytest.mark.parametrize(
    "text, line",
    [
        pytest.param("GOOD=1\n9s3cr3t=2\n", 2, id="starts-with-a-digit"),
        pytest.param("GOOD=1\n\n  MY-s3cr3t=2\n", 3, id="a-dash"),
        pytest.param("GOOD=1\nöl_s3cr3t=2\n", 2, id="not-ascii"),
    ],
)
def test_an_invalid_secret_name_is_refused_by_line_before_anything_is_written(
    keyed, cli, text, line
):
    assert_refused_at_line(cli, keyed, text, line, hidden="s3cr3t")


@pytest.mark.parametrize("size, imports", [(MAX_BYTES, True), (MAX_BYTES + 1, False)])
def test_a_file_up_to_1_mib_imports_and_one_byte_more_is_refused(keyed, cli, size, imports):
    write("big.env", "A=" + "x" * (size - 3) + "\n")

    result = cli("secrets.import", "big.env", "--json").json

    assert result["success"] is imports
    if not imports:
        assert result["code"] == "INVALID_ARGUMENT" and "1024 KiB" in result["error"]
        assert not keyed.credentials_path.exists()


def test_a_file_that_is_not_utf8_is_refused(keyed, cli):
    Path("latin1.env").write_bytes("A=caf\u00e9\n".encode("latin-1"))

    result = cli("secrets.import", "latin1.env", "--json").json

    assert result["code"] == "INVALID_ARGUMENT" and "UTF-8" in result["error"]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_file_that_is_not_regular_is_refused_at_once(keyed, tmp_path, kind):
    path = {"fifo": tmp_path / "pipe.env", "dev-zero": Path("/dev/zero"), "directory": tmp_path}[
        kind
    ]
    if kind == "fifo":
        os.mkfifo(path)

    result = run_devops(
        "secrets.import",
        str(path),
        "--json",
        cwd=keyed.root,
        env={"DEVOPS_MASTER_KEY": KEY},
        timeout=60,
    )

    assert (
        result.json["code"] == "INVALID_ARGUMENT" and "not a regular file" in result.json["error"]
    )
    assert not keyed.credentials_path.exists()
