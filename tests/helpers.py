"""Small helpers shared by the tests: seeded key pairs, a builder of valid multi-author
histories, hand-made (possibly rule-breaking) entries, and a dict-backed ``LogView``
with a replica wrapper that checks every ingest result is in dependency order.

Nothing here reads a clock or an unseeded random source: the same arguments always
build the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from p2pcomm.core.identity import NS_ENTRY, NS_HANDSHAKE, KeyPair
from p2pcomm.core.log import (
    KIND_GENESIS,
    LOG_VERSION,
    MAX_LINKS,
    Entry,
    EntryMeta,
    ForkProof,
    Header,
    Ingestor,
    IngestResult,
    Rejection,
    create_entry,
    create_genesis,
    encode_header,
    entry_id,
)

__all__ = [
    "BASE_TS",
    "KIND_GENESIS",
    "KIND_POST",
    "DictView",
    "History",
    "Replica",
    "assert_dependency_order",
    "bad_signature",
    "build_history",
    "genesis_only",
    "keypair",
    "raw_entry",
    "read_blobs",
    "seed",
    "with_signature",
    "write_blobs",
]

#: A fixed "now" for histories (2023-11-14, in milliseconds).
BASE_TS = 1_700_000_000_000
#: A non-genesis kind used by test entries.
KIND_POST = 1


def seed(n: int) -> bytes:
    """A deterministic 32-byte seed for test identity ``n``."""
    return hashlib.blake2b(b"p2pcomm-test-seed:%d" % n, digest_size=32).digest()


@functools.cache
def keypair(n: int) -> KeyPair:
    """Test identity ``n`` (cached: the same object for the same ``n``)."""
    return KeyPair(seed(n))


def with_signature(entry: Entry, signature: bytes) -> Entry:
    """``entry`` with another signature (the id does not depend on it)."""
    return entry._replace(signature=signature)


def bad_signature(entry: Entry, kp: KeyPair) -> Entry:
    """``entry`` signed by its own author under the wrong namespace: a well-formed
    64-byte signature that does not verify as an entry signature."""
    return with_signature(entry, kp.sign(NS_HANDSHAKE, entry.id))


def raw_entry(
    kp: KeyPair,
    *,
    group: bytes,
    seq: int,
    prev: bytes | None,
    links: Sequence[bytes] = (),
    timestamp: int = BASE_TS,
    kind: int = KIND_POST,
    body: bytes | None = b"",
    body_hash: bytes | None = None,
    body_size: int | None = None,
    author: bytes | None = None,
) -> Entry:
    """An entry built exactly as told (links kept in the given order, no rule checks),
    signed correctly by ``kp``. For testing the rules themselves."""
    content = body if body is not None else b""
    header = Header(
        LOG_VERSION,
        group,
        kp.public_key if author is None else author,
        seq,
        prev,
        tuple(links),
        timestamp,
        kind,
        hashlib.blake2b(content, digest_size=32).digest() if body_hash is None else body_hash,
        len(content) if body_size is None else body_size,
    )
    hb = encode_header(header)
    eid = entry_id(hb)
    return Entry(eid, header, hb, kp.sign(NS_ENTRY, eid), body)


# --------------------------------------------------------------------------- histories


@dataclass
class History:
    """A valid history of one group: the genesis first, then entries in creation
    (therefore causal) order."""

    group: bytes
    entries: list[Entry]
    keypairs: dict[bytes, KeyPair]

    @property
    def genesis(self) -> Entry:
        return self.entries[0]

    @property
    def ids(self) -> set[bytes]:
        return {e.id for e in self.entries}

    def chains(self) -> dict[bytes, list[Entry]]:
        """Each author's entries in sequence order."""
        out: dict[bytes, list[Entry]] = {}
        for e in sorted(self.entries, key=lambda x: (x.header.author, x.header.seq)):
            out.setdefault(e.header.author, []).append(e)
        return out

    def by_id(self) -> dict[bytes, Entry]:
        return {e.id: e for e in self.entries}

    def with_bad_signatures(self, ids: Iterable[bytes]) -> list[Entry]:
        """The entries, with the ones in ``ids`` carrying a bad signature."""
        bad = set(ids)
        return [
            bad_signature(e, self.keypairs[e.header.author]) if e.id in bad else e
            for e in self.entries
        ]


def build_history(
    *,
    authors: int = 3,
    per_author: int = 4,
    seed: int = 0,
    body_size: int = 8,
    link_probability: float = 0.5,
    first_key: int = 0,
) -> History:
    """A valid history: identity ``first_key`` founds the group, then ``authors``
    identities (the founder included) each append ``per_author`` entries (the founder's
    genesis counts as one of them), interleaved by a seeded RNG.

    Each entry names its author's previous entry, links to some current heads of other
    authors (always at least one for an author's first entry), and has a timestamp no
    earlier than anything it depends on (sometimes equal).
    """
    rng = random.Random(seed)
    kps = [keypair(first_key + i) for i in range(authors)]
    clock = BASE_TS + seed
    genesis = create_genesis(kps[0], timestamp=clock, body=rng.randbytes(body_size))
    group = genesis.id
    entries = [genesis]
    heads: dict[bytes, bytes] = {genesis.id: genesis.header.author}
    tips: dict[bytes, tuple[int, bytes]] = {kps[0].public_key: (1, genesis.id)}
    remaining = {kp.public_key: per_author for kp in kps}
    remaining[kps[0].public_key] -= 1
    by_key = {kp.public_key: kp for kp in kps}
    while any(remaining.values()):
        author = rng.choice(sorted(a for a, n in remaining.items() if n))
        remaining[author] -= 1
        seq, prev = tips.get(author, (0, None))
        others = [i for i, a in heads.items() if a != author]
        if prev is None or rng.random() < link_probability:
            k = rng.randint(1, min(len(others), MAX_LINKS)) if others else 0
            links = rng.sample(others, k)
        else:
            links = []
        clock += rng.choice((0, 1, 2, 5))
        e = create_entry(
            by_key[author],
            group=group,
            seq=seq + 1,
            prev=prev,
            links=links,
            timestamp=clock,
            kind=KIND_POST,
            body=rng.randbytes(rng.randint(0, body_size)),
        )
        entries.append(e)
        for x in [prev, *links]:
            if x is not None:
                heads.pop(x, None)
        heads[e.id] = author
        tips[author] = (seq + 1, e.id)
    return History(group=group, entries=entries, keypairs=by_key)


# --------------------------------------------------------------------------- replicas


class DictView:
    """A :class:`~p2pcomm.core.log.LogView` over a dict of accepted entries."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Entry] = {}

    def add(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.entries.setdefault(e.id, e)

    def entry_meta(self, entry_id: bytes) -> EntryMeta | None:
        e = self.entries.get(entry_id)
        if e is None:
            return None
        return EntryMeta(e.header.author, e.header.seq, e.header.timestamp)

    def ids_at(self, author: bytes, seq: int) -> Sequence[bytes]:
        return sorted(
            e.id for e in self.entries.values() if e.header.author == author and e.header.seq == seq
        )

    def max_seq(self, author: bytes) -> int:
        return max(
            (e.header.seq for e in self.entries.values() if e.header.author == author), default=0
        )

    def get_signed_header(self, entry_id: bytes) -> tuple[bytes, bytes] | None:
        e = self.entries.get(entry_id)
        return None if e is None else (e.header_bytes, e.signature)


def assert_dependency_order(
    accepted: Sequence[Entry], known: set[bytes] | dict[bytes, Entry]
) -> None:
    """Every accepted entry's ``prev`` and links are either ``known`` (stored before the
    call) or accepted earlier in the same list."""
    seen = set(known)
    for e in accepted:
        deps = [*e.header.links] + ([e.header.prev] if e.header.prev is not None else [])
        missing = [d.hex()[:16] for d in deps if d not in seen]
        assert not missing, f"{e.id.hex()[:16]} accepted before its dependencies {missing}"
        seen.add(e.id)


@dataclass
class Replica:
    """An :class:`Ingestor` over a :class:`DictView`; stores what each call accepts,
    after checking the order, exactly as a store-backed caller would."""

    group: bytes
    max_pending: int = 50_000
    overlay_size: int = 200_000
    view: DictView = field(default_factory=DictView)
    accepted: list[Entry] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    forks: list[ForkProof] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ingestor = Ingestor(
            self.group, self.view, max_pending=self.max_pending, overlay_size=self.overlay_size
        )

    def offer(self, entries: Iterable[Entry], *, verify_each: bool = False) -> IngestResult:
        result = self.ingestor.ingest(list(entries), verify_each=verify_each)
        assert_dependency_order(result.accepted, self.view.entries)
        assert len({e.id for e in result.accepted}) == len(result.accepted)
        assert not {e.id for e in result.accepted} & self.view.entries.keys()
        self.view.add(result.accepted)
        self.accepted.extend(result.accepted)
        self.rejected.extend(result.rejected)
        self.forks.extend(result.forks)
        return result

    @property
    def accepted_ids(self) -> set[bytes]:
        return {e.id for e in self.accepted}


def genesis_only(kp: KeyPair, *, timestamp: int = BASE_TS, body: bytes = b"") -> Entry:
    """A genesis entry (a new group) for ``kp``."""
    return create_genesis(kp, timestamp=timestamp, body=body)


# --------------------------------------------------------------------------- blob files


def write_blobs(path: Path, blobs: Iterable[bytes]) -> int:
    """Write length-prefixed blobs (4-byte big-endian length, then the bytes)."""
    n = 0
    with path.open("wb") as f:
        for b in blobs:
            f.write(struct.pack(">I", len(b)))
            f.write(b)
            n += 1
    return n


def read_blobs(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out
