"""Work started early on a thread of its own, whose result is taken when it is needed.

A deploy's first reads of its target (a bucket's manifest, the SSH connections) overlap the
scan and hashing of the build this way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Background"]


class Background:
    """One call run on a daemon thread: a process that exits early never waits for it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            self._error = exc
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result
