"""The pending set is shared out by peer (spec/03-log.md 3.14, 06 6.17 H11): what one
peer leaves waiting (entries whose dependencies never come) counts against its own
share and is dropped when its session ends, so it can never push out another peer's
entries."""

from __future__ import annotations

from p2pcomm.core.log import Entry
from p2pcomm.errors import ErrorCode
from p2pcomm.group import GroupLog
from tests.sync_helpers import all_entries, group_history, replica

A, B = b"a" * 32, b"b" * 32


def _chains() -> tuple[GroupLog, list[Entry], list[Entry]]:
    """A replica holding the genesis, and two authors' chains with their first entry
    missing (so every later entry waits)."""
    source = group_history(authors=2, entries=60, seed=5, max_run=60)
    entries = all_entries(source)
    by_author: dict[bytes, list[Entry]] = {}
    for e in entries[1:]:
        by_author.setdefault(e.header.author, []).append(e)
    first, second = (sorted(c, key=lambda e: e.header.seq) for c in by_author.values())
    log = replica(entries[:1])
    return log, first[1:], second[1:]


def test_one_peer_cannot_push_out_another_peers_pending_entries() -> None:
    log, honest, hostile = _chains()
    log._ingestor.max_pending_per_owner = 5
    flood = log.ingest_nowait(hostile, owner=B, verify_each=True)
    assert log._ingestor.pending_of(B) == 5
    assert {r.error.code for r in flood.rejected} == {ErrorCode.PENDING_FULL}
    assert len(flood.rejected) == len(hostile) - 5
    # The honest peer's entries still find room.
    ok = log.ingest_nowait(honest[:5], owner=A, verify_each=True)
    assert not ok.rejected and log._ingestor.pending_of(A) == 5


def test_a_peers_pending_entries_go_with_it() -> None:
    log, honest, hostile = _chains()
    log.ingest_nowait(hostile, owner=B, verify_each=True)
    log.ingest_nowait(honest, owner=A, verify_each=True)
    missing_before = set(log.missing_dependencies())
    assert len(missing_before) == 2
    assert log.discard_owner(B) == len(hostile)
    assert log._ingestor.pending_of(B) == 0
    assert log._ingestor.pending_of(A) == len(honest)
    # What only B's entries waited for is not asked for any more.
    assert set(log.missing_dependencies()) == {honest[0].header.prev}


def test_a_body_heavy_peer_is_held_to_its_share_of_bytes() -> None:
    log, _, hostile = _chains()
    size = len(hostile[0].body or b"")
    log._ingestor.max_pending_bytes_per_owner = 3 * size
    result = log.ingest_nowait(hostile, owner=B, verify_each=True)
    assert 0 < log._ingestor._pending.size[B] <= 3 * size
    assert log._ingestor.pending_of(B) < len(hostile)
    assert {r.error.code for r in result.rejected} == {ErrorCode.PENDING_FULL}


def test_a_peer_past_its_share_is_closed_as_a_flood() -> None:
    """06 H11: a peer whose entries fill its share of the pending set (they wait for
    entries it never sends) is closed with ``flood``; its entries go with it."""
    import pytest

    from p2pcomm.errors import RemoteProtocolError
    from p2pcomm.replication import Replicator

    log, _, hostile = _chains()
    log._ingestor.max_pending_per_owner = 5
    rep = Replicator({log.group: log}, initiator=True, session_hash=bytes(64), peer=B)
    with pytest.raises(RemoteProtocolError) as info:
        rep._ingest(log.group, hostile, bulk=False, live=True)
    assert info.value.code is ErrorCode.FLOOD
    assert rep.discard_pending() == 5
