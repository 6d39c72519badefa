"""Tamper resistance: every single-byte change to a valid encoded entry is refused with
a typed error (or, for a damaged signature, left pending and never accepted), and the
store is exactly as before after each attempt.

The entry is ingested through ``GroupLog.ingest_encoded`` over a ``SqliteStore`` that
already holds its valid predecessors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.core.log import Entry, encode_entry
from p2pcomm.errors import ErrorCode, ValidationError
from p2pcomm.group import GroupLog
from p2pcomm.store import BodyState, SqliteStore
from tests.helpers import BASE_TS, KIND_POST, keypair

FOUNDER, ALICE, BOB = keypair(0), keypair(1), keypair(2)
SIG_LEN = 64


def _snapshot(store: SqliteStore, group: bytes) -> tuple[object, ...]:
    """Everything the store holds for ``group``, through its API and row by row."""
    rows = store._db.execute(  # the raw rows: nothing half-written may hide behind the API
        "SELECT pos, id, gid, author, seq, ts, kind, header, sig, body, body_state"
        " FROM entries ORDER BY pos"
    ).fetchall()
    heads = store._db.execute("SELECT gid, id, author FROM heads ORDER BY gid, id").fetchall()
    forks = store._db.execute("SELECT key, proof FROM forks ORDER BY key").fetchall()
    return (
        store.count(group),
        store.heads(group),
        store.author_tips(group),
        [(p, e) for p, e in store.iter_entries(group)],
        rows,
        heads,
        forks,
    )


@pytest.fixture
def setting(tmp_path: Path) -> Iterator[tuple[SqliteStore, GroupLog, Entry]]:
    """A store holding G <- A1 <- B1 <- A2 <- B2 (each links the other author's
    latest); the target is A3 (prev A2, links B2, with a body), not stored."""
    store = SqliteStore(tmp_path / "tamper.db", durable=False)
    log = GroupLog.create(store, FOUNDER, body=b"group", timestamp=BASE_TS)
    log.append(ALICE, KIND_POST, b"a1", timestamp=BASE_TS + 1)
    log.append(BOB, KIND_POST, b"b1", timestamp=BASE_TS + 2)
    log.append(ALICE, KIND_POST, b"a2", timestamp=BASE_TS + 3)
    log.append(BOB, KIND_POST, b"b2", timestamp=BASE_TS + 3)
    # Build the target on a scratch copy of the log so it is not stored here.
    scratch = SqliteStore(tmp_path / "scratch.db", durable=False)
    scratch.put_entries(log.group, [e for _, e in log.entries()])
    target = GroupLog(scratch, log.group).append(
        ALICE, KIND_POST, b"the body of the entry", timestamp=BASE_TS + 4
    )
    scratch.close()
    assert target.header.links and target.header.prev is not None
    yield store, log, target
    store.close()


def _flips(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    for i in range(len(data)):
        for mask in (0x01, 0xFF):
            flipped = bytearray(data)
            flipped[i] ^= mask
            yield i, mask, bytes(flipped)


def _signature_span(data: bytes, entry: Entry) -> range:
    start = data.index(entry.signature)
    return range(start, start + len(entry.signature))


@pytest.mark.parametrize("verify_each", [False, True])
def test_every_single_byte_flip_is_refused(
    setting: tuple[SqliteStore, GroupLog, Entry], verify_each: bool
) -> None:
    store, log, target = setting
    data = encode_entry(target)
    assert store.entry_meta(log.group, target.id) is None
    before = _snapshot(store, log.group)
    in_signature = _signature_span(data, target)
    outcomes: dict[str, int] = {}
    for i, mask, flipped in _flips(data):
        fresh = GroupLog(store, log.group)  # no memory of earlier attempts
        result = fresh.ingest_encoded([flipped], verify_each=verify_each)
        assert result.accepted == [], (i, mask)
        assert result.forks == [] and result.bodies == []
        if result.rejected:
            assert len(result.rejected) == 1
            err = result.rejected[0].error
            assert isinstance(err, ValidationError) and isinstance(err.code, ErrorCode)
            outcomes[err.code.value] = outcomes.get(err.code.value, 0) + 1
        else:
            # Only a changed signature (or a changed header, which no signature covers)
            # can leave the entry waiting for an authentic successor.
            assert fresh.pending_count == 1, (i, mask)
            outcomes["pending"] = outcomes.get("pending", 0) + 1
            if i in in_signature:
                assert fresh._ingestor.pending_ids() == [target.id]
        assert _snapshot(store, log.group) == before, (i, mask)
    assert outcomes.get("pending", 0) >= 2 * SIG_LEN
    assert "body-mismatch" in outcomes
    assert log.verify().ok


def test_the_untampered_entry_is_accepted(setting: tuple[SqliteStore, GroupLog, Entry]) -> None:
    store, log, target = setting
    result = GroupLog(store, log.group).ingest_encoded([encode_entry(target)])
    assert [e.id for e in result.accepted] == [target.id]
    assert store.body_state(log.group, target.id) is BodyState.PRESENT


def test_flips_never_store_a_wrong_body(setting: tuple[SqliteStore, GroupLog, Entry]) -> None:
    """The target is stored header-only (body MISSING); offering it again with a body
    stores the body only if it matches the header. (A flip in the signature alone
    leaves header and body intact: that body is authenticated by the stored header's
    hash, so storing it is right.)"""
    store, log, target = setting
    GroupLog(store, log.group).ingest([target.without_body()])
    assert store.body_state(log.group, target.id) is BodyState.MISSING
    data = encode_entry(target)
    body_at = len(data) - len(target.body or b"")
    before = _snapshot(store, log.group)
    bodies_stored = 0
    for i, mask, flipped in _flips(data):
        result = GroupLog(store, log.group).ingest_encoded([flipped])
        assert result.accepted == []
        if i >= body_at:
            assert [x.error.code for x in result.rejected] == [ErrorCode.BODY_MISMATCH]
        if store.body_state(log.group, target.id) is BodyState.PRESENT:
            stored = store.get_entry(log.group, target.id)
            assert stored is not None and stored.body == target.body, (i, mask)
            bodies_stored += 1
            # Back to header-only for the next attempt.
            store._db.execute(
                "UPDATE entries SET body = NULL, body_state = 0 WHERE id = ?", (target.id,)
            )
        assert _snapshot(store, log.group) == before, (i, mask)
    assert bodies_stored <= 2 * SIG_LEN
