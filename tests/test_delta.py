"""Delta uploads, manifests, shared paths and command timeouts, on a real sshd host and here.

Each behaviour that both sides share runs twice: over SSH (a real sshd on 127.0.0.2, whose
root is on this machine's disk, so the test reads inodes directly) and on this machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fleet import configure, live, releases, roots
from helpers import write_site
from sshd import SshServers

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.files import SiteFiles
from devops_tasks.known_releases import KnownReleases
from devops_tasks.manifests import Survey, parse_manifest, plan_upload
from devops_tasks.output import NullProgress
from devops_tasks.releases import LocalConnection, ReleaseEngine
from devops_tasks.ssh_hosts import connect

R1, R2, R3, R4 = (f"dep_170000000000{n}_0000000{n}" for n in range(1, 5))
BIG = os.urandom(200_000)


class Counting:
    """A verified fabric connection that counts the commands it runs and the bytes it sends
    and receives."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.runs = 0
        self.sessions = 0
        self.sent = 0
        self.received = 0

    def run(self, command: str, **kwargs: Any) -> Any:
        self.runs += 1
        return self.connection.run(command, **kwargs)

    def create_session(self) -> Any:
        self.sessions += 1
        channel = self.connection.create_session()
        sendall = channel.sendall

        def counted(data: bytes) -> None:
            self.sent += len(data)
            sendall(data)

        def received(size: int) -> bytes:
            data: bytes = recv(size)
            self.received += len(data)
            return data

        recv = channel.recv
        channel.sendall = counted
        channel.recv = received
        return channel


@dataclass
class Target:
    engine: ReleaseEngine
    root: Path

    def release(self, release: str) -> Path:
        return self.root / "releases" / release

    def upload(self, release: str, build: Path, **options: Any) -> Any:
        return self.engine.upload(release, SiteFiles.scan(build), NullProgress(), **options)

    def deploy(self, release: str, build: Path, **options: Any) -> Any:
        upload = self.upload(release, build, **options)
        self.engine.activate(release)
        return upload


@pytest.fixture
def make_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Makes an engine over SSH to a real host (``"ssh"``) or on this machine (``"local"``)."""
    with contextlib.ExitStack() as stack:

        def make(side: str, **options: Any) -> Target:
            if side == "ssh-remembering":  # as the ssh target runs it
                side, options["known"] = "ssh", KnownReleases(tmp_path / "known")
            if side == "local":
                root = tmp_path / "my root"  # a space: every path is quoted
                return Target(ReleaseEngine(LocalConnection(), str(root), **options), root)
            servers: SshServers = request.getfixturevalue("ssh_servers")
            root = request.getfixturevalue("fleet") / "my root"
            host = servers.hosts[0]
            connection = connect(
                host.ip,
                port=host.port,
                user=servers.user,
                key_file=servers.client_key,
                known_hosts=servers.known_hosts,
            )
            stack.callback(connection.close)
            return Target(ReleaseEngine(Counting(connection), str(root), **options), root)

        yield make


@pytest.fixture(params=["ssh", "ssh-remembering", "local"])
def target(request: pytest.FixtureRequest, make_target: Any) -> Target:
    """The engine over SSH to a real host (remembering the releases it made, or not), then
    on this machine."""
    return make_target(request.param)


@pytest.fixture
def over_ssh(make_target: Any) -> Target:
    return make_target("ssh")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build with a page, a large binary, a stylesheet and a script."""
    root = write_site(tmp_path / "build", "v1")
    (root / "img").mkdir()
    (root / "img" / "big.bin").write_bytes(BIG)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o644)
    return root


def add_pages(build: Path, count: int) -> None:
    """``count`` small pages under ``build/docs/``."""
    (build / "docs").mkdir(exist_ok=True)
    for n in range(count):
        (build / "docs" / f"page-{n:05d}.html").write_text(f"<p>{n}</p>\n")


def snapshot(directory: Path) -> dict[str, tuple[int, bytes, int, int]]:
    """``path -> (inode, content, mode, mtime)`` of every file below ``directory``."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = Path(folder) / name
            status = path.lstat()
            found[str(path.relative_to(directory))] = (
                status.st_ino,
                path.read_bytes(),
                status.st_mode & 0o7777,
                int(status.st_mtime),
            )
    return found


def inode(path: Path) -> int:
    return path.lstat().st_ino


def tree(root: Path) -> set[str]:
    """Every path below ``root``, relative, links not followed."""
    return {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, directories, names in os.walk(root)
        for name in directories + names
    }


# --------------------------------------------------------------------------- what is sent


def test_a_host_with_no_earlier_release_gets_every_file(target, build):
    upload = target.deploy(R1, build)

    assert (upload.base, upload.files_linked, upload.files_sent) == (None, 0, 4)
    assert upload.bytes_sent == SiteFiles.scan(build).total_bytes
    assert (target.release(R1) / "img" / "big.bin").read_bytes() == BIG


def test_files_that_straddle_the_hosts_read_records_arrive_whole(over_ssh, build):
    # the host's tar reads 64 KiB records from a pipe the connection fills in other pieces
    for size in (65_535, 65_536, 65_537, 3 * 65_536 + 1):
        (build / "img" / f"{size}.bin").write_bytes(os.urandom(size))
    add_pages(build, 50)
    over_ssh.deploy(R1, build)
    sent = {str(p.relative_to(build)): p.read_bytes() for p in build.rglob("*") if p.is_file()}
    made = {path: content for path, (_, content, _, _) in snapshot(over_ssh.release(R1)).items()}
    assert made == sent


def test_a_delta_sends_only_the_changed_file(target, build):
    target.deploy(R1, build)
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent, upload.files_linked) == (R1, 1, 3)
    assert upload.bytes_sent == len("<h1>v2</h1>\n")
    assert (target.release(R2) / "index.html").read_text() == "<h1>v2</h1>\n"
    assert (target.release(R2) / "img" / "big.bin").read_bytes() == BIG


def test_only_the_changed_file_crosses_the_wire(over_ssh, build):
    counting = over_ssh.engine.connection
    over_ssh.deploy(R1, build)
    assert counting.sent > len(BIG)  # the counter sees what is sent
    counting.sent = 0
    (build / "index.html").write_text("<h1>v2</h1>\n")

    over_ssh.upload(R2, build)

    assert counting.sent < len(BIG) // 4  # headers, one page and the manifest


def test_a_site_of_thousands_of_files_is_linked_whole_but_the_changed_file(over_ssh, build):
    for n in range(3000):  # a manifest and a listing of several channel windows
        page = build / "docs" / f"section-{n % 40:02d}" / f"a-long-page-name-{n:05d}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<p>{n}</p>\n")
    over_ssh.deploy(R1, build)
    (build / "docs" / "section-07" / "a-long-page-name-00007.html").write_text("<p>new</p>\n")

    upload = over_ssh.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (1, 3003)


def test_a_host_holding_a_release_as_this_machine_made_it_sends_back_neither_manifest_nor_listing(
    make_target, build
):
    add_pages(build, 2000)
    target = make_target("ssh-remembering")
    target.deploy(R1, build)
    counting = target.engine.connection
    counting.received = 0
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent, upload.files_linked) == (R1, 1, 2003)
    assert counting.received < 1000  # R1's manifest alone is 300 kB
    assert tree(target.release(R2)) == tree(build)


def test_a_release_made_unchanged_from_its_base_is_remembered_too(make_target, build):
    add_pages(build, 2000)
    target = make_target("ssh-remembering")
    target.deploy(R1, build)
    target.deploy(R2, build)  # nothing changed: R1's manifest and listing
    counting = target.engine.connection
    counting.received = 0
    (build / "index.html").write_text("<h1>v3</h1>\n")

    upload = target.upload(R3, build)

    assert (upload.base, upload.files_sent) == (R2, 1)
    assert counting.received < 1000


def test_a_host_sends_back_what_this_machine_does_not_remember(make_target, build):
    target = make_target("ssh-remembering")
    target.deploy(R1, build)
    counting = target.engine.connection
    manifest = target.root / ".devops" / "manifests" / f"{R1}.json"
    manifest.write_bytes(manifest.read_bytes() + b" ")  # the same release, but not as made
    counting.received = 0
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent, upload.files_linked) == (R1, 1, 3)
    assert counting.received > manifest.stat().st_size


def test_what_a_host_proves_it_holds_is_what_its_listing_would_have_said(make_target, build):
    remembering, plain = make_target("ssh-remembering"), make_target("ssh")
    remembering.engine.create_releases_dir()
    (remembering.root / "shared" / "config").mkdir(parents=True)
    (remembering.root / "shared" / "config" / ".env").write_text("SECRET=1\n")
    remembering.deploy(R1, build, shared=["config/.env"])

    assert remembering.engine.survey() == plain.engine.survey()


def test_a_release_with_exactly_the_files_of_the_live_one_has_its_manifest(target, build):
    target.deploy(R1, build)

    upload = target.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (0, 4)
    assert target.engine.manifest(R2) == target.engine.manifest(R1)


def test_an_unchanged_build_sends_the_host_neither_files_nor_a_manifest(over_ssh, build):
    add_pages(build, 2000)
    over_ssh.deploy(R1, build)
    counting = over_ssh.engine.connection
    counting.sent = 0

    over_ssh.upload(R2, build)

    assert counting.sent < 4096  # the end of an empty tar; R1's manifest is 300 kB
    manifests = over_ssh.root / ".devops" / "manifests"
    assert (manifests / f"{R2}.json").read_bytes() == (manifests / f"{R1}.json").read_bytes()


def test_a_manifest_written_by_an_earlier_version_still_links(target, build):
    target.deploy(R1, build)
    manifest = target.root / ".devops" / "manifests" / f"{R1}.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "release": R1}))
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent, upload.files_linked) == (R1, 1, 3)


def test_an_upload_over_ssh_is_one_look_and_one_stream(over_ssh, build):
    counting = over_ssh.engine.connection
    over_ssh.deploy(R1, build)
    counting.runs = counting.sessions = 0
    (build / "index.html").write_text("<h1>v2</h1>\n")

    over_ssh.upload(R2, build)

    assert (counting.runs, counting.sessions) == (0, 2)


def test_the_host_links_the_unchanged_files_itself_so_none_crosses_the_wire(over_ssh, build):
    add_pages(build, 3000)
    over_ssh.deploy(R1, build)
    counting = over_ssh.engine.connection
    counting.sent = 0
    (build / "index.html").write_text("<h1>v2</h1>\n")

    over_ssh.upload(R2, build)

    manifest = (over_ssh.root / ".devops" / "manifests" / f"{R2}.json").stat().st_size
    assert counting.sent < manifest + 64_000  # a header per linked file would be 1.5 MB more
    assert tree(over_ssh.release(R2)) == tree(build)


def _add_file(release: Path) -> None:
    (release / "notes.txt").write_text("written on the host")


def _add_nested_directories(release: Path) -> None:
    (release / "cache" / "deep").mkdir(parents=True)
    (release / "cache" / "deep" / "entry").write_text("x")


def _add_empty_directory(release: Path) -> None:
    (release / "empty").mkdir()


def _add_link(release: Path) -> None:
    (release / "link").symlink_to("index.html")


@pytest.mark.parametrize(
    "add", [_add_file, _add_nested_directories, _add_empty_directory, _add_link]
)
def test_what_the_current_release_holds_beyond_its_build_is_not_in_the_next(target, build, add):
    target.deploy(R1, build)
    old = target.release(R1)
    add(old)
    owner = (old / "index.html").stat()  # the deploy user's, so a host may link them all
    for folder, directories, names in os.walk(old):
        for name in directories + names:
            os.lchown(os.path.join(folder, name), owner.st_uid, owner.st_gid)
    before = tree(old)
    (build / "css" / "site.css").unlink()
    (build / "css").rmdir()
    (build / "index.html").write_text("<h1>v2</h1>\n")

    target.upload(R2, build)

    assert tree(target.release(R2)) == tree(build)
    assert tree(old) == before


def test_a_file_the_deploy_user_may_not_link_leaves_the_host_to_link_each_file(over_ssh, build):
    over_ssh.deploy(R1, build)
    foreign = over_ssh.release(R1) / "foreign.bin"
    foreign.write_bytes(b"root's")
    foreign.chmod(0o600)  # root's: the test user may not hard-link it (protected_hardlinks)
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = over_ssh.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (1, 3)
    assert tree(over_ssh.release(R2)) == tree(build)
    assert inode(over_ssh.release(R2) / "img" / "big.bin") == inode(
        over_ssh.release(R1) / "img" / "big.bin"
    )


def test_a_file_added_to_the_current_release_during_the_copy_is_not_in_the_next(over_ssh, build):
    over_ssh.deploy(R1, build)
    counting = over_ssh.engine.connection
    opened = counting.create_session

    def racing() -> Any:
        channel = opened()
        run = channel.exec_command

        def exec_command(command: str) -> None:
            if "cp -al" in command:  # after the look, before the copy
                late = over_ssh.release(R1) / "late.txt"
                late.write_text("written meanwhile")
                os.chown(late, owner.st_uid, owner.st_gid)  # the deploy user's, so linkable
            run(command)

        channel.exec_command = exec_command
        return channel

    counting.create_session = racing
    owner = (over_ssh.release(R1) / "index.html").stat()
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = over_ssh.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (1, 3)
    assert tree(over_ssh.release(R2)) == tree(build)


def test_the_older_release_stays_byte_identical_with_the_same_inodes(target, build):
    target.deploy(R1, build)
    before = snapshot(target.release(R1))
    (build / "index.html").write_text("<h1>v2, longer</h1>\n")
    (build / "run.sh").chmod(0o755)
    (build / "css" / "site.css").unlink()

    target.upload(R2, build)

    assert snapshot(target.release(R1)) == before


def test_a_changed_file_is_a_new_inode_and_an_unchanged_one_is_shared(target, build):
    target.deploy(R1, build)
    (build / "index.html").write_text("<h1>v2</h1>\n")

    target.upload(R2, build)

    old, new = target.release(R1), target.release(R2)
    assert inode(new / "index.html") != inode(old / "index.html")
    assert inode(new / "img" / "big.bin") == inode(old / "img" / "big.bin")


def test_a_removed_file_is_gone_from_the_new_release_only(target, build):
    target.deploy(R1, build)
    (build / "css" / "site.css").unlink()
    (build / "css").rmdir()

    target.upload(R2, build)

    assert not (target.release(R2) / "css").exists()
    assert (target.release(R1) / "css" / "site.css").is_file()


def test_a_mode_change_alone_is_a_new_inode_with_the_new_mode(target, build):
    target.deploy(R1, build)
    (build / "run.sh").chmod(0o755)

    upload = target.upload(R2, build)

    old, new = target.release(R1) / "run.sh", target.release(R2) / "run.sh"
    assert upload.files_sent == 1
    assert (old.stat().st_mode & 0o777, new.stat().st_mode & 0o777) == (0o644, 0o755)
    assert inode(old) != inode(new)


def test_files_keep_their_read_and_execute_bits_but_never_group_or_world_write(target, build):
    (build / "run.sh").chmod(0o4777)

    target.deploy(R1, build)

    assert (target.release(R1) / "run.sh").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize(
    "edit",
    [
        lambda path: path.write_text("edited on the host, and longer"),
        lambda path: os.utime(path, (path.stat().st_mtime - 100,) * 2),  # same size
        lambda path: path.chmod(0o600),
    ],
    ids=["size", "time", "mode"],
)
def test_a_file_edited_by_hand_in_the_current_release_is_sent_in_full(target, build, edit):
    target.deploy(R1, build)
    edit(target.release(R1) / "index.html")

    upload = target.upload(R2, build)

    assert upload.files_sent == 1
    assert (target.release(R2) / "index.html").read_text() == "<h1>v1</h1>\n"
    assert inode(target.release(R2) / "index.html") != inode(target.release(R1) / "index.html")


def test_a_current_release_without_a_manifest_gets_every_file(target, build):
    target.deploy(R1, build)
    (target.root / ".devops" / "manifests" / f"{R1}.json").unlink()

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent) == (None, 4)


def test_a_manifest_that_is_not_one_is_ignored_and_every_file_sent(target, build):
    target.deploy(R1, build)
    manifest = target.root / ".devops" / "manifests" / f"{R1}.json"
    document = json.loads(manifest.read_text())
    document["files"]["index.html"]["size"] = "12; rm -rf /"
    manifest.write_text(json.dumps(document))

    upload = target.upload(R2, build)

    assert (upload.base, upload.files_sent) == (None, 4)
    assert target.engine.manifest(R1) is None


@pytest.mark.parametrize("content", [BIG[:1000], BIG + b"more"], ids=["shrank", "grew"])
def test_a_build_file_that_changes_during_the_upload_stops_it_and_nothing_is_released(
    target, build, content
):
    files = SiteFiles.scan(build)
    (build / "img" / "big.bin").write_bytes(content)  # after the scan, before the upload

    with pytest.raises(DevopsError) as stopped:
        target.engine.upload(R1, files, NullProgress())

    assert stopped.value.code is ErrorCode.VALIDATION_FAILED
    assert "img/big.bin changed" in stopped.value.message
    assert target.engine.releases() == []
    # all that may be left is the partial release (if the host began it before the stop)
    assert target.engine.sweep() in ([], [f"releases/.{R1}.partial"])


def test_a_release_that_exists_is_never_uploaded_over(target, build):
    target.deploy(R1, build)
    before = snapshot(target.release(R1))
    (build / "index.html").write_text("<h1>v2</h1>\n")

    with pytest.raises(DevopsError):
        target.upload(R1, build)

    assert snapshot(target.release(R1)) == before


def test_an_upload_that_finds_its_partial_directory_in_the_way_says_so(target, build):
    (build / "img" / "huge.bin").write_bytes(os.urandom(4 << 20))  # more than a channel window
    target.engine.create_releases_dir()
    in_the_way = target.root / "releases" / f".{R1}.partial"
    in_the_way.mkdir()

    with pytest.raises(DevopsError) as refused:
        target.upload(R1, build)

    assert "exists" in refused.value.message.lower()
    assert os.listdir(in_the_way) == [] and target.engine.releases() == []


def settled(root: Path, expected: set[str]) -> set[str]:
    """The names in ``root``'s releases/ once they are ``expected`` (work in the background
    done), or as they are after ten seconds."""
    deadline = time.monotonic() + 10
    while set(os.listdir(root / "releases")) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return set(os.listdir(root / "releases"))


def test_a_prune_after_a_sweep_under_the_lock_needs_no_second_listing(over_ssh, build):
    for release in (R1, R2, R3):
        over_ssh.deploy(release, build)
    over_ssh.engine.sweep()
    over_ssh.deploy(R4, build)
    counting = over_ssh.engine.connection
    counting.sessions = 0

    removed = over_ssh.engine.prune(2, set())

    assert removed == [R1, R2]
    assert counting.sessions == 1
    assert over_ssh.engine.releases() == [R3, R4]


def look(target: Target) -> None:
    """Run the engine's look as the deploy lock's command runs it, and give it the output."""
    command = target.engine.look_command()
    target.engine.seen(target.engine.connection.connection.run(command, hide=True).stdout)


def test_a_look_taken_with_the_lock_answers_current_and_sweep_without_asking(over_ssh, build):
    over_ssh.deploy(R1, build)
    (over_ssh.root / "releases" / f".{R2}.partial").mkdir()
    look(over_ssh)
    counting = over_ssh.engine.connection
    counting.sessions = 0

    assert over_ssh.engine.current() == R1
    assert over_ssh.engine.sweep() == [f"releases/.{R2}.partial"]
    assert counting.sessions == 1  # the removal
    assert not (over_ssh.root / "releases" / f".{R2}.partial").exists()


def test_a_look_is_forgotten_once_the_engine_has_run_a_command(over_ssh, build):
    over_ssh.deploy(R1, build)
    over_ssh.upload(R2, build)
    look(over_ssh)

    over_ssh.engine.activate(R2)

    assert over_ssh.engine.current() == R2


def test_old_releases_pruned_on_a_host_leave_the_listing_at_once_and_the_disk_soon(over_ssh, build):
    for release in (R1, R2, R3):
        (build / "index.html").write_text(f"<h1>{release}</h1>\n")
        over_ssh.deploy(release, build)

    assert over_ssh.engine.prune(keep=1, protect=set()) == [R1, R2]

    assert over_ssh.engine.releases() == [R3]
    assert sorted(os.listdir(over_ssh.root / ".devops" / "manifests")) == [f"{R3}.json"]
    assert settled(over_ssh.root, {R3, f".{R3}.standby"}) == {R3, f".{R3}.standby"}


def test_after_a_deploy_the_host_readies_a_linked_copy_of_the_live_release(over_ssh, build):
    over_ssh.deploy(R1, build)

    over_ssh.engine.prune(keep=5, protect=set())

    assert settled(over_ssh.root, {R1, f".{R1}.standby"}) == {R1, f".{R1}.standby"}
    standby = over_ssh.root / "releases" / f".{R1}.standby"
    assert snapshot(standby) == snapshot(over_ssh.release(R1))


def test_the_next_upload_starts_from_the_standby_and_leaves_the_live_release_alone(over_ssh, build):
    over_ssh.deploy(R1, build)
    over_ssh.engine.prune(keep=5, protect=set())
    settled(over_ssh.root, {R1, f".{R1}.standby"})
    before = snapshot(over_ssh.release(R1))
    (build / "index.html").write_text("<h1>v2</h1>\n")
    (build / "css" / "site.css").unlink()
    (build / "css").rmdir()

    upload = over_ssh.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (1, 2)
    assert set(os.listdir(over_ssh.root / "releases")) == {R1, R2}
    assert tree(over_ssh.release(R2)) == tree(build)
    assert snapshot(over_ssh.release(R1)) == before
    assert inode(over_ssh.release(R2) / "img" / "big.bin") == inode(
        over_ssh.release(R1) / "img" / "big.bin"
    )


def test_a_file_removed_by_hand_after_the_standby_was_made_is_still_in_the_next(over_ssh, build):
    over_ssh.deploy(R1, build)
    over_ssh.engine.prune(keep=5, protect=set())
    settled(over_ssh.root, {R1, f".{R1}.standby"})
    (over_ssh.release(R1) / "img" / "big.bin").unlink()  # the standby still has it

    upload = over_ssh.upload(R2, build)

    assert (upload.files_sent, upload.files_linked) == (1, 3)
    assert (over_ssh.release(R2) / "img" / "big.bin").read_bytes() == BIG
    assert tree(over_ssh.release(R2)) == tree(build)


def test_the_standby_follows_the_live_release_after_a_switch_back(over_ssh, build):
    over_ssh.deploy(R1, build)
    (build / "index.html").write_text("<h1>v2</h1>\n")
    over_ssh.deploy(R2, build)
    over_ssh.engine.prune(keep=5, protect=set())
    settled(over_ssh.root, {R1, R2, f".{R2}.standby"})

    over_ssh.engine.activate(R1)
    over_ssh.engine.prune(keep=5, protect=set())

    assert settled(over_ssh.root, {R1, R2, f".{R1}.standby"}) == {R1, R2, f".{R1}.standby"}


def test_a_look_ahead_at_a_release_no_longer_live_is_taken_again(over_ssh, build):
    over_ssh.deploy(R1, build)
    (build / "index.html").write_text("<h1>v2</h1>\n")
    over_ssh.deploy(R2, build)
    over_ssh.engine.survey_ahead().wait()  # sees R2 live
    over_ssh.engine.activate(R1)  # another deploy's rollback, before this one's lock
    over_ssh.engine.remove(R2)
    (build / "index.html").write_text("<h1>v3</h1>\n")

    upload = over_ssh.upload(R3, build)

    assert (upload.base, upload.files_sent, upload.files_linked) == (R1, 1, 3)
    assert tree(over_ssh.release(R3)) == tree(build)


def test_a_look_ahead_that_failed_is_taken_again(over_ssh, build, monkeypatch):
    over_ssh.deploy(R1, build)
    bulk = over_ssh.engine._bulk
    looked, survey = [], bulk.survey

    def dropped_once(*args: Any, **kwargs: Any) -> Any:
        looked.append(kwargs.get("create", True))
        if len(looked) == 1:
            raise EOFError("the connection dropped")
        return survey(*args, **kwargs)

    monkeypatch.setattr(bulk, "survey", dropped_once)
    over_ssh.engine.survey_ahead().wait()
    (build / "index.html").write_text("<h1>v2</h1>\n")

    upload = over_ssh.upload(R2, build)

    assert looked == [False, True]  # ahead (reading only), then under the lock
    assert (upload.base, upload.files_sent) == (R1, 1)


# --------------------------------------------------------------------------- manifests


def test_the_manifest_describes_every_file_and_lives_outside_the_release(target, build):
    target.deploy(R1, build)

    manifest = target.engine.manifest(R1)

    page = build / "index.html"
    assert manifest["index.html"] == {
        "sha256": hashlib.sha256(page.read_bytes()).hexdigest(),
        "size": page.stat().st_size,
        "mode": "644",
        "mtime": int(page.stat().st_mtime),
    }
    assert sorted(manifest) == ["css/site.css", "img/big.bin", "index.html", "run.sh"]
    assert (target.root / ".devops" / "manifests" / f"{R1}.json").is_file()
    assert sorted(os.listdir(target.release(R1))) == ["css", "img", "index.html", "run.sh"]


@pytest.mark.parametrize(
    "name", ['say "hi".html', "back\\slash.html", "caf\u00e9.html", "tab\t.html", "\udcff.html"]
)
def test_a_manifest_is_the_json_of_its_entries_whatever_the_paths(build, name):
    (build / name).write_text("x")
    files = SiteFiles.scan(build, digests=("sha256",))
    plan = plan_upload(R1, files, lambda: files.digests("sha256"), Survey(None, None, {}), ())

    document = json.loads(plan.manifest)

    assert document["files"][name] == {
        "sha256": hashlib.sha256(b"x").hexdigest(),
        "size": 1,
        "mode": "644",
        "mtime": int((build / name).stat().st_mtime),
    }
    assert plan.manifest == json.dumps(document, separators=(",", ":")).encode()


def test_a_linked_file_keeps_its_entry_from_the_release_it_is_linked_from(target, build):
    target.deploy(R1, build)
    os.utime(build / "index.html", (1_000_000_000, 1_000_000_000))  # rebuilt, same content

    upload = target.upload(R2, build)

    assert upload.files_sent == 0
    assert target.engine.manifest(R2) == target.engine.manifest(R1)


def test_a_manifest_of_many_megabytes_reads_back_whole(target, build):
    target.deploy(R1, build)
    entry = {"sha256": "ab" * 32, "size": 1, "mode": "644", "mtime": 1}
    files = {f"page/{n:06d}/index.html": {**entry, "size": n} for n in range(60_000)}
    manifest = target.root / ".devops" / "manifests" / f"{R1}.json"
    manifest.write_text(json.dumps({"version": 1, "release": R1, "files": files}))

    assert target.engine.manifest(R1) == files


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"version": 2, "files": {}}',
        b'{"version": 1, "files": []}',
        b'{"version": 1, "files": {"a": "b"}}',
        b'{"version": 1, "files": {"a": {"sha256": "x", "size": 1, "mode": "644", "mtime": 1}}}',
        b'{"version": 1, "files": {"a": {"sha256": "%s", "size": -1, "mode": "644", "mtime": 1}}}'
        % (b"a" * 64),
        b'{"version": 1, "files": {"a": {"sha256": "%s", "size": 1, "mode": "9", "mtime": 1}}}'
        % (b"a" * 64),
        b'{"version": 1, "files": {"a": {"sha256": "%s", "size": 1, "mode": "644", "mtime": "1"}}}'
        % (b"a" * 64),
        b'{"version": 1, "files": {"a": {"sha256": "%s", "size": 1, "mode": [6], "mtime": 1}}}'
        % (b"a" * 64),
        b'{"version": 1, "files": {"a": {"sha256": "%s", "size": 1, "mode": "644", "mtime": 1},'
        b' "b": {"sha256": "%s", "size": 1, "mode": "644", "mtime": 1}}}' % (b"a" * 64, b"b" * 63),
    ],
)
def test_a_manifest_that_is_not_well_formed_in_every_part_is_none(document):
    assert parse_manifest(document) is None


def test_a_release_that_never_had_a_manifest_has_none(target):
    assert target.engine.manifest(R1) is None


@pytest.mark.parametrize("removal", ["remove", "prune"])
def test_the_manifest_goes_with_its_release(target, build, removal):
    target.deploy(R1, build)
    target.deploy(R2, build)

    if removal == "remove":
        target.engine.remove(R1)
    else:
        assert target.engine.prune(keep=1, protect=set()) == [R1]

    assert sorted(os.listdir(target.root / ".devops" / "manifests")) == [f"{R2}.json"]


def test_sweep_removes_half_written_and_orphaned_manifests_only(target, build):
    target.deploy(R1, build)
    manifests = target.root / ".devops" / "manifests"
    (target.root / "releases" / f".{R2}.manifest").write_text("{")  # before its rename
    (manifests / f"{R3}.json").write_text("{}")  # its release never made it
    (manifests / "notes.txt").write_text("mine")

    removed = target.engine.sweep()

    assert sorted(removed) == [f".devops/manifests/{R3}.json", f"releases/.{R2}.manifest"]
    assert sorted(os.listdir(manifests)) == [f"{R1}.json", "notes.txt"]
    assert sorted(os.listdir(target.root / "releases")) == [R1]


# --------------------------------------------------------------------------- shared paths


def test_shared_paths_replace_what_the_build_has_with_links_to_the_shared_directory(target, build):
    target.engine.create_releases_dir()  # as the login user, who owns the root
    shared = target.root / "shared"
    (shared / "uploads").mkdir()
    (shared / "uploads" / "cat.jpg").write_bytes(b"\xff\xd8 a user's upload")
    (shared / "config").mkdir()
    (shared / "config" / ".env").write_text("SECRET=1\n")
    (build / "uploads").mkdir()
    (build / "uploads" / "placeholder.jpg").write_bytes(b"from the build")

    upload = target.deploy(R1, build, shared=["uploads", "config/.env/"])

    release = target.release(R1)
    assert (release / "uploads").is_symlink() and (release / "config" / ".env").is_symlink()
    assert (release / "uploads" / "cat.jpg").read_bytes() == b"\xff\xd8 a user's upload"
    assert (target.root / "current" / "config" / ".env").read_text() == "SECRET=1\n"
    assert not (release / "uploads" / "placeholder.jpg").exists()
    assert upload.files_sent == 4  # the build's uploads/ was not sent
    assert "uploads/placeholder.jpg" not in target.engine.manifest(R1)


def test_a_shared_path_is_linked_again_in_the_next_release(target, build):
    target.engine.create_releases_dir()
    (target.root / "shared" / "uploads").mkdir()
    target.deploy(R1, build, shared=["uploads"])

    upload = target.deploy(R2, build, shared=["uploads"])

    assert upload.files_sent == 0
    assert (target.release(R2) / "uploads").resolve() == (target.root / "shared" / "uploads")


def test_a_shared_path_missing_on_the_host_fails_the_upload_and_nothing_is_released(target, build):
    with pytest.raises(DevopsError) as refused:
        target.upload(R1, build, shared=["uploads"])

    assert refused.value.code is ErrorCode.DEPLOY_FAILED
    assert f"{target.root}/shared/uploads does not exist" in refused.value.message
    assert target.engine.releases() == []


@pytest.mark.parametrize("shared", [["uploads", "uploads/cats"], ["../etc"], ["/etc"], ["."]])
def test_a_shared_path_that_could_reach_outside_its_place_is_refused(tmp_path, build, shared):
    engine = ReleaseEngine(LocalConnection(), str(tmp_path / "target"))

    with pytest.raises(DevopsError) as refused:
        engine.upload(R1, SiteFiles.scan(build), NullProgress(), shared=shared)

    assert refused.value.code is ErrorCode.CONFIG_INVALID
    assert not (tmp_path / "target").exists()


def test_create_releases_dir_makes_the_shared_directory(target):
    target.engine.create_releases_dir()

    assert (target.root / "shared").is_dir() and (target.root / "releases").is_dir()


# --------------------------------------------------------------------------- commands in a release


def test_a_hook_runs_in_the_release_directory(target, build):
    target.deploy(R1, build)

    output = target.engine.run_in_release(R1, "pwd; cat index.html")

    assert output == f"{target.release(R1)}\n<h1>v1</h1>\n"


def test_a_failing_hook_reports_its_exit_status_and_the_tail_of_its_output(target, build):
    target.deploy(R1, build)

    with pytest.raises(DevopsError) as failed:
        target.engine.run_in_release(R1, "for i in $(seq 1 50); do echo line $i; done >&2; exit 3")

    error = failed.value
    assert error.code is ErrorCode.DEPLOY_FAILED and error.details["exit_status"] == 3
    assert "exit status 3" in error.message
    assert "line 31\n" in error.message and error.message.endswith("line 50")
    assert "line 30\n" not in error.message


@pytest.mark.parametrize("side", ["ssh", "local"])
def test_a_command_that_outlives_the_timeout_is_abandoned_and_named(make_target, build, side):
    target = make_target(side, command_timeout=0.5)
    target.deploy(R1, build)
    started = time.monotonic()

    with pytest.raises(DevopsError) as abandoned:
        target.engine.run_in_release(R1, "sleep 5")

    elapsed = time.monotonic() - started
    assert elapsed < 4, f"abandoned after {elapsed:.1f} s"
    assert abandoned.value.code is ErrorCode.DEPLOY_FAILED
    assert "`sleep 5`" in abandoned.value.message and "0.5 s" in abandoned.value.message


# --------------------------------------------------------------------------- the targets


def test_a_redeploy_to_the_fleet_sends_each_host_only_the_changed_file(project, cli, hosts):
    first = cli("deploy", "--json").json
    before = [snapshot(root / "releases" / first["release"]) for root in hosts]
    write_site(project.root / "dist", "v2")

    second = cli("deploy", "--json").json

    page = len("<h1>v2</h1>\n")
    assert second["bytes_uploaded"] == 3 * page
    assert [h["sent"] for h in second["details"]["hosts"]] == [
        {"files": 1, "bytes": page, "linked": 1}
    ] * 3
    assert [snapshot(root / "releases" / first["release"]) for root in hosts] == before
    assert [live(root) for root in hosts] == [second["release"]] * 3


def test_shared_paths_in_the_config_are_linked_on_every_host(project, cli, ssh_servers, fleet):
    configure(project, ssh_servers, fleet, shared=["uploads"])
    assert cli("infra.up", "--json").json["success"]
    for root in roots(ssh_servers, fleet):
        (root / "shared" / "uploads").mkdir()

    deployed = cli("deploy", "--json").json

    assert deployed["success"], deployed
    for root in roots(ssh_servers, fleet):
        assert releases(root) == [deployed["release"]]
        assert (root / "current" / "uploads").resolve() == root / "shared" / "uploads"


def test_a_release_with_nothing_to_link_from_waits_for_the_digests_only_for_its_manifest(
    tmp_path: Path,
) -> None:
    files = SiteFiles.scan(write_site(tmp_path / "dist", "v1"))
    asked: list[str] = []

    def digests() -> dict[str, str]:
        asked.append("digests")
        return files.digests("sha256")

    plan = plan_upload("dep_1764111420000_ab12cd34", files, digests, Survey(None, None, {}), ())

    assert asked == [] and plan.sent == list(files)
    entries = parse_manifest(plan.manifest)
    assert asked == ["digests"]
    assert entries is not None
    assert {p: e.sha256 for p, e in entries.items()} == files.digests("sha256")
