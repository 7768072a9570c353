"""Masking: streams that split values anywhere, tails cut after masking, answers left readable."""

from __future__ import annotations

import io
import json
import secrets

from hypothesis import given
from hypothesis import strategies as st

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.output import Output
from devops_tasks.redaction import (
    MASK,
    RedactingStream,
    redact,
    redact_data,
    redact_tail,
    register_secret,
)

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "\n".join(secrets.token_urlsafe(48) for _ in range(6))
    + "\n-----END PRIVATE KEY-----\n"
)


def _through_stream(text: str, sizes: list[int]) -> str:
    """``text`` written to a RedactingStream in pieces of ``sizes`` (cycled), flushed each time."""
    target = io.StringIO()
    stream = RedactingStream(target)
    position, turn = 0, 0
    while position < len(text):
        size = sizes[turn % len(sizes)]
        stream.write(text[position : position + size])
        stream.flush()
        position, turn = position + size, turn + 1
    stream.close()
    return target.getvalue()


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
def test_a_value_split_across_any_writes_is_masked_as_a_whole(sizes: list[int]) -> None:
    register_secret("tok-0123456789abcdef")
    register_secret(PEM)
    text = f"token tok-0123456789abcdef then the key:\n{PEM}done tok-0123"
    shown = _through_stream(text, sizes)
    assert shown == f"token {MASK} then the key:\n{MASK}\ndone tok-0123"


def test_a_multi_line_secret_printed_line_by_line_is_masked_line_by_line() -> None:
    register_secret(PEM)
    body = PEM.strip().splitlines()[1:-1]
    printed = "".join(f"  > {line}\n" for line in body)  # e.g. indented by a script
    shown = _through_stream(printed, [7])
    assert all(line not in shown for line in body)
    assert shown == f"  > {MASK}\n" * len(body)


def test_what_may_be_the_start_of_a_secret_waits_for_the_rest() -> None:
    register_secret("hunter2-secret")
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("password: hunter2-")
    stream.flush()
    assert target.getvalue() == "password: "
    stream.write("secret!\n")
    stream.close()
    assert target.getvalue() == f"password: {MASK}!\n"


def test_a_partial_match_that_never_completes_is_written_on_close() -> None:
    register_secret("hunter2-secret")
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("ends with hunter2")
    stream.close()
    assert target.getvalue() == "ends with hunter2"


def test_a_tail_is_masked_before_it_is_cut() -> None:
    secret = "s3cr3t-" + "x" * 50
    register_secret(secret)
    text = "start " + secret + " end"
    tail = redact_tail(text, 30)
    assert "x" * 5 not in tail and tail.endswith(" end")


def test_a_tail_never_starts_inside_a_mask() -> None:
    register_secret("0123456789")
    assert redact_tail("head 0123456789 tail", 8) == " tail"
    assert redact_tail("head 0123456789 tail", len(MASK) + 5) == f"{MASK} tail"


def test_values_shorter_than_the_minimum_are_not_searched_for() -> None:
    register_secret("abc")
    assert redact("abc abcd") == "abc abcd"


def test_keys_and_product_fields_are_never_masked_but_free_text_is() -> None:
    for word in ("production", "success", "netlify", "dep_1_ab"):
        register_secret(word)
    data = {
        "success": True,
        "environment": "production",
        "platform": "netlify",
        "id": "dep_1_ab",
        "production": ["netlify"],
        "message": "deployed to production on netlify",
    }
    assert redact_data(data) == {
        **data,
        "production": [MASK],
        "message": f"deployed to {MASK} on {MASK}",
    }


def test_a_json_answer_stays_readable_when_a_secret_equals_one_of_its_words() -> None:
    for word in ("production", "success", "netlify", "CONFIG_INVALID"):
        register_secret(word)
    stdout = io.StringIO()
    out = Output(json_mode=True, stdout=stdout)
    out.success({"environment": "production", "platform": "netlify"})
    out.failure(DevopsError(ErrorCode.CONFIG_INVALID, "bad production setting", "fix it"))
    answers = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answers[0] == {"success": True, "environment": "production", "platform": "netlify"}
    assert answers[1]["success"] is False and answers[1]["code"] == "CONFIG_INVALID"
    assert answers[1]["error"] == f"bad {MASK} setting"


def test_overlapping_secrets_are_masked_as_one_stretch() -> None:
    register_secret("abcdef12")
    register_secret("ef12XYZW")
    assert redact("<abcdef12XYZW>") == f"<{MASK}>"
    assert _through_stream("<abcdef12XYZW>", [3]) == f"<{MASK}>"


def test_a_long_start_of_a_long_secret_streams_in_linear_time() -> None:
    """Held-back text is checked with a prefix automaton, not by comparing every position."""
    secret = "v" * 50_000
    register_secret(secret)
    printed = "v" * 49_000 + "x" + secret + "\n"
    assert _through_stream(printed, [1000]) == "v" * 49_000 + "x" + MASK + "\n"
