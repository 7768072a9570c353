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
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .durable import FileLock, atomic_write
from .errors import DevopsError, ErrorCode, os_failure

if TYPE_CHECKING:
    import fabric
    import paramiko

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "POLICIES", "HostKeyPolicy", "connect", "known_hosts_name"]

HostKeyPolicy = Literal["strict", "accept-new"]
POLICIES: tuple[HostKeyPolicy, ...] = ("strict", "accept-new")
DEFAULT_CONNECT_TIMEOUT = 10.0
_SSH_PORT = 22
#: A known ``ssh-rsa`` key is offered under these signature algorithms (RFC 8332).
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


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
        raise DevopsError(
            ErrorCode.HOST_UNREACHABLE,
            f"Could not reach an SSH server on {host}:{port}: {str(exc) or type(exc).__name__}",
            f"Check that {host} is up, that sshd listens on port {port} and that no firewall "
            f"is in the way (waited {connect_timeout:g} s), then run it again.",
            host=host,
            port=port,
        ) from None
    return connection


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
    """
    import paramiko  # noqa: PLC0415

    wanted = {a for t in known_types for a in (_RSA_ALGORITHMS if t == "ssh-rsa" else (t,))}

    def transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
        made = paramiko.Transport(sock, **kwargs)
        options = made.get_security_options()
        types = list(options.key_types)
        options.key_types = [t for t in types if t in wanted] + [
            t for t in types if t not in wanted
        ]
        return made

    return transport


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

        host_keys = paramiko.HostKeys()
        try:
            host_keys.load(str(self.path))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise (os_failure(exc) or exc) from None
        found = host_keys.lookup(name)
        return [found[key_type] for key_type in dict.fromkeys(found.keys())] if found else []

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        """Return if ``key`` is ``hostname``'s; raise ``DevopsError`` otherwise."""
        if self._is_known(hostname, key):
            return
        if self.policy == "strict":
            raise DevopsError(
                ErrorCode.HOST_KEY_UNKNOWN,
                f"{hostname} is not in {self.path}; it offers the {key.get_name()} key "
                f"{key.fingerprint}",
                f"Check with the host's owner that {key.fingerprint} is its key (ssh-keygen -lf "
                f"on its /etc/ssh/ssh_host_*_key.pub shows it), then pin it: "
                f"`{_keyscan(hostname, self.path)}`, or deploy once with "
                "ssh.host_key_policy set to accept-new.",
                host=hostname,
                fingerprint=key.fingerprint,
                known_hosts=str(self.path),
            )
        self._pin(hostname, key)

    def _is_known(self, hostname: str, key: paramiko.PKey) -> bool:
        """True if ``key`` is listed for ``hostname``, False if nothing is; raises if another is."""
        known = self.known_keys(hostname)
        if not known:
            return False
        if key in known:
            return True
        expected = ", ".join(k.fingerprint for k in known)
        raise DevopsError(
            ErrorCode.HOST_KEY_CHANGED,
            f"The host key of {hostname} has changed: {self.path} expects {expected}, the host "
            f"offers {key.fingerprint}",
            "Someone may be intercepting the connection: do not deploy. If the host was "
            "reinstalled or its key replaced, confirm the new fingerprint with its owner, remove "
            f"the old entry (ssh-keygen -R {shlex.quote(hostname)} -f "
            f"{shlex.quote(str(self.path))}) and pin the new one: "
            f"`{_keyscan(hostname, self.path)}`.",
            host=hostname,
            expected=[k.fingerprint for k in known],
            offered=key.fingerprint,
            known_hosts=str(self.path),
        )

    def _pin(self, hostname: str, key: paramiko.PKey) -> None:
        """Append ``hostname``'s key to ``known_hosts`` in one atomic write, keeping the rest."""
        from paramiko.hostkeys import HostKeyEntry  # noqa: PLC0415

        path = self.path.resolve()  # a linked known_hosts stays a link to the updated file
        with FileLock(path.with_name(f".{path.name}.lock")):
            if self._is_known(hostname, key):  # pinned by another process meanwhile
                return
            try:
                current = path.read_bytes()
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                current, mode = b"", 0o644
            except OSError as exc:
                raise (os_failure(exc) or exc) from None
            if current and not current.endswith(b"\n"):
                current += b"\n"
            line = HostKeyEntry([hostname], key).to_line()
            atomic_write(path, current + line.encode(), mode=mode)


def _keyscan(name: str, known_hosts: Path) -> str:
    """The command that appends ``name``'s keys to ``known_hosts`` (``ssh-keyscan``)."""
    host = _host_of(name)
    port = name.rsplit("]:", 1)[1] if name.startswith("[") else "22"
    return f"ssh-keyscan -p {port} {shlex.quote(host)} >> {shlex.quote(str(known_hosts))}"


def _host_of(name: str) -> str:
    """``host`` from a ``known_hosts`` name (``host`` or ``[host]:port``)."""
    return name[1:].rsplit("]:", 1)[0] if name.startswith("[") else name
