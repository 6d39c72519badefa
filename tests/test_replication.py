"""Replicator pairs (p2pcomm/replication.py) over a perfect in-process link, on
MemoryStore and SqliteStore: convergence, exact catch-up, forks, dropped bodies,
interrupted sessions, flow control, live push and the ``forward`` filter.

The link is ``tests.sync_helpers.Link``: it delivers every write whole and in order,
advances bulk jobs when nothing is in flight and flushes gathered entries when the
link is quiet, as the trio node does.
"""

from __future__ import annotations

import math
import random
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcomm.core.log import Entry
from p2pcomm.core.sync import Msg
from p2pcomm.group import GroupLog
from p2pcomm.replication import INGEST_BATCH, WINDOW, Replicator
from p2pcomm.store import BodyState, MemoryStore, SqliteStore, Store
from tests.sync_helpers import (
    BASE_TS,
    KIND_POST,
    Link,
    all_entries,
    causal_subset,
    closure,
    encoded_size,
    entry_ids,
    frame,
    group_history,
    key,
    msg,
    pump,
    replica,
    replicator_pair,
)

STORES = ["memory", "sqlite"]
#: Channel record overhead per DATA frame (u16 length, type byte, 16-byte tag) and the
#: most application bytes one frame carries (spec/05-channel.md 5.5).
FRAME_OVERHEAD, FRAME_DATA = 19, 65518


@contextmanager
def stores(kind: str) -> Iterator[Callable[[], Store]]:
    """A factory of fresh stores of ``kind``; SQLite files live until the block ends."""
    with tempfile.TemporaryDirectory() as d:
        made: list[Store] = []

        def make() -> Store:
            s: Store = (
                MemoryStore()
                if kind == "memory"
                else SqliteStore(Path(d) / f"{len(made)}.db", durable=False)
            )
            made.append(s)
            return s

        try:
            yield make
        finally:
            for s in made:
                s.close()


def wire_bytes(link: Link) -> int:
    """Bytes on the wire for the sync bytes ``link`` carried: each write goes out as
    DATA frames of at most 65,518 bytes, 19 bytes of framing each."""
    return sum(n + FRAME_OVERHEAD * math.ceil(n / FRAME_DATA) for _, n in link.chunks)


def lagging_authors(x: GroupLog, y: GroupLog) -> int:
    """Authors of whom both hold entries and ``x`` holds fewer (no forks)."""
    mx = {a: s for a, s, _ in x.store.tips(x.group)}
    my = {a: s for a, s, _ in y.store.tips(y.group)}
    return sum(1 for a, s in mx.items() if a in my and s < my[a])


def assert_converged(a: GroupLog, b: GroupLog) -> None:
    assert a.store.tips(a.group) == b.store.tips(b.group)
    assert entry_ids(a) == entry_ids(b)
    assert a.pending_count == b.pending_count == 0


# --------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("kind", STORES)
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    authors=st.integers(min_value=1, max_value=5),
    size=st.integers(min_value=0, max_value=60),
    k_a=st.integers(min_value=0, max_value=4),
    k_b=st.integers(min_value=0, max_value=4),
    new_a=st.integers(min_value=0, max_value=4),
    new_b=st.integers(min_value=0, max_value=4),
)
def test_random_replicas_converge(
    kind: str, seed: int, authors: int, size: int, k_a: int, k_b: int, new_a: int, new_b: int
) -> None:
    """Two replicas, each holding a random causally closed part of one history and
    maybe entries of its own appended on top, end with the same entries and tips:
    the union. Each side sends exactly what the other lacks, plus one entry per
    author it lags behind on (see test_the_lagging_side_sends_nothing)."""
    history = all_entries(group_history(authors=authors, entries=size, seed=seed, max_run=4))
    rng = random.Random(seed)
    with stores(kind) as make:
        a = replica(causal_subset(history, rng, k_a), make())
        b = replica(causal_subset(history, rng, k_b), make())
        if new_a:
            a.append_many(
                key(100), [(KIND_POST, b"a%d" % i) for i in range(new_a)], timestamp=BASE_TS + 10**6
            )
        if new_b:
            b.append_many(
                key(101), [(KIND_POST, b"b%d" % i) for i in range(new_b)], timestamp=BASE_TS + 10**6
            )
        ids_a, ids_b = entry_ids(a), entry_ids(b)
        extra_a, extra_b = lagging_authors(a, b), lagging_authors(b, a)
        ra, rb = replicator_pair(a, b)
        pump(ra, rb)
        assert_converged(a, b)
        assert entry_ids(a) == ids_a | ids_b
        assert ra.stats.entries_rejected == rb.stats.entries_rejected == 0
        assert ra.stats.entries_sent == len(ids_a - ids_b) + extra_a
        assert rb.stats.entries_sent == len(ids_b - ids_a) + extra_b
        assert ra.synced == rb.synced == {a.group}
        assert a.verify().ok and b.verify().ok


@pytest.mark.parametrize("kind", STORES)
def test_several_groups_converge_in_one_session(kind: str) -> None:
    with stores(kind) as make:
        sa, sb = make(), make()
        g1 = group_history(authors=2, entries=20, seed=1, store=sa)
        g2 = group_history(authors=3, entries=30, seed=2, store=sb, first_author=10)
        g3 = group_history(authors=1, entries=5, seed=3, store=make(), first_author=20)
        only_a = GroupLog(sa, g1.group)
        b_g1 = replica(all_entries(only_a)[:1], sb)  # b knows g1's genesis only
        a_g2 = replica(all_entries(g2)[:1], sa)
        ra, rb = replicator_pair(
            {g1.group: only_a, g2.group: a_g2}, {g1.group: b_g1, g2.group: g2, g3.group: g3}
        )
        pump(ra, rb)
        assert_converged(only_a, b_g1)
        assert_converged(a_g2, g2)
        assert ra.synced == rb.synced == {g1.group, g2.group}
        assert sa.count(g3.group) == 0


# --------------------------------------------------------------------------- catch-up


@pytest.mark.parametrize("kind", STORES)
def test_catch_up_sends_only_what_is_missing(kind: str) -> None:
    """B holds the first 90% of A's history (a causal prefix). A sends exactly the
    missing 10%, and the bytes of the whole session, channel framing included, stay
    within 1.10 x the encoded size of those entries + 4 KB."""
    with stores(kind) as make:
        a = group_history(
            authors=5,
            entries=2000,
            seed=5,
            body_size=128,
            exact_body=True,
            max_run=20,
            store=make(),
        )
        history = all_entries(a)
        cut = int(len(history) * 0.9)
        b = replica(history[:cut], make())
        missing = history[cut:]
        ra, rb = replicator_pair(a, b)
        link = Link(ra, rb)
        link.start()
        link.pump()
        assert_converged(a, b)
        assert ra.stats.entries_sent == len(missing)
        assert rb.stats.entries_accepted == len(missing)
        wire = wire_bytes(link)
        budget = encoded_size(missing)
        assert wire <= 1.10 * budget + 4096, (wire, budget)
        # RUN compression: ~200 bytes per 128-byte-body entry (plus an 86-byte RUN
        # header per run of one author) vs ~353 bytes encoded
        assert link.delivered / len(missing) < 230
        assert wire / budget < 0.65


@pytest.mark.parametrize("kind", STORES)
def test_the_lagging_side_sends_one_tip_per_author_it_lags_on(kind: str) -> None:
    """By design (spec/06-sync.md, plan_send): a side whose tip of an author is not among
    the peer's tips sends that tip, even when the peer holds a later entry of the same
    author. Without a fork it is a duplicate (one entry per lagging author and session);
    with a fork it is the branch the peer lacks, so the peer detects the fork at once."""
    with stores(kind) as make:
        a = group_history(authors=4, entries=200, seed=6, store=make())
        history = all_entries(a)
        b = replica(history[:100], make())
        ra, rb = replicator_pair(a, b)
        pump(ra, rb)
        assert_converged(a, b)
        assert ra.stats.entries_sent == len(history) - 100
        assert rb.stats.entries_sent == 4  # B lags on every author: its 4 tips


def test_catch_up_of_a_genesis_only_replica_costs_200_bytes_per_entry() -> None:
    """The byte count of a catch-up, exactly (spec/06-sync.md 6.13): 1,000 entries of
    one author, 128-byte bodies, no links, into a replica holding the genesis only.

    A sends HELLO (26), SUMMARY (25), TIPS with one tip at seq 1001 (4 + 4 + 72 = 80),
    then one RUN: its header (4 + 84: author and prev 34 each, seq 2, a 9-byte
    millisecond timestamp, an array16 of items) and 1,000 items of 200 bytes (a 66-byte
    signature, a 130-byte body, delta, kind and empty links 1 byte each), then DONE (7).
    """
    a = group_history(authors=1, entries=1000, seed=7, body_size=128, exact_body=True, max_run=1000)
    history = all_entries(a)
    b = replica(history[:1])
    ra, rb = replicator_pair(a, b)
    link = Link(ra, rb)
    link.start()
    link.pump()
    assert_converged(a, b)
    sent_by_a = sum(n for side, n in link.chunks if side == "a")
    assert sent_by_a == 26 + 25 + 80 + 88 + 200 * 1000 + 7
    # the same entries encoded (03 3.6): 351 bytes, up to 353 as seq grows to 2 bytes
    assert 351 <= encoded_size(history[1:]) / 1000 <= 353


# --------------------------------------------------------------------------- forks


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("branch", [1, 3])
def test_forks_propagate_with_their_proofs(kind: str, branch: int) -> None:
    """
    ::

        base ... k1:5 --+-- k1:6a -- k1:7a ...   (appended on A)
                        +-- k1:6b -- k1:7b ...   (appended on B)

    1. A and B hold the same history; author k1's last entry is seq 5.
    2. k1 equivocates: A gets ``branch`` entries on top of seq 5, B other ones.
    3. After a session both hold both branches and a fork proof.
    """
    with stores(kind) as make:
        history = all_entries(group_history(authors=2, entries=9, seed=8, max_run=1))
        a, b = replica(history, make()), replica(history, make())
        k1 = key(1)
        top = a.store.max_seq(a.group, k1.public_key)
        assert top >= 1
        a_branch = a.append_many(
            k1, [(KIND_POST, b"branch a %d" % i) for i in range(branch)], timestamp=BASE_TS + 10**6
        )
        b_branch = b.append_many(
            k1, [(KIND_POST, b"branch b %d" % i) for i in range(branch)], timestamp=BASE_TS + 10**6
        )
        assert a_branch[0].header.seq == b_branch[0].header.seq == top + 1
        assert a_branch[0].id != b_branch[0].id
        ra, rb = replicator_pair(a, b)
        pump(ra, rb)
        both = {e.id for e in a_branch + b_branch}
        assert both <= entry_ids(a) and both <= entry_ids(b)
        assert_converged(a, b)
        assert len(a.fork_proofs()) >= 1 and len(b.fork_proofs()) >= 1
        assert {p.key() for p in a.fork_proofs()} == {p.key() for p in b.fork_proofs()}
        assert ra.stats.entries_rejected == rb.stats.entries_rejected == 0
        assert a.verify().ok and b.verify().ok


@pytest.mark.parametrize("kind", STORES)
def test_a_third_replica_learns_a_fork_and_its_proof(kind: str) -> None:
    """A and B fork-merge as above; C (who had neither branch) then syncs with A only
    and gets both branches and the proof (FORKS)."""
    with stores(kind) as make:
        history = all_entries(group_history(authors=2, entries=6, seed=9, max_run=1))
        a, b, c = replica(history, make()), replica(history, make()), replica(history, make())
        k1 = key(1)
        a.append(k1, KIND_POST, b"left", timestamp=BASE_TS + 10**6)
        b.append(k1, KIND_POST, b"right", timestamp=BASE_TS + 10**6)
        pump(*replicator_pair(a, b))
        assert a.fork_proofs()
        rc, ra = replicator_pair(c, a, n=1)
        pump(rc, ra)
        assert_converged(a, c)
        assert {p.key() for p in c.fork_proofs()} == {p.key() for p in a.fork_proofs()}


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("kind", STORES)
def test_dropped_bodies_are_not_fetched_again(kind: str) -> None:
    """B dropped a body (moderation). A, who still has it, syncs with B: in sync,
    then with news to send, then as the side that (redundantly) sends that very entry
    again with its body: B's body state stays DROPPED every time."""
    with stores(kind) as make:
        a = group_history(authors=2, entries=40, seed=10, max_run=3, store=make())
        history = all_entries(a)
        b = replica(history, make())
        victim = history[20]
        assert b.drop_body(victim.id)

        # 1. same entries: HELLO and SUMMARY only
        n = pump(*replicator_pair(a, b))
        assert n <= 256
        assert b.body_state(victim.id) is BodyState.DROPPED

        # 2. A has news on top
        news = a.append_many(
            key(0), [(KIND_POST, b"news %d" % i) for i in range(5)], timestamp=BASE_TS + 10**6
        )
        ra, rb = replicator_pair(a, b, n=1)
        pump(ra, rb)
        assert ra.stats.entries_sent == len(news)
        assert b.body_state(victim.id) is BodyState.DROPPED
        got = b.get(victim.id)
        assert got is not None and got.body is None

        # 3. C holds the victim's author only up to the victim (its tip there) while B
        #    holds more of that author: C sends the victim again (see
        #    test_the_lagging_side_sends_nothing), body included. B keeps it dropped.
        c = replica(closure(history, [victim.id]), make())
        author = victim.header.author
        assert (
            c.store.tips(c.group)[[t[0] for t in c.store.tips(c.group)].index(author)][2]
            == victim.id
        )
        assert b.store.max_seq(b.group, author) > victim.header.seq
        got_c = c.get(victim.id)
        assert got_c is not None and got_c.body is not None
        rc, rb = replicator_pair(c, b, n=2)
        pump(rc, rb)
        assert_converged(b, c)
        assert b.body_state(victim.id) is BodyState.DROPPED
        assert c.body_state(victim.id) is BodyState.PRESENT


# --------------------------------------------------------------------------- interruption


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("reuse_log", [True, False], ids=["same-log", "reopened"])
def test_interrupted_sync_resumes_without_resending(kind: str, reuse_log: bool) -> None:
    """Cut the byte stream of a catch-up after N bytes (N at several points, some in the
    middle of a message), drop both replicators, start a new session: it completes,
    and A sends exactly the entries B had not stored when it started. ``reopened``
    reads B's store through a new GroupLog, as after a restart."""
    with stores(kind) as make:
        a = group_history(authors=6, entries=1500, seed=11, body_size=64, max_run=50, store=make())
        history = all_entries(a)
        probe = replica(history[:1])
        full = Link(*replicator_pair(a, probe), eager_flush=True)
        full.start()
        total = full.pump()
        assert len(probe) == len(history)
        progress: list[int] = []
        for cut in (30, 60, total // 5, total // 2 + 1, total - 400, total - 5):
            b = replica(history[:1], make())
            first = Link(*replicator_pair(a, b, n=1), eager_flush=True)
            first.start()
            assert first.pump(cut_after=cut) == cut
            b2 = b if reuse_log else GroupLog(b.store, b.group)
            stored = len(b2)
            ra, rb = replicator_pair(a, b2, n=2)
            pump(ra, rb)
            assert_converged(a, b2)
            assert ra.stats.entries_sent == len(history) - stored, cut
            progress.append(stored)
        assert any(1 < s < len(history) for s in progress)  # some cuts left work for session 2
        assert b2.verify().ok


# --------------------------------------------------------------------------- flow control


def test_twenty_thousand_entries_flow_in_bounded_chunks_and_memory(tmp_path: Path) -> None:
    """20,000 entries (128-byte bodies, 10 authors) from one SQLite store into an
    empty one. No chunk a writer is handed exceeds 1.5 MiB (a bulk chunk holds one
    window of WINDOW = 2,048 entries, ~410 KB), and Python memory (tracemalloc peak,
    SQLite's own pages are not Python objects) stays under

        (INGEST_BATCH + 3 * WINDOW) * E  +  N * 400 B  +  6 MiB

    where E is the measured Python size of one decoded entry (~1 KB): the receiver
    gathers at most INGEST_BATCH decoded entries before one ingest; the sender holds one
    window being encoded, the receiver one unpacked RUN message and one decoded window;
    the ingestor keeps ~250 B of metadata per accepted entry (its overlay, capped at
    200,000 entries); 6 MiB covers chunk bytes, msgpack buffers and SQLite rows in
    flight. Holding all N entries decoded on both sides would be about 2 * N * E."""
    n = 20_000
    sa = SqliteStore(tmp_path / "a.db", durable=False)
    sb = SqliteStore(tmp_path / "b.db", durable=False)
    try:
        a = group_history(
            authors=10, entries=n, seed=12, body_size=128, exact_body=True, max_run=200, store=sa
        )
        genesis = a.get(a.group)
        assert genesis is not None
        b = replica([genesis], sb)

        tracemalloc.start()
        sample = [e for _, e in sa.iter_entries(a.group, after=0)][:2000]
        per_entry = tracemalloc.get_traced_memory()[0] / len(sample)
        tracemalloc.stop()
        del sample
        assert 600 < per_entry < 2000

        ra, rb = replicator_pair(a, b)
        link = Link(ra, rb)
        tracemalloc.start()
        try:
            link.start()
            link.pump()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(b) == n + 1
        assert ra.stats.entries_sent == n
        largest = max(size for _, size in link.chunks)
        assert largest <= 1.5 * 2**20, largest
        bulk = [size for side, size in link.chunks if side == "a" and size > 10_000]
        assert len(bulk) >= n // WINDOW
        bound = (INGEST_BATCH + 3 * WINDOW) * per_entry + n * 400 + 6 * 2**20
        assert peak < bound, (peak / 2**20, bound / 2**20)
        assert peak < 2 * n * per_entry
    finally:
        sa.close()
        sb.close()


# --------------------------------------------------------------------------- live


@pytest.mark.parametrize("kind", STORES)
def test_live_push_after_sync(kind: str) -> None:
    with stores(kind) as make:
        a = group_history(authors=2, entries=20, seed=13, store=make())
        b = replica(all_entries(a)[:5], make())
        ra, rb = replicator_pair(a, b)
        link = Link(ra, rb, record=True)
        link.start()
        link.pump()
        assert_converged(a, b)
        group = a.group
        assert ra.synced == rb.synced == {group}

        # A appends: one RUN goes out and B stores it at once (no flush needed)
        new = a.append_many(
            key(0), [(KIND_POST, b"live %d" % i) for i in range(3)], timestamp=BASE_TS + 10**6
        )
        before = len(link.wrote["a"])
        link.send_a(ra.push(group, new))
        sent = bytes(link.wrote["a"][before:])
        assert msgpack.unpackb(sent[4:])[0] == Msg.RUN
        link.deliver()
        assert {e.id for e in new} <= entry_ids(b)
        assert link.accepted["b"] >= 3

        # B appends as a new author: back the other way
        mine = b.append(key(5), KIND_POST, b"hello from b", timestamp=BASE_TS + 2 * 10**6)
        link.send_b(rb.push(group, [mine]))
        link.deliver()
        assert mine.id in entry_ids(a)
        assert_converged(a, b)

        # A push whose first entry is skipped: B asks for it (WANT) and gets it
        e1, e2 = a.append_many(
            key(1), [(KIND_POST, b"one"), (KIND_POST, b"two")], timestamp=BASE_TS + 3 * 10**6
        )
        link.send_a(ra.push(group, [e2]))
        link.pump()
        assert {e1.id, e2.id} <= entry_ids(b)
        assert_converged(a, b)


def test_push_before_the_group_is_live_is_queued() -> None:
    """Before the group is live nothing goes out: the entries are sent when it is."""
    a = group_history(authors=1, entries=3, seed=14)
    b = replica(all_entries(a)[:1])
    ra, rb = replicator_pair(a, b)
    e = a.append(key(0), KIND_POST, b"early", timestamp=BASE_TS + 10)
    assert ra.push(a.group, [e]) == b""
    link = Link(ra, rb)
    link.start()
    assert ra.push(a.group, [e]) == b""
    link.pump()
    assert_converged(a, b)
    assert ra.push(b"\x00" * 32, [e]) == b""  # a group this replicator does not hold


@pytest.mark.parametrize("kind", STORES)
def test_entries_appended_during_reconciliation_reach_the_peer(kind: str) -> None:
    """
    1. A and B exchange HELLO, SUMMARY and TIPS; A's bulk job sends its RUNs and DONE.
    2. Before B's DONE reaches A, A appends x and pushes it (the node does this for
       every append and every entry accepted from another peer).
    3. The session finishes: x should be on B.
    """
    with stores(kind) as make:
        a = group_history(authors=2, entries=10, seed=15, store=make())
        b = replica(all_entries(a)[:4], make())
        ra, rb = replicator_pair(a, b)
        link = Link(ra, rb)
        link.start()
        link.deliver()  # HELLO, SUMMARY, TIPS
        assert ra.has_bulk and rb.has_bulk
        while (chunk := ra.next_bulk()) is not None:
            link.send_a(chunk)  # RUNs and A's DONE, in flight
        x = a.append(key(0), KIND_POST, b"x", timestamp=BASE_TS + 10**6)
        link.send_a(ra.push(a.group, [x]))
        link.pump()
        assert x.id in entry_ids(b)


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("kind", STORES)
def test_forward_filter_keeps_refused_entries_off_the_wire(kind: str) -> None:
    """A refuses to forward author k2's entries (e.g. a removed member). They are not
    in any RUN, WANT answer or live push; B never stores them; an entry of another
    author that depends on one of them waits on B (B asks; A does not answer it)."""
    k2 = key(2)

    def forward(group: bytes, e: Entry) -> bool:
        return e.header.author != k2.public_key

    with stores(kind) as make:
        a = group_history(authors=2, entries=20, seed=16, store=make())
        refused = a.append_many(
            k2, [(KIND_POST, b"refused %d" % i) for i in range(3)], timestamp=BASE_TS + 10**5
        )
        ok_before = len(a) - len(refused) - 1
        b = replica(all_entries(a)[:1], make())
        ra, rb = replicator_pair(a, b, forward_a=forward)
        link = Link(ra, rb, record=True)
        link.start()
        link.pump()
        ids_b = entry_ids(b)
        assert not {e.id for e in refused} & ids_b
        assert len(b) == ok_before + 1
        assert ra.stats.entries_sent == ok_before

        # an entry of k0 that links to k2's head: sent, but cannot be accepted on B
        dependent = a.append(key(0), KIND_POST, b"depends on k2", timestamp=BASE_TS + 10**6)
        assert refused[-1].id in dependent.header.links
        assert ra.push(a.group, refused) == b""
        link.send_a(ra.push(a.group, [dependent]))
        link.pump()
        assert dependent.id not in entry_ids(b)
        assert b.pending_count == 1
        wire = bytes(link.wrote["a"])
        assert not any(e.signature in wire for e in refused)
        assert dependent.signature in wire


# --------------------------------------------------------------------------- coalescing


def pump_coalesced(a: Replicator, b: Replicator) -> None:
    """Like a TCP connection under load: everything one side has written reaches the
    other in a single read, so one ``receive`` sees many messages of several groups."""
    to_b, to_a = [a.start()], [b.start()]
    for _ in range(10_000):
        for side, queue in ((a, to_b), (b, to_a)):
            while (chunk := side.next_bulk()) is not None:
                queue.append(chunk)
        if not any(to_b) and not any(to_a):
            to_a.append(a.flush())
            to_b.append(b.flush())
            if not any(to_b) and not any(to_a):
                return
        data_b, data_a = b"".join(to_b), b"".join(to_a)
        to_b.clear()
        to_a.clear()
        if data_b:
            to_a.append(b.receive(data_b))
        if data_a:
            to_b.append(a.receive(data_a))
    raise AssertionError("the session did not go quiet")


def test_several_groups_converge_when_each_read_carries_everything() -> None:
    """Two groups, both out of sync, with every write of a side arriving in one read
    (many messages of several groups per ``receive``): both groups converge."""
    g1 = group_history(authors=3, entries=120, seed=41)
    g2 = group_history(authors=3, entries=120, seed=42, first_author=5)
    h1, h2 = all_entries(g1), all_entries(g2)
    b1, b2 = replica(h1[:40]), replica(h2[:60])
    a1, a2 = replica(h1), replica(h2)
    # each side has something the other lacks in group 1
    own = b1.append_many(key(9), [(KIND_POST, b"b's own %d" % i) for i in range(30)])
    a, b = replicator_pair({g1.group: a1, g2.group: a2}, {g1.group: b1, g2.group: b2})
    pump_coalesced(a, b)
    assert entry_ids(a1) == entry_ids(b1) == {e.id for e in h1} | {e.id for e in own}
    assert entry_ids(a2) == entry_ids(b2) == {e.id for e in h2}
    assert a.session.all_live and b.session.all_live


def frames(data: bytes) -> list[list[object]]:
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(msgpack.unpackb(data[4 : 4 + n], raw=False))
        data = data[4 + n :]
    return out


def test_a_flush_in_the_middle_of_a_read_keeps_earlier_replies() -> None:
    """One read carries, in this order: a WANT for group 2 (answered with ENTRIES at
    once), RUNs of group 1 (gathered for one ingest) and group 1's DONE (which ingests
    them). The ENTRIES answer queued before that ingest must still be sent."""
    g1 = group_history(authors=2, entries=40, seed=51)
    g2 = group_history(authors=2, entries=10, seed=52, first_author=5)
    h1, h2 = all_entries(g1), all_entries(g2)
    a1, a2 = replica(h1), replica(h2)
    b1, b2 = replica(h1[:10]), replica(h2[:-1])  # mismatches in both groups
    a, b = replicator_pair({g1.group: a1, g2.group: a2}, {g1.group: b1, g2.group: b2})
    ha, hb = a.start(), b.start()
    sa, sb = a.receive(hb), b.receive(ha)  # SUMMARYs
    ta, tb = a.receive(sb), b.receive(sa)  # TIPS
    a.receive(tb)
    b.receive(ta)
    for side in (a, b):  # both plan their bulk sends
        assert side.has_bulk
    while b.next_bulk() is not None:  # B sends its part (and its DONEs) first
        pass
    bulk_a = b"".join(iter(a.next_bulk, None))
    shared = b.session.shared
    want = frame(msg(Msg.WANT, shared.index(g2.group), [h2[0].id]))
    reply = frames(b.receive(want + bulk_a))
    assert [m[0] for m in reply].count(Msg.ENTRIES) == 1, [m[0] for m in reply]
    assert entry_ids(b1) == {e.id for e in h1}


def test_a_want_answer_never_holds_an_entry_that_cannot_authenticate_alone() -> None:
    """06 P4: an entry stored on the strength of a successor's signature (its own copy
    corrupted) is not sent alone in an ENTRIES answer, which the peer could not
    authenticate (it would close the session as a forgery, 06 H1)."""
    source = group_history(authors=2, entries=6, seed=41)
    entries = all_entries(source)
    corrupt_at = next(i for i, e in enumerate(entries) if e.seq == 1 and e.id != source.group)
    bad = entries[corrupt_at]
    bad = bad._replace(signature=bytes(64))
    held = replica([*entries[:corrupt_at], bad, *entries[corrupt_at + 1 :]])
    peer = replica(entries)
    a, b = replicator_pair(peer, held)
    pump(a, b)
    group = source.group
    a.session.want(group, [bad.id, entries[0].id], again=True)
    answer = b.receive(a.session.data_to_send())
    # The genesis comes back; the entry whose own signature does not verify does not.
    got = [m for m in frames(answer) if m[0] == Msg.ENTRIES]
    assert len(got) == 1
    blobs = got[0][2]
    assert len(blobs) == 1 and isinstance(blobs[0], bytes)
    assert bad.signature not in blobs[0] and entries[0].signature in blobs[0]


def _live_pair() -> tuple[Replicator, Replicator, bytes, list[Entry]]:
    a = group_history(authors=2, entries=8, seed=43)
    b = replica(all_entries(a))
    ra, rb = replicator_pair(a, b)
    pump(ra, rb)
    assert ra.synced == rb.synced == {a.group}
    return ra, rb, a.group, all_entries(a)


def test_a_peer_streaming_messages_that_do_nothing_is_a_flood() -> None:
    """06 H9: empty FORKS and WANT messages (an honest side never sends one) cost the
    receiver a message each; past MAX_WASTE in a session the peer is closed."""
    from p2pcomm.errors import ErrorCode, RemoteProtocolError
    from p2pcomm.replication import MAX_WASTE

    _, rb, _, _ = _live_pair()
    empty = [frame(msg(Msg.FORKS, 0, [])), frame(msg(Msg.WANT, 0, []))]
    for i in range(MAX_WASTE):
        rb.receive(empty[i % 2])
    with pytest.raises(RemoteProtocolError) as info:
        rb.receive(empty[0])
    assert info.value.code is ErrorCode.FLOOD


def test_asking_again_for_entries_already_sent_is_a_flood() -> None:
    """06 H9: each WANT for an entry this session already sent the peer counts; a peer
    that asks for stored entries over and over (to turn small requests into large
    replies) is closed, while one answer per entry is served."""
    from p2pcomm.errors import ErrorCode, RemoteProtocolError
    from p2pcomm.replication import MAX_WASTE

    _, rb, _, entries = _live_pair()
    ids = [e.id for e in entries[:4]]
    first = rb.receive(frame(msg(Msg.WANT, 0, ids)))
    assert [m[0] for m in frames(first)] == [Msg.ENTRIES]
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(MAX_WASTE // len(ids) + 1):
            rb.receive(frame(msg(Msg.WANT, 0, ids)))
    assert info.value.code is ErrorCode.FLOOD


def test_sending_the_same_entries_again_is_a_flood() -> None:
    """06 H9: an honest side sends an entry at most once per session (it notes what the
    peer holds); a peer that pushes the same entries over and over costs the receiver
    a lookup each and gives nothing, so each one sent again counts, and the peer is
    closed past MAX_WASTE. The first copy of each costs nothing."""
    from p2pcomm.errors import ErrorCode, RemoteProtocolError
    from p2pcomm.replication import MAX_WASTE

    ra, rb, group, entries = _live_pair()
    chain = [e for e in entries if e.header.author == entries[-1].header.author]
    push = ra.push(group, chain)
    assert push
    rb.receive(push)
    assert rb.waste == 0
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(MAX_WASTE // len(chain) + 1):
            rb.receive(push)
    assert info.value.code is ErrorCode.FLOOD
    assert "sent before" in info.value.message


def test_entries_queued_while_reconciling_can_go_before_a_cut_off() -> None:
    """06 6.22: the entry that ends a peer's access reaches it before the cut-off. One
    written while the session still reconciles is queued for its end; send_queued sends
    it at once as a catch-up RUN (the node calls it before it closes the channel), and
    the end of reconciliation does not send it again."""
    from p2pcomm.core.sync import GroupState

    a = group_history(authors=2, entries=12, seed=47)
    entries = all_entries(a)
    b = replica(entries[:6])
    ra, rb = replicator_pair(a, b)
    link = Link(ra, rb)
    link.start()
    # Step by step until A reconciles (it has B's tips, and B has A's).
    for _ in range(20):
        if ra.session.state(a.group) is GroupState.RECONCILING:
            break
        if link.to_b:
            link.send_b(rb.receive(link.to_b.pop(0)))
        if link.to_a:
            link.send_a(ra.receive(link.to_a.pop(0)))
    assert ra.session.state(a.group) is GroupState.RECONCILING
    new = a.append(key(0), KIND_POST, b"the removal, say")
    assert ra.push(a.group, [new]) == b""  # queued for the end of reconciliation
    sent = ra.send_queued(a.group)
    runs = [m for m in frames(sent) if m[0] == Msg.RUN]
    assert [(r[2], r[3]) for r in runs] == [(new.header.author, new.header.seq)]
    assert ra.send_queued(a.group) == b""  # once
    link.send_a(sent)
    link.pump()
    assert ra.synced == rb.synced == {a.group}
    assert b.store.entry_meta(a.group, new.id) is not None
    assert link.accepted["b"] == len(entries) - 6 + 1  # the new entry came once


def test_a_fork_proof_that_does_not_verify_ends_the_session() -> None:
    """06 H10: an honest side sends only proofs it verified; a bogus one is the peer's
    fault (before, it was counted and the peer could send them for ever)."""
    from p2pcomm.errors import RemoteProtocolError

    _, rb, _, _ = _live_pair()
    with pytest.raises(RemoteProtocolError):
        rb.receive(frame(msg(Msg.FORKS, 0, [bytes(200)])))
    assert rb.stats.rejections.get("bad-fork-proof") == 1


def test_a_long_want_is_answered_a_slice_at_a_time() -> None:
    """A WANT of more than WANT_AT_ONCE ids is answered by the bulk job, a slice per
    step (the node takes its lock per step, so other work goes on in between); the
    peer gets one answer, ``more`` on all its messages but the last."""
    from p2pcomm.replication import WANT_AT_ONCE

    a = group_history(authors=3, entries=700, seed=47)
    b = replica(all_entries(a))
    ra, rb = replicator_pair(a, b)
    pump(ra, rb)
    ids = [e.id for e in all_entries(a)[: 2 * WANT_AT_ONCE + 10]]
    ra.session.want(a.group, ids, again=True)
    first = rb.receive(ra.session.data_to_send())
    assert not [m for m in frames(first) if m[0] == Msg.ENTRIES]  # nothing yet
    slices = []
    while (chunk := rb.next_bulk()) is not None:
        got = [m for m in frames(chunk) if m[0] == Msg.ENTRIES]
        slices.append(got)
        ra.receive(chunk)  # the peer accepts each part of the one answer
    assert len(slices) == 3
    assert [m[3] for s in slices for m in s][-1] is False
    assert all(m[3] is True for s in slices[:-1] for m in s)
    assert sum(len(m[2]) for s in slices for m in s) == len(ids)
