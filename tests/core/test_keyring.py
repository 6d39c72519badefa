"""The sealed keyring (p2pcomm/core/keyring.py; spec/12-encryption.md 12.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core import crypto
from p2pcomm.core import keyring as kr
from p2pcomm.core.encoding import encode
from p2pcomm.errors import ErrorCode, SealError


def b(label: str, n: int = 32) -> bytes:
    return crypto.blake2b_256(b"test keyring " + label.encode())[:n]


SEED = b("seed")
KEY = kr.keyring_key(SEED)
NONCE = b("nonce", 12)


def ring(n_keys: int = 2, n_secrets: int = 3) -> kr.Keyring:
    r = kr.Keyring()
    for i in range(n_keys):
        r.add_receive_key(b(f"receive {i}"))
    for i in range(n_secrets):
        r.add_secret(b(f"rekey {i}"), b(f"secret {i}"))
    return r


def test_keyring_key_is_hkdf_of_the_seed_with_its_own_label() -> None:
    assert crypto.hkdf_sha256(b"", SEED, b"p2pcomm/1/keyring-key") == KEY
    assert kr.keyring_key(b("other seed")) != KEY
    with pytest.raises(ValueError):
        kr.keyring_key(SEED[:31])


def test_a_ring_holds_keys_by_public_key_and_secrets_by_entry_id() -> None:
    r = kr.Keyring()
    public = r.add_receive_key(b("receive"))
    assert public == crypto.x25519_public(b("receive"))
    assert r.receive_private(public) == b("receive")
    assert r.receive_private(b("nobody")) is None
    r.add_secret(b("rekey"), b("secret"))
    r.add_secret(b("rekey"), b("secret"))  # the same again: nothing changes
    assert r.secret(b("rekey")) == b("secret")
    assert r.secret(b("other")) is None
    with pytest.raises(ValueError):
        r.add_secret(b("rekey"), b("another secret"))
    with pytest.raises(ValueError):
        r.add_secret(b("rekey")[:31], b("secret"))
    with pytest.raises(ValueError):
        r.add_receive_key(bytes(31))
    assert list(r.epoch_secrets()) == [(b("rekey"), b("secret"))]
    assert kr.Keyring({public: b("receive")}, {b("rekey"): b("secret")}) == r
    with pytest.raises(ValueError):
        kr.Keyring({b("not its public key"): b("receive")})
    assert repr(r) == "Keyring(1 receive keys, 1 epoch secrets)"  # no key material


@pytest.mark.parametrize(("n_keys", "n_secrets"), [(0, 0), (1, 0), (0, 1), (2, 3), (5, 40)])
def test_seal_and_open_round_trip(n_keys: int, n_secrets: int) -> None:
    r = ring(n_keys, n_secrets)
    blob = kr.seal_keyring(r, KEY, NONCE)
    assert kr.open_keyring(blob, KEY) == r
    # one ring, one plaintext: the order keys were added in does not matter
    again = kr.Keyring()
    for pub, priv in reversed(list(r.receive_keys())):
        assert again.add_receive_key(priv) == pub
    for eid, secret in reversed(list(r.epoch_secrets())):
        again.add_secret(eid, secret)
    assert kr.seal_keyring(again, KEY, NONCE) == blob


@given(
    st.lists(st.binary(min_size=32, max_size=32), max_size=4),
    st.dictionaries(
        st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), max_size=8
    ),
    st.binary(min_size=12, max_size=12),
)
def test_any_ring_round_trips(
    privates: list[bytes], secrets: dict[bytes, bytes], nonce: bytes
) -> None:
    r = kr.Keyring(epoch_secrets=secrets)
    for private in privates:
        r.add_receive_key(private)
    assert kr.open_keyring(kr.seal_keyring(r, KEY, nonce), KEY) == r


def test_every_truncation_raises_seal_error_and_nothing_else() -> None:
    blob = kr.seal_keyring(ring(), KEY, NONCE)
    for n in range(len(blob)):
        with pytest.raises(SealError) as info:
            kr.open_keyring(blob[:n], KEY)
        assert info.value.code in {ErrorCode.KEYRING_CORRUPT, ErrorCode.DECRYPT_FAILED}


def test_every_flipped_bit_raises_seal_error_and_nothing_else() -> None:
    blob = kr.seal_keyring(ring(1, 1), KEY, NONCE)
    for i in range(len(blob)):
        for bit in range(8):
            altered = bytearray(blob)
            altered[i] ^= 1 << bit
            with pytest.raises(SealError):
                kr.open_keyring(bytes(altered), KEY)


def test_the_wrong_key_does_not_open() -> None:
    blob = kr.seal_keyring(ring(), KEY, NONCE)
    with pytest.raises(SealError) as info:
        kr.open_keyring(blob, kr.keyring_key(b("another seed")))
    assert info.value.code is ErrorCode.DECRYPT_FAILED


def sealed(fields: list[object], plaintext: bytes) -> bytes:
    ad = encode(["p2pcomm-keyring", 1])
    return encode([*fields, crypto.aead_seal(KEY, NONCE, ad, plaintext)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("blob", "code"),
    [
        (b"", ErrorCode.KEYRING_CORRUPT),
        (encode(["p2pcomm-key", 1, NONCE, bytes(16)]), ErrorCode.KEYRING_CORRUPT),
        (encode(["p2pcomm-keyring", 2, NONCE, bytes(16)]), ErrorCode.UNKNOWN_VERSION),
        (encode(["p2pcomm-keyring", 2]), ErrorCode.UNKNOWN_VERSION),
        (encode(["p2pcomm-keyring", 1, NONCE]), ErrorCode.KEYRING_CORRUPT),
        (encode(["p2pcomm-keyring", 1, NONCE[:11], bytes(16)]), ErrorCode.KEYRING_CORRUPT),
        (encode(["p2pcomm-keyring", 1, NONCE, bytes(16)]), ErrorCode.DECRYPT_FAILED),
        (encode(["p2pcomm-keyring", 1, NONCE, b""]), ErrorCode.DECRYPT_FAILED),
        (kr.seal_keyring(ring(), KEY, NONCE) + b"\x00", ErrorCode.KEYRING_CORRUPT),
        (b"\x81\xa1a\x01", ErrorCode.KEYRING_CORRUPT),  # a map
    ],
    ids=[
        "empty",
        "key-file-magic",
        "version-2",
        "version-2-short",
        "three-items",
        "nonce-11",
        "bad-tag",
        "empty-ciphertext",
        "trailing",
        "map",
    ],
)
def test_refusals(blob: bytes, code: ErrorCode) -> None:
    with pytest.raises(SealError) as info:
        kr.open_keyring(blob, KEY)
    assert info.value.code is code


@pytest.mark.parametrize(
    "plaintext",
    [
        encode([1, [], []])[:-1],
        encode([2, [], []]),
        encode([1, []]),
        encode([1, [bytes(31)], []]),
        encode([1, [], [[b("e"), b("s"), b("x")]]]),
        encode([1, [b("k"), b("k")], []]),  # a key twice
        encode(
            [1, sorted([b("k1"), b("k2")], key=crypto.x25519_public, reverse=True), []]
        ),  # not in order of public key
        encode([1, [], sorted([[b("e1"), b("s")], [b("e2"), b("s")]], reverse=True)]),
    ],
    ids=[
        "truncated",
        "version-2",
        "two-items",
        "short-key",
        "three-item-pair",
        "repeated-key",
        "keys-out-of-order",
        "secrets-out-of-order",
    ],
)
def test_a_malformed_plaintext_under_a_good_tag_is_corrupt(plaintext: bytes) -> None:
    with pytest.raises(SealError) as info:
        kr.open_keyring(sealed(["p2pcomm-keyring", 1, NONCE], plaintext), KEY)
    assert info.value.code is ErrorCode.KEYRING_CORRUPT


def test_seal_refuses_a_key_or_nonce_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        kr.seal_keyring(ring(), KEY[:31], NONCE)
    with pytest.raises(ValueError):
        kr.seal_keyring(ring(), KEY, NONCE[:11])
    with pytest.raises(ValueError):
        kr.open_keyring(kr.seal_keyring(ring(), KEY, NONCE), KEY[:16])
