"""One gcp-storage-emulator (Google Cloud Storage) per test session, on 127.0.0.1.

Tests reach it over HTTP like they would reach GCS, with anonymous credentials. It keeps
everything in memory; ``reset`` wipes it between tests. It answers on the JSON API's paths
and logs every request line (with its query string) to the server's log, which lets a test
see what a client asked for where the emulator does not act on it (preconditions).

Known gaps, each pinned by a test in ``test_object_stores.py``: no preconditions
(``ifGenerationMatch`` is ignored), no pagination (``maxResults`` is ignored), a rewrite keeps
the source's metadata, and a PATCH cannot clear a field. It slows down past a few hundred
objects: keep GCS tests small.
"""

from __future__ import annotations

import sys
import urllib.request

import local_server

__all__ = ["reset", "start"]


def start() -> local_server.LocalServer:
    """Start the emulator and wait until it answers; raises (never skips) if it cannot."""
    try:
        import gcp_storage_emulator  # noqa: F401  (a clear error before spawning anything)
    except ImportError as exc:
        raise RuntimeError(
            f"gcp-storage-emulator is not installed in {sys.executable}: pip install -e '.[test]'"
        ) from exc
    return local_server.start(
        "gcp-storage-emulator",
        lambda port: [
            # The same interpreter (so the same venv) as the tests; no shell, no PATH lookup.
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ],
    )


def reset(url: str) -> None:
    """Forget every bucket and object (between tests)."""
    with urllib.request.urlopen(f"{url}/wipe", timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"wiping the GCS emulator at {url} answered HTTP {response.status}")
