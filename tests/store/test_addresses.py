"""The address book (spec/08-discovery.md 8.10) on a real SQLite file, and in memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.errors import ErrorCode, StoreError
from p2pcomm.store import MemoryStore, SqliteStore
from p2pcomm.store.addresses import (
    BACKOFF_BASE_MS,
    BACKOFF_MAX_MS,
    MAX_FAILURES,
    AddressBook,
    parse_address,
)

T = 1795392000000


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def book(path: Path) -> Iterator[AddressBook]:
    store = SqliteStore(path, durable=False, offload=False)
    with AddressBook(store) as b:
        yield b
    store.close()


def texts(book: AddressBook, **kw: int) -> list[str]:
    return [a.text for a in book.to_dial(**kw)]


def test_the_migration_creates_the_table(path: Path) -> None:
    SqliteStore(path, offload=False).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 2
    cols = [r[1] for r in db.execute("PRAGMA table_info(addresses)")]
    assert cols == [
        "host",
        "port",
        "source",
        "first_seen",
        "last_seen",
        "last_success",
        "last_failure",
        "failures",
    ]
    db.close()


def test_survives_reopening(path: Path) -> None:
    store = SqliteStore(path, offload=False)
    with AddressBook(store) as book:
        book.note("192.168.1.20", 7447, source="invitation", now_ms=T)
        book.note("peer.example", 7447, source="bootstrap", now_ms=T + 1)
        book.note_success("192.168.1.20", 7447, now_ms=T + 2)
        book.note_failure("peer.example", 7447, now_ms=T + 3)
    store.close()

    store = SqliteStore(path, offload=False)
    with AddressBook(store) as book:
        a = book.get("192.168.1.20", 7447)
        assert a is not None
        assert (a.source, a.first_seen_ms, a.last_success_ms, a.failures) == (
            "invitation",
            T,
            T + 2,
            0,
        )
        b = book.get("peer.example", 7447)
        assert b is not None
        assert (b.source, b.last_failure_ms, b.failures) == ("bootstrap", T + 3, 1)
        assert texts(book) == ["192.168.1.20:7447", "peer.example:7447"]
    store.close()


def test_a_second_connection_sees_the_writes(path: Path) -> None:
    """The book is in the store's file: another process (the CLI while a node runs)
    reads what the node wrote."""
    s1, s2 = SqliteStore(path, offload=False), SqliteStore(path, offload=False)
    b1, b2 = AddressBook(s1), AddressBook(s2)
    b1.note("10.0.0.1", 1, source="mdns", now_ms=T)
    assert [a.text for a in b2.addresses()] == ["10.0.0.1:1"]
    for x in (b1, b2, s1, s2):
        x.close()


def test_ordering(book: AddressBook) -> None:
    book.note("10.0.0.1", 7447, source="mdns", now_ms=T)
    book.note("10.0.0.2", 7447, source="command-line", now_ms=T)
    book.note("10.0.0.3", 7447, source="exchange", now_ms=T + 5)
    book.note("10.0.0.4", 7447, source="exchange", now_ms=T + 9)
    book.note("10.0.0.5", 7447, source="bootstrap", now_ms=T)
    book.note("10.0.0.6", 7447, source="invitation", now_ms=T)
    # No success, no failure yet: by source, then the most recently seen.
    assert texts(book) == [
        "10.0.0.2:7447",
        "10.0.0.5:7447",
        "10.0.0.6:7447",
        "10.0.0.4:7447",
        "10.0.0.3:7447",
        "10.0.0.1:7447",
    ]
    # A success comes first, the most recent success first of all.
    book.note_success("10.0.0.1", 7447, now_ms=T + 100)
    book.note_success("10.0.0.3", 7447, now_ms=T + 200)
    # A failure sends an address after every address that has not failed.
    book.note_failure("10.0.0.2", 7447, now_ms=T + 300)
    assert texts(book) == [
        "10.0.0.3:7447",
        "10.0.0.1:7447",
        "10.0.0.5:7447",
        "10.0.0.6:7447",
        "10.0.0.4:7447",
        "10.0.0.2:7447",
    ]
    assert texts(book, limit=2) == ["10.0.0.3:7447", "10.0.0.1:7447"]


def test_failure_counting_and_forgetting(book: AddressBook) -> None:
    book.note("10.0.0.1", 7447, source="mdns", now_ms=T)
    book.note("10.0.0.2", 7447, source="bootstrap", now_ms=T)
    book.note("10.0.0.3", 7447, source="command-line", now_ms=T)
    for i in range(MAX_FAILURES - 1):
        a = book.note_failure("10.0.0.1", 7447, now_ms=T + i)
        assert a is not None and a.failures == i + 1
    # A success resets the count.
    ok = book.note_success("10.0.0.1", 7447, now_ms=T + 10)
    assert ok is not None and ok.failures == 0 and ok.last_failure_ms == T + MAX_FAILURES - 2
    for i in range(MAX_FAILURES - 1):
        book.note_failure("10.0.0.1", 7447, now_ms=T + 20 + i)
    # The fifth failure in a row forgets a learned address...
    assert book.note_failure("10.0.0.1", 7447, now_ms=T + 30) is None
    assert book.get("10.0.0.1", 7447) is None
    # ... but not one the user gave.
    for i in range(MAX_FAILURES * 2):
        assert book.note_failure("10.0.0.2", 7447, now_ms=T + i) is not None
        assert book.note_failure("10.0.0.3", 7447, now_ms=T + i) is not None
    b = book.get("10.0.0.2", 7447)
    assert b is not None and b.failures == MAX_FAILURES * 2
    assert texts(book) == ["10.0.0.3:7447", "10.0.0.2:7447"]
    # Unknown addresses are not added by an outcome.
    assert book.note_success("10.9.9.9", 1, now_ms=T) is None
    assert book.note_failure("10.9.9.9", 1, now_ms=T) is None
    assert len(book) == 2


def test_backoff(book: AddressBook) -> None:
    book.note("10.0.0.1", 7447, source="bootstrap", now_ms=T)
    assert texts(book, now_ms=T) == ["10.0.0.1:7447"]
    a = book.note_failure("10.0.0.1", 7447, now_ms=T)
    assert a is not None and a.retry_at_ms() == T + BACKOFF_BASE_MS
    assert texts(book, now_ms=T + BACKOFF_BASE_MS - 1) == []
    assert texts(book, now_ms=T + BACKOFF_BASE_MS) == ["10.0.0.1:7447"]
    a = book.note_failure("10.0.0.1", 7447, now_ms=T)
    assert a is not None and a.retry_at_ms() == T + 2 * BACKOFF_BASE_MS
    for _ in range(20):
        a = book.note_failure("10.0.0.1", 7447, now_ms=T)
    assert a is not None and a.retry_at_ms() == T + BACKOFF_MAX_MS
    assert texts(book) == ["10.0.0.1:7447"]  # without now_ms, backoff is not applied


def test_sources_merge(book: AddressBook) -> None:
    book.note("10.0.0.1", 7447, source="mdns", now_ms=T)
    a = book.note("10.0.0.1", 7447, source="command-line", now_ms=T + 5)
    assert (a.source, a.first_seen_ms, a.last_seen_ms) == ("command-line", T, T + 5)
    a = book.note("10.0.0.1", 7447, source="exchange", now_ms=T + 9)
    assert (a.source, a.last_seen_ms) == ("command-line", T + 9)
    with pytest.raises(ValueError):
        book.note("10.0.0.1", 7447, source="dns", now_ms=T)  # type: ignore[arg-type]


def test_forget(book: AddressBook) -> None:
    book.note("10.0.0.1", 7447, source="bootstrap", now_ms=T)
    assert book.forget("10.0.0.1", 7447) is True
    assert book.forget("10.0.0.1", 7447) is False
    assert book.to_dial() == []


def test_the_book_is_bounded(path: Path) -> None:
    store = SqliteStore(path, offload=False)
    with AddressBook(store, max_addresses=3) as book:
        book.note("10.0.0.9", 1, source="command-line", now_ms=T)
        for i in range(3):
            book.note(f"10.0.0.{i}", 1, source="mdns", now_ms=T + i)
        book.note_failure("10.0.0.1", 1, now_ms=T + 10)
        book.note("10.0.0.5", 1, source="exchange", now_ms=T + 20)
        # The failed one went; the user's address does not count.
        assert sorted(a.host for a in book.addresses()) == [
            "10.0.0.0",
            "10.0.0.2",
            "10.0.0.5",
            "10.0.0.9",
        ]
    store.close()


def test_addresses_are_normalised(book: AddressBook) -> None:
    book.note("[0:0::1]", 7447, source="mdns", now_ms=T)
    book.note("::1", 7447, source="mdns", now_ms=T + 1)
    book.note("Peer.Example.", 7447, source="mdns", now_ms=T)
    assert sorted(a.text for a in book.addresses()) == ["[::1]:7447", "peer.example:7447"]
    assert parse_address("192.168.1.20:7447") == ("192.168.1.20", 7447)
    assert parse_address("[fd00::5]:7447") == ("fd00::5", 7447)
    assert parse_address(" host.lan:1 ") == ("host.lan", 1)
    for bad in (
        "fd00::5:7447",
        "host",
        "host:",
        "host:0",
        "host:65536",
        ":7447",
        "host:x",
        "a b:1",
    ):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_memory_store_book() -> None:
    store = MemoryStore()
    book = AddressBook(store)
    book.note("10.0.0.1", 7447, source="mdns", now_ms=T)
    # Books of one store object share their addresses, books of another do not.
    assert [a.text for a in AddressBook(store).to_dial()] == ["10.0.0.1:7447"]
    assert AddressBook(MemoryStore()).to_dial() == []


def test_in_memory_sqlite_store_book() -> None:
    store = SqliteStore(":memory:")
    book = AddressBook(store)
    book.note("10.0.0.1", 7447, source="mdns", now_ms=T)
    assert len(book) == 1
    store.close()


def test_a_file_without_the_table_is_refused(path: Path) -> None:
    SqliteStore(path, offload=False).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE addresses")
    db.commit()
    db.close()

    class Fake(SqliteStore):
        def __init__(self) -> None:
            self.path, self.durable = str(path), False

    with pytest.raises(StoreError) as info:
        AddressBook(Fake())
    assert info.value.code is ErrorCode.STORE_VERSION


def test_a_closed_book_refuses(book: AddressBook) -> None:
    book.close()
    with pytest.raises(StoreError) as info:
        book.to_dial()
    assert info.value.code is ErrorCode.STORE_CLOSED
