"""The encrypted secrets file (format version 1): what it holds, and how damage is told apart.

Every damaged file is refused with its own error code, by reads and by writes alike, and is
left byte-for-byte as it was: a refused ``set`` never "repairs" a file by rewriting it.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import CliResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.project import Project
from devops_tasks.secrets import keys
from devops_tasks.secrets.keys import ARGON2_DEFAULTS, ARGON2_FLOOR, KeySource, MasterKey
from devops_tasks.secrets.local import LocalSecretsStore
from devops_tasks.secrets.vault import FORMAT, VERSION, Entry, Vault

#: The error codes that describe a secrets file that cannot be trusted as it is.
FILE_ERRORS = {
    ErrorCode.SECRETS_CORRUPT,
    ErrorCode.SECRETS_TAMPERED,
    ErrorCode.SECRET_MOVED,
    ErrorCode.SECRET_ENTRY_MISSING,
    ErrorCode.SECRETS_VERSION_UNSUPPORTED,
}
VALUES = {"A": "alpha-secret-value", "B": "bravo-secret-value"}
PRODUCTION_VALUES = {"C": "charlie-production-value"}
NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"  # the secret-name grammar, with check_name's length cap


def raw_key() -> str:
    return secrets.token_hex(32)


def master(hex_key: str | None = None) -> MasterKey:
    return MasterKey(bytes.fromhex(hex_key or raw_key()), KeySource("raw", "test"))


@pytest.fixture
def key_env(tmp_path: Path) -> dict[str, str]:
    return {"DEVOPS_MASTER_KEY": raw_key(), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


@pytest.fixture
def store(project: Project, key_env: dict[str, str]) -> LocalSecretsStore:
    return LocalSecretsStore(project, {}, key_env)


@pytest.fixture
def filled(store: LocalSecretsStore) -> LocalSecretsStore:
    """A store holding two shared secrets and one production secret."""
    store.set_many(VALUES)
    store.set_many(PRODUCTION_VALUES, environment="production")
    return store


def body_of(store: LocalSecretsStore) -> dict[str, Any]:
    return json.loads(store.path.read_bytes())


def rewrite(store: LocalSecretsStore, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Edit the file as a person (or attacker) with a text editor would; returns the new bytes."""
    body = body_of(store)
    change(body)
    raw = (json.dumps(body, indent=2) + "\n").encode()
    store.path.write_bytes(raw)
    return raw


def snapshot(store: LocalSecretsStore) -> tuple[bytes, list[str]]:
    """The bytes of every file under .devops/ but the lock (a stray temp file is a write)."""
    state = store.path.parent
    return store.path.read_bytes(), sorted(
        str(p.relative_to(state))
        for p in state.rglob("*")
        if store.lock_path.parent not in (p, *p.parents)
    )


def assert_refused_unchanged(store: LocalSecretsStore, code: ErrorCode) -> DevopsError:
    """Reads and writes through ``store`` both fail with ``code`` and leave the file as it was."""
    before = snapshot(store)
    with pytest.raises(DevopsError) as read:
        store.get("A")
    assert read.value.code is code, read.value.message
    with pytest.raises(DevopsError) as write:
        store.set("NEW_SECRET", "a-new-value")
    assert write.value.code is code, write.value.message
    assert snapshot(store) == before
    return read.value


def open_raw(raw: bytes, env: dict[str, str]) -> Vault:
    return Vault.from_bytes(raw, lambda header: keys.for_header(env, header))


def flat(vault: Vault) -> dict[tuple[str, str], str]:
    return {
        (scope, name): entry.value
        for scope, named in vault.entries.items()
        for name, entry in named.items()
    }


def content(vault: Vault) -> dict[tuple[str, str], tuple[str, str]]:
    """Everything a file holds for a reader: each value and when it changed."""
    return {
        (scope, name): (entry.value, entry.updated)
        for scope, named in vault.entries.items()
        for name, entry in named.items()
    }


# -- what a file holds ---------------------------------------------------------------------


def test_a_file_has_the_documented_header_and_lists_every_secret(filled, key_env):
    body = body_of(filled)

    assert body["format"] == FORMAT and body["version"] == VERSION == 1
    assert body["cipher"] == "AES-256-GCM"
    assert body["kdf"] == {"name": "none"}
    assert body["key_id"] == keys.key_id(bytes.fromhex(key_env["DEVOPS_MASTER_KEY"]))
    assert body["names"] == ["_shared/A", "_shared/B", "production/C"]
    assert set(body["entries"]) == {"_shared", "production"}
    assert set(body["entries"]["_shared"]["A"]) == {"nonce", "ciphertext", "updated"}
    assert len(base64.b64decode(body["data_key"]["nonce"])) == 12
    assert len(base64.b64decode(body["entries"]["_shared"]["A"]["nonce"])) == 12
    assert all(c in string.hexdigits for c in body["checksum"] + body["mac"])


def test_the_file_contains_no_plaintext_value_nor_key(filled, key_env):
    raw = filled.path.read_bytes()
    vault = filled.open()

    for value in [*VALUES.values(), *PRODUCTION_VALUES.values()]:
        assert value.encode() not in raw
        assert base64.b64encode(value.encode()) not in raw
    assert key_env["DEVOPS_MASTER_KEY"].encode() not in raw
    assert vault.data_key not in raw
    assert vault.data_key.hex().encode() not in raw
    assert base64.b64encode(vault.data_key) not in raw


def test_writing_the_same_value_again_encrypts_it_under_a_fresh_nonce(store):
    store.set("A", "the-same-value")
    first = body_of(store)["entries"]["_shared"]["A"]
    store.set("A", "the-same-value")
    second = body_of(store)["entries"]["_shared"]["A"]

    assert first["nonce"] != second["nonce"]
    assert first["ciphertext"] != second["ciphertext"]


def test_equal_values_under_two_names_have_different_nonces_and_ciphertexts(store):
    store.set_many({"A": "shared-by-both", "B": "shared-by-both"})
    entries = body_of(store)["entries"]["_shared"]

    assert entries["A"]["nonce"] != entries["B"]["nonce"]
    assert entries["A"]["ciphertext"] != entries["B"]["ciphertext"]


def test_every_write_wraps_the_data_key_under_a_fresh_nonce(store):
    store.set("A", "one")
    first = body_of(store)["data_key"]
    store.set("B", "two")
    second = body_of(store)["data_key"]

    assert first["nonce"] != second["nonce"]
    assert first["ciphertext"] != second["ciphertext"]


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("pässwörd ✓ 🔑 日本語 \u200b \U0010ffff", id="unicode"),
        pytest.param("", id="empty"),
        pytest.param(" ", id="space"),
        pytest.param("\n", id="newline"),
        pytest.param("line one\r\nline two\t\x1bend", id="control-characters"),
        pytest.param("x" * (1 << 20), id="1MiB"),
    ],
)
def test_a_value_reads_back_exactly_as_it_was_stored(project, key_env, value):
    LocalSecretsStore(project, {}, key_env).set("VALUE", value)

    assert LocalSecretsStore(project, {}, key_env).get("VALUE") == value


scopes = st.one_of(st.just("_shared"), st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
names = st.from_regex(NAME, fullmatch=True)
#: What a store accepts: any text but NUL, which no environment variable can carry.
storable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
)


@settings(max_examples=150, deadline=None)
@given(content=st.dictionaries(scopes, st.dictionaries(names, st.text(), max_size=4), max_size=3))
def test_any_unicode_values_under_any_valid_names_survive_sealing_and_opening(content):
    key = master()
    vault = Vault.new(key, {"name": "none"})
    vault.entries = {
        scope: {name: Entry(value) for name, value in named.items()}
        for scope, named in content.items()
    }

    opened = Vault.from_bytes(vault.to_bytes(), lambda header: key)

    assert flat(opened) == {
        (scope, name): value for scope, named in content.items() for name, value in named.items()
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.dictionaries(names, storable, min_size=1, max_size=5))
def test_any_values_stored_through_the_store_read_back_from_a_new_store(values):
    env = {"DEVOPS_MASTER_KEY": raw_key()}
    with tempfile.TemporaryDirectory() as root:
        env["XDG_CONFIG_HOME"] = str(Path(root, "xdg"))
        LocalSecretsStore(Project(Path(root)), {}, env).set_many(values)

        assert LocalSecretsStore(Project(Path(root)), {}, env).values() == values


# -- each kind of damage, its own error, nothing written ----------------------------------


def test_a_wrong_key_is_master_key_wrong_and_writes_nothing(filled, project, tmp_path):
    wrong = LocalSecretsStore(
        project, {}, {"DEVOPS_MASTER_KEY": raw_key(), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    )

    assert_refused_unchanged(wrong, ErrorCode.MASTER_KEY_WRONG)


@pytest.mark.parametrize("position", [0, 7, -1], ids=["first-byte", "middle-byte", "last-tag-byte"])
def test_a_flipped_byte_in_a_values_ciphertext_is_tampered(filled, position):
    def flip(body):
        entry = body["entries"]["_shared"]["A"]
        sealed = bytearray(base64.b64decode(entry["ciphertext"]))
        sealed[position] ^= 0x01
        entry["ciphertext"] = base64.b64encode(bytes(sealed)).decode()

    rewrite(filled, flip)

    assert_refused_unchanged(filled, ErrorCode.SECRETS_TAMPERED)


@pytest.mark.parametrize(
    "target", [("_shared", "B"), ("production", "C")], ids=["same-scope", "other-scope"]
)
def test_a_ciphertext_moved_to_another_name_is_secret_moved(filled, target):
    def move(body):
        source = body["entries"]["_shared"]["A"]
        destination = body["entries"][target[0]][target[1]]
        destination["nonce"], destination["ciphertext"] = source["nonce"], source["ciphertext"]

    rewrite(filled, move)

    assert_refused_unchanged(filled, ErrorCode.SECRET_MOVED)


def test_two_swapped_ciphertexts_are_secret_moved(filled):
    def swap(body):
        shared = body["entries"]["_shared"]
        shared["A"], shared["B"] = (
            {**shared["A"], "nonce": shared["B"]["nonce"], "ciphertext": shared["B"]["ciphertext"]},
            {**shared["B"], "nonce": shared["A"]["nonce"], "ciphertext": shared["A"]["ciphertext"]},
        )

    rewrite(filled, swap)

    assert_refused_unchanged(filled, ErrorCode.SECRET_MOVED)


@pytest.mark.parametrize(
    "delete",
    [
        pytest.param(lambda entries: entries["_shared"].pop("B"), id="one-entry"),
        pytest.param(lambda entries: entries.pop("production"), id="a-whole-scope"),
    ],
)
def test_an_entry_deleted_from_entries_is_secret_entry_missing(filled, delete):
    rewrite(filled, lambda body: delete(body["entries"]))

    assert_refused_unchanged(filled, ErrorCode.SECRET_ENTRY_MISSING)


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(lambda n: 0, id="empty"),
        pytest.param(lambda n: 1, id="one-byte"),
        pytest.param(lambda n: n // 2, id="half"),
        pytest.param(lambda n: n - 2, id="last-brace-cut"),
    ],
)
def test_a_truncated_file_is_secrets_corrupt(filled, keep):
    raw = filled.path.read_bytes()
    filled.path.write_bytes(raw[: keep(len(raw))])

    assert_refused_unchanged(filled, ErrorCode.SECRETS_CORRUPT)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unknown_version_is_secrets_version_unsupported(filled, version):
    rewrite(filled, lambda body: body.update(version=version))

    assert_refused_unchanged(filled, ErrorCode.SECRETS_VERSION_UNSUPPORTED)


@pytest.fixture(scope="module")
def passphrase_file(tmp_path_factory) -> tuple[bytes, dict[str, str]]:
    """One passphrase-locked file (one Argon2id derivation), copied into tests that need it."""
    root = tmp_path_factory.mktemp("passphrase")
    env = {
        "DEVOPS_MASTER_PASSPHRASE": "correct horse battery staple",
        "XDG_CONFIG_HOME": str(root / "xdg"),
    }
    made = LocalSecretsStore(Project(root), {}, env)
    made.set("A", "passphrase-protected-value")
    return made.path.read_bytes(), env


@pytest.mark.parametrize("param", sorted(ARGON2_FLOOR))
def test_argon2id_parameters_lowered_below_the_floor_are_tampered(project, passphrase_file, param):
    raw, env = passphrase_file
    store = LocalSecretsStore(project, {}, env)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(raw)

    rewrite(store, lambda body: body["kdf"].update({param: ARGON2_FLOOR[param] - 1}))

    assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)


def passphrase_file_made_with(kdf: dict[str, Any], passphrase: str) -> bytes:
    """A complete, consistent file whose key was derived with ``kdf`` (as an attacker could)."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    material = Argon2id(
        salt=bytes.fromhex(kdf["salt"]),
        length=32,
        iterations=kdf["iterations"],
        lanes=kdf["lanes"],
        memory_cost=kdf["memory_kib"],
    ).derive(passphrase.encode())
    vault = Vault.new(MasterKey(material, KeySource("passphrase", "test")), kdf)
    vault.entries = {"_shared": {"A": Entry("weakly-protected-value")}}
    return vault.to_bytes()


@pytest.mark.parametrize(
    "lowered",
    [None, "memory_kib", "iterations"],
    ids=["at-the-floor-opens", "memory_kib-below", "iterations-below"],
)
def test_a_self_consistent_file_made_below_the_argon2id_floor_is_refused(
    project, tmp_path, lowered
):
    kdf = {"name": "argon2id", **ARGON2_FLOOR, "salt": secrets.token_hex(16)}
    if lowered:
        kdf[lowered] -= 1
    env = {"DEVOPS_MASTER_PASSPHRASE": "weak", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    store = LocalSecretsStore(project, {}, env)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(passphrase_file_made_with(kdf, "weak"))

    if lowered is None:
        assert store.get("A") == "weakly-protected-value"
    else:
        refused = assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)
        assert lowered in refused.message and "floor" in refused.message


@pytest.mark.parametrize("salt", ["zz" + "00" * 15, "00"], ids=["not-hex", "too-short"])
def test_a_damaged_argon2id_salt_is_tampered(project, passphrase_file, salt):
    raw, env = passphrase_file
    store = LocalSecretsStore(project, {}, env)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(raw)

    rewrite(store, lambda body: body["kdf"].update(salt=salt))

    assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)


@pytest.fixture
def passphrase_store(project, passphrase_file) -> LocalSecretsStore:
    """A copy of the passphrase-locked file, opened with its passphrase."""
    raw, env = passphrase_file
    store = LocalSecretsStore(project, {}, env)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(raw)
    return store


def without_keys(store: LocalSecretsStore) -> LocalSecretsStore:
    """The same file, opened where no key at all is at hand (no variable, no key file)."""
    xdg = {"XDG_CONFIG_HOME": store.environ["XDG_CONFIG_HOME"]}
    return LocalSecretsStore(Project(store.path.parent.parent), {}, xdg)


#: The ceiling the review found (4 GiB, 64 passes, 64 lanes: minutes and gigabytes to derive).
OLD_CEILING = {"memory_kib": 4 * 1024 * 1024, "iterations": 64, "lanes": 64}


@pytest.mark.parametrize("param", sorted(ARGON2_DEFAULTS))
def test_argon2id_parameters_one_above_what_this_version_writes_are_tampered(
    passphrase_store, param
):
    value = ARGON2_DEFAULTS[param] + 1
    rewrite(passphrase_store, lambda body: body["kdf"].update({param: value}))

    refused = assert_refused_unchanged(passphrase_store, ErrorCode.SECRETS_TAMPERED)

    assert f"{param}={value}, above" in refused.message


@pytest.mark.parametrize("param", sorted(OLD_CEILING))
def test_argon2id_parameters_at_the_old_ceiling_are_tampered_before_any_key_is_sought(
    passphrase_store, param
):
    rewrite(passphrase_store, lambda body: body["kdf"].update({param: OLD_CEILING[param]}))

    refused = assert_refused_unchanged(without_keys(passphrase_store), ErrorCode.SECRETS_TAMPERED)

    assert f"{param}={OLD_CEILING[param]}, above" in refused.message


LIMITED_DEVOPS = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
sys.argv = ["devops", *sys.argv[1:]]
runpy.run_module("devops_tasks", run_name="__main__")
"""


def test_a_file_asking_for_4_gib_of_argon2id_memory_is_refused_without_deriving(
    passphrase_store, passphrase_file
):
    rewrite(passphrase_store, lambda body: body["kdf"].update(memory_kib=OLD_CEILING["memory_kib"]))
    started = time.monotonic()

    completed = subprocess.run(
        [sys.executable, "-c", LIMITED_DEVOPS, "secrets.get", "A", "--json"],
        cwd=passphrase_store.path.parent.parent,
        env={**os.environ, **passphrase_file[1]},
        capture_output=True,
        text=True,
        timeout=60,
    )

    answer = CliResult(completed.returncode, completed.stdout, completed.stderr).json
    assert answer["code"] == "SECRETS_TAMPERED", answer
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "raised",
    [None, "memory_kib", "iterations", "lanes"],
    ids=["at-the-ceiling-opens", "memory_kib-above", "iterations-above", "lanes-above"],
)
def test_a_self_consistent_file_made_above_what_this_version_writes_is_refused(
    project, tmp_path, raised
):
    kdf = {"name": "argon2id", **ARGON2_DEFAULTS, "salt": secrets.token_hex(16)}
    if raised:
        kdf[raised] += 1
    env = {"DEVOPS_MASTER_PASSPHRASE": "pass", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    store = LocalSecretsStore(project, {}, env)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(passphrase_file_made_with(kdf, "pass"))

    if raised is None:
        assert store.get("A") == "weakly-protected-value"
    else:
        refused = assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)
        assert raised in refused.message and "above" in refused.message


@pytest.fixture
def key_file_filled(project, tmp_path) -> LocalSecretsStore:
    """A filled store whose key is a key file made by ``create`` (found by the key id)."""
    store = LocalSecretsStore(project, {}, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    store.create()
    store.set_many(VALUES)
    return store


@pytest.mark.parametrize(
    "bad_id",
    [
        pytest.param(lambda real, home: "../../outside", id="a-relative-path"),
        pytest.param(lambda real, home: str(home / "outside"), id="an-absolute-path"),
        pytest.param(lambda real, home: real.upper(), id="upper-case"),
        pytest.param(lambda real, home: real[:15], id="15-characters"),
        pytest.param(lambda real, home: real + "0", id="17-characters"),
    ],
)
def test_a_key_id_that_is_not_16_lower_case_hex_is_tampered_and_no_file_it_names_is_read(
    key_file_filled, tmp_path, bad_id
):
    forged = bad_id(body_of(key_file_filled)["key_id"], tmp_path)
    outside = keys.keys_dir(key_file_filled.environ) / f"{forged}.key"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text("not a key: reading this would be MASTER_KEY_INVALID\n")
    rewrite(key_file_filled, lambda body: body.update(key_id=forged))

    assert_refused_unchanged(key_file_filled, ErrorCode.SECRETS_TAMPERED)


def set_argon2id(body: dict[str, Any]) -> None:
    body["kdf"] = {"name": "argon2id", **ARGON2_DEFAULTS, "salt": secrets.token_hex(16)}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(set_argon2id, id="kdf-none-to-argon2id"),
        pytest.param(lambda body: body.update(kdf={"name": "scrypt"}), id="kdf-unknown"),
        pytest.param(lambda body: body["kdf"].update(salt="00" * 16), id="kdf-extra-field"),
        pytest.param(lambda body: body.update(key_id="0123456789abcdef"), id="key_id"),
        pytest.param(lambda body: body.update(cipher="ChaCha20"), id="cipher"),
        pytest.param(lambda body: body.pop("cipher"), id="cipher-removed"),
        pytest.param(lambda body: body.update(format="devops-tasks-secretz"), id="format"),
        pytest.param(lambda body: body.update(comment="hi"), id="an-unexpected-header-key"),
    ],
)
@pytest.mark.parametrize("key", ["right-key", "no-key"])
def test_an_edited_header_is_tampered_with_or_without_the_key_at_hand(filled, change, key):
    rewrite(filled, change)
    store = filled if key == "right-key" else without_keys(filled)

    assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda body: body["kdf"].update(salt=secrets.token_hex(16)), id="salt"),
        pytest.param(lambda body: body.update(kdf={"name": "none"}), id="kdf-argon2id-to-none"),
        pytest.param(lambda body: body["kdf"].update(pepper="00"), id="an-extra-kdf-field"),
        pytest.param(lambda body: body["kdf"].update(iterations=3.0), id="iterations-not-whole"),
        pytest.param(lambda body: body["kdf"].update(lanes=True), id="lanes-a-boolean"),
    ],
)
@pytest.mark.parametrize("passphrase", [True, False], ids=["passphrase-set", "no-passphrase"])
def test_an_edited_passphrase_header_is_tampered_with_or_without_the_passphrase(
    passphrase_store, change, passphrase
):
    rewrite(passphrase_store, change)
    store = passphrase_store if passphrase else without_keys(passphrase_store)

    assert_refused_unchanged(store, ErrorCode.SECRETS_TAMPERED)


def test_an_intact_file_whose_key_file_is_gone_is_still_master_key_missing(key_file_filled):
    keys.key_file(key_file_filled.environ, body_of(key_file_filled)["key_id"]).unlink()

    assert_refused_unchanged(key_file_filled, ErrorCode.MASTER_KEY_MISSING)


def test_an_intact_passphrase_file_without_the_passphrase_is_still_master_key_missing(
    passphrase_store,
):
    assert_refused_unchanged(without_keys(passphrase_store), ErrorCode.MASTER_KEY_MISSING)


def test_a_changed_key_id_with_the_right_key_is_tampered_not_a_wrong_key(filled):
    rewrite(filled, lambda body: body.update(key_id="0" * 16))

    assert_refused_unchanged(filled, ErrorCode.SECRETS_TAMPERED)


def test_a_name_listed_in_names_without_an_entry_is_secret_entry_missing(filled):
    rewrite(filled, lambda body: body["names"].append("_shared/EXTRA"))

    assert_refused_unchanged(filled, ErrorCode.SECRET_ENTRY_MISSING)


def test_a_wrong_key_on_a_damaged_file_reports_the_damage(filled, project, key_env):
    rewrite(filled, lambda body: body["names"].append("_shared/EXTRA"))
    wrong = LocalSecretsStore(project, {}, {**key_env, "DEVOPS_MASTER_KEY": raw_key()})

    assert_refused_unchanged(wrong, ErrorCode.SECRETS_TAMPERED)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda body: body["entries"]["_shared"]["A"].update(updated="2000-01-01T00:00:00Z"),
            id="an-updated-time",
        ),
        pytest.param(lambda body: body.update(cipher="NONE"), id="the-cipher-label"),
        pytest.param(lambda body: body.update(checksum="0" * 64), id="the-checksum"),
        pytest.param(lambda body: body.update(mac="0" * 64), id="the-mac"),
        pytest.param(lambda body: body.update(comment="hello"), id="an-added-field"),
        pytest.param(
            lambda body: body["names"].remove("_shared/B"), id="a-name-removed-from-names"
        ),
    ],
)
def test_an_edit_to_any_field_the_mac_covers_is_tampered(filled, change):
    rewrite(filled, change)

    assert_refused_unchanged(filled, ErrorCode.SECRETS_TAMPERED)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda body: body.update(names=[["_shared/A"]]), id="names-holds-a-list"),
        pytest.param(lambda body: body["names"].append(5), id="names-holds-a-number"),
        pytest.param(
            lambda body: body["entries"]["_shared"].update(
                {"\ud800": body["entries"]["_shared"]["A"]}
            ),
            id="an-entry-name-with-a-lone-surrogate",
        ),
        pytest.param(
            lambda body: body["entries"].update(_shared="not an object"), id="a-scope-not-an-object"
        ),
        pytest.param(
            lambda body: body["entries"]["_shared"].update(A="not an object"),
            id="an-entry-not-an-object",
        ),
        pytest.param(lambda body: body["data_key"].pop("nonce"), id="no-data-key-nonce"),
        pytest.param(lambda body: body.pop("mac"), id="no-mac"),
    ],
)
def test_a_hand_edited_file_of_valid_json_fails_with_a_file_error_not_a_traceback(filled, change):
    rewrite(filled, change)
    before = snapshot(filled)

    with pytest.raises(DevopsError) as refused:
        filled.get("A")

    assert refused.value.code in FILE_ERRORS
    assert snapshot(filled) == before


# -- any single damaged byte ---------------------------------------------------------------


def assert_flip_is_refused_or_harmless(
    raw: bytes, env: dict[str, str], position: int, mask: int
) -> None:
    damaged = bytearray(raw)
    damaged[position] ^= mask
    try:
        opened = open_raw(bytes(damaged), env)
    except DevopsError as refused:
        assert refused.code in FILE_ERRORS, (position, mask, refused.code, refused.message)
        return
    # Only a flip of insignificant JSON whitespace into other whitespace may still open ...
    assert chr(raw[position]) in " \t\r\n" and chr(damaged[position]) in " \t\r\n", (position, mask)
    # ... and then it must hold exactly what the file held.
    assert content(opened) == content(open_raw(raw, env))


def test_every_single_bit_flip_anywhere_in_the_file_is_refused(filled, key_env):
    raw = filled.path.read_bytes()

    for position in range(len(raw)):
        for bit in range(8):
            assert_flip_is_refused_or_harmless(raw, key_env, position, 1 << bit)


def test_200_sampled_byte_replacements_over_the_whole_file_are_refused_or_harmless(filled, key_env):
    raw = filled.path.read_bytes()
    rng = random.Random(20261125)
    positions = sorted(rng.sample(range(len(raw)), 200))
    whitespace = [i for i, byte in enumerate(raw) if chr(byte) in " \n"]

    for position in positions + whitespace[:20]:
        for mask in {rng.randrange(1, 256), raw[position] ^ ord("\t"), raw[position] ^ ord("x")} - {
            0
        }:
            assert_flip_is_refused_or_harmless(raw, key_env, position, mask)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_never_opens_to_different_content(filled, key_env, data):
    raw = filled.path.read_bytes()
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")

    assert_flip_is_refused_or_harmless(raw, key_env, position, mask)


# -- nothing shows key material or values --------------------------------------------------


def test_repr_and_str_of_master_key_vault_and_entry_show_no_key_material_or_value():
    key = master()
    vault = Vault.new(key, {"name": "none"})
    vault.entries = {"_shared": {"TOKEN": Entry("a-very-secret-token-value")}}
    entry = vault.entries["_shared"]["TOKEN"]
    forbidden = [
        key.material.hex(),
        repr(key.material),
        key.material.hex().upper(),
        vault.data_key.hex(),
        repr(vault.data_key),
        "a-very-secret-token-value",
    ]

    for shown in (
        repr(key),
        str(key),
        repr(vault),
        str(vault),
        repr(entry),
        str(entry),
        repr(vault.entries),
    ):
        for secret in forbidden:
            assert secret not in shown
    assert key.id in repr(key)  # the public fingerprint is what identifies it
