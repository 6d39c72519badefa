"""Helpers for the sync tests: seeded identities, group histories built through
``GroupLog``, causal subsets of them, and a byte pump between two ``Replicator``s.

Everything here is deterministic: keys come from ``KeyPair(blake2b(b"k%d" % n))``,
timestamps from ``BASE_TS``, randomness from a seeded ``random.Random``.

The pump plays the part of the trio node over a perfect link, in one thread: it moves
the bytes each side queued to the other (``start()``, ``receive()``), advances bulk jobs
(``next_bulk()``) when nothing else is in flight, and flushes gathered catch-up entries
(``flush()``) when the link is quiet, as the node does after ``FLUSH_AFTER`` of quiet.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgpack

from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import Entry, encode_entry
from p2pcomm.group import GroupLog
from p2pcomm.replication import Replicator
from p2pcomm.store import MemoryStore, Store

__all__ = [
    "BASE_TS",
    "KIND_POST",
    "Link",
    "all_entries",
    "causal_subset",
    "closure",
    "encoded_size",
    "entry_ids",
    "frame",
    "group_history",
    "key",
    "msg",
    "new_group",
    "pump",
    "replica",
    "replicator_pair",
    "session_hash",
    "snapshot",
]

#: 2023-11-14T22:13:20Z in milliseconds: the clock of every test history.
BASE_TS = 1_700_000_000_000
#: A non-genesis entry kind.
KIND_POST = 16


@functools.cache
def key(n: int) -> KeyPair:
    """Test identity ``n``: ``KeyPair(BLAKE2b-256(b"k%d" % n))``."""
    return KeyPair(hashlib.blake2b(b"k%d" % n, digest_size=32).digest())


def session_hash(n: int = 0) -> bytes:
    """A stand-in for a 64-byte Noise handshake hash."""
    return hashlib.blake2b(b"session-%d" % n, digest_size=64).digest()


# --------------------------------------------------------------------------- wire


def msg(*items: object) -> bytes:
    """A sync message payload: canonical msgpack of the positional array ``items``."""
    return bytes(msgpack.packb(list(items), use_bin_type=True))


def frame(payload: bytes) -> bytes:
    """``u32be(len(payload)) || payload``: the sync framing."""
    return len(payload).to_bytes(4, "big") + payload


# --------------------------------------------------------------------------- histories


def new_group(
    store: Store | None = None, *, founder: int = 0, body: bytes = b"genesis"
) -> GroupLog:
    """A new group founded by ``key(founder)`` at ``BASE_TS``."""
    return GroupLog.create(store or MemoryStore(), key(founder), body=body, timestamp=BASE_TS)


def group_history(
    *,
    authors: int = 3,
    entries: int = 30,
    seed: int = 0,
    body_size: int = 16,
    max_run: int = 5,
    store: Store | None = None,
    first_author: int = 0,
    exact_body: bool = False,
) -> GroupLog:
    """A group whose ``entries`` entries (the genesis not counted) were appended by
    ``authors`` identities (``key(first_author)`` founds it) in runs of 1 to ``max_run``
    entries, the author of each run drawn by a seeded RNG. Bodies are random, of 0 to
    ``body_size`` bytes (exactly ``body_size`` with ``exact_body``). ``append_many`` links each
    run's first entry to the current heads of the others, so the DAG is well mixed."""
    rng = random.Random(seed)
    log = new_group(store, founder=first_author)
    keys = [key(first_author + i) for i in range(authors)]
    left = entries
    step = 0
    while left > 0:
        n = min(left, rng.randint(1, max_run))
        kp = rng.choice(keys)
        step += 1
        items = [
            (KIND_POST, rng.randbytes(body_size if exact_body else rng.randint(0, body_size)))
            for _ in range(n)
        ]
        log.append_many(kp, items, timestamp=BASE_TS + step)
        left -= n
    return log


def all_entries(log: GroupLog) -> list[Entry]:
    """Every entry of ``log`` in insertion (causal) order."""
    return [e for _, e in log.entries()]


def closure(entries: Sequence[Entry], roots: Iterable[bytes]) -> list[Entry]:
    """The genesis, the entries ``roots`` names and everything they depend on (through
    ``prev`` and links), in the order of ``entries`` (causal, genesis first)."""
    by_id = {e.id: e for e in entries}
    keep = {entries[0].id}
    stack = list(roots)
    while stack:
        eid = stack.pop()
        if eid in keep:
            continue
        keep.add(eid)
        h = by_id[eid].header
        stack.extend(h.links)
        if h.prev is not None:
            stack.append(h.prev)
    return [e for e in entries if e.id in keep]


def causal_subset(entries: Sequence[Entry], rng: random.Random, k: int) -> list[Entry]:
    """A random subset of ``entries`` (causal order, genesis first) closed under
    dependencies: the closure of ``k`` randomly chosen entries. ``k = 0`` gives the
    genesis only."""
    picked = rng.sample(list(entries), min(k, len(entries)))
    return closure(entries, [e.id for e in picked])


def replica(entries: Iterable[Entry], store: Store | None = None) -> GroupLog:
    """A ``GroupLog`` on ``store`` (a new MemoryStore by default) holding ``entries``
    (causal order, genesis first). They are known valid, so they are put directly."""
    entries = list(entries)
    store = store if store is not None else MemoryStore()
    group = entries[0].id
    store.put_entries(group, entries)
    return GroupLog(store, group)


def entry_ids(log: GroupLog) -> set[bytes]:
    return {e.id for _, e in log.entries(with_bodies=False)}


def snapshot(log: GroupLog) -> tuple[int, list[tuple[bytes, int, bytes]]]:
    """``(count, tips)``: what a test compares to prove a store unchanged."""
    return len(log), log.store.tips(log.group)


def encoded_size(entries: Iterable[Entry]) -> int:
    """Bytes of ``encode_entry`` (bodies included) of ``entries``."""
    return sum(len(encode_entry(e)) for e in entries)


# --------------------------------------------------------------------------- replicators


def replicator_pair(
    logs_a: Mapping[bytes, GroupLog] | GroupLog,
    logs_b: Mapping[bytes, GroupLog] | GroupLog,
    *,
    n: int = 0,
    forward_a: Callable[[bytes, Entry], bool] | None = None,
    forward_b: Callable[[bytes, Entry], bool] | None = None,
) -> tuple[Replicator, Replicator]:
    """Two replicators of one session ``n``: ``a`` initiates, ``b`` responds."""

    def as_map(x: Mapping[bytes, GroupLog] | GroupLog) -> Mapping[bytes, GroupLog]:
        return {x.group: x} if isinstance(x, GroupLog) else x

    h = session_hash(n)
    a = Replicator(as_map(logs_a), initiator=True, session_hash=h, forward=forward_a)
    b = Replicator(as_map(logs_b), initiator=False, session_hash=h, forward=forward_b)
    return a, b


@dataclass
class Link:
    """A perfect, in-order link between two replicators, driven by hand.

    ``to_b`` / ``to_a`` hold bytes written by one side and not yet read by the other.
    Every write is recorded in ``chunks`` (``(sender, size)``), so tests can look at
    the sizes a writer was handed, and with ``record`` its bytes in ``wrote``.

    ``eager_flush`` makes a receiver ingest what it gathered after every delivery, as
    a node does when its peer pauses between windows for longer than ``FLUSH_AFTER``.
    """

    a: Replicator
    b: Replicator
    to_b: list[bytes] = field(default_factory=list)
    to_a: list[bytes] = field(default_factory=list)
    delivered: int = 0
    chunks: list[tuple[str, int]] = field(default_factory=list)
    #: Entries each side stored, taken from ``take_accepted()`` after every call as the
    #: node does (a replicator keeps them until taken).
    accepted: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    record: bool = False
    eager_flush: bool = False
    wrote: dict[str, bytearray] = field(
        default_factory=lambda: {"a": bytearray(), "b": bytearray()}
    )

    def start(self) -> None:
        self.send_a(self.a.start())
        self.send_b(self.b.start())

    def send_a(self, data: bytes | None) -> None:
        if data:
            self.to_b.append(data)
            self.chunks.append(("a", len(data)))
            if self.record:
                self.wrote["a"] += data

    def send_b(self, data: bytes | None) -> None:
        if data:
            self.to_a.append(data)
            self.chunks.append(("b", len(data)))
            if self.record:
                self.wrote["b"] += data

    def deliver(self) -> int:
        """Deliver the bytes in flight, and the replies they cause, but advance no bulk
        job and flush nothing. Returns the bytes delivered."""
        start = self.delivered
        while self.to_a or self.to_b:
            if self.to_b:
                data = self.to_b.pop(0)
                self.delivered += len(data)
                self.send_b(self.b.receive(data))
            if self.to_a:
                data = self.to_a.pop(0)
                self.delivered += len(data)
                self.send_a(self.a.receive(data))
            self._take()
        return self.delivered - start

    def pump(self, *, cut_after: int | None = None) -> int:
        """Move bytes until both sides are quiet; returns the bytes delivered by this
        call. With ``cut_after``, stop once that many bytes (in all, both ways, since
        the link was made) were delivered, in the middle of a message if it falls
        there: the rest is lost, as when a connection breaks."""
        start = self.delivered
        while True:
            moved = False
            for queue, receiver, reply in (
                (self.to_b, self.b, self.send_b),
                (self.to_a, self.a, self.send_a),
            ):
                if queue:
                    data = queue.pop(0)
                    if cut_after is not None and self.delivered + len(data) >= cut_after:
                        keep = cut_after - self.delivered
                        if keep:
                            receiver.receive(data[:keep])
                        if self.eager_flush:  # the peer went quiet, then the link died
                            receiver.flush()
                        self.delivered += keep
                        self.to_a.clear()
                        self.to_b.clear()
                        self._take()
                        return self.delivered - start
                    self.delivered += len(data)
                    reply(receiver.receive(data))
                    if self.eager_flush:
                        reply(receiver.flush())
                    self._take()
                    moved = True
            if moved:
                continue
            # Nothing in flight: writers advance their bulk jobs by one window.
            for side, send in ((self.a, self.send_a), (self.b, self.send_b)):
                chunk = side.next_bulk()
                if chunk is not None:
                    send(chunk)
                    moved = True
            if moved:
                continue
            # Quiet link: readers ingest what they gathered (the node's FLUSH_AFTER).
            for side, send in ((self.a, self.send_a), (self.b, self.send_b)):
                if side.has_deferred:
                    send(side.flush())
                    self._take()
                    moved = True
            if not moved:
                return self.delivered - start

    def _take(self) -> None:
        for name, side in (("a", self.a), ("b", self.b)):
            self.accepted[name] += sum(len(x.entries) for x in side.take_accepted())


def pump(a: Replicator, b: Replicator, *, cut_after: int | None = None) -> int:
    """Start a session between ``a`` and ``b`` and move bytes both ways until quiet
    (or until ``cut_after`` bytes were delivered); returns the sync bytes delivered."""
    link = Link(a, b)
    link.start()
    return link.pump(cut_after=cut_after)
