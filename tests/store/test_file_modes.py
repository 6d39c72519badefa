"""Store files hold a group's plaintext: ``SqliteStore`` creates them, and SQLite their
``-wal``, ``-shm`` and ``-journal`` companions, readable by their owner only (0600),
whatever the umask; the writer process never creates one. A store the user made with
another mode keeps it. Real files throughout."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.errors import ErrorCode, StoreError
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore
from p2pcomm.store.sqlite import entry_row
from p2pcomm.store.writer import ProcessWriter
from tests.helpers import BASE_TS, KIND_POST, keypair


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _companions(db: Path) -> dict[str, int]:
    return {
        suffix: _mode(Path(f"{db}{suffix}"))
        for suffix in ("", "-wal", "-shm", "-journal")
        if Path(f"{db}{suffix}").exists()
    }


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_a_new_store_and_its_wal_files_are_private(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "club.db"
    with SqliteStore(db) as store:
        assert _mode(db) == 0o600
        log = GroupLog.create(store, keypair(1), body=b"club", timestamp=BASE_TS)
        log.append(keypair(1), KIND_POST, b"hello")
        modes = _companions(db)
        assert set(modes) >= {"", "-wal", "-shm"}
        assert set(modes.values()) == {0o600}


def test_the_writer_process_writes_private_files_and_never_creates_one(tmp_path: Path) -> None:
    db = tmp_path / "club.db"
    old = os.umask(0)
    try:
        with SqliteStore(db) as store:
            log = GroupLog.create(store, keypair(1), timestamp=BASE_TS)
            entry = log.append(keypair(1), KIND_POST, b"hello")
            writer = store.writer()
            assert writer is not None
            writer.wait(writer.put(log.group, [entry_row(entry)]))  # already stored: a no-op write
            writer.wait(writer.put(b"\x01" * 32, [], [], []))  # a new group row: a real commit
            assert set(_companions(db).values()) == {0o600}
        assert _mode(db) == 0o600
        gone = tmp_path / "gone.db"
        with pytest.raises(StoreError):
            ProcessWriter(str(gone))
        assert not gone.exists()
    finally:
        os.umask(old)


def test_an_existing_store_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with SqliteStore(db) as store:
        GroupLog.create(store, keypair(1), timestamp=BASE_TS)
    os.chmod(db, 0o640)
    with SqliteStore(db) as store:
        GroupLog(store, store.groups()[0]).append(keypair(1), KIND_POST, b"hi")
        assert set(_companions(db).values()) == {0o640}
    assert _mode(db) == 0o640


def test_an_existing_empty_file_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "made-by-hand.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    with SqliteStore(db) as store:
        GroupLog.create(store, keypair(1), timestamp=BASE_TS)
    assert _mode(db) == 0o644


def test_a_rollback_journal_takes_the_store_file_mode(tmp_path: Path) -> None:
    # SqliteStore keeps its files in WAL mode; a rollback journal appears only when some
    # other program opens the file in another journal mode. SQLite gives it the
    # database file's mode too.
    db = tmp_path / "club.db"
    old = os.umask(0)
    try:
        with SqliteStore(db) as store:
            GroupLog.create(store, keypair(1), timestamp=BASE_TS)
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE scratch (x)")
            assert _companions(db) == {"": 0o600, "-journal": 0o600}
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    finally:
        os.umask(old)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(StoreError) as info:
        SqliteStore(missing / "club.db")
    assert info.value.code is ErrorCode.NOT_FOUND
    assert f"directory {missing} does not exist" in info.value.message
    assert not (tmp_path / "no").exists()
