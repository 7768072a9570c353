"""Sending a build's files to a provider that stores contents by digest (Netlify, Vercel).

Both answer a deploy's manifest with the digests they do not have yet. Each of those is
sent once, whatever the number of paths that hold it, on up to ``workers`` threads; how many
are under way at once is learnt from the server's answers (:class:`Pace`). The first upload
that fails for good (after the HTTP layer's retries) stops the rest.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .files import SiteFile
    from .output import Progress

__all__ = ["Pace", "one_file_per_digest", "send_all"]

#: Uploads under way at first; doubled each round of fast answers until the first setback.
START = 4
#: Answers are fast while they take, on average, at most this many times the quickest one:
#: beyond that, more at once only queues up at the server (or on the link).
FAST = 2.0
#: Weight of the newest answer in that average.
RECENT = 0.1


class Pace:
    """How many requests may be under way at once, learnt from the answers (AIMD).

    The limit starts at ``start`` and grows while answers come back 2xx and fast (their
    moving average within :data:`FAST` times the quickest): by one per answer at first, so
    that it doubles each round as TCP's slow start does, until one answer is slow or a
    retry comes; by one per round after that. A retry (429, 5xx, a dropped connection)
    halves it, once per round: a request sent before the last cut has nothing new to say.
    When the server asked for a pause (``Retry-After``), no request starts before it is
    over. The limit stays within 1 and ``ceiling``.
    """

    def __init__(
        self, ceiling: int, start: int = START, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling = ceiling
        self.limit = float(max(1, min(start, ceiling)))
        self.active = 0
        self._clock = clock
        self._slow_start = True
        self._cut_at = -math.inf  # when the limit was last halved
        self._resume_at = -math.inf  # no request starts before this (a server's Retry-After)
        self._quickest = math.inf  # the quickest answer so far: what "fast" is measured by
        self._typical = 0.0  # moving average of the answers' times
        self._changed = threading.Condition()

    def acquire(self) -> float:
        """Wait for a place under the limit; returns when the request starts."""
        with self._changed:
            while True:
                now = self._clock()
                if now < self._resume_at:
                    self._changed.wait(self._resume_at - now)
                elif self.active < int(self.limit):
                    self.active += 1
                    return now
                else:
                    self._changed.wait()

    def release(self, started: float, answered: bool = True, opened: bool = False) -> None:
        """The request that started at ``started`` is over; ``answered``: with a 2xx.

        ``opened``: it opened its connection (TCP, TLS), so its time says nothing of how busy
        the server is; it only frees its place.
        """
        with self._changed:
            self.active -= 1
            took = self._clock() - started
            if answered and not opened and started >= self._cut_at:
                self._quickest = min(self._quickest, took)
                self._typical += RECENT * (took - self._typical) if self._typical else took
                if took > FAST * self._quickest:  # the first slow answer ends the slow start
                    self._slow_start = False
                if self._typical <= FAST * self._quickest:
                    grown = self.limit + (1.0 if self._slow_start else 1.0 / self.limit)
                    self.limit = min(float(self.ceiling), grown)
            self._changed.notify(int(self.limit) - self.active)  # wake only whom there is room for

    def back_off(self, started: float, wait: float | None) -> float:
        """The request that started at ``started`` is retried, after ``wait`` seconds if the
        server asked for a pause: halve the limit and hold new requests for that long.
        Returns when the retry will start (its ``started`` from now on)."""
        with self._changed:
            now = self._clock()
            if started >= self._cut_at:
                self.limit = max(1.0, self.limit / 2)
                self._cut_at = now
                self._slow_start = False
            if wait:
                self._resume_at = max(self._resume_at, now + wait)
            return now + (wait or 0.0)


def one_file_per_digest(
    digests: Mapping[str, tuple[str, SiteFile]], wanted: Iterable[str]
) -> dict[str, SiteFile]:
    """``digest -> file`` for every wanted digest the site has: the first file that holds it.

    ``digests`` is :meth:`SiteFiles.digests`' ``path -> (digest, file)``; a wanted digest
    that no file has is left out (the caller decides whether that is an error).
    """
    wanted = set(wanted)
    chosen: dict[str, SiteFile] = {}
    for digest, site_file in digests.values():
        if digest in wanted and digest not in chosen:
            chosen[digest] = site_file
    return chosen


def send_all(
    uploads: Mapping[str, SiteFile],
    send: Callable[[str, SiteFile], object],
    workers: int,
    progress: Progress,
) -> int:
    """``send(digest, file)`` for each upload on up to ``workers`` threads; the bytes sent.

    The first failure stops every upload not started yet and is raised once the ones under
    way have finished.
    """
    from . import http  # noqa: PLC0415 - the HTTP layer tells the pace of each retry

    progress.start("Uploading", total=sum(f.size for f in uploads.values()))
    pace = Pace(workers)
    todo = iter(list(uploads.items()))
    taking = threading.Lock()
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []

    def more_workers() -> None:
        """As many threads as the limit lets work (an idle thread costs CPU too)."""
        with taking:
            while len(threads) < min(int(pace.limit), len(uploads)) and not failures:
                threads.append(threading.Thread(target=work, daemon=True))
                threads[-1].start()

    def work() -> None:
        started = 0.0
        opened = True  # a new worker's first request opens a connection

        def retrying(wait: float | None) -> None:
            nonlocal started
            started = pace.back_off(started, wait)

        with http.watching(retrying):
            while not failures:
                started = pace.acquire()
                with taking:
                    item = next(todo, None)
                if item is None or failures:
                    pace.release(started, answered=False)
                    return
                try:
                    send(*item)
                except BaseException as error:  # noqa: BLE001 - raised by send_all's caller
                    failures.append(error)
                    pace.release(started, answered=False)
                    return
                pace.release(started, opened=opened)
                opened = False
                progress.advance(item[1].size)
                if len(threads) < pace.limit:
                    more_workers()

    more_workers()
    try:
        joined = 0
        while joined < len(threads):  # a worker starts the next before it ends
            threads[joined].join()
            joined += 1
    except BaseException as error:  # Ctrl-C: start nothing more, let the others end
        failures.append(error)
        raise
    progress.finish()
    if failures:
        raise failures[0]
    return sum(f.size for f in uploads.values())
