"""SIGTERM and SIGHUP end a deploy the way Ctrl-C does, so that every ``finally`` runs.

Python turns SIGINT into ``KeyboardInterrupt`` but dies on SIGTERM (what ``kill``, systemd,
CI runners and container stops send) and SIGHUP (a closed terminal, a dropped SSH session)
without unwinding: a lock held on a host would stay behind. While a deploy or rollback
runs, both raise :class:`Terminated` instead, a ``KeyboardInterrupt``, which everything
already handles as an interruption.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "terminate_as_interrupt"]

_STOPS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM, SIGHUP) while it worked."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` where the main thread is.

    Signal handlers belong to the main thread; called from another, this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"Terminated ({signal.Signals(signum).name})")

    previous = {number: signal.signal(number, stop) for number in _STOPS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
