"""The release engine: the commands it sends, and what it does (and never does) to a real root.

It touches only the names it owns (release ids, ``current``, manifests and its own temporary
names), and leaves nothing behind that the next deploy cannot clean up. Delta uploads,
manifests and shared paths have their own module, ``test_delta.py``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from helpers import write_site
from invoke import Config, Context, MockContext, Result

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFiles
from devops_tasks.output import NullProgress
from devops_tasks.releases import LocalConnection, ReleaseEngine

R1, R2, R3, R4, R5 = (f"dep_170000000000{n}_0000000{n}" for n in range(1, 6))


class RecordingConnection:
    """A fabric-shaped connection over invoke's MockContext that remembers what it was sent."""

    def __init__(self, results: dict | None = None) -> None:
        self.context = MockContext(run=results or {re.compile(".*"): Result()}, repeat=True)
        self.commands: list[str] = []
        self.puts: list[tuple[bytes, str]] = []

    def run(self, command: str, **kwargs):
        self.commands.append(command)
        return self.context.run(command, **kwargs)

    def put(self, local, remote: str) -> None:
        self.puts.append((local.read(), remote))


@pytest.fixture
def site(tmp_path: Path) -> SiteFiles:
    return SiteFiles.scan(write_site(tmp_path / "site"))


@pytest.fixture
def engine(tmp_path: Path) -> ReleaseEngine:
    """The engine on this machine, over a root in the test's directory."""
    return ReleaseEngine(LocalConnection(), str(tmp_path / "target"))


def deploy(engine: ReleaseEngine, site: SiteFiles, *releases: str) -> None:
    for release in releases:
        engine.upload(release, site, NullProgress())
        engine.activate(release)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative (links not followed)."""
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


# --------------------------------------------------------------------------- commands sent


def test_activate_renames_a_fresh_relative_link_over_current():
    connection = RecordingConnection()
    ReleaseEngine(connection, "/srv/site/").activate(R1)
    (command,) = connection.commands
    assert f"test -d /srv/site/releases/{R1}" in command
    assert f"ln -sfn releases/{R1} /srv/site/.current-{R1}" in command
    # GNU mv -T first, BSD mv -h as the fallback: never move *into* the old target
    assert f"mv -Tf /srv/site/.current-{R1} /srv/site/current 2>/dev/null" in command
    assert f"|| mv -hf /srv/site/.current-{R1} /srv/site/current" in command


def test_paths_with_spaces_are_quoted():
    connection = RecordingConnection()
    ReleaseEngine(connection, "/srv/my site").remove(R1)
    assert connection.commands == [
        f"rm -rf '/srv/my site/releases/{R1}' '/srv/my site/releases/.{R1}.tar'"
        f" '/srv/my site/releases/.{R1}.partial' '/srv/my site/releases/.{R1}.pruned'"
        f" '/srv/my site/releases/.{R1}.standby' '/srv/my site/.current-{R1}'"
        f" '/srv/my site/.devops/manifests/{R1}.json'"
        f" '/srv/my site/releases/.{R1}.manifest'"
    ]


def test_a_failing_command_is_deploy_failed_with_its_stderr():
    connection = RecordingConnection({re.compile(".*"): Result(exited=1, stderr="disk full")})
    with pytest.raises(DevopsError) as failure:
        ReleaseEngine(connection, "/srv/site").activate(R1)
    assert failure.value.code is ErrorCode.DEPLOY_FAILED and "disk full" in failure.value.message


def test_releases_are_listed_oldest_first_and_only_release_ids_count():
    listing = Result(stdout=f"{R2}\n.{R3}.tar\n{R1}\nphotos\ndep_notes\n{R4}.old\n")
    connection = RecordingConnection({re.compile(".*ls "): listing})
    assert ReleaseEngine(connection, "/srv").releases() == [R1, R2]


def test_prune_keeps_the_newest_and_every_protected_release():
    listing = Result(stdout="\n".join([R1, R2, R3, R4, R5]))
    connection = RecordingConnection({re.compile(".*ls "): listing, re.compile("^cd "): Result()})
    removed = ReleaseEngine(connection, "/srv").prune(keep=2, protect={R1})
    assert removed == [R2, R3]
    command = connection.commands[-1]
    steps, _, background = command.partition("{ $n sh -c ")
    assert steps.split("\n") == [
        "cd /srv || exit 1",
        f"{{ mv releases/{R2} releases/.{R2}.pruned 2>/dev/null || rm -rf releases/{R2}; }}",
        f"{{ mv releases/{R3} releases/.{R3}.pruned 2>/dev/null || rm -rf releases/{R3}; }}",
        f"rm -f /srv/.devops/manifests/{R2}.json /srv/.devops/manifests/{R3}.json",
        # the background work at a low priority, where the host has nice
        "n=; command -v nice >/dev/null 2>&1 && n='nice -n 10'",
        "",
    ]
    job, redirections = background.rsplit(" </dev/null", 1)
    assert redirections == " >/dev/null 2>&1 & }"  # nothing of it holds the session open
    assert shlex.split(job)[0].startswith(f"rm -rf releases/.{R2}.pruned releases/.{R3}.pruned\n")


# --------------------------------------------------------------------------- a real root


def test_the_same_engine_really_runs_locally(engine, site, tmp_path):
    deploy(engine, site, R1)
    assert engine.current() == R1
    assert os.readlink(tmp_path / "target" / "current") == f"releases/{R1}"
    assert (tmp_path / "target" / "current" / "css" / "site.css").is_file()


def test_activate_says_which_release_it_replaced(engine, site):
    for release in (R1, R2):
        engine.upload(release, site, NullProgress())

    assert engine.activate(R1) is None  # the first switch
    assert engine.activate(R2) == R1
    assert engine.current() == R2


def test_a_linked_file_ships_as_a_copy_not_as_a_link_back_to_the_build_dir(engine, tmp_path):
    root = write_site(tmp_path / "site")
    (root / "home.html").symlink_to(root / "index.html")
    deploy(engine, SiteFiles.scan(root), R1)
    shipped = tmp_path / "target" / "current" / "home.html"
    assert not shipped.is_symlink()
    assert shipped.read_text() == (root / "index.html").read_text()


@pytest.mark.parametrize("name", ["photos", "../../victim", f"{R1}/../..", "", f" {R1}", "DEP_1_A"])
@pytest.mark.parametrize("operation", ["remove", "activate", "release_path"])
def test_no_operation_accepts_a_name_that_is_not_a_release_id(engine, tmp_path, operation, name):
    victim = tmp_path / "target" / "releases" / "photos"
    victim.mkdir(parents=True)
    with pytest.raises(DevopsError) as refused:
        getattr(engine, operation)(name)
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT
    assert victim.is_dir()


def test_prune_leaves_what_it_did_not_create_in_releases(engine, site, tmp_path):
    releases = tmp_path / "target" / "releases"
    (releases / "photos").mkdir(parents=True)
    (releases / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (releases / "notes.txt").write_text("mine")
    (releases / ".hidden").write_text("mine")
    (releases / "dep_notes").mkdir()
    deploy(engine, site, R1, R2, R3)

    assert engine.prune(keep=1, protect=set()) == [R1, R2]

    assert {"photos/cat.jpg", "notes.txt", ".hidden", "dep_notes", R3} <= tree(releases)
    assert engine.releases() == [R3]


def test_activate_never_replaces_a_current_that_is_not_a_link(engine, site, tmp_path):
    current = tmp_path / "target" / "current"
    current.parent.mkdir()
    current.write_text("the user's own file")
    engine.upload(R1, site, NullProgress())

    with pytest.raises(DevopsError) as refused:
        engine.activate(R1)

    assert refused.value.code is ErrorCode.DEPLOY_FAILED
    assert "not a symlink" in refused.value.message
    assert current.read_text() == "the user's own file"


def test_current_is_none_when_the_link_is_not_to_a_release(engine, tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "current").symlink_to(tmp_path)
    assert engine.current() is None


# --------------------------------------------------------------------------- interrupted runs


def test_sweep_removes_the_engines_leftovers_and_nothing_else(engine, tmp_path):
    root = tmp_path / "target"
    (root / "releases" / f".{R1}.partial" / "css").mkdir(parents=True)
    (root / "releases" / f".{R1}.tar").write_bytes(b"half an archive")
    (root / "releases" / f".{R3}.pruned" / "img").mkdir(parents=True)
    (root / "releases" / f".{R4}.standby.partial" / "img").mkdir(parents=True)
    (root / "releases" / f".{R5}.standby").mkdir(parents=True)  # the next deploy's start
    (root / f".current-{R2}").symlink_to(f"releases/{R2}")
    theirs = {
        "releases/.cache",
        "releases/.dep_notes.tar",
        f"releases/{R3}.tar",
        "releases/my.partial",
        ".current-site",
        ".current",
    }
    for name in theirs:
        (root / name).write_text("not the engine's")

    removed = engine.sweep()

    assert sorted(removed) == sorted(
        [
            f"releases/.{R1}.partial",
            f"releases/.{R1}.tar",
            f"releases/.{R3}.pruned",
            f"releases/.{R4}.standby.partial",
            f".current-{R2}",
        ]
    )
    assert tree(root) == {"releases", f"releases/.{R5}.standby", *theirs}


def test_sweep_of_a_root_that_does_not_exist_yet_removes_nothing(engine):
    assert engine.sweep() == []


def test_remove_also_removes_the_temporary_files_of_that_release(engine, site, tmp_path):
    root = tmp_path / "target"
    (root / "releases" / f".{R1}.partial").mkdir(parents=True)
    (root / "releases" / f".{R1}.tar").write_bytes(b"x")
    (root / f".current-{R1}").symlink_to(f"releases/{R1}")
    engine.remove(R1)
    assert tree(root) == {"releases"}


# --------------------------------------------------------------------------- child processes


def test_engine_commands_never_see_the_master_key(engine, site, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    monkeypatch.setenv("DEVOPS_MASTER_PASSPHRASE", "correct horse battery staple")
    deploy(engine, site, R1)

    environment = engine.run_in_release(R1, "env")

    assert "PATH=" in environment  # the command really ran
    assert "DEVOPS_MASTER" not in environment
    assert "ab" * 32 not in environment


def test_a_dry_run_config_does_not_make_the_engine_pretend(site, tmp_path, capfd):
    dry = Context(Config(overrides={"run": {"dry": True, "echo": True}}))
    engine = ReleaseEngine(LocalConnection(dry), str(tmp_path / "target"))

    deploy(engine, site, R1)

    assert engine.current() == R1
    assert (tmp_path / "target" / "current" / "index.html").is_file()
    assert capfd.readouterr().out == ""  # and nothing echoed


def test_an_orphaned_unpack_still_running_never_completes_a_release_after_a_sweep(engine, tmp_path):
    root = tmp_path / "target"
    partial = root / "releases" / f".{R1}.partial"
    partial.mkdir(parents=True)
    # What a killed deploy's last command looks like: it keeps writing, then renames.
    orphan = subprocess.Popen(
        [
            "sh",
            "-c",
            f"cd {shlex.quote(str(partial))} && for i in $(seq 1 40); do echo $i > f$i; "
            f"sleep 0.01; done; mv {shlex.quote(str(partial))} "
            f"{shlex.quote(str(root / 'releases' / R1))}",
        ]
    )
    time.sleep(0.1)

    assert engine.sweep() == [f"releases/.{R1}.partial"]
    orphan.wait(timeout=10)

    assert not (root / "releases" / R1).exists()  # never a release with holes in it
    engine.sweep()  # whatever the orphan kept writing into goes next time
    assert tree(root) == {"releases"}
