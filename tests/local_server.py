"""Start a server process on 127.0.0.1 and a free port, and wait until it answers.

The storage emulators (gcp-storage-emulator, Azurite) are started the same way: pick a free
port, spawn the program with its output in a log file, poll until it answers HTTP, and try
another port if someone took this one in between. A server that never answers is an error
carrying its log, never a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import stop_process

__all__ = ["LocalServer", "free_port", "start"]

_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


@dataclass
class LocalServer:
    """A running server process, the URL it answers on and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_in: float

    def log(self) -> str:
        """Everything the server has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """End the process (politely, then for sure) and remove its log."""
        stop_process(self.process)
        self.log_path.unlink(missing_ok=True)


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    """True once ``url`` answers HTTP at all (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _start_once(
    name: str, argv: Sequence[str], port: int, probe: str, timeout: float
) -> LocalServer:
    url = f"http://127.0.0.1:{port}"
    fd, log_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    began = time.monotonic()
    server = LocalServer(url, process, Path(log_name), 0.0)
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            output = server.log()[-2000:]
            server.stop()
            raise RuntimeError(
                f"{name} exited with status {process.returncode} before answering on {url}:\n"
                f"{output}"
            )
        if answers(url + probe):
            server.started_in = time.monotonic() - began
            return server
        time.sleep(0.05)
    output = server.log()[-2000:]
    server.stop()
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f} s:\n{output}")


def start(
    name: str, argv_for: Callable[[int], Sequence[str]], probe: str = "/", timeout: float = 20.0
) -> LocalServer:
    """Run ``argv_for(port)`` on a free port until ``probe`` answers; raises if it never does."""
    errors = []
    for _ in range(_ATTEMPTS):
        port = free_port()
        try:
            return _start_once(name, argv_for(port), port, probe, timeout)
        except RuntimeError as exc:
            errors.append(str(exc))
    raise RuntimeError(f"could not start {name}:\n" + "\n---\n".join(errors))
