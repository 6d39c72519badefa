"""Signed, hash-chained group log entries and their validation (spec/03-log.md).

Theory of operation
-------------------
An *entry* is a header, a signature and an optional body. The header is a positional
array (see :class:`Header` for the order); its canonical encoding is hashed with
BLAKE2b-256 to give the *entry id*. The signature is Ed25519 over
``NS_ENTRY || entry_id``, so the id (and therefore the hash chain) does not depend on
the signature: an author can build a run of headers and sign them in any order.

Each header names its author's previous entry (``prev``, the hash chain) and up to
``MAX_LINKS`` other entries of the group the author had seen (``links``, the causal
DAG). The group is named by the id of its *genesis* entry, whose own group field is
32 zero bytes.

Validity is a function of the set of entries a replica holds, never of the order they
came in (spec/03-log.md section "Validity"):

    authentic(e)  :=  sig_ok(e)  or  some entry f by the same author with
                      f.seq == e.seq + 1, f.prev == id(e) is authentic
    valid(e)      :=  well_formed(e) and authentic(e)
                      and (e.seq == 1 or the entry named by e.prev is valid, has the
                           same author, sequence e.seq - 1 and a timestamp <= e's)
                      and every link is a valid entry of another author in the group

The chain term is what makes bulk ingest cheap: one good signature at the end of a
contiguous run authenticates every header before it, because each header is pinned by
its successor's ``prev`` hash. A replica that receives the same entries one by one
verifies every signature, and an entry whose own signature is bad waits (pending)
until an authentic successor vouches for it, or forever. Both end with the same set.

Two valid headers with the same author and sequence are a *fork* (equivocation). Both
branches stay valid log entries (so honest entries that link to either stay valid);
the :class:`ForkProof` is stored and forwarded, and what the forking author's entries
count for is decided by membership (spec/04-membership.md).

:class:`Ingestor` is the sans-IO machine that applies these rules to arriving entries.
It reads what is already stored through a :class:`LogView` and returns what to store;
it never stores anything itself, reads no clock and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, Protocol, cast

import msgpack

from ..errors import DecodeError, ErrorCode, ValidationError
from . import crypto
from .encoding import (
    Limits,
    _raw_unpack,
    expect_array,
    expect_bytes,
    expect_optional_bytes,
    expect_uint,
)
from .identity import NS_ENTRY, KeyPair

__all__ = [
    "ENTRY_LIMITS",
    "HEADER_LIMITS",
    "KIND_GENESIS",
    "LOG_VERSION",
    "MAX_BODY_SIZE",
    "MAX_LINKS",
    "MAX_U63",
    "ZERO_ID",
    "AuthenticatedRun",
    "Entry",
    "EntryMeta",
    "ForkProof",
    "Header",
    "IngestResult",
    "Ingestor",
    "LogView",
    "Rejection",
    "SignatureChecker",
    "check_entry",
    "check_payload",
    "check_timestamp",
    "create_entry",
    "create_genesis",
    "decode_entry",
    "decode_fork_proof",
    "decode_header",
    "encode_checked",
    "encode_entry",
    "encode_fork_proof",
    "encode_header",
    "entry_id",
    "make_header",
    "sign_header",
    "verify_fork_proof",
    "verify_signature",
]

LOG_VERSION: Final = 1
KIND_GENESIS: Final = 0
MAX_KIND: Final = 0xFFFF
MAX_LINKS: Final = 16
MAX_BODY_SIZE: Final = 48 * 1024
#: Sequence numbers and timestamps fit a signed 64-bit integer (SQLite's INTEGER).
MAX_U63: Final = 2**63 - 1
ZERO_ID: Final = bytes(32)

HEADER_LIMITS: Final = Limits(max_size=1024, max_bytes=32, max_array=MAX_LINKS, max_depth=2)
ENTRY_LIMITS: Final = Limits(
    max_size=MAX_BODY_SIZE + 1200, max_bytes=MAX_BODY_SIZE, max_array=3, max_depth=1
)

_packb = msgpack.packb
_blake2b = crypto.blake2b_256


class Header(NamedTuple):
    """An entry header, in wire order. Encoded as a 10-element msgpack array."""

    #: Format version, 1.
    version: int
    #: Group id (id of the genesis entry); 32 zero bytes in the genesis entry itself.
    group: bytes
    #: Author's Ed25519 public key (member id).
    author: bytes
    #: Author's sequence number, starting at 1.
    seq: int
    #: Id of the author's entry ``seq - 1``; ``None`` when ``seq == 1``.
    prev: bytes | None
    #: Ids of other authors' entries this author had seen, strictly ascending.
    links: tuple[bytes, ...]
    #: Claimed creation time, milliseconds since the Unix epoch.
    timestamp: int
    #: What the body is (0 = genesis; the rest are defined by spec/04-membership.md).
    kind: int
    #: BLAKE2b-256 of the body bytes (of ``b""`` for an empty body).
    body_hash: bytes
    #: Length of the body in bytes.
    body_size: int


class Entry(NamedTuple):
    """A header with its id, exact encoding, signature and (maybe absent) body."""

    id: bytes
    header: Header
    header_bytes: bytes
    signature: bytes
    #: ``None`` when the body is not held (dropped by moderation or not fetched yet).
    body: bytes | None

    @property
    def author(self) -> bytes:
        return self.header.author

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def kind(self) -> int:
        return self.header.kind

    @property
    def is_genesis(self) -> bool:
        return self.header.kind == KIND_GENESIS

    def without_body(self) -> Entry:
        return self._replace(body=None)


class EntryMeta(NamedTuple):
    """What validation needs to know about a stored entry."""

    author: bytes
    seq: int
    timestamp: int


# --------------------------------------------------------------------------- encoding


def encode_header(header: Header) -> bytes:
    return cast(bytes, _packb(header, use_bin_type=True))


def entry_id(header_bytes: bytes) -> bytes:
    """The entry id: BLAKE2b-256 of the canonical header encoding."""
    return _blake2b(header_bytes)


def decode_header(data: bytes) -> Header:
    """Decode and type-check a header; raises :class:`DecodeError`."""
    h = _raw_unpack(data, HEADER_LIMITS)
    # Fast path for the well-formed case; anything unusual takes the checked path,
    # which produces the precise error.
    if type(h) is list and len(h) == 10 and type(h[0]) is int and h[0] == LOG_VERSION:
        group, author, seq, prev, links, ts, kind, bh, bs = h[1:]
        if (
            type(group) is bytes
            and len(group) == 32
            and type(author) is bytes
            and len(author) == 32
            and type(seq) is int
            and 1 <= seq <= MAX_U63
            and (prev is None or (type(prev) is bytes and len(prev) == 32))
            and type(links) is list
            and all(type(x) is bytes and len(x) == 32 for x in links)
            and type(ts) is int
            and 0 <= ts <= MAX_U63
            and type(kind) is int
            and 0 <= kind <= MAX_KIND
            and type(bh) is bytes
            and len(bh) == 32
            and type(bs) is int
            and 0 <= bs <= MAX_BODY_SIZE
        ):
            header = Header(LOG_VERSION, group, author, seq, prev, tuple(links), ts, kind, bh, bs)
        else:
            header = _decode_header_checked(h)
    else:
        header = _decode_header_checked(h)
    if _packb(header, use_bin_type=True) != data:
        raise DecodeError(
            ErrorCode.NOT_CANONICAL,
            "header is not in canonical encoding",
            expected="canonical msgpack",
        )
    return header


def _decode_header_checked(value: object) -> Header:
    h = expect_array(value, "header")
    if len(h) >= 1 and isinstance(h[0], int) and not isinstance(h[0], bool) and h[0] != LOG_VERSION:
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"header version {h[0]} is not supported",
            expected=LOG_VERSION,
            found=h[0],
        )
    expect_array(h, "header", length=10)
    version = expect_uint(h[0], "header.version", minimum=LOG_VERSION, maximum=LOG_VERSION)
    group = expect_bytes(h[1], "header.group", length=32)
    author = expect_bytes(h[2], "header.author", length=32)
    seq = expect_uint(h[3], "header.seq", minimum=1, maximum=MAX_U63)
    prev = expect_optional_bytes(h[4], "header.prev", length=32)
    raw_links = expect_array(h[5], "header.links", max_length=MAX_LINKS)
    links = tuple(expect_bytes(x, "header.links[]", length=32) for x in raw_links)
    timestamp = expect_uint(h[6], "header.timestamp", maximum=MAX_U63)
    kind = expect_uint(h[7], "header.kind", maximum=MAX_KIND)
    body_hash = expect_bytes(h[8], "header.body_hash", length=32)
    body_size = expect_uint(h[9], "header.body_size", maximum=MAX_BODY_SIZE)
    return Header(version, group, author, seq, prev, links, timestamp, kind, body_hash, body_size)


def _bin_overhead(n: int) -> int:
    """Bytes msgpack's canonical bin header takes for a bin of ``n`` bytes."""
    return 2 if n < 256 else 3 if n < 65536 else 5


def encode_entry(entry: Entry, *, with_body: bool = True) -> bytes:
    """Wire/disk form: ``[header_bytes: bin, signature: bin(64), body: bin | nil]``."""
    body = entry.body if with_body else None
    return cast(bytes, _packb((entry.header_bytes, entry.signature, body), use_bin_type=True))


def decode_entry(data: bytes) -> Entry:
    """Decode an entry; checks encoding only (see :func:`check_entry` for the rules)."""
    value = _raw_unpack(data, ENTRY_LIMITS)
    if (
        type(value) is list
        and len(value) == 3
        and type(value[0]) is bytes
        and len(value[0]) <= HEADER_LIMITS.max_size
        and type(value[1]) is bytes
        and len(value[1]) == crypto.SIGNATURE_SIZE
        and (value[2] is None or type(value[2]) is bytes)
    ):
        header_bytes, signature, body = value  # fast path; the body limit is ENTRY_LIMITS'
    else:
        parts = expect_array(value, "entry", length=3)
        header_bytes = expect_bytes(parts[0], "entry.header", max_length=HEADER_LIMITS.max_size)
        signature = expect_bytes(parts[1], "entry.signature", length=crypto.SIGNATURE_SIZE)
        body = parts[2]
        if body is not None:
            body = expect_bytes(body, "entry.body", max_length=MAX_BODY_SIZE)
    # Every msgpack form of these three values is at least as long as the canonical one,
    # and only the canonical one has exactly this length.
    canonical_len = (
        1
        + _bin_overhead(len(header_bytes))
        + len(header_bytes)
        + 2
        + crypto.SIGNATURE_SIZE
        + (1 if body is None else _bin_overhead(len(body)) + len(body))
    )
    if len(data) != canonical_len:
        raise DecodeError(
            ErrorCode.NOT_CANONICAL,
            "entry is not in canonical encoding",
            expected="canonical msgpack",
        )
    header = decode_header(header_bytes)
    return Entry(entry_id(header_bytes), header, header_bytes, signature, body)


def entry_from_parts(header_bytes: bytes, signature: bytes, body: bytes | None) -> Entry:
    """Rebuild an entry from stored columns (decodes and checks the header encoding)."""
    header = decode_header(header_bytes)
    return Entry(entry_id(header_bytes), header, header_bytes, signature, body)


# --------------------------------------------------------------------------- creation


def make_header(
    *,
    group: bytes,
    author: bytes,
    seq: int,
    prev: bytes | None,
    links: Iterable[bytes],
    timestamp: int,
    kind: int,
    body: bytes,
) -> Header:
    """Build a header for ``body``; links are sorted and de-duplicated."""
    return Header(
        LOG_VERSION,
        group,
        author,
        seq,
        prev,
        tuple(sorted(set(links))),
        timestamp,
        kind,
        _blake2b(body),
        len(body),
    )


def _refusal(exc: DecodeError) -> ValidationError:
    """A decoding failure of something about to be written, as the validation error the
    writer raises (same code, message and values)."""
    return ValidationError(exc.code, exc.message, expected=exc.expected, found=exc.found)


def _check_body(body: object) -> None:
    """The entry decoder's check of a body (bytes, at most ``MAX_BODY_SIZE``)."""
    if type(body) is not bytes or len(body) > MAX_BODY_SIZE:
        try:
            expect_bytes(body, "entry.body", max_length=MAX_BODY_SIZE)
        except DecodeError as exc:
            raise _refusal(exc) from None


def check_timestamp(timestamp: object) -> None:
    """Refuse a timestamp the header decoder would refuse (an int, 0 to ``MAX_U63``)
    before a header is made with it. Raises :class:`ValidationError`."""
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_U63:
        try:
            expect_uint(timestamp, "header.timestamp", maximum=MAX_U63)
        except DecodeError as exc:
            raise _refusal(exc) from None


def check_payload(kind: object, body: object) -> None:
    """Refuse, before a header is made from them, a ``kind`` and ``body`` no reader
    would accept in an entry after the genesis: the kind as the header decoder checks
    it (1 to ``MAX_KIND``; 0 is the genesis, S1), the body as the entry decoder checks
    it (bytes, at most ``MAX_BODY_SIZE``: ``too-large``). Raises
    :class:`ValidationError` with the reader's code."""
    if (
        type(kind) is int
        and 0 < kind <= MAX_KIND
        and type(body) is bytes
        and len(body) <= MAX_BODY_SIZE
    ):
        return
    try:
        expect_uint(kind, "header.kind", maximum=MAX_KIND)
        expect_bytes(body, "entry.body", max_length=MAX_BODY_SIZE)
    except DecodeError as exc:
        raise _refusal(exc) from None
    if kind == KIND_GENESIS:
        raise _invalid(
            ErrorCode.BAD_GENESIS,
            "a genesis entry has a zero group, sequence 1 and no links",
            found=kind,
        )


def encode_checked(
    header: Header, body: bytes | None, group: bytes | None = None
) -> tuple[bytes, bytes]:
    """Encode a header that is about to be signed, refusing first what a reader would
    refuse of the entry: the body as :func:`decode_entry` checks it, the header bytes
    through :func:`decode_header` itself (every field's type and range, the size
    limit, canonical form), then :func:`check_entry` for ``group`` (None: the header's
    own group, or for a genesis its id). Returns ``(header_bytes, id)``.

    Raises :class:`ValidationError`; a decoding failure keeps the decoder's code
    (``out-of-range``, ``wrong-type``, ``too-large`` ...)."""
    if body is not None:
        _check_body(body)
    try:
        header_bytes = encode_header(header)
    except (TypeError, ValueError, OverflowError) as exc:
        # msgpack cannot encode a field (an int beyond 64 bits, an unknown type).
        raise _invalid(
            ErrorCode.OUT_OF_RANGE if isinstance(exc, OverflowError) else ErrorCode.WRONG_TYPE,
            f"header cannot be encoded: {exc}",
        ) from None
    try:
        decode_header(header_bytes)
    except DecodeError as exc:
        raise _refusal(exc) from None
    eid = entry_id(header_bytes)
    if group is None:
        group = eid if header.kind == KIND_GENESIS else header.group
    check_entry(Entry(eid, header, header_bytes, b"", body), group)
    return header_bytes, eid


def sign_header(keypair: KeyPair, header: Header, body: bytes | None) -> Entry:
    """Check ``header`` and ``body`` as a reader would (:func:`encode_checked`), then
    sign. Raises :class:`ValidationError` before signing anything a reader would
    refuse."""
    if header.author != keypair.public_key:
        raise ValueError("header author is not this key pair")
    header_bytes, eid = encode_checked(header, body)
    return Entry(eid, header, header_bytes, keypair.sign(NS_ENTRY, eid), body)


def create_entry(
    keypair: KeyPair,
    *,
    group: bytes,
    seq: int,
    prev: bytes | None,
    links: Iterable[bytes],
    timestamp: int,
    kind: int,
    body: bytes = b"",
) -> Entry:
    """Make, check (:func:`sign_header`) and sign an entry of ``keypair``'s."""
    _check_body(body)
    check_timestamp(timestamp)
    header = make_header(
        group=group,
        author=keypair.public_key,
        seq=seq,
        prev=prev,
        links=links,
        timestamp=timestamp,
        kind=kind,
        body=body,
    )
    return sign_header(keypair, header, body)


def create_genesis(keypair: KeyPair, *, timestamp: int, body: bytes = b"") -> Entry:
    """The first entry of a new group; its id is the group id."""
    return create_entry(
        keypair,
        group=ZERO_ID,
        seq=1,
        prev=None,
        links=(),
        timestamp=timestamp,
        kind=KIND_GENESIS,
        body=body,
    )


# --------------------------------------------------------------------------- rules


def _invalid(code: ErrorCode, message: str, **kw: object) -> ValidationError:
    return ValidationError(code, message, **kw)


def check_entry(entry: Entry, group: bytes, *, check_body: bool = True) -> None:
    """The stateless rules (spec/03-log.md, rules S1-S8): everything that can be checked
    from the entry alone, except the signature. Raises :class:`ValidationError`.

    ``check_body=False`` skips hashing the body, for an entry whose header was just
    made from this very body (one's own append)."""
    h = entry.header
    if h.kind == KIND_GENESIS:
        if h.group != ZERO_ID or h.seq != 1 or h.links:
            raise _invalid(
                ErrorCode.BAD_GENESIS,
                "a genesis entry has a zero group, sequence 1 and no links",
            )
        if entry.id != group:
            raise _invalid(
                ErrorCode.WRONG_GROUP,
                f"genesis {entry.id.hex()[:16]} is not the genesis of group {group.hex()[:16]}",
                expected=group.hex(),
                found=entry.id.hex(),
            )
    elif h.group != group:
        raise _invalid(
            ErrorCode.WRONG_GROUP,
            f"entry belongs to group {h.group.hex()[:16]}, not {group.hex()[:16]}",
            expected=group.hex(),
            found=h.group.hex(),
        )
    if (h.seq == 1) != (h.prev is None):
        raise _invalid(
            ErrorCode.BAD_PREVIOUS,
            f"sequence {h.seq} {'must not' if h.seq == 1 else 'must'} name a previous entry",
            found=h.seq,
        )
    links = h.links
    for i in range(1, len(links)):
        if links[i - 1] >= links[i]:
            raise _invalid(ErrorCode.BAD_LINKS, "links must be strictly ascending")
    if h.prev is not None and h.prev in links:
        raise _invalid(ErrorCode.BAD_LINKS, "links must not repeat the previous entry")
    if h.seq == 1 and h.kind != KIND_GENESIS and not links:
        raise _invalid(
            ErrorCode.BAD_LINKS, "an author's first entry must link to entries of the group"
        )
    body = entry.body
    if (
        check_body
        and body is not None
        and (len(body) != h.body_size or _blake2b(body) != h.body_hash)
    ):
        raise _invalid(
            ErrorCode.BODY_MISMATCH,
            f"body of {len(body)} bytes does not match the header's hash and size {h.body_size}",
            expected=h.body_size,
            found=len(body),
        )


def verify_signature(entry: Entry) -> bool:
    """Whether the entry's own signature is valid (``NS_ENTRY || id``)."""
    return crypto.ed25519_verify(entry.header.author, NS_ENTRY + entry.id, entry.signature)


# A signature checker takes (public_key, message, signature) triples and returns one
# bool per triple; the trio edge passes one that spreads the work over threads.
SignatureChecker = Callable[[Sequence[tuple[bytes, bytes, bytes]]], list[bool]]


def _check_sequentially(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    verify = crypto.ed25519_verify
    return [verify(k, m, s) for k, m, s in items]


# --------------------------------------------------------------------------- forks


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticatedRun:
    """Consecutive headers of one author, the last one signed: proof the first is authentic.

    Usually one header and its own signature. Longer when the first header's own
    signature is bad but a later one vouches for it through the hash chain.
    """

    headers: tuple[bytes, ...]
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkProof:
    """Two authentic, different headers with the same author and sequence number."""

    a: AuthenticatedRun
    b: AuthenticatedRun

    @property
    def author(self) -> bytes:
        return decode_header(self.a.headers[0]).author

    @property
    def seq(self) -> int:
        return decode_header(self.a.headers[0]).seq

    def key(self) -> bytes:
        """A stable id for de-duplication: hash of the two first-header ids, sorted."""
        ids = sorted((entry_id(self.a.headers[0]), entry_id(self.b.headers[0])))
        return _blake2b(ids[0] + ids[1])


FORK_PROOF_VERSION: Final = 1
_FORK_LIMITS: Final = Limits(max_size=64 * 1024, max_bytes=1024, max_array=64, max_depth=3)


def encode_fork_proof(proof: ForkProof) -> bytes:
    """``[1, [[header...], sig], [[header...], sig]]``."""
    return cast(
        bytes,
        _packb(
            (
                FORK_PROOF_VERSION,
                (list(proof.a.headers), proof.a.signature),
                (list(proof.b.headers), proof.b.signature),
            ),
            use_bin_type=True,
        ),
    )


def decode_fork_proof(data: bytes) -> ForkProof:
    value = _raw_unpack(data, _FORK_LIMITS)
    parts = expect_array(value, "fork_proof")
    if not parts:
        raise DecodeError(ErrorCode.WRONG_LENGTH, "fork_proof: expected 3 items, found 0", found=0)
    # 01 T1: the version first, then the item count (a later version may have more).
    version = expect_uint(parts[0], "fork_proof.version")
    if version != FORK_PROOF_VERSION:
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"fork proof version {version} is not supported",
            expected=FORK_PROOF_VERSION,
            found=version,
        )
    expect_array(parts, "fork_proof", length=3)
    runs = []
    for i in (1, 2):
        run = expect_array(parts[i], "fork_proof.run", length=2)
        headers = expect_array(run[0], "fork_proof.run.headers", max_length=64)
        if not headers:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH, "a fork proof run needs a header", expected=">= 1"
            )
        hs = tuple(expect_bytes(h, "fork_proof.header", max_length=1024) for h in headers)
        sig = expect_bytes(run[1], "fork_proof.signature", length=crypto.SIGNATURE_SIZE)
        runs.append(AuthenticatedRun(headers=hs, signature=sig))
    if _packb(value, use_bin_type=True) != data:
        raise DecodeError(ErrorCode.NOT_CANONICAL, "fork proof is not canonical")
    return ForkProof(a=runs[0], b=runs[1])


def _verify_run(run: AuthenticatedRun) -> Header:
    headers = [decode_header(h) for h in run.headers]
    for prev_bytes, prev, nxt in zip(run.headers, headers, headers[1:], strict=False):
        if nxt.author != prev.author or nxt.seq != prev.seq + 1 or nxt.prev != entry_id(prev_bytes):
            raise _invalid(ErrorCode.BAD_FORK_PROOF, "fork proof run is not a hash chain")
    last = run.headers[-1]
    if not crypto.ed25519_verify(headers[-1].author, NS_ENTRY + entry_id(last), run.signature):
        raise _invalid(ErrorCode.BAD_FORK_PROOF, "fork proof signature is not valid")
    return headers[0]


def _effective_group(header_bytes: bytes, header: Header) -> bytes:
    """The group an entry belongs to (a genesis entry's group is its own id)."""
    if header.kind == KIND_GENESIS and header.group == ZERO_ID:
        return entry_id(header_bytes)
    return header.group


def verify_fork_proof(proof: ForkProof, group: bytes | None = None) -> tuple[bytes, int]:
    """Check a fork proof; returns ``(author, seq)``. Raises :class:`ValidationError`
    (or :class:`DecodeError` for undecodable headers)."""
    ha = _verify_run(proof.a)
    hb = _verify_run(proof.b)
    if ha.author != hb.author or ha.seq != hb.seq:
        raise _invalid(ErrorCode.BAD_FORK_PROOF, "fork proof headers differ in author or sequence")
    if proof.a.headers[0] == proof.b.headers[0]:
        raise _invalid(ErrorCode.BAD_FORK_PROOF, "fork proof headers are identical")
    if group is not None and (
        _effective_group(proof.a.headers[0], ha) != group
        or _effective_group(proof.b.headers[0], hb) != group
    ):
        raise _invalid(ErrorCode.BAD_FORK_PROOF, "fork proof is for another group")
    return ha.author, ha.seq


# --------------------------------------------------------------------------- ingest


class LogView(Protocol):
    """Read access to the entries of one group already accepted (and stored)."""

    def entry_meta(self, entry_id: bytes) -> EntryMeta | None:
        """Author, sequence and timestamp of a stored entry of this group, or None."""

    def ids_at(self, author: bytes, seq: int) -> Sequence[bytes]:
        """Ids of the stored entries of ``author`` with sequence ``seq`` (two or more
        only after a fork)."""

    def max_seq(self, author: bytes) -> int:
        """Highest stored sequence number of ``author``; 0 when none."""

    def get_signed_header(self, entry_id: bytes) -> tuple[bytes, bytes] | None:
        """``(header_bytes, signature)`` of a stored entry, or None."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry that was refused, and why."""

    entry_id: bytes
    error: ValidationError


@dataclass(slots=True)
class IngestResult:
    """What one :meth:`Ingestor.ingest` call decided."""

    #: Newly valid entries, in an order where every entry follows its dependencies.
    #: The caller must store all of them (in this order) before the next call.
    accepted: list[Entry] = field(default_factory=list)
    #: Entries refused for good (or, for ``PENDING_FULL``, for now).
    rejected: list[Rejection] = field(default_factory=list)
    #: Fork proofs made by this call. A proof whose :meth:`ForkProof.key` equals that
    #: of one returned before replaces it: a shorter run became known (spec 03 F1).
    forks: list[ForkProof] = field(default_factory=list)
    #: Verified bodies arriving with entries that were already stored.
    bodies: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: ``(id, signature)``: a verifying signature that arrived for a stored entry whose
    #: stored signature does not verify (it was valid through a vouching successor).
    #: The caller keeps it in place of the stored one (spec 03 A1, 3.12 step 2).
    signatures: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: How many offered entries were already stored or already pending.
    duplicates: int = 0
    #: Entries waiting for a dependency or for authentication after this call.
    pending: int = 0


class _Pending(dict[bytes, Entry]):
    """The pending set, which knows whose each entry is (the ``owner`` of the ingest
    that made it wait: a peer) and how many entries and body bytes each owner has."""

    def __init__(self) -> None:
        super().__init__()
        self.current = b""
        self.owner: dict[bytes, bytes] = {}
        self.count: dict[bytes, int] = {}
        self.size: dict[bytes, int] = {}

    def __setitem__(self, key: bytes, value: Entry) -> None:
        if key not in self:
            o = self.current
            self.owner[key] = o
            self.count[o] = self.count.get(o, 0) + 1
            self.size[o] = self.size.get(o, 0) + len(value.body or b"")
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        value = self[key]
        super().__delitem__(key)
        self._forget(key, value)

    def pop(self, key: bytes, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        value = super().pop(key, None)
        if value is None:
            return default
        self._forget(key, value)
        return value

    def _forget(self, key: bytes, value: Entry) -> None:
        o = self.owner.pop(key, None)
        if o is None:
            return
        n = self.count[o] - 1
        if n:
            self.count[o] = n
            self.size[o] -= len(value.body or b"")
        else:
            del self.count[o]
            del self.size[o]


class Ingestor:
    """Decides which arriving entries of one group are valid (sans-IO).

    ``view`` answers questions about stored entries. Accepted entries are also kept
    in a bounded in-memory overlay until the caller has surely stored them; if storing
    fails, call :meth:`forget_overlay` so the ingestor asks the view again.

    Entries whose dependencies (``prev``, links) are missing, or whose signature is
    bad and not yet vouched for, wait in a pending set of at most ``max_pending``
    entries; beyond that new entries are refused with ``PENDING_FULL`` (the sender
    may offer them again later). Each ingest names its ``owner`` (the peer that sent
    the entries): one owner holds at most ``max_pending_per_owner`` entries and
    ``max_pending_bytes_per_owner`` bytes of bodies there, so that it cannot push out
    another's, and :meth:`discard_owner` forgets what an owner left (spec 03 3.14).
    """

    def __init__(
        self,
        group: bytes,
        view: LogView,
        *,
        max_pending: int = 50_000,
        max_pending_per_owner: int = 16_384,
        max_pending_bytes_per_owner: int = 16 << 20,
        overlay_size: int = 200_000,
        signature_checker: SignatureChecker | None = None,
    ) -> None:
        self.group = group
        self._view = view
        self.max_pending = max_pending
        self.max_pending_per_owner = max_pending_per_owner
        self.max_pending_bytes_per_owner = max_pending_bytes_per_owner
        self._overlay_size = overlay_size
        self._check_signatures = signature_checker or _check_sequentially
        #: Recently accepted entries: id -> meta. Insertion ordered (oldest first).
        self._overlay: dict[bytes, EntryMeta] = {}
        #: Highest accepted sequence per author (cache of view.max_seq).
        self._max_seq: dict[bytes, int] = {}
        #: Pending entries by id; ``_unauth`` holds those not yet authenticated.
        self._pending = _Pending()
        self._unauth: dict[bytes, Entry] = {}
        #: Missing dependency id -> ids of pending entries waiting for it.
        self._waiting: dict[bytes, list[bytes]] = {}
        #: Ids known to be invalid for good (bounded), with the reason.
        self._invalid: dict[bytes, ValidationError] = {}
        #: Forks seen whose proof could not be built yet: (entry id, other id, author).
        self._unproven_forks: list[tuple[bytes, bytes, bytes]] = []
        #: Forks found by the running call: (entry id, other id, author); their proofs
        #: are made at the end of the call, when every entry of it is decided.
        self._found_forks: list[tuple[bytes, bytes, bytes]] = []
        #: Proofs with a run longer than one header, by key: (ids, author, proof). A
        #: shorter run may still arrive (spec 03 F1), and then the proof is made again.
        self._provisional: dict[bytes, tuple[bytes, bytes, bytes, ForkProof]] = {}
        #: Authentic entries that were rejected (so never stored) by the id they name
        #: as ``prev``: they still vouch for it (spec 03 A2), and a fork proof may need
        #: them as its run. Bounded (``_MAX_VOUCHERS`` entries).
        self._vouchers: dict[bytes, list[Entry]] = {}
        self._voucher_count = 0
        #: Verifying signatures that arrived for stored entries whose stored signature
        #: does not verify (bounded): fork proofs use them, whatever the store keeps.
        self._good_sigs: dict[bytes, bytes] = {}
        #: Authors with something new in the running call (for provisional proofs).
        self._touched: set[bytes] = set()

    # -- queries

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending_ids(self) -> list[bytes]:
        return list(self._pending)

    def unauthenticated(self, ids: Iterable[bytes]) -> list[bytes]:
        """Those of ``ids`` that are pending because no valid signature covers them."""
        return [i for i in ids if i in self._unauth]

    def discard(self, ids: Iterable[bytes]) -> None:
        """Forget pending unauthenticated entries (sent by a peer found to misbehave),
        so they stop taking room in the pending set."""
        for i in ids:
            if self._unauth.pop(i, None) is not None:
                self._pending.pop(i, None)

    def pending_of(self, owner: bytes) -> int:
        """Pending entries that ``owner``'s ingests left waiting."""
        return self._pending.count.get(owner, 0)

    def share_full(self, owner: bytes) -> bool:
        """Whether ``owner`` has used up its share of the pending set."""
        p = self._pending
        return (
            p.count.get(owner, 0) >= self.max_pending_per_owner
            or p.size.get(owner, 0) >= self.max_pending_bytes_per_owner
        )

    def discard_owner(self, owner: bytes) -> int:
        """Forget the pending entries ``owner``'s ingests left (its connection ended):
        they cost it, not the others; another peer may offer them again. Returns how
        many were dropped."""
        ids = [i for i, o in self._pending.owner.items() if o == owner]
        for i in ids:
            self._pending.pop(i)
            self._unauth.pop(i, None)
        if ids:
            waiting: dict[bytes, list[bytes]] = {}
            for dep, ws in self._waiting.items():
                kept = [w for w in ws if w in self._pending]
                if kept:
                    waiting[dep] = kept
            self._waiting = waiting
        return len(ids)

    def missing_dependencies(self) -> list[bytes]:
        """Ids that pending entries wait for and that are not pending themselves."""
        return [d for d in self._waiting if d not in self._pending]

    def note_accepted(self, entries: Iterable[Entry]) -> None:
        """Record entries the caller built and stored itself (its own appends, valid
        by construction) so later ingests see them without asking the view."""
        overlay = self._overlay
        for e in entries:
            h = e.header
            overlay[e.id] = EntryMeta(h.author, h.seq, h.timestamp)
            if h.seq > self._max_seq.get(h.author, 0):
                self._max_seq[h.author] = h.seq
        if len(overlay) > self._overlay_size:
            for k in list(overlay)[: len(overlay) - self._overlay_size // 2]:
                del overlay[k]

    def forget_overlay(self) -> None:
        """Drop cached knowledge of accepted entries (after a failed store write)."""
        self._overlay.clear()
        self._max_seq.clear()

    def _meta(self, eid: bytes) -> EntryMeta | None:
        meta = self._overlay.get(eid)
        if meta is None:
            meta = self._view.entry_meta(eid)
        return meta

    def _author_max_seq(self, author: bytes) -> int:
        m = self._max_seq.get(author)
        if m is None:
            m = self._view.max_seq(author)
            self._max_seq[author] = m
        return m

    # -- the machine

    def ingest(
        self, entries: Iterable[Entry], *, verify_each: bool = False, owner: bytes = b""
    ) -> IngestResult:
        """Offer entries; returns what became valid, what was refused, and forks found.

        ``verify_each=False`` (bulk) checks signatures lazily: the last entry of each
        contiguous run first, and an earlier one only if nothing later vouches for it.
        ``verify_each=True`` checks every signature. Both give the same valid set.
        ``owner``: whose entries these are, for the pending set's quotas.
        """
        result = IngestResult()
        self._pending.current = owner
        # Entries accepted by earlier calls are stored by now, so the overlay may
        # forget the oldest of them; never those of the running call.
        overlay = self._overlay
        if len(overlay) > self._overlay_size:
            for k in list(overlay)[: len(overlay) - self._overlay_size // 2]:
                del overlay[k]
        fresh: dict[bytes, Entry] = {}
        group = self.group
        for e in entries:
            eid = e.id
            if eid in fresh:
                result.duplicates += 1
                first = fresh[eid]
                if first.signature != e.signature and not verify_signature(first):
                    fresh[eid] = e  # (rule A1) keep a copy that may verify
                continue
            if eid in self._pending:
                held = self._unauth.get(eid)
                if held is None or held.signature == e.signature:
                    result.duplicates += 1
                    if held is None:
                        # Authenticated and waiting: keep a signature that verifies
                        # (rule A1), so that the entry is stored with it.
                        waiting = self._pending[eid]
                        if (
                            waiting.signature != e.signature
                            and not verify_signature(waiting)
                            and verify_signature(e)
                        ):
                            self._pending[eid] = (
                                e if e.body is not None else e._replace(body=waiting.body)
                            )
                    continue
                # The copy we hold is not authenticated; this one may carry the
                # author's real signature (rule A1: any good copy counts).
                del self._pending[eid]
                del self._unauth[eid]
            h = e.header
            if h.seq <= self._author_max_seq(h.author) and self._meta(eid) is not None:
                result.duplicates += 1
                self._better_signature(e, result)
                if e.body is not None:
                    # The header is the stored one (same id); the body may not be.
                    try:
                        check_entry(e, group)
                    except ValidationError as exc:
                        result.rejected.append(Rejection(eid, exc))
                        continue
                    result.bodies.append((eid, e.body))
                continue
            known_bad = self._invalid.get(eid)
            if known_bad is not None:
                result.rejected.append(Rejection(eid, known_bad))
                self._better_voucher(e)
                continue
            try:
                check_entry(e, group)
            except ValidationError as exc:
                result.rejected.append(Rejection(eid, exc))
                if exc.code is not ErrorCode.BODY_MISMATCH:
                    self._mark_invalid(eid, exc)
                    self._reject_waiters(eid, result)
                continue
            fresh[eid] = e

        if fresh:
            self._authenticate(fresh, verify_each, result)
        if self._found_forks or self._unproven_forks or self._provisional:
            self._make_fork_proofs(result)
        self._touched.clear()
        result.pending = len(self._pending)
        return result

    def _better_signature(self, e: Entry, result: IngestResult) -> None:
        """``e`` is a copy of a stored entry: if the stored signature does not verify
        and this one does, report it to be kept instead (spec 03 A1)."""
        eid = e.id
        stored = self._good_sigs.get(eid)
        if stored is None:
            got = self._view.get_signed_header(eid)
            if got is None:
                return
            stored = got[1]
        if stored == e.signature or verify_signature(e._replace(signature=stored)):
            return
        if verify_signature(e):
            if len(self._good_sigs) >= _MAX_VOUCHERS:
                del self._good_sigs[next(iter(self._good_sigs))]
            self._good_sigs[eid] = e.signature
            result.signatures.append((eid, e.signature))
            self._touched.add(e.header.author)

    def _reject_waiters(self, bad: bytes, result: IngestResult) -> None:
        """Entries waiting for ``bad`` (now known invalid) are invalid too."""
        stack = [bad]
        while stack:
            dep = stack.pop()
            for wid in self._waiting.pop(dep, ()):
                w = self._pending.pop(wid, None)
                if w is None:
                    continue
                self._unauth.pop(wid, None)
                self._reject(w, self._invalid[dep], result, dependency=dep)
                stack.append(wid)

    def _make_fork_proofs(self, result: IngestResult) -> None:
        """Proofs of the forks this call found, of earlier forks whose proof could not be
        made yet, and better proofs where a shorter run became known (spec 03 F1). Runs
        longer than one header are rare (a bad signature at the fork), and only forks of
        authors with something new in this call are looked at again."""
        touched = self._touched
        touched.update(e.header.author for e in result.accepted)
        found, self._found_forks = self._found_forks, []
        retry = [f for f in self._unproven_forks if f[2] in touched]
        still = [f for f in self._unproven_forks if f[2] not in touched]
        index = _RunIndex(self, result.accepted)
        for a, b, author in found + retry:
            proof = self._proof_for_ids(a, b, index)
            if proof is None:
                still.append((a, b, author))
            else:
                result.forks.append(proof)
                self._note_provisional(a, b, author, proof)
        self._unproven_forks = still[-1000:]
        for a, b, author, old in list(self._provisional.values()):
            if author not in touched:
                continue
            proof = self._proof_for_ids(a, b, index)
            if proof is not None and proof != old:
                result.forks.append(proof)
                self._note_provisional(a, b, author, proof)

    def _note_provisional(self, a: bytes, b: bytes, author: bytes, proof: ForkProof) -> None:
        key = proof.key()
        if len(proof.a.headers) == 1 and len(proof.b.headers) == 1:
            self._provisional.pop(key, None)  # no run is shorter: final
            return
        if key not in self._provisional and len(self._provisional) >= 1000:
            del self._provisional[next(iter(self._provisional))]
        self._provisional[key] = (a, b, author, proof)

    def _remember_voucher(self, e: Entry) -> None:
        """``e`` is authentic and rejected: keep its signed header, since it still
        vouches for its ``prev`` (spec 03 A2) and may be a fork proof's run."""
        prev = e.header.prev
        if prev is None:
            return
        if self._voucher_count >= _MAX_VOUCHERS:
            oldest = next(iter(self._vouchers))
            self._voucher_count -= len(self._vouchers.pop(oldest))
        self._vouchers.setdefault(prev, []).append(e.without_body())
        self._voucher_count += 1
        self._touched.add(e.header.author)

    def _authenticate(
        self, fresh: dict[bytes, Entry], verify_each: bool, result: IngestResult
    ) -> None:
        entries = list(fresh.values())
        # Split the arrivals into chains: maximal stretches where each entry is the
        # next one of the previous entry's author (bulk sync sends exactly that).
        chains: list[list[Entry]] = []
        cur: list[Entry] = []
        for e in entries:
            if cur:
                last = cur[-1]
                h, p = e.header, last.header
                if h.prev == last.id and h.author == p.author and h.seq == p.seq + 1:
                    cur.append(e)
                    continue
                chains.append(cur)
            cur = [e]
        if cur:
            chains.append(cur)
        sig_ok: dict[bytes, bool] = {}
        if verify_each:
            oks = self._check_signatures(
                [(e.header.author, NS_ENTRY + e.id, e.signature) for e in entries]
            )
            sig_ok = {e.id: ok for e, ok in zip(entries, oks, strict=True)}
        # Later chains first and each chain from its tail, so that an entry is decided
        # after anything in this batch that could vouch for it. Inside a chain an
        # authentic entry vouches for the one before it (``trusted``).
        vouched: dict[bytes, tuple[bytes, int]] = {}
        authentic: set[bytes] = set()
        for chain in reversed(chains):
            trusted = False
            for e in reversed(chain):
                h = e.header
                eid = e.id
                ok = trusted or vouched.get(eid) == (h.author, h.seq) or self._vouched_by_pending(e)
                if not ok:
                    ok = sig_ok[eid] if verify_each else verify_signature(e)
                if ok:
                    authentic.add(eid)
                    trusted = True
                else:
                    trusted = False
                    if self._make_room(result, e):
                        self._pending[eid] = e
                        self._unauth[eid] = e
            head = chain[0].header
            if trusted and head.prev is not None:
                vouched[head.prev] = (head.author, head.seq - 1)
        # Dependencies, in arrival order (usually causal, so nothing waits). While
        # nothing is pending the entries are accepted directly.
        fast = not self._unauth and not self._waiting
        for e in entries:
            eid = e.id
            if eid not in authentic or eid in self._pending:
                continue
            if fast:
                self._accept_one(e, result)
                fast = not self._waiting
                continue
            self._authenticated(e, result)

    def _vouched_by_pending(self, e: Entry) -> bool:
        for wid in self._waiting.get(e.id, ()):
            w = self._pending.get(wid)
            if (
                w is not None
                and wid not in self._unauth
                and w.header.prev == e.id
                and w.header.author == e.header.author
                and w.header.seq == e.header.seq + 1
            ):
                return True
        return False

    def _make_room(self, result: IngestResult, e: Entry) -> bool:
        p = self._pending
        owner = p.current
        if len(p) >= self.max_pending:
            why, limit = f"pending set is full ({self.max_pending} entries)", self.max_pending
        elif p.count.get(owner, 0) >= self.max_pending_per_owner:
            why = f"this peer's share of the pending set is full ({self.max_pending_per_owner} entries)"
            limit = self.max_pending_per_owner
        elif p.size.get(owner, 0) + len(e.body or b"") > self.max_pending_bytes_per_owner:
            why = f"this peer's share of the pending set is full ({self.max_pending_bytes_per_owner} bytes)"
            limit = self.max_pending_bytes_per_owner
        else:
            return True
        result.rejected.append(
            Rejection(
                e.id,
                _invalid(
                    ErrorCode.PENDING_FULL,
                    f"{why}; offer this entry again later",
                    expected=limit,
                ),
            )
        )
        return False

    def _authenticated(self, e: Entry, result: IngestResult) -> None:
        """``e`` is authentic: vouch down the chain for pending unauthenticated parents,
        then try to accept it."""
        self._unauth.pop(e.id, None)
        cur = e
        chain: list[Entry] = []
        while cur.header.prev is not None:
            parent = self._unauth.get(cur.header.prev)
            if (
                parent is None
                or parent.header.author != cur.header.author
                or parent.header.seq != cur.header.seq - 1
            ):
                break
            del self._unauth[parent.id]
            chain.append(parent)
            cur = parent
        # Parents first; they are already in _pending, so re-examine them.
        for parent in reversed(chain):
            del self._pending[parent.id]
            self._try_accept(parent, result)
        self._try_accept(e, result)

    def _try_accept(self, first: Entry, result: IngestResult) -> None:
        stack = [first]
        while stack:
            e = stack.pop()
            outcome = self._accept_one(e, result)
            if outcome is None:
                continue
            eid, accepted = outcome
            waiters = self._waiting.pop(eid, None)
            if not waiters:
                continue
            for wid in reversed(waiters):
                w = self._pending.get(wid)
                if w is None or wid in self._unauth:
                    continue
                del self._pending[wid]
                if accepted:
                    stack.append(w)
                else:
                    self._reject(w, self._invalid[eid], result, dependency=eid)
                    stack.append(w)  # fall through to cascade its own waiters

    def _reject(
        self, e: Entry, cause: ValidationError, result: IngestResult, *, dependency: bytes
    ) -> None:
        err = _invalid(
            ErrorCode.BAD_PREVIOUS if e.header.prev == dependency else ErrorCode.BAD_LINKS,
            f"depends on invalid entry {dependency.hex()[:16]} ({cause.code.value})",
            found=dependency.hex(),
        )
        self._mark_invalid(e.id, err)
        result.rejected.append(Rejection(e.id, err))
        self._remember_voucher(e)

    def _better_voucher(self, e: Entry) -> None:
        """``e`` is a copy of a rejected entry: if it is kept as a voucher with a
        signature that does not verify and this copy's does, keep this one (rule A1)."""
        kept = self._vouchers.get(e.header.prev) if e.header.prev is not None else None
        if not kept:
            return
        for i, v in enumerate(kept):
            if v.id == e.id and v.signature != e.signature:
                if not verify_signature(v) and verify_signature(e):
                    kept[i] = e.without_body()
                    self._touched.add(e.header.author)
                return

    def _mark_invalid(self, eid: bytes, err: ValidationError) -> None:
        if len(self._invalid) >= 100_000:
            for k in list(self._invalid)[:50_000]:
                del self._invalid[k]
        self._invalid[eid] = err

    def _accept_one(self, e: Entry, result: IngestResult) -> tuple[bytes, bool] | None:
        """Accept ``e`` if its dependencies are valid. Returns ``(id, accepted?)`` when
        decided, None when it went (back) to pending."""
        eid = e.id
        if eid in self._invalid:
            # Rejected as a dependent of an invalid entry: cascade to its own waiters.
            return eid, False
        h = e.header
        # prev
        if h.prev is not None:
            bad = self._invalid.get(h.prev)
            if bad is not None:
                self._reject(e, bad, result, dependency=h.prev)
                return eid, False
            pm = self._meta(h.prev)
            if pm is None:
                self._wait(e, h.prev, result)
                return None
            if pm.author != h.author:
                return self._refuse(
                    e, result, ErrorCode.BAD_PREVIOUS, "previous entry has another author"
                )
            if pm.seq != h.seq - 1:
                return self._refuse(
                    e,
                    result,
                    ErrorCode.BAD_SEQUENCE,
                    f"expected sequence {pm.seq + 1} after the previous entry but found {h.seq}",
                    expected=pm.seq + 1,
                    found=h.seq,
                )
            if pm.timestamp > h.timestamp:
                return self._refuse(
                    e,
                    result,
                    ErrorCode.BAD_TIMESTAMP,
                    f"timestamp {h.timestamp} is before the previous entry's {pm.timestamp}",
                    expected=pm.timestamp,
                    found=h.timestamp,
                )
        for link in h.links:
            bad = self._invalid.get(link)
            if bad is not None:
                self._reject(e, bad, result, dependency=link)
                return eid, False
            lm = self._meta(link)
            if lm is None:
                self._wait(e, link, result)
                return None
            if lm.author == h.author:
                return self._refuse(
                    e, result, ErrorCode.BAD_LINKS, "links must name other authors' entries"
                )
        # Valid. Fork?
        if h.seq <= self._author_max_seq(h.author):
            others = [x for x in self._view.ids_at(h.author, h.seq) if x != eid]
            others += [
                x.id
                for x in result.accepted
                if x.header.author == h.author and x.header.seq == h.seq and x.id != eid
            ]
            for other in others:
                self._found_forks.append((eid, other, h.author))
        else:
            self._max_seq[h.author] = h.seq
        self._overlay[eid] = EntryMeta(h.author, h.seq, h.timestamp)
        result.accepted.append(e)
        return eid, True

    def _refuse(
        self, e: Entry, result: IngestResult, code: ErrorCode, message: str, **kw: object
    ) -> tuple[bytes, bool]:
        err = _invalid(code, message, **kw)
        self._mark_invalid(e.id, err)
        result.rejected.append(Rejection(e.id, err))
        self._remember_voucher(e)
        return e.id, False

    def _wait(self, e: Entry, missing: bytes, result: IngestResult) -> None:
        if not self._make_room(result, e):
            return
        self._pending[e.id] = e
        self._waiting.setdefault(missing, []).append(e.id)

    # -- fork proofs

    def _proof_for_ids(self, first: bytes, other: bytes, index: _RunIndex) -> ForkProof | None:
        a = index.run(first)
        b = index.run(other)
        if a is None or b is None:
            return None
        if entry_id(a.headers[0]) > entry_id(b.headers[0]):
            a, b = b, a
        return ForkProof(a=a, b=b)


#: Rejected authentic entries kept as vouchers, and late good signatures, at most.
_MAX_VOUCHERS: Final = 10_000
#: Headers a search for one run looks at, at most (a hostile author can sign a wide
#: tree of successors with bad signatures; honest forks need one or two).
_MAX_RUN_SEARCH: Final = 4096


class _RunIndex:
    """Finds the authenticated run of a held entry (spec 03 F1): the entry alone when a
    signature the replica holds for it verifies; otherwise the shortest chain of held,
    well-formed successors ending in a verifying signature, at most 64 headers, and
    among equally short ones the one whose ids are smallest, successor by successor.

    Held means stored, accepted by the running call, pending, or rejected but authentic
    (a successor that breaks a contextual rule still vouches, 03 A2)."""

    def __init__(self, ingestor: Ingestor, accepted_now: Sequence[Entry]) -> None:
        self._ing = ingestor
        self._now = {x.id: x for x in accepted_now}
        self._next: dict[bytes, list[Entry]] | None = None

    def _successors_not_stored(self, eid: bytes) -> list[Entry]:
        if self._next is None:
            nxt: dict[bytes, list[Entry]] = {}
            for group in (self._now.values(), self._ing._pending.values()):
                for x in group:
                    if x.header.prev is not None:
                        nxt.setdefault(x.header.prev, []).append(x)
            self._next = nxt
        return [*self._next.get(eid, ()), *self._ing._vouchers.get(eid, ())]

    def _signed(self, eid: bytes) -> tuple[bytes, Header, bytes] | None:
        x = self._now.get(eid)
        if x is not None:
            return x.header_bytes, x.header, self._ing._good_sigs.get(eid, x.signature)
        got = self._ing._view.get_signed_header(eid)
        if got is None:
            return None
        return got[0], decode_header(got[0]), self._ing._good_sigs.get(eid, got[1])

    def _children(self, eid: bytes, h: Header) -> list[tuple[bytes, bytes, Header, bytes]]:
        """Held successors of ``eid``: ``(id, header_bytes, header, signature)``, by id."""
        found: dict[bytes, tuple[bytes, bytes, Header, bytes]] = {}
        for cid in self._ing._view.ids_at(h.author, h.seq + 1):
            got = self._signed(cid)
            if got is not None and got[1].prev == eid:
                found[cid] = (cid, *got)
        for x in self._successors_not_stored(eid):
            if x.id not in found and x.header.author == h.author and x.header.seq == h.seq + 1:
                found[x.id] = (x.id, x.header_bytes, x.header, x.signature)
        return [found[k] for k in sorted(found)]

    def run(self, eid: bytes) -> AuthenticatedRun | None:
        start = self._signed(eid)
        if start is None:
            return None
        hb, h, sig = start
        verify = crypto.ed25519_verify
        if verify(h.author, NS_ENTRY + eid, sig):
            return AuthenticatedRun(headers=(hb,), signature=sig)
        # Breadth first, children in id order: the first verifying header found is the
        # end of the shortest run with the smallest ids.
        level: list[tuple[bytes, Header, tuple[bytes, ...]]] = [(eid, h, (hb,))]
        looked = 1
        while level and len(level[0][2]) < 64:
            deeper: list[tuple[bytes, Header, tuple[bytes, ...]]] = []
            for cur, ch, headers in level:
                for cid, cb, chh, csig in self._children(cur, ch):
                    looked += 1
                    if looked > _MAX_RUN_SEARCH:
                        return None
                    if verify(chh.author, NS_ENTRY + cid, csig):
                        return AuthenticatedRun(headers=(*headers, cb), signature=csig)
                    deeper.append((cid, chh, (*headers, cb)))
            level = deeper
        return None
