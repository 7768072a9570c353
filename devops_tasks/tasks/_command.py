"""The decorator that makes a plain function a devops task with the output contract.

Each task body is ``body(c, out, ...)``: it parses, calls the library and returns a dict.
This wrapper adds ``--json`` and ``--debug`` to every task, turns the dict into one JSON
object or a human view, and turns every failure into ``{"success": false, ...}`` with exit
status 1. Tracebacks appear only with ``--debug``, and then with secret values masked.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from invoke import Exit, task

from ..errors import DevopsError, ErrorCode
from ..output import HumanView, Output

__all__ = ["command", "option"]

_EXTRA_HELP = {
    "json": "Print exactly one JSON object on stdout (for scripts and agents).",
    "debug": "On failure, also print the traceback (secret values stay masked).",
}


def option(c: Any, name: str, given: Any = None) -> Any:
    """A command-line value if given, else ``devops.<name>`` from invoke's config."""
    if given not in (None, ""):
        return given
    devops = c.config.get("devops") or {}
    return devops.get(name)


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
            out = Output(json_mode=bool(json or option(c, "json")))
            try:
                payload = body(c, out, *args, **kwargs)
            except DevopsError as error:
                out.failure(error, debug)
                raise Exit(code=1) from None
            except KeyboardInterrupt:
                out.failure(
                    DevopsError(
                        ErrorCode.INTERRUPTED,
                        "Interrupted",
                        "Run `devops status` to see where things stand.",
                    ),
                    debug,
                )
                raise Exit(code=1) from None
            except Exception as exc:  # noqa: BLE001 - the contract: never a bare traceback
                internal = DevopsError(
                    ErrorCode.INTERNAL_ERROR,
                    f"Unexpected {type(exc).__name__}: {exc}",
                    "Run again with --debug and report the traceback if it looks like a bug.",
                )
                internal.__traceback__ = exc.__traceback__
                out.failure(internal, debug)
                raise Exit(code=1) from None
            out.success(payload, human)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[context_param, *params, *extra]
        )
        help_text = {**_EXTRA_HELP, **task_options.pop("help", {})}
        return task(wrapper, help=help_text, **task_options)

    return decorate
