"""The sealed keyring (spec/12-encryption.md 12.8): a member's receive private keys and
epoch secrets, sealed at rest under a key derived from its identity seed.

Theory of operation
-------------------
A stolen store must show headers and ciphertext only. The keys that open content are
therefore never stored in the clear: they live in a :class:`Keyring`, which is written
only as the blob :func:`seal_keyring` makes, under :func:`keyring_key` of the member's
seed. The seed itself is in the key file (02 2.7), which may be sealed with a passphrase,
so the keyring is protected exactly as well as the identity it belongs to.

The ring holds two maps: X25519 receive private keys by their public keys (to open the
slots addressed to them), and epoch secrets by the id of the rekey entry that carries
them (entry ids name one group each, so one ring serves all of a member's groups). The
blob is ``encode(["p2pcomm-keyring", 1, nonce, ciphertext])``; the plaintext is the
canonical encoding of the two maps as sorted arrays, so one ring has one plaintext.

No file I/O: the store keeps the blob, and writes a new one (with a fresh nonce) whenever
the ring changes. Every failure to open a blob is a :class:`~p2pcomm.errors.SealError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from ..errors import DecodeError, ErrorCode, SealError
from . import crypto
from .encoding import (
    Limits,
    decode_canonical,
    encode,
    expect_array,
    expect_bytes,
    expect_str,
    expect_uint,
)

__all__ = [
    "KEYRING_MAGIC",
    "KEYRING_VERSION",
    "LABEL_KEYRING_KEY",
    "MAX_ENTRIES",
    "Keyring",
    "keyring_key",
    "open_keyring",
    "seal_keyring",
]

KEYRING_MAGIC: Final = "p2pcomm-keyring"
KEYRING_VERSION: Final = 1
#: HKDF info label of the keyring key (12.2).
LABEL_KEYRING_KEY: Final = "p2pcomm/1/keyring-key"
#: The most receive keys, and the most epoch secrets, one ring holds (KR3).
MAX_ENTRIES: Final = 1 << 16

_KEY: Final = 32
_NONCE: Final = crypto.AEAD_NONCE_SIZE
_TAG: Final = crypto.AEAD_TAG_SIZE
#: The plaintext, [version, [private...], [[entry id, secret]...]], is at most 6.5 MiB
#: (12 + 103 bytes per pair of a key and a secret); its decoder allows 8 MiB.
_MAX_PLAINTEXT: Final = 8 << 20
_INNER_LIMITS: Final = Limits(
    max_size=_MAX_PLAINTEXT, max_bytes=_KEY, max_array=MAX_ENTRIES, max_depth=3
)
_OUTER_LIMITS: Final = Limits(
    max_size=_MAX_PLAINTEXT + 64, max_bytes=_MAX_PLAINTEXT + _TAG, max_array=4, max_depth=1
)


class Keyring:
    """Receive private keys by public key and epoch secrets by rekey entry id.

    A plain in-memory container: adding never removes, and adding a key or secret that is
    already there with the same value changes nothing. Two rings are equal when they hold
    the same keys and secrets.
    """

    __slots__ = ("_receive", "_secrets")

    def __init__(
        self,
        receive_keys: Mapping[bytes, bytes] | None = None,
        epoch_secrets: Mapping[bytes, bytes] | None = None,
    ) -> None:
        self._receive: dict[bytes, bytes] = {}
        self._secrets: dict[bytes, bytes] = {}
        for public, private in (receive_keys or {}).items():
            if self.add_receive_key(private) != public:
                raise ValueError(f"{public.hex()} is not the public key of its private key")
        for entry_id, secret in (epoch_secrets or {}).items():
            self.add_secret(entry_id, secret)

    def add_receive_key(self, private: bytes) -> bytes:
        """Keep an X25519 receive private key; returns its public key."""
        if len(private) != _KEY:
            raise ValueError(f"receive private key must be {_KEY} bytes, found {len(private)}")
        public = crypto.x25519_public(private)
        self._check_room(self._receive, public, private, "receive keys")
        self._receive[public] = private
        return public

    def add_secret(self, entry_id: bytes, secret: bytes) -> None:
        """Keep the epoch secret carried by rekey entry ``entry_id``."""
        if len(entry_id) != 32 or len(secret) != 32:
            raise ValueError(
                f"entry id and secret must be 32 bytes, found {len(entry_id)} and {len(secret)}"
            )
        self._check_room(self._secrets, entry_id, secret, "epoch secrets")
        self._secrets[entry_id] = secret

    @staticmethod
    def _check_room(table: dict[bytes, bytes], key: bytes, value: bytes, what: str) -> None:
        held = table.get(key)
        if held is not None and held != value:
            raise ValueError(f"{key.hex()} already holds another value in the ring's {what}")
        if held is None and len(table) >= MAX_ENTRIES:
            raise ValueError(f"a keyring holds at most {MAX_ENTRIES} {what}")

    def receive_private(self, public: bytes) -> bytes | None:
        """The private key of receive public key ``public``, if the ring holds it."""
        return self._receive.get(public)

    def secret(self, entry_id: bytes) -> bytes | None:
        """The epoch secret of rekey entry ``entry_id``, if the ring holds it."""
        return self._secrets.get(entry_id)

    def receive_keys(self) -> Iterator[tuple[bytes, bytes]]:
        """``(public, private)`` pairs in ascending order of public key."""
        return iter(sorted(self._receive.items()))

    def epoch_secrets(self) -> Iterator[tuple[bytes, bytes]]:
        """``(entry id, secret)`` pairs in ascending order of entry id."""
        return iter(sorted(self._secrets.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        return self._receive == other._receive and self._secrets == other._secrets

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # never shows key material
        return f"Keyring({len(self._receive)} receive keys, {len(self._secrets)} epoch secrets)"


def keyring_key(member_seed: bytes) -> bytes:
    """The key a member's keyring is sealed under (KR1):
    ``HKDF(salt = "", ikm = seed, info = "p2pcomm/1/keyring-key")``."""
    if len(member_seed) != crypto.SEED_SIZE:
        raise ValueError(f"member seed must be {crypto.SEED_SIZE} bytes, found {len(member_seed)}")
    return crypto.hkdf_sha256(b"", member_seed, LABEL_KEYRING_KEY.encode("ascii"))


def _ad() -> bytes:
    return encode([KEYRING_MAGIC, KEYRING_VERSION])


def _plaintext(ring: Keyring) -> bytes:
    return encode(
        [
            KEYRING_VERSION,
            [private for _, private in ring.receive_keys()],
            [[entry_id, secret] for entry_id, secret in ring.epoch_secrets()],
        ]
    )


def seal_keyring(ring: Keyring, key: bytes, nonce: bytes) -> bytes:
    """The sealed blob of ``ring`` under ``key`` (KR2). ``nonce`` MUST be 12 fresh random
    bytes for every blob sealed under the same key."""
    if len(key) != _KEY or len(nonce) != _NONCE:
        raise ValueError(
            f"key and nonce must be {_KEY} and {_NONCE} bytes, found {len(key)} and {len(nonce)}"
        )
    ciphertext = crypto.aead_seal(key, nonce, _ad(), _plaintext(ring))
    return encode([KEYRING_MAGIC, KEYRING_VERSION, nonce, ciphertext])


def _corrupt(message: str) -> SealError:
    return SealError(ErrorCode.KEYRING_CORRUPT, message)


def open_keyring(blob: bytes, key: bytes) -> Keyring:
    """The ring sealed in ``blob`` under ``key`` (KR4).

    Raises :class:`SealError` and nothing else for bad input: ``KEYRING_CORRUPT`` when the
    blob is not a keyring (truncated, malformed, trailing bytes), ``UNKNOWN_VERSION`` for a
    later version, ``DECRYPT_FAILED`` for the wrong key or altered bytes.
    """
    if len(key) != _KEY:
        raise ValueError(f"keyring key must be {_KEY} bytes, found {len(key)}")
    try:
        fields = decode_canonical(blob, _OUTER_LIMITS)
        if not fields or not isinstance(fields[0], str) or fields[0] != KEYRING_MAGIC:
            raise _corrupt("not a p2pcomm keyring")
        version = fields[1] if len(fields) > 1 else None
        if isinstance(version, int) and version != KEYRING_VERSION:
            raise SealError(
                ErrorCode.UNKNOWN_VERSION,
                f"keyring version {version} is not supported",
                expected=KEYRING_VERSION,
                found=version,
            )
        expect_array(fields, "keyring", length=4)
        expect_str(fields[0], "keyring magic")
        expect_uint(fields[1], "keyring version", minimum=KEYRING_VERSION, maximum=KEYRING_VERSION)
        nonce = expect_bytes(fields[2], "keyring nonce", length=_NONCE)
        ciphertext = expect_bytes(fields[3], "keyring ciphertext")
    except DecodeError as exc:
        raise _corrupt(f"damaged or not a keyring ({exc.message})") from None
    try:
        plaintext = crypto.aead_open(key, nonce, _ad(), ciphertext)
    except crypto.AeadError:
        raise SealError(
            ErrorCode.DECRYPT_FAILED, "keyring does not open with this key (or was altered)"
        ) from None
    try:
        return _decode_plaintext(plaintext)
    except DecodeError as exc:
        raise _corrupt(f"sealed keyring content is malformed ({exc.message})") from None


def _decode_plaintext(plaintext: bytes) -> Keyring:
    inner = decode_canonical(plaintext, _INNER_LIMITS)
    expect_array(inner, "keyring content", length=3)
    expect_uint(
        inner[0], "keyring content version", minimum=KEYRING_VERSION, maximum=KEYRING_VERSION
    )
    ring = Keyring()
    previous = b""
    for item in expect_array(inner[1], "receive keys"):
        public = ring.add_receive_key(expect_bytes(item, "receive private key", length=_KEY))
        if public <= previous:
            raise _not_ascending("receive keys")
        previous = public
    previous = b""
    for item in expect_array(inner[2], "epoch secrets"):
        pair = expect_array(item, "epoch secret", length=2)
        entry_id = expect_bytes(pair[0], "rekey entry id", length=32)
        if entry_id <= previous:
            raise _not_ascending("epoch secrets")
        previous = entry_id
        ring.add_secret(entry_id, expect_bytes(pair[1], "epoch secret", length=32))
    return ring


def _not_ascending(what: str) -> DecodeError:
    return DecodeError(
        ErrorCode.NOT_CANONICAL,
        f"{what} are not in strictly ascending order",
        expected="strictly ascending",
    )
