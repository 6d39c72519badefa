"""The storage interface: a small, synchronous ``Store`` protocol.

A store holds, per group, the entries the log layer accepted (headers, signatures and
the bodies still held), the group's current heads, and fork proofs. It never decides
validity: :class:`p2pcomm.group.GroupLog` runs the sans-IO ingest machine and hands the
store only entries that are already valid, in an order where each entry follows its
dependencies.

Guarantees every implementation gives (checked by ``tests/store/test_contract.py``):

* ``put_entries`` is atomic: after it returns every entry is stored (durably, for
  stores that persist); if it raises, none is, and the store is as before.
* Entries come back from ``iter_entries`` in the order they were put, so that order is
  causal.
* A dropped body stays dropped: ``put_body`` refuses it afterwards.
* ``put_entries`` keeps the first signature stored for an entry and the first proof of
  a fork id; only ``replace_signatures`` and ``replace_fork_proofs`` change them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from ..core.log import Entry, EntryMeta, ForkProof

__all__ = ["BodyState", "Store"]


class BodyState(enum.IntEnum):
    """What the store holds of an entry's body."""

    #: Not held yet (arrived header-only); may be fetched and added.
    MISSING = 0
    #: Held.
    PRESENT = 1
    #: Deleted on purpose (moderation or local deletion); never fetched again.
    DROPPED = 2


class Store(Protocol):
    """Entries of any number of groups. All methods are synchronous and may block on
    disk; the trio edge calls them through ``trio.to_thread`` where that matters."""

    def close(self) -> None:
        """Release resources. Further calls raise ``StoreError(STORE_CLOSED)``."""

    def groups(self) -> list[bytes]:
        """Ids of the groups with at least one stored entry."""

    # -- writing

    def put_entries(
        self, group: bytes, entries: Iterable[Entry], forks: Sequence[ForkProof] = ()
    ) -> None:
        """Store valid entries (dependencies first) and fork proofs in one transaction.

        ``entries`` is consumed once, inside the transaction (it may be a generator
        that is still producing while earlier entries are written). Entries already
        stored are skipped (their stored signature stays), and so are proofs of a fork
        id already stored. Bodies present on the entries are stored.
        """

    def replace_signatures(self, group: bytes, signatures: Iterable[tuple[bytes, bytes]]) -> int:
        """Put each ``(entry_id, signature)``'s signature in place of the stored entry's,
        in one transaction; returns how many stored entries of ``group`` changed
        (unknown ids are skipped).

        This is for a verifying signature that arrives for an entry stored with one
        that does not verify (spec 03 A1). The store does not check signatures: the
        caller MUST have verified each one for its entry, since the store forwards
        whatever it holds."""

    def replace_fork_proofs(self, group: bytes, proofs: Sequence[ForkProof]) -> None:
        """Store fork proofs in one transaction, each in place of the stored proof with
        the same fork id (:meth:`ForkProof.key`), or added if there is none.

        ``put_entries`` keeps the first proof of a fork id; this is how a proof made
        again from a shorter run replaces it (spec 03 F1c). The store does not check
        proofs: the caller verified them."""

    def put_body(self, group: bytes, entry_id: bytes, body: bytes) -> bool:
        """Store a body (already checked against the header) if it is MISSING.

        Returns False when the entry is unknown, the body is already present, or it
        was dropped."""

    def drop_body(self, group: bytes, entry_id: bytes) -> bool:
        """Delete a body for good; the header stays. Returns False if the entry is
        unknown."""

    # -- reading

    def entry_meta(self, group: bytes, entry_id: bytes) -> EntryMeta | None:
        """Author, sequence and timestamp of a stored entry of ``group``."""

    def ids_at(self, group: bytes, author: bytes, seq: int) -> list[bytes]:
        """Ids of ``author``'s stored entries with sequence ``seq``."""

    def max_seq(self, group: bytes, author: bytes) -> int:
        """Highest stored sequence of ``author`` in ``group``; 0 when none."""

    def get_signed_header(self, group: bytes, entry_id: bytes) -> tuple[bytes, bytes] | None:
        """``(header_bytes, signature)`` of a stored entry."""

    def get_entry(self, group: bytes, entry_id: bytes) -> Entry | None:
        """The stored entry, with its body when PRESENT."""

    def body_state(self, group: bytes, entry_id: bytes) -> BodyState | None:
        """What is held of the body, or None for an unknown entry."""

    def count(self, group: bytes) -> int:
        """Number of stored entries of ``group``."""

    def iter_entries(
        self, group: bytes, *, after: int = 0, with_bodies: bool = True
    ) -> Iterator[tuple[int, Entry]]:
        """``(position, entry)`` in insertion order, starting after ``position``.

        Positions increase strictly; resume an interrupted walk with ``after=``."""

    def heads(self, group: bytes) -> dict[bytes, bytes]:
        """Current heads of ``group`` (entries nothing stored refers to): id -> author."""

    def tips(self, group: bytes) -> list[tuple[bytes, int, bytes]]:
        """``(author, seq, id)`` of every stored entry that no stored entry of the same
        author follows (one per author, more after a fork), sorted."""

    def iter_author(
        self, group: bytes, author: bytes, *, after_seq: int = 0, page: int = 2000
    ) -> Iterator[tuple[int, Entry]]:
        """``(position, entry)`` of ``author``'s entries with sequence above
        ``after_seq``, by sequence (then id); read ``page`` entries at a time (what a
        caller merging many authors keeps in memory per author)."""

    def author_tips(self, group: bytes) -> dict[bytes, tuple[int, bytes, int]]:
        """Per author, ``(seq, id, timestamp)`` of the highest stored entry (the lowest
        id among several after a fork)."""

    def fork_proofs(self, group: bytes) -> list[ForkProof]:
        """Stored fork proofs of ``group``."""
