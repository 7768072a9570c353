"""``devops ssh.trust``: fetch a fleet host's keys over the handshake, show and pin them.

Against the real OpenSSH hosts of sshd.py; each host offers an ed25519 and an ecdsa key.
"""

from __future__ import annotations

import shlex
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fleet import configure, live, roots
from sshd import SshHost, SshServers

from devops_tasks.ssh_hosts import trust


def keygen_fingerprint(public_key: str, tmp_path: Path) -> str:
    """The fingerprint as ``ssh-keygen -lf`` prints it: what a host's owner reads out."""
    path = tmp_path / "key.pub"
    path.write_text(public_key + "\n")
    listing = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True)
    return listing.stdout.split()[1]


def fingerprints(host: SshHost, tmp_path: Path) -> dict[str, str]:
    """Each key type the host serves -> its fingerprint, as ssh-keygen shows it."""
    return {
        host.public_key(kind).split()[0]: keygen_fingerprint(host.public_key(kind), tmp_path)
        for kind in ("ed25519", "ecdsa")
    }


def address(host: SshHost) -> str:
    return f"{host.ip}:{host.port}"


@pytest.fixture
def known_hosts(project, ssh_servers: SshServers, fleet: Path, tmp_path: Path) -> Path:
    """A project on the three hosts whose own known_hosts lists only the first one."""
    path = tmp_path / "known_hosts"
    path.write_text(ssh_servers.hosts[0].known_hosts_line())
    configure(project, ssh_servers, fleet, known_hosts=str(path))
    return path


def test_without_a_host_it_pins_every_key_of_each_unlisted_host_and_a_deploy_then_works(
    cli, ssh_servers, known_hosts, fleet, tmp_path
):
    assert cli("deploy", "--json").json["code"] == "HOST_KEY_UNKNOWN"

    trusted = cli("ssh.trust", "--json").json

    assert trusted["success"] and trusted["known_hosts"] == str(known_hosts)
    newcomers = ssh_servers.hosts[1:]
    assert [h["name"] for h in trusted["hosts"]] == [f"[{h.ip}]:{h.port}" for h in newcomers]
    for answer, host in zip(trusted["hosts"], newcomers, strict=True):
        assert answer["pinned"] and not answer["already_known"]
        shown = {k["type"]: k["fingerprint"] for k in answer["fingerprints"]}
        assert shown == fingerprints(host, tmp_path)
        assert all(k["pinned"] for k in answer["fingerprints"])
    deployed = cli("deploy", "--json").json
    assert deployed["success"], deployed
    assert {live(root) for root in roots(ssh_servers, fleet)} == {deployed["release"]}


def test_without_a_host_when_every_host_is_listed_it_contacts_none_and_says_so(
    cli, project, ssh_servers, fleet
):
    configure(project, ssh_servers, fleet, known_hosts=str(ssh_servers.known_hosts))
    before = ssh_servers.known_hosts.read_bytes()

    answer = cli("ssh.trust", "--json").json
    told = cli("ssh.trust").stdout

    assert answer["success"] and answer["hosts"] == []
    assert f"Every host of ssh.hosts is in {ssh_servers.known_hosts} already" in told
    assert ssh_servers.known_hosts.read_bytes() == before


@pytest.mark.parametrize(
    "name",
    [
        lambda servers, host: address(host),  # as ssh.hosts writes it
        lambda servers, host: host.ip,
        lambda servers, host: f"{servers.user}@{host.ip}:{host.port}",
    ],
    ids=["as-written", "host", "user@host:port"],
)
def test_a_named_host_is_the_only_one_pinned(cli, ssh_servers, known_hosts, name):
    host = ssh_servers.hosts[2]

    answer = cli("ssh.trust", "--host", name(ssh_servers, host), "--json").json

    assert [h["host"] for h in answer["hosts"]] == [f"{ssh_servers.user}@{address(host)}"]
    lines = known_hosts.read_text().splitlines()
    assert lines[0] == ssh_servers.hosts[0].known_hosts_line().strip()
    assert sorted(lines[1:]) == sorted(
        host.known_hosts_line(kind).strip() for kind in ("ed25519", "ecdsa")
    )


def test_a_known_host_with_the_same_key_is_left_as_it_is_and_the_answer_says_so(
    cli, ssh_servers, known_hosts
):
    before = known_hosts.read_bytes()
    host = address(ssh_servers.hosts[0])

    answer = cli("ssh.trust", "--host", host, "--json").json["hosts"][0]
    told = cli("ssh.trust", "--host", host).stdout

    assert answer["already_known"] and not answer["pinned"]
    assert not any(k["pinned"] for k in answer["fingerprints"])
    assert "already known, the same keys: nothing to do" in told
    assert known_hosts.read_bytes() == before


def test_a_changed_key_is_refused_and_the_pinned_one_stays(cli, ssh_servers, known_hosts, tmp_path):
    host = ssh_servers.hosts[0]
    before = known_hosts.read_bytes()
    with ssh_servers.changed_host_key(host) as new_key:
        refused = cli("ssh.trust", "--host", address(host), "--json").json
        offered = keygen_fingerprint(new_key, tmp_path)

    assert refused["code"] == "HOST_KEY_CHANGED"
    assert offered in refused["error"] and host.ip in refused["error"]
    assert "ssh-keygen -R" in refused["fix"]
    assert known_hosts.read_bytes() == before


def test_with_a_fingerprint_only_the_matching_key_is_pinned(
    cli, ssh_servers, known_hosts, tmp_path
):
    host = ssh_servers.hosts[1]
    ecdsa = keygen_fingerprint(host.public_key("ecdsa"), tmp_path)

    answer = cli("ssh.trust", "--host", address(host), "--fingerprint", ecdsa, "--json").json

    pinned = [k["fingerprint"] for k in answer["hosts"][0]["fingerprints"] if k["pinned"]]
    assert pinned == [ecdsa]
    assert known_hosts.read_text().splitlines()[1:] == [host.known_hosts_line("ecdsa").strip()]


def test_a_fingerprint_the_host_does_not_offer_is_refused_and_nothing_is_pinned(
    cli, ssh_servers, known_hosts, tmp_path
):
    before = known_hosts.read_bytes()
    other = keygen_fingerprint(ssh_servers.hosts[2].public_key(), tmp_path)

    refused = cli(
        "ssh.trust", "--host", address(ssh_servers.hosts[1]), "--fingerprint", other, "--json"
    ).json

    assert refused["code"] == "HOST_KEY_CHANGED" and other in refused["error"]
    assert known_hosts.read_bytes() == before


@pytest.mark.parametrize("bad", ["MD5:aa:bb", "SHA256:tooshort", "SHA256:" + "!" * 43])
def test_a_malformed_fingerprint_is_an_invalid_argument(cli, ssh_servers, known_hosts, bad):
    refused = cli(
        "ssh.trust", "--host", address(ssh_servers.hosts[1]), "--fingerprint", bad, "--json"
    ).json
    assert refused["code"] == "INVALID_ARGUMENT" and "SHA256:" in refused["fix"]


def test_a_fingerprint_for_several_hosts_at_once_is_refused(cli, known_hosts, tmp_path):
    refused = cli("ssh.trust", "--fingerprint", "SHA256:" + "A" * 43, "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "--host" in refused["fix"]


def test_a_host_that_is_not_in_ssh_hosts_is_refused_naming_those_that_are(
    cli, ssh_servers, known_hosts
):
    before = known_hosts.read_bytes()
    refused = cli("ssh.trust", "--host", "127.0.0.9", "--json").json
    assert refused["code"] == "INVALID_ARGUMENT" and "127.0.0.9" in refused["error"]
    assert all(address(host) in refused["fix"] for host in ssh_servers.hosts)
    assert known_hosts.read_bytes() == before


def test_hashed_entries_are_recognised_and_new_ones_are_written_hashed(
    cli, ssh_servers, known_hosts
):
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True)
    Path(f"{known_hosts}.old").unlink()

    answer = cli("ssh.trust", "--json").json

    assert [h["host"].split("@")[1] for h in answer["hosts"]] == [
        address(h) for h in ssh_servers.hosts[1:]
    ]
    text = known_hosts.read_text()
    assert "127.0.0" not in text and len(text.splitlines()) == 5
    assert all(line.startswith("|1|") for line in text.splitlines())
    assert cli("deploy", "--json").json["success"]


def test_a_missing_known_hosts_is_created_0600_in_a_new_0700_directory(
    cli, project, ssh_servers, fleet, tmp_path
):
    path = tmp_path / "new" / "ssh" / "known_hosts"
    configure(project, ssh_servers, fleet, known_hosts=str(path))

    assert cli("ssh.trust", "--json").json["success"]

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_text().splitlines()) == 6  # three hosts, two keys each


def test_a_host_that_is_down_is_reported_and_the_others_are_still_pinned(
    cli, project, ssh_servers, fleet, known_hosts
):
    down = f"127.0.0.5:{ssh_servers.hosts[0].port}"  # nothing listens there
    configure(
        project,
        ssh_servers,
        fleet,
        known_hosts=str(known_hosts),
        hosts=[address(h) for h in ssh_servers.hosts] + [down],
    )

    refused = cli("ssh.trust", "--json").json

    assert refused["code"] == "HOST_UNREACHABLE" and "127.0.0.5" in refused["error"]
    assert [h["name"] for h in refused["trusted"]] == [
        f"[{h.ip}]:{h.port}" for h in ssh_servers.hosts[1:]
    ]
    assert len(known_hosts.read_text().splitlines()) == 5


def test_the_command_an_unknown_host_error_gives_pins_that_host_as_printed(
    cli, ssh_servers, known_hosts
):
    refused = cli("deploy", "--json").json
    assert refused["code"] == "HOST_KEY_UNKNOWN" and len(refused["hosts"]) == 2
    command = shlex.split(refused["fix"].split("`")[1])
    assert command[:3] == ["devops", "ssh.trust", "--host"] and command[4] == "--fingerprint"

    assert cli(*command[1:], "--json").json["success"]

    still = cli("deploy", "--json").json["hosts"]
    assert len(still) == 1 and command[3] not in still[0]["host"]


def test_trusting_one_host_several_times_at_once_pins_each_key_once(ssh_servers, tmp_path):
    host = ssh_servers.hosts[1]
    path = tmp_path / "known_hosts"

    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: trust(host.ip, port=host.port, known_hosts=path), range(4))
        )

    assert sum(a["pinned"] for a in answers) == 1
    assert sorted(path.read_text().splitlines()) == sorted(
        host.known_hosts_line(kind).strip() for kind in ("ed25519", "ecdsa")
    )
