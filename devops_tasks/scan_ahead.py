"""The build's scan, started in a process of its own before the program has loaded.

Loading Invoke, the tasks and a target's client keeps one core busy for a few tenths of a
second; walking and hashing the build takes as long again and needs none of it. So
``devops deploy`` (:mod:`devops_tasks.early`) starts a child interpreter first thing, which
loads the scan's code while this process reads the settings, then tells it what to scan: the
scan runs on the other core while the program loads. The deploy takes the result only if it
asks for exactly that scan (:class:`ScanRequest`: the same directory, ignore rule,
exclusions, digests and hash cache); otherwise, or if the child failed in any way, it scans
itself, and says why the scan failed if it does. Either way it deploys what one scan saw.

The child runs isolated (``python -I``: no user site, not the current directory on its
path) with no environment but the locale (no secret, no credential), reads its request on
stdin and writes frames on stdout: the scan's progress as it goes, then the files. It writes
nothing anywhere else but the hash cache, as the scan would here.
"""

from __future__ import annotations

import atexit
import marshal
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .files import IgnoreRule, SiteFiles
    from .output import Progress
    from .platforms import Platform
    from .project import Project

__all__ = ["ScanRequest", "ask", "scan", "scan_request", "start", "take"]

#: A frame: its length, then a marshalled tuple whose first item says what it is.
_LENGTH = struct.Struct("!I")
#: The package's parent directory: the child imports this very code, wherever it came from.
_HOME = str(Path(__file__).resolve().parent.parent)
#: The frames that replay the scan's progress (see :class:`_Relay`).
_PROGRESS = frozenset({"start", "advance", "finish"})
#: A hash cache smaller than this (about 1,000 files) means a build scanned here faster
#: than a child interpreter starts.
_WORTH_A_CHILD = 120_000
#: All the child's environment holds: what decides how it decodes file names.
_LOCALE = frozenset({"LANG", "LC_ALL", "LC_CTYPE"})
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from devops_tasks.scan_ahead import main; main()"
)


class ScanRequest(NamedTuple):
    """Everything a scan's result depends on (see :meth:`SiteFiles.scan`)."""

    root: str
    #: The ignore rule, as ``module:name`` of a module-level function.
    ignore: str
    exclude: tuple[str, ...]
    digests: tuple[str, ...]
    #: The hash cache's file; None: ``--no-cache``.
    cache: str | None


def scan_request(project: Project, platform: Platform, build_dir: Path, cache: bool) -> ScanRequest:
    """What a deploy of ``build_dir`` to ``platform`` scans: without the project's own state
    and the target's, hashed for the target, with the project's hash cache if ``cache``."""
    ignore = platform.ignore
    return ScanRequest(
        str(build_dir.resolve()),
        f"{ignore.__module__}:{ignore.__qualname__}",
        tuple(str(path) for path in (project.state_dir, *platform.own_paths())),
        tuple(platform.digest_algorithms),
        str(project.cache_dir / "digests") if cache else None,
    )


def scan(request: ScanRequest, ignore: IgnoreRule, progress: Progress) -> SiteFiles:
    """The scan ``request`` names, here (``ignore``: the function it names)."""
    from .files import SiteFiles  # noqa: PLC0415
    from .hash_cache import HashCache  # noqa: PLC0415

    root = Path(request.root)
    return SiteFiles.scan(
        root,
        ignore,
        exclude=[Path(path) for path in request.exclude],
        digests=request.digests,
        cache=None if request.cache is None else HashCache(Path(request.cache), root),
        progress=progress,
    )


def _smaller_than(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size < size
    except OSError:
        return False  # no cache: nothing says the build is small


class _Child:
    """A child started ahead, and what it was asked to scan (None: nothing yet)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.request: ScanRequest | None = None


_started: list[_Child] = []


def start(cache: Path | None) -> None:
    """Start a child that loads the scan's code while this process reads the settings, for
    :func:`ask` to tell it what to scan; unless the hash cache (``cache``; None:
    ``--no-cache``) says the build is small: a child would start for longer than the scan
    takes here."""
    if cache is not None and _smaller_than(cache, _WORTH_A_CHILD):
        return
    # The locale and UTF-8 mode as here: file names decode as they do in this process.
    utf8 = ["-X", "utf8"] if sys.flags.utf8_mode else []
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", *utf8, "-c", _CHILD, _HOME],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k in _LOCALE},
        )
    except OSError:
        return  # no process to spare (limits, memory): the deploy scans, as it would
    _started.append(_Child(process))


def ask(request: ScanRequest) -> None:
    """Tell the child :func:`start` started (if it did) to scan what ``request`` names."""
    if not _started or _started[-1].request is not None:
        return
    child = _started[-1]
    child.request = request
    assert child.process.stdin is not None
    with child.process.stdin:
        child.process.stdin.write(marshal.dumps(tuple(request)))


def take(request: ScanRequest, progress: Progress) -> SiteFiles | None:
    """The files the child started for ``request`` found; None if none was started for it,
    or it failed (the caller then scans, and meets the same problem if there is one)."""
    if not _started:
        return None
    child = _started.pop()
    try:
        if child.request != request:
            return None
        assert child.process.stdout is not None
        return _result(child.process.stdout, progress, Path(request.root))
    except (OSError, EOFError, ValueError, TypeError, struct.error):
        return None
    finally:
        _stop(child.process)


def _result(stream: IO[bytes], progress: Progress, root: Path) -> SiteFiles | None:
    """Replay the child's progress on ``progress`` until its last frame: the files."""
    from .files import SiteFiles  # noqa: PLC0415

    while True:
        frame = _read_frame(stream)
        kind, arguments = frame[0], frame[1:]
        if kind == "files":
            return SiteFiles.restored(root, *arguments)
        if kind == "failed":
            return None
        if kind not in _PROGRESS:
            raise ValueError(f"not a frame: {kind!r}")
        getattr(progress, kind)(*arguments)


def _read_frame(stream: IO[bytes]) -> tuple[Any, ...]:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError
    frame = marshal.loads(body)
    if not isinstance(frame, tuple) or not frame:
        raise ValueError("not a frame")
    return frame


def _stop(child: subprocess.Popen[bytes]) -> None:
    """End ``child`` (done, or not wanted any more) and reap it."""
    if child.poll() is None:
        child.kill()
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    child.wait()


@atexit.register
def _stop_all() -> None:
    """A scan nobody took (the command failed before it asked) ends with this process."""
    while _started:
        _stop(_started.pop().process)


# -- in the child ---------------------------------------------------------------------------


class _Relay:
    """The scan's progress, sent to the parent as frames (the scan reports from threads)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, *frame: Any) -> None:
        body = marshal.dumps(frame)
        with self._lock:
            self._stream.write(_LENGTH.pack(len(body)) + body)
            self._stream.flush()

    def start(self, description: str, total: int) -> None:
        self.send("start", description, total)

    def advance(self, amount: int = 1) -> None:
        self.send("advance", amount)

    def finish(self) -> None:
        self.send("finish")


def main() -> None:
    """The child: scan what the request on stdin names, send the files on stdout."""
    import importlib  # noqa: PLC0415

    from . import files, hash_cache  # noqa: F401, PLC0415 - loaded while the parent decides

    asked = sys.stdin.buffer.read()
    if not asked:
        return  # not asked after all: the parent ended, or needs no scan
    request = ScanRequest(*marshal.loads(asked))
    relay = _Relay(sys.stdout.buffer)
    module, _, name = request.ignore.partition(":")
    try:
        found = scan(request, getattr(importlib.import_module(module), name), relay)
    except Exception:  # noqa: BLE001 - the parent scans again, and says what is wrong
        relay.send("failed")
    else:
        relay.send("files", *found.state())
