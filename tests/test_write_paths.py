"""No write path stores what the read path would refuse.

``GroupLog.create``, ``append`` and ``append_many`` check what they are given as a
reader would (``decode_entry``, ``check_entry``, ``verify``) and refuse it with a
:class:`ValidationError` before anything is signed or stored. The property: whatever
they accept reads back through ``GroupLog.verify()`` without a problem, on a
``MemoryStore`` and on a real SQLite file (reopened, as a node loading it would), and
whatever they refuse leaves the store exactly as it was.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import (
    MAX_BODY_SIZE,
    MAX_KIND,
    MAX_LINKS,
    MAX_U63,
    create_entry,
    create_genesis,
    decode_entry,
    encode_entry,
    encode_header,
    entry_id,
    make_header,
)
from p2pcomm.errors import ErrorCode, ValidationError
from p2pcomm.group import GroupLog, ThreadedSignatures
from p2pcomm.store import MemoryStore, SqliteStore, Store
from tests.helpers import BASE_TS, KIND_POST, keypair

STORES = ["memory", "sqlite"]
AUTHORS = [keypair(1), keypair(2), keypair(3)]


def _open(kind: str, path: Path) -> Store:
    return MemoryStore() if kind == "memory" else SqliteStore(path, durable=False, offload=False)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = _open(request.param, tmp_path / "store.db")
    yield s
    s.close()


def _snapshot(store: Store) -> object:
    """What a refused write must leave unchanged: per group, the count, heads, tips and
    every stored entry's wire bytes; for SQLite also the database and WAL files."""
    state: list[object] = []
    for g in sorted(store.groups()):
        state.append(
            (
                g,
                store.count(g),
                store.heads(g),
                store.tips(g),
                [encode_entry(e) for _, e in store.iter_entries(g)],
            )
        )
    if isinstance(store, SqliteStore):
        for suffix in ("", "-wal"):
            f = Path(store.path + suffix)
            state.append(hashlib.sha256(f.read_bytes()).digest() if f.exists() else None)
    return state


def _assert_reads_back(store: Store) -> None:
    """Every group verifies, and every entry decodes from its wire form."""
    for g in store.groups():
        report = GroupLog(store, g).verify()
        assert report.ok, report.problems
        assert report.entries == store.count(g)
        for _, e in store.iter_entries(g):
            assert decode_entry(encode_entry(e)) == e


@contextmanager
def _no_signing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything is signed inside the block."""

    def boom(*args: object) -> bytes:
        raise AssertionError("signed before refusing")

    with monkeypatch.context() as m:
        m.setattr(KeyPair, "sign", boom)
        m.setattr(KeyPair, "signer", boom)
        yield


# --------------------------------------------------------------------------- the 70,000-byte post


def test_a_70000_byte_post_is_refused_and_the_store_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "club.db"
    alice = keypair(1)
    with SqliteStore(path) as store:
        log = GroupLog.create(store, alice, body=b"club", timestamp=BASE_TS)
        log.append(alice, KIND_POST, b"hello", timestamp=BASE_TS)
        before = _snapshot(store)
        with pytest.raises(ValidationError) as info:
            log.append(alice, KIND_POST, bytes(70_000), timestamp=BASE_TS)
        err = info.value
        assert err.code is ErrorCode.TOO_LARGE
        assert (err.expected, err.found) == (MAX_BODY_SIZE, 70_000)
        assert "entry.body" in err.message and "70000" in err.message
        assert _snapshot(store) == before
        assert log.verify().ok
        largest = log.append(alice, KIND_POST, bytes(MAX_BODY_SIZE))  # the limit itself is fine
        assert len(log) == 3
    with SqliteStore(path) as store:  # what a node loading the store does
        log = GroupLog(store, log.group)
        assert [e.id for _, e in log.entries()][-1] == largest.id
        assert log.verify().ok


def test_refusals_come_before_signing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = keypair(1)
    log = GroupLog.create(store, alice, timestamp=BASE_TS)
    before = _snapshot(store)
    big = bytes(MAX_BODY_SIZE + 1)
    with _no_signing(monkeypatch):
        for call in (
            lambda: log.append(alice, KIND_POST, big),
            lambda: log.append_many(alice, [(KIND_POST, b"ok")] * 20 + [(KIND_POST, big)]),
            lambda: log.append(alice, MAX_KIND + 1, b""),
            lambda: log.append(alice, KIND_POST, b"", timestamp=-1),
            lambda: GroupLog.create(store, alice, body=big),
            lambda: GroupLog.create(store, alice, timestamp=MAX_U63 + 1),
            lambda: create_entry(
                alice, group=log.group, seq=2, prev=None, links=(), timestamp=0, kind=1, body=big
            ),
        ):
            with pytest.raises(ValidationError):
                call()
    assert _snapshot(store) == before


def test_a_batch_with_one_bad_item_stores_none(store: Store) -> None:
    alice = keypair(1)
    log = GroupLog.create(store, alice, timestamp=BASE_TS)
    before = _snapshot(store)
    with ThreadedSignatures() as sigs:
        log = GroupLog(store, log.group, signatures=sigs)
        items = [(KIND_POST, b"%d" % i) for i in range(30)]
        for bad in [(0, b""), (KIND_POST, "text"), (KIND_POST, bytearray(b"x")), (-1, b"")]:
            with pytest.raises(ValidationError) as info:
                log.append_many(alice, [*items, bad])
            assert info.value.code in {
                ErrorCode.BAD_GENESIS,
                ErrorCode.WRONG_TYPE,
                ErrorCode.OUT_OF_RANGE,
            }
            assert _snapshot(store) == before
        assert len(log.append_many(alice, items)) == 30
    _assert_reads_back(store)


def test_sequence_overflow_is_refused(store: Store) -> None:
    alice = keypair(1)
    log = GroupLog.create(store, alice, timestamp=BASE_TS)
    tip = log.append(alice, KIND_POST, b"")
    before = _snapshot(store)
    # A tip this high cannot be built for real (2^63 entries); pretend it was stored.
    log._tips[alice.public_key] = (MAX_U63 - 1, tip.id, tip.header.timestamp)
    with pytest.raises(ValidationError) as info:
        log.append_many(alice, [(KIND_POST, b"a"), (KIND_POST, b"b")])
    assert info.value.code is ErrorCode.OUT_OF_RANGE
    assert info.value.found == MAX_U63 + 1
    assert _snapshot(store) == before


def test_links_stay_within_the_limit_with_many_authors(store: Store) -> None:
    founder = keypair(1)
    log = GroupLog.create(store, founder, timestamp=BASE_TS)
    # Twenty members who each saw only the genesis: twenty heads.
    firsts = [
        create_entry(
            keypair(n),
            group=log.group,
            seq=1,
            prev=None,
            links=[log.group],
            timestamp=BASE_TS,
            kind=KIND_POST,
            body=b"hi",
        )
        for n in range(2, 22)
    ]
    assert len(log.ingest(firsts).accepted) == 20
    assert len(log.heads()) == 20
    e = log.append(founder, KIND_POST, b"all of you")
    assert len(e.header.links) == MAX_LINKS
    _assert_reads_back(store)


def test_verify_decodes_what_a_memory_store_holds() -> None:
    # A store trusts the log layer; if something unreadable gets in by another way,
    # verify() reports it as a new replica would, whatever the store.
    store = MemoryStore()
    alice = keypair(1)
    log = GroupLog.create(store, alice, timestamp=BASE_TS)
    body = bytes(70_000)
    header = make_header(
        group=log.group,
        author=alice.public_key,
        seq=2,
        prev=log.group,
        links=(),
        timestamp=BASE_TS,
        kind=KIND_POST,
        body=body,
    )
    hb = encode_header(header)
    eid = entry_id(hb)
    forged = create_genesis(alice, timestamp=BASE_TS)._replace(
        id=eid, header=header, header_bytes=hb, body=body
    )
    store.put_entries(log.group, [forged])
    report = log.verify()
    assert not report.ok
    assert any(eid.hex()[:16] in p and "too-large" in p for p in report.problems)


# --------------------------------------------------------------------------- the property

# Kinds, bodies and timestamps: mostly valid, with every edge a reader checks.
kinds = st.one_of(
    st.integers(1, MAX_KIND),
    st.sampled_from([0, -1, MAX_KIND, MAX_KIND + 1, 2**64, True]),
)
bodies = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([MAX_BODY_SIZE - 1, MAX_BODY_SIZE, MAX_BODY_SIZE + 1, 70_000]).map(
        lambda n: b"\x01" * n
    ),
    st.sampled_from([bytearray(b"x"), "text", 7]),
)
timestamps = st.one_of(
    st.none(),
    st.integers(0, MAX_U63),
    st.sampled_from([-1, MAX_U63, MAX_U63 + 1, 2**64, 1.5, True]),
)


def _valid_kind(kind: object) -> bool:
    return type(kind) is int and 1 <= kind <= MAX_KIND


def _valid_body(body: object) -> bool:
    return type(body) is bytes and len(body) <= MAX_BODY_SIZE


def _valid_ts(ts: object) -> bool:
    return ts is None or (type(ts) is int and 0 <= ts <= MAX_U63)


ops = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(range(3)), kinds, bodies, timestamps),
    st.tuples(
        st.just("many"),
        st.sampled_from(range(3)),
        st.lists(st.tuples(kinds, bodies), max_size=5),
        timestamps,
    ),
    st.tuples(st.just("create"), st.sampled_from(range(3)), bodies, timestamps),
)


def _run(store: Store, first: tuple[Any, ...], script: list[tuple[Any, ...]]) -> None:
    """Play ``first`` (a create) then ``script`` on ``store``, checking each call."""
    log: GroupLog | None = None

    def attempt(call: Callable[[], object], ok: bool) -> object:
        before = _snapshot(store)
        try:
            result = call()
        except ValidationError:
            assert not ok, "refused a valid write"
            assert _snapshot(store) == before
            return None
        assert ok, "accepted a write a reader would refuse"
        return result

    for n, op in enumerate([first, *script]):
        author = AUTHORS[op[1]]
        if op[0] == "create":
            _, _, body, ts = op
            if ts is None:
                # The clock would make the genesis, so the group, differ between the
                # two stores this script plays on (or coincide within one): fix it.
                ts = BASE_TS + n
            ok = _valid_body(body) and _valid_ts(ts)
            made = attempt(partial(GroupLog.create, store, author, body=body, timestamp=ts), ok)
            if log is None:
                log = made if isinstance(made, GroupLog) else None
            continue
        if log is None:
            log = GroupLog.create(store, AUTHORS[0], timestamp=BASE_TS)
        if op[0] == "append":
            _, _, kind, body, ts = op
            ok = _valid_kind(kind) and _valid_body(body) and _valid_ts(ts)
            attempt(partial(log.append, author, kind, body, timestamp=ts), ok)
        else:
            _, _, items, ts = op
            ok = all(_valid_kind(k) and _valid_body(b) for k, b in items) and _valid_ts(ts)
            attempt(partial(log.append_many, author, items, timestamp=ts), ok or not items)


@settings(max_examples=40, deadline=None)
@given(
    first=st.tuples(st.just("create"), st.just(0), bodies, timestamps),
    script=st.lists(ops, max_size=6),
)
def test_what_is_accepted_reads_back_and_what_is_refused_changes_nothing(
    first: tuple[Any, ...], script: list[tuple[Any, ...]]
) -> None:
    memory = MemoryStore()
    _run(memory, first, script)
    _assert_reads_back(memory)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "store.db"
        with SqliteStore(path, durable=False, offload=False) as sqlite:
            _run(sqlite, first, script)
        with SqliteStore(path, durable=False, offload=False) as reopened:  # as a node loads it
            _assert_reads_back(reopened)
            counts = sorted(reopened.count(g) for g in reopened.groups())
    assert counts == sorted(memory.count(g) for g in memory.groups())
