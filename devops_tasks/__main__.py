"""``python -m devops_tasks`` and the ``devops`` script: the ``devops`` program."""

import atexit
import contextlib
import os
import sys

from . import early


def main() -> None:
    """Start what a deploy reads first, then load the program and run it."""
    early.start(sys.argv[1:])
    from .cli import main as run  # noqa: PLC0415 - loaded while those reads run

    try:
        run()
    except SystemExit as exit_:
        _leave(exit_.code)
    _leave(0)


def _leave(code: object) -> None:
    """Exit with ``code`` as ``sys.exit`` would, without the interpreter's teardown.

    The exit handlers run and the output is flushed; then the kernel frees in one go what
    the interpreter would free object by object (every module, the scan, the manifests:
    28-40 ms after a deploy's answer, against 9 ms). Nothing of the program
    runs in a thread by then: its thread pools are closed, and its other threads are
    daemons.
    """
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # as the interpreter's exit runs them (temporary files, coverage)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (`devops ... | head`)
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
