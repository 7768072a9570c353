"""The local secrets store: where its master key comes from, creating and rotating it, and locking.

Every test passes its environment explicitly (``environ=``): the store never reads os.environ here.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import run_devops

from devops_tasks.durable import FileLock
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project
from devops_tasks.secrets import keys, local
from devops_tasks.secrets.keys import ARGON2_FLOOR
from devops_tasks.secrets.local import LocalSecretsStore
from devops_tasks.secrets.vault import Vault

PASSPHRASE = "correct horse battery staple"
VALUES = {"A": "alpha-secret-value", "B": "bravo-secret-value"}
PRODUCTION_VALUES = {"C": "charlie-production-value"}


@pytest.fixture
def xdg(tmp_path: Path) -> dict[str, str]:
    """An environment with no key at all: only where the config (and key files) live."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}


@pytest.fixture
def keys_dir(xdg) -> Path:
    return Path(xdg["XDG_CONFIG_HOME"]) / "devops-tasks" / "keys"


def store_with(project: Project, **environ: str) -> LocalSecretsStore:
    return LocalSecretsStore(project, {}, dict(environ))


def with_key(xdg: dict[str, str], hex_key: str) -> dict[str, str]:
    return {**xdg, "DEVOPS_MASTER_KEY": hex_key}


def fill(store: LocalSecretsStore) -> None:
    store.set_many(VALUES)
    store.set_many(PRODUCTION_VALUES, environment="production")


def all_values(store: LocalSecretsStore) -> dict[str, str]:
    return {
        **store.values(),
        **{
            f"production/{k}": v
            for k, v in store.values("production").items()
            if k in PRODUCTION_VALUES
        },
    }


EXPECTED = {**VALUES, **{f"production/{k}": v for k, v in PRODUCTION_VALUES.items()}}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def header(store: LocalSecretsStore) -> dict[str, Any]:
    return json.loads(store.path.read_bytes())


def error_code(call, *args, **kwargs) -> ErrorCode:
    with pytest.raises(DevopsError) as raised:
        call(*args, **kwargs)
    return raised.value.code


# -- key sources ---------------------------------------------------------------------------


def test_set_without_any_key_is_master_key_missing_and_writes_nothing(project, xdg, keys_dir):
    store = LocalSecretsStore(project, {}, xdg)

    assert error_code(store.set, "A", "value") is ErrorCode.MASTER_KEY_MISSING
    assert not store.path.exists()
    assert not keys_dir.exists()
    assert [
        p
        for p in project.state_dir.rglob("*")
        if p.is_file() and project.locks_dir not in p.parents
    ] == []


def test_reading_when_there_is_no_file_needs_no_key(project, xdg):
    store = LocalSecretsStore(project, {}, xdg)

    assert store.get("A") is None
    assert store.list() == []
    assert store.delete("A") is False
    assert not store.path.exists()


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param("not-a-key", id="not-hex"),
        pytest.param("ab" * 31, id="31-bytes"),
        pytest.param("ab" * 33, id="33-bytes"),
        pytest.param("zz" * 32, id="64-non-hex-characters"),
    ],
)
def test_a_malformed_devops_master_key_is_master_key_invalid_and_writes_nothing(
    project, xdg, keys_dir, malformed
):
    store = LocalSecretsStore(project, {}, {**xdg, "DEVOPS_MASTER_KEY": malformed})

    assert error_code(store.set, "A", "value") is ErrorCode.MASTER_KEY_INVALID
    assert not store.path.exists()
    assert not keys_dir.exists()


def test_a_malformed_devops_master_key_is_invalid_when_reading_an_existing_file(project, xdg):
    store_with(project, **with_key(xdg, secrets.token_hex(32))).set("A", "value")

    assert (
        error_code(store_with(project, **with_key(xdg, "ab" * 31)).get, "A")
        is ErrorCode.MASTER_KEY_INVALID
    )


def test_a_master_key_with_surrounding_whitespace_is_accepted(project, xdg):
    hex_key = secrets.token_hex(32)
    store_with(project, **with_key(xdg, f"  {hex_key}\n")).set("A", "value")

    assert store_with(project, **with_key(xdg, hex_key)).get("A") == "value"


@pytest.fixture(scope="module")
def passphrase_file(tmp_path_factory) -> bytes:
    """One file locked with PASSPHRASE and holding A (one Argon2id derivation)."""
    root = tmp_path_factory.mktemp("passphrase")
    made = LocalSecretsStore(
        Project(root),
        {},
        {"DEVOPS_MASTER_PASSPHRASE": PASSPHRASE, "XDG_CONFIG_HOME": str(root / "xdg")},
    )
    made.set("A", "passphrase-protected-value")
    return made.path.read_bytes()


@pytest.fixture
def passphrase_store(project, xdg, passphrase_file) -> LocalSecretsStore:
    store = LocalSecretsStore(project, {}, {**xdg, "DEVOPS_MASTER_PASSPHRASE": PASSPHRASE})
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(passphrase_file)
    return store


def test_a_passphrase_file_round_trips(passphrase_store):
    assert passphrase_store.get("A") == "passphrase-protected-value"


def test_a_passphrase_file_records_argon2id_with_a_salt_and_parameters_at_or_above_the_floor(
    passphrase_store,
):
    kdf = header(passphrase_store)["kdf"]

    assert kdf["name"] == "argon2id"
    assert len(bytes.fromhex(kdf["salt"])) >= 16
    for name, minimum in ARGON2_FLOOR.items():
        assert isinstance(kdf[name], int) and kdf[name] >= minimum


def test_a_wrong_passphrase_is_master_key_wrong_and_writes_nothing(project, xdg, passphrase_store):
    before = passphrase_store.path.read_bytes()
    wrong = store_with(project, **xdg, DEVOPS_MASTER_PASSPHRASE="incorrect horse battery staple")

    assert error_code(wrong.get, "A") is ErrorCode.MASTER_KEY_WRONG
    assert error_code(wrong.set, "B", "value") is ErrorCode.MASTER_KEY_WRONG
    assert passphrase_store.path.read_bytes() == before


def test_a_passphrase_file_without_a_passphrase_is_master_key_missing(
    project, xdg, passphrase_store
):
    store = LocalSecretsStore(project, {}, {**xdg, "DEVOPS_MASTER_KEY": secrets.token_hex(32)})

    assert error_code(store.get, "A") is ErrorCode.MASTER_KEY_MISSING


def test_devops_master_key_file_is_used_for_new_and_existing_files(
    project, xdg, keys_dir, tmp_path
):
    hex_key = secrets.token_hex(32)
    key_file = tmp_path / "my.key"
    key_file.write_text(hex_key + "\n")
    key_file.chmod(0o600)
    store_with(project, **xdg, DEVOPS_MASTER_KEY_FILE=str(key_file)).set("A", "from-a-key-file")

    assert (
        store_with(project, **xdg, DEVOPS_MASTER_KEY_FILE=str(key_file)).get("A")
        == "from-a-key-file"
    )
    assert store_with(project, **with_key(xdg, hex_key)).get("A") == "from-a-key-file"
    assert header(store_with(project, **xdg))["key_id"] == keys.key_id(bytes.fromhex(hex_key))
    assert not keys_dir.exists()


def test_a_devops_master_key_file_that_does_not_exist_is_master_key_missing(project, xdg, tmp_path):
    store = store_with(project, **xdg, DEVOPS_MASTER_KEY_FILE=str(tmp_path / "absent.key"))

    assert error_code(store.set, "A", "value") is ErrorCode.MASTER_KEY_MISSING
    assert not store.path.exists()


def test_devops_master_key_wins_over_a_passphrase_for_a_new_file(project, xdg):
    store = store_with(
        project, **with_key(xdg, secrets.token_hex(32)), DEVOPS_MASTER_PASSPHRASE=PASSPHRASE
    )
    store.set("A", "value")

    assert header(store)["kdf"] == {"name": "none"}


# -- create --------------------------------------------------------------------------------


def test_create_without_a_key_makes_a_private_key_file_and_a_private_secrets_file(
    project, xdg, keys_dir
):
    created = LocalSecretsStore(project, {}, xdg).create()

    key_file = Path(created["key_source"])
    assert key_file.parent == keys_dir
    assert key_file.name == f"{created['key_id']}.key"
    assert mode_of(key_file) == 0o600
    assert mode_of(keys_dir) == 0o700
    assert mode_of(project.credentials_path) == 0o600
    assert created["path"] == str(project.credentials_path)
    assert header(LocalSecretsStore(project, {}, xdg))["key_id"] == created["key_id"]


def test_a_store_without_an_env_key_finds_the_created_key_file_by_its_id(project, xdg):
    LocalSecretsStore(project, {}, xdg).create()
    LocalSecretsStore(project, {}, xdg).set("A", "value")

    assert LocalSecretsStore(project, {}, xdg).get("A") == "value"


def test_create_with_devops_master_key_uses_it_and_makes_no_key_file(project, xdg, keys_dir):
    hex_key = secrets.token_hex(32)
    created = store_with(project, **with_key(xdg, hex_key)).create()

    assert created["key_source"] == "DEVOPS_MASTER_KEY"
    assert created["key_id"] == keys.key_id(bytes.fromhex(hex_key))
    assert not keys_dir.exists()


def test_create_refuses_when_the_file_exists_and_changes_nothing(project, xdg, keys_dir):
    store = LocalSecretsStore(project, {}, xdg)
    store.create()
    store.set("A", "value")
    before, key_files = store.path.read_bytes(), sorted(keys_dir.iterdir())

    assert error_code(store.create) is ErrorCode.CONFIG_EXISTS
    assert store.path.read_bytes() == before
    assert sorted(keys_dir.iterdir()) == key_files


def test_create_with_a_malformed_devops_master_key_is_invalid_and_makes_nothing(
    project, xdg, keys_dir
):
    store = store_with(project, **xdg, DEVOPS_MASTER_KEY="not-a-key")

    assert error_code(store.create) is ErrorCode.MASTER_KEY_INVALID
    assert not store.path.exists()
    assert not keys_dir.exists()


def test_every_write_leaves_the_secrets_file_mode_0600(project, xdg):
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    store.set("A", "one")
    store.path.chmod(0o644)
    store.set("B", "two")

    assert mode_of(store.path) == 0o600


def test_set_many_with_one_invalid_name_stores_none_of_them(project, xdg):
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    store.set("A", "kept")
    before = store.path.read_bytes()

    assert error_code(store.set_many, {"B": "x", "9BAD": "y"}) is ErrorCode.INVALID_ARGUMENT
    assert store.path.read_bytes() == before


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary_file(
    project, xdg, monkeypatch
):
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    store.set("A", "kept")
    before = store.path.read_bytes()

    def replace_fails(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError):
        store.set("B", "lost")
    monkeypatch.undo()

    assert store.path.read_bytes() == before
    assert [p.name for p in store.path.parent.iterdir() if p != project.locks_dir] == [
        "credentials.enc"
    ]


# -- rotate_key ----------------------------------------------------------------------------


@pytest.fixture
def key_file_store(project, xdg) -> tuple[LocalSecretsStore, str, Path]:
    """A filled store whose key is a created key file; returns it, the old key and its file."""
    store = LocalSecretsStore(project, {}, xdg)
    old_file = Path(store.create()["key_source"])
    fill(store)
    return store, old_file.read_text().strip(), old_file


def test_after_rotation_the_new_key_file_reads_every_value(project, xdg, key_file_store):
    store, _, _ = key_file_store
    rotated = store.rotate_key()

    new_file = Path(rotated["key_source"])
    assert new_file.name == f"{rotated['key_id']}.key" and mode_of(new_file) == 0o600
    assert all_values(LocalSecretsStore(project, {}, xdg)) == EXPECTED
    assert (
        all_values(store_with(project, **with_key(xdg, new_file.read_text().strip()))) == EXPECTED
    )


def test_after_rotation_the_old_key_is_master_key_wrong(project, xdg, key_file_store):
    store, old_key, _ = key_file_store
    store.rotate_key()

    assert (
        error_code(store_with(project, **with_key(xdg, old_key)).get, "A")
        is ErrorCode.MASTER_KEY_WRONG
    )


def test_rotation_deletes_and_reports_the_old_key_file_in_the_keys_directory(
    xdg, key_file_store, keys_dir
):
    store, _, old_file = key_file_store
    rotated = store.rotate_key()

    assert rotated["retired_key_file"] == str(old_file)
    assert not old_file.exists()
    assert sorted(keys_dir.iterdir()) == [Path(rotated["key_source"])]
    assert rotated["old_key_id"] == old_file.stem != rotated["key_id"]


def test_rotation_changes_the_data_key_and_every_ciphertext(project, xdg, key_file_store):
    store, old_key, _ = key_file_store
    old_raw = store.path.read_bytes()
    old_vault = store.open()
    rotated = store.rotate_key()
    new_vault = LocalSecretsStore(project, {}, xdg).open()

    assert new_vault.data_key != old_vault.data_key
    old_body, new_body = json.loads(old_raw), header(store)
    for scope, named in old_body["entries"].items():
        for name, entry in named.items():
            assert new_body["entries"][scope][name]["ciphertext"] != entry["ciphertext"]
            assert new_body["entries"][scope][name]["nonce"] != entry["nonce"]
    assert new_body["data_key"]["ciphertext"] != old_body["data_key"]["ciphertext"]
    assert new_body["key_id"] == rotated["key_id"]
    # the old data key does not open a single value of the new file
    with pytest.raises(DevopsError):
        Vault.from_bytes(
            store.path.read_bytes(),
            lambda h: keys.MasterKey(bytes.fromhex(old_key), keys.KeySource("raw", "old")),
        )


def test_rotation_keeps_each_secrets_updated_time(key_file_store):
    store, _, _ = key_file_store
    before = [(i.name, i.scope, i.updated) for i in store.list("production")]
    store.rotate_key()

    assert [(i.name, i.scope, i.updated) for i in store.list("production")] == before


def test_rotation_to_devops_new_master_key_from_devops_master_key(project, xdg, keys_dir):
    old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
    fill(store_with(project, **with_key(xdg, old_key)))

    rotated = store_with(
        project, **with_key(xdg, old_key), DEVOPS_NEW_MASTER_KEY=new_key
    ).rotate_key()

    assert rotated["key_id"] == keys.key_id(bytes.fromhex(new_key))
    assert rotated["retired_key_file"] is None
    assert "DEVOPS_MASTER_KEY" in rotated["next"]
    assert all_values(store_with(project, **with_key(xdg, new_key))) == EXPECTED
    assert (
        error_code(store_with(project, **with_key(xdg, old_key)).get, "A")
        is ErrorCode.MASTER_KEY_WRONG
    )
    assert not keys_dir.exists()


@pytest.mark.parametrize("variable", ["DEVOPS_NEW_MASTER_KEY", "DEVOPS_NEW_MASTER_PASSPHRASE"])
def test_rotation_reports_the_devops_new_variable_as_the_new_keys_source(project, xdg, variable):
    old_key = secrets.token_hex(32)
    store_with(project, **with_key(xdg, old_key)).set("A", "value")
    new_secret = PASSPHRASE if variable.endswith("PASSPHRASE") else secrets.token_hex(32)

    rotated = store_with(project, **with_key(xdg, old_key), **{variable: new_secret}).rotate_key()

    assert rotated["key_source"] == variable


def test_rotation_never_deletes_a_key_file_named_by_devops_master_key_file(project, xdg, tmp_path):
    key_file = tmp_path / "my.key"
    key_file.write_text(secrets.token_hex(32))
    fill(store_with(project, **xdg, DEVOPS_MASTER_KEY_FILE=str(key_file)))

    rotated = store_with(project, **xdg, DEVOPS_MASTER_KEY_FILE=str(key_file)).rotate_key()

    assert rotated["retired_key_file"] is None
    assert key_file.exists()


def test_rotate_without_a_file_is_not_found_and_makes_no_key(project, xdg, keys_dir):
    store = LocalSecretsStore(project, {}, xdg)

    assert error_code(store.rotate_key) is ErrorCode.NOT_FOUND
    assert not store.path.exists()
    assert not keys_dir.exists()


def test_rotate_with_the_wrong_key_is_master_key_wrong_and_changes_nothing(project, xdg):
    fill(store_with(project, **with_key(xdg, secrets.token_hex(32))))
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    before = store.path.read_bytes()

    assert error_code(store.rotate_key) is ErrorCode.MASTER_KEY_WRONG
    assert store.path.read_bytes() == before


def test_rotate_with_a_malformed_devops_new_master_key_is_invalid_and_changes_nothing(
    project, xdg, keys_dir
):
    old_key = secrets.token_hex(32)
    fill(store_with(project, **with_key(xdg, old_key)))
    store = store_with(project, **with_key(xdg, old_key), DEVOPS_NEW_MASTER_KEY="not-a-key")
    before = store.path.read_bytes()

    assert error_code(store.rotate_key) is ErrorCode.MASTER_KEY_INVALID
    assert store.path.read_bytes() == before
    assert not keys_dir.exists()


# -- concurrency and the lock --------------------------------------------------------------

WRITERS = 8


def _set_one_secret(
    root: str, environ: dict[str, str], index: int, start: Any, failures: Any
) -> None:
    """A writer process: its own store, waiting for all the others before it writes."""
    try:
        store = LocalSecretsStore(Project(Path(root)), {}, environ)
        start.wait(timeout=30)
        store.set(f"SECRET_{index}", f"value-of-writer-{index}")
    except BaseException as exc:  # reported to the test, which fails with it
        failures.put(f"writer {index}: {exc!r}")
        raise


def test_eight_processes_setting_different_secrets_at_once_all_end_up_stored(project, xdg):
    environ = with_key(xdg, secrets.token_hex(32))
    context = multiprocessing.get_context("fork")
    start, failures = context.Barrier(WRITERS), context.Queue()
    writers = [
        context.Process(
            target=_set_one_secret, args=(str(project.root), environ, i, start, failures)
        )
        for i in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)

    reported = [failures.get_nowait() for _ in range(failures.qsize())]
    assert [w.exitcode for w in writers] == [0] * WRITERS, reported
    assert store_with(project, **environ).values() == {
        f"SECRET_{i}": f"value-of-writer-{i}" for i in range(WRITERS)
    }


HOLD_SECONDS = 0.8

HOLDER = """
import sys, time
from pathlib import Path
from devops_tasks.durable import FileLock
with FileLock(Path(sys.argv[1]), owner="test holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(store: LocalSecretsStore, seconds: float) -> subprocess.Popen:
    """Another process holding the store's lock for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.lock_path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert FileLock.is_held(store.lock_path)
    return holder


def test_a_set_waits_for_another_process_holding_the_lock_then_succeeds(project, xdg):
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    store.set("A", "before")
    holder = hold_lock(store, HOLD_SECONDS)
    started = time.monotonic()

    store.set("A", "after")

    waited = time.monotonic() - started
    assert holder.wait(timeout=10) == 0
    assert waited >= HOLD_SECONDS * 0.75
    assert store.get("A") == "after"


def test_a_set_is_locked_when_the_lock_is_held_past_the_timeout_and_writes_nothing(
    project, xdg, monkeypatch
):
    store = store_with(project, **with_key(xdg, secrets.token_hex(32)))
    store.set("A", "before")
    before = store.path.read_bytes()
    monkeypatch.setattr(local, "FileLock", functools.partial(FileLock, timeout=0.3))
    holder = hold_lock(store, 30)
    try:
        with pytest.raises(DevopsError) as raised:
            store.set("A", "after")
    finally:
        holder.kill()
        holder.wait(timeout=10)

    assert raised.value.code is ErrorCode.LOCKED
    assert raised.value.details["holder"] == "test holder"
    assert store.path.read_bytes() == before


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_key_file_that_is_a_device_or_a_pipe_is_refused_at_once(tmp_path, kind):
    key_file = Path("/dev/zero") if kind == "device" else tmp_path / "key.fifo"
    if kind == "fifo":
        os.mkfifo(key_file)
    result = run_devops(
        "secrets.set",
        "TOKEN",
        "--value",
        "abcdefgh",
        "--json",
        cwd=tmp_path,
        env={"DEVOPS_MASTER_KEY_FILE": str(key_file)},
        timeout=20,
    )
    assert result.json["code"] == "MASTER_KEY_MISSING" and "regular file" in result.json["error"]


def test_a_secrets_file_that_is_a_pipe_is_refused_at_once(tmp_path):
    (tmp_path / ".devops").mkdir()
    os.mkfifo(tmp_path / ".devops" / "credentials.enc")
    result = run_devops(
        "secrets.list", "--json", cwd=tmp_path, env={"DEVOPS_MASTER_KEY": "ab" * 32}, timeout=20
    )
    assert result.json["code"] == "SECRETS_CORRUPT"
