"""``MemoryStore``: the reference :class:`~p2pcomm.store.base.Store`, kept in dicts.

Used by the simulator and by tests; nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..core.log import Entry, EntryMeta, ForkProof, Header
from ..errors import ErrorCode, StoreError
from .base import BodyState

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Row:
    pos: int
    entry: Entry
    body_state: BodyState


@dataclass(slots=True)
class _Group:
    rows: dict[bytes, _Row] = field(default_factory=dict)
    order: list[bytes] = field(default_factory=list)
    by_author: dict[tuple[bytes, int], list[bytes]] = field(default_factory=dict)
    max_seq: dict[bytes, int] = field(default_factory=dict)
    heads: dict[bytes, bytes] = field(default_factory=dict)
    tips: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    forks: dict[bytes, ForkProof] = field(default_factory=dict)


class MemoryStore:
    """An in-memory store. Not thread-safe; one owner at a time."""

    def __init__(self) -> None:
        self._groups: dict[bytes, _Group] = {}
        self._pos = 0
        self._closed = False

    def _g(self, group: bytes) -> _Group:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group()
        return g

    def _peek(self, group: bytes) -> _Group | None:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        return self._groups.get(group)

    def close(self) -> None:
        self._closed = True

    def groups(self) -> list[bytes]:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        return [k for k, g in self._groups.items() if g.rows]

    def put_entries(
        self, group: bytes, entries: Iterable[Entry], forks: Sequence[ForkProof] = ()
    ) -> None:
        # Stage everything first: a producer or an item that fails part way must leave
        # the store as it was (the same all-or-nothing promise as SQLite's transaction).
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        staged = [(e.id, e.header, e) for e in entries]
        fork_keys = [(p.key(), p) for p in forks]
        for _, h, _ in staged:
            if not isinstance(h, Header):
                raise StoreError(ErrorCode.STORE_CORRUPT, "put_entries was given a non-entry")
        if not staged and not fork_keys:
            return
        g = self._g(group)
        for eid, h, e in staged:
            if eid in g.rows:
                continue
            self._pos += 1
            state = BodyState.PRESENT if e.body is not None else BodyState.MISSING
            g.rows[eid] = _Row(self._pos, e, state)
            g.order.append(eid)
            g.by_author.setdefault((h.author, h.seq), []).append(eid)
            if h.seq > g.max_seq.get(h.author, 0):
                g.max_seq[h.author] = h.seq
            if h.prev is not None:
                g.heads.pop(h.prev, None)
                g.tips.pop(h.prev, None)
            for link in h.links:
                g.heads.pop(link, None)
            g.heads[eid] = h.author
            g.tips[eid] = (h.author, h.seq)  # entries arrive dependencies first
        for key, proof in fork_keys:
            g.forks.setdefault(key, proof)

    def replace_signatures(self, group: bytes, signatures: Iterable[tuple[bytes, bytes]]) -> int:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        staged = list(signatures)  # all or nothing, as put_entries
        for eid, sig in staged:
            if not (isinstance(eid, bytes) and isinstance(sig, bytes)):
                raise StoreError(ErrorCode.STORE_CORRUPT, "replace_signatures was given a non-id")
        g = self._peek(group)
        if g is None:
            return 0
        changed = 0
        for eid, sig in staged:
            row = g.rows.get(eid)
            if row is not None and row.entry.signature != sig:
                row.entry = row.entry._replace(signature=sig)
                changed += 1
        return changed

    def replace_fork_proofs(self, group: bytes, proofs: Sequence[ForkProof]) -> None:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        keyed = [(p.key(), p) for p in proofs]
        if keyed:
            self._g(group).forks.update(keyed)

    def put_body(self, group: bytes, entry_id: bytes, body: bytes) -> bool:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        if row is None or row.body_state is not BodyState.MISSING:
            return False
        row.entry = row.entry._replace(body=body)
        row.body_state = BodyState.PRESENT
        return True

    def drop_body(self, group: bytes, entry_id: bytes) -> bool:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        if row is None:
            return False
        row.entry = row.entry._replace(body=None)
        row.body_state = BodyState.DROPPED
        return True

    def entry_meta(self, group: bytes, entry_id: bytes) -> EntryMeta | None:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        if row is None:
            return None
        h = row.entry.header
        return EntryMeta(h.author, h.seq, h.timestamp)

    def ids_at(self, group: bytes, author: bytes, seq: int) -> list[bytes]:
        g = self._peek(group)
        return list(g.by_author.get((author, seq), ())) if g else []

    def max_seq(self, group: bytes, author: bytes) -> int:
        g = self._peek(group)
        return g.max_seq.get(author, 0) if g else 0

    def get_signed_header(self, group: bytes, entry_id: bytes) -> tuple[bytes, bytes] | None:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        return None if row is None else (row.entry.header_bytes, row.entry.signature)

    def get_entry(self, group: bytes, entry_id: bytes) -> Entry | None:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        return None if row is None else row.entry

    def body_state(self, group: bytes, entry_id: bytes) -> BodyState | None:
        g = self._peek(group)
        row = g.rows.get(entry_id) if g else None
        return None if row is None else row.body_state

    def count(self, group: bytes) -> int:
        g = self._peek(group)
        return len(g.rows) if g else 0

    def iter_entries(
        self, group: bytes, *, after: int = 0, with_bodies: bool = True
    ) -> Iterator[tuple[int, Entry]]:
        g = self._peek(group)
        if g is None:
            return
        for eid in list(g.order):
            row = g.rows[eid]
            if row.pos > after:
                yield row.pos, (row.entry if with_bodies else row.entry.without_body())

    def heads(self, group: bytes) -> dict[bytes, bytes]:
        g = self._peek(group)
        return dict(g.heads) if g else {}

    def tips(self, group: bytes) -> list[tuple[bytes, int, bytes]]:
        g = self._peek(group)
        return sorted((a, s, i) for i, (a, s) in g.tips.items()) if g else []

    def iter_author(
        self, group: bytes, author: bytes, *, after_seq: int = 0, page: int = 2000
    ) -> Iterator[tuple[int, Entry]]:
        g = self._peek(group)
        if g is None:
            return
        seq = after_seq + 1
        while True:
            ids = g.by_author.get((author, seq))
            if not ids:
                return
            for eid in sorted(ids):
                row = g.rows[eid]
                yield row.pos, row.entry
            seq += 1

    def author_tips(self, group: bytes) -> dict[bytes, tuple[int, bytes, int]]:
        g = self._peek(group)
        if g is None:
            return {}
        tips: dict[bytes, tuple[int, bytes, int]] = {}
        for author, seq in g.max_seq.items():
            eid = min(g.by_author[(author, seq)])
            tips[author] = (seq, eid, g.rows[eid].entry.header.timestamp)
        return tips

    def fork_proofs(self, group: bytes) -> list[ForkProof]:
        g = self._peek(group)
        return list(g.forks.values()) if g else []
