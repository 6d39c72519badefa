"""Tests of p2pcomm.core.log: wire forms of headers, entries and fork proofs; the
stateless rules; and the sans-IO ``Ingestor`` over a dict-backed ``LogView``.

The centre piece is the agreement property the module docstring promises: a replica
that verifies every signature one entry at a time and a replica that ingests contiguous
runs in bulk (checking one signature per run) end with the same valid set, and that set
is the one the spec defines, computed here by an independent reference function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import cache

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcomm.core.identity import NS_ENTRY, verify
from p2pcomm.core.log import (
    KIND_GENESIS,
    MAX_BODY_SIZE,
    MAX_LINKS,
    MAX_U63,
    ZERO_ID,
    AuthenticatedRun,
    Entry,
    ForkProof,
    Header,
    check_entry,
    create_entry,
    decode_entry,
    decode_fork_proof,
    decode_header,
    encode_entry,
    encode_fork_proof,
    encode_header,
    entry_id,
    make_header,
    sign_header,
    verify_fork_proof,
    verify_signature,
)
from p2pcomm.errors import DecodeError, ErrorCode, ValidationError
from tests.helpers import (
    BASE_TS,
    KIND_POST,
    History,
    Replica,
    bad_signature,
    build_history,
    genesis_only,
    keypair,
    raw_entry,
)

ids32 = st.binary(min_size=32, max_size=32)

headers = st.builds(
    Header,
    version=st.just(1),
    group=ids32,
    author=ids32,
    seq=st.integers(1, MAX_U63),
    prev=st.none() | ids32,
    links=st.lists(ids32, max_size=MAX_LINKS, unique=True).map(lambda x: tuple(sorted(x))),
    timestamp=st.integers(0, MAX_U63),
    kind=st.integers(0, 0xFFFF),
    body_hash=ids32,
    body_size=st.integers(0, MAX_BODY_SIZE),
)

bodies = st.none() | st.binary(max_size=300)


def _entry(header: Header, signature: bytes, body: bytes | None) -> Entry:
    hb = encode_header(header)
    return Entry(entry_id(hb), header, hb, signature, body)


entries = st.builds(_entry, headers, st.binary(min_size=64, max_size=64), bodies)

runs = st.builds(
    AuthenticatedRun,
    headers=st.lists(st.binary(max_size=200), min_size=1, max_size=4).map(tuple),
    signature=st.binary(min_size=64, max_size=64),
)
fork_proofs = st.builds(ForkProof, a=runs, b=runs)


def _code(fn: Callable[[bytes], object], data: bytes) -> ErrorCode:
    with pytest.raises(DecodeError) as info:
        fn(data)
    return info.value.code


def _assert_prefixes_and_trailing(fn: Callable[[bytes], object], data: bytes) -> None:
    """Whole input decodes; every strict prefix is TRUNCATED; extra bytes are
    TRAILING_DATA."""
    fn(data)
    for n in range(len(data)):
        assert _code(fn, data[:n]) is ErrorCode.TRUNCATED, n
    for garbage in (b"\x00", b"\xc0", b"\xc1", bytes(40)):
        assert _code(fn, data + garbage) is ErrorCode.TRAILING_DATA


# --------------------------------------------------------------------------------------
# Wire forms: round trips, prefixes, trailing data
# --------------------------------------------------------------------------------------


@given(headers)
def test_header_round_trip(header: Header) -> None:
    data = encode_header(header)
    assert decode_header(data) == header
    assert encode_header(decode_header(data)) == data
    assert data == msgpack.packb(list(header), use_bin_type=True)
    _assert_prefixes_and_trailing(decode_header, data)


@given(entries)
def test_entry_round_trip(entry: Entry) -> None:
    data = encode_entry(entry)
    assert decode_entry(data) == entry
    assert encode_entry(decode_entry(data)) == data
    without = encode_entry(entry, with_body=False)
    assert decode_entry(without) == entry.without_body()
    _assert_prefixes_and_trailing(decode_entry, data)


@given(fork_proofs)
def test_fork_proof_round_trip(proof: ForkProof) -> None:
    data = encode_fork_proof(proof)
    assert decode_fork_proof(data) == proof
    assert encode_fork_proof(decode_fork_proof(data)) == data
    _assert_prefixes_and_trailing(decode_fork_proof, data)


@pytest.mark.parametrize("size", [0, 1, 255, 256, MAX_BODY_SIZE])
def test_entry_body_sizes(size: int) -> None:
    kp = keypair(1)
    g = genesis_only(kp)
    body = bytes(size)
    e = create_entry(
        kp, group=g.id, seq=2, prev=g.id, links=[], timestamp=BASE_TS, kind=KIND_POST, body=body
    )
    assert decode_entry(encode_entry(e)) == e


@pytest.mark.parametrize(
    "fn", [decode_header, decode_entry, decode_fork_proof], ids=lambda f: f.__name__
)
@given(data=st.binary(max_size=80))
def test_decoders_fail_typed_on_arbitrary_bytes(fn: Callable[[bytes], object], data: bytes) -> None:
    try:
        fn(data)
    except DecodeError as exc:
        assert isinstance(exc.code, ErrorCode)


@given(entries, st.data())
def test_mutated_entry_encodings_fail_typed(entry: Entry, data: st.DataObject) -> None:
    """Any single-byte change to a valid encoding either decodes to something that
    re-encodes to exactly those bytes, or fails with a DecodeError."""
    raw = bytearray(encode_entry(entry))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        e = decode_entry(bytes(raw))
    except DecodeError:
        return
    assert encode_entry(e) == bytes(raw)


# --------------------------------------------------------------------------------------
# Wire forms: rejection tables
# --------------------------------------------------------------------------------------

_G, _A = bytes(range(32)), bytes(range(32, 64))
VALID_HEADER: list[object] = [1, _G, _A, 5, bytes(32), [b"\x01" * 32], BASE_TS, 1, bytes(32), 3]


def _header_with(i: int, value: object) -> bytes:
    fields = list(VALID_HEADER)
    fields[i] = value
    return msgpack.packb(fields, use_bin_type=True)


def _raw_header(fields: Sequence[bytes], head: bytes = b"\x9a") -> bytes:
    """A header built from already-encoded fields (to write non-canonical forms)."""
    return head + b"".join(fields)


_PACKED = [msgpack.packb(f, use_bin_type=True) for f in VALID_HEADER]

HEADER_REJECTIONS: list[tuple[str, bytes, set[ErrorCode]]] = [
    ("not-an-array", msgpack.packb(5), {ErrorCode.WRONG_TYPE}),
    ("bin-instead-of-array", msgpack.packb(b"x" * 10, use_bin_type=True), {ErrorCode.WRONG_TYPE}),
    ("map", msgpack.packb({0: 1}), {ErrorCode.FORBIDDEN_TYPE}),
    ("version-2", _header_with(0, 2), {ErrorCode.UNKNOWN_VERSION}),
    ("version-0", _header_with(0, 0), {ErrorCode.UNKNOWN_VERSION}),
    ("version-2-short", msgpack.packb([2, 1, 2]), {ErrorCode.UNKNOWN_VERSION}),
    ("version-true", _header_with(0, True), {ErrorCode.WRONG_TYPE}),
    ("version-float", _header_with(0, 1.0), {ErrorCode.WRONG_TYPE, ErrorCode.FORBIDDEN_TYPE}),
    ("nine-fields", msgpack.packb(VALID_HEADER[:9], use_bin_type=True), {ErrorCode.WRONG_LENGTH}),
    (
        "eleven-fields",
        msgpack.packb([*VALID_HEADER, 0], use_bin_type=True),
        {ErrorCode.WRONG_LENGTH},
    ),
    ("empty-array", msgpack.packb([]), {ErrorCode.WRONG_LENGTH}),
    ("group-31", _header_with(1, bytes(31)), {ErrorCode.WRONG_LENGTH}),
    ("group-33", _header_with(1, bytes(33)), {ErrorCode.TOO_LARGE}),
    ("group-str", _header_with(1, "x" * 32), {ErrorCode.WRONG_TYPE}),
    ("author-nil", _header_with(2, None), {ErrorCode.WRONG_TYPE}),
    ("seq-0", _header_with(3, 0), {ErrorCode.OUT_OF_RANGE}),
    ("seq-negative", _header_with(3, -1), {ErrorCode.OUT_OF_RANGE}),
    ("seq-2^63", _header_with(3, 2**63), {ErrorCode.OUT_OF_RANGE}),
    ("seq-true", _header_with(3, True), {ErrorCode.WRONG_TYPE}),
    ("seq-float", _header_with(3, 5.0), {ErrorCode.WRONG_TYPE, ErrorCode.FORBIDDEN_TYPE}),
    ("prev-31", _header_with(4, bytes(31)), {ErrorCode.WRONG_LENGTH}),
    ("prev-false", _header_with(4, False), {ErrorCode.WRONG_TYPE}),
    ("links-bin", _header_with(5, bytes(32)), {ErrorCode.WRONG_TYPE}),
    ("links-17", _header_with(5, [bytes([i]) * 32 for i in range(17)]), {ErrorCode.TOO_LARGE}),
    ("link-31", _header_with(5, [bytes(31)]), {ErrorCode.WRONG_LENGTH}),
    ("link-nested", _header_with(5, [[bytes(32)]]), {ErrorCode.WRONG_TYPE}),
    ("timestamp-negative", _header_with(6, -1), {ErrorCode.OUT_OF_RANGE}),
    ("timestamp-2^63", _header_with(6, 2**63), {ErrorCode.OUT_OF_RANGE}),
    ("timestamp-float", _header_with(6, 1.5), {ErrorCode.WRONG_TYPE, ErrorCode.FORBIDDEN_TYPE}),
    ("kind-65536", _header_with(7, 0x10000), {ErrorCode.OUT_OF_RANGE}),
    ("body-hash-31", _header_with(8, bytes(31)), {ErrorCode.WRONG_LENGTH}),
    ("body-size-too-big", _header_with(9, MAX_BODY_SIZE + 1), {ErrorCode.OUT_OF_RANGE}),
    ("body-size-str", _header_with(9, "3"), {ErrorCode.WRONG_TYPE}),
    ("reserved-byte", _header_with(9, 3)[:-1] + b"\xc1", {ErrorCode.MALFORMED}),
    ("bad-utf8", _header_with(9, 3)[:-1] + b"\xa1\xff", {ErrorCode.MALFORMED}),
    ("array16-head", _raw_header(_PACKED, b"\xdc\x00\x0a"), {ErrorCode.NOT_CANONICAL}),
    (
        "seq-uint8",
        _raw_header([*_PACKED[:3], b"\xcc\x05", *_PACKED[4:]]),
        {ErrorCode.NOT_CANONICAL},
    ),
    (
        "kind-uint16",
        _raw_header([*_PACKED[:7], b"\xcd\x00\x01", *_PACKED[8:]]),
        {ErrorCode.NOT_CANONICAL},
    ),
    (
        "group-bin16",
        _raw_header([_PACKED[0], b"\xc5\x00\x20" + _G, *_PACKED[2:]]),
        {ErrorCode.NOT_CANONICAL},
    ),
    (
        "links-array16",
        _raw_header([*_PACKED[:5], b"\xdc\x00\x01" + _PACKED[5][1:], *_PACKED[6:]]),
        {ErrorCode.NOT_CANONICAL},
    ),
    ("too-large", b"\xc5\x04\x01" + bytes(1025), {ErrorCode.TOO_LARGE}),
]


def test_valid_header_fixture_decodes() -> None:
    assert decode_header(msgpack.packb(VALID_HEADER, use_bin_type=True)).seq == 5
    assert decode_header(_raw_header(_PACKED)).seq == 5


@pytest.mark.parametrize(
    ("data", "codes"), [pytest.param(d, c, id=i) for i, d, c in HEADER_REJECTIONS]
)
def test_header_rejections(data: bytes, codes: set[ErrorCode]) -> None:
    code = _code(decode_header, data)
    assert code in codes


def _valid_entry() -> Entry:
    kp = keypair(1)
    g = genesis_only(kp)
    return create_entry(
        kp, group=g.id, seq=2, prev=g.id, links=[], timestamp=BASE_TS, kind=KIND_POST, body=b"hello"
    )


def _entry_fields(**change: object) -> bytes:
    e = _valid_entry()
    parts: dict[str, object] = {"header": e.header_bytes, "sig": e.signature, "body": e.body}
    parts.update(change)
    return msgpack.packb([parts["header"], parts["sig"], parts["body"]], use_bin_type=True)


def _entry_rejections() -> list[tuple[str, bytes, set[ErrorCode]]]:
    e = _valid_entry()
    hb, sig = e.header_bytes, e.signature

    def bin8(b: bytes) -> bytes:
        return b"\xc4" + bytes([len(b)]) + b

    return [
        ("not-an-array", msgpack.packb(b"x", use_bin_type=True), {ErrorCode.WRONG_TYPE}),
        ("two-items", msgpack.packb([hb, sig], use_bin_type=True), {ErrorCode.WRONG_LENGTH}),
        (
            "four-items",
            msgpack.packb([hb, sig, None, None], use_bin_type=True),
            {ErrorCode.WRONG_LENGTH, ErrorCode.TOO_LARGE},  # the decoder's array limit is 3
        ),
        ("header-str", _entry_fields(header="x"), {ErrorCode.WRONG_TYPE}),
        ("header-too-big", _entry_fields(header=bytes(1025)), {ErrorCode.TOO_LARGE}),
        ("header-garbage", _entry_fields(header=b"\xc1"), {ErrorCode.MALFORMED}),
        ("header-trailing", _entry_fields(header=hb + b"\x00"), {ErrorCode.TRAILING_DATA}),
        ("header-truncated", _entry_fields(header=hb[:-1]), {ErrorCode.TRUNCATED}),
        ("sig-63", _entry_fields(sig=sig[:63]), {ErrorCode.WRONG_LENGTH}),
        ("sig-nil", _entry_fields(sig=None), {ErrorCode.WRONG_TYPE}),
        ("body-int", _entry_fields(body=5), {ErrorCode.WRONG_TYPE}),
        ("body-str", _entry_fields(body="hello"), {ErrorCode.WRONG_TYPE}),
        ("body-too-big", _entry_fields(body=bytes(MAX_BODY_SIZE + 1)), {ErrorCode.TOO_LARGE}),
        ("outer-array16", b"\xdc\x00\x03" + _entry_fields()[1:], {ErrorCode.NOT_CANONICAL}),
        (
            "header-bin16",
            b"\x93\xc5" + len(hb).to_bytes(2, "big") + hb + b"\xc4\x40" + sig + b"\xc4\x05hello",
            {ErrorCode.NOT_CANONICAL},
        ),
        (
            "body-bin16",
            b"\x93" + bin8(hb) + b"\xc4\x40" + sig + b"\xc5\x00\x05hello",
            {ErrorCode.NOT_CANONICAL},
        ),
        (
            "header-non-canonical",
            _entry_fields(header=b"\xdc\x00\x0a" + hb[1:]),
            {ErrorCode.NOT_CANONICAL},
        ),
        ("map", msgpack.packb({1: 2}), {ErrorCode.FORBIDDEN_TYPE}),
    ]


ENTRY_REJECTIONS = _entry_rejections()


@pytest.mark.parametrize(
    ("data", "codes"), [pytest.param(d, c, id=i) for i, d, c in ENTRY_REJECTIONS]
)
def test_entry_rejections(data: bytes, codes: set[ErrorCode]) -> None:
    assert _code(decode_entry, data) in codes


def _proof_bytes(version: object = 1, a: object = None, b: object = None) -> bytes:
    run = [[bytes(10)], bytes(64)]
    return msgpack.packb(
        [version, run if a is None else a, run if b is None else b], use_bin_type=True
    )


FORK_PROOF_REJECTIONS: list[tuple[str, bytes, set[ErrorCode]]] = [
    ("version-2", _proof_bytes(version=2), {ErrorCode.UNKNOWN_VERSION}),
    ("version-true", _proof_bytes(version=True), {ErrorCode.WRONG_TYPE}),
    (
        "one-run",
        msgpack.packb([1, [[bytes(10)], bytes(64)]], use_bin_type=True),
        {ErrorCode.WRONG_LENGTH},
    ),
    ("run-of-three", _proof_bytes(a=[[bytes(10)], bytes(64), None]), {ErrorCode.WRONG_LENGTH}),
    ("no-headers", _proof_bytes(a=[[], bytes(64)]), {ErrorCode.WRONG_LENGTH}),
    ("headers-not-array", _proof_bytes(a=[bytes(10), bytes(64)]), {ErrorCode.WRONG_TYPE}),
    ("header-too-big", _proof_bytes(a=[[bytes(1025)], bytes(64)]), {ErrorCode.TOO_LARGE}),
    ("65-headers", _proof_bytes(a=[[b"x"] * 65, bytes(64)]), {ErrorCode.TOO_LARGE}),
    ("sig-63", _proof_bytes(b=[[bytes(10)], bytes(63)]), {ErrorCode.WRONG_LENGTH}),
    ("non-canonical", b"\xdc\x00\x03" + _proof_bytes()[1:], {ErrorCode.NOT_CANONICAL}),
]


@pytest.mark.parametrize(
    ("data", "codes"), [pytest.param(d, c, id=i) for i, d, c in FORK_PROOF_REJECTIONS]
)
def test_fork_proof_rejections(data: bytes, codes: set[ErrorCode]) -> None:
    assert _code(decode_fork_proof, data) in codes


# --------------------------------------------------------------------------------------
# Stateless rules
# --------------------------------------------------------------------------------------

FOUNDER, ALICE, BOB, CAROL = keypair(0), keypair(1), keypair(2), keypair(3)
GENESIS = genesis_only(FOUNDER, body=b"group")
GROUP = GENESIS.id


def _rule_cases() -> list[tuple[str, Entry, ErrorCode]]:
    g = GROUP
    a1 = create_entry(
        ALICE, group=g, seq=1, prev=None, links=[g], timestamp=BASE_TS, kind=KIND_POST
    )
    l1, l2 = sorted([g, a1.id])
    other = genesis_only(keypair(9))
    return [
        (
            "genesis-nonzero-group",
            raw_entry(FOUNDER, group=g, seq=1, prev=None, kind=KIND_GENESIS),
            ErrorCode.BAD_GENESIS,
        ),
        (
            "genesis-seq-2",
            raw_entry(FOUNDER, group=ZERO_ID, seq=2, prev=g, kind=KIND_GENESIS),
            ErrorCode.BAD_GENESIS,
        ),
        (
            "genesis-with-links",
            raw_entry(FOUNDER, group=ZERO_ID, seq=1, prev=None, links=[a1.id], kind=KIND_GENESIS),
            ErrorCode.BAD_GENESIS,
        ),
        ("another-groups-genesis", other, ErrorCode.WRONG_GROUP),
        (
            "wrong-group",
            raw_entry(BOB, group=other.id, seq=1, prev=None, links=[g]),
            ErrorCode.WRONG_GROUP,
        ),
        (
            "zero-group",
            raw_entry(BOB, group=ZERO_ID, seq=1, prev=None, links=[g]),
            ErrorCode.WRONG_GROUP,
        ),
        (
            "seq-1-with-prev",
            raw_entry(BOB, group=g, seq=1, prev=a1.id, links=[g]),
            ErrorCode.BAD_PREVIOUS,
        ),
        (
            "seq-2-without-prev",
            raw_entry(BOB, group=g, seq=2, prev=None, links=[g]),
            ErrorCode.BAD_PREVIOUS,
        ),
        (
            "unsorted-links",
            raw_entry(BOB, group=g, seq=1, prev=None, links=[l2, l1]),
            ErrorCode.BAD_LINKS,
        ),
        (
            "duplicate-links",
            raw_entry(BOB, group=g, seq=1, prev=None, links=[g, g]),
            ErrorCode.BAD_LINKS,
        ),
        (
            "prev-in-links",
            raw_entry(ALICE, group=g, seq=2, prev=a1.id, links=[a1.id]),
            ErrorCode.BAD_LINKS,
        ),
        (
            "first-entry-without-links",
            raw_entry(BOB, group=g, seq=1, prev=None, links=[]),
            ErrorCode.BAD_LINKS,
        ),
        (
            "body-wrong-hash",
            raw_entry(BOB, group=g, seq=1, prev=None, links=[g], body=b"abc", body_hash=bytes(32)),
            ErrorCode.BODY_MISMATCH,
        ),
        (
            "body-wrong-size",
            raw_entry(BOB, group=g, seq=1, prev=None, links=[g], body=b"abc", body_size=4),
            ErrorCode.BODY_MISMATCH,
        ),
    ]


RULE_CASES = _rule_cases()


@pytest.mark.parametrize(("entry", "code"), [pytest.param(e, c, id=i) for i, e, c in RULE_CASES])
def test_check_entry_rules(entry: Entry, code: ErrorCode) -> None:
    with pytest.raises(ValidationError) as info:
        check_entry(entry, GROUP)
    assert info.value.code is code


@pytest.mark.parametrize("verify_each", [True, False])
@pytest.mark.parametrize(("entry", "code"), [pytest.param(e, c, id=i) for i, e, c in RULE_CASES])
def test_ingestor_rejects_rule_breakers(entry: Entry, code: ErrorCode, verify_each: bool) -> None:
    r = Replica(GROUP)
    r.offer([GENESIS])
    result = r.offer([entry], verify_each=verify_each)
    assert [(x.entry_id, x.error.code) for x in result.rejected] == [(entry.id, code)]
    assert not result.accepted and r.ingestor.pending_count == 0


def test_genesis_naming_a_previous_entry() -> None:
    # Checked as the genesis of its own group, so that only the prev rule is broken.
    e = raw_entry(FOUNDER, group=ZERO_ID, seq=1, prev=GROUP, kind=KIND_GENESIS)
    with pytest.raises(ValidationError) as info:
        check_entry(e, e.id)
    assert info.value.code is ErrorCode.BAD_PREVIOUS
    result = Replica(e.id).offer([e])
    assert [x.error.code for x in result.rejected] == [ErrorCode.BAD_PREVIOUS]


def test_check_entry_accepts_valid_entries() -> None:
    check_entry(GENESIS, GROUP)
    a1 = create_entry(
        ALICE,
        group=GROUP,
        seq=1,
        prev=None,
        links=[GROUP],
        timestamp=BASE_TS,
        kind=KIND_POST,
        body=b"x",
    )
    check_entry(a1, GROUP)
    check_entry(a1.without_body(), GROUP)  # the body may be absent
    assert verify_signature(a1)
    assert not verify_signature(bad_signature(a1, ALICE))


def test_creating_entries_checks_the_rules() -> None:
    with pytest.raises(ValidationError) as info:
        create_entry(
            BOB, group=GROUP, seq=1, prev=None, links=[], timestamp=BASE_TS, kind=KIND_POST
        )
    assert info.value.code is ErrorCode.BAD_LINKS
    header = make_header(
        group=GROUP,
        author=BOB.public_key,
        seq=1,
        prev=None,
        links=[GROUP, GROUP],
        timestamp=0,
        kind=1,
        body=b"",
    )
    assert header.links == (GROUP,)  # make_header sorts and de-duplicates
    with pytest.raises(ValueError):
        sign_header(ALICE, header, b"")


# --------------------------------------------------------------------------------------
# Ingestor: order independence
# --------------------------------------------------------------------------------------


@cache
def small_history() -> History:
    return build_history(authors=3, per_author=2, seed=11, link_probability=1.0)


@cache
def medium_history() -> History:
    return build_history(authors=4, per_author=6, seed=12)


@pytest.mark.parametrize("overlay_size", [200_000, 2])
@pytest.mark.parametrize("verify_each", [True, False])
def test_every_delivery_order_accepts_everything(verify_each: bool, overlay_size: int) -> None:
    h = small_history()
    assert len(h.entries) == 6
    for order in itertools.permutations(h.entries):
        r = Replica(h.group, overlay_size=overlay_size)
        for e in order:
            r.offer([e], verify_each=verify_each)  # checks dependency order of each result
        assert r.accepted_ids == h.ids
        assert not r.rejected and r.ingestor.pending_count == 0


@pytest.mark.parametrize("overlay_size", [200_000, 8])
def test_one_call_larger_than_the_overlay_accepts_everything(overlay_size: int) -> None:
    """The overlay is a cache: what one call accepts is stored only after the call
    returns, so the ingestor must not lose track of it while the call is running, even
    when the call accepts more entries than the overlay holds (a first sync of a big
    group in one call, with the default size)."""
    h = medium_history()
    r = Replica(h.group, overlay_size=overlay_size)
    r.offer(h.entries)  # causal order, one call
    assert r.accepted_ids == h.ids
    assert r.ingestor.pending_count == 0


@given(st.data())
def test_random_shuffles_and_batches_accept_everything(data: st.DataObject) -> None:
    h = medium_history()
    order = data.draw(st.permutations(h.entries))
    cuts = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    verify_each = data.draw(st.booleans())
    r = Replica(h.group)
    batch: list[Entry] = []
    for e, cut in zip(order, cuts, strict=True):
        batch.append(e)
        if cut:
            r.offer(batch, verify_each=verify_each)
            batch = []
    r.offer(batch, verify_each=verify_each)
    assert r.accepted_ids == h.ids
    assert not r.rejected and r.ingestor.pending_count == 0
    assert r.ingestor.missing_dependencies() == []


def test_duplicates_are_counted_not_accepted_twice() -> None:
    h = small_history()
    r = Replica(h.group)
    r.offer(h.entries[:3])
    again = r.offer(h.entries[:3])
    assert again.duplicates == 3 and not again.accepted and not again.rejected
    # In one batch, an entry offered twice counts once as a duplicate.
    rest = h.entries[3:]
    result = r.offer([*rest, rest[0]])
    assert result.duplicates == 1 and len(result.accepted) == len(rest)
    # An entry already pending is a duplicate too.
    r2 = Replica(h.group)
    last = h.entries[-1]
    r2.offer([last])
    assert r2.ingestor.pending_count == 1
    assert r2.offer([last]).duplicates == 1
    assert r2.ingestor.pending_count == 1


def test_pending_entries_report_what_they_wait_for() -> None:
    h = small_history()
    r = Replica(h.group)
    r.offer(h.entries[1:])  # everything but the genesis
    assert set(r.ingestor.pending_ids()) == h.ids - {h.group}
    assert r.ingestor.missing_dependencies() == [h.group]
    result = r.offer([h.genesis])
    assert {e.id for e in result.accepted} == h.ids
    assert result.pending == 0


def _alice_bob() -> tuple[Entry, Entry, Entry]:
    """G <- A1 <- B1 (B1 links A1), all valid."""
    a1 = create_entry(
        ALICE, group=GROUP, seq=1, prev=None, links=[GROUP], timestamp=BASE_TS, kind=KIND_POST
    )
    b1 = create_entry(
        BOB, group=GROUP, seq=1, prev=None, links=[a1.id], timestamp=BASE_TS, kind=KIND_POST
    )
    return GENESIS, a1, b1


def test_pending_bound_and_later_reoffer() -> None:
    #   G <- A1 <- A2 (held back) <- A3
    #                  ^------------- B1, C1, D1 link A2
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS + 1, kind=KIND_POST
    )
    a3 = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2.id, links=[], timestamp=BASE_TS + 2, kind=KIND_POST
    )
    waiting = [a3] + [
        create_entry(
            kp, group=GROUP, seq=1, prev=None, links=[a2.id], timestamp=BASE_TS + 2, kind=KIND_POST
        )
        for kp in (BOB, CAROL, keypair(4))
    ]
    r = Replica(GROUP, max_pending=2)
    r.offer([g, a1])
    codes = []
    for e in waiting:
        codes += [x.error.code for x in r.offer([e]).rejected]
    assert codes == [ErrorCode.PENDING_FULL, ErrorCode.PENDING_FULL]
    assert r.ingestor.pending_count == 2
    # An entry with a bad signature is refused too while the set is full.
    stray = bad_signature(
        create_entry(
            keypair(5),
            group=GROUP,
            seq=1,
            prev=None,
            links=[GROUP],
            timestamp=BASE_TS,
            kind=KIND_POST,
        ),
        keypair(5),
    )
    assert [x.error.code for x in r.offer([stray]).rejected] == [ErrorCode.PENDING_FULL]
    result = r.offer([a2])
    assert {e.id for e in result.accepted} == {a2.id, waiting[0].id, waiting[1].id}
    assert r.ingestor.pending_count == 0
    # The refused ones are not remembered as invalid: offering them again works.
    result = r.offer(waiting[2:])
    assert {e.id for e in result.accepted} == {e.id for e in waiting[2:]}
    assert r.accepted_ids == {g.id, a1.id, a2.id} | {e.id for e in waiting}


@pytest.mark.parametrize("dependents_first", [False, True])
def test_dependents_of_an_invalid_entry_are_rejected(dependents_first: bool) -> None:
    #   G <- A1 <- A2 (timestamp before A1's: invalid) <- A3
    #                  ^-- B1 links A2
    #                        ^-- B2 (prev B1)
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS - 1, kind=KIND_POST
    )
    a3 = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2.id, links=[], timestamp=BASE_TS + 2, kind=KIND_POST
    )
    b1 = create_entry(
        BOB, group=GROUP, seq=1, prev=None, links=[a2.id], timestamp=BASE_TS + 2, kind=KIND_POST
    )
    b2 = create_entry(
        BOB, group=GROUP, seq=2, prev=b1.id, links=[], timestamp=BASE_TS + 3, kind=KIND_POST
    )
    r = Replica(GROUP)
    r.offer([g, a1])
    order = [a3, b2, b1, a2] if dependents_first else [a2, a3, b1, b2]
    for e in order:
        r.offer([e])
    codes = {x.entry_id: x.error.code for x in r.rejected}
    assert codes == {
        a2.id: ErrorCode.BAD_TIMESTAMP,
        a3.id: ErrorCode.BAD_PREVIOUS,
        b1.id: ErrorCode.BAD_LINKS,
        b2.id: ErrorCode.BAD_PREVIOUS,
    }
    assert r.accepted_ids == {g.id, a1.id}
    assert r.ingestor.pending_count == 0
    # Offering them again gives the same verdict, cheaply.
    again = r.offer([a2, a3, b1, b2])
    assert {x.entry_id: x.error.code for x in again.rejected} == codes


def test_timestamp_may_stay_equal_but_not_go_backwards() -> None:
    g, a1, _ = _alice_bob()
    same = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    back = create_entry(
        ALICE,
        group=GROUP,
        seq=2,
        prev=a1.id,
        links=[],
        timestamp=BASE_TS - 1,
        kind=KIND_POST,
        body=b"x",
    )
    r = Replica(GROUP)
    r.offer([g, a1, same])
    assert same.id in r.accepted_ids
    result = r.offer([back])
    assert [x.error.code for x in result.rejected] == [ErrorCode.BAD_TIMESTAMP]
    err = result.rejected[0].error
    assert (err.expected, err.found) == (BASE_TS, BASE_TS - 1)


def test_prev_must_be_the_authors_previous_entry() -> None:
    g, a1, b1 = _alice_bob()
    a2 = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    skip = create_entry(
        ALICE, group=GROUP, seq=3, prev=a1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    foreign = raw_entry(ALICE, group=GROUP, seq=2, prev=b1.id, links=[], body=b"f")
    r = Replica(GROUP)
    r.offer([g, a1, b1, a2])
    result = r.offer([skip, foreign])
    codes = {x.entry_id: x.error for x in result.rejected}
    assert codes[skip.id].code is ErrorCode.BAD_SEQUENCE
    assert (codes[skip.id].expected, codes[skip.id].found) == (2, 3)
    assert codes[foreign.id].code is ErrorCode.BAD_PREVIOUS


def test_link_to_own_entry_is_rejected() -> None:
    g, a1, b1 = _alice_bob()
    a2 = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[b1.id], timestamp=BASE_TS, kind=KIND_POST
    )
    own = raw_entry(
        ALICE, group=GROUP, seq=3, prev=a2.id, links=sorted([a1.id, b1.id]), timestamp=BASE_TS
    )
    r = Replica(GROUP)
    r.offer([g, a1, b1, a2])
    assert [x.error.code for x in r.offer([own]).rejected] == [ErrorCode.BAD_LINKS]


def test_link_to_another_groups_entry_is_never_accepted() -> None:
    other_founder = keypair(9)
    other_genesis = genesis_only(other_founder, body=b"other")
    other_entry = create_entry(
        other_founder,
        group=other_genesis.id,
        seq=2,
        prev=other_genesis.id,
        links=[],
        timestamp=BASE_TS,
        kind=KIND_POST,
    )
    g = GENESIS
    links_other_genesis = create_entry(
        BOB,
        group=GROUP,
        seq=1,
        prev=None,
        links=[g.id, other_genesis.id],
        timestamp=BASE_TS,
        kind=KIND_POST,
    )
    links_other_entry = create_entry(
        CAROL,
        group=GROUP,
        seq=1,
        prev=None,
        links=[g.id, other_entry.id],
        timestamp=BASE_TS,
        kind=KIND_POST,
    )
    foreign = [other_genesis, other_entry]
    linkers = [links_other_genesis, links_other_entry]
    for first, second in ((linkers, foreign), (foreign, linkers)):
        r = Replica(GROUP)
        r.offer([g])
        r.offer(first)
        r.offer(second)
        r.offer([*foreign, *linkers])  # and once more, all together
        assert r.accepted_ids == {g.id}
        codes = {x.entry_id: x.error.code for x in r.rejected}
        assert codes[other_genesis.id] is codes[other_entry.id] is ErrorCode.WRONG_GROUP
        # A linking entry can wait (pending) or be refused as a dependent of an
        # invalid entry, but it is never valid.
        for e in linkers:
            assert e.id in r.ingestor.pending_ids() or codes.get(e.id) is ErrorCode.BAD_LINKS


def test_bodies_for_stored_entries() -> None:
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE,
        group=GROUP,
        seq=2,
        prev=a1.id,
        links=[],
        timestamp=BASE_TS,
        kind=KIND_POST,
        body=b"body",
    )
    r = Replica(GROUP)
    r.offer([g, a1, a2.without_body()])
    assert a2.id in r.accepted_ids
    result = r.offer([a2])
    assert result.duplicates == 1 and result.bodies == [(a2.id, b"body")]
    wrong = a2._replace(body=b"bodx")
    result = r.offer([wrong])
    assert [x.error.code for x in result.rejected] == [ErrorCode.BODY_MISMATCH]
    assert result.bodies == []


def test_body_mismatch_is_not_remembered_against_the_header() -> None:
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE,
        group=GROUP,
        seq=2,
        prev=a1.id,
        links=[],
        timestamp=BASE_TS,
        kind=KIND_POST,
        body=b"body",
    )
    r = Replica(GROUP)
    r.offer([g, a1])
    assert [x.error.code for x in r.offer([a2._replace(body=b"evil")]).rejected] == [
        ErrorCode.BODY_MISMATCH
    ]
    assert [e.id for e in r.offer([a2]).accepted] == [a2.id]


def test_an_unvouched_bad_signature_waits_forever() -> None:
    g, a1, _ = _alice_bob()
    a2 = bad_signature(
        create_entry(
            ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
        ),
        ALICE,
    )
    for verify_each in (True, False):
        r = Replica(GROUP)
        result = r.offer([g, a1, a2], verify_each=verify_each)
        assert a2.id not in {e.id for e in result.accepted}
        assert not result.rejected
        assert r.ingestor.pending_ids() == [a2.id]


# --------------------------------------------------------------------------------------
# Forks
# --------------------------------------------------------------------------------------


def _fork() -> tuple[Entry, Entry, Entry, Entry]:
    """G <- A1 <- A2 and A1 <- A2' (same author, same sequence)."""
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE,
        group=GROUP,
        seq=2,
        prev=a1.id,
        links=[],
        timestamp=BASE_TS + 1,
        kind=KIND_POST,
        body=b"left",
    )
    a2x = create_entry(
        ALICE,
        group=GROUP,
        seq=2,
        prev=a1.id,
        links=[],
        timestamp=BASE_TS + 1,
        kind=KIND_POST,
        body=b"right",
    )
    return g, a1, a2, a2x


def _check_proof(proof: ForkProof, ids: set[bytes]) -> None:
    assert verify_fork_proof(proof, GROUP) == (ALICE.public_key, 2)
    assert (proof.author, proof.seq) == (ALICE.public_key, 2)
    assert {entry_id(proof.a.headers[0]), entry_id(proof.b.headers[0])} == ids
    assert decode_fork_proof(encode_fork_proof(proof)) == proof


@pytest.mark.parametrize("verify_each", [True, False])
def test_forks_are_detected_in_every_order(verify_each: bool) -> None:
    g, a1, a2, a2x = _fork()
    keys = set()
    for order in itertools.permutations([a1, a2, a2x]):
        r = Replica(GROUP)
        r.offer([g])
        for e in order:
            r.offer([e], verify_each=verify_each)
        assert r.accepted_ids == {g.id, a1.id, a2.id, a2x.id}  # both branches stay valid
        assert len(r.forks) == 1
        _check_proof(r.forks[0], {a2.id, a2x.id})
        keys.add(r.forks[0].key())
    # Same batch.
    r = Replica(GROUP)
    r.offer([g, a1, a2, a2x], verify_each=verify_each)
    assert len(r.forks) == 1
    keys.add(r.forks[0].key())
    assert len(keys) == 1


_ORDERS = list(itertools.permutations(["A2", "A2'", "A3'"]))


@pytest.mark.parametrize("verify_each", [True, False])
@pytest.mark.parametrize("order", _ORDERS, ids=["-".join(o) for o in _ORDERS])
def test_fork_with_a_vouched_branch_is_detected_in_every_order(
    order: tuple[str, ...], verify_each: bool
) -> None:
    """The second branch's own signature is bad, but its authentic successor vouches
    for it, so it is valid and a fork. The proof's run for that branch has two headers.

        G <- A1 <- A2            (good signature)
              ^--- A2' (bad) <- A3' (good)
    """
    g, a1, a2, a2x = _fork()
    a2x = bad_signature(a2x, ALICE)
    a3x = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2x.id, links=[], timestamp=BASE_TS + 2, kind=KIND_POST
    )
    named = {"A2": a2, "A2'": a2x, "A3'": a3x}
    r = Replica(GROUP)
    r.offer([g, a1])
    for name in order:
        r.offer([named[name]], verify_each=verify_each)
    assert r.accepted_ids == {g.id, a1.id, a2.id, a2x.id, a3x.id}
    assert len(r.forks) == 1, "the fork at sequence 2 was not reported"
    proof = r.forks[0]
    _check_proof(proof, {a2.id, a2x.id})
    vouched = proof.a if entry_id(proof.a.headers[0]) == a2x.id else proof.b
    assert vouched.headers == (a2x.header_bytes, a3x.header_bytes)


def test_fork_proof_verification_failures() -> None:
    _, a1, a2, a2x = _fork()
    b1 = create_entry(
        BOB, group=GROUP, seq=1, prev=None, links=[a1.id], timestamp=BASE_TS, kind=KIND_POST
    )
    b2 = create_entry(
        BOB, group=GROUP, seq=2, prev=b1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    a3 = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2.id, links=[], timestamp=BASE_TS + 2, kind=KIND_POST
    )

    def run(*es: Entry) -> AuthenticatedRun:
        return AuthenticatedRun(
            headers=tuple(e.header_bytes for e in es), signature=es[-1].signature
        )

    good = ForkProof(a=run(a2), b=run(a2x))
    assert verify_fork_proof(good) == (ALICE.public_key, 2)
    bad_cases = {
        "identical": ForkProof(a=run(a2), b=run(a2)),
        "other-author": ForkProof(a=run(a2), b=run(b2)),
        "other-seq": ForkProof(a=run(a2), b=run(a1)),
        "bad-signature": ForkProof(
            a=run(a2), b=AuthenticatedRun(headers=(a2x.header_bytes,), signature=a2.signature)
        ),
        "not-a-chain": ForkProof(a=run(a2), b=run(a2x, a3)),
    }
    for name, proof in bad_cases.items():
        with pytest.raises(ValidationError) as info:
            verify_fork_proof(proof)
        assert info.value.code is ErrorCode.BAD_FORK_PROOF, name
    with pytest.raises(ValidationError) as info:
        verify_fork_proof(good, group=bytes(32))
    assert info.value.code is ErrorCode.BAD_FORK_PROOF
    with pytest.raises(DecodeError):
        verify_fork_proof(
            ForkProof(a=run(a2), b=AuthenticatedRun(headers=(b"\xc1",), signature=bytes(64)))
        )


# --------------------------------------------------------------------------------------
# Bulk vs. single agreement (chain authentication)
# --------------------------------------------------------------------------------------


def reference_valid(entries: Sequence[Entry], group: bytes) -> set[bytes]:
    """The spec's definition of the valid set, written out directly:

    authentic(e) := sig_ok(e) or some f by the same author with f.seq == e.seq + 1
                    and f.prev == id(e) is authentic
    valid(e)     := well_formed(e) and authentic(e)
                    and (e.seq == 1 or prev is valid, same author, seq - 1, ts <= e's)
                    and every link is a valid entry of another author
    """
    by_id = {e.id: e for e in entries}
    successors: dict[bytes, list[Entry]] = {}
    for e in entries:
        if e.header.prev is not None:
            successors.setdefault(e.header.prev, []).append(e)

    @cache
    def authentic(eid: bytes) -> bool:
        e = by_id[eid]
        if verify(e.header.author, NS_ENTRY, e.id, e.signature):
            return True
        return any(
            f.header.author == e.header.author
            and f.header.seq == e.header.seq + 1
            and authentic(f.id)
            for f in successors.get(eid, ())
        )

    @cache
    def valid(eid: bytes) -> bool:
        e = by_id.get(eid)
        if e is None:
            return False
        try:
            check_entry(e, group)
        except ValidationError:
            return False
        if not authentic(eid):
            return False
        h = e.header
        if h.seq > 1:
            p = by_id.get(h.prev) if h.prev is not None else None
            if p is None or not valid(p.id):
                return False
            if (
                p.header.author != h.author
                or p.header.seq != h.seq - 1
                or p.header.timestamp > h.timestamp
            ):
                return False
        for link in h.links:
            if not valid(link) or by_id[link].header.author == h.author:
                return False
        return True

    return {e.id for e in entries if valid(e.id)}


def test_reference_function_on_a_drawn_scenario() -> None:
    """Pin the reference itself on a scenario drawn by hand.

        G <- A1 <- A2* <- A3      * = bad signature
                    ^---- B1* <- B2*
    1. A2's signature is bad, but A3 (good) vouches for it: A1, A2, A3 valid.
    2. B1 links A2; B1's own signature is bad and B2, its only successor, is bad too:
       nothing vouches for B1 or B2, so neither is valid.
    """
    g, a1, _ = _alice_bob()
    a2 = create_entry(
        ALICE, group=GROUP, seq=2, prev=a1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    a3 = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    b1 = create_entry(
        BOB, group=GROUP, seq=1, prev=None, links=[a2.id], timestamp=BASE_TS, kind=KIND_POST
    )
    b2 = create_entry(
        BOB, group=GROUP, seq=2, prev=b1.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    es = [g, a1, bad_signature(a2, ALICE), a3, bad_signature(b1, BOB), bad_signature(b2, BOB)]
    assert reference_valid(es, GROUP) == {g.id, a1.id, a2.id, a3.id}
    assert reference_valid([g, a1, bad_signature(a2, ALICE)], GROUP) == {g.id, a1.id}


@cache
def agreement_histories() -> tuple[History, ...]:
    return tuple(
        build_history(authors=3, per_author=5, seed=s, body_size=4, link_probability=lp)
        for s, lp in ((21, 0.3), (22, 0.7), (23, 1.0))
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[History, set[bytes]]:
    """A history and the set of entries its authors signed badly: per author, none,
    all, the first, the last, first and last, or a random subset."""
    h = draw(st.sampled_from(agreement_histories()))
    bad: set[bytes] = set()
    for chain in h.chains().values():
        pattern = draw(st.sampled_from(["none", "all", "first", "last", "ends", "random"]))
        n = len(chain)
        if pattern == "random":
            flags = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        else:
            flags = [
                pattern == "all"
                or (pattern in ("first", "ends") and i == 0)
                or (pattern in ("last", "ends") and i == n - 1)
                for i in range(n)
            ]
        bad |= {e.id for e, f in zip(chain, flags, strict=True) if f}
    return h, bad


def _bulk_batches(h: History, entries: Sequence[Entry], data: st.DataObject) -> list[list[Entry]]:
    """Each author's chain cut into contiguous runs at random points, the runs shuffled,
    and neighbouring runs sometimes sent together in one batch."""
    by_id = {e.id: e for e in entries}
    runs: list[list[Entry]] = []
    for chain in h.chains().values():
        current: list[Entry] = []
        cuts = data.draw(st.lists(st.booleans(), min_size=len(chain), max_size=len(chain)))
        for e, cut in zip(chain, cuts, strict=True):
            current.append(by_id[e.id])
            if cut:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
    runs = data.draw(st.permutations(runs))
    joins = data.draw(st.lists(st.booleans(), min_size=len(runs), max_size=len(runs)))
    batches: list[list[Entry]] = []
    for run, join in zip(runs, joins, strict=True):
        if join and batches:
            batches[-1].extend(run)
        else:
            batches.append(list(run))
    return batches


@settings(max_examples=200)
@given(scenarios(), st.data())
def test_bulk_and_single_ingest_agree_with_the_spec(
    scenario: tuple[History, set[bytes]], data: st.DataObject
) -> None:
    h, bad = scenario
    entries = h.with_bad_signatures(bad)
    expected = reference_valid(entries, h.group)

    single = Replica(h.group)
    for e in data.draw(st.permutations(entries), label="single order"):
        single.offer([e], verify_each=True)

    bulk = Replica(h.group)
    for batch in _bulk_batches(h, entries, data):
        bulk.offer(batch, verify_each=False)

    at_once = Replica(h.group)
    at_once.offer(entries, verify_each=False)

    assert single.accepted_ids == expected
    assert bulk.accepted_ids == expected
    assert at_once.accepted_ids == expected
    everything = {e.id for e in entries}
    for r in (single, bulk, at_once):
        # Nothing here is invalid for good: what is not valid waits.
        assert not r.rejected
        assert set(r.ingestor.pending_ids()) == everything - expected


# --------------------------------------------------------------------------------------
# Fork proofs are a function of the set of entries (03 F1)
# --------------------------------------------------------------------------------------


def _final_proofs(forks: Sequence[ForkProof]) -> dict[bytes, bytes]:
    """The proof a replica ends with per fork id: a later one replaces an earlier one."""
    return {p.key(): encode_fork_proof(p) for p in forks}


def _offer_keeping_signatures(r: Replica, batch: Sequence[Entry], *, verify_each: bool) -> None:
    """Offer as a store-backed caller does: a verifying signature reported for a stored
    entry replaces the stored one."""
    result = r.offer(batch, verify_each=verify_each)
    for eid, sig in result.signatures:
        r.view.entries[eid] = r.view.entries[eid]._replace(signature=sig)


def test_fork_vouched_only_by_a_rule_breaking_successor_is_proven_in_every_order() -> None:
    """A2' has a bad signature; A3', its successor, is signed but its timestamp is before
    A2''s (C4), so A3' is rejected. A3' still vouches for A2' (03 A2), so A2' is valid
    and a fork with A2, and the proof's run for A2' is A2', A3' although A3' is never
    stored.

        G <- A1 <- A2              (good signature)
              ^--- A2' (bad) <- A3' (good signature, bad-timestamp)
    """
    g, a1, a2, a2x = _fork()
    a2x = bad_signature(a2x, ALICE)
    a3x = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2x.id, links=[], timestamp=BASE_TS, kind=KIND_POST
    )
    expected = fork_proof_of((a2,), (a2x, a3x))
    for verify_each in (True, False):
        for order in itertools.permutations([a2, a2x, a3x]):
            r = Replica(GROUP)
            r.offer([g, a1])
            for e in order:
                r.offer([e], verify_each=verify_each)
            assert r.accepted_ids == {g.id, a1.id, a2.id, a2x.id}
            assert [x.error.code for x in r.rejected] == [ErrorCode.BAD_TIMESTAMP]
            assert [encode_fork_proof(p) for p in r.forks] == [expected], order
        r = Replica(GROUP)
        r.offer([g, a1, a2x, a3x, a2], verify_each=verify_each)
        assert [encode_fork_proof(p) for p in r.forks] == [expected]


def fork_proof_of(a: Sequence[Entry], b: Sequence[Entry]) -> bytes:
    runs = sorted(
        (
            AuthenticatedRun(headers=tuple(e.header_bytes for e in x), signature=x[-1].signature)
            for x in (a, b)
        ),
        key=lambda run: entry_id(run.headers[0]),
    )
    return encode_fork_proof(ForkProof(a=runs[0], b=runs[1]))


def test_a_verifying_copy_replaces_a_bad_stored_signature_and_shortens_the_proof() -> None:
    """A2' is stored with a bad signature (A3' vouched for it in bulk). Its genuine copy
    arrives later: the ingestor reports the verifying signature for the caller to keep,
    and makes the fork proof again with the one-header run."""
    g, a1, a2, a2x = _fork()
    good = a2x
    a2x = bad_signature(a2x, ALICE)
    a3x = create_entry(
        ALICE, group=GROUP, seq=3, prev=a2x.id, links=[], timestamp=BASE_TS + 2, kind=KIND_POST
    )
    r = Replica(GROUP)
    r.offer([g, a1, a2, a2x, a3x])
    assert [encode_fork_proof(p) for p in r.forks] == [fork_proof_of((a2,), (a2x, a3x))]
    result = r.offer([good])
    assert result.duplicates == 1 and not result.accepted
    assert result.signatures == [(good.id, good.signature)]
    assert [encode_fork_proof(p) for p in result.forks] == [fork_proof_of((a2,), (good,))]
    # The same copy again, or another bad one, changes nothing.
    assert not r.offer([a2x]).signatures
    # Where the genuine copy came first, the replica ends with the same proof.
    r2 = Replica(GROUP)
    r2.offer([g, a1, a2, good, a2x, a3x], verify_each=True)
    assert _final_proofs(r2.forks) == _final_proofs(r.forks)


def reference_fork_proofs(entries: Sequence[Entry], group: bytes) -> dict[bytes, bytes]:
    """03 F1 written out directly: one proof per pair of valid entries with the same
    author and sequence; each run is the entry alone if a copy's signature verifies,
    else the shortest chain of well-formed successors ending in a verifying signature
    (at most 64 headers), ties broken by the smaller id, successor by successor."""
    copies: dict[bytes, list[Entry]] = {}
    for e in entries:
        copies.setdefault(e.id, []).append(e)

    def good(eid: bytes) -> bytes | None:
        for c in copies[eid]:
            if verify_signature(c):
                return c.signature
        return None

    merged = [next((c for c in cs if verify_signature(c)), cs[0]) for cs in copies.values()]
    valid = reference_valid(merged, group)

    def wf(e: Entry) -> bool:
        try:
            check_entry(e.without_body(), group)
        except ValidationError:
            return False
        return True

    def run(eid: bytes) -> AuthenticatedRun | None:
        level = [(eid, (copies[eid][0].header_bytes,))]
        while level and len(level[0][1]) <= 64:
            for cur, hs in level:
                sig = good(cur)
                if sig is not None:
                    return AuthenticatedRun(headers=hs, signature=sig)
            level = [
                (f.id, (*hs, f.header_bytes))
                for cur, hs in level
                for f in sorted(merged, key=lambda x: x.id)
                if f.header.prev == cur
                and wf(f)
                and f.header.seq == decode_header(hs[-1]).seq + 1
                and f.header.author == decode_header(hs[-1]).author
            ]
        return None

    out: dict[bytes, bytes] = {}
    slots: dict[tuple[bytes, int], list[bytes]] = {}
    for e in merged:
        if e.id in valid:
            slots.setdefault((e.header.author, e.header.seq), []).append(e.id)
    for ids in slots.values():
        for x, y in itertools.combinations(sorted(ids), 2):
            a, b = run(x), run(y)
            if a is not None and b is not None:
                proof = ForkProof(a=a, b=b)
                out[proof.key()] = encode_fork_proof(proof)
    return out


@st.composite
def fork_scenarios(draw: st.DrawFn) -> list[Entry]:
    """Copies of a small history of alice's forks, drawn from these parts::

        G <- A1 <- A2 <- A3                          bob: B1 links A1
               ^--- A2' <- A3' <- A4'                 (* = drawn: bad signature,
               ^--- A2''       ^-- A3'' (prev A2')        rule-breaking, genuine copy
                                                          as well, present or not)

    A3' may break C4 (timestamp before A2') or C6 (links alice's A1): rejected, but it
    still vouches for A2'. Every entry with a bad signature may also come as a genuine
    copy."""
    g, a1, _ = _alice_bob()
    b1 = create_entry(
        BOB, group=GROUP, seq=1, prev=None, links=[a1.id], timestamp=BASE_TS + 1, kind=KIND_POST
    )

    def alice(seq: int, prev: Entry, body: bytes, ts: int, links: Sequence[bytes] = ()) -> Entry:
        return create_entry(
            ALICE,
            group=GROUP,
            seq=seq,
            prev=prev.id,
            links=links,
            timestamp=ts,
            kind=KIND_POST,
            body=body,
        )

    a2 = alice(2, a1, b"a2", BASE_TS + 2)
    a3 = alice(3, a2, b"a3", BASE_TS + 3)
    a2x = alice(2, a1, b"a2'", BASE_TS + 2)
    breaks = draw(st.sampled_from(["none", "timestamp", "own-link"]))
    a3x = alice(
        3,
        a2x,
        b"a3'",
        BASE_TS + (1 if breaks == "timestamp" else 3),
        links=[a1.id] if breaks == "own-link" else [b1.id],
    )
    a4x = alice(4, a3x, b"a4'", BASE_TS + 4)
    a2y = alice(2, a1, b"a2''", BASE_TS + 2)
    a3z = alice(3, a2x, b"a3''", BASE_TS + 3)
    chosen = [g, a1, b1, a2]
    for e in (a3, a2x, a3x, a4x, a2y, a3z):
        if draw(st.booleans()):
            chosen.append(e)
    out: list[Entry] = []
    for e in chosen:
        copy = draw(st.sampled_from(["good", "bad", "both"])) if e not in (g, a1, b1) else "good"
        if copy in ("bad", "both"):
            out.append(bad_signature(e, ALICE))
        if copy in ("good", "both"):
            out.append(e)
    return out


@settings(max_examples=150, deadline=None)
@given(fork_scenarios(), st.data())
def test_every_order_and_batching_gives_the_same_fork_proofs(
    entries: list[Entry], data: st.DataObject
) -> None:
    expected = reference_fork_proofs(entries, GROUP)

    def run(batches: Sequence[Sequence[Entry]], verify_each: bool) -> dict[bytes, bytes]:
        r = Replica(GROUP)
        for batch in batches:
            _offer_keeping_signatures(r, batch, verify_each=verify_each)
        for p in r.forks:
            assert verify_fork_proof(p, GROUP) == (p.author, p.seq)
        return _final_proofs(r.forks)

    assert run([entries], False) == expected
    assert run([entries], True) == expected
    order = data.draw(st.permutations(entries), label="order")
    cuts = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    batches: list[list[Entry]] = [[]]
    for e, cut in zip(order, cuts, strict=True):
        batches[-1].append(e)
        if cut:
            batches.append([])
    verify_each = data.draw(st.booleans(), label="verify_each")
    assert run(batches, verify_each) == expected
    assert run([[e] for e in order], True) == expected
