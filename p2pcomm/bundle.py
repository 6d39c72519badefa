"""Sneakernet bundles: a group's log written to a file and read back elsewhere.

::

    stats = export_bundle(store, group, "garden-club.p2pc")     # on one device
    report = import_bundle(other_store, "garden-club.p2pc")     # on another
    print(report.accepted, report.rejected, report.complete)

The format is spec/11-bundle.md; :mod:`p2pcomm.core.bundle` is its sans-IO codec. This
module moves the bytes between a store and a file.

* **Export** streams the group's entries from the store in store order (causal, so the
  reader authenticates whole runs with one signature each), then its fork proofs, then
  the end record. Given a path it writes a temporary file beside it and renames it into
  place once complete and synced, so an interrupted export never leaves a half file
  under the final name.
* **Import** trusts nothing in the file. Entries go through the group's
  :class:`~p2pcomm.group.GroupLog` ingest exactly as if a peer had sent them (decoding,
  the rules of 03-log, signatures, chain, links), in steps of
  :data:`~p2pcomm.group.INGEST_STEP`, so memory stays bounded whatever the file's size;
  only what verifies is stored. Fork proofs are verified (FP1 to FP7) before they are
  stored. A damaged or truncated file imports whatever verifies and says what did not,
  in a :class:`BundleImport`. Only a file that is not a bundle at all (wrong magic,
  unknown version, empty, cut inside its header) raises :class:`~p2pcomm.errors.BundleError`,
  and then nothing was stored.

An import uses its own ``GroupLog``. Another ``GroupLog`` of the same group open in this
process at the same time does not see the imported entries in its cached heads; open it
again after the import.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeAlias

from .core import bundle as codec
from .core.log import (
    Entry,
    ForkProof,
    Header,
    IngestResult,
    decode_entry,
    decode_fork_proof,
    encode_entry,
    encode_fork_proof,
    verify_fork_proof,
)
from .errors import (
    BundleError,
    DecodeError,
    ErrorCode,
    NotFoundError,
    P2PCommError,
    ValidationError,
)
from .group import INGEST_STEP, OFFLOAD_MIN, GroupLog
from .store.base import Store

__all__ = [
    "BundleImport",
    "BundleStats",
    "Progress",
    "RejectedRecord",
    "export_bundle",
    "import_bundle",
]

#: ``progress(done, total)``: export counts entries written of the group's entry count;
#: import counts bytes read of the file's size (``None`` when it cannot be known).
Progress: TypeAlias = Callable[[int, int | None], None]
PathOrFile: TypeAlias = str | os.PathLike[str] | BinaryIO

#: Bytes read from the file at a time on import.
READ_SIZE = 256 * 1024
#: Entries encoded per write on export.
_WRITE_BATCH = 1000
#: Verified fork proofs held before they are stored.
_PROOF_BATCH = 256
#: Verified fork proofs held while the group's genesis is not yet stored (a file may put
#: them first); beyond this they are refused.
_MAX_EARLY_PROOFS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleStats:
    """What :func:`export_bundle` wrote."""

    group: bytes
    entries: int
    fork_proofs: int
    bytes: int
    """Size of the bundle."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRecord:
    """A record of the file whose content was not stored, and why."""

    index: int
    """Position of the record in the file, from 0 (entries and fork proofs together)."""
    entry_id: bytes | None
    """The entry's id (the fork proof's id for a fork proof); None if it did not decode."""
    error: P2PCommError
    """A :class:`~p2pcomm.errors.DecodeError` or :class:`~p2pcomm.errors.ValidationError`
    with the rule's code (spec/03-log.md 3.20)."""
    pending: bool = False
    """True when the entry was not found invalid but could not be decided from what the
    store and the file hold: its signature does not verify and nothing in the file vouches
    for it (``bad-signature``), or it depends on an entry that is neither stored nor valid
    in the file (``bad-previous``/``bad-links``). It may become valid once that arrives
    (by sync, say); it was not stored."""
    fork_proof: bool = False
    """True for a fork proof record."""


@dataclass(slots=True, kw_only=True)
class BundleImport:
    """What :func:`import_bundle` did. Everything counted as accepted is stored."""

    group: bytes
    """The group named by the file's header."""
    entries: int = 0
    """Entry records read from the file."""
    fork_proofs: int = 0
    """Fork proof records read from the file."""
    accepted: int = 0
    """Entries that verified and were newly stored."""
    duplicates: int = 0
    """Entry records of entries already stored (before the import, or earlier in the file)."""
    rejected: list[RejectedRecord] = field(default_factory=list)
    """Records whose content was not stored, with the reason, in the order found."""
    fork_proofs_accepted: int = 0
    """Fork proofs that verified and were newly stored."""
    fork_proof_duplicates: int = 0
    """Fork proofs that verified and were already stored."""
    forks_found: int = 0
    """Forks the import itself discovered among the entries (their proofs are stored)."""
    truncated: bool = False
    """The file ends before its end record."""
    error: BundleError | None = None
    """The framing error that stopped reading early (a truncation included), if any."""
    complete: bool = False
    """The file was read to its end record, its counts matched, and every record in it
    was stored or already held: nothing was rejected or left pending."""


# --------------------------------------------------------------------------- export


@contextmanager
def _output(target: PathOrFile) -> Iterator[BinaryIO]:
    if not isinstance(target, str | os.PathLike):
        yield target
        return
    path = Path(target)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename durable (POSIX; not possible everywhere)
        dir_fd = os.open(path.parent or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def export_bundle(
    store: Store,
    group: bytes,
    path_or_file: PathOrFile,
    *,
    progress: Progress | None = None,
) -> BundleStats:
    """Write ``group``'s entries (with the bodies held) and fork proofs as a bundle.

    Entries are read from the store a page at a time and written in store order; the
    whole log is never in memory. ``path_or_file`` is a path (written to a temporary file
    beside it, then renamed into place) or a binary file open for writing (written from
    its current position and left open). Raises :class:`NotFoundError` if the store
    holds no entry of ``group``, before anything is written.
    """
    total = store.count(group)
    if total == 0:
        raise NotFoundError(
            ErrorCode.NOT_FOUND, f"no entries of group {group.hex()[:16]} in the store"
        )
    writer = codec.BundleWriter(group)
    size = 0
    with _output(path_or_file) as out:
        chunk = [writer.start()]
        entry_record = writer.entry
        for _, e in store.iter_entries(group):
            chunk.append(entry_record(encode_entry(e)))
            if len(chunk) >= _WRITE_BATCH:
                data = b"".join(chunk)
                out.write(data)
                size += len(data)
                chunk = []
                if progress is not None:
                    progress(writer.entries, total)
        for proof in store.fork_proofs(group):
            chunk.append(writer.fork_proof(encode_fork_proof(proof)))
        chunk.append(writer.end())
        data = b"".join(chunk)
        out.write(data)
        size += len(data)
    if progress is not None:
        progress(writer.entries, max(total, writer.entries))
    return BundleStats(
        group=group, entries=writer.entries, fork_proofs=writer.fork_proofs, bytes=size
    )


# --------------------------------------------------------------------------- import


@contextmanager
def _input(source: PathOrFile) -> Iterator[tuple[BinaryIO, int | None]]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size
        return
    try:
        total: int | None = os.fstat(source.fileno()).st_size - source.tell()
    except (OSError, AttributeError, ValueError):
        total = None
    yield source, total


class _Importer:
    """Feeds entry records to a GroupLog in steps and keeps the accounts.

    Bookkeeping per step: entries accepted or rejected are known from the step's
    :class:`IngestResult`. The others are duplicates or pending; which one is decided
    once the step before is durable (a lookup in the store), so that only pending
    entries, at most the ingestor's ``max_pending``, are remembered across steps.
    """

    def __init__(self, store: Store, group: bytes, report: BundleImport) -> None:
        self.store = store
        self.group = group
        self.report = report
        self.log = GroupLog(store, group)
        self.step: list[Entry] = []
        self.step_index: list[int] = []
        self.offload = False
        #: Undecided entries of the last step: id -> (record index, header).
        self.leftover: dict[bytes, tuple[int, Header]] = {}
        #: Entries still pending after their step: id -> (record index, header).
        self.pending: dict[bytes, tuple[int, Header]] = {}
        self.group_known = store.count(group) > 0
        self.proofs_held = (
            {p.key() for p in store.fork_proofs(group)} if self.group_known else set()
        )
        self.proofs: dict[bytes, tuple[int, ForkProof]] = {}

    # -- entries

    def entry(self, index: int, blob: bytes) -> None:
        self.report.entries += 1
        try:
            e = decode_entry(blob)
        except DecodeError as exc:
            self.report.rejected.append(RejectedRecord(index=index, entry_id=None, error=exc))
            return
        self.step.append(e)
        self.step_index.append(index)
        if len(self.step) >= INGEST_STEP:
            self.flush()

    def flush(self) -> None:
        step, indexes = self.step, self.step_index
        self.step, self.step_index = [], []
        if not step:
            return
        log = self.log
        if len(step) >= OFFLOAD_MIN:
            self.offload = True
        # With offload, the step is validated here while the writer process still
        # commits the step before; ingest_nowait waits for that commit before handing
        # over this one.
        result = log.ingest_nowait(step) if self.offload else log.ingest(step)
        self._account(result, step, indexes)

    def _account(self, result: IngestResult, step: list[Entry], indexes: list[int]) -> None:
        report = self.report
        report.accepted += len(result.accepted)
        report.forks_found += len(result.forks)
        if result.accepted:
            self.group_known = True
        here = {e.id: (i, e.header) for e, i in zip(step, indexes, strict=True)}
        decided: set[bytes] = set()
        for e in result.accepted:
            decided.add(e.id)
            self.pending.pop(e.id, None)
            self.leftover.pop(e.id, None)
        for r in result.rejected:
            eid = r.entry_id
            decided.add(eid)
            found = here.get(eid) or self.leftover.pop(eid, None) or self.pending.pop(eid, None)
            index = found[0] if found is not None else -1
            report.rejected.append(
                RejectedRecord(
                    index=index,
                    entry_id=eid,
                    error=r.error,
                    pending=r.error.code is ErrorCode.PENDING_FULL,
                )
            )
        # The step before this one is durable now: its undecided entries are either
        # stored (duplicates) or pending.
        self._classify()
        self.leftover = {eid: v for eid, v in here.items() if eid not in decided}
        # Repeated copies within the step count once per extra record.
        report.duplicates += len(step) - len(here)

    def _classify(self) -> None:
        meta = self.store.entry_meta
        group = self.group
        for eid, v in self.leftover.items():
            if meta(group, eid) is not None:
                self.report.duplicates += 1
            elif eid in self.pending:
                self.report.duplicates += 1  # another copy of a pending entry
            else:
                self.pending[eid] = v
        self.leftover = {}

    def finish(self) -> None:
        self.flush()
        self.log.wait_durable()
        self._classify()
        store, group, report = self.store, self.group, self.report
        unauth = set(self.log.unauthenticated(self.pending))
        for eid, (index, h) in sorted(self.pending.items(), key=lambda kv: kv[1][0]):
            err: ValidationError
            if eid in unauth:
                err = ValidationError(
                    ErrorCode.BAD_SIGNATURE,
                    "signature does not verify and no entry in the file vouches for it",
                )
            elif h.prev is not None and store.entry_meta(group, h.prev) is None:
                err = ValidationError(
                    ErrorCode.BAD_PREVIOUS,
                    f"previous entry {h.prev.hex()[:16]} is neither stored nor valid in the file",
                    found=h.prev.hex(),
                )
            else:
                missing = next((x for x in h.links if store.entry_meta(group, x) is None), None)
                err = ValidationError(
                    ErrorCode.BAD_LINKS,
                    f"linked entry {missing.hex()[:16] if missing else '?'} is neither "
                    "stored nor valid in the file",
                    found=missing.hex() if missing else None,
                )
            report.rejected.append(
                RejectedRecord(index=index, entry_id=eid, error=err, pending=True)
            )
        self.pending = {}
        self.store_proofs(final=True)

    # -- fork proofs

    def fork_proof(self, index: int, blob: bytes) -> None:
        report = self.report
        report.fork_proofs += 1
        try:
            proof = decode_fork_proof(blob)
            verify_fork_proof(proof, self.group)
        except (DecodeError, ValidationError) as exc:
            report.rejected.append(
                RejectedRecord(index=index, entry_id=None, error=exc, fork_proof=True)
            )
            return
        key = proof.key()
        if key in self.proofs_held or key in self.proofs:
            report.fork_proof_duplicates += 1
            return
        if not self.group_known and len(self.proofs) >= _MAX_EARLY_PROOFS:
            err = ValidationError(
                ErrorCode.BAD_FORK_PROOF,
                f"more than {_MAX_EARLY_PROOFS} fork proofs before the group's genesis",
            )
            report.rejected.append(
                RejectedRecord(index=index, entry_id=key, error=err, fork_proof=True)
            )
            return
        self.proofs[key] = (index, proof)
        if self.group_known and len(self.proofs) >= _PROOF_BATCH:
            self.store_proofs()

    def store_proofs(self, *, final: bool = False) -> None:
        if not self.proofs:
            return
        if not self.group_known:
            if not final:
                return
            for key, (index, _) in self.proofs.items():
                err = ValidationError(
                    ErrorCode.WRONG_GROUP,
                    "the group's genesis is neither stored nor valid in the file",
                )
                self.report.rejected.append(
                    RejectedRecord(index=index, entry_id=key, error=err, fork_proof=True)
                )
            self.proofs = {}
            return
        self.flush()
        proofs = [proof for _, proof in self.proofs.values()]
        self.log.store_fork_proofs(proofs)
        self.report.fork_proofs_accepted += len(proofs)
        self.proofs_held.update(self.proofs)
        self.proofs = {}


def import_bundle(
    store: Store,
    path_or_file: PathOrFile,
    *,
    progress: Progress | None = None,
) -> BundleImport:
    """Read a bundle into ``store``, verifying every entry and fork proof in it.

    ``path_or_file`` is a path or a binary file open for reading (read from its current
    position to its end, and left open). The file is read :data:`READ_SIZE` bytes at a
    time and its entries are validated and stored in steps, so memory does not grow
    with the file. The group is created in the store if the file carries its genesis
    (verified like every other entry).

    Raises :class:`BundleError` if the file is not a bundle (empty, wrong magic,
    unsupported version, cut inside the header): nothing was stored then. Any damage
    after the header is reported in the result instead (``error``, ``truncated``,
    ``rejected``), with everything that verified stored. Store failures raise
    :class:`~p2pcomm.errors.StoreError`; what was reported stored before is stored.
    """
    with _input(path_or_file) as (f, total):
        reader = codec.BundleReader()
        read = 0

        def feed() -> bool:
            nonlocal read
            data = f.read(READ_SIZE)
            read += len(data)
            reader.receive_data(data)
            if progress is not None:
                progress(read, total)
            return bool(data)

        # The header: a file that does not start with one is not a bundle (raises).
        feed()
        event = reader.next_event()
        while event is codec.NEED_DATA:
            feed()
            event = reader.next_event()
        assert isinstance(event, codec.BundleHeader)
        report = BundleImport(group=event.group)
        importer = _Importer(store, event.group, report)

        # The records: damage from here on is reported, not raised.
        on_entry, on_proof = importer.entry, importer.fork_proof
        EntryRecord, ForkProofRecord = codec.EntryRecord, codec.ForkProofRecord
        need = codec.NEED_DATA
        more = True
        try:
            while True:
                event = reader.next_event()
                if event is need:
                    if not more:  # pragma: no cover - the reader raises at the end of file
                        break
                    more = feed()
                elif isinstance(event, EntryRecord):
                    on_entry(event.index, event.blob)
                elif isinstance(event, ForkProofRecord):
                    on_proof(event.index, event.blob)
                else:
                    break  # BundleEnd: the file is whole
        except BundleError as exc:
            report.error = exc
            report.truncated = reader.truncated
        importer.finish()
        report.complete = report.error is None and not report.rejected
        return report
