"""Running the user's own shell commands: the build, pre-deploy checks and ``secrets.exec``.

Output streams live to the person watching (in JSON mode to stderr, so stdout keeps its one
object), with known secret values masked. The exit status is respected: a failing command
stops the deploy.
"""

from __future__ import annotations

import codecs
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from invoke.runners import Local

from .child_env import child_environment
from .errors import DevopsError, ErrorCode
from .redaction import RedactingStream, redact_tail

if TYPE_CHECKING:
    from .project import Project

__all__ = [
    "OUTPUT_TAIL_CHARS",
    "require_clean_git",
    "run_command",
    "uncommitted_changes",
]

#: How much of a failed command's output its error keeps (``output_tail``): the last 500
#: characters, after masking, so that the failure stays one small answer (README: JSON budget).
OUTPUT_TAIL_CHARS = 500


class _StreamDecoding(Local):
    """invoke's local runner, reading a command's output the way masking needs it.

    * Decoded as UTF-8 (what secrets are made of, whatever ``run.encoding`` says), as a
      stream: invoke decodes every 1,000-byte read on its own, so a character split between
      two reads would turn into replacement characters, and a secret holding it would no
      longer look like itself.
    * Never re-scanned: invoke joins the whole captured output on every read to look for
      prompts to answer (watchers, which these commands do not have), which makes a 20 MB
      build log take a minute.
    """

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.encoding = "utf-8"

    def read_proc_output(self, reader: Callable[[int], bytes]) -> Generator[str, None, None]:
        decoder = codecs.getincrementaldecoder(self.encoding)("replace")
        while data := reader(self.read_chunk_size):
            text = decoder.decode(data)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def respond(self, buffer_: list[str]) -> None:
        """No watchers, nothing to answer: skip invoke's join of the whole output."""


def run_command(
    context: Any,
    command: str,
    *,
    cwd: str,
    code: ErrorCode,
    json_mode: bool,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Run ``command`` in ``cwd`` through invoke, output streamed and masked; returns the result.

    A non-zero exit raises ``code`` with the exit status and the tail of the output.
    """
    out_stream = RedactingStream(sys.stderr if json_mode else sys.stdout)
    err_stream = RedactingStream(sys.stderr)
    try:
        result: Any = _StreamDecoding(context).run(
            f"cd {shlex.quote(cwd)} && {command}",
            dry=False,
            echo=False,
            warn=True,
            pty=False,
            in_stream=False,
            env=child_environment(env),
            replace_env=True,
            out_stream=out_stream,
            err_stream=err_stream,
        )
    finally:
        out_stream.close()
        err_stream.close()
    if result.exited == -signal.SIGINT:  # Ctrl-C reached the command (and us) first
        raise KeyboardInterrupt
    if result.failed:
        output = redact_tail((result.stdout or "") + (result.stderr or ""), OUTPUT_TAIL_CHARS)
        raise DevopsError(
            code,
            f"`{command}` failed with exit status {result.exited}",
            "Run the command yourself to see the whole output, fix it, then try again.",
            exit_status=result.exited,
            output_tail=output,
        )
    return result


def require_clean_git(project: Project) -> None:
    """Refuse to deploy uncommitted work, so every release maps to a commit."""
    changed = uncommitted_changes(project)
    if changed is None:
        raise DevopsError(
            ErrorCode.CHECK_FAILED,
            "deployment.require_clean_git is set but the project is not a git repository",
            "Run `git init` and commit, or set deployment.require_clean_git to false.",
        )
    if changed:
        raise DevopsError(
            ErrorCode.CHECK_FAILED,
            f"The working tree has {len(changed)} uncommitted change(s)",
            "Commit or stash them, or set deployment.require_clean_git to false.",
        )


def uncommitted_changes(project: Project) -> list[str] | None:
    """``git status`` lines of the whole work tree, None outside a repository.

    The deployment records devops writes itself (``.devops/deployments/``) do not count:
    every deploy adds one, so they would make the next deploy's tree dirty. Nor does
    ``.devops/cache/`` (the scan writes the hash cache before the checks): it can be
    recomputed at any time.
    """
    try:
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=all",
                "--",
                ":/",
                ":(exclude).devops/deployments",
                ":(exclude).devops/cache",
            ],
            cwd=project.root,
            capture_output=True,
            text=True,
            check=False,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise DevopsError(
            ErrorCode.CHECK_FAILED,
            f"git could not run to look for uncommitted changes: {exc.strerror}",
            "Install git, or set deployment.require_clean_git to false.",
        ) from None
    if status.returncode != 0:
        return None
    return status.stdout.splitlines()
