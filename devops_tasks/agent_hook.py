"""The Claude Code plugin's guard: an agent's production deploy waits for a clean tree and
passing checks.

Claude Code runs ``devops-agent-hook`` before every Bash command (``hooks/hooks.json``), with
the call as JSON on stdin. For a ``devops deploy`` or ``devops rollback`` (also
``python -m devops_tasks`` and ``invoke …deploy``) aimed at a protected environment
(``agent.protected_environments``, default production and prod), it answers "deny", saying
why, while the project's git tree has uncommitted changes, or, for a deploy, while a
``deployment.pre_deploy`` check fails — even with ``--skip-checks``, which stays a person's
choice. Anything else passes without a word. ``agent.guard: false`` switches it off.

The guard reads the command line as the shell would split it; it cannot see through
``eval`` or a script. The deploy's own checks (``CHECK_FAILED``) stay the enforcement.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context, ParseError
from invoke.parser import Parser, ParserContext

from .cli import DevopsConfig, program
from .commands import run_command, uncommitted_changes
from .config import ConfigStore
from .errors import DevopsError, ErrorCode
from .project import find_project
from .tasks import namespace

__all__ = ["Invocation", "invocations", "main", "refusal"]

#: Tasks the guard looks at: the first word of a task name (``deploy.ssh`` is a deploy).
GUARDED = ("deploy", "rollback")
DEFAULT_PROTECTED = ("production", "prod")
#: What the shell splits simple commands on, and the redirections it strips from them.
_OPERATORS = "();<>|&\n"
_WRAPPERS = {"sudo", "env", "time", "nohup", "exec", "command", "nice"}
_SHELLS = {"sh", "bash", "zsh", "dash"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_MAX_INPUT = 1 << 20
#: devops core flags that print something instead of running the tasks named.
_INSTEAD_OF_TASKS = ("help", "list", "version", "complete", "print-completion-script")


@dataclass(frozen=True)
class Invocation:
    """One guarded task a command line would run: which, where, and for which environment.

    ``environment`` is None when the command line does not name one (the default applies);
    ``unknown`` says why it cannot be told from the text (a ``$VAR``, a ``DEVOPS…=`` setting).
    """

    task: str
    cwd: Path
    environment: str | None
    unknown: str | None = None


def main() -> None:
    """Console-script entry point: the hook JSON on stdin, a decision (or nothing) on stdout."""
    try:
        call = json.loads(sys.stdin.read(_MAX_INPUT))
    except ValueError:
        return
    try:
        reason = refusal(call) if isinstance(call, dict) else None
    except Exception as exc:  # noqa: BLE001 - a guard that cannot check refuses
        why = exc.message if isinstance(exc, DevopsError) else type(exc).__name__
        reason = (
            f"devops-tasks guard could not check this command ({why}); "
            "a person can run it from their own terminal"
        )
    if reason:
        decision = {"hookEventName": "PreToolUse", "permissionDecision": "deny"}
        decision["permissionDecisionReason"] = reason
        print(json.dumps({"hookSpecificOutput": decision}))


def refusal(call: Mapping[str, Any]) -> str | None:
    """Why this tool call must not run, or None."""
    command = (call.get("tool_input") or {}).get("command")
    if call.get("tool_name") != "Bash" or not isinstance(command, str):
        return None
    if not any(word in command for word in GUARDED):
        return None
    cwd = Path(str(call.get("cwd") or os.getcwd()))
    for invocation in invocations(command, cwd):
        reason = _check(invocation)
        if reason:
            return f"devops-tasks guard: refused `{invocation.task}`: {reason}"
    return None


def invocations(command: str, cwd: Path) -> Iterator[Invocation]:
    """The guarded devops tasks ``command`` would run, following ``cd`` and ``sh -c``."""
    for words in _simple_commands(command):
        assigned: list[str] = []
        while words and (words[0] in _WRAPPERS or _ASSIGNMENT.match(words[0])):
            assigned.append(words[0].partition("=")[0])
            words = words[1:]
        if not words:
            continue
        program = os.path.basename(words[0])
        if program == "cd":
            cwd = cwd / os.path.expanduser(words[1]) if len(words) > 1 else Path.home()
        elif program in _SHELLS and "-c" in words[:-1]:
            yield from invocations(words[words.index("-c") + 1], cwd)
        elif program == "devops":
            yield from _devops(words[1:], cwd, assigned)
        elif program.startswith("python") and words[1:3] == ["-m", "devops_tasks"]:
            yield from _devops(words[3:], cwd, assigned)
        elif program in ("invoke", "inv"):
            yield from _mounted(words[1:], cwd, assigned)


def _simple_commands(command: str) -> Iterator[list[str]]:
    """The words of each simple command, as the shell splits them, redirections left out."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=_OPERATORS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell refuses it too
        return
    words: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token and set(token) <= set(_OPERATORS):
            if "<" in token or ">" in token:
                if words and words[-1].isdigit():  # the 2 of 2>&1
                    words.pop()
                skip = True  # the file (or descriptor) it redirects to
            else:
                yield words
                words = []
        else:
            words.append(token)
    yield words


def _devops(args: list[str], cwd: Path, assigned: list[str]) -> Iterator[Invocation]:
    """The guarded tasks of ``devops ARGS``, parsed as the program parses them."""
    parser = Parser(
        initial=ParserContext(args=program.core_args()), contexts=namespace.to_contexts()
    )
    try:
        core, *tasks = parser.parse_argv(args)
    except ParseError:
        return  # devops refuses this command line itself: nothing runs
    if any(core.args[flag].value for flag in _INSTEAD_OF_TASKS):
        return  # help, a list or the version is printed instead
    for context in tasks:
        name = str(context.name)
        dry = "dry-run" in context.args and context.args["dry-run"].value
        if name.split(".")[0] in GUARDED and not dry:
            given = context.args["env"].value or core.args["env"].value
            yield _invocation(name.split(".")[0], cwd, given, assigned)


def _mounted(args: list[str], cwd: Path, assigned: list[str]) -> Iterator[Invocation]:
    """``invoke ops.deploy --env E``: the collection mounted under any name in a tasks.py."""
    for index, word in enumerate(args):
        guarded = [part for part in word.split(".") if part in GUARDED]
        if guarded and not word.startswith("-"):
            yield _invocation(guarded[0], cwd, _env_flag(args[index + 1 :]), assigned)


def _env_flag(words: list[str]) -> str | None:
    """The value of the last ``--env E``, ``--env=E`` or ``-e E`` among ``words``."""
    found = None
    for index, word in enumerate(words):
        if word.startswith("--env="):
            found = word.partition("=")[2]
        elif word in ("--env", "-e") and index + 1 < len(words):
            found = words[index + 1]
    return found


def _invocation(task: str, cwd: Path, given: str | None, assigned: list[str]) -> Invocation:
    unknown = None
    if given and any(char in given for char in "$`*?["):
        unknown = f"the environment {given!r} is only known when the shell expands it"
    elif any(name.startswith("DEVOPS") for name in assigned):
        unknown = "DEVOPS… settings given on the command line are not checked by the guard"
    return Invocation(task, cwd, None if unknown else given, unknown)


def _check(invocation: Invocation) -> str | None:
    """Why ``invocation`` must not run now, or None."""
    project = find_project(invocation.cwd)
    try:
        settings = ConfigStore(project).settings(
            invocation.environment or _program_env(project.root)
        )
    except DevopsError:
        return None  # devops refuses a broken config itself: nothing runs
    if settings.get("agent.guard") is False:
        return None
    protected = settings.get("agent.protected_environments", DEFAULT_PROTECTED)
    if settings.environment not in protected and not invocation.unknown:
        return None
    target = invocation.unknown or f"{settings.environment} is a protected environment"
    changed = uncommitted_changes(project)
    if changed:
        shown = ", ".join(line.strip() for line in changed[:3])
        return (
            f"{target} and the git tree has {len(changed)} uncommitted change(s) ({shown}). "
            "Commit them (or let a person run the command from their own terminal)."
        )
    if invocation.task != "deploy":
        return None  # a rollback ships no new code: the checks of today's tree do not apply
    for check in settings.get("deployment.pre_deploy") or []:
        try:
            run_command(
                Context(),
                check,
                cwd=str(project.root),
                code=ErrorCode.CHECK_FAILED,
                json_mode=True,
            )
        except DevopsError as failed:
            status = failed.details.get("exit_status")
            return (
                f"{target} and its pre-deploy check `{check}` failed (exit status {status}). "
                "Fix what it reports, then deploy; --skip-checks does not get past this guard."
            )
    return None


def _program_env(root: Path) -> str | None:
    """``devops.env`` as the devops program would see it (devops.yaml, DEVOPS_ENV)."""
    config = DevopsConfig(project_location=root)
    config.load_collection(namespace.configuration())
    config.load_project()
    config.load_shell_env()
    return (config.get("devops") or {}).get("env")


if __name__ == "__main__":
    main()
