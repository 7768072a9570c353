"""Real child processes bent for a test: a ``tar`` that misbehaves, a run without privileges."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: Capabilities that let root read any file; without them, mode bits bind root too.
_READ_ANYTHING = "-dac_override,-dac_read_search"


def tar_shim(directory: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put a ``tar`` first on PATH that runs the shell ``body`` (``$TAR`` is the real tar)."""
    real = shutil.which("tar")
    assert real, "tar is needed on PATH"
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "tar"
    script.write_text(f'#!/bin/sh\nTAR="{real}"\n{body}\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")


def without_privileges(argv: list[str]) -> list[str]:
    """``argv`` run so that a mode-000 directory is unreadable to it, even when we are root.

    Root reads anything through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; ``setpriv``
    drops both from the bounding set, so the child is uid 0 bound by mode bits like anyone.
    """
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test unreadable files as root"
    return [setpriv, "--inh-caps", _READ_ANYTHING, "--bounding-set", _READ_ANYTHING, "--", *argv]
