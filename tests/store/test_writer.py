"""The store's writer process (``p2pcomm.store.writer``) and ``GroupLog``'s use of it.

Real child processes and real SQLite files; the child is killed with SIGKILL where a
test needs it dead. Large ingests (at least ``OFFLOAD_MIN`` entries) go through the
writer; the same calls on a store with ``offload=False`` are written in-process, and
both must leave the same stored log.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core.log import decode_entry, encode_entry
from p2pcomm.errors import DecodeError, ErrorCode, StoreError
from p2pcomm.group import INGEST_STEP, OFFLOAD_MIN, GroupLog
from p2pcomm.store import SqliteStore
from p2pcomm.store._sql import Row
from p2pcomm.store.sqlite import entry_row
from p2pcomm.store.writer import ProcessWriter
from tests.helpers import History, build_history

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history() -> History:
    return build_history(authors=4, per_author=700, seed=7, body_size=40, link_probability=0.3)


def _rows(history: History, lo: int, hi: int) -> list[Row]:
    return [entry_row(e) for e in history.entries[lo:hi]]


def _stored(store: SqliteStore, group: bytes) -> list[bytes]:
    return [e.id for _, e in store.iter_entries(group)]


def _kill(writer: ProcessWriter) -> None:
    """SIGKILL the writer and wait until it is gone (a kill is delivered
    asynchronously)."""
    os.kill(writer.pid, signal.SIGKILL)
    writer._proc.wait()


# --------------------------------------------------------------------------- the writer


def test_writes_are_visible_once_waited_for(tmp_path: Path, history: History) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        writer = store.writer()
        assert writer is not None and writer.alive
        assert store.writer() is writer  # one per store
        t1 = writer.put(history.group, _rows(history, 0, 100))
        t2 = writer.put(history.group, _rows(history, 100, 300))
        assert 0 < t1 < t2
        writer.wait(t2)  # answers come in order: t1 is done too
        writer.wait(t1)
        assert _stored(store, history.group) == [e.id for e in history.entries[:300]]
        assert store.heads(history.group) == {
            e.id: e.author for e in history.entries[:300] if e.id in _heads(history, 300)
        }


def _heads(history: History, n: int) -> set[bytes]:
    written = history.entries[:n]
    referenced = {x for e in written for x in [e.header.prev, *e.header.links] if x}
    return {e.id for e in written if e.id not in referenced}


def test_a_failed_write_is_reported_and_stores_nothing(tmp_path: Path, history: History) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        writer = store.writer()
        assert writer is not None
        rows = _rows(history, 0, 20)
        broken: list[Any] = [*rows[:10], ("not", "a", "row"), *rows[10:]]
        ticket = writer.put(history.group, broken)
        with pytest.raises(StoreError) as info:
            writer.wait(ticket)
        assert info.value.code is ErrorCode.STORE_CORRUPT
        assert "nothing stored" in str(info.value)
        assert store.count(history.group) == 0
        # the writer carries on
        writer.wait(writer.put(history.group, rows))
        assert store.count(history.group) == 20


def test_a_killed_writer_is_reported_and_replaced(tmp_path: Path, history: History) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        writer = store.writer()
        assert writer is not None
        writer.wait(writer.put(history.group, _rows(history, 0, 100)))
        _kill(writer)
        with pytest.raises(StoreError, match="writer process failed"):
            writer.wait(writer.put(history.group, _rows(history, 100, 200)))
        assert not writer.alive
        with pytest.raises(StoreError, match="writer process failed"):
            writer.put(history.group, [])
        # What was confirmed is there; the store starts a new writer on demand.
        assert _stored(store, history.group)[:100] == [e.id for e in history.entries[:100]]
        fresh = store.writer()
        assert fresh is not None and fresh is not writer and fresh.alive
        fresh.wait(fresh.put(history.group, _rows(history, 0, 300)))
        assert _stored(store, history.group) == [e.id for e in history.entries[:300]]
        assert store.integrity_check() == []


def test_closing_the_store_ends_the_writer(tmp_path: Path, history: History) -> None:
    store = SqliteStore(tmp_path / "s.db")
    writer = store.writer()
    assert writer is not None
    ticket = writer.put(history.group, _rows(history, 0, 500))
    store.close()  # without waiting: the child still finishes what it was sent
    assert writer._proc.returncode == 0
    assert not writer.alive
    with pytest.raises(StoreError):
        writer.wait(ticket)
    with SqliteStore(tmp_path / "s.db") as again:
        assert again.count(history.group) == 500


def test_no_writer_when_offload_is_off_or_in_memory(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db", offload=False) as store:
        assert store.writer() is None
    with SqliteStore(":memory:") as store:
        assert store.writer() is None


def test_threads_share_the_writer(tmp_path: Path, history: History) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        writer = store.writer()
        assert writer is not None
        others = build_history(authors=2, per_author=300, seed=8, body_size=8)
        errors: list[BaseException] = []

        def work(h: History) -> None:
            try:
                for lo in range(0, len(h.entries), 60):
                    ticket = writer.put(h.group, [entry_row(e) for e in h.entries[lo : lo + 60]])
                    writer.wait(ticket)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(h,)) for h in (history, others)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert _stored(store, history.group) == [e.id for e in history.entries]
        assert _stored(store, others.group) == [e.id for e in others.entries]


# --------------------------------------------------------------------------- GroupLog


def _logs(tmp_path: Path, group: bytes) -> tuple[GroupLog, GroupLog]:
    return (
        GroupLog(SqliteStore(tmp_path / "offload.db"), group),
        GroupLog(SqliteStore(tmp_path / "inline.db", offload=False), group),
    )


def test_waiting_for_an_answer_leaves_the_outcome_to_wait(
    tmp_path: Path, history: History
) -> None:
    """wait_answered (what a node calls before it takes its lock) blocks until the
    writer answered, and does not consume a failure: wait still reports it."""
    with SqliteStore(tmp_path / "s.db") as store:
        writer = store.writer()
        assert writer is not None
        broken: list[Any] = [*_rows(history, 0, 5), ("not", "a", "row")]
        ticket = writer.put(history.group, broken)
        writer.wait_answered(ticket)
        with pytest.raises(StoreError):
            writer.wait(ticket)
        good = writer.put(history.group, _rows(history, 0, 5))
        writer.wait_answered(good)
        writer.wait(good)
        assert store.count(history.group) == 5


def test_nobody_waits_for_the_writer_to_start(tmp_path: Path, history: History) -> None:
    """A log finds the writer not running: it writes the batch itself while the writer
    starts in the background, and later batches go to the writer. The stored log is
    the same."""
    store = SqliteStore(tmp_path / "s.db")
    log = GroupLog(store, history.group)
    assert store.running_writer() is None  # starts it, for the next caller
    first = log.ingest_nowait(history.entries[:OFFLOAD_MIN], offload=True)
    log.wait_durable()
    assert len(first.accepted) == OFFLOAD_MIN
    assert store.count(history.group) == OFFLOAD_MIN
    writer = store.writer()  # the background start's, or this call's: one writer
    assert writer is not None and store.running_writer() is writer
    log.ingest_nowait(history.entries[OFFLOAD_MIN:], offload=True)
    log.wait_written()
    log.wait_durable()
    assert store.count(history.group) == len(history.entries)
    assert log.verify().ok
    store.close()


def test_large_ingest_gives_the_same_log_either_way(tmp_path: Path, history: History) -> None:
    assert len(history.entries) > INGEST_STEP
    offloaded, inline = _logs(tmp_path, history.group)
    # Shuffled within steps and across them: entries wait for dependencies in later
    # steps, and some arrive twice.
    entries = list(reversed(history.entries[:1500])) + history.entries[1000:]
    results = [log.ingest(entries) for log in (offloaded, inline)]
    assert [len(r.accepted) for r in results] == [len(history.entries)] * 2
    assert results[0].duplicates == results[1].duplicates == 500
    for log in (offloaded, inline):
        assert [e.id for _, e in log.entries()] == [e.id for _, e in inline.entries()]
        assert log.heads() == sorted(_heads(history, len(history.entries)))
        assert log.verify().ok
        log.store.close()


def test_ingest_encoded_streams_and_rejects_undecodable(tmp_path: Path, history: History) -> None:
    offloaded, _ = _logs(tmp_path, history.group)
    blobs = [encode_entry(e) for e in history.entries]
    blobs.insert(1000, b"\x93garbage")
    result = offloaded.ingest_encoded(iter(blobs))
    assert len(result.accepted) == len(history.entries)
    with pytest.raises(DecodeError) as info:
        decode_entry(b"\x93garbage")
    assert [r.error.code for r in result.rejected] == [info.value.code]
    assert offloaded.store.count(history.group) == len(history.entries)
    offloaded.store.close()


def test_a_writer_killed_during_ingest_loses_no_confirmed_entry(
    tmp_path: Path, history: History
) -> None:
    store = SqliteStore(tmp_path / "s.db")
    log = GroupLog(store, history.group)
    first = log.ingest(history.entries[:OFFLOAD_MIN])
    assert len(first.accepted) == OFFLOAD_MIN
    writer = store.writer()
    assert writer is not None
    # Stopped first, so that it surely dies with the write unread (which fits in the
    # pipe's buffer).
    os.kill(writer.pid, signal.SIGSTOP)
    os.waitpid(writer.pid, os.WUNTRACED)  # returns once it is stopped
    log.ingest_nowait(history.entries[OFFLOAD_MIN : OFFLOAD_MIN + 100], offload=True)
    _kill(writer)
    with pytest.raises(StoreError):
        log.wait_durable()
    # The log asks the store again: whatever the killed writer committed, the rest is
    # accepted now and the store ends complete and valid.
    result = log.ingest(history.entries)
    stored = store.count(history.group)
    assert stored == len(history.entries)
    assert len(result.accepted) + result.duplicates >= len(history.entries) - OFFLOAD_MIN
    assert log.verify().ok
    assert store.integrity_check() == []
    store.close()


def test_many_writes_without_waiting_do_not_wedge_the_pipes(
    tmp_path: Path, history: History
) -> None:
    # 8,000 unread answers would fill the child's output pipe; put() must read them.
    with SqliteStore(tmp_path / "s.db", durable=False) as store:
        writer = store.writer()
        assert writer is not None
        rows = _rows(history, 0, 1)
        tickets = [writer.put(history.group, rows) for _ in range(8000)]
        writer.wait(tickets[-1])
        writer.wait(tickets[0])
        assert store.count(history.group) == 1


def test_no_writer_in_a_frozen_application(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.frozen", True, raising=False)
    with SqliteStore(tmp_path / "s.db") as store:
        assert store.writer() is None
