"""Verified SSH connections, against real OpenSSH servers on 127.0.0.2-4 (see sshd.py)."""

from __future__ import annotations

import shlex
import socket
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import write_site
from sshd import SshHost, SshServers

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFiles
from devops_tasks.output import NullProgress
from devops_tasks.releases import ReleaseEngine
from devops_tasks.ssh_hosts import POLICIES, connect

RELEASE = "dep_1764111420000_ab12cd34"


@pytest.fixture
def known_hosts(ssh_servers: SshServers, tmp_path: Path) -> Path:
    """A copy of the session's known_hosts (all three hosts) that a test may change."""
    path = tmp_path / "known_hosts"
    path.write_bytes(ssh_servers.known_hosts.read_bytes())
    return path


def open_to(servers: SshServers, host: SshHost, known_hosts: Path, **options: Any) -> Any:
    return connect(
        host.ip,
        port=host.port,
        user=servers.user,
        key_file=servers.client_key,
        known_hosts=known_hosts,
        **options,
    )


def refusal(call: Any) -> DevopsError:
    with pytest.raises(DevopsError) as caught:
        call()
    return caught.value


def keygen_fingerprint(public_key: str, tmp_path: Path) -> str:
    """The fingerprint as ``ssh-keygen -lf`` shows it, the form people compare by eye."""
    path = tmp_path / "key.pub"
    path.write_text(public_key + "\n")
    listing = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True)
    return listing.stdout.split()[1]


def test_strict_connects_to_a_known_host_and_runs_commands_as_the_test_user(
    ssh_servers: SshServers, known_hosts: Path
) -> None:
    host = ssh_servers.hosts[0]
    with open_to(ssh_servers, host, known_hosts) as connection:
        result = connection.run("id -un; echo $SSH_CONNECTION", hide=True)
    user, ssh_connection = result.stdout.splitlines()
    assert user == ssh_servers.user
    assert ssh_connection.split()[2:] == [host.ip, str(host.port)]


def test_a_connection_sends_its_requests_at_once_and_acknowledges_each_read_at_once(
    ssh_servers: SshServers, known_hosts: Path
) -> None:
    with open_to(ssh_servers, ssh_servers.hosts[0], known_hosts) as connection:
        sock = connection.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as the kernel may

        assert connection.run("echo hi", hide=True).stdout == "hi\n"
        sock.recv(0)  # what every read of the connection does first

        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)


def test_an_unknown_host_is_refused_with_its_fingerprint(
    ssh_servers: SshServers, tmp_path: Path
) -> None:
    host = ssh_servers.hosts[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(ssh_servers.hosts[0].known_hosts_line())

    error = refusal(lambda: open_to(ssh_servers, host, known_hosts))

    fingerprint = keygen_fingerprint(host.public_key(), tmp_path)
    assert fingerprint.startswith("SHA256:") and not fingerprint.endswith("=")
    assert error.code is ErrorCode.HOST_KEY_UNKNOWN
    assert host.ip in error.message and fingerprint in error.message
    assert (
        f"`devops ssh.trust --host {host.ip}:{host.port} --fingerprint {fingerprint}`" in error.fix
    )
    assert known_hosts.read_text() == ssh_servers.hosts[0].known_hosts_line()


def test_accept_new_pins_an_unknown_host_keeping_the_file_then_strict_connects(
    ssh_servers: SshServers, tmp_path: Path
) -> None:
    host = ssh_servers.hosts[2]
    known_hosts = tmp_path / "known_hosts"
    before = "# mine\n" + ssh_servers.hosts[0].known_hosts_line().rstrip("\n")  # no final newline
    known_hosts.write_text(before)

    open_to(ssh_servers, host, known_hosts, policy="accept-new").close()

    assert known_hosts.read_text() == before + "\n" + host.known_hosts_line()
    with open_to(ssh_servers, host, known_hosts, policy="strict") as connection:
        assert connection.run("true", hide=True).ok


def test_a_changed_host_key_is_refused_under_both_policies(
    ssh_servers: SshServers, known_hosts: Path, tmp_path: Path
) -> None:
    host = ssh_servers.hosts[0]
    expected = keygen_fingerprint(host.public_key(), tmp_path)
    before = known_hosts.read_text()
    with ssh_servers.changed_host_key(host) as new_key:
        offered = keygen_fingerprint(new_key, tmp_path)
        errors = [
            refusal(lambda p=policy: open_to(ssh_servers, host, known_hosts, policy=p))
            for policy in POLICIES
        ]
    for error in errors:
        assert error.code is ErrorCode.HOST_KEY_CHANGED
        assert host.ip in error.message
        assert expected in error.message and offered in error.message
        assert "ssh-keygen -R" in error.fix
        assert f"devops ssh.trust --host {host.ip}:{host.port} --fingerprint {offered}" in error.fix
    assert known_hosts.read_text() == before


def test_hashed_known_hosts_entries_are_recognised(
    ssh_servers: SshServers, known_hosts: Path
) -> None:
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True)
    assert "127.0.0" not in known_hosts.read_text()
    with open_to(ssh_servers, ssh_servers.hosts[1], known_hosts) as connection:
        assert connection.run("true", hide=True).ok


@pytest.mark.parametrize("listed", [("ecdsa",), ("ed25519", "ecdsa"), ("ecdsa", "ed25519")])
def test_a_host_listed_by_any_of_its_keys_is_recognised(
    ssh_servers: SshServers, tmp_path: Path, listed: tuple[str, ...]
) -> None:
    host = ssh_servers.hosts[1]  # serves an ed25519 and an ecdsa key
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(host.known_hosts_line(key_type) for key_type in listed))
    with open_to(ssh_servers, host, known_hosts) as connection:
        assert connection.run("true", hide=True).ok


def test_accept_new_creates_a_missing_known_hosts(ssh_servers: SshServers, tmp_path: Path) -> None:
    host = ssh_servers.hosts[0]
    known_hosts = tmp_path / "new" / "known_hosts"
    open_to(ssh_servers, host, known_hosts, policy="accept-new").close()
    assert known_hosts.read_text() == host.known_hosts_line()
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert stat.S_IMODE(known_hosts.parent.stat().st_mode) == 0o700


def test_a_host_that_refuses_connections_is_unreachable_quickly(
    ssh_servers: SshServers, known_hosts: Path
) -> None:
    nobody = SshHost("127.0.0.5", ssh_servers.hosts[0].port, ssh_servers.directory)
    started = time.monotonic()
    error = refusal(lambda: open_to(ssh_servers, nobody, known_hosts))
    assert error.code is ErrorCode.HOST_UNREACHABLE and "127.0.0.5" in error.message
    assert time.monotonic() - started < 2


def test_a_host_that_never_answers_is_unreachable_after_the_connect_timeout(
    ssh_servers: SshServers, known_hosts: Path
) -> None:
    with socket.create_server(("127.0.0.6", 0)) as silent:  # accepts, never speaks SSH
        mute = SshHost("127.0.0.6", silent.getsockname()[1], ssh_servers.directory)
        started = time.monotonic()
        error = refusal(lambda: open_to(ssh_servers, mute, known_hosts, connect_timeout=0.5))
    assert error.code is ErrorCode.HOST_UNREACHABLE
    assert 0.4 < time.monotonic() - started < 3


def test_a_wrong_client_key_is_credentials_invalid(
    ssh_servers: SshServers, known_hosts: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    host = ssh_servers.hosts[0]
    error = refusal(
        lambda: connect(
            host.ip,
            port=host.port,
            user=ssh_servers.user,
            key_file=stranger,
            known_hosts=known_hosts,
        )
    )
    assert error.code is ErrorCode.CREDENTIALS_INVALID and str(stranger) in error.message


@pytest.mark.parametrize(
    ("content", "code"),
    [(None, ErrorCode.CREDENTIALS_MISSING), ("not a key\n", ErrorCode.CREDENTIALS_INVALID)],
)
def test_a_missing_or_unusable_client_key_is_refused_before_connecting(
    tmp_path: Path, content: str | None, code: ErrorCode
) -> None:
    key_file = tmp_path / "id_ed25519"
    if content is not None:
        key_file.write_text(content)
    error = refusal(
        lambda: connect("127.0.0.7", user="u", key_file=key_file, known_hosts=tmp_path / "kh")
    )
    assert error.code is code and str(key_file) in error.message


def test_an_unknown_policy_is_an_invalid_argument(tmp_path: Path) -> None:
    error = refusal(
        lambda: connect(
            "127.0.0.7",
            user="u",
            key_file="k",
            known_hosts=tmp_path,
            policy="yes",  # type: ignore[arg-type]
        )
    )
    assert error.code is ErrorCode.INVALID_ARGUMENT and "strict" in error.fix


def test_the_three_hosts_answer_in_parallel(ssh_servers: SshServers, known_hosts: Path) -> None:
    from fabric import ThreadingGroup

    with ThreadPoolExecutor(len(ssh_servers.hosts)) as pool:
        connections = list(
            pool.map(lambda host: open_to(ssh_servers, host, known_hosts), ssh_servers.hosts)
        )
    group = ThreadingGroup.from_connections(connections)
    try:
        started = time.monotonic()
        results = group.run("sleep 1; echo $SSH_CONNECTION", hide=True)
        elapsed = time.monotonic() - started
    finally:
        group.close()
    assert sorted(r.stdout.split()[2] for r in results.values()) == [
        h.ip for h in ssh_servers.hosts
    ]
    assert elapsed < 2, f"three 1 s commands took {elapsed:.2f} s: not in parallel"


def test_the_release_engine_runs_unchanged_over_a_verified_connection(
    ssh_servers: SshServers, known_hosts: Path, tmp_path: Path
) -> None:
    site = SiteFiles.scan(write_site(tmp_path / "site", version="over ssh"))
    with open_to(ssh_servers, ssh_servers.hosts[2], known_hosts) as connection:
        root = connection.run("mktemp -d", hide=True).stdout.strip()
        try:
            engine = ReleaseEngine(connection, root)
            engine.upload(RELEASE, site, NullProgress())
            engine.activate(RELEASE)
            page = connection.run(
                f"cat {shlex.quote(root + '/current/index.html')}", hide=True
            ).stdout
            assert (engine.current(), engine.releases()) == (RELEASE, [RELEASE])
            assert page == "<h1>over ssh</h1>\n"
        finally:
            connection.run(f"rm -rf {shlex.quote(root)}", hide=True)


def test_marker_lines_and_unreadable_lines_in_known_hosts_are_skipped_as_ssh_does(
    project, cli, ssh_servers, fleet, tmp_path
):
    from fleet import configure

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "@cert-authority *.example.com ssh-ed25519 AAAAnotbase64==\n"
        "@revoked * ssh-rsa AAAA\n"
        "garbage line\n" + ssh_servers.known_hosts.read_text()
    )
    configure(project, ssh_servers, fleet, known_hosts=str(known_hosts))

    assert cli("deploy", "--json").json["success"]
