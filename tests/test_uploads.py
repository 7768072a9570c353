"""Sending contents on many threads: how many at once (the pace), and what a failure stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from devops_tasks.files import SiteFile
from devops_tasks.output import NullProgress
from devops_tasks.uploads import Pace, send_all


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def round_of_answers(pace: Pace, clock: Clock, took: float) -> None:
    """As many requests as the limit lets start, each answered 2xx after ``took`` seconds."""
    started = [pace.acquire() for _ in range(int(pace.limit))]
    clock.now += took
    for when in started:
        pace.release(when)


def test_the_limit_starts_small_and_doubles_with_each_round_of_fast_answers():
    clock = Clock()
    pace = Pace(64, start=4, clock=clock)
    round_of_answers(pace, clock, 0.01)
    assert pace.limit == 8
    round_of_answers(pace, clock, 0.01)
    assert pace.limit == 16


def test_the_limit_never_grows_past_the_ceiling():
    clock = Clock()
    pace = Pace(6, start=4, clock=clock)
    for _ in range(5):
        round_of_answers(pace, clock, 0.01)
    assert pace.limit == 6


def test_a_retry_halves_the_limit():
    clock = Clock()
    pace = Pace(64, start=16, clock=clock)
    started = pace.acquire()
    pace.back_off(started, None)
    assert pace.limit == 8


def test_requests_sent_before_a_cut_do_not_cut_it_again():
    clock = Clock()
    pace = Pace(64, start=16, clock=clock)
    under_way = [pace.acquire() for _ in range(16)]
    clock.now += 0.01
    for started in under_way:  # a 429 storm answers all of them
        pace.back_off(started, None)
    assert pace.limit == 8


def test_a_retry_that_fails_again_cuts_again():
    clock = Clock()
    pace = Pace(64, start=16, clock=clock)
    retried_at = pace.back_off(pace.acquire(), 0.5)
    clock.now = retried_at + 0.01
    pace.back_off(retried_at, 0.5)
    assert pace.limit == 4


def test_the_limit_never_falls_below_one():
    clock = Clock()
    pace = Pace(64, start=2, clock=clock)
    started = pace.acquire()
    for _ in range(5):
        clock.now += 1
        started = pace.back_off(started, None)
    assert pace.limit == 1


def test_after_a_setback_the_limit_grows_by_one_per_round():
    clock = Clock()
    pace = Pace(64, start=16, clock=clock)
    pace.back_off(pace.acquire(), None)
    pace.release(clock.now, answered=False)
    clock.now += 0.01
    round_of_answers(pace, clock, 0.01)
    assert pace.limit == pytest.approx(9, abs=0.1)


def test_answers_that_slow_down_stop_the_growth():
    clock = Clock()
    pace = Pace(64, start=4, clock=clock)
    round_of_answers(pace, clock, 0.01)
    grown = pace.limit
    for _ in range(5):
        round_of_answers(pace, clock, 0.2)  # queueing: twenty times the quickest
    assert pace.limit <= grown + 1


def test_a_failed_request_does_not_grow_the_limit():
    clock = Clock()
    pace = Pace(64, start=4, clock=clock)
    for started in [pace.acquire() for _ in range(4)]:
        pace.release(started, answered=False)
    assert pace.limit == 4


def test_no_request_starts_before_the_pause_the_server_asked_for():
    pace = Pace(64, start=4)
    pace.back_off(pace.acquire(), 0.3)
    asked = time.monotonic()
    pace.acquire()
    assert time.monotonic() - asked >= 0.25


# -- send_all ------------------------------------------------------------------------------


def contents(tmp_path: Path, count: int) -> dict[str, SiteFile]:
    uploads = {}
    for n in range(count):
        path = tmp_path / f"f{n}.txt"
        path.write_text(f"file {n}")
        uploads[f"digest{n}"] = SiteFile(f"f{n}.txt", str(path), path.stat().st_size)
    return uploads


def test_every_content_is_sent_once(tmp_path):
    uploads = contents(tmp_path, 50)
    sent: list[str] = []
    total = send_all(uploads, lambda digest, _: sent.append(digest), 8, NullProgress())
    assert sorted(sent) == sorted(uploads)
    assert total == sum(f.size for f in uploads.values())


def test_no_more_than_the_configured_concurrency_is_under_way(tmp_path):
    under_way, most, lock = 0, 0, threading.Lock()

    def send(digest: str, _: SiteFile) -> None:
        nonlocal under_way, most
        with lock:
            under_way += 1
            most = max(most, under_way)
        time.sleep(0.002)
        with lock:
            under_way -= 1

    send_all(contents(tmp_path, 120), send, 5, NullProgress())
    assert 1 < most <= 5


def test_the_first_failure_stops_the_uploads_not_started_and_is_raised(tmp_path):
    sent: list[str] = []

    def send(digest: str, _: SiteFile) -> None:
        sent.append(digest)
        if len(sent) == 3:
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        send_all(contents(tmp_path, 100), send, 4, NullProgress())
    assert len(sent) < 20


def test_an_answer_that_opened_its_connection_neither_grows_nor_sets_the_pace():
    clock = Clock()
    pace = Pace(64, start=4, clock=clock)
    started = pace.acquire()
    clock.now += 0.001
    pace.release(started, opened=True)  # no handshake in its time: it would look the quickest
    round_of_answers(pace, clock, 0.01)
    assert pace.limit == 8
