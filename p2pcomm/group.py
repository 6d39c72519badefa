"""``GroupLog``: one group's signed log on top of a :class:`~p2pcomm.store.Store`.

This is the synchronous API most applications and the node use::

    store = SqliteStore("alice.db")
    log = GroupLog.create(store, alice, body=b"our group")     # writes the genesis
    log.append(alice, kind=KIND_POST, body=b"hello")           # durable on return
    result = log.ingest(entries_from_a_peer)                   # validated, then stored
    assert log.verify().ok

It runs the sans-IO :class:`~p2pcomm.core.log.Ingestor` and writes what it accepts in
one store transaction per call, so an entry reported accepted is stored, and nothing
unverified is ever stored. Appending computes ``prev`` and ``links`` from the stored
heads; batches are signed on worker threads (signatures do not take part in the hash
chain, so they can be made in any order).

Thread safety: one ``GroupLog`` per group and per thread at a time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .core import crypto
from .core.identity import NS_ENTRY, KeyPair
from .core.log import (
    MAX_LINKS,
    MAX_U63,
    Entry,
    EntryMeta,
    ForkProof,
    Header,
    Ingestor,
    IngestResult,
    Rejection,
    SignatureChecker,
    check_payload,
    check_timestamp,
    create_genesis,
    decode_entry,
    encode_checked,
    encode_entry,
    encode_header,
    make_header,
    verify_signature,
)
from .errors import DecodeError, ErrorCode, StoreError, ValidationError
from .store.base import BodyState, Store
from .store.sqlite import entry_row, fork_row
from .store.writer import ProcessWriter

__all__ = ["GroupLog", "ThreadedSignatures", "VerifyReport", "now_ms"]

#: Ingests of at least this many entries use the store's writer process, when it has
#: one (:meth:`SqliteStore.writer <p2pcomm.store.SqliteStore.writer>`).
OFFLOAD_MIN = 256
#: A large :meth:`GroupLog.ingest` validates and writes in steps of this many entries,
#: one transaction each, so that validating a step overlaps with writing the last.
INGEST_STEP = 2048


def now_ms() -> int:
    """The local clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class _View:
    """The store seen as a :class:`~p2pcomm.core.log.LogView` of one group, including
    the entries of the write still running in the writer process: the store shows them
    only once they are committed, and the next step is validated meanwhile."""

    __slots__ = ("_by_id", "_by_seq", "_group", "_inflight", "_max_seq", "_store")

    def __init__(self, store: Store, group: bytes) -> None:
        self._store = store
        self._group = group
        self._inflight: Sequence[Entry] = ()
        self._by_id: dict[bytes, Entry] = {}
        self._by_seq: dict[tuple[bytes, int], list[bytes]] = {}
        self._max_seq: dict[bytes, int] = {}

    def set_inflight(self, entries: Sequence[Entry]) -> None:
        """The entries of the write in flight (indexed when first asked about)."""
        self._inflight = entries
        self._by_id, self._by_seq, self._max_seq = {}, {}, {}

    def _indexed(self) -> bool:
        """Whether a write is in flight; its entries are indexed on first use."""
        if not self._inflight:
            return False
        if not self._by_id:
            by_id, by_seq, max_seq = self._by_id, self._by_seq, self._max_seq
            for e in self._inflight:
                h = e.header
                by_id[e.id] = e
                by_seq.setdefault((h.author, h.seq), []).append(e.id)
                if h.seq > max_seq.get(h.author, 0):
                    max_seq[h.author] = h.seq
        return True

    def entry_meta(self, entry_id: bytes) -> EntryMeta | None:
        meta = self._store.entry_meta(self._group, entry_id)
        if meta is None and self._indexed() and (e := self._by_id.get(entry_id)) is not None:
            h = e.header
            return EntryMeta(h.author, h.seq, h.timestamp)
        return meta

    def ids_at(self, author: bytes, seq: int) -> Sequence[bytes]:
        ids = self._store.ids_at(self._group, author, seq)
        if self._indexed() and (more := self._by_seq.get((author, seq))):
            return sorted({*ids, *more})
        return ids

    def max_seq(self, author: bytes) -> int:
        seq = self._store.max_seq(self._group, author)
        if self._indexed():
            seq = max(seq, self._max_seq.get(author, 0))
        return seq

    def get_signed_header(self, entry_id: bytes) -> tuple[bytes, bytes] | None:
        got = self._store.get_signed_header(self._group, entry_id)
        if got is None and self._indexed() and (e := self._by_id.get(entry_id)) is not None:
            return e.header_bytes, e.signature
        return got


class ThreadedSignatures:
    """Signs and verifies Ed25519 on a small thread pool.

    ``cryptography`` releases the GIL inside OpenSSL, so two threads on two cores
    nearly double the rate. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, threads: int = 2, *, min_batch: int = 8) -> None:
        self.threads = threads
        self.min_batch = min_batch
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="p2pcomm-sig")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ThreadedSignatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        step = -(-n // self.threads)
        return [(i, min(i + step, n)) for i in range(0, n, step)]

    def verify(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        """A :data:`~p2pcomm.core.log.SignatureChecker`."""
        verify = crypto.ed25519_verify
        if len(items) < self.min_batch or self.threads < 2:
            return [verify(k, m, s) for k, m, s in items]

        def work(lo: int, hi: int) -> list[bool]:
            return [verify(k, m, s) for k, m, s in items[lo:hi]]

        futures = [self._pool.submit(work, lo, hi) for lo, hi in self._chunks(len(items))]
        out: list[bool] = []
        for f in futures:
            out.extend(f.result())
        return out

    def sign(self, keypair: KeyPair, messages: Sequence[bytes]) -> list[bytes]:
        """Sign ``NS_ENTRY || m`` for each ``m``."""
        sign = keypair.signer().raw_sign
        signables = [NS_ENTRY + m for m in messages]
        if len(messages) < self.min_batch or self.threads < 2:
            return [sign(m) for m in signables]

        def work(lo: int, hi: int) -> list[bytes]:
            return [sign(m) for m in signables[lo:hi]]

        futures = [self._pool.submit(work, lo, hi) for lo, hi in self._chunks(len(messages))]
        out: list[bytes] = []
        for f in futures:
            out.extend(f.result())
        return out


@dataclass(slots=True)
class VerifyReport:
    """The result of :meth:`GroupLog.verify`: re-validation of everything stored."""

    entries: int = 0
    bodies_checked: int = 0
    bodies_dropped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class GroupLog:
    """The log of one group in a store."""

    def __init__(
        self,
        store: Store,
        group: bytes,
        *,
        signatures: ThreadedSignatures | None = None,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.group = group
        self._signatures = signatures
        checker: SignatureChecker | None = signatures.verify if signatures else None
        self._view = _View(store, group)
        self._ingestor = Ingestor(
            group, self._view, max_pending=max_pending, signature_checker=checker
        )
        self._heads: dict[bytes, bytes] | None = None
        self._tips: dict[bytes, tuple[int, bytes, int]] = {}
        #: The write sent to the writer process and not yet known durable.
        self._inflight: tuple[IngestResult, ProcessWriter, int] | None = None

    @classmethod
    def create(
        cls,
        store: Store,
        founder: KeyPair,
        *,
        body: bytes = b"",
        timestamp: int | None = None,
        signatures: ThreadedSignatures | None = None,
    ) -> GroupLog:
        """Start a new group: write its genesis entry (durably) and return its log."""
        genesis = create_genesis(
            founder, timestamp=now_ms() if timestamp is None else timestamp, body=body
        )
        store.put_entries(genesis.id, [genesis])
        return cls(store, genesis.id, signatures=signatures)

    # -- appending

    def _current_heads(self) -> dict[bytes, bytes]:
        if self._heads is None:
            self._heads = self.store.heads(self.group)
        return self._heads

    def _tip(self, author: bytes) -> tuple[int, bytes | None, int]:
        tip = self._tips.get(author)
        if tip is None:
            seq = self.store.max_seq(self.group, author)
            if seq == 0:
                return 0, None, 0
            ids = self.store.ids_at(self.group, author, seq)
            meta = self.store.entry_meta(self.group, ids[0])
            assert meta is not None
            tip = (seq, ids[0], meta.timestamp)
            self._tips[author] = tip
        return tip

    def _note_run(self, run: Sequence[Entry]) -> None:
        """:meth:`_note_stored` for a contiguous run of one author whose entries after
        the first link to nothing but their predecessor (an append)."""
        heads = self._current_heads()
        first, last = run[0].header, run[-1]
        if first.prev is not None:
            heads.pop(first.prev, None)
        for link in first.links:
            heads.pop(link, None)
        heads[last.id] = last.header.author
        self._note_tip(last)

    def _note_stored(self, entries: Iterable[Entry]) -> None:
        heads = self._current_heads()
        for e in entries:
            h = e.header
            if h.prev is not None:
                heads.pop(h.prev, None)
            for link in h.links:
                heads.pop(link, None)
            heads[e.id] = h.author
            self._note_tip(e)

    def _note_tip(self, e: Entry) -> None:
        """Move the cached tip of ``e``'s author to ``e`` if it is newer."""
        h = e.header
        tip = self._tips.get(h.author)
        if tip is not None and h.seq > tip[0]:
            self._tips[h.author] = (h.seq, e.id, h.timestamp)

    def _links(self, author: bytes) -> list[bytes]:
        heads = self._current_heads()
        return [i for i, a in heads.items() if a != author][-MAX_LINKS:]

    def next_position(self, author: bytes) -> tuple[int, list[bytes]]:
        """``(seq, parents)`` of the next entry ``author`` appends here: its sequence
        number and the ids its ``prev`` and ``links`` will name (an encrypted body is
        bound to both, spec/12-encryption.md)."""
        seq, prev, _ = self._tip(author)
        return seq + 1, ([prev] if prev is not None else []) + self._links(author)

    def _prepare(
        self, keypair: KeyPair, items: Sequence[tuple[int, bytes]], timestamp: int | None
    ) -> list[tuple[Header, bytes, bytes, bytes]]:
        """The run's headers, encoded, with the bodies and ids.

        Refuses with :class:`ValidationError`, before anything is signed, whatever a
        reader would refuse: every kind and body (:func:`check_payload`), the first
        header through the reader's own decoder and rules (:func:`encode_checked`).
        The rest of the run shares that header's group, author and timestamp and links
        to nothing, so their last sequence number is all that is left to check."""
        for kind, body in items:
            check_payload(kind, body)
        if timestamp is not None:
            check_timestamp(timestamp)
        author = keypair.public_key
        group = self.group
        seq, prev, prev_ts = self._tip(author)
        last = seq + len(items)
        if last > MAX_U63:
            raise ValidationError(
                ErrorCode.OUT_OF_RANGE,
                f"header.seq: expected an integer in [1, {MAX_U63}], found {last}",
                expected=(1, MAX_U63),
                found=last,
            )
        ts = max(now_ms() if timestamp is None else timestamp, prev_ts)
        links = self._links(author)
        kind, body = items[0]
        seq += 1
        header = make_header(
            group=group,
            author=author,
            seq=seq,
            prev=prev,
            links=links,
            timestamp=ts,
            kind=kind,
            body=body,
        )
        hb, eid = encode_checked(header, body, group)
        out = [(header, hb, body, eid)]
        # The rest of the run: each names the one before and links to nothing else
        # (the same fields make_header would give, without its generality).
        blake, version = crypto.blake2b_256, header.version
        for kind, body in items[1:]:
            seq += 1
            header = Header(version, group, author, seq, eid, (), ts, kind, blake(body), len(body))
            hb = encode_header(header)
            eid = blake(hb)
            out.append((header, hb, body, eid))
        return out

    def append(
        self, keypair: KeyPair, kind: int, body: bytes = b"", *, timestamp: int | None = None
    ) -> Entry:
        """Create, sign and durably store one entry; returns it."""
        return self.append_many(keypair, [(kind, body)], timestamp=timestamp)[0]

    def append_many(
        self,
        keypair: KeyPair,
        items: Sequence[tuple[int, bytes]],
        *,
        timestamp: int | None = None,
    ) -> list[Entry]:
        """Create a contiguous run of entries by one author and store them in one
        transaction. ``items`` are ``(kind, body)`` pairs."""
        if not items:
            return []
        self.wait_durable()
        # Written here, not by the store's writer process: signing already keeps both
        # cores busy, and measured side by side the writer process made appending no
        # faster (it competes with the signature threads for the same two cores).
        entries = self._entries(keypair, self._prepare(keypair, items, timestamp))
        try:
            self.store.put_entries(self.group, entries)
        except BaseException:
            self._forget_caches()
            raise
        # The run is ours and was built on our stored tip, so it is valid by
        # construction; the tail signature is checked once more as a guard, which by
        # chain authentication covers the whole run.
        if not verify_signature(entries[-1]):  # pragma: no cover - a broken signer
            raise ValidationError(ErrorCode.BAD_SIGNATURE, "freshly signed entry does not verify")
        self._ingestor.note_accepted(entries)
        self._note_run(entries)
        return entries

    def _entries(
        self, keypair: KeyPair, prepared: Sequence[tuple[Header, bytes, bytes, bytes]]
    ) -> list[Entry]:
        """Sign prepared (and so already checked) entries."""
        ids = [p[3] for p in prepared]
        if self._signatures is not None:
            sigs = self._signatures.sign(keypair, ids)
        else:
            sigs = [keypair.sign(NS_ENTRY, i) for i in ids]
        return [
            Entry(eid, header, hb, sig, body)
            for (header, hb, body, eid), sig in zip(prepared, sigs, strict=True)
        ]

    def _writer(self) -> ProcessWriter | None:
        """The store's writer process if it has one running (``SqliteStore.
        running_writer``: one not running yet is started in the background, and this
        write is made here), so that no caller waits for a process to start."""
        get: Callable[[], ProcessWriter | None] | None = getattr(self.store, "running_writer", None)
        return get() if get is not None else None

    # -- ingesting

    def ingest(self, entries: Iterable[Entry], *, verify_each: bool = False) -> IngestResult:
        """Validate entries from elsewhere and store the valid ones.

        See :meth:`p2pcomm.core.log.Ingestor.ingest` for ``verify_each``. Bodies that
        arrive for stored entries are kept unless they were dropped on purpose. A
        verifying signature that arrives for a stored entry whose stored signature does
        not verify takes its place (spec 03 A1), and a fork proof made again from a
        shorter run replaces the stored proof of its fork id (F1c).

        Everything accepted is durable when this returns. ``entries`` is consumed in
        steps of :data:`INGEST_STEP`, one transaction each, so a long iterable (a
        generator decoding a bundle, say) needs memory for one step only. With a store
        that has a writer process, each step is validated while the previous one is
        written. If this raises, the steps before the failing one are stored.
        """
        source = iter(entries)
        step = list(itertools.islice(source, INGEST_STEP))
        # A small call is written here and now; a large one overlaps with the writer.
        offload = len(step) >= OFFLOAD_MIN
        total = self._ingest_step(step, verify_each, offload)
        while len(step) == INGEST_STEP:
            step = list(itertools.islice(source, INGEST_STEP))
            result = self._ingest_step(step, verify_each, offload)
            total.accepted += result.accepted
            total.rejected += result.rejected
            total.forks += result.forks
            total.bodies += result.bodies
            total.signatures += result.signatures
            total.duplicates += result.duplicates
            total.pending = result.pending
        self.wait_durable()
        return total

    def ingest_nowait(
        self,
        entries: Iterable[Entry],
        *,
        verify_each: bool = False,
        offload: bool | None = None,
        owner: bytes = b"",
    ) -> IngestResult:
        """Like :meth:`ingest` (one transaction), but with a store that has a writer
        process, return once the entries are validated: they are durable only after
        :meth:`wait_durable` (or the next call of any method) returns.

        Validation of the next batch thus overlaps with the write of this one. Writes
        happen in call order. If a write fails, the entries validated since are not
        stored either: the call that notices raises :class:`StoreError`, and those
        entries may simply be offered again.

        A batch under :data:`OFFLOAD_MIN` entries (a live push, a gossiped entry) is
        written here and now, as :meth:`ingest` does: handing it to the writer process
        would cost more than the write (and, the first time, the process's start).
        ``offload`` True or False decides instead of the batch's size. ``owner`` (a
        peer's id) is charged for the entries left pending (:meth:`discard_owner`).
        """
        batch = entries if isinstance(entries, list) else list(entries)
        if offload is None:
            offload = len(batch) >= OFFLOAD_MIN
        return self._ingest_step(batch, verify_each, offload, owner)

    def _ingest_step(
        self, entries: Iterable[Entry], verify_each: bool, offload: bool, owner: bytes = b""
    ) -> IngestResult:
        result = self._ingestor.ingest(entries, verify_each=verify_each, owner=owner)
        self.wait_durable()
        if result.accepted or result.forks or result.bodies or result.signatures:
            writer = self._writer() if offload else None
            try:
                if writer is None:
                    self._write_result(result)
                else:
                    ticket = writer.put(
                        self.group,
                        [entry_row(e) for e in result.accepted],
                        bodies=result.bodies,
                        signatures=result.signatures,
                        # Each proof in place of any stored with its fork id (03 F1c).
                        replaced_forks=[fork_row(p) for p in result.forks],
                    )
                    self._inflight = (result, writer, ticket)
                    self._view.set_inflight(result.accepted)
                    return result
            except BaseException:
                self._forget_caches()
                raise
            self._note_stored(result.accepted)
        return result

    @property
    def inflight(self) -> IngestResult | None:
        """The result whose store write is still running, if any."""
        return self._inflight[0] if self._inflight is not None else None

    def forget_heads(self) -> None:
        """Another handle or process stored entries of this group: read the heads and
        tips from the store again before the next append links to them."""
        self._heads = None
        self._tips.clear()

    def _forget_caches(self) -> None:
        """After a failed store write: what this object remembers of the store may be
        wrong, so ask the store again next time."""
        self._ingestor.forget_overlay()
        self._heads = None
        self._tips.clear()

    def wait_durable(self) -> None:
        """Wait until everything ingested so far is stored (raises its StoreError)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        result, writer, ticket = inflight
        try:
            writer.wait(ticket)
        except BaseException:
            self._forget_caches()
            raise
        finally:
            self._view.set_inflight(())
        self._note_stored(result.accepted)

    def wait_written(self) -> None:
        """Block until the store write in flight, if any, is answered, without taking
        its outcome (that is :meth:`wait_durable`'s, which then returns at once). Safe
        from a thread that does not hold what guards this log: a node waits here
        before it takes its lock, so that a peer's large write does not hold the lock
        up (and with it the node's own appends and other peers' pushes)."""
        inflight = self._inflight
        if inflight is not None:
            inflight[1].wait_answered(inflight[2])

    def close(self) -> None:
        """Finish pending writes (the store stays open)."""
        self.wait_durable()

    def _write_result(self, result: IngestResult) -> None:
        """Store what an ingest step decided: the accepted entries and new fork proofs
        in one transaction, then the verifying signatures that replace stored ones
        (03 A1), the proofs made again that replace stored ones with the same fork id
        (03 F1c), and the bodies of stored entries."""
        if result.accepted or result.forks:
            self.store.put_entries(self.group, result.accepted, result.forks)
        if result.forks:
            # put_entries kept any proof stored earlier under a fork id; the ingestor's
            # proof is the one for the entries held now.
            self.store.replace_fork_proofs(self.group, result.forks)
        if result.signatures:
            self.store.replace_signatures(self.group, result.signatures)
        for eid, body in result.bodies:
            self.store.put_body(self.group, eid, body)

    def store_fork_proofs(self, proofs: Sequence[ForkProof]) -> None:
        """Store verified fork proofs (received on their own) after pending writes; a
        proof of a fork id already stored is skipped."""
        self.wait_durable()
        self.store.put_entries(self.group, [], proofs)

    def ingest_encoded(self, blobs: Iterable[bytes], *, verify_each: bool = False) -> IngestResult:
        """Like :meth:`ingest` for encoded entries, decoded as they are consumed (so a
        bundle of any size streams through); undecodable ones are rejected."""
        bad: list[Rejection] = []

        def decoded() -> Iterator[Entry]:
            for blob in blobs:
                try:
                    yield decode_entry(blob)
                except DecodeError as exc:
                    err = ValidationError(
                        exc.code, exc.message, expected=exc.expected, found=exc.found
                    )
                    bad.append(Rejection(crypto.blake2b_256(blob), err))

        result = self.ingest(decoded(), verify_each=verify_each)
        result.rejected[:0] = bad
        return result

    # -- bodies

    def drop_body(self, entry_id: bytes) -> bool:
        """Delete an entry's body for good (the header stays and still verifies)."""
        self.wait_durable()
        return self.store.drop_body(self.group, entry_id)

    def body_state(self, entry_id: bytes) -> BodyState | None:
        self.wait_durable()
        return self.store.body_state(self.group, entry_id)

    # -- reading

    def get(self, entry_id: bytes) -> Entry | None:
        self.wait_durable()
        return self.store.get_entry(self.group, entry_id)

    def __len__(self) -> int:
        self.wait_durable()
        return self.store.count(self.group)

    def entries(self, *, after: int = 0, with_bodies: bool = True) -> Iterator[tuple[int, Entry]]:
        self.wait_durable()
        return self.store.iter_entries(self.group, after=after, with_bodies=with_bodies)

    def heads(self) -> list[bytes]:
        self.wait_durable()
        return sorted(self._current_heads())

    def fork_proofs(self) -> list[ForkProof]:
        self.wait_durable()
        return self.store.fork_proofs(self.group)

    @property
    def pending_count(self) -> int:
        return self._ingestor.pending_count

    def unauthenticated(self, ids: Iterable[bytes]) -> list[bytes]:
        """Those of ``ids`` waiting because no valid signature covers them yet."""
        return self._ingestor.unauthenticated(ids)

    def pending_share_full(self, owner: bytes) -> bool:
        """Whether ``owner``'s entries fill its share of the pending set (03 Q4)."""
        return self._ingestor.share_full(owner)

    def discard_owner(self, owner: bytes) -> int:
        """Forget the pending entries ``owner``'s ingests left (see
        :meth:`p2pcomm.core.log.Ingestor.discard_owner`)."""
        return self._ingestor.discard_owner(owner)

    def discard_unauthenticated(self, ids: Iterable[bytes]) -> None:
        self._ingestor.discard(ids)

    def missing_dependencies(self) -> list[bytes]:
        """Ids that pending entries wait for (to ask a peer for)."""
        return self._ingestor.missing_dependencies()

    # -- checking

    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Re-validate every stored entry from scratch, as a new replica would: decode
        (each entry's wire form, whatever the store), rules, signatures (every one),
        chain, links and body hashes."""
        from .store.memory import MemoryStore

        self.wait_durable()
        report = VerifyReport()
        scratch = MemoryStore()
        checker = Ingestor(self.group, _View(scratch, self.group), max_pending=10**9)
        batch: list[Entry] = []

        def flush() -> None:
            result = checker.ingest(batch, verify_each=True)
            scratch.put_entries(self.group, [e.without_body() for e in result.accepted])
            for r in result.rejected:
                report.problems.append(f"entry {r.entry_id.hex()[:16]}: {r.error}")
            batch.clear()

        try:
            for _, stored in self.entries():
                report.entries += 1
                try:
                    e = decode_entry(encode_entry(stored))
                except (DecodeError, TypeError, ValueError) as exc:
                    report.problems.append(f"entry {stored.id.hex()[:16]}: {exc}")
                    continue
                if e.id != stored.id:
                    report.problems.append(
                        f"entry {stored.id.hex()[:16]}: stored under another id than its"
                        f" header's {e.id.hex()[:16]}"
                    )
                    continue
                state = (
                    self.store.body_state(self.group, e.id) if e.body is None else BodyState.PRESENT
                )
                if state is BodyState.PRESENT:
                    report.bodies_checked += 1
                elif state is BodyState.DROPPED:
                    report.bodies_dropped += 1
                batch.append(e)
                if len(batch) >= 1000:
                    flush()
                    if progress:
                        progress(report.entries)
            flush()
        except StoreError as exc:
            report.problems.append(str(exc))
        if checker.pending_count:
            report.problems.append(
                f"{checker.pending_count} stored entries lack a valid dependency"
            )
        return report
