"""SIGTERM ends a deploy the way Ctrl-C does, so that every ``finally`` runs.

Python turns SIGINT into ``KeyboardInterrupt`` but dies on SIGTERM (what ``kill``, systemd,
CI runners and container stops send) without unwinding: a lock held on a host would stay
behind. While a deploy or rollback runs, SIGTERM raises :class:`Terminated` instead, a
``KeyboardInterrupt``, which everything already handles as an interruption.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM) while it worked."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` where the main thread is.

    Signal handlers belong to the main thread; called from another, this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated("Terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
