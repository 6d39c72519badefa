"""A verifying copy replaces a bad stored signature, and a fork proof made again
replaces the stored one (spec 03 A1, F1c), in the store itself.

An entry can be stored with a signature that does not verify when a successor vouches
for it (03 A2). When a copy whose signature verifies arrives later, the ingestor
reports it (``IngestResult.signatures``) and makes the fork proof again with the
one-header run; ``GroupLog`` must keep both in the store, since the store is what
``get_entry`` answers from and what sync forwards. Run on a ``MemoryStore``, on SQLite
written in this process, and on SQLite written by the store's writer process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import msgpack
import pytest

from p2pcomm.core.log import (
    AuthenticatedRun,
    Entry,
    ForkProof,
    IngestResult,
    create_entry,
    encode_fork_proof,
    entry_id,
    verify_signature,
)
from p2pcomm.core.sync import Msg
from p2pcomm.group import GroupLog
from p2pcomm.store import MemoryStore, SqliteStore, Store
from tests.helpers import BASE_TS, KIND_POST, bad_signature, genesis_only, keypair
from tests.sync_helpers import Link, entry_ids, pump, replica, replicator_pair

FOUNDER, ALICE = keypair(0), keypair(1)
GENESIS = genesis_only(FOUNDER, body=b"group")
GROUP = GENESIS.id
WAYS = ["memory", "sqlite", "sqlite-writer"]


def _entry(seq: int, prev: Entry | None, ts: int, body: bytes) -> Entry:
    return create_entry(
        ALICE,
        group=GROUP,
        seq=seq,
        prev=None if prev is None else prev.id,
        links=[GROUP] if prev is None else [],
        timestamp=ts,
        kind=KIND_POST,
        body=body,
    )


A1 = _entry(1, None, BASE_TS, b"a1")
A2 = _entry(2, A1, BASE_TS + 1, b"left")
#: A fork of A2 (same author and sequence), and its successor.
A2X = _entry(2, A1, BASE_TS + 1, b"right")
A3X = _entry(3, A2X, BASE_TS + 2, b"a3'")
#: A2X with a corrupted signature: valid only because A3X vouches for it.
A2X_BAD = bad_signature(A2X, ALICE)


def _proof(a: Sequence[Entry], b: Sequence[Entry]) -> ForkProof:
    runs = sorted(
        (
            AuthenticatedRun(headers=tuple(e.header_bytes for e in x), signature=x[-1].signature)
            for x in (a, b)
        ),
        key=lambda run: entry_id(run.headers[0]),
    )
    return ForkProof(a=runs[0], b=runs[1])


LONG = _proof([A2], [A2X_BAD, A3X])
SHORT = _proof([A2], [A2X])


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(way: str, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if way == "memory":
        s = MemoryStore()
    else:
        s = SqliteStore(tmp_path / "s.db", durable=False, offload=way == "sqlite-writer")
    yield s
    s.close()


def _ingest(log: GroupLog, way: str, entries: Sequence[Entry]) -> IngestResult:
    """One ingest step, through the writer process for ``sqlite-writer``."""
    if way != "sqlite-writer":
        return log.ingest(entries)
    assert log.store.writer() is not None  # type: ignore[attr-defined]
    result = log.ingest_nowait(entries, offload=True)
    assert log.inflight is result
    log.wait_durable()
    return result


def _wanted(log: GroupLog, ids: Sequence[bytes]) -> list[bytes]:
    """The encoded entries ``log``'s side of a session sends when a peer asks for
    ``ids`` (a WANT after synchronising): what sync forwards of them."""
    peer = replica([GENESIS])
    a, b = replicator_pair(peer, log)
    pump(a, b)
    a.session.want(GROUP, list(ids), again=True)
    data = b.receive(a.session.data_to_send())
    out: list[bytes] = []
    while data:
        n = int.from_bytes(data[:4], "big")
        message = msgpack.unpackb(data[4 : 4 + n], raw=False)
        data = data[4 + n :]
        if message[0] == Msg.ENTRIES:
            out.extend(message[2])
    return out


def test_a_verifying_copy_replaces_the_stored_signature(store: Store, way: str) -> None:
    """G <- A1 <- A2' <- A3': A2' arrives with a corrupted signature and is stored on
    the strength of A3'; its genuine copy arrives later and its signature is kept."""
    log = GroupLog(store, GROUP)
    first = _ingest(log, way, [GENESIS, A1, A2X_BAD, A3X])
    assert {e.id for e in first.accepted} == {GROUP, A1.id, A2X.id, A3X.id}
    assert store.get_entry(GROUP, A2X.id) == A2X_BAD
    assert _wanted(log, [A2X.id]) == []  # 06 P4: it cannot authenticate alone

    result = _ingest(log, way, [A2X])
    assert result.duplicates == 1 and not result.accepted
    assert result.signatures == [(A2X.id, A2X.signature)]
    assert store.get_entry(GROUP, A2X.id) == A2X
    assert log.get(A2X.id) == A2X
    assert store.get_signed_header(GROUP, A2X.id) == (A2X.header_bytes, A2X.signature)
    assert [e for _, e in store.iter_author(GROUP, ALICE.public_key)] == [A1, A2X, A3X]
    assert [e for _, e in log.entries()] == [GENESIS, A1, A2X, A3X]
    assert log.verify().ok
    # Sync now forwards the verifying copy, which a peer authenticates on its own.
    sent = _wanted(log, [A2X.id])
    assert len(sent) == 1 and A2X.signature in sent[0] and A2X_BAD.signature not in sent[0]
    # The same copy again, or the bad one, changes nothing.
    assert not _ingest(log, way, [A2X]).signatures
    assert not _ingest(log, way, [A2X_BAD]).signatures
    assert store.get_entry(GROUP, A2X.id) == A2X


def test_a_proof_made_again_replaces_the_stored_proof(store: Store, way: str) -> None:
    """G <- A1 <- A2 and A1 <- A2' <- A3', A2' with a corrupted signature: the proof's
    run for A2' is A2', A3'. A2''s genuine copy arrives: the proof is made again with
    the one-header run, under the same fork id, and the store keeps that one."""
    log = GroupLog(store, GROUP)
    first = _ingest(log, way, [GENESIS, A1, A2, A2X_BAD, A3X])
    assert first.forks == [LONG]
    assert log.fork_proofs() == [LONG]

    result = _ingest(log, way, [A2X])
    assert result.signatures == [(A2X.id, A2X.signature)]
    assert result.forks == [SHORT] and SHORT.key() == LONG.key()
    assert log.fork_proofs() == [SHORT]  # what sync forwards in FORKS
    assert store.get_entry(GROUP, A2X.id) == A2X
    # A replica that had the genuine copy first holds the same proof, byte for byte.
    other = GroupLog(MemoryStore(), GROUP)
    other.ingest([GENESIS, A1, A2, A2X, A2X_BAD, A3X], verify_each=True)
    assert [encode_fork_proof(p) for p in other.fork_proofs()] == [encode_fork_proof(SHORT)]

    # A fresh peer synchronising with it gets the verifying copy and the short proof.
    peer = replica([GENESIS])
    link = Link(*replicator_pair(peer, log))
    link.start()
    link.pump()
    assert entry_ids(peer) == {GROUP, A1.id, A2.id, A2X.id, A3X.id}
    assert peer.get(A2X.id) == A2X
    assert peer.fork_proofs() == [SHORT]


def test_a_proof_received_from_a_peer_is_replaced_by_the_one_made_here(
    store: Store, way: str
) -> None:
    """A proof received on its own (FORKS) is kept as it came; once the replica holds
    the entries, the proof it makes for them takes its place (03 F1c)."""
    log = GroupLog(store, GROUP)
    _ingest(log, way, [GENESIS, A1, A2])
    log.store_fork_proofs([LONG])
    assert log.fork_proofs() == [LONG]
    log.store_fork_proofs([SHORT])  # a proof of a stored fork id is skipped
    assert log.fork_proofs() == [LONG]
    result = _ingest(log, way, [A2X, A3X])
    assert result.forks == [SHORT]
    assert log.fork_proofs() == [SHORT]


def test_replacements_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with SqliteStore(path) as store:
        log = GroupLog(store, GROUP)
        log.ingest([GENESIS, A1, A2, A2X_BAD, A3X])
        log.ingest([A2X])
    with SqliteStore(path) as store:
        assert store.get_entry(GROUP, A2X.id) == A2X
        assert verify_signature(store.get_entry(GROUP, A2X.id))  # type: ignore[arg-type]
        assert store.fork_proofs(GROUP) == [SHORT]
        log = GroupLog(store, GROUP)
        again = log.ingest([A2X, A2X_BAD])
        assert not again.signatures and not again.forks
        assert log.verify().ok


def test_a_verifying_copy_in_the_step_after_its_entry(tmp_path: Path) -> None:
    """Through the writer process, each step is validated while the one before is
    written: the genuine copy of an entry accepted (with a corrupted signature) by the
    previous step, still being written, is kept too."""
    with SqliteStore(tmp_path / "w.db", durable=False) as store:
        log = GroupLog(store, GROUP)
        log.ingest_nowait([GENESIS, A1, A2, A2X_BAD, A3X], offload=True)
        result = log.ingest_nowait([A2X], offload=True)
        log.wait_durable()
        assert result.signatures == [(A2X.id, A2X.signature)]
        assert result.forks == [SHORT]
        assert store.get_entry(GROUP, A2X.id) == A2X
        assert store.fork_proofs(GROUP) == [SHORT]


def test_a_fork_whose_branches_come_in_consecutive_steps(tmp_path: Path) -> None:
    """The other branch of a fork arrives in the step after the first one, while that
    one is still being written: the fork is found and proven all the same."""
    with SqliteStore(tmp_path / "f.db", durable=False) as store:
        log = GroupLog(store, GROUP)
        log.ingest_nowait([GENESIS, A1, A2], offload=True)
        result = log.ingest_nowait([A2X], offload=True)
        log.wait_durable()
        assert result.forks == [SHORT]
        assert store.fork_proofs(GROUP) == [SHORT]
