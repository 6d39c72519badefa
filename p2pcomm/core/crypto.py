"""Cryptographic primitives: the only module that imports ``cryptography``.

Everything else in p2pcomm calls these small functions, so the choice of primitives is
visible in one place (spec/02-identity.md, spec/05-channel.md):

* Ed25519 for signatures (RFC 8032, as implemented by OpenSSL through ``cryptography``,
  which rejects non-canonical ``S`` values);
* BLAKE2b for hashing (``hashlib``; 256-bit digests for ids, 512-bit inside Noise);
* X25519 and ChaCha20-Poly1305 for the secure channel;
* HKDF-SHA256 (RFC 5869), X25519 and ChaCha20-Poly1305 with explicit nonces for the
  building blocks of group content encryption (spec/12-encryption.md).

Signing namespaces: every kind of signed object is signed over
``namespace(label) || fixed-layout bytes`` where ``namespace(label)`` is the 32-byte
BLAKE2b-256 digest of the ASCII label. A signature made for one kind can never be
replayed as another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = [
    "AEAD_KEY_SIZE",
    "AEAD_NONCE_SIZE",
    "AEAD_TAG_SIZE",
    "HASH_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "AeadError",
    "Ed25519Signer",
    "aead_decrypt",
    "aead_encrypt",
    "aead_open",
    "aead_seal",
    "blake2b_256",
    "blake2b_512",
    "blake2b_keyed",
    "ed25519_public_from_seed",
    "ed25519_sign",
    "ed25519_verify",
    "hkdf_sha256",
    "namespace",
    "scrypt_key",
    "x25519_dh",
    "x25519_public",
]

AEAD_KEY_SIZE = 32
AEAD_NONCE_SIZE = 12
AEAD_TAG_SIZE = 16
HASH_SIZE = 32
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


def blake2b_256(data: bytes) -> bytes:
    """BLAKE2b with a 32-byte digest, no key, no personalisation."""
    return hashlib.blake2b(data, digest_size=32).digest()


def blake2b_512(data: bytes) -> bytes:
    """BLAKE2b with a 64-byte digest (the hash of ``Noise_*_BLAKE2b``)."""
    return hashlib.blake2b(data, digest_size=64).digest()


def namespace(label: str) -> bytes:
    """The 32-byte signing namespace for ``label`` (``BLAKE2b-256(ascii(label))``)."""
    return blake2b_256(label.encode("ascii"))


class Ed25519Signer:
    """An Ed25519 private key held in memory. Build it from a 32-byte seed."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError(f"ed25519 seed must be {SEED_SIZE} bytes, found {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes(_RAW, _RAW_PUB)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @property
    def raw_sign(self) -> Callable[[bytes], bytes]:
        """The underlying ``sign`` method itself: the least Python work per signature,
        for signing many messages on worker threads (the GIL is held only around it)."""
        return self._key.sign

    def seed(self) -> bytes:
        return self._key.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )


def ed25519_public_from_seed(seed: bytes) -> bytes:
    return Ed25519Signer(seed).public_key


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    return Ed25519Signer(seed).sign(message)


# Parsing a public key costs about as much as a hash; cache the few hundred members of
# a group so single-entry verification is dominated by the signature check itself.
_PUBKEY_CACHE: dict[bytes, Ed25519PublicKey | None] = {}
_PUBKEY_CACHE_MAX = 4096


def _public_key(public_key: bytes) -> Ed25519PublicKey | None:
    key = _PUBKEY_CACHE.get(public_key)
    if key is None and public_key not in _PUBKEY_CACHE:
        try:
            key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            key = None
        if len(_PUBKEY_CACHE) >= _PUBKEY_CACHE_MAX:
            _PUBKEY_CACHE.clear()
        _PUBKEY_CACHE[public_key] = key
    return key


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    Never raises for bad input: a malformed key or signature is simply not valid.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    key = _public_key(public_key)
    if key is None:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def x25519_public(private_key: bytes) -> bytes:
    """The X25519 public key of a raw 32-byte private key."""
    return (
        X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(_RAW, _RAW_PUB)
    )


def x25519_dh(private_key: bytes, public_key: bytes) -> bytes:
    """X25519 shared secret. Raises ``ValueError`` for an all-zero (low-order) result."""
    priv = X25519PrivateKey.from_private_bytes(private_key)
    return priv.exchange(X25519PublicKey.from_public_bytes(public_key))


class AeadError(Exception):
    """Authentication of a ChaCha20-Poly1305 ciphertext failed."""


def _chacha_nonce(n: int) -> bytes:
    # Noise: 32 bits of zeros followed by the 64-bit little-endian counter.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def aead_encrypt(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 with the Noise nonce layout for counter ``n``."""
    return ChaCha20Poly1305(key).encrypt(_chacha_nonce(n), plaintext, ad)


def aead_decrypt(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`aead_encrypt`; raises :class:`AeadError` if authentication fails."""
    try:
        return ChaCha20Poly1305(key).decrypt(_chacha_nonce(n), ciphertext, ad)
    except InvalidTag as exc:
        raise AeadError("ciphertext failed authentication") from exc


# --- Noise helpers ---
#
# Hash and HMAC functions for the Noise layer of the secure channel (spec/05-channel.md,
# Noise revision 34 §4.3). BLAKE2b is the hash p2pcomm uses; SHA-256 exists so the tests
# can run the published Noise_XX_25519_ChaChaPoly_SHA256 vectors as well.


def sha256(data: bytes) -> bytes:
    """SHA-256 (the hash of ``Noise_*_SHA256``; p2pcomm itself only uses it in tests)."""
    return hashlib.sha256(data).digest()


def hmac_blake2b_512(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) over BLAKE2b-512 with its 128-byte block, as Noise §4.3 defines it."""
    import hmac  # kept local: this section may not touch the imports at the top of the file

    return hmac.digest(key, data, hashlib.blake2b)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) over SHA-256 with its 64-byte block."""
    import hmac

    return hmac.digest(key, data, "sha256")


def scrypt_key(passphrase: bytes, salt: bytes, *, log2_n: int, r: int, p: int) -> bytes:
    """A 32-byte key from a passphrase (scrypt, RFC 7914), for encrypted key files."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)


def blake2b_keyed(key: bytes, data: bytes, digest_size: int = 32) -> bytes:
    """Keyed BLAKE2b (a MAC/PRF); ``key`` is at most 64 bytes."""
    return hashlib.blake2b(data, key=key, digest_size=digest_size).digest()


# --- Content encryption helpers (spec/12-encryption.md) ---
#
# ChaCha20-Poly1305 with a caller-chosen 96-bit nonce (RFC 8439), for content envelopes,
# rekey slots and keyrings, and HKDF-SHA256 (RFC 5869) for every key derived there.


def aead_seal(key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 (RFC 8439) with an explicit 12-byte ``nonce``: ciphertext || tag."""
    if len(key) != AEAD_KEY_SIZE or len(nonce) != AEAD_NONCE_SIZE:
        raise ValueError(
            f"chacha20-poly1305 needs a {AEAD_KEY_SIZE}-byte key and a {AEAD_NONCE_SIZE}-byte"
            f" nonce, found {len(key)} and {len(nonce)}"
        )
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)


def aead_open(key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`aead_seal`; raises :class:`AeadError` if authentication fails
    (a ciphertext shorter than the tag included)."""
    if len(key) != AEAD_KEY_SIZE or len(nonce) != AEAD_NONCE_SIZE:
        raise ValueError(
            f"chacha20-poly1305 needs a {AEAD_KEY_SIZE}-byte key and a {AEAD_NONCE_SIZE}-byte"
            f" nonce, found {len(key)} and {len(nonce)}"
        )
    if len(ciphertext) < AEAD_TAG_SIZE:
        raise AeadError(f"ciphertext of {len(ciphertext)} bytes is shorter than its tag")
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag as exc:
        raise AeadError("ciphertext failed authentication") from exc


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF (RFC 5869) over SHA-256: extract with ``salt`` (the empty string is the same
    as 32 zero bytes), then expand ``info`` to ``length`` bytes (at most 8160)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
