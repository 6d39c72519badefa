"""The ``Store`` contract (p2pcomm/store/base.py), one suite run on every implementation,
then what only ``SqliteStore`` promises, then ``GroupLog`` on top of each store."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path

import pytest

from p2pcomm.core.log import (
    AuthenticatedRun,
    Entry,
    ForkProof,
    create_entry,
    encode_entry,
    encode_header,
    entry_id,
    make_header,
)
from p2pcomm.errors import ErrorCode, StoreError
from p2pcomm.group import GroupLog, ThreadedSignatures
from p2pcomm.store import BodyState, MemoryStore, SqliteStore, Store
from p2pcomm.store.sqlite import PAGE_SIZE, SCHEMA_VERSION
from tests.helpers import BASE_TS, KIND_POST, History, build_history, keypair

STORES = ["memory", "sqlite"]


def _open(kind: str, path: Path) -> Store:
    return MemoryStore() if kind == "memory" else SqliteStore(path, durable=False)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = _open(request.param, tmp_path / "store.db")
    yield s
    s.close()


@cache
def history() -> History:
    return build_history(authors=3, per_author=4, seed=31, body_size=12)


@cache
def other_history() -> History:
    return build_history(authors=2, per_author=3, seed=32, first_key=10)


@cache
def fork() -> tuple[Entry, Entry, ForkProof]:
    """Two entries extending the history's last entry of author 1 with the same
    sequence number and different timestamps, and their fork proof."""
    h = history()
    kp = keypair(1)
    tip = h.chains()[kp.public_key][-1]
    ts = tip.header.timestamp
    a, b = (
        create_entry(
            kp,
            group=h.group,
            seq=tip.seq + 1,
            prev=tip.id,
            links=[],
            timestamp=ts + d,
            kind=KIND_POST,
            body=bytes([d]),
        )
        for d in (1, 2)
    )

    def run(e: Entry) -> AuthenticatedRun:
        return AuthenticatedRun(headers=(e.header_bytes,), signature=e.signature)

    first, second = sorted([a, b], key=lambda e: e.id)
    return a, b, ForkProof(a=run(first), b=run(second))


def reference_heads(entries: Iterable[Entry]) -> dict[bytes, bytes]:
    stored = list(entries)
    referenced = {x for e in stored for x in [e.header.prev, *e.header.links] if x is not None}
    return {e.id: e.header.author for e in stored if e.id not in referenced}


def snapshot(store: Store, group: bytes) -> tuple[object, ...]:
    return (
        store.groups(),
        store.count(group),
        list(store.iter_entries(group)),
        store.heads(group),
        store.author_tips(group),
        store.fork_proofs(group),
    )


# --------------------------------------------------------------------------------------
# The contract, on every store
# --------------------------------------------------------------------------------------


def test_empty_store(store: Store) -> None:
    g, e = history().group, history().entries[1]
    assert store.groups() == []
    assert store.count(g) == 0
    assert store.entry_meta(g, e.id) is None
    assert store.ids_at(g, e.author, e.seq) == []
    assert store.max_seq(g, e.author) == 0
    assert store.get_signed_header(g, e.id) is None
    assert store.get_entry(g, e.id) is None
    assert store.body_state(g, e.id) is None
    assert list(store.iter_entries(g)) == []
    assert store.heads(g) == {}
    assert store.author_tips(g) == {}
    assert store.fork_proofs(g) == []
    assert store.put_body(g, e.id, b"x") is False
    assert store.drop_body(g, e.id) is False
    store.put_entries(g, [])
    assert store.groups() == []  # a group with no entries is not listed


def test_put_and_get(store: Store) -> None:
    h = history()
    store.put_entries(h.group, h.entries)
    assert store.groups() == [h.group]
    assert store.count(h.group) == len(h.entries)
    for e in h.entries:
        assert store.get_entry(h.group, e.id) == e
        assert store.get_signed_header(h.group, e.id) == (e.header_bytes, e.signature)
        meta = store.entry_meta(h.group, e.id)
        assert meta is not None
        assert (meta.author, meta.seq, meta.timestamp) == (e.author, e.seq, e.header.timestamp)
        assert store.body_state(h.group, e.id) is BodyState.PRESENT
        assert store.ids_at(h.group, e.author, e.seq) == [e.id]
    for author, chain in h.chains().items():
        assert store.max_seq(h.group, author) == len(chain)
        assert store.ids_at(h.group, author, len(chain) + 1) == []


def test_groups_are_kept_apart(store: Store) -> None:
    h, o = history(), other_history()
    store.put_entries(h.group, h.entries)
    store.put_entries(o.group, o.entries)
    assert sorted(store.groups()) == sorted([h.group, o.group])
    assert store.count(h.group) == len(h.entries)
    assert store.count(o.group) == len(o.entries)
    e = h.entries[1]
    assert store.entry_meta(o.group, e.id) is None
    assert store.get_entry(o.group, e.id) is None
    assert store.get_signed_header(o.group, e.id) is None
    assert store.body_state(o.group, e.id) is None
    assert store.ids_at(o.group, e.author, e.seq) == []
    assert store.max_seq(o.group, e.author) == 0
    assert store.drop_body(o.group, e.id) is False
    assert store.body_state(h.group, e.id) is BodyState.PRESENT
    assert {x.id for _, x in store.iter_entries(o.group)} == o.ids
    assert store.heads(o.group) == reference_heads(o.entries)


def test_header_only_entry_gets_its_body_later(store: Store) -> None:
    h = history()
    e = h.entries[3]
    store.put_entries(h.group, [x.without_body() if x.id == e.id else x for x in h.entries])
    assert store.body_state(h.group, e.id) is BodyState.MISSING
    assert store.get_entry(h.group, e.id) == e.without_body()
    # Putting the entry again (with its body) skips it: bodies arrive via put_body.
    store.put_entries(h.group, [e])
    assert store.body_state(h.group, e.id) is BodyState.MISSING
    assert e.body is not None
    assert store.put_body(h.group, e.id, e.body) is True
    assert store.body_state(h.group, e.id) is BodyState.PRESENT
    assert store.get_entry(h.group, e.id) == e
    assert store.put_body(h.group, e.id, e.body) is False  # already present
    assert store.get_entry(h.group, e.id) == e


def test_dropped_body_stays_dropped(store: Store) -> None:
    h = history()
    e = h.entries[2]
    store.put_entries(h.group, h.entries)
    assert store.drop_body(h.group, e.id) is True
    assert store.body_state(h.group, e.id) is BodyState.DROPPED
    assert store.get_entry(h.group, e.id) == e.without_body()
    assert store.get_signed_header(h.group, e.id) == (e.header_bytes, e.signature)
    assert store.count(h.group) == len(h.entries)
    assert e.body is not None
    assert store.put_body(h.group, e.id, e.body) is False
    store.put_entries(h.group, [e])
    assert store.body_state(h.group, e.id) is BodyState.DROPPED
    assert store.get_entry(h.group, e.id) == e.without_body()
    assert store.drop_body(h.group, bytes(32)) is False


def test_header_only_entry_can_be_dropped(store: Store) -> None:
    h = history()
    e = h.entries[4]
    store.put_entries(h.group, [x.without_body() if x.id == e.id else x for x in h.entries])
    assert store.drop_body(h.group, e.id) is True
    assert store.body_state(h.group, e.id) is BodyState.DROPPED
    assert e.body is not None
    assert store.put_body(h.group, e.id, e.body) is False
    assert store.body_state(h.group, e.id) is BodyState.DROPPED


def test_duplicates_are_skipped(store: Store) -> None:
    h = history()
    half = len(h.entries) // 2
    store.put_entries(h.group, h.entries[:half])
    before = list(store.iter_entries(h.group))
    heads = store.heads(h.group)
    store.put_entries(h.group, h.entries[:half])
    assert list(store.iter_entries(h.group)) == before
    assert store.heads(h.group) == heads
    # A batch mixing stored and new entries (and one repeated) adds only the new ones,
    # after the old ones.
    store.put_entries(h.group, [*h.entries[: half + 2], h.entries[half]])
    after = list(store.iter_entries(h.group))
    assert after[:half] == before
    assert [e for _, e in after] == h.entries[: half + 2]
    assert store.heads(h.group) == reference_heads(h.entries[: half + 2])
    for e in h.entries[: half + 2]:
        assert store.ids_at(h.group, e.author, e.seq) == [e.id]


def test_iteration_order_and_resume(store: Store) -> None:
    h, o = history(), other_history()
    # Interleave the two groups' writes, in several transactions.
    for i in range(0, len(h.entries), 5):
        store.put_entries(h.group, h.entries[i : i + 5])
        store.put_entries(o.group, o.entries[i // 5 * 2 : i // 5 * 2 + 2])
    store.put_entries(o.group, o.entries)
    walked = list(store.iter_entries(h.group))
    positions = [p for p, _ in walked]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [e for _, e in walked] == h.entries
    for k, (pos, _) in enumerate(walked):
        assert list(store.iter_entries(h.group, after=pos)) == walked[k + 1 :]
    assert list(store.iter_entries(h.group, after=0)) == walked
    assert list(store.iter_entries(h.group, after=positions[-1] + 10**6)) == []
    no_bodies = list(store.iter_entries(h.group, with_bodies=False))
    assert no_bodies == [(p, e.without_body()) for p, e in walked]
    assert [e for _, e in store.iter_entries(o.group)] == o.entries


def test_heads_follow_the_stored_entries(store: Store) -> None:
    h = history()
    for k, e in enumerate(h.entries, 1):
        store.put_entries(h.group, [e])
        assert store.heads(h.group) == reference_heads(h.entries[:k]), k


@pytest.mark.parametrize("batch", [2, 5, 100])
def test_heads_after_batches(store: Store, batch: int) -> None:
    h = history()
    for i in range(0, len(h.entries), batch):
        store.put_entries(h.group, h.entries[i : i + batch])
        assert store.heads(h.group) == reference_heads(h.entries[: i + batch])


def test_author_tips(store: Store) -> None:
    h = history()
    store.put_entries(h.group, h.entries)
    assert store.author_tips(h.group) == {
        author: (chain[-1].seq, chain[-1].id, chain[-1].header.timestamp)
        for author, chain in h.chains().items()
    }
    # After a fork at the top, the lowest id is the tip, with its own timestamp.
    a, b, _ = fork()
    store.put_entries(h.group, [a, b])
    low = min(a, b, key=lambda e: e.id)
    assert store.author_tips(h.group)[a.author] == (a.seq, low.id, low.header.timestamp)
    assert sorted(store.ids_at(h.group, a.author, a.seq)) == sorted([a.id, b.id])
    assert store.max_seq(h.group, a.author) == a.seq
    assert store.heads(h.group) == reference_heads([*h.entries, a, b])


def test_fork_proofs(store: Store) -> None:
    h, o = history(), other_history()
    a, b, proof = fork()
    store.put_entries(h.group, h.entries)
    store.put_entries(h.group, [a, b], [proof])
    assert store.fork_proofs(h.group) == [proof]
    store.put_entries(h.group, [], [proof])  # the same proof again
    assert store.fork_proofs(h.group) == [proof]
    store.put_entries(o.group, o.entries)
    assert store.fork_proofs(o.group) == []


def _longer_proof() -> ForkProof:
    """The fork's proof with a longer run for one side: what a replica makes while it
    holds that entry only with a bad signature and a vouching successor (03 F1a)."""
    h = history()
    a, b, proof = fork()
    kp = keypair(1)
    first = a if entry_id(proof.a.headers[0]) == a.id else b
    succ = create_entry(
        kp,
        group=h.group,
        seq=first.seq + 1,
        prev=first.id,
        links=[],
        timestamp=first.header.timestamp,
        kind=KIND_POST,
    )
    run = AuthenticatedRun(
        headers=(first.header_bytes, succ.header_bytes), signature=succ.signature
    )
    return ForkProof(a=run, b=proof.b)


def test_put_keeps_the_first_signature_and_proof(store: Store) -> None:
    h = history()
    a, b, proof = fork()
    longer = _longer_proof()
    assert longer.key() == proof.key() and longer != proof
    store.put_entries(h.group, h.entries)
    store.put_entries(h.group, [a, b], [longer])
    e = h.entries[5]
    store.put_entries(h.group, [e._replace(signature=bytes(64))], [proof])
    assert store.get_entry(h.group, e.id) == e
    assert store.fork_proofs(h.group) == [longer]


def test_replace_signatures(store: Store) -> None:
    h, o = history(), other_history()
    e, f = h.entries[5], h.entries[7]
    bad_e, bad_f = e._replace(signature=bytes(64)), f._replace(signature=b"\x01" * 64)
    store.put_entries(h.group, [*h.entries[:5], bad_e, h.entries[6], bad_f, *h.entries[8:]])
    store.put_entries(o.group, o.entries)
    store.drop_body(h.group, f.id)
    before = list(store.iter_entries(h.group))
    others = list(store.iter_entries(o.group))
    changed = store.replace_signatures(
        h.group,
        iter([(e.id, e.signature), (f.id, f.signature), (bytes(32), e.signature)]),
    )
    assert changed == 2  # the unknown id is skipped
    assert store.get_entry(h.group, e.id) == e
    assert store.get_signed_header(h.group, e.id) == (e.header_bytes, e.signature)
    assert store.get_entry(h.group, f.id) == f.without_body()
    assert store.body_state(h.group, f.id) is BodyState.DROPPED
    # Nothing else changes: positions, order, heads, tips, the other entries.
    after = list(store.iter_entries(h.group))
    assert [p for p, _ in after] == [p for p, _ in before]
    expected = [*h.entries[:5], e, h.entries[6], f.without_body(), *h.entries[8:]]
    assert [x for _, x in after] == expected
    assert [x for _, x in store.iter_author(h.group, e.author)] == [
        x for x in expected if x.author == e.author
    ]
    assert store.heads(h.group) == reference_heads(h.entries)
    assert store.count(h.group) == len(h.entries)
    # The same signature again changes nothing; nor does an empty call.
    assert store.replace_signatures(h.group, [(e.id, e.signature)]) == 0
    assert store.replace_signatures(h.group, []) == 0
    # An entry is replaced only in its own group.
    assert store.replace_signatures(o.group, [(e.id, bytes(64))]) == 0
    assert store.replace_signatures(b"\x07" * 32, [(e.id, bytes(64))]) == 0
    assert store.get_entry(h.group, e.id) == e
    assert list(store.iter_entries(o.group)) == others
    assert set(store.groups()) == {h.group, o.group}


def test_replace_fork_proofs(store: Store) -> None:
    h, o = history(), other_history()
    a, b, proof = fork()
    longer = _longer_proof()
    store.put_entries(h.group, h.entries)
    store.put_entries(o.group, o.entries)
    store.put_entries(h.group, [a, b], [longer])
    store.replace_fork_proofs(h.group, [proof])
    assert store.fork_proofs(h.group) == [proof]
    store.replace_fork_proofs(h.group, [proof])  # the same again: still one
    assert store.fork_proofs(h.group) == [proof]
    store.replace_fork_proofs(h.group, [])
    assert store.fork_proofs(h.group) == [proof]
    # A proof whose fork id is not stored is added: a third entry at the fork.
    kp, tip = keypair(1), h.chains()[keypair(1).public_key][-1]
    c = create_entry(
        kp,
        group=h.group,
        seq=a.seq,
        prev=tip.id,
        links=[],
        timestamp=a.header.timestamp + 2,
        kind=KIND_POST,
    )
    first, second = sorted([a, c], key=lambda x: x.id)
    third = ForkProof(
        a=AuthenticatedRun(headers=(first.header_bytes,), signature=first.signature),
        b=AuthenticatedRun(headers=(second.header_bytes,), signature=second.signature),
    )
    store.put_entries(h.group, [c])
    store.replace_fork_proofs(h.group, [third, proof])
    assert sorted(store.fork_proofs(h.group), key=ForkProof.key) == sorted(
        [proof, third], key=ForkProof.key
    )
    assert store.fork_proofs(o.group) == []
    # put_entries still keeps what is stored.
    store.put_entries(h.group, [], [longer])
    assert proof in store.fork_proofs(h.group) and longer not in store.fork_proofs(h.group)


def test_replace_signatures_is_atomic_for_a_bad_item(store: Store) -> None:
    h = history()
    e = h.entries[5]
    store.put_entries(h.group, [*h.entries[:5], e._replace(signature=bytes(64)), *h.entries[6:]])
    before = snapshot(store, h.group)
    with pytest.raises((StoreError, TypeError, ValueError)):
        store.replace_signatures(h.group, [(e.id, e.signature), None])  # type: ignore[list-item]
    assert snapshot(store, h.group) == before


def _failing(entries: list[Entry], after: int) -> Iterator[Entry]:
    yield from entries[:after]
    raise RuntimeError("the producer failed")


def test_put_is_atomic_when_the_producer_fails(store: Store) -> None:
    """``entries`` may be a generator still producing inside the transaction; if it
    raises, nothing of that call is stored."""
    h = history()
    store.put_entries(h.group, h.entries[:3])
    before = snapshot(store, h.group)
    with pytest.raises(RuntimeError):
        store.put_entries(h.group, _failing(h.entries[3:], 4))
    assert snapshot(store, h.group) == before
    for e in h.entries[3:7]:
        assert store.entry_meta(h.group, e.id) is None
    # And the store still works.
    store.put_entries(h.group, h.entries)
    assert store.count(h.group) == len(h.entries)


def test_put_is_atomic_for_a_new_group(store: Store) -> None:
    o = other_history()
    with pytest.raises(RuntimeError):
        store.put_entries(o.group, _failing(o.entries, 3))
    assert store.groups() == []
    assert store.count(o.group) == 0
    assert store.heads(o.group) == {}


def test_put_is_atomic_for_a_bad_item(store: Store) -> None:
    h = history()
    store.put_entries(h.group, h.entries[:3])
    before = snapshot(store, h.group)
    with pytest.raises(AttributeError):
        store.put_entries(h.group, [*h.entries[3:6], None, *h.entries[6:]])  # type: ignore[list-item]
    assert snapshot(store, h.group) == before


_CALLS: dict[str, Callable[[Store, bytes, Entry], object]] = {
    "groups": lambda s, g, e: s.groups(),
    "put_entries": lambda s, g, e: s.put_entries(g, [e]),
    "put_body": lambda s, g, e: s.put_body(g, e.id, b"x"),
    "drop_body": lambda s, g, e: s.drop_body(g, e.id),
    "entry_meta": lambda s, g, e: s.entry_meta(g, e.id),
    "ids_at": lambda s, g, e: s.ids_at(g, e.author, e.seq),
    "max_seq": lambda s, g, e: s.max_seq(g, e.author),
    "get_signed_header": lambda s, g, e: s.get_signed_header(g, e.id),
    "get_entry": lambda s, g, e: s.get_entry(g, e.id),
    "body_state": lambda s, g, e: s.body_state(g, e.id),
    "count": lambda s, g, e: s.count(g),
    "iter_entries": lambda s, g, e: list(s.iter_entries(g)),
    "heads": lambda s, g, e: s.heads(g),
    "author_tips": lambda s, g, e: s.author_tips(g),
    "fork_proofs": lambda s, g, e: s.fork_proofs(g),
    "replace_signatures": lambda s, g, e: s.replace_signatures(g, [(e.id, e.signature)]),
    "replace_signatures-none": lambda s, g, e: s.replace_signatures(g, []),
    "replace_fork_proofs": lambda s, g, e: s.replace_fork_proofs(g, [fork()[2]]),
    "replace_fork_proofs-none": lambda s, g, e: s.replace_fork_proofs(g, []),
}


@pytest.mark.parametrize("call", list(_CALLS))
def test_closed_store_refuses_every_call(store: Store, call: str) -> None:
    h = history()
    store.put_entries(h.group, h.entries)
    store.close()
    with pytest.raises(StoreError) as info:
        _CALLS[call](store, h.group, h.entries[-1])
    assert info.value.code is ErrorCode.STORE_CLOSED
    store.close()  # closing twice is fine


# --------------------------------------------------------------------------------------
# SqliteStore only
# --------------------------------------------------------------------------------------


def test_sqlite_reopen_keeps_everything(tmp_path: Path) -> None:
    h, o = history(), other_history()
    a, b, proof = fork()
    path = tmp_path / "keep.db"
    with SqliteStore(path) as s:
        s.put_entries(h.group, h.entries)
        s.put_entries(h.group, [a, b], [proof])
        s.put_entries(o.group, o.entries)
        s.drop_body(h.group, h.entries[1].id)
        s.put_entries(h.group, [])
        before = [snapshot(s, g) for g in (h.group, o.group)]
        states = {e.id: s.body_state(h.group, e.id) for e in h.entries}
    with SqliteStore(path) as s:
        assert [snapshot(s, g) for g in (h.group, o.group)] == before
        assert {e.id: s.body_state(h.group, e.id) for e in h.entries} == states
        assert s.integrity_check() == []


def test_sqlite_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "layout.db"
    with SqliteStore(path) as s:
        s.put_entries(history().group, history().entries)
        assert s.integrity_check() == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    db.close()


def test_sqlite_a_store_made_with_another_page_size_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr("p2pcomm.store.sqlite.PAGE_SIZE", 4096)
    h = history()
    with SqliteStore(path) as s:
        s.put_entries(h.group, h.entries[:5])
    monkeypatch.undo()
    with SqliteStore(path) as s:
        assert s._db.execute("PRAGMA page_size").fetchone()[0] == 4096
        s.put_entries(h.group, h.entries[5:])
        assert [e for _, e in s.iter_entries(h.group)] == h.entries
        assert s.integrity_check() == []


def test_sqlite_non_database_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, just some bytes\n" * 100)
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert info.value.code is ErrorCode.STORE_CORRUPT


def test_sqlite_conflicting_foreign_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entries (x TEXT)")
    db.close()
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert info.value.code is ErrorCode.STORE_CORRUPT


def test_sqlite_other_applications_database_is_refused_untouched(tmp_path: Path) -> None:
    """The module promises STORE_CORRUPT for "a file that is not a p2pcomm database";
    an existing SQLite database of another application must not be migrated."""
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()
    try:
        SqliteStore(path).close()
    except StoreError as exc:
        assert exc.code is ErrorCode.STORE_CORRUPT
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"notes"}


def test_sqlite_future_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert info.value.code is ErrorCode.STORE_VERSION
    assert (info.value.expected, info.value.found) == (SCHEMA_VERSION, SCHEMA_VERSION + 1)


def test_sqlite_damaged_row_is_reported_as_corrupt(tmp_path: Path) -> None:
    h = history()
    path = tmp_path / "damaged.db"
    with SqliteStore(path) as s:
        s.put_entries(h.group, h.entries)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET header = x'c1' WHERE id = ?", (h.entries[2].id,))
    db.close()
    with SqliteStore(path) as s:
        with pytest.raises(StoreError) as info:
            s.get_entry(h.group, h.entries[2].id)
        assert info.value.code is ErrorCode.STORE_CORRUPT
        with pytest.raises(StoreError) as info:
            list(s.iter_entries(h.group))
        assert info.value.code is ErrorCode.STORE_CORRUPT
        report = GroupLog(s, h.group).verify()
        assert not report.ok


def test_sqlite_put_is_atomic_when_a_row_cannot_be_written(tmp_path: Path) -> None:
    """A value SQLite cannot bind (a sequence number beyond 64 bits) in the middle of
    a batch: the whole batch is rolled back."""
    h = history()
    with SqliteStore(tmp_path / "bind.db") as s:
        s.put_entries(h.group, h.entries[:3])
        before = snapshot(s, h.group)
        bad = h.entries[5]._replace(header=h.entries[5].header._replace(seq=2**64))
        with pytest.raises((OverflowError, StoreError)):
            s.put_entries(h.group, [h.entries[3], h.entries[4], bad, *h.entries[6:]])
        assert snapshot(s, h.group) == before
        assert s.integrity_check() == []


def test_sqlite_write_on_a_dead_connection_stores_nothing(tmp_path: Path) -> None:
    h = history()
    path = tmp_path / "dead.db"
    s = SqliteStore(path)
    s.put_entries(h.group, h.entries[:3])
    s._db.close()  # the connection dies under the store
    with pytest.raises(StoreError):
        s.put_entries(h.group, h.entries[3:])
    s.close()
    with SqliteStore(path) as s:
        assert [e for _, e in s.iter_entries(h.group)] == h.entries[:3]
        assert s.integrity_check() == []


def test_sqlite_integrity_check_on_closed_store(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "c.db")
    s.close()
    with pytest.raises(StoreError) as info:
        s.integrity_check()
    assert info.value.code is ErrorCode.STORE_CLOSED


# --------------------------------------------------------------------------------------
# GroupLog over each store
# --------------------------------------------------------------------------------------

FOUNDER, ALICE, BOB = keypair(0), keypair(1), keypair(2)


@pytest.mark.parametrize("kind", STORES)
def test_grouplog_create_append_and_verify(kind: str, tmp_path: Path) -> None:
    store = _open(kind, tmp_path / "g.db")
    log = GroupLog.create(store, FOUNDER, body=b"our group", timestamp=BASE_TS)
    assert len(log) == 1 and log.heads() == [log.group]
    genesis = log.get(log.group)
    assert genesis is not None and genesis.is_genesis and genesis.body == b"our group"
    a1 = log.append(ALICE, KIND_POST, b"hello", timestamp=BASE_TS + 1)
    assert (a1.seq, a1.header.prev, a1.header.links) == (1, None, (log.group,))
    run = log.append_many(BOB, [(KIND_POST, b"b%d" % i) for i in range(5)], timestamp=BASE_TS + 2)
    assert [e.seq for e in run] == [1, 2, 3, 4, 5]
    assert run[0].header.links == (a1.id,)
    assert all(e.header.prev == p.id for p, e in itertools.pairwise(run))
    # Every header of the run is the one make_header builds from the same fields.
    for e in run:
        h = e.header
        assert h == make_header(
            group=log.group,
            author=BOB.public_key,
            seq=h.seq,
            prev=h.prev,
            links=h.links,
            timestamp=BASE_TS + 2,
            kind=KIND_POST,
            body=e.body or b"",
        )
        assert e.id == entry_id(encode_header(h)) and e.body == b"b%d" % (h.seq - 1)
    a2 = log.append(ALICE, KIND_POST, b"again", timestamp=BASE_TS)  # clock went back
    assert a2.header.prev == a1.id and a2.header.timestamp == BASE_TS + 1
    assert a2.header.links == (run[-1].id,)
    assert log.heads() == [a2.id]
    assert len(log) == 8
    assert [e.id for _, e in log.entries()] == [log.group, a1.id, *(e.id for e in run), a2.id]
    report = log.verify()
    assert report.ok, report.problems
    assert (report.entries, report.bodies_checked, report.bodies_dropped) == (8, 8, 0)
    assert log.append_many(ALICE, []) == []
    store.close()


@pytest.mark.parametrize("kind", STORES)
def test_grouplog_ingest_replicates(kind: str, tmp_path: Path) -> None:
    h = history()
    src = GroupLog(_open(kind, tmp_path / "src.db"), h.group)
    result = src.ingest(h.entries)
    assert len(result.accepted) == len(h.entries) and not result.rejected
    dst = GroupLog(_open(kind, tmp_path / "dst.db"), h.group)
    blobs = [encode_entry(e) for _, e in src.entries()]
    result = dst.ingest_encoded(reversed(blobs), verify_each=True)
    assert {e.id for e in result.accepted} == h.ids
    assert dst.heads() == src.heads() == sorted(reference_heads(h.entries))
    assert dst.verify().ok
    again = dst.ingest_encoded(blobs)
    assert again.duplicates == len(blobs) and not again.accepted
    junk = dst.ingest_encoded([b"\xc1", blobs[0][:-1]])
    assert [x.error.code for x in junk.rejected] == [ErrorCode.MALFORMED, ErrorCode.TRUNCATED]
    # The replica can append on top of what it received.
    e = dst.append(keypair(1), KIND_POST, b"more")
    assert e.seq == len(h.chains()[keypair(1).public_key]) + 1
    assert dst.verify().ok


@pytest.mark.parametrize("kind", STORES)
def test_grouplog_drop_body(kind: str, tmp_path: Path) -> None:
    store = _open(kind, tmp_path / "d.db")
    log = GroupLog.create(store, FOUNDER, timestamp=BASE_TS)
    e = log.append(ALICE, KIND_POST, b"regrettable", timestamp=BASE_TS)
    log.append(BOB, KIND_POST, b"reply", timestamp=BASE_TS)
    assert log.drop_body(e.id) is True
    assert log.body_state(e.id) is BodyState.DROPPED
    assert log.get(e.id) == e.without_body()
    report = log.verify()
    assert report.ok, report.problems
    assert report.bodies_dropped == 1
    # A later ingest of the entry with its body does not bring the body back.
    result = GroupLog(store, log.group).ingest([e])
    assert result.duplicates == 1
    assert log.body_state(e.id) is BodyState.DROPPED
    assert log.get(e.id) == e.without_body()
    assert log.drop_body(bytes(32)) is False
    assert log.verify().ok


@pytest.mark.parametrize("kind", STORES)
def test_grouplog_missing_body_arrives_later(kind: str, tmp_path: Path) -> None:
    h = history()
    log = GroupLog(_open(kind, tmp_path / "m.db"), h.group)
    log.ingest([e.without_body() for e in h.entries])
    assert all(log.body_state(e.id) is BodyState.MISSING for e in h.entries)
    assert log.verify().ok
    result = log.ingest(h.entries[:3])
    assert len(result.bodies) == 3
    assert [log.get(e.id) for e in h.entries[:3]] == h.entries[:3]
    assert log.verify().bodies_checked == 3


def test_grouplog_reopen_continues(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    with SqliteStore(path) as store:
        log = GroupLog.create(store, FOUNDER, timestamp=BASE_TS)
        a = log.append_many(ALICE, [(KIND_POST, b"x")] * 3, timestamp=BASE_TS)
        group, heads = log.group, log.heads()
    with SqliteStore(path) as store:
        log = GroupLog(store, group)
        assert log.heads() == heads and len(log) == 4
        a4 = log.append(ALICE, KIND_POST, b"y", timestamp=BASE_TS)
        assert (a4.seq, a4.header.prev) == (4, a[-1].id)
        assert log.verify().ok


def test_grouplog_with_threaded_signatures(tmp_path: Path) -> None:
    with ThreadedSignatures(2, min_batch=2) as sigs, SqliteStore(tmp_path / "t.db") as store:
        log = GroupLog.create(store, FOUNDER, timestamp=BASE_TS, signatures=sigs)
        run = log.append_many(
            ALICE, [(KIND_POST, bytes([i])) for i in range(20)], timestamp=BASE_TS
        )
        assert len(run) == 20
        other = GroupLog(MemoryStore(), log.group, signatures=sigs)
        result = other.ingest([e for _, e in log.entries()], verify_each=True)
        assert len(result.accepted) == 21
        bad = run[-1]._replace(signature=run[0].signature)
        third = GroupLog(MemoryStore(), log.group, signatures=sigs)
        third.ingest([*[e for _, e in log.entries()][:-1], bad], verify_each=True)
        assert third.pending_count == 1 and len(third) == 20
