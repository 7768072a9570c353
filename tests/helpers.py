"""Helpers the tests import: results of CLI runs, sample sites, running devops in a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        """The single JSON object stdout must hold (fails the test if it holds anything else)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout, got: {self.stdout!r}"
        data = json.loads(lines[0])
        assert isinstance(data, dict) and isinstance(data["success"], bool)
        return data


def write_site(root: Path, version: str = "v1") -> Path:
    """A tiny static site under ``root`` (created if needed); returns ``root``."""
    (root / "css").mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(f"<h1>{version}</h1>\n", encoding="utf-8")
    (root / "css" / "site.css").write_text("body { margin: 0 }\n", encoding="utf-8")
    return root


def run_devops(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> CliResult:
    """Run the installed ``devops`` program in a new process (``stdin`` piped in, if given)."""
    completed = subprocess.run(
        [sys.executable, "-m", "devops_tasks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **({"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}),
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """End a server the tests started: politely, then for sure."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def commit_all(message: str = "work") -> None:
    """Commit everything in the current directory's git repository."""
    subprocess.run([*GIT, "add", "-A"], check=True)
    subprocess.run([*GIT, "commit", "--allow-empty", "-qm", message], check=True)


def local_project_in_git(cli: Any) -> None:
    """``devops init`` in the current directory, then a git repository with all of it committed."""
    assert cli("init", "--json").json["success"]
    subprocess.run([*GIT, "init", "-q"], check=True)
    commit_all()
