"""The decorator that makes a plain function a devops task with the output contract.

Each task body is ``body(c, out, ...)``: it parses, calls the library and returns a dict.
This wrapper adds ``--json`` and ``--debug`` to every task, turns the dict into one JSON
object or a human view, and turns every failure into ``{"success": false, ...}`` with exit
status 1. Tracebacks appear only with ``--debug``, and then with secret values masked.
"""

from __future__ import annotations

import errno
import functools
import inspect
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from invoke import Exit, Task, task

from ..errors import DevopsError, ErrorCode, os_failure, printable
from ..ids import check_environment
from ..output import HumanView, Output

__all__ = [
    "SHORT_FLAGS",
    "DevopsTask",
    "as_failure",
    "command",
    "option",
    "printable_data",
    "reader_gone",
    "tolerate_unencodable_output",
]

#: The one short form of each flag, the same on every task (and, for --env, --json and
#: --debug, before the task too): invoke would pick letters task by task, so ``-d`` was
#: --dir on one task and --debug on the next. A flag that destroys, reveals or makes
#: public (--force, --yes, --show, --value, --public, --force-deletes) has no short form,
#: nor has a positional argument; a flag not listed here has none either.
SHORT_FLAGS = {
    "env": "e",
    "json": "j",
    "debug": "d",
    "build": "b",
    "command": "c",
    "follow": "f",
    "id": "i",
    "limit": "l",
    "lines": "n",
    "message": "m",
    "output": "o",
    "platform": "p",
    "remote": "r",
    "status": "s",
    "to": "t",
    "wait": "w",
}

_EXTRA_HELP = {
    "json": "Print exactly one JSON object on stdout (for scripts and agents).",
    "debug": "On failure, also print the traceback (secret values stay masked).",
}


class DevopsTask(Task):
    """An invoke task whose short flags come from :data:`SHORT_FLAGS`, never guessed."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short is not None and name not in self.positional:
            opts["names"] = [*opts["names"], short]
        return opts


def option(c: Any, name: str, given: Any = None) -> Any:
    """A command-line value if given, else ``devops.<name>`` from invoke's config."""
    if given not in (None, ""):
        return given
    devops = c.config.get("devops") or {}
    return devops.get(name)


def tolerate_unencodable_output() -> None:
    """Let stdout and stderr escape what they cannot encode instead of raising mid-answer.

    A lone surrogate (from a file name that is not UTF-8) or a ``•`` on an ASCII-only
    terminal would otherwise turn a finished command into a traceback.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def reader_gone() -> None:
    """stdout's reader has left (``devops history | head``): nothing more can be said.

    stdout then points at /dev/null, or Python would fail again flushing it at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def printable_data(data: Any) -> Any:
    """JSON-like ``data`` that any output can carry: names that are not UTF-8 escaped
    (``\\xff``), NaN and Infinity as null (JSON has no such numbers)."""
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {printable_data(key): printable_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [printable_data(value) for value in data]
    return data


def _is_os_error(exc: BaseException) -> bool:
    # pathlib before Python 3.13 reports a link loop as RuntimeError("Symlink loop from ...")
    return isinstance(exc, OSError) or (
        isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from ")
    )


def _as_os_error(exc: BaseException) -> OSError:
    if isinstance(exc, OSError):
        return exc
    looping = str(exc).removeprefix("Symlink loop from ").strip("'")
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), looping)


def as_failure(exc: BaseException) -> DevopsError:
    """Any exception as the one error a user sees: specific when the environment caused it.

    The original traceback stays attached, for ``--debug``.
    """
    if isinstance(exc, DevopsError):
        error = exc
    elif isinstance(exc, RecursionError):
        # Only data read from a file nests without bound: a config or a state file.
        error = DevopsError(
            ErrorCode.CONFIG_INVALID,
            "A configuration or state file is nested too deeply to be read",
            "Check .devops/config.json and any devops.yaml for runaway nesting, and fix it.",
        )
    elif isinstance(exc, KeyboardInterrupt):
        error = DevopsError(
            ErrorCode.INTERRUPTED, "Interrupted", "Run `devops status` to see where things stand."
        )
    else:
        error = (os_failure(_as_os_error(exc)) if _is_os_error(exc) else None) or DevopsError(
            ErrorCode.INTERNAL_ERROR,
            f"Unexpected {type(exc).__name__}: {exc}",
            "Run again with --debug and report the traceback if it looks like a bug.",
        )
    shown = DevopsError(
        error.code, printable(error.message), printable(error.fix), **printable_data(error.details)
    )
    shown.__traceback__ = exc.__traceback__
    return shown


def command(human: HumanView | None = None, **task_options: Any) -> Callable[..., Any]:
    """``@command(human=view, help={...})``: an invoke task that honours the output contract."""

    def decorate(body: Callable[..., dict[str, Any]]) -> Any:
        signature = inspect.signature(body)
        context_param, _out, *params = signature.parameters.values()
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False)
            for name in ("json", "debug")
        ]

        @functools.wraps(body)
        def wrapper(
            c: Any, *args: Any, json: bool = False, debug: bool = False, **kwargs: Any
        ) -> None:
            tolerate_unencodable_output()
            debug = bool(debug or option(c, "debug"))
            out = Output(json_mode=bool(json or option(c, "json")))
            try:
                if kwargs.get("env") is not None:
                    check_environment(kwargs["env"], "--env")
                elif option(c, "env"):
                    check_environment(option(c, "env"), "devops.env")
                payload = body(c, out, *args, **kwargs)
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the contract
                out.failure(as_failure(exc), debug)
                raise Exit(code=1) from None
            try:
                out.success(printable_data(payload), human)
            except BrokenPipeError:
                reader_gone()
                raise Exit(code=1) from None

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[context_param, *params, *extra]
        )
        help_text = {**_EXTRA_HELP, **task_options.pop("help", {})}
        return task(
            wrapper, help=help_text, klass=DevopsTask, auto_shortflags=False, **task_options
        )

    return decorate
