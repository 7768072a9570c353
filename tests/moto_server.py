"""One moto server (an AWS emulator) per test session, on 127.0.0.1 and a free port.

Tests that need AWS talk to it over HTTP through ``AWS_ENDPOINT_URL``, like they would to
AWS itself. A missing or broken emulator is a failure, never a skip: ``moto[server]`` is
part of the ``test`` extra.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers import stop_process

__all__ = ["MotoServer", "reset", "start"]

STARTUP_TIMEOUT = 20.0
_ATTEMPTS = 3  # a free port can be taken by someone else before moto binds it


@dataclass
class MotoServer:
    """A running ``moto.server`` process and the URL it answers on."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """End the process (politely, then for sure) and remove its log."""
        stop_process(self.process)
        self.log_path.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    """True once the server answers HTTP at all (any status)."""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _start_once(timeout: float) -> MotoServer:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    fd, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log:
        # The same interpreter (so the same venv) as the tests; no shell, no PATH lookup.
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = MotoServer(url, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = _tail(log_path)
            server.stop()
            raise RuntimeError(
                f"moto server exited with status {process.returncode} before answering "
                f"on {url}:\n{output}"
            )
        if _answers(url):
            return server
        time.sleep(0.1)
    output = _tail(log_path)
    server.stop()
    raise RuntimeError(f"moto server did not answer on {url} within {timeout:.0f} s:\n{output}")


def start(timeout: float = STARTUP_TIMEOUT) -> MotoServer:
    """Start moto and wait until it answers; raises (never skips) if it cannot."""
    try:
        import moto.server  # noqa: F401  (a clear error before spawning anything)
    except ImportError as exc:
        raise RuntimeError(
            f"moto[server] is not installed in {sys.executable}: pip install -e '.[test]'"
        ) from exc
    errors = []
    for _ in range(_ATTEMPTS):
        try:
            return _start_once(timeout)
        except RuntimeError as exc:  # e.g. the port was taken in between; try another
            errors.append(str(exc))
    raise RuntimeError("could not start the moto server:\n" + "\n---\n".join(errors))


def reset(url: str) -> None:
    """Forget every resource the emulator holds (between tests)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"resetting moto at {url} answered HTTP {response.status}")
