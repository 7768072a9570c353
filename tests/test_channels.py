"""Commands on a raw SSH channel, against a real sshd: bytes in and out, and their deadline."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sshd import SshServers

from devops_tasks.channels import run_streamed, run_timed
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.ssh_hosts import connect


@pytest.fixture
def connection(ssh_servers: SshServers) -> Iterator[Any]:
    host = ssh_servers.hosts[1]
    opened = connect(
        host.ip,
        port=host.port,
        user=ssh_servers.user,
        key_file=ssh_servers.client_key,
        known_hosts=ssh_servers.known_hosts,
    )
    try:
        yield opened
    finally:
        opened.close()


def test_stdin_goes_in_and_stdout_comes_back_whole_and_in_order(connection):
    data = os.urandom(3 << 20)  # more than a channel window each way

    done = run_streamed(
        connection, "cat; echo done >&2; exit 3", [data[:1000], data[1000:]], None, "cat"
    )

    assert (done.status, done.stdout, done.stderr) == (3, data, b"done\n")


def test_a_command_that_stops_reading_is_reported_with_its_status_and_errors(connection):
    chunks = [bytes(1 << 20)] * 8  # it has stopped long before these are sent

    done = run_streamed(connection, "echo nope >&2; exit 2", chunks, 10, "refuse")

    assert (done.status, done.stderr) == (2, b"nope\n")


@pytest.mark.parametrize(
    ("command", "stdin"),
    [
        ("sleep 5", []),  # silent
        ("exec >&- 2>&-; sleep 5", []),  # output closed, still running
        ("sleep 5", [bytes(1 << 20)] * 8),  # not reading what is sent
    ],
    ids=["silent", "stdout-closed", "not-reading"],
)
def test_a_command_still_running_at_its_deadline_is_abandoned_and_named(connection, command, stdin):
    started = time.monotonic()

    with pytest.raises(DevopsError) as abandoned:
        run_streamed(connection, command, stdin, 0.5, "wait for nothing")

    assert time.monotonic() - started < 3
    assert abandoned.value.code is ErrorCode.DEPLOY_FAILED
    assert abandoned.value.message.startswith("Could not wait for nothing: it was still running")
    assert abandoned.value.details["timeout"] == 0.5


def test_a_host_that_sends_without_end_is_cut_off(connection, monkeypatch):
    monkeypatch.setattr("devops_tasks.channels._MAX_OUTPUT", 1 << 20)

    with pytest.raises(DevopsError) as cut:
        run_streamed(connection, "yes", [], 10, "read a listing")

    assert "sent more than 1 MiB" in cut.value.message


def test_a_short_command_that_outlives_its_timeout_is_named_and_abandoned(connection):
    started = time.monotonic()
    with pytest.raises(DevopsError) as abandoned:
        run_timed(connection, "sleep 5", "take the lock on web1", 0.5)

    assert time.monotonic() - started < 4
    assert "take the lock on web1" in abandoned.value.message
    assert "0.5 s" in abandoned.value.message
