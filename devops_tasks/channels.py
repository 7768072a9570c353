"""Commands on a fabric ``Connection``'s raw channel: bytes in, bytes out, within a deadline.

fabric's ``run`` reads output 1,000 bytes at a time and joins everything read so far after
each read (to look for prompts to answer), and feeds stdin through text decoding: fine for
short commands, quadratic for a many-megabyte manifest, and wrong for a tar. The release
engine's bulk commands (what a host has, and the tar stream of a release) therefore run on a
channel of the same connection, through :func:`run_streamed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from .errors import DevopsError, ErrorCode

__all__ = ["Completed", "Ran", "run_streamed", "run_timed", "timed_out"]

#: Bytes asked of the channel at a time.
_CHUNK = 256 * 1024
#: What one command may print before the host is taken for hostile (a manifest and a
#: listing of a million files fit).
_MAX_OUTPUT = 512 << 20
#: How much of a command's stderr is kept for its error message.
_STDERR_KEPT = 64 * 1024
#: How often a wait on a command looks at its stderr and the deadline.
_POLL = 0.05


class Completed(NamedTuple):
    """How a command ended: its exit status, its output and the tail of its errors."""

    status: int
    stdout: bytes
    stderr: bytes


def run_streamed(
    connection: Any,
    command: str,
    stdin: Iterable[bytes | bytearray],
    timeout: float | None,
    what: str,
) -> Completed:
    """Run ``command`` with ``stdin`` streamed in; its exit status and output.

    Output is drained while stdin is sent, so a command that talks back never stalls on
    a full window. A command still running after ``timeout`` seconds is abandoned.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    channel = connection.create_session()
    try:
        channel.exec_command(command)
        # A failure to produce stdin propagates: closing the channel then ends the command.
        for chunk in stdin:
            _drain(channel, out, err)
            channel.settimeout(_left(deadline, what, timeout))
            try:
                # a view: paramiko's sendall slices what is left after each packet
                channel.sendall(memoryview(chunk))
            except TimeoutError:
                raise timed_out(what, timeout) from None
            except OSError:
                break  # it stopped reading (it failed): its exit status and stderr say why
        else:
            channel.shutdown_write()
        while True:  # stdout to its end, stderr alongside
            channel.settimeout(min(_POLL, _left(deadline, what, timeout) or _POLL))
            try:
                data = channel.recv(_CHUNK)
            except TimeoutError:
                data = None
            if data == b"":
                break
            out += data or b""
            _drain(channel, out, err)
            if len(out) > _MAX_OUTPUT:
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"Could not {what}: the host sent more than {_MAX_OUTPUT >> 20} MiB",
                    "Check what the host's shell prints at login and what is under its "
                    "deploy root, then run it again.",
                )
        while not channel.status_event.wait(_POLL):
            _drain(channel, out, err)
            _left(deadline, what, timeout)
        _drain(channel, out, err)
        return Completed(channel.recv_exit_status(), bytes(out), bytes(err))
    finally:
        channel.close()


def _drain(channel: Any, out: bytearray, err: bytearray) -> None:
    """Take what the channel already holds, without waiting; stderr keeps its tail only."""
    while channel.recv_ready():
        out += channel.recv(_CHUNK)
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(_CHUNK)
        del err[:-_STDERR_KEPT]


def _left(deadline: float | None, what: str, timeout: float | None) -> float | None:
    """Seconds until ``deadline`` (None: no deadline); raises once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out(what, timeout)
    return left


class Ran(NamedTuple):
    """A finished command as text, shaped like invoke's ``Result``."""

    stdout: str
    stderr: str
    exited: int

    @property
    def failed(self) -> bool:
        return self.exited != 0


def run_timed(connection: Any, command: str, what: str, timeout: float | None) -> Any:
    """``command``'s result, whatever its exit status; raises once it timed out.

    On a fabric ``Connection``, a raw channel (:func:`run_streamed`): fabric's ``run``
    starts three threads per command, which cost more than the command itself. Anything
    else (invoke's ``Context`` on this machine) is asked to ``run`` it.
    """
    if hasattr(connection, "create_session"):
        done = run_streamed(connection, command, (), timeout, what)
        return Ran(
            done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"), done.status
        )
    from invoke.exceptions import CommandTimedOut  # noqa: PLC0415

    try:
        return connection.run(command, hide=True, warn=True, in_stream=False, timeout=timeout)
    except CommandTimedOut:
        raise timed_out(what, timeout) from None


def timed_out(what: str, timeout: float | None) -> DevopsError:
    """The error for a command abandoned after ``timeout`` seconds, saying what it was."""
    return DevopsError(
        ErrorCode.DEPLOY_FAILED,
        f"Could not {what}: it was still running after {timeout:g} s, so it was abandoned",
        "Find out what it waits for on the host (a full disk, a hung mount, a command asking "
        "for input), or allow more time (ssh.command_timeout), then run it again.",
        timeout=timeout,
    )
