"""Bundle files: a group's log in one file, to carry by hand (spec/11-bundle.md).

Theory of operation
===================

A bundle is a header followed by framed records and an end record::

    header = MAGIC (12 bytes) || u16 version || group (32 bytes)             46 bytes
    record = u8 type || u32 length || payload (length bytes)
    type   = 0x01 entry        payload: an encoded entry (03-log 3.6), length <= 50352
             0x02 fork proof   payload: an encoded fork proof (03-log 3.16), length <= 65536
             0x03 end          payload: u64 entries || u64 fork proofs, length = 16

All integers are big-endian. :class:`BundleWriter` produces these bytes; the caller
writes them wherever it likes. :class:`BundleReader` parses them h11-style:
``receive_data`` buffers bytes (``b""`` is the end of the file), ``next_event`` returns
one :class:`BundleHeader`, :class:`EntryRecord`, :class:`ForkProofRecord` or
:class:`BundleEnd`, or ``NEED_DATA``.

Rules and invariants:

* The reader checks *framing* only: magic, version, record types, declared lengths
  against the limits (before waiting for the payload), the end record's counts, and that
  nothing follows the end record. Payloads are handed out as bytes, undecoded: whether
  they decode, and whether what they hold verifies, is for the consumer to decide per
  record (a bad payload never stops reading; spec/11 R6).
* A framing error is a :class:`~p2pcomm.errors.BundleError` (code ``BAD_BUNDLE``) and is
  final: the reader moves to ``ERROR`` and raises the same error again if asked for
  more. Nothing after damaged framing can be located, so nothing after it is reported.
* The end of the file anywhere but right after the end record is an error too, and
  :attr:`BundleReader.truncated` then says that the file was cut short, so a truncated
  file is never taken for a whole one.
* Bounded buffering: to produce its next event the reader never needs more than
  :data:`MAX_RECORD_SIZE` + 5 bytes. A caller that feeds at most ``n`` bytes each time
  ``NEED_DATA`` comes back holds at most ``n + MAX_RECORD_SIZE + 5`` bytes here.
* :class:`BundleEnd` is reported only once the end of the file follows the end record:
  it means "the file is whole".
* Sans-IO: no files, no clocks. Standard library and :mod:`p2pcomm.core` only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import BundleError, ErrorCode, LocalProtocolError
from .handshake import NEED_DATA, Pending
from .log import ENTRY_LIMITS

__all__ = [
    "BUNDLE_VERSION",
    "END_RECORD_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_ENTRY_RECORD",
    "MAX_FORK_PROOF_RECORD",
    "MAX_RECORD_SIZE",
    "NEED_DATA",
    "RECORD_PREFIX_SIZE",
    "BundleEnd",
    "BundleEvent",
    "BundleHeader",
    "BundleReader",
    "BundleWriter",
    "EntryRecord",
    "ForkProofRecord",
    "ReaderState",
    "RecordType",
    "encode_bundle_header",
    "encode_record",
]

#: The first 12 bytes of every bundle: a non-ASCII byte, the name, CR LF, Ctrl-Z, LF (as
#: PNG does, so that 7-bit transfers and line-ending conversions break it visibly).
MAGIC: Final = b"\x89p2pcomm\r\n\x1a\n"
#: The format version this module reads and writes.
BUNDLE_VERSION: Final = 1
#: MAGIC, u16 version, 32-byte group id.
HEADER_SIZE: Final = len(MAGIC) + 2 + 32
#: u8 record type and u32 payload length.
RECORD_PREFIX_SIZE: Final = 5
#: Largest entry payload: the entry decoding limit of spec/03-log.md (ED1).
MAX_ENTRY_RECORD: Final = ENTRY_LIMITS.max_size
#: Largest fork proof payload: the fork proof decoding limit of spec/03-log.md (FP1).
MAX_FORK_PROOF_RECORD: Final = 64 * 1024
#: The end record's payload: two u64 counts.
END_RECORD_SIZE: Final = 16
#: The largest payload of any record.
MAX_RECORD_SIZE: Final = max(MAX_ENTRY_RECORD, MAX_FORK_PROOF_RECORD)

_PREFIX = struct.Struct(">BI")
_END = struct.Struct(">QQ")
_VERSION = struct.Struct(">H")


class RecordType(enum.IntEnum):
    """The first byte of a record."""

    ENTRY = 0x01
    FORK_PROOF = 0x02
    END = 0x03


_LIMITS: Final = {
    RecordType.ENTRY: MAX_ENTRY_RECORD,
    RecordType.FORK_PROOF: MAX_FORK_PROOF_RECORD,
    RecordType.END: END_RECORD_SIZE,
}


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleHeader:
    """The file header was read: a bundle of this version for this group."""

    version: int
    """The format version (always :data:`BUNDLE_VERSION` when reported)."""
    group: bytes
    """The 32-byte id of the group the file claims to hold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryRecord:
    """An entry record. ``blob`` is its payload, not decoded and not verified."""

    blob: bytes
    """What should be an encoded entry (spec/03-log.md 3.6)."""
    index: int
    """Position of the record in the file, from 0 (end record excluded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkProofRecord:
    """A fork proof record. ``blob`` is its payload, not decoded and not verified."""

    blob: bytes
    """What should be an encoded fork proof (spec/03-log.md 3.16)."""
    index: int
    """Position of the record in the file, from 0 (end record excluded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleEnd:
    """The end record was read, its counts match the records, and the file ends there."""

    entries: int
    """Number of entry records in the file."""
    fork_proofs: int
    """Number of fork proof records in the file."""


BundleEvent: TypeAlias = BundleHeader | EntryRecord | ForkProofRecord | BundleEnd | Pending


# --------------------------------------------------------------------------- writing


def encode_bundle_header(group: bytes, version: int = BUNDLE_VERSION) -> bytes:
    """``MAGIC || u16 version || group``."""
    if len(group) != 32:
        raise LocalProtocolError(
            ErrorCode.WRONG_LENGTH,
            f"a group id has 32 bytes, not {len(group)}",
            expected=32,
            found=len(group),
        )
    return MAGIC + _VERSION.pack(version) + group


def encode_record(record_type: RecordType, payload: bytes) -> bytes:
    """``u8 type || u32 len(payload) || payload``; refuses payloads above the type's limit."""
    limit = _LIMITS[record_type]
    if len(payload) > limit:
        raise LocalProtocolError(
            ErrorCode.TOO_LARGE,
            f"{record_type.name.lower()} record of {len(payload)} bytes exceeds {limit}",
            expected=f"<= {limit}",
            found=len(payload),
        )
    return _PREFIX.pack(record_type, len(payload)) + payload


class BundleWriter:
    """Produces the bytes of one bundle, and counts what went into it.

    ``start()`` first, then any number of ``entry()`` and ``fork_proof()`` in any order,
    then ``end()``. Each returns the bytes to write.
    """

    __slots__ = ("_state", "entries", "fork_proofs", "group")

    def __init__(self, group: bytes) -> None:
        self.group = group
        #: Entry records produced so far.
        self.entries = 0
        #: Fork proof records produced so far.
        self.fork_proofs = 0
        self._state = "new"

    def _expect(self, state: str, method: str) -> None:
        if self._state != state:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"{method}() is not allowed when the writer is {self._state!r}",
                expected=state,
                found=self._state,
            )

    def start(self) -> bytes:
        """The file header."""
        self._expect("new", "start")
        header = encode_bundle_header(self.group)
        self._state = "records"
        return header

    def entry(self, encoded: bytes) -> bytes:
        """One entry record (``encoded`` is :func:`~p2pcomm.core.log.encode_entry`'s)."""
        self._expect("records", "entry")
        record = encode_record(RecordType.ENTRY, encoded)
        self.entries += 1
        return record

    def fork_proof(self, encoded: bytes) -> bytes:
        """One fork proof record (``encoded`` is ``encode_fork_proof``'s)."""
        self._expect("records", "fork_proof")
        record = encode_record(RecordType.FORK_PROOF, encoded)
        self.fork_proofs += 1
        return record

    def end(self) -> bytes:
        """The end record, carrying the counts; nothing may follow it."""
        self._expect("records", "end")
        self._state = "ended"
        return encode_record(RecordType.END, _END.pack(self.entries, self.fork_proofs))


# --------------------------------------------------------------------------- reading


class ReaderState(enum.Enum):
    """Where a :class:`BundleReader` is in the file."""

    #: Expecting the 46-byte file header.
    HEADER = "header"
    #: Expecting a record (entry, fork proof or end).
    RECORDS = "records"
    #: The end record was read; only the end of the file may follow.
    ENDED = "ended"
    #: :class:`BundleEnd` was reported; there is nothing more.
    DONE = "done"
    #: A framing error was raised; it is raised again on every call.
    ERROR = "error"


class BundleReader:
    """Parses a bundle from bytes fed in any pieces (sans-IO, h11 style)."""

    __slots__ = (
        "_buf",
        "_entries",
        "_eof",
        "_error",
        "_fork_proofs",
        "_offset",
        "_pos",
        "_records",
        "_state",
        "_truncated",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already consumed
        self._offset = 0  # bytes of the file consumed before _buf[0]
        self._eof = False
        self._state = ReaderState.HEADER
        self._error: BundleError | None = None
        self._truncated = False
        self._records = 0
        self._entries = 0
        self._fork_proofs = 0

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def offset(self) -> int:
        """Bytes of the file consumed by the events returned so far."""
        return self._offset + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received and not consumed yet."""
        return len(self._buf) - self._pos

    @property
    def truncated(self) -> bool:
        """True once the file was found to end before its end record."""
        return self._truncated

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes of the file; ``b""`` marks the end of the file."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"receive_data() got {len(data)} bytes after the end of the file",
                found=len(data),
            )
        if self._pos:
            del self._buf[: self._pos]
            self._offset += self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> BundleEvent:
        """The next event, or ``NEED_DATA``. Raises :class:`BundleError` on damage."""
        state = self._state
        if state is ReaderState.ERROR:
            assert self._error is not None
            raise self._error
        if state is ReaderState.DONE:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                "next_event() after the end of the bundle",
                found=state.name,
            )
        try:
            if state is ReaderState.RECORDS:
                return self._next_record()
            if state is ReaderState.HEADER:
                return self._next_header()
            return self._next_after_end()
        except BundleError as exc:
            self._state = ReaderState.ERROR
            self._error = exc
            raise

    # -- internals

    def _fail(self, message: str, *, at: int | None = None, **kw: object) -> BundleError:
        where = self.offset if at is None else at
        return BundleError(ErrorCode.BAD_BUNDLE, f"{message} (at byte {where})", **kw)

    def _cut(self, what: str) -> BundleError:
        self._truncated = True
        return self._fail(
            f"file ends {what}",
            at=self._offset + len(self._buf),
            expected="end record",
            found="end of file",
        )

    def _next_header(self) -> BundleEvent:
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        head = bytes(buf[pos : pos + len(MAGIC)])
        if not MAGIC.startswith(head):
            raise self._fail(
                "not a p2pcomm bundle: wrong magic bytes",
                expected=MAGIC.hex(),
                found=head.hex(),
            )
        if have >= len(MAGIC) + 2:
            (version,) = _VERSION.unpack_from(buf, pos + len(MAGIC))
            if version != BUNDLE_VERSION:
                raise self._fail(
                    f"bundle format version {version} is not supported",
                    expected=BUNDLE_VERSION,
                    found=version,
                )
        if have < HEADER_SIZE:
            if not self._eof:
                return NEED_DATA
            if have == 0:
                self._truncated = True
                raise self._fail("empty file: not a p2pcomm bundle", expected="bundle header")
            raise self._cut(f"inside the bundle header ({have} of {HEADER_SIZE} bytes)")
        group = bytes(buf[pos + HEADER_SIZE - 32 : pos + HEADER_SIZE])
        self._pos = pos + HEADER_SIZE
        self._state = ReaderState.RECORDS
        return BundleHeader(version=BUNDLE_VERSION, group=group)

    def _next_record(self) -> BundleEvent:
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have < RECORD_PREFIX_SIZE:
            if not self._eof:
                return NEED_DATA
            if have == 0:
                raise self._cut("without an end record")
            raise self._cut(f"inside a record prefix ({have} of {RECORD_PREFIX_SIZE} bytes)")
        rtype, length = _PREFIX.unpack_from(buf, pos)
        if rtype == RecordType.ENTRY:
            limit = MAX_ENTRY_RECORD
        elif rtype == RecordType.FORK_PROOF:
            limit = MAX_FORK_PROOF_RECORD
        elif rtype == RecordType.END:
            if length != END_RECORD_SIZE:
                raise self._fail(
                    f"end record of {length} bytes",
                    expected=END_RECORD_SIZE,
                    found=length,
                )
            limit = END_RECORD_SIZE
        else:
            raise self._fail(
                f"unknown record type 0x{rtype:02x}",
                expected="0x01, 0x02 or 0x03",
                found=rtype,
            )
        if length > limit:
            raise self._fail(
                f"{RecordType(rtype).name.lower().replace('_', ' ')} record of "
                f"{length} bytes exceeds {limit}",
                expected=f"<= {limit}",
                found=length,
            )
        end = pos + RECORD_PREFIX_SIZE + length
        if len(buf) < end:
            if not self._eof:
                return NEED_DATA
            raise self._cut(
                f"inside a record ({have - RECORD_PREFIX_SIZE} of {length} payload bytes)"
            )
        payload = bytes(buf[pos + RECORD_PREFIX_SIZE : end])
        if rtype == RecordType.ENTRY:
            self._pos = end
            index = self._records
            self._records = index + 1
            self._entries += 1
            return EntryRecord(blob=payload, index=index)
        if rtype == RecordType.FORK_PROOF:
            self._pos = end
            index = self._records
            self._records = index + 1
            self._fork_proofs += 1
            return ForkProofRecord(blob=payload, index=index)
        entries, fork_proofs = _END.unpack(payload)
        if entries != self._entries or fork_proofs != self._fork_proofs:
            raise self._fail(
                f"end record counts {entries} entries and {fork_proofs} fork proofs, "
                f"the file holds {self._entries} and {self._fork_proofs}",
                expected=(self._entries, self._fork_proofs),
                found=(entries, fork_proofs),
            )
        self._pos = end
        self._state = ReaderState.ENDED
        return self._next_after_end()

    def _next_after_end(self) -> BundleEvent:
        extra = len(self._buf) - self._pos
        if extra:
            raise self._fail(
                f"{extra} bytes after the end record", expected="end of file", found=extra
            )
        if not self._eof:
            return NEED_DATA
        self._state = ReaderState.DONE
        return BundleEnd(entries=self._entries, fork_proofs=self._fork_proofs)
