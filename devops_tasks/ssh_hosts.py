"""SSH connections to hosts whose key is verified against a ``known_hosts`` file.

fabric's ``Connection`` trusts any host it has never seen (paramiko's ``AutoAddPolicy``), so a
deploy could hand a release, and the login it carries, to whoever answers on the address.
:func:`connect` checks the key the host offers against ``known_hosts`` the way
``ssh -o StrictHostKeyChecking=yes`` (``strict``) or ``=accept-new`` does: a changed key is
always refused; an unknown one is refused, or with ``accept-new`` trusted and pinned.

paramiko reads ``known_hosts`` (hashed ``|1|salt|hash`` names and ``[host]:port`` entries
included), and its ``MissingHostKeyPolicy`` hook does the checking: the client itself is
given no keys, so paramiko calls the hook for every host. Neither ``~/.ssh/config`` nor
fabric's config files are read: a connection goes exactly where its arguments say.
fabric and paramiko are imported inside the functions, so ``devops --list`` never loads them.

:func:`trust` is ``devops ssh.trust``: it asks a host for its keys in SSH handshakes (no login,
one per key type, as ``ssh-keyscan`` does) and pins them, never over a key that differs.
:class:`RemoteLines` reads a remote command's output line by line as it comes, bounded, for
``devops logs``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import shlex
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .durable import FileLock, atomic_write
from .errors import DevopsError, ErrorCode, os_failure

if TYPE_CHECKING:
    import fabric
    import paramiko

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "MAX_LINE_BYTES",
    "POLICIES",
    "HostKeyPolicy",
    "RemoteLines",
    "connect",
    "host_keys",
    "is_listed",
    "known_hosts_name",
    "trust",
]

HostKeyPolicy = Literal["strict", "accept-new"]
POLICIES: tuple[HostKeyPolicy, ...] = ("strict", "accept-new")
DEFAULT_CONNECT_TIMEOUT = 10.0
_SSH_PORT = 22
#: A known ``ssh-rsa`` key is offered under these signature algorithms (RFC 8332).
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
#: Ciphers asked for first: AES-GCM encrypts and authenticates in one pass.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
#: The host key families :func:`host_keys` asks for, one handshake each (a host has at most
#: one key of each; DSA and SHA-1 RSA signatures are gone from OpenSSH and paramiko).
_KEY_FAMILIES = (
    ("ssh-ed25519",),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    ("rsa-sha2-512", "rsa-sha2-256"),
)
#: What :class:`RemoteLines` holds at most: one output line, the end of stderr, one read.
MAX_LINE_BYTES = 64 << 10
_KEPT_STDERR = 4 << 10
_CHUNK_BYTES = 32 << 10
_POLL_SECONDS = 0.2
#: The logger of :func:`host_keys`' handshakes (quiet: a key type the host lacks is no error).
_KEYSCAN_LOG = "devops_tasks.ssh_hosts.keyscan"
logging.getLogger(_KEYSCAN_LOG).addHandler(logging.NullHandler())
#: ``SHA256:`` and the unpadded base64 of 32 bytes, as ``ssh`` and ``ssh-keygen -l`` print it.
_SHA256_DIGEST_BYTES = 32


def known_hosts_name(host: str, port: int) -> str:
    """How ``known_hosts`` names ``host``: bare on port 22, else ``[host]:port`` (as ssh does)."""
    return host if port == _SSH_PORT else f"[{host}]:{port}"


def connect(
    host: str,
    *,
    user: str,
    key_file: str | os.PathLike[str],
    known_hosts: str | os.PathLike[str],
    port: int = _SSH_PORT,
    policy: HostKeyPolicy = "strict",
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> fabric.Connection:
    """A connected fabric ``Connection`` to ``user@host:port`` whose host key was verified.

    Logs in with ``key_file`` only (no agent, no other keys), so what works in a test works
    the same on any machine. Raises ``DevopsError``: ``HOST_KEY_UNKNOWN``,
    ``HOST_KEY_CHANGED``, ``HOST_UNREACHABLE``, ``CREDENTIALS_MISSING`` or
    ``CREDENTIALS_INVALID``.
    """
    import fabric  # noqa: PLC0415  (heavy: only SSH targets pay for it)
    import paramiko  # noqa: PLC0415

    if policy not in POLICIES:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{policy!r} is not a host key policy",
            f"Use one of: {', '.join(POLICIES)}.",
        )
    check = _HostKeyCheck(Path(known_hosts), policy)
    known = check.known_keys(known_hosts_name(host, port))
    timeouts = {name: connect_timeout for name in ("timeout", "banner_timeout", "auth_timeout")}
    connection = fabric.Connection(
        host,
        user=user,
        port=port,
        # Remote commands never read this process's stdin (a terminal, or a piped secret).
        config=fabric.Config(
            lazy=True, ssh_config=paramiko.SSHConfig(), overrides={"run": {"in_stream": False}}
        ),
        connect_kwargs={
            "pkey": _client_key(Path(key_file)),
            "look_for_keys": False,
            "allow_agent": False,
            "transport_factory": _preferring({key.get_name() for key in known}),
            **timeouts,
        },
    )
    connection.client.set_missing_host_key_policy(check)
    try:
        connection.open()
    except DevopsError:
        connection.client.close()
        raise
    except paramiko.AuthenticationException as exc:
        connection.client.close()
        raise DevopsError(
            ErrorCode.CREDENTIALS_INVALID,
            f"{user}@{host}:{port} refused the key {key_file}: {exc}",
            f"Add the public key of {key_file} to ~{user}/.ssh/authorized_keys on {host}, "
            "or give the key that is there.",
            host=host,
            port=port,
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        connection.client.close()
        raise _unreachable(host, port, exc, connect_timeout) from None
    return connection


def _unreachable(host: str, port: int, exc: BaseException, timeout: float) -> DevopsError:
    return DevopsError(
        ErrorCode.HOST_UNREACHABLE,
        f"Could not reach an SSH server on {host}:{port}: {str(exc) or type(exc).__name__}",
        f"Check that {host} is up, that sshd listens on port {port} and that no firewall "
        f"is in the way (waited {timeout:g} s), then run it again.",
        host=host,
        port=port,
    )


def _client_key(path: Path) -> paramiko.PKey:
    """The private key to log in with, read here so that its problems are named as such."""
    import paramiko  # noqa: PLC0415

    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise DevopsError(
            ErrorCode.CREDENTIALS_MISSING,
            f"The SSH key {path} does not exist",
            f"Create it (ssh-keygen -t ed25519 -f {shlex.quote(str(path))}) and add its public "
            "key to the hosts, or point to the key you use.",
        ) from None
    except OSError as exc:
        raise (os_failure(exc) or exc) from None
    except (paramiko.SSHException, ValueError) as exc:
        raise DevopsError(
            ErrorCode.CREDENTIALS_INVALID,
            f"{path} is not a usable SSH private key: {exc}",
            "Give an unencrypted private key file (ed25519, ecdsa or rsa) in OpenSSH or PEM "
            "format.",
        ) from None


def _preferring(known_types: set[str]) -> Any:
    """A transport factory that asks for the host key types ``known_hosts`` holds first.

    Without it, a host with several keys could offer one that ``known_hosts`` lacks and be
    taken for a changed host. ``ssh`` orders its host key algorithms the same way.

    It also tunes the connection as ``ssh`` does: Nagle's algorithm off (with it, each
    command waits ~40 ms for a delayed ACK before its request leaves; without, a command
    takes a few ms), and AES-GCM first among the ciphers (one pass, no separate MAC); and
    on Linux it acknowledges what it receives at once (:class:`_QuickAck`).
    """
    import paramiko  # noqa: PLC0415

    wanted = {a for t in known_types for a in (_RSA_ALGORITHMS if t == "ssh-rsa" else (t,))}

    def transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_QUICKACK"):
                sock = _QuickAck.taking(sock)
        made = paramiko.Transport(sock, **kwargs)
        options = made.get_security_options()
        options.key_types = _first(options.key_types, wanted)
        options.ciphers = _first(options.ciphers, set(_FAST_CIPHERS))
        return made

    return transport


class _QuickAck(socket.socket):
    """A TCP socket that acknowledges each read at once (Linux's ``TCP_QUICKACK``).

    An SSH server writes small packets with Nagle's algorithm on (OpenSSH turns it off for
    interactive sessions only), so a packet written right after another waits until the
    first is acknowledged, and Linux delays an acknowledgement up to 40 ms. That is what the
    answer to a connection's first channel meets (right after the server's notice of its
    host keys): 40 ms before the first command of every connection, on any network. The
    option is not sticky, so it is set again before each read.
    """

    @classmethod
    def taking(cls, sock: socket.socket) -> _QuickAck:
        """``sock``'s connection, as a socket of this class (``sock`` is left empty)."""
        timeout = sock.gettimeout()
        taken = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        taken.settimeout(timeout)
        return taken

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)


def _first(names: Sequence[str], wanted: set[str]) -> list[str]:
    """``names`` with those in ``wanted`` moved to the front, each group in its own order."""
    return [n for n in names if n in wanted] + [n for n in names if n not in wanted]


def is_listed(known_hosts: str | os.PathLike[str], host: str, port: int = _SSH_PORT) -> bool:
    """Whether ``known_hosts`` lists any key for ``host:port`` (hashed entries included)."""
    return bool(_HostKeyCheck(Path(known_hosts), "strict").known_keys(known_hosts_name(host, port)))


def host_keys(
    host: str, port: int = _SSH_PORT, timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> list[paramiko.PKey]:
    """Every key ``host`` offers: one SSH handshake per key family, no login, nothing sent.

    A handshake proves that the host holds the private half of the key it shows, which is
    all a fingerprint can be checked against.
    """
    keys = [key for family in _KEY_FAMILIES if (key := _offered_key(host, port, family, timeout))]
    if not keys:
        raise DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"{host}:{port} offers no host key of a type devops-tasks can check "
            "(ed25519, ecdsa, rsa)",
            "Give the host an ed25519 key (`ssh-keygen -A` on it), then run it again.",
            host=host,
            port=port,
        )
    return keys


def _offered_key(
    host: str, port: int, family: tuple[str, ...], timeout: float
) -> paramiko.PKey | None:
    """The key of ``family`` that ``host`` shows in a handshake; None if it has none."""
    import paramiko  # noqa: PLC0415

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise _unreachable(host, port, exc, timeout) from None
    transport = paramiko.Transport(sock)
    # paramiko logs a refused key type as an error with its traceback: it is an answer here.
    transport.set_log_channel(_KEYSCAN_LOG)
    try:
        transport.banner_timeout = transport.handshake_timeout = timeout
        transport.get_security_options().key_types = family
        transport.start_client(timeout=timeout)
        key: paramiko.PKey = transport.get_remote_server_key()
    except paramiko.IncompatiblePeer:
        return None  # no host key type in common: the host has no key of this family
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise _unreachable(host, port, exc, timeout) from None
    finally:
        transport.close()
    return key


def trust(
    host: str,
    *,
    known_hosts: str | os.PathLike[str],
    port: int = _SSH_PORT,
    fingerprint: str | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Pin the keys ``host`` offers in ``known_hosts``; with ``fingerprint``, that key only.

    A host the file lists already is left alone when one of its keys is listed and no other
    key of a listed type is offered, and refused with ``HOST_KEY_CHANGED`` otherwise: a
    listed key is never replaced here. A ``fingerprint`` the host does not offer is refused
    the same way, before anything is written.
    """
    expected = None if fingerprint is None else _checked_fingerprint(fingerprint)
    name = known_hosts_name(host, port)
    offered = host_keys(host, port, timeout)
    chosen = [key for key in offered if expected in (None, key.fingerprint)]
    if not chosen:
        shown = ", ".join(key.fingerprint for key in offered)
        raise DevopsError(
            ErrorCode.HOST_KEY_CHANGED,
            f"{name} does not offer the key {expected}: it offers {shown}",
            "Someone may be intercepting the connection, or the fingerprint was mistyped: "
            "check it with the host's owner (ssh-keygen -lf on its /etc/ssh/ssh_host_*_key.pub "
            "shows it). Nothing was pinned.",
            host=name,
            expected=[expected],
            offered=[key.fingerprint for key in offered],
        )
    pinned = _HostKeyCheck(Path(known_hosts), "accept-new").pin(name, offered, chosen)
    return {
        "name": name,
        "fingerprints": [
            {"type": key.get_name(), "fingerprint": key.fingerprint, "pinned": key in pinned}
            for key in offered
        ],
        "pinned": bool(pinned),
        "already_known": not pinned,
    }


def _checked_fingerprint(text: str) -> str:
    """``text`` as ``SHA256:<unpadded base64>`` if it is a SHA-256 key fingerprint."""
    digest = text.strip().removeprefix("SHA256:").rstrip("=")
    try:
        valid = text.strip().startswith("SHA256:") and (
            len(base64.b64decode(digest + "=" * (-len(digest) % 4), validate=True))
            == _SHA256_DIGEST_BYTES
        )
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{text!r} is not a SHA256 host key fingerprint",
            "Give it as ssh prints it: SHA256: and 43 characters (`ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub` on the host shows it).",
        )
    return f"SHA256:{digest}"


class _HostKeyCheck:
    """paramiko's ``MissingHostKeyPolicy`` hook, called for every host (the client knows none).

    It accepts a key that ``known_hosts`` lists for the host, refuses a different one, and
    refuses or (``accept-new``) pins a host it does not list.
    """

    def __init__(self, path: Path, policy: HostKeyPolicy) -> None:
        self.path = path
        self.policy = policy

    def known_keys(self, name: str) -> list[paramiko.PKey]:
        """The keys ``known_hosts`` lists for ``name`` (one per key type, as paramiko reads it)."""
        import paramiko  # noqa: PLC0415

        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise (os_failure(exc) or exc) from None
        host_keys = paramiko.HostKeys()
        for line in text.splitlines():
            # as ssh does: markers (@cert-authority, @revoked) are not host keys, and a line
            # it cannot read is skipped rather than failing every host
            if line.lstrip().startswith(("#", "@")):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            except (paramiko.SSHException, ValueError, TypeError):
                continue
            if entry is not None:
                for hostname in entry.hostnames:
                    host_keys.add(hostname, entry.key.get_name(), entry.key)
        found = host_keys.lookup(name)
        return [found[key_type] for key_type in dict.fromkeys(found.keys())] if found else []

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        """Return if ``key`` is ``hostname``'s; raise ``DevopsError`` otherwise."""
        if self.is_known(hostname, [key]):
            return
        if self.policy == "strict":
            raise DevopsError(
                ErrorCode.HOST_KEY_UNKNOWN,
                f"{hostname} is not in {self.path}; it offers the {key.get_name()} key "
                f"{key.fingerprint}",
                f"Check with the host's owner that {key.fingerprint} is its key (ssh-keygen -lf "
                f"on its /etc/ssh/ssh_host_*_key.pub shows it), then pin it: "
                f"`{_trust_command(hostname, key.fingerprint)}`, or deploy once with "
                "ssh.host_key_policy set to accept-new.",
                host=hostname,
                fingerprint=key.fingerprint,
                known_hosts=str(self.path),
            )
        self.pin(hostname, [key], [key])

    def is_known(self, hostname: str, offered: list[paramiko.PKey]) -> bool:
        """True if ``hostname`` is listed by one of the ``offered`` keys and by no other key of
        their types, False if it is not listed at all; raises HOST_KEY_CHANGED otherwise."""
        known = self.known_keys(hostname)
        if not known:
            return False
        types = {key.get_name() for key in known}
        differing = [key for key in offered if key not in known and key.get_name() in types]
        if not differing and any(key in known for key in offered):
            return True
        shown = (differing or offered)[0]
        expected = ", ".join(k.fingerprint for k in known)
        raise DevopsError(
            ErrorCode.HOST_KEY_CHANGED,
            f"The host key of {hostname} has changed: {self.path} expects {expected}, the host "
            f"offers {shown.fingerprint}",
            "Someone may be intercepting the connection: do not deploy. If the host was "
            "reinstalled or its key replaced, confirm the new fingerprint with its owner, remove "
            f"the old entry (ssh-keygen -R {shlex.quote(hostname)} -f "
            f"{shlex.quote(str(self.path))}) and pin the new one: "
            f"`{_trust_command(hostname, shown.fingerprint)}`.",
            host=hostname,
            expected=[k.fingerprint for k in known],
            offered=shown.fingerprint,
            known_hosts=str(self.path),
        )

    def pin(
        self, hostname: str, offered: list[paramiko.PKey], chosen: list[paramiko.PKey]
    ) -> list[paramiko.PKey]:
        """Append ``chosen`` (of the keys ``hostname`` offered) to ``known_hosts`` in one atomic
        write, keeping the rest; returns what it pinned (nothing if the host is listed by now).

        A new file is made 0600 in a directory made 0700, as ``ssh`` makes ``~/.ssh``. Names
        are written hashed when every entry of the file is.
        """
        from paramiko.hostkeys import HostKeyEntry, HostKeys  # noqa: PLC0415

        path = self.path.resolve()  # a linked known_hosts stays a link to the updated file
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise (os_failure(exc) or exc) from None
        with FileLock(path.with_name(f".{path.name}.lock")):
            if self.is_known(hostname, offered):  # pinned by another process meanwhile
                return []
            try:
                current = path.read_bytes()
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                current, mode = b"", 0o600
            except OSError as exc:
                raise (os_failure(exc) or exc) from None
            if current and not current.endswith(b"\n"):
                current += b"\n"
            entries = [
                line for line in current.splitlines() if line.strip() and not line.startswith(b"#")
            ]
            hashed = bool(entries) and all(line.startswith(b"|1|") for line in entries)
            lines = "".join(
                HostKeyEntry([HostKeys.hash_host(hostname) if hashed else hostname], key).to_line()
                for key in chosen
            )
            atomic_write(path, current + lines.encode(), mode=mode)
        return chosen


def _trust_command(name: str, fingerprint: str) -> str:
    """The command that pins ``name``'s key once its owner confirmed ``fingerprint``."""
    address = name
    if name.startswith("["):  # [host]:port reads host:port; an IPv6 address keeps its brackets
        host, port = name[1:].rsplit("]:", 1)
        address = name if ":" in host else f"{host}:{port}"
    return f"devops ssh.trust --host {shlex.quote(address)} --fingerprint {fingerprint}"


class RemoteLines:
    """A command started on a host, its output read line by line as it comes, bounded.

    A line longer than :data:`MAX_LINE_BYTES` comes in pieces of that size, and only the
    last bytes of stderr are kept, so a host cannot make this process hold more than that.
    With ``pty`` the command gets a terminal, as ``ssh -t`` gives it: closing the channel then
    hangs it up (SIGHUP), so a ``tail -F`` ends with the reader instead of running on, and
    its stderr arrives mixed into its output.
    """

    def __init__(self, connection: fabric.Connection, command: str, *, pty: bool = False) -> None:
        transport = connection.client.get_transport()
        if transport is None:
            raise ConnectionError("the connection is closed")
        self.command = command
        self._channel = transport.open_session()
        if pty:
            self._channel.get_pty()
        self._channel.settimeout(_POLL_SECONDS)
        self._channel.exec_command(command)
        self._stderr = b""

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        """Each line of output until the command ends or :meth:`close` is called.

        With ``timeout``, a command still running after that many seconds is closed and
        reported as ``COMMAND_FAILED``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = b""
        while True:
            self._keep_stderr()
            try:
                chunk = self._channel.recv(_CHUNK_BYTES)
            except TimeoutError:
                if deadline is not None and time.monotonic() > deadline:
                    self.close()
                    raise DevopsError(
                        ErrorCode.COMMAND_FAILED,
                        f"`{self.command}` was still running after {timeout:g} s",
                        "Check the host's load and the command, or raise ssh.command_timeout.",
                    ) from None
                continue
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                yield from _pieces(line)
            if len(pending) >= MAX_LINE_BYTES:  # no end in sight: pass on what is whole
                whole = len(pending) - len(pending) % MAX_LINE_BYTES
                yield from _pieces(pending[:whole])
                pending = pending[whole:]
        if pending:
            yield _line(pending)
        self._keep_stderr()

    def _keep_stderr(self) -> None:
        while self._channel.recv_stderr_ready():
            self._stderr = (self._stderr + self._channel.recv_stderr(_CHUNK_BYTES))[-_KEPT_STDERR:]

    @property
    def errors(self) -> str:
        """The end of what the command wrote on stderr."""
        return self._stderr.decode("utf-8", "replace").strip()

    def exit_status(self) -> int:
        """The command's exit status, once it has ended (-1 if the host gave none)."""
        status: int = self._channel.recv_exit_status()
        return status

    def close(self) -> None:
        """Stop reading; with ``pty``, the command is hung up."""
        self._channel.close()


def _pieces(line: bytes) -> Iterator[str]:
    """``line`` (an empty one too) in pieces of at most :data:`MAX_LINE_BYTES`."""
    for start in range(0, max(len(line), 1), MAX_LINE_BYTES):
        yield _line(line[start : start + MAX_LINE_BYTES])


def _line(data: bytes) -> str:
    return data.rstrip(b"\r").decode("utf-8", "replace")
