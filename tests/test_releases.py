"""The release engine speaks only run() and put(): the commands it sends, and a real run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import write_site
from invoke import MockContext, Result

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFiles
from devops_tasks.output import NullProgress
from devops_tasks.releases import LocalConnection, ReleaseEngine


class RecordingConnection:
    """A fabric-shaped connection over invoke's MockContext that remembers what it was sent."""

    def __init__(self, results: dict | None = None) -> None:
        self.context = MockContext(run=results or {re.compile(".*"): Result()}, repeat=True)
        self.commands: list[str] = []
        self.puts: list[tuple[str, str]] = []

    def run(self, command: str, **kwargs):
        self.commands.append(command)
        return self.context.run(command, **kwargs)

    def put(self, local: str, remote: str) -> None:
        self.puts.append((local, remote))


def test_activate_renames_a_fresh_relative_link_over_current():
    connection = RecordingConnection()
    ReleaseEngine(connection, "/srv/site/").activate("rel1")
    (command,) = connection.commands
    assert "test -d /srv/site/releases/rel1" in command
    assert "ln -sfn releases/rel1 /srv/site/.current-rel1" in command
    # GNU mv -T first, BSD mv -h as the fallback: never move *into* the old target
    assert "mv -Tf /srv/site/.current-rel1 /srv/site/current 2>/dev/null" in command
    assert "|| mv -hf /srv/site/.current-rel1 /srv/site/current" in command


def test_upload_sends_one_archive_and_unpacks_it_remotely(tmp_path):
    connection = RecordingConnection()
    files = SiteFiles.scan(write_site(tmp_path / "site"))
    ReleaseEngine(connection, "/srv/site").upload("rel1", files, NullProgress())
    assert connection.commands[0] == "mkdir -p /srv/site/releases/rel1"
    assert [remote for _, remote in connection.puts] == ["/srv/site/releases/.rel1.tar"]
    assert connection.commands[1] == (
        "tar -xf /srv/site/releases/.rel1.tar -C /srv/site/releases/rel1"
        " && rm -f /srv/site/releases/.rel1.tar"
    )


def test_paths_with_spaces_are_quoted():
    connection = RecordingConnection()
    ReleaseEngine(connection, "/srv/my site").remove("rel 1")
    assert connection.commands == ["rm -rf '/srv/my site/releases/rel 1'"]


def test_a_failing_command_is_deploy_failed_with_its_stderr():
    connection = RecordingConnection({re.compile(".*"): Result(exited=1, stderr="disk full")})
    with pytest.raises(DevopsError) as failure:
        ReleaseEngine(connection, "/srv/site").activate("rel1")
    assert failure.value.code is ErrorCode.DEPLOY_FAILED and "disk full" in failure.value.message


def test_releases_are_listed_oldest_first_without_hidden_archives():
    listing = Result(stdout="dep_2_b\n.dep_3_c.tar\ndep_1_a\n")
    connection = RecordingConnection({re.compile("^ls "): listing})
    assert ReleaseEngine(connection, "/srv").releases() == ["dep_1_a", "dep_2_b"]


def test_prune_keeps_the_newest_and_every_protected_release():
    listing = Result(stdout="r1\nr2\nr3\nr4\nr5\n")
    connection = RecordingConnection({re.compile("^ls "): listing, re.compile("^rm "): Result()})
    removed = ReleaseEngine(connection, "/srv").prune(keep=2, protect={"r1"})
    assert removed == ["r2", "r3"]
    assert connection.commands[-1] == "rm -rf /srv/releases/r2 /srv/releases/r3"


def test_the_same_engine_really_runs_locally(tmp_path):
    engine = ReleaseEngine(LocalConnection(), str(tmp_path / "target"))
    files = SiteFiles.scan(write_site(tmp_path / "site"))
    engine.upload("rel1", files, NullProgress())
    engine.activate("rel1")
    assert engine.current() == "rel1"
    assert os.readlink(tmp_path / "target" / "current") == "releases/rel1"
    assert (Path(tmp_path / "target" / "current" / "css" / "site.css")).is_file()
