"""Everything a command prints: one JSON object for programs, or short text for people.

With ``--json`` stdout carries exactly one object, ``{"success": true, ...}`` or
``{"success": false, "error", "code", "fix"}``, and nothing else: progress and build output
go to stderr or nowhere. Without it, output is for people: aligned, coloured only on a
terminal (``NO_COLOR`` is honoured), with progress bars only when stdout is a terminal.
Secret values are masked on every way out (:mod:`devops_tasks.redaction`): free text as it is
written (steps, warnings, failures), and a result's data once, before it becomes JSON or
reaches a human view — which is why :meth:`Output.line`, :meth:`Output.fields` and
:meth:`Output.table`, the views' own tools, print what they are given.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, ClassVar, Protocol

from .errors import DevopsError, ErrorCode, describe_problem
from .redaction import redact, redact_data

__all__ = ["HumanView", "NullProgress", "Output", "Progress"]

HumanView = Callable[[Mapping[str, Any], "Output"], None]


class Progress(Protocol):
    """How long work reports itself; the engine never knows whether anyone is watching."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Progress for nobody: JSON mode, pipes, CI logs."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class _BarProgress:
    """A rich progress bar on the terminal, started lazily for each phase."""

    # Bars on screen now: a failure clears them before it prints (one terminal, one screen).
    _live: ClassVar[set[_BarProgress]] = set()

    def __init__(self, console: Any) -> None:
        self._console = console
        self._bar: Any = None
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        from rich.progress import Progress as RichProgress  # noqa: PLC0415

        self.finish()
        self._live.add(self)  # first: a Ctrl-C can land the moment the bar shows
        self._bar = RichProgress(console=self._console, transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total or None)

    def advance(self, amount: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._live.discard(self)

    @classmethod
    def clear_all(cls) -> bool:
        """Erase every bar still on screen; True if there was one (the cursor is then at the
        start of an empty line)."""
        live = list(cls._live)
        for bar in live:
            bar.finish()
        return bool(live)


class Output:
    """Where a command's results, steps and failures go, in JSON or for people."""

    def __init__(
        self, json_mode: bool = False, stdout: IO[str] | None = None, stderr: IO[str] | None = None
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._console: Any = None

    @property
    def is_terminal(self) -> bool:
        return bool(getattr(self.stdout, "isatty", lambda: False)())

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console  # noqa: PLC0415 - rich costs ~40 ms; --list never pays it

            # Off a terminal nobody resizes the window: never truncate ids in a pipe or log.
            width = None if self.is_terminal else 200
            self._console = Console(file=self.stdout, highlight=False, soft_wrap=True, width=width)
        return self._console

    # -- for people ------------------------------------------------------------------------

    def step(self, message: str) -> None:
        """A line about work in progress; silent in JSON mode."""
        if not self.json_mode:
            self.console.print(f"[dim]•[/dim] {_escape(redact(message))}")

    def line(self, text: str = "", style: str | None = None) -> None:
        self.console.print(_escape(text), style=style)

    def raw(self, text: str) -> None:
        """Text exactly as given (masked unless Revealed): for output meant for other programs."""
        self.stdout.write(redact(text))
        self.stdout.flush()

    def warn(self, text: str) -> None:
        """A warning for people, on stderr (also in JSON mode: stdout stays one object)."""
        self.stderr.write(redact(f"warning: {text}\n"))

    def fields(self, values: Mapping[str, Any]) -> None:
        """``key  value`` lines, keys aligned, ``None`` values left out."""
        shown = {k: v for k, v in values.items() if v is not None}
        width = max((len(k) for k in shown), default=0)
        for key, value in shown.items():
            self.console.print(f"[bold]{key.ljust(width)}[/bold]  {_escape(str(value))}")

    def table(self, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
        from rich.table import Table  # noqa: PLC0415

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(
                *(_escape("" if row.get(c) is None else str(row.get(c))) for c in columns)
            )
        self.console.print(table)

    def progress(self) -> Progress:
        """A progress bar when a person watches a terminal, otherwise nothing."""
        if self.json_mode or not self.is_terminal:
            return NullProgress()
        return _BarProgress(self.console)

    # -- results ---------------------------------------------------------------------------

    def success(self, payload: Mapping[str, Any], human: HumanView | None = None) -> None:
        """Report a command's result: the JSON object, or the human view of it."""
        if self.json_mode:
            self._json({"success": True, **payload})
            return
        masked = redact_data(dict(payload))
        if human is not None:
            human(masked, self)
        else:
            self.fields({k: v for k, v in masked.items() if not isinstance(v, (dict, list))})

    def failure(self, error: DevopsError, debug: bool = False) -> None:
        """Report a failure: the JSON object, or the message and fix on stderr.

        A progress bar still on screen (the work was interrupted) is cleared first, and a
        Ctrl-C the terminal echoed without one is left on its own line.
        """
        cleared = _BarProgress.clear_all()
        interrupted = error.code is ErrorCode.INTERRUPTED
        if interrupted and not cleared and getattr(self.stderr, "isatty", lambda: False)():
            self.stderr.write("\n")
        if debug:
            self.stderr.write(redact("".join(traceback.format_exception(error))))
        if self.json_mode:
            self._json({"success": False, **error.to_dict()})
            return
        self.stderr.write(f"Error [{error.code.value}]: {redact(error.message)}\n")
        problems = error.details.get("problems", [])
        listed = problems if len(problems) > 1 else []
        for problem in listed:
            self.stderr.write(redact(f"  - {describe_problem(problem)}\n"))
        if not listed or not all(p.get("fix") for p in listed):  # else each line has its fix
            self.stderr.write(redact(f"Fix: {error.fix}\n"))

    def _json(self, data: Mapping[str, Any]) -> None:
        # Every free-text string is masked on its own, so a value the user asked to see
        # (Revealed) is the only one that can come through; keys and product fields stay.
        text = json.dumps(redact_data(data), ensure_ascii=False, default=lambda o: redact(str(o)))
        self.stdout.write(text + "\n")
        self.stdout.flush()


def _escape(text: str) -> str:
    """Text shown literally by rich, even when it contains ``[brackets]``."""
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)
