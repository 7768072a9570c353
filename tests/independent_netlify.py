"""Start and stop ``independent_netlify.mjs``, the independent fake of the Netlify API.

The server is a Node process (written from Netlify's OpenAPI description and netlify-cli's
client, not from ``fake_netlify.py``); this module only launches it on 127.0.0.1 and reads
its benchmark counters::

    with start("token") as netlify:
        ...  # NETLIFY_API_URL=netlify.api_url, NETLIFY_AUTH_TOKEN=netlify.token
        netlify.stats()["uploads"]
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

SCRIPT = Path(__file__).with_name("independent_netlify.mjs")
API_PREFIX = "/api/v1"
#: How long the server may take to print its ``listening`` line.
STARTUP_TIMEOUT = 15.0


class IndependentNetlify:
    """A running server: its address, token, counters, and how to stop it."""

    def __init__(self, process: subprocess.Popen[bytes], base: str, token: str, log: IO[bytes]):
        self.process = process
        self.base = base
        self.api_url = base + API_PREFIX
        self.token = token
        self._log = log

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """Requests received since start or the last reset: ``requests``, ``uploads``,
        ``upload_bytes`` and ``by_route`` ("PUT /deploys/{deploy_id}/files/{path}": n, ...)."""
        stats: dict[str, Any] = self._call("GET", "/__stats")
        return stats

    def routes(self) -> list[tuple[str, str]]:
        """The (method, path template) pairs the server answers under ``/api/v1``."""
        return [(method, template) for method, template in self._call("GET", "/__routes")]

    def reset(self) -> None:
        """Forget every site, deploy and file body, and zero the counters."""
        self._call("POST", "/__reset")

    def stop(self) -> None:
        """Terminate the server and reap it (no zombie is left behind)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> IndependentNetlify:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node is not on PATH: it is needed to run {SCRIPT.name}")
    return node


def _read_listening_line(process: subprocess.Popen[bytes], log: IO[bytes]) -> str:
    """The base URL from the server's first line, or a RuntimeError with what it said."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(left, 0))
        chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
        if not chunk:  # timed out, or the process closed stdout (it exited)
            break
        line += chunk
    words = line.decode(errors="replace").split()
    if len(words) == 2 and words[0] == "listening":
        return words[1]
    process.kill()
    process.wait()  # before reading the log: all of stderr is in
    log.seek(0)
    stderr = log.read().decode(errors="replace").strip()
    raise RuntimeError(f"{SCRIPT.name} did not start: stdout {line!r}, stderr {stderr[-2000:]!r}")


def start(token: str, ready_delay_ms: int = 0) -> IndependentNetlify:
    """Start the server on a free port of 127.0.0.1; it answers once this returns."""
    command = [
        _node(),
        str(SCRIPT),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        token,
        "--ready-delay-ms",
        str(ready_delay_ms),
    ]
    # stderr goes to a file: nobody reads a pipe while the server runs, and a full pipe blocks.
    # The file lives as long as the server (IndependentNetlify.stop closes it).
    log = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
    )
    try:
        base = _read_listening_line(process, log)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        if process.stdout is not None:
            process.stdout.close()
        raise
    return IndependentNetlify(process, base, token, log)
