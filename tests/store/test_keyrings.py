"""Sealed keyrings at rest (p2pcomm/store/keyrings.py; spec/12-encryption.md 12.8 KR6),
on real SQLite files and in memory."""

from __future__ import annotations

import importlib.resources
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.core import crypto
from p2pcomm.core.keyring import Keyring, keyring_key, seal_keyring
from p2pcomm.errors import ErrorCode, SealError, StoreError
from p2pcomm.store import MemoryStore, SqliteStore, keyrings
from p2pcomm.store.addresses import AddressBook
from p2pcomm.store.keyrings import KeyringStore
from p2pcomm.store.sqlite import APPLICATION_ID, SCHEMA_VERSION

T = 1795392000000


def b(label: str, n: int = 32) -> bytes:
    return crypto.blake2b_256(b"test keyring store " + label.encode())[:n]


ALICE_SEED = b("alice seed")
ALICE = crypto.ed25519_public_from_seed(ALICE_SEED)
BOB_SEED = b("bob seed")
BOB = crypto.ed25519_public_from_seed(BOB_SEED)
RECEIVE = b("receive private key")
SECRET = b("epoch secret")
REKEY = b("rekey entry id")


def nonce(i: int) -> bytes:
    return b(f"nonce {i}", 12)


def ring(*labels: str) -> Keyring:
    r = Keyring()
    r.add_receive_key(RECEIVE)
    r.add_secret(REKEY, SECRET)
    for label in labels:
        r.add_receive_key(b(f"receive {label}"))
        r.add_secret(b(f"rekey {label}"), b(f"secret {label}"))
    return r


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def open_store(path: Path) -> SqliteStore:
    return SqliteStore(path, durable=False, offload=False)


@pytest.fixture
def rings(path: Path) -> Iterator[KeyringStore]:
    store = open_store(path)
    with KeyringStore(store) as k:
        yield k
    store.close()


def test_the_migration_creates_the_table(path: Path) -> None:
    open_store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
    cols = [(r[1], r[2], r[3], r[5]) for r in db.execute("PRAGMA table_info(keyrings)")]
    assert cols == [("owner", "BLOB", 0, 1), ("blob", "BLOB", 1, 0)]
    db.close()


def test_nothing_stored_is_an_empty_ring(rings: KeyringStore) -> None:
    assert rings.load(ALICE, ALICE_SEED) == Keyring()
    assert rings.owners() == []
    assert rings.delete(ALICE) is False


def test_keys_and_secrets_survive_reopening_the_store(path: Path) -> None:
    store = open_store(path)
    with KeyringStore(store) as k:
        k.save(ALICE, ALICE_SEED, ring("a"), nonce(1))
        k.save(ALICE, ALICE_SEED, ring("a", "b"), nonce(2))  # rewritten whole
    store.close()

    store = SqliteStore(path, offload=False)
    with KeyringStore(store) as k:
        got = k.load(ALICE, ALICE_SEED)
        assert got == ring("a", "b")
        public = crypto.x25519_public(RECEIVE)
        assert got.receive_private(public) == RECEIVE
        assert got.secret(REKEY) == SECRET
        assert k.owners() == [ALICE]
    store.close()


def test_the_stored_blob_is_the_sealed_ring(path: Path, rings: KeyringStore) -> None:
    rings.save(ALICE, ALICE_SEED, ring(), nonce(1))
    db = sqlite3.connect(path)
    (blob,) = db.execute("SELECT blob FROM keyrings WHERE owner=?", (ALICE,)).fetchone()
    db.close()
    assert blob == seal_keyring(ring(), keyring_key(ALICE_SEED), nonce(1))


def test_two_owners_keep_their_own_rings(rings: KeyringStore) -> None:
    rings.save(BOB, BOB_SEED, ring("bob"), nonce(1))
    rings.save(ALICE, ALICE_SEED, ring("alice"), nonce(2))
    assert rings.owners() == sorted([ALICE, BOB])
    assert rings.load(ALICE, ALICE_SEED) == ring("alice")
    assert rings.load(BOB, BOB_SEED) == ring("bob")
    assert rings.delete(BOB) is True
    assert rings.owners() == [ALICE]
    assert rings.load(BOB, BOB_SEED) == Keyring()
    assert rings.load(ALICE, ALICE_SEED) == ring("alice")


def test_the_wrong_seed_fails_to_decrypt(path: Path, rings: KeyringStore) -> None:
    rings.save(ALICE, ALICE_SEED, ring(), nonce(1))
    # Bob's blob put under Alice's id by someone who can write the file: Alice's seed
    # does not open it.
    db = sqlite3.connect(path)
    blob = seal_keyring(ring("bob"), keyring_key(BOB_SEED), nonce(2))
    db.execute("UPDATE keyrings SET blob=? WHERE owner=?", (blob, ALICE))
    db.commit()
    db.close()
    with pytest.raises(SealError) as info:
        rings.load(ALICE, ALICE_SEED)
    assert info.value.code is ErrorCode.DECRYPT_FAILED


def test_a_seed_that_is_not_the_owners_is_refused(rings: KeyringStore) -> None:
    rings.save(ALICE, ALICE_SEED, ring(), nonce(1))
    with pytest.raises(ValueError):
        rings.load(ALICE, BOB_SEED)
    with pytest.raises(ValueError):
        rings.save(ALICE, BOB_SEED, ring(), nonce(2))
    with pytest.raises(ValueError):
        rings.load(ALICE[:31], ALICE_SEED)
    assert rings.load(ALICE, ALICE_SEED) == ring()


def flip(path: Path, owner: bytes, index: int) -> None:
    db = sqlite3.connect(path)
    (blob,) = db.execute("SELECT blob FROM keyrings WHERE owner=?", (owner,)).fetchone()
    altered = bytearray(blob)
    altered[index] ^= 0x01
    db.execute("UPDATE keyrings SET blob=? WHERE owner=?", (bytes(altered), owner))
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("index", "code"),
    [
        (-1, ErrorCode.DECRYPT_FAILED),
        (40, ErrorCode.DECRYPT_FAILED),
        (3, ErrorCode.KEYRING_CORRUPT),
    ],
    ids=["tag", "ciphertext", "magic"],
)
def test_a_blob_altered_on_disk_is_refused(path: Path, index: int, code: ErrorCode) -> None:
    store = open_store(path)
    with KeyringStore(store) as k:
        k.save(ALICE, ALICE_SEED, ring("a"), nonce(1))
    store.close()
    flip(path, ALICE, index)
    store = open_store(path)
    with KeyringStore(store) as k:
        with pytest.raises(SealError) as info:
            k.load(ALICE, ALICE_SEED)
        assert info.value.code is code
        # Saving again replaces the damaged blob.
        k.save(ALICE, ALICE_SEED, ring("b"), nonce(2))
        assert k.load(ALICE, ALICE_SEED) == ring("b")
    store.close()


def test_a_stored_value_that_is_not_a_blob_is_a_corrupt_keyring(
    path: Path, rings: KeyringStore
) -> None:
    db = sqlite3.connect(path)
    db.execute("INSERT INTO keyrings (owner, blob) VALUES (?, 'text')", (ALICE,))
    db.commit()
    db.close()
    with pytest.raises(SealError) as info:
        rings.load(ALICE, ALICE_SEED)
    assert info.value.code is ErrorCode.KEYRING_CORRUPT


def test_a_sqlite_failure_is_a_store_error(path: Path, rings: KeyringStore) -> None:
    db = sqlite3.connect(path)
    db.execute("DROP TABLE keyrings")
    db.commit()
    db.close()
    for call in (
        lambda: rings.load(ALICE, ALICE_SEED),
        lambda: rings.save(ALICE, ALICE_SEED, ring(), nonce(1)),
        lambda: rings.delete(ALICE),
        rings.owners,
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert info.value.code is ErrorCode.STORE_CORRUPT


def test_a_reused_nonce_is_refused(rings: KeyringStore) -> None:
    rings.save(ALICE, ALICE_SEED, ring("a"), nonce(1))
    rings.save(ALICE, ALICE_SEED, ring("a"), nonce(1))  # the same blob: nothing changes
    with pytest.raises(ValueError, match="nonce"):
        rings.save(ALICE, ALICE_SEED, ring("b"), nonce(1))
    assert rings.load(ALICE, ALICE_SEED) == ring("a")
    with pytest.raises(ValueError):
        rings.save(ALICE, ALICE_SEED, ring("b"), nonce(2)[:11])
    rings.save(ALICE, ALICE_SEED, ring("b"), nonce(2))
    assert rings.load(ALICE, ALICE_SEED) == ring("b")


def test_a_closed_keyring_store_refuses_calls(path: Path) -> None:
    store = open_store(path)
    k = KeyringStore(store)
    k.close()
    k.close()
    with pytest.raises(StoreError) as info:
        k.load(ALICE, ALICE_SEED)
    assert info.value.code is ErrorCode.STORE_CLOSED
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite-memory"])
def test_in_memory_stores_share_sealed_rings_per_store(kind: str) -> None:
    store: object = MemoryStore() if kind == "memory" else SqliteStore(":memory:", offload=False)
    with KeyringStore(store) as one, KeyringStore(store) as two:
        one.save(ALICE, ALICE_SEED, ring("a"), nonce(1))
        assert two.load(ALICE, ALICE_SEED) == ring("a")
        assert two.owners() == [ALICE]
        with pytest.raises(ValueError):
            two.load(ALICE, BOB_SEED)
    other: object = MemoryStore() if kind == "memory" else SqliteStore(":memory:", offload=False)
    with KeyringStore(other) as three:
        assert three.owners() == []
        assert three.load(ALICE, ALICE_SEED) == Keyring()
    for s in (store, other):
        if isinstance(s, SqliteStore):
            s.close()


def test_a_memory_store_keeps_blobs_sealed() -> None:
    store = MemoryStore()
    with KeyringStore(store) as k:
        k.save(ALICE, ALICE_SEED, ring(), nonce(1))
    blob = keyrings._MEMORY.get(store).rows[ALICE]
    assert blob == seal_keyring(ring(), keyring_key(ALICE_SEED), nonce(1))
    assert RECEIVE not in blob and SECRET not in blob


def test_two_keyring_stores_on_one_file_and_many_threads(path: Path) -> None:
    store = open_store(path)
    seeds = [b(f"seed {i}") for i in range(8)]
    owners = [crypto.ed25519_public_from_seed(s) for s in seeds]
    with KeyringStore(store) as writer, KeyringStore(store) as reader:

        def work(i: int) -> None:
            for n in range(3):
                writer.save(owners[i], seeds[i], ring(f"{i}-{n}"), nonce(10 * i + n))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(seeds))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reader.owners() == sorted(owners)
        for i, (owner, seed) in enumerate(zip(owners, seeds, strict=True)):
            assert reader.load(owner, seed) == ring(f"{i}-2")
    store.close()


def _old_store(path: Path) -> None:
    """A store file as p2pcomm wrote it before migration 0003: version 2."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for item in sorted(
        importlib.resources.files("p2pcomm.store.migrations").iterdir(), key=lambda i: i.name
    ):
        if item.name in ("0001_init.sql", "0002_addresses.sql"):
            db.executescript(item.read_text())
    db.execute("PRAGMA user_version=2")
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute(
        "INSERT INTO addresses (host, port, source, first_seen, last_seen)"
        " VALUES ('192.168.1.20', 7447, 'bootstrap', ?, ?)",
        (T, T),
    )
    db.close()


def test_an_old_store_file_upgrades_when_opened(path: Path) -> None:
    _old_store(path)
    os.chmod(path, 0o600)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master WHERE name='keyrings'").fetchone() is None
    db.close()

    store = open_store(path)
    with KeyringStore(store) as k, AddressBook(store) as book:
        assert k.owners() == []
        k.save(ALICE, ALICE_SEED, ring(), nonce(1))
        assert book.get("192.168.1.20", 7447) is not None  # earlier tables kept
    store.close()

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    store = open_store(path)
    with KeyringStore(store) as k:
        assert k.load(ALICE, ALICE_SEED) == ring()
    store.close()


def test_a_file_without_the_table_is_refused(path: Path) -> None:
    store = open_store(path)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE keyrings")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as info:
        KeyringStore(store)
    assert info.value.code is ErrorCode.STORE_VERSION
    store.close()


def _store_files(db: Path) -> dict[str, bytes]:
    return {
        suffix: Path(f"{db}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm", "-journal")
        if Path(f"{db}{suffix}").exists()
    }


def test_a_stolen_store_holds_ciphertext_only(path: Path) -> None:
    secrets = {
        "receive private key": RECEIVE,
        "epoch secret": SECRET,
        "seed": ALICE_SEED,
        "keyring key": keyring_key(ALICE_SEED),
    }
    store = open_store(path)
    with KeyringStore(store) as k:
        k.save(ALICE, ALICE_SEED, ring(), nonce(1))
        k.save(ALICE, ALICE_SEED, ring("more"), nonce(2))
        k.save(BOB, BOB_SEED, ring("bob"), nonce(3))
        assert k.load(ALICE, ALICE_SEED).secret(REKEY) == SECRET
        open_files = _store_files(path)  # stolen while the store is open
    store.close()
    closed_files = _store_files(path)  # and after it closed
    assert "-wal" in open_files and "" in closed_files
    # The rows were read: the member id (public) is stored in the clear.
    assert any(ALICE in data for data in closed_files.values())
    for when, files in (("open", open_files), ("closed", closed_files)):
        for suffix, data in files.items():
            for name, value in secrets.items():
                assert value not in data, f"{name} found in store{suffix} ({when})"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
