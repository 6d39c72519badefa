"""Building blocks of content encryption (p2pcomm/core/seal.py; spec/12-encryption.md):
padding, the envelope, rekey slots, pointers, epoch ids and keys."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core import crypto
from p2pcomm.core import seal as s
from p2pcomm.core.encoding import encode
from p2pcomm.core.log import MAX_BODY_SIZE
from p2pcomm.errors import DecodeError, ErrorCode, SealError


def b(label: str, n: int = 32) -> bytes:
    return crypto.blake2b_256(b"test seal " + label.encode())[:n]


G = b("group")
OTHER_G = b("other group")
ALICE = b("alice")
BOB = b("bob")
KEY = b("epoch key")
EID = b("epoch id", 8)
NONCE = b("nonce", 12)
CTX = s.AadContext(G, ALICE, 7, 20)
SECRET = b("secret")
RECEIVE = [b(f"receive {i}") for i in range(4)]
RECEIVE_PUB = [crypto.x25519_public(r) for r in RECEIVE]

#: X25519 public keys of small order (the all-zero output for any private key), as
#: u-coordinates: 0, 1, and a point of order 8.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


def code_of(exc: pytest.ExceptionInfo[BaseException]) -> ErrorCode:
    assert isinstance(exc.value, SealError | DecodeError)
    return exc.value.code


# ------------------------------------------------------------------ crypto helpers


def test_hkdf_sha256_matches_rfc_5869() -> None:
    ikm = bytes.fromhex("0b" * 22)
    assert crypto.hkdf_sha256(
        bytes(range(13)), ikm, bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42
    ) == bytes.fromhex(  # test case 1
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    assert crypto.hkdf_sha256(b"", ikm, b"", 42) == bytes.fromhex(  # test case 3
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_aead_with_explicit_nonce_matches_rfc_8439() -> None:
    # RFC 8439 section 2.8.2.
    key = bytes(range(0x80, 0xA0))
    nonce = bytes.fromhex("070000004041424344454647")
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for"
        b" the future, sunscreen would be it."
    )
    sealed = crypto.aead_seal(key, nonce, ad, plaintext)
    assert sealed[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"
    assert crypto.aead_open(key, nonce, ad, sealed) == plaintext
    with pytest.raises(crypto.AeadError):
        crypto.aead_open(key, nonce, ad + b"x", sealed)
    with pytest.raises(crypto.AeadError):
        crypto.aead_open(key, nonce, ad, sealed[:15])
    with pytest.raises(ValueError):
        crypto.aead_seal(key, nonce[:8], ad, plaintext)


# ------------------------------------------------------------------ padding


@pytest.mark.parametrize(
    ("n", "padded"),
    [(0, 0), (1, 1), (2, 2), (7, 7), (8, 8), (9, 10), (100, 104), (1000, 1024), (48000, 49152)],
)
def test_padme_lengths(n: int, padded: int) -> None:
    assert s.padme_length(n) == padded


def test_padme_agrees_with_the_paper_formula_and_bounds_the_overhead() -> None:
    import math

    for n in range(2, 70000):
        e = math.floor(math.log2(n))
        s_ = math.floor(math.log2(e)) + 1
        mask = (1 << (e - s_)) - 1
        assert s.padme_length(n) == (n + mask) & ~mask
        assert s.padme_length(n) - n <= 0.12 * n
    with pytest.raises(ValueError):
        s.padme_length(-1)


def value(n: int) -> bytes:
    """A msgpack value of exactly ``n`` bytes (``n >= 1``): what every plaintext is."""
    if n == 1:
        return b"\xc0"
    if n == 258:  # past a bin 8 of 255 bytes, short of a bin 16 of 256
        return b"\x92" + encode(b"v" * 255) + b"\xc0"
    got = encode(b"v" * (n - 2 if n <= 257 else n - 3))
    assert len(got) == n
    return got


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=30,
)


@given(VALUES)
def test_pad_round_trips(v: object) -> None:
    plaintext = encode(v)  # type: ignore[arg-type]
    padded = s.pad(plaintext)
    assert len(padded) == s.padme_length(len(plaintext))
    assert padded == plaintext + bytes(len(padded) - len(plaintext))
    assert s.unpad(padded) == plaintext


@pytest.mark.parametrize("n", [*range(1, 300), 1000, 4095, 4096, 4097, 47103, 47104])
def test_pad_adds_at_most_padme_and_never_more_than_12_percent(n: int) -> None:
    padded = s.pad(value(n))
    assert len(padded) == s.padme_length(n)
    assert len(padded) - n <= 0.12 * n
    assert s.unpad(padded) == value(n)


def test_the_worst_case_from_100_bytes_is_below_12_percent() -> None:
    # With a terminator, 128 bytes padded to 144 (12.5 %); without, 129 bytes do.
    worst = max(range(100, s.MAX_PLAINTEXT_SIZE + 1), key=lambda n: s.padme_length(n) / n)
    assert (worst, s.padme_length(worst)) == (129, 144)
    assert len(s.pad(value(128))) == 128


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"\x91", b"\xc0\xc0", b"\xc1", bytes(2), b"hello", encode(b"abc") + b"\x00"],
    ids=["empty", "truncated", "two-values", "c1", "two-zeros", "text", "trailing-zero"],
)
def test_pad_refuses_anything_but_one_value(plaintext: bytes) -> None:
    with pytest.raises(ValueError):
        s.pad(plaintext)


NINE = value(9)  # Padmé(9) = 10: one zero


@pytest.mark.parametrize(
    "padded",
    [
        b"",
        b"\xc1",
        b"\x92\xc0",  # an array of two holding one value
        bytes(8),  # the value 0, then seven zeros: Padmé(1) is 1
        NINE,  # one zero short
        NINE + bytes(2),  # one zero too many
        NINE + b"\x01",  # not a zero
        NINE + b"\x80",  # a terminator (revision 5 and before) is not a zero either
        b"x" * 99 + bytes(5),  # one value of 1 byte, then nonzero bytes
        encode(b"v" * 98) + bytes(8),  # 100 bytes pad to 104, not 108
    ],
)
def test_unpad_refuses_what_pad_never_makes(padded: bytes) -> None:
    with pytest.raises(SealError) as info:
        s.unpad(padded)
    assert info.value.code is ErrorCode.BAD_PADDING


# ------------------------------------------------------------------ envelope


@given(st.binary(max_size=5000), st.binary(min_size=12, max_size=12))
def test_envelope_round_trips(data: bytes, nonce: bytes) -> None:
    plaintext = encode(data)
    body = s.seal_body(KEY, EID, nonce, CTX, plaintext)
    env = s.decode_envelope(body)
    assert (env.epoch_id, env.nonce) == (EID, nonce)
    assert len(env.ciphertext) == s.padme_length(len(plaintext)) + 16
    assert s.open_body(KEY, body, CTX) == plaintext


@pytest.mark.parametrize("n", [1, 100, 222, 223, 239, 240, 255, 1000, 4000, s.MAX_PLAINTEXT_SIZE])
def test_envelope_overhead_is_44_or_45_bytes_before_padding(n: int) -> None:
    body = s.seal_body(KEY, EID, NONCE, CTX, value(n))
    padded = s.padme_length(n)
    # array 1 + version 1 + epoch id 2+8 + nonce 2+12 + bin header 2 or 3 + tag 16
    assert len(body) - padded == (44 if padded + 16 < 256 else 45)


def test_the_largest_plaintext_fills_a_body_and_one_more_byte_does_not_fit() -> None:
    n = s.MAX_PLAINTEXT_SIZE
    assert len(s.seal_body(KEY, EID, NONCE, CTX, value(n))) <= MAX_BODY_SIZE
    assert 45 + s.padme_length(n + 1) > MAX_BODY_SIZE
    with pytest.raises(ValueError):
        s.seal_body(KEY, EID, NONCE, CTX, value(n + 1))


def test_aad_layout() -> None:
    aad = s.AadContext(G, ALICE, 2**63 - 1, 65535).aad()
    assert aad == G + ALICE + bytes.fromhex("7fffffffffffffff") + bytes.fromhex("ffff")
    assert len(aad) == 74
    for bad in [
        dict(group=G[:31]),
        dict(author=ALICE + b"x"),
        dict(seq=-1),
        dict(seq=2**64),
        dict(kind=65536),
    ]:
        args = dict(group=G, author=ALICE, seq=1, kind=1) | bad
        with pytest.raises(ValueError):
            s.AadContext(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ctx",
    [
        s.AadContext(OTHER_G, ALICE, 7, 20),
        s.AadContext(G, BOB, 7, 20),
        s.AadContext(G, ALICE, 8, 20),
        s.AadContext(G, ALICE, 7, 21),
    ],
    ids=["other-group", "other-author", "other-seq", "other-kind"],
)
def test_a_ciphertext_moved_to_another_entry_does_not_open(ctx: s.AadContext) -> None:
    body = s.seal_body(KEY, EID, NONCE, CTX, encode("hello"))
    with pytest.raises(SealError) as info:
        s.open_body(KEY, body, ctx)
    assert info.value.code is ErrorCode.DECRYPT_FAILED


def test_a_flipped_bit_or_another_key_does_not_open() -> None:
    body = s.seal_body(KEY, EID, NONCE, CTX, encode("hello world"))
    with pytest.raises(SealError) as info:
        s.open_body(b("other key"), body, CTX)
    assert info.value.code is ErrorCode.DECRYPT_FAILED
    ct_start = len(body) - len(s.decode_envelope(body).ciphertext)
    nonce_start = ct_start - 2 - 12  # the ciphertext's bin header is 2 bytes here
    for i in [*range(nonce_start, nonce_start + 12), *range(ct_start, len(body))]:
        for bit in range(8):
            altered = bytearray(body)
            altered[i] ^= 1 << bit
            with pytest.raises(SealError) as info:
                s.open_body(KEY, bytes(altered), CTX)
            assert info.value.code is ErrorCode.DECRYPT_FAILED


def test_bad_padding_under_a_good_tag_is_refused() -> None:
    ciphertext = crypto.aead_seal(KEY, NONCE, CTX.aad(), b"hello\x80\x00\x00")
    body = encode([1, EID, NONCE, ciphertext])
    with pytest.raises(SealError) as info:
        s.open_body(KEY, body, CTX)
    assert info.value.code is ErrorCode.BAD_PADDING


GOOD_CT = crypto.aead_seal(KEY, NONCE, CTX.aad(), s.pad(b"x"))
MALFORMED: list[tuple[str, bytes, ErrorCode]] = [
    ("empty", b"", ErrorCode.TRUNCATED),
    ("not-an-array", encode(b"abc"), ErrorCode.WRONG_TYPE),
    ("version-2", encode([2, EID, NONCE, GOOD_CT]), ErrorCode.UNKNOWN_VERSION),
    ("version-2-three-items", encode([2, EID, NONCE]), ErrorCode.UNKNOWN_VERSION),
    ("version-0", encode([0, EID, NONCE, GOOD_CT]), ErrorCode.UNKNOWN_VERSION),
    ("three-items", encode([1, EID, NONCE]), ErrorCode.WRONG_LENGTH),
    ("five-items", encode([1, EID, NONCE, GOOD_CT, b""]), ErrorCode.TOO_LARGE),
    ("version-str", encode(["1", EID, NONCE, GOOD_CT]), ErrorCode.WRONG_TYPE),
    ("epoch-id-7", encode([1, EID[:7], NONCE, GOOD_CT]), ErrorCode.WRONG_LENGTH),
    ("epoch-id-str", encode([1, "12345678", NONCE, GOOD_CT]), ErrorCode.WRONG_TYPE),
    ("nonce-13", encode([1, EID, NONCE + b"x", GOOD_CT]), ErrorCode.WRONG_LENGTH),
    ("ciphertext-16", encode([1, EID, NONCE, GOOD_CT[:16]]), ErrorCode.WRONG_LENGTH),
    ("ciphertext-nil", encode([1, EID, NONCE, None]), ErrorCode.WRONG_TYPE),
    ("trailing", encode([1, EID, NONCE, GOOD_CT]) + b"\x00", ErrorCode.TRAILING_DATA),
    ("truncated", encode([1, EID, NONCE, GOOD_CT])[:-1], ErrorCode.TRUNCATED),
    (
        "not-canonical",
        b"\x94\x01\xc4\x08"
        + EID
        + b"\xc4\x0c"
        + NONCE
        + b"\xc5\x00"
        + bytes([len(GOOD_CT)])
        + GOOD_CT,
        ErrorCode.NOT_CANONICAL,
    ),
    ("too-large", encode([1, EID, NONCE, bytes(MAX_BODY_SIZE)]), ErrorCode.TOO_LARGE),
]


@pytest.mark.parametrize(
    ("body", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_envelopes_are_decode_errors(body: bytes, code: ErrorCode) -> None:
    with pytest.raises(DecodeError) as info:
        s.open_body(KEY, body, CTX)
    assert info.value.code is code


def test_every_truncation_of_an_envelope_is_a_typed_error() -> None:
    body = s.seal_body(KEY, EID, NONCE, CTX, encode("some content"))
    for n in range(len(body)):
        with pytest.raises(DecodeError):
            s.open_body(KEY, body[:n], CTX)


def test_seal_body_refuses_arguments_of_the_wrong_size() -> None:
    for key, eid, nonce in [
        (KEY[:31], EID, NONCE),
        (KEY, EID + b"x", NONCE),
        (KEY, EID, NONCE[:8]),
    ]:
        with pytest.raises(ValueError):
            s.seal_body(key, eid, nonce, CTX, encode(""))


# ------------------------------------------------------------------ slots


def test_each_recipient_opens_its_slot_by_index_and_by_trial() -> None:
    rekey = s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"context")
    assert rekey.count == 3 and len(rekey.slots) == 3 * 48
    assert rekey.eph_pub == crypto.x25519_public(s.slot_ephemeral(SECRET))
    for i in range(3):
        assert s.open_slot(RECEIVE[i], i, rekey, G, b"context") == SECRET
        assert s.open_slot(RECEIVE[i], None, rekey, G, b"context") == SECRET
    assert s.verify_slots(SECRET, RECEIVE_PUB[:3], rekey, G, b"context") == []


def test_slots_are_deterministic_and_bound_to_recipient_group_and_context() -> None:
    one = s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"context")
    assert s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"context") == one
    assert s.seal_slots(SECRET, RECEIVE_PUB[:3], OTHER_G, b"context").slots != one.slots
    assert s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"context2").slots != one.slots
    # same recipient at another position: the same slot (a slot does not depend on i)
    moved = s.seal_slots(SECRET, [RECEIVE_PUB[2], RECEIVE_PUB[0]], G, b"context")
    assert moved.slot(0) == one.slot(2) and moved.slot(1) == one.slot(0)


def test_a_wrong_recipient_cannot_open_any_slot() -> None:
    rekey = s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"context")
    for index in [None, 0, 1, 2, 3, -1]:
        with pytest.raises(SealError) as info:
            s.open_slot(RECEIVE[3], index, rekey, G, b"context")
        assert info.value.code is ErrorCode.DECRYPT_FAILED
    # the right recipient at the wrong index, in the wrong group or context
    for args in [(1, G, b"context"), (0, OTHER_G, b"context"), (0, G, b"other")]:
        with pytest.raises(SealError) as info:
            s.open_slot(RECEIVE[0], args[0], rekey, args[1], args[2])
        assert info.value.code is ErrorCode.DECRYPT_FAILED


def test_an_empty_recipient_list_has_no_slots() -> None:
    rekey = s.seal_slots(SECRET, [], G, b"")
    assert rekey.count == 0 and rekey.slots == b""
    assert s.verify_slots(SECRET, [], rekey, G, b"") == []
    with pytest.raises(SealError):
        s.open_slot(RECEIVE[0], None, rekey, G, b"")


def test_verify_slots_finds_garbled_missing_and_surplus_slots() -> None:
    recipients = RECEIVE_PUB[:3]
    rekey = s.seal_slots(SECRET, recipients, G, b"c")
    garbled = bytearray(rekey.slots)
    garbled[48 + 5] ^= 1
    assert s.verify_slots(SECRET, recipients, s.Rekey(rekey.eph_pub, bytes(garbled)), G, b"c") == [
        1
    ]
    # a slot sealed to someone else in place of recipient 2
    other = s.seal_slots(SECRET, [RECEIVE_PUB[3]], G, b"c")
    swapped = s.Rekey(rekey.eph_pub, rekey.slots[:96] + other.slots)
    assert s.verify_slots(SECRET, recipients, swapped, G, b"c") == [2]
    assert s.verify_slots(
        SECRET, recipients, s.Rekey(rekey.eph_pub, rekey.slots[:48]), G, b"c"
    ) == [1, 2]
    extra = s.Rekey(rekey.eph_pub, rekey.slots + rekey.slots[:48])
    assert s.verify_slots(SECRET, recipients, extra, G, b"c") == [3]
    other_eph = s.Rekey(crypto.x25519_public(b("eph")), rekey.slots)
    assert s.verify_slots(SECRET, recipients, other_eph, G, b"c") == [0, 1, 2]
    assert s.verify_slots(b("other secret"), recipients, rekey, G, b"c") == [0, 1, 2]
    assert s.verify_slots(SECRET, recipients, rekey, G, b"d") == [0, 1, 2]


@pytest.mark.parametrize("point", LOW_ORDER, ids=["zero", "one", "order-8"])
def test_low_order_keys_are_refused(point: bytes) -> None:
    with pytest.raises(SealError) as info:
        s.seal_slots(SECRET, [RECEIVE_PUB[0], point], G, b"")
    assert info.value.code is ErrorCode.BAD_KEY
    with pytest.raises(SealError) as info:
        s.open_slot(RECEIVE[0], None, s.Rekey(point, bytes(48)), G, b"")
    assert info.value.code is ErrorCode.BAD_KEY
    good = s.seal_slots(SECRET, [RECEIVE_PUB[0]], G, b"")
    assert s.verify_slots(SECRET, [RECEIVE_PUB[0], point], good, G, b"") == [1]


def test_rekey_shapes_and_argument_sizes() -> None:
    with pytest.raises(DecodeError) as info:
        s.Rekey(bytes(31), b"")
    assert info.value.code is ErrorCode.WRONG_LENGTH
    with pytest.raises(DecodeError) as info:
        s.Rekey(bytes(32), bytes(47))
    assert info.value.code is ErrorCode.WRONG_LENGTH
    with pytest.raises(IndexError):
        s.Rekey(bytes(32), bytes(48)).slot(1)
    with pytest.raises(ValueError):
        s.seal_slots(SECRET[:31], RECEIVE_PUB[:1], G, b"")
    with pytest.raises(ValueError):
        s.seal_slots(SECRET, [RECEIVE_PUB[0][:31]], G, b"")
    with pytest.raises(ValueError):
        s.seal_slots(SECRET, RECEIVE_PUB[:1], G, bytes(s.MAX_CONTEXT_SIZE + 1))
    s.seal_slots(SECRET, RECEIVE_PUB[:1], G, bytes(s.MAX_CONTEXT_SIZE))


# ------------------------------------------------------------------ pointers


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_pointers_round_trip(k: int) -> None:
    previous = [b(f"previous {i}") for i in range(k)]
    blob = s.seal_pointers(SECRET, previous)
    assert len(blob) == 16 + 32 * k
    assert s.open_pointers(SECRET, blob) == previous


def test_pointers_refuse_another_secret_altered_bytes_and_bad_sizes() -> None:
    blob = s.seal_pointers(SECRET, [b("p0"), b("p1")])
    with pytest.raises(SealError) as info:
        s.open_pointers(b("other"), blob)
    assert info.value.code is ErrorCode.DECRYPT_FAILED
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        s.open_pointers(SECRET, altered)
    for n in [0, 15, 17, 47, 49, len(blob) - 1]:
        with pytest.raises(DecodeError) as dinfo:
            s.open_pointers(SECRET, blob[:n])
        assert dinfo.value.code is ErrorCode.WRONG_LENGTH
    with pytest.raises(SealError):  # a whole number of secrets, but cut
        s.open_pointers(SECRET, blob[:48])
    with pytest.raises(ValueError):
        s.seal_pointers(SECRET, [bytes(31)])


def test_pointer_and_slot_keys_differ_from_the_epoch_key() -> None:
    # The secret's three uses (ephemeral, pointers, epoch key) get three keys.
    eph = s.slot_ephemeral(SECRET)
    pointers = crypto.hkdf_sha256(b"", SECRET, b"p2pcomm/1/pointers")
    key = s.epoch_key(G, [(b("rekey"), SECRET)])
    assert len({eph, pointers, key, SECRET}) == 4


# ------------------------------------------------------------------ epoch id and key


def test_epoch_id_layout_and_order_independence() -> None:
    ids = [b("rekey 1"), b("rekey 2"), b("rekey 3")]
    expected = crypto.blake2b_256(
        crypto.namespace("p2pcomm/1/epoch-id") + G + b"".join(sorted(ids))
    )
    for order in itertools.permutations(ids):
        assert s.epoch_id(G, order) == expected[:8]
    assert s.epoch_id(OTHER_G, ids) != expected[:8]
    assert s.epoch_id(G, ids[:2]) != expected[:8]


def test_epoch_key_depends_on_every_secret_and_not_on_input_order() -> None:
    frontier = [(b("rekey 1"), b("s1")), (b("rekey 2"), b("s2"))]
    key = s.epoch_key(G, frontier)
    assert s.epoch_key(G, list(reversed(frontier))) == key
    ordered = sorted(frontier)
    assert key == crypto.hkdf_sha256(
        s.epoch_id(G, [i for i, _ in frontier]),
        ordered[0][1] + ordered[1][1],
        b"p2pcomm/1/epoch-key" + G,
    )
    assert s.epoch_key(G, [(frontier[0][0], b("other")), frontier[1]]) != key
    assert s.epoch_key(G, frontier[:1]) != key
    assert s.epoch_key(OTHER_G, frontier) != key
    # the same secrets under swapped ids: another key
    swapped = [(frontier[0][0], frontier[1][1]), (frontier[1][0], frontier[0][1])]
    assert s.epoch_key(G, swapped) != key


def test_an_empty_or_repeated_frontier_is_refused() -> None:
    with pytest.raises(ValueError):
        s.epoch_id(G, [])
    with pytest.raises(ValueError):
        s.epoch_key(G, [])
    with pytest.raises(ValueError):
        s.epoch_id(G, [b("x"), b("x")])
    with pytest.raises(ValueError):
        s.epoch_key(G, [(b("x"), b("s1")), (b("x"), b("s2"))])
    with pytest.raises(ValueError):
        s.epoch_id(G, [b("x")[:31]])
    with pytest.raises(ValueError):
        s.epoch_key(G, [(b("x"), bytes(31))])


def test_a_member_reads_content_end_to_end() -> None:
    """The pieces together: a rekey to three members, the epoch key from the frontier
    (one rekey entry), an envelope; a member opens its slot, derives the key and reads."""
    rekey_entry = b("the rekey entry id")
    rekey = s.seal_slots(SECRET, RECEIVE_PUB[:3], G, b"op context")
    key = s.epoch_key(G, [(rekey_entry, SECRET)])
    body = s.seal_body(key, s.epoch_id(G, [rekey_entry]), NONCE, CTX, encode("hello, group"))
    env = s.decode_envelope(body)
    assert env.epoch_id == s.epoch_id(G, [rekey_entry])
    secret = s.open_slot(RECEIVE[1], None, rekey, G, b"op context")
    assert s.open_body(s.epoch_key(G, [(rekey_entry, secret)]), body, CTX) == encode("hello, group")
