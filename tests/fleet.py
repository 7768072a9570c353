"""The ssh fleet as tests use it: a fresh directory per test, three hosts configured into it.

The test hosts share this machine's filesystem, so each host's root is ``<fleet>/{host}/{env}``
and what a host serves is checked right on disk.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd import SshServers

from devops_tasks.project import Project


@pytest.fixture
def fleet(ssh_servers: SshServers) -> Iterator[Path]:
    """A fresh directory the login user owns, under which each host gets its root."""
    directory = Path(tempfile.mkdtemp(prefix="devops-fleet-"))
    login = pwd.getpwnam(ssh_servers.user)
    os.chown(directory, login.pw_uid, login.pw_gid)
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def configure(project: Project, servers: SshServers, fleet: Path, **ssh: Any) -> None:
    """The project deploys to the three test hosts, each into ``<fleet>/<ip>/<env>``."""
    section = {
        "hosts": [f"{host.ip}:{host.port}" for host in servers.hosts],
        "user": servers.user,
        "key_file": str(servers.client_key),
        "known_hosts": str(servers.known_hosts),
        "path": f"{fleet}/{{host}}/{{env}}",
        **ssh,
    }
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(json.dumps({"version": 1, "platform": "ssh", "ssh": section}))


def roots(servers: SshServers, fleet: Path) -> list[Path]:
    return [fleet / host.ip / "production" for host in servers.hosts]


def live(root: Path) -> str | None:
    """The release ``root/current`` points at, read on disk (None if there is none)."""
    link = root / "current"
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None


def settle(roots: list[Path], timeout: float = 10.0) -> None:
    """Wait until each host whose root is in ``roots`` has done what a deploy left to its
    background: pruned releases removed, and the live release's standby made."""
    deadline = time.monotonic() + timeout
    for root in roots:
        serving = live(root)
        if serving is None:
            continue
        while time.monotonic() < deadline:
            names = os.listdir(root / "releases")
            busy = [n for n in names if n.endswith((".pruned", ".standby.partial"))]
            if f".{serving}.standby" in names and not busy:
                break
            time.sleep(0.02)


def releases(root: Path) -> list[str]:
    directory = root / "releases"
    return sorted(n for n in os.listdir(directory) if n.startswith("dep_"))


@pytest.fixture
def hosts(project: Project, ssh_servers: SshServers, fleet: Path) -> list[Path]:
    """A project configured for the three hosts; returns each host's root."""
    configure(project, ssh_servers, fleet)
    return roots(ssh_servers, fleet)
