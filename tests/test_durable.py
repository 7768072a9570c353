"""Specification of crash-safe writes and inter-process locks (devops_tasks.durable).

A write replaces the target in one step (readers see the old file or the new one, never
half of either, and no temporary file is left behind). A lock is an ``flock``: exclusive
across processes, it names its holder to whoever waits, and the kernel drops it when the
holding process dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devops_tasks import durable
from devops_tasks.durable import FileLock, atomic_write, read_json, write_json
from devops_tasks.errors import DevopsError, ErrorCode

# --------------------------------------------------------------------------- atomic_write


def test_atomic_write_creates_the_file_with_exactly_the_given_bytes(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    data = b"\x00binary\xffdata\n" * 3

    atomic_write(target, data)

    assert target.read_bytes() == data


def test_atomic_write_creates_missing_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.txt"

    atomic_write(target, b"deep")

    assert target.read_bytes() == b"deep"


def test_atomic_write_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old content that is longer than the new one")

    atomic_write(target, b"new")

    assert target.read_bytes() == b"new"


def test_atomic_write_gives_the_default_mode_0644(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"

    atomic_write(target, b"x")

    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_gives_the_requested_mode_for_a_secret(tmp_path: Path) -> None:
    target = tmp_path / "secret"

    atomic_write(target, b"token", mode=0o600)

    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_sets_the_mode_regardless_of_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    previous = os.umask(0o077)
    try:
        atomic_write(target, b"x", mode=0o644)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_changes_the_mode_of_a_replaced_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    target.chmod(0o666)

    atomic_write(target, b"new", mode=0o600)

    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"

    atomic_write(target, b"one")
    atomic_write(target, b"two")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_without_replace_refuses_an_existing_file_and_keeps_it(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"precious")

    with pytest.raises(FileExistsError):
        atomic_write(target, b"new", replace=False)

    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_without_replace_creates_a_new_file(tmp_path: Path) -> None:
    atomic_write(tmp_path / "out.txt", b"new", replace=False)
    assert (tmp_path / "out.txt").read_bytes() == b"new"


def _old_temporary(directory: Path, name: str) -> Path:
    leftover = directory / name
    leftover.write_bytes(b"half a secret")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    return leftover


def test_atomic_write_removes_temporaries_a_killed_writer_left(tmp_path: Path) -> None:
    _old_temporary(tmp_path, ".credentials.enc.k1ll3d.devops-tmp")
    atomic_write(tmp_path / "credentials.enc", b"new", sweep=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials.enc"]


def test_atomic_write_keeps_a_temporary_that_a_live_writer_holds(tmp_path: Path) -> None:
    busy = _old_temporary(tmp_path, ".credentials.enc.busy.devops-tmp")
    with busy.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        atomic_write(tmp_path / "credentials.enc", b"new", sweep=True)
    assert busy.exists()


def test_atomic_write_keeps_temporaries_younger_than_a_minute(tmp_path: Path) -> None:
    young = tmp_path / ".credentials.enc.young.devops-tmp"
    young.write_bytes(b"being written")
    atomic_write(tmp_path / "credentials.enc", b"new", sweep=True)
    assert young.exists()


def test_atomic_write_removes_only_temporaries_it_makes(tmp_path: Path) -> None:
    others = [
        _old_temporary(tmp_path, name)
        for name in (".config.json.x.tmp", "credentials.enc.tmp", ".notes.devops-tmp.bak")
    ]
    atomic_write(tmp_path / "credentials.enc", b"new", sweep=True)
    assert all(path.exists() for path in others)


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"new")
    monkeypatch.undo()

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_keeps_the_old_file_when_writing_fails_midway(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(durable.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, b"new content")
    monkeypatch.undo()

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_cleans_up_even_when_interrupted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")

    def interrupted_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(durable.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    monkeypatch.undo()

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_does_not_create_the_file_when_the_first_write_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(tmp_path / "out.txt", b"new")
    monkeypatch.undo()

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("durable", "syncs"), [(True, 2), (False, 0)])
def test_only_a_durable_write_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, syncs: int
) -> None:
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or fsync(fd))

    atomic_write(tmp_path / "f", b"data", durable=durable)

    assert (tmp_path / "f").read_bytes() == b"data"
    assert len(synced) == syncs  # the file's bytes, then its name in the directory


@given(st.binary(max_size=4096))
@hsettings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_atomic_write_round_trips_any_bytes(tmp_path: Path, data: bytes) -> None:
    target = tmp_path / "prop.bin"

    atomic_write(target, data)

    assert target.read_bytes() == data


# --------------------------------------------------------------------------- JSON


def test_write_json_then_read_json_round_trips_the_data(tmp_path: Path) -> None:
    data = {"a": [1, 2.5, None, True], "nested": {"b": "text"}}
    target = tmp_path / "data.json"

    write_json(target, data)

    assert read_json(target) == data


def test_write_json_indents_for_people_and_ends_with_a_newline(tmp_path: Path) -> None:
    target = tmp_path / "data.json"

    write_json(target, {"a": {"b": 1}})

    assert target.read_text(encoding="utf-8") == '{\n  "a": {\n    "b": 1\n  }\n}\n'


def test_write_json_without_indent_writes_one_compact_line(tmp_path: Path) -> None:
    target = tmp_path / "data.json"

    write_json(target, {"a": [1, 2], "b": "c"}, indent=None)

    assert target.read_text(encoding="utf-8") == '{"a":[1,2],"b":"c"}\n'


def test_write_json_stores_non_ascii_text_as_utf8_not_escapes(tmp_path: Path) -> None:
    target = tmp_path / "data.json"

    write_json(target, {"name": "café ☕"})

    raw = target.read_bytes()
    assert "café ☕".encode() in raw
    assert b"\\u" not in raw


def test_write_json_passes_the_mode_through(tmp_path: Path) -> None:
    target = tmp_path / "data.json"

    write_json(target, {}, mode=0o600)

    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_json_refuses_unserialisable_data_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    write_json(target, {"ok": True})

    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})

    assert read_json(target) == {"ok": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_read_json_lets_a_syntax_error_propagate(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("{not json", encoding="utf-8")

    with pytest.raises(json.JSONDecodeError):
        read_json(target)


def test_read_json_lets_a_missing_file_error_propagate(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


# --------------------------------------------------------------------------- FileLock, one process


def test_file_lock_creates_its_file_and_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "deep" / "deploy.lock"

    with FileLock(path):
        assert path.is_file()


def test_file_lock_records_its_owner_while_held_and_clears_it_on_release(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path, owner="deploy by alice@ci"):
        assert path.read_text(encoding="utf-8") == "deploy by alice@ci"

    assert path.read_text(encoding="utf-8") == ""


def test_file_lock_owner_defaults_to_this_process_id(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path):
        assert path.read_text(encoding="utf-8") == f"pid {os.getpid()}"


def test_file_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    with FileLock(path):
        pass

    with FileLock(path, timeout=0):
        assert FileLock.is_held(path)


def test_file_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with pytest.raises(RuntimeError):
        with FileLock(path):
            raise RuntimeError("deploy failed")

    assert not FileLock.is_held(path)


def test_file_lock_release_without_acquire_does_nothing(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "deploy.lock")

    lock.release()

    assert not FileLock.is_held(tmp_path / "deploy.lock")


def test_is_held_is_false_when_there_is_no_lock_file(tmp_path: Path) -> None:
    assert FileLock.is_held(tmp_path / "never-created.lock") is False


def test_is_held_is_true_while_this_process_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path):
        assert FileLock.is_held(path) is True

    assert FileLock.is_held(path) is False


def test_is_held_does_not_itself_keep_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    path.touch()

    assert FileLock.is_held(path) is False
    with FileLock(path, timeout=0):  # would time out if the probe had kept a lock
        pass


def test_second_lock_in_the_same_process_times_out_with_locked(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path, owner="first"):
        with pytest.raises(DevopsError) as caught:
            FileLock(path, timeout=0.1).acquire()

    assert caught.value.code is ErrorCode.LOCKED
    assert "first" in caught.value.message


def test_waiting_for_a_lock_gives_up_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path):
        started = time.monotonic()
        with pytest.raises(DevopsError):
            FileLock(path, timeout=0.2).acquire()
        waited = time.monotonic() - started

    assert 0.2 <= waited < 2.0


def test_a_failed_acquire_does_not_disturb_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"

    with FileLock(path, owner="holder"):
        with pytest.raises(DevopsError):
            FileLock(path, timeout=0).acquire()
        assert FileLock.is_held(path)
        assert path.read_text(encoding="utf-8") == "holder"


# ----------------------------------------------------------------------- FileLock, two processes

HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from devops_tasks.durable import FileLock

    lock = FileLock(Path(sys.argv[1]), owner=sys.argv[2])
    lock.acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    lock.release()
    print("released", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def hold_lock() -> Iterator:
    """Start a process that takes a lock; yields a starter; kills what it started."""
    started: list[subprocess.Popen[str]] = []

    def start(path: Path, owner: str, hold_seconds: float = 60.0) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, str(path), owner, str(hold_seconds)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the lock is held (or the child dies)
        assert line.strip() == "held", f"lock holder did not start (exit {process.poll()})"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_lock_held_by_another_process_refuses_with_locked_naming_the_holder(
    tmp_path: Path,
    hold_lock,
) -> None:
    path = tmp_path / "deploy-production.lock"
    hold_lock(path, "deploy by alice@ci")

    with pytest.raises(DevopsError) as caught:
        FileLock(path, timeout=0.2).acquire()

    error = caught.value
    assert error.code is ErrorCode.LOCKED
    assert "deploy by alice@ci" in error.message
    assert error.details["holder"] == "deploy by alice@ci"
    assert error.details["lock"] == str(path)
    assert error.fix


def test_is_held_is_true_while_another_process_holds_the_lock(
    tmp_path: Path,
    hold_lock,
) -> None:
    path = tmp_path / "deploy.lock"
    hold_lock(path, "other")

    assert FileLock.is_held(path) is True


def test_kernel_releases_the_lock_when_its_holder_is_killed(tmp_path: Path, hold_lock) -> None:
    path = tmp_path / "deploy.lock"
    holder = hold_lock(path, "doomed deploy")
    assert FileLock.is_held(path)

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)

    assert FileLock.is_held(path) is False
    with FileLock(path, timeout=0, owner="next deploy"):
        assert path.read_text(encoding="utf-8") == "next deploy"


def test_waiting_acquire_gets_the_lock_once_the_other_process_releases_it(
    tmp_path: Path,
    hold_lock,
) -> None:
    path = tmp_path / "deploy.lock"
    hold_lock(path, "short job", hold_seconds=0.3)

    with FileLock(path, timeout=10, owner="waiter"):
        assert path.read_text(encoding="utf-8") == "waiter"


def test_a_directory_is_swept_once_per_process(tmp_path: Path) -> None:
    atomic_write(tmp_path / "index.json", b"{}", sweep=True)
    later = _old_temporary(tmp_path, ".index.json.k1ll3d.devops-tmp")
    atomic_write(tmp_path / "index.json", b"{}", sweep=True)
    assert later.exists()  # the next process cleans it up


def test_atomic_write_sweeps_nothing_unless_asked(tmp_path: Path) -> None:
    """A user's directory (config.export --output) is never swept."""
    theirs = _old_temporary(tmp_path, ".notes.txt.x1.devops-tmp")
    atomic_write(tmp_path / "out.json", b"{}")
    assert theirs.exists()


@pytest.mark.parametrize("kind", ["hard link", "fifo"])
def test_a_lock_that_is_a_hard_link_or_a_special_file_is_refused_untouched(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock = tmp_path / "locks" / "deploy.lock"
    lock.parent.mkdir()
    if kind == "hard link":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)
    with pytest.raises(DevopsError) as refused:
        FileLock(lock, timeout=0).acquire()
    assert refused.value.code is ErrorCode.FILESYSTEM_ERROR
    assert victim.read_text() == "precious"
