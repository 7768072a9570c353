"""Real OpenSSH servers for the SSH tests: one ``sshd`` per test host, started once a session.

Each host is its own ``sshd -D -e`` on 127.0.0.2, .3 and .4 (all on one free port), with
throwaway host keys (ed25519 and ecdsa), key-only login for a dedicated ``devops-test`` user
(not root: root's shell startup costs ~160 ms a command) and a temporary ``known_hosts`` that
lists the three hosts' ed25519 keys. The machine's ``~/.ssh`` is never read or written. A
missing ``sshd`` is a failure, never a skip: ``.ci/run`` installs ``openssh-server``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import stop_process

__all__ = ["SSHD", "TEST_USER", "SshHost", "SshServers", "start"]

SSHD = "/usr/sbin/sshd"
TEST_USER = "devops-test"
HOST_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
#: Each host has two keys, as real ones do; the session's known_hosts lists the first only.
KEY_TYPES = ("ed25519", "ecdsa")
STARTUP_TIMEOUT = 10.0
_ATTEMPTS = 3  # a free port can be taken by someone else before every sshd binds it


@dataclass
class SshHost:
    """One test host: its address, its files and its running ``sshd``."""

    ip: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def host_key(self, key_type: str = "ed25519") -> Path:
        """The private key file of one of the host's keys (``ed25519`` or ``ecdsa``)."""
        return self.directory / f"ssh_host_{key_type}_key"

    def public_key(self, key_type: str = "ed25519") -> str:
        """One of the host's public key lines (``ssh-ed25519 AAAA... comment``)."""
        return self.host_key(key_type).with_suffix(".pub").read_text().strip()

    def known_hosts_line(self, key_type: str = "ed25519") -> str:
        """The host as ``known_hosts`` lists it (``[ip]:port``, since the port is not 22)."""
        name, key = self.public_key(key_type).split()[:2]
        return f"[{self.ip}]:{self.port} {name} {key}\n"

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    def start(self) -> None:
        """Start this host's sshd and wait until it greets with an SSH banner."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sshd for {self.ip}:{self.port} exited with status "
                    f"{self.process.returncode}:\n{self.log_path.read_text(errors='replace')}"
                )
            if _greets(self.ip, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not answer on {self.ip}:{self.port} in {STARTUP_TIMEOUT} s")

    def stop(self) -> None:
        """End this host's sshd (politely, then for sure)."""
        if self.process is not None:
            stop_process(self.process)
        self.process = None


@dataclass
class SshServers:
    """The running test hosts and what a client needs to log in to them."""

    hosts: list[SshHost]
    user: str
    client_key: Path
    known_hosts: Path
    directory: Path

    @contextlib.contextmanager
    def changed_host_key(self, host: SshHost) -> Iterator[str]:
        """Give ``host`` a new ed25519 key (yields its public key line), then restore the old.

        The server is restarted each way, so it offers exactly the key on disk.
        """
        saved = self.directory / "saved-host-key"
        saved.mkdir()
        for path in (host.host_key(), host.host_key().with_suffix(".pub")):
            path.rename(saved / path.name)
        try:
            _keygen(host.host_key(), "ed25519", f"{host.ip} changed")
            host.stop()
            host.start()
            yield host.public_key()
        finally:
            for path in saved.iterdir():
                path.replace(host.directory / path.name)
            saved.rmdir()
            host.stop()
            host.start()

    def stop(self) -> None:
        """Stop every server and remove every key and file of the session."""
        for host in self.hosts:
            host.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _greets(ip: str, port: int) -> bool:
    """True once something on ``ip:port`` sends an SSH banner."""
    try:
        with socket.create_connection((ip, port), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _free_port() -> int:
    """A port free on every test address (they share one, as a fleet on port 22 would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST_IPS[0], 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, key_type: str, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _ensure_test_user() -> None:
    """Create the login user once per machine; a fresh account is locked until given ``*``.

    With ``UsePAM no``, sshd refuses a locked account (``!`` in its password field) even
    for key logins; ``*`` means "no password" without locking it.
    """
    try:
        subprocess.run(["id", TEST_USER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run(["useradd", "-m", TEST_USER], check=True, capture_output=True)
    subprocess.run(["usermod", "-p", "*", TEST_USER], check=True, capture_output=True)


def _config(host: SshHost, authorized_keys: Path) -> str:
    return "\n".join(
        [
            f"ListenAddress {host.ip}",
            f"Port {host.port}",
            *(f"HostKey {host.host_key(key_type)}" for key_type in KEY_TYPES),
            f"PidFile {host.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"AllowUsers {TEST_USER}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "PrintLastLog no",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def _start_once(directory: Path, client_key: Path, known_hosts: Path) -> SshServers:
    port = _free_port()
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
    authorized_keys.chmod(0o644)  # sshd reads it as the test user
    servers = SshServers([], TEST_USER, client_key, known_hosts, directory)
    try:
        for ip in HOST_IPS:
            host = SshHost(ip, port, directory / ip)
            host.directory.mkdir(exist_ok=True)
            host.log_path.unlink(missing_ok=True)
            for key_type in KEY_TYPES:
                if not host.host_key(key_type).exists():
                    _keygen(host.host_key(key_type), key_type, ip)
            host.config.write_text(_config(host, authorized_keys))
            servers.hosts.append(host)
            host.start()
    except RuntimeError:
        for host in servers.hosts:
            host.stop()
        raise
    known_hosts.write_text("".join(host.known_hosts_line() for host in servers.hosts))
    return servers


def start() -> SshServers:
    """Start the three test hosts and wait until each accepts connections; raises if not."""
    if not os.access(SSHD, os.X_OK):
        raise RuntimeError(
            f"{SSHD} is missing: the SSH tests need OpenSSH's server "
            "(apt-get install openssh-server; .ci/run does it)"
        )
    if os.geteuid() != 0:
        raise RuntimeError("the SSH tests run sshd, which needs root (as CI has)")
    _ensure_test_user()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    directory = Path(tempfile.mkdtemp(prefix="devops-sshd-"))
    directory.chmod(0o755)  # the test user must reach authorized_keys
    client_key = directory / "client_ed25519"
    _keygen(client_key, "ed25519", "devops-tasks test client")
    errors = []
    for _ in range(_ATTEMPTS):
        try:
            return _start_once(directory, client_key, directory / "known_hosts")
        except RuntimeError as exc:  # e.g. the port was taken in between; try another
            errors.append(str(exc))
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError("could not start the test sshd servers:\n" + "\n---\n".join(errors))
