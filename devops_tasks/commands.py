"""Running the project's own shell commands: the build and pre-deploy checks.

Output streams live to the person watching; in JSON mode it goes to stderr so stdout keeps
its one object. The exit status is respected: a failing command stops the deploy.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from .errors import DevopsError, ErrorCode
from .project import Project

__all__ = ["run_project_command", "require_clean_git"]

_TAIL_CHARS = 2000


def run_project_command(
    context: Any, project: Project, command: str, *, code: ErrorCode, json_mode: bool
) -> str:
    """Run ``command`` in the project root through invoke; returns the tail of its output."""
    with context.cd(str(project.root)):
        result = context.run(
            command,
            warn=True,
            pty=False,
            in_stream=False,
            out_stream=sys.stderr if json_mode else None,
        )
    output = ((result.stdout or "") + (result.stderr or ""))[-_TAIL_CHARS:]
    if result.failed:
        raise DevopsError(
            code,
            f"`{command}` failed with exit status {result.exited}",
            "Run the command yourself to see the whole output, fix it, then try again.",
            exit_status=result.exited,
            output_tail=output,
        )
    return output


def require_clean_git(project: Project) -> None:
    """Refuse to deploy uncommitted work, so every release maps to a commit."""
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project.root, capture_output=True, text=True,
        check=False,
    )
    if status.returncode != 0:
        raise DevopsError(
            ErrorCode.CHECK_FAILED,
            "deployment.require_clean_git is set but the project is not a git repository",
            "Run `git init` and commit, or set deployment.require_clean_git to false.",
        )
    if status.stdout.strip():
        changed = len(status.stdout.strip().splitlines())
        raise DevopsError(
            ErrorCode.CHECK_FAILED,
            f"The working tree has {changed} uncommitted change(s)",
            "Commit or stash them, or set deployment.require_clean_git to false.",
        )
