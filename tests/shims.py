"""Real child processes bent for a test: a ``tar`` that misbehaves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def tar_shim(directory: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put a ``tar`` first on PATH that runs the shell ``body`` (``$TAR`` is the real tar)."""
    real = shutil.which("tar")
    assert real, "tar is needed on PATH"
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "tar"
    script.write_text(f'#!/bin/sh\nTAR="{real}"\n{body}\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
