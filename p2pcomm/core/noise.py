"""Plain Noise: ``Noise_XX_25519_ChaChaPoly_BLAKE2b`` (spec/05-channel.md 5.3, 5.4.2).

Theory of operation
===================

This module is the Noise Protocol Framework, revision 34, written out for one pattern:
§5.1 CipherState, §5.2 SymmetricState, §5.3 HandshakeState restricted to the XX pattern
without pre-messages or PSKs::

    XX:
      -> e
      <- e, ee, s, es
      -> s, se

It knows nothing about p2pcomm: no prologue of its own, no version byte, no identities,
no framing. Its private keys, its prologue and its hash function are constructor
arguments, so the published test vectors (``tests/data/noise/``) run against it
unchanged; those vectors are the test of this module. SHA-256 is supported only so that
both vector families can run; p2pcomm itself always uses BLAKE2b.
:mod:`p2pcomm.core.handshake` builds p2pcomm's identity handshake on top, and
:mod:`p2pcomm.core.channel` uses :class:`CipherState` for the record layer.

Rules and invariants:

* Sans-IO and deterministic: the caller passes every private key in; nothing here reads
  randomness, clocks or sockets.
* A nonce is never used twice with one key, and ``2**64 - 1`` never encrypts a message
  (it is reserved for ``Rekey``): an exhausted :class:`CipherState` raises
  ``OUT_OF_RANGE`` instead.
* A DH with a low-order peer key (an all-zero result) is ``HANDSHAKE_FAILED``. After any
  :class:`~p2pcomm.errors.RemoteProtocolError` a :class:`NoiseXX` is unusable.
* Messages alternate, initiator first; calling :meth:`NoiseXX.write_message` or
  :meth:`NoiseXX.read_message` out of turn raises
  :class:`~p2pcomm.errors.LocalProtocolError` and changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .crypto import (
    AeadError,
    aead_decrypt,
    aead_encrypt,
    blake2b_512,
    hmac_blake2b_512,
    hmac_sha256,
    sha256,
    x25519_dh,
    x25519_public,
)

__all__ = [
    "DH_LEN",
    "KEY_LEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "TAG_LEN",
    "CipherState",
    "NoiseHash",
    "NoiseXX",
    "SymmetricState",
]

DH_LEN: Final = 32
"""X25519 public key and shared secret size."""

KEY_LEN: Final = 32
"""ChaCha20-Poly1305 key size."""

TAG_LEN: Final = 16
"""Poly1305 authentication tag size."""

MAX_NONCE: Final = 2**64 - 1
"""Reserved by Noise: never used to encrypt a message (REKEY uses it internally)."""

MAX_MESSAGE_LEN: Final = 65535
"""Noise's limit on any message, handshake or transport."""

_ZEROS_32: Final = bytes(32)


class NoiseHash(enum.Enum):
    """The hash function of the Noise protocol name (§4.3). p2pcomm uses BLAKE2b."""

    BLAKE2B = "BLAKE2b"
    SHA256 = "SHA256"

    @property
    def hash_len(self) -> int:
        """HASHLEN: 64 for BLAKE2b, 32 for SHA-256."""
        return 64 if self is NoiseHash.BLAKE2B else 32

    def hash(self, data: bytes) -> bytes:
        """HASH(data)."""
        return blake2b_512(data) if self is NoiseHash.BLAKE2B else sha256(data)

    def hmac(self, key: bytes, data: bytes) -> bytes:
        """HMAC-HASH(key, data)."""
        if self is NoiseHash.BLAKE2B:
            return hmac_blake2b_512(key, data)
        return hmac_sha256(key, data)

    def hkdf(self, chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
        """HKDF(chaining_key, input_key_material, 2) of Noise §4.3: two HASHLEN outputs."""
        temp_key = self.hmac(chaining_key, input_key_material)
        output1 = self.hmac(temp_key, b"\x01")
        output2 = self.hmac(temp_key, output1 + b"\x02")
        return output1, output2


class CipherState:
    """Noise §5.1: a ChaCha20-Poly1305 key ``k`` (or none yet) and a 64-bit nonce ``n``.

    Without a key, encryption and decryption return their input unchanged. The nonce
    ``2**64 - 1`` is never used for a message: a state that reaches it is exhausted and
    raises instead (``OUT_OF_RANGE``), so a nonce is never reused.
    """

    __slots__ = ("_k", "_n")

    def __init__(self, key: bytes | None = None, *, nonce: int = 0) -> None:
        if key is not None and len(key) != KEY_LEN:
            raise LocalProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"cipher key must be {KEY_LEN} bytes, found {len(key)}",
                expected=KEY_LEN,
                found=len(key),
            )
        self._k: bytes | None = key
        self._n = 0
        self.set_nonce(nonce)

    def __repr__(self) -> str:
        return f"<CipherState {'keyed' if self._k is not None else 'empty'} n={self._n}>"

    def has_key(self) -> bool:
        """HasKey(): true once a key was set."""
        return self._k is not None

    @property
    def nonce(self) -> int:
        """The nonce the next message will use."""
        return self._n

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce). Tests use it to start near the end of the nonce space."""
        if not 0 <= nonce <= MAX_NONCE:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"nonce {nonce} is outside 0..{MAX_NONCE}",
                expected=f"0..{MAX_NONCE}",
                found=nonce,
            )
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext); raises ``LocalProtocolError`` when exhausted."""
        if self._k is None:
            return plaintext
        if self._n >= MAX_NONCE:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"send nonce exhausted: nonce {self._n} is reserved and must not encrypt",
                expected=f"< {MAX_NONCE}",
                found=self._n,
            )
        ciphertext = aead_encrypt(self._k, self._n, ad, plaintext)
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext); the nonce advances only on success.

        Raises ``RemoteProtocolError``: ``DECRYPT_FAILED`` if authentication fails,
        ``OUT_OF_RANGE`` if the peer sent past the last usable nonce.
        """
        if self._k is None:
            return ciphertext
        if self._n >= MAX_NONCE:
            raise RemoteProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"receive nonce exhausted: peer sent a message at reserved nonce {self._n}",
                expected=f"< {MAX_NONCE}",
                found=self._n,
            )
        if len(ciphertext) < TAG_LEN:
            raise RemoteProtocolError(
                ErrorCode.DECRYPT_FAILED,
                f"ciphertext of {len(ciphertext)} bytes is shorter than the {TAG_LEN}-byte tag",
                expected=f">= {TAG_LEN}",
                found=len(ciphertext),
            )
        try:
            plaintext = aead_decrypt(self._k, self._n, ad, ciphertext)
        except AeadError:
            raise RemoteProtocolError(
                ErrorCode.DECRYPT_FAILED,
                f"ciphertext of {len(ciphertext)} bytes failed authentication at nonce {self._n}",
                found=self._n,
            ) from None
        self._n += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): ``k = ENCRYPT(k, 2**64 - 1, b"", 32 zero bytes)[:32]``; ``n`` is kept."""
        if self._k is None:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE, "rekey() called on a cipher state with no key"
            )
        self._k = aead_encrypt(self._k, MAX_NONCE, b"", _ZEROS_32)[:KEY_LEN]


class SymmetricState:
    """Noise §5.2: the chaining key ``ck``, the handshake hash ``h`` and a CipherState."""

    __slots__ = ("_ck", "_h", "_hash", "cipher")

    def __init__(self, protocol_name: bytes, hash: NoiseHash = NoiseHash.BLAKE2B) -> None:
        """InitializeSymmetric(protocol_name)."""
        self._hash = hash
        if len(protocol_name) <= hash.hash_len:
            self._h = protocol_name.ljust(hash.hash_len, b"\x00")
        else:
            self._h = hash.hash(protocol_name)
        self._ck = self._h
        self.cipher = CipherState()

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): the current ``h``."""
        return self._h

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(ikm): new ``ck`` and a fresh cipher key (truncated to 32 bytes)."""
        self._ck, temp_k = self._hash.hkdf(self._ck, input_key_material)
        self.cipher = CipherState(temp_k[:KEY_LEN])

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data): ``h = HASH(h || data)``."""
        self._h = self._hash.hash(self._h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext)."""
        ciphertext = self.cipher.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext)."""
        plaintext = self.cipher.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): ``(c1, c2)``; c1 encrypts initiator to responder, c2 the other way."""
        temp_k1, temp_k2 = self._hash.hkdf(self._ck, b"")
        return CipherState(temp_k1[:KEY_LEN]), CipherState(temp_k2[:KEY_LEN])


_XX_PATTERN: Final[tuple[tuple[str, ...], ...]] = (
    ("e",),
    ("e", "ee", "s", "es"),
    ("s", "se"),
)


def _dh(private_key: bytes, public_key: bytes) -> bytes:
    try:
        return x25519_dh(private_key, public_key)
    except ValueError:
        raise RemoteProtocolError(
            ErrorCode.HANDSHAKE_FAILED,
            f"x25519 with peer key {public_key.hex()} gives the all-zero secret (low-order point)",
            found=public_key.hex(),
        ) from None


class NoiseXX:
    """Noise §5.3 HandshakeState for ``Noise_XX_25519_ChaChaPoly_<hash>``, no PSK.

    Messages alternate, initiator first; :meth:`write_message` and :meth:`read_message`
    must be called in that order (``LocalProtocolError`` otherwise). After the third
    message, :meth:`split` gives the transport cipher states.
    """

    __slots__ = (
        "_e",
        "_e_pub",
        "_failed",
        "_index",
        "_initiator",
        "_payload_hash",
        "_re",
        "_rs",
        "_s",
        "_s_pub",
        "_symmetric",
        "protocol_name",
    )

    def __init__(
        self,
        *,
        initiator: bool,
        static_private: bytes,
        ephemeral_private: bytes,
        prologue: bytes = b"",
        hash: NoiseHash = NoiseHash.BLAKE2B,
    ) -> None:
        for name, key in (("static", static_private), ("ephemeral", ephemeral_private)):
            if len(key) != DH_LEN:
                raise LocalProtocolError(
                    ErrorCode.WRONG_LENGTH,
                    f"x25519 {name} private key must be {DH_LEN} bytes, found {len(key)}",
                    expected=DH_LEN,
                    found=len(key),
                )
        self.protocol_name: str = f"Noise_XX_25519_ChaChaPoly_{hash.value}"
        self._initiator = initiator
        self._s = static_private
        self._s_pub = x25519_public(static_private)
        self._e = ephemeral_private
        self._e_pub = x25519_public(ephemeral_private)
        self._re: bytes | None = None
        self._rs: bytes | None = None
        self._index = 0
        self._failed = False
        self._symmetric = SymmetricState(self.protocol_name.encode("ascii"), hash)
        self._symmetric.mix_hash(prologue)
        self._payload_hash = self._symmetric.handshake_hash

    # -- inspection ----------------------------------------------------------------

    @property
    def is_initiator(self) -> bool:
        return self._initiator

    @property
    def message_index(self) -> int:
        """How many handshake messages were written or read so far (0 to 3)."""
        return self._index

    @property
    def is_our_turn(self) -> bool:
        """True if the next message is ours to write."""
        return self._index < len(_XX_PATTERN) and (self._index % 2 == 0) == self._initiator

    @property
    def is_complete(self) -> bool:
        return self._index == len(_XX_PATTERN)

    @property
    def static_public(self) -> bytes:
        return self._s_pub

    @property
    def ephemeral_public(self) -> bytes:
        return self._e_pub

    @property
    def remote_static(self) -> bytes | None:
        """The peer's X25519 static key, once its ``s`` token was read."""
        return self._rs

    @property
    def remote_ephemeral(self) -> bytes | None:
        return self._re

    @property
    def handshake_hash(self) -> bytes:
        """The current ``h`` (the final handshake hash once complete)."""
        return self._symmetric.handshake_hash

    @property
    def payload_hash(self) -> bytes:
        """``h`` right before the payload of the latest message was encrypted/decrypted.

        It is the associated data of that payload's AEAD, and what p2pcomm's identity
        signature covers.
        """
        return self._payload_hash

    # -- messages ------------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload) for the next message; returns the message bytes."""
        return self.write_message_with(lambda _h: payload)

    def write_message_with(self, make_payload: Callable[[bytes], bytes]) -> bytes:
        """Like :meth:`write_message`, with the payload computed from :attr:`payload_hash`.

        ``make_payload`` is called after the message's tokens are processed, with the
        handshake hash that the payload's encryption will use as associated data.
        """
        self._check_turn("write_message", ours=True)
        sym = self._symmetric
        out = bytearray()
        try:
            for token in _XX_PATTERN[self._index]:
                if token == "e":
                    out += self._e_pub
                    sym.mix_hash(self._e_pub)
                elif token == "s":
                    out += sym.encrypt_and_hash(self._s_pub)
                else:
                    sym.mix_key(self._token_dh(token))
        except RemoteProtocolError:  # a low-order key from the peer
            self._failed = True
            raise
        self._payload_hash = sym.handshake_hash
        out += sym.encrypt_and_hash(make_payload(self._payload_hash))
        if len(out) > MAX_MESSAGE_LEN:
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"handshake message of {len(out)} bytes exceeds {MAX_MESSAGE_LEN}",
                expected=MAX_MESSAGE_LEN,
                found=len(out),
            )
        self._index += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message) for the next message; returns the decrypted payload.

        Raises ``RemoteProtocolError``: ``FRAME_TOO_LARGE`` or ``TRUNCATED`` for a bad
        size, ``DECRYPT_FAILED`` for a failed authentication, ``HANDSHAKE_FAILED`` for a
        low-order public key. The state is unusable after any of them.
        """
        self._check_turn("read_message", ours=False)
        if len(message) > MAX_MESSAGE_LEN:
            self._failed = True
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"handshake message of {len(message)} bytes exceeds {MAX_MESSAGE_LEN}",
                expected=MAX_MESSAGE_LEN,
                found=len(message),
            )
        tokens = _XX_PATTERN[self._index]
        needed = self.min_message_len(self._index)
        if len(message) < needed:
            self._failed = True
            raise RemoteProtocolError(
                ErrorCode.TRUNCATED,
                f"handshake message {self._index + 1} is {len(message)} bytes, "
                f"shorter than the {needed} bytes its tokens need",
                expected=needed,
                found=len(message),
            )
        sym = self._symmetric
        pos = 0
        try:
            for token in tokens:
                if token == "e":
                    self._re = message[pos : pos + DH_LEN]
                    pos += DH_LEN
                    sym.mix_hash(self._re)
                elif token == "s":
                    size = DH_LEN + (TAG_LEN if sym.cipher.has_key() else 0)
                    self._rs = sym.decrypt_and_hash(message[pos : pos + size])
                    pos += size
                else:
                    sym.mix_key(self._token_dh(token))
            self._payload_hash = sym.handshake_hash
            payload = sym.decrypt_and_hash(message[pos:])
        except RemoteProtocolError:
            self._failed = True
            raise
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """Split() after the last message: ``(c1, c2)``, c1 for initiator-to-responder."""
        if not self.is_complete or self._failed:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"split() called after {self._index} of {len(_XX_PATTERN)} handshake messages",
                expected=len(_XX_PATTERN),
                found=self._index,
            )
        return self._symmetric.split()

    @staticmethod
    def min_message_len(index: int) -> int:
        """Bytes the tokens and payload tag of message ``index`` (0-based) take up in XX."""
        # A key exists once any DH token was processed, in this message or an earlier one.
        has_key = any(t in ("ee", "es", "se") for m in _XX_PATTERN[:index] for t in m)
        size = 0
        for token in _XX_PATTERN[index]:
            if token == "e":
                size += DH_LEN
            elif token == "s":
                size += DH_LEN + (TAG_LEN if has_key else 0)
            else:
                has_key = True
        return size + (TAG_LEN if has_key else 0)

    # -- internals -----------------------------------------------------------------

    def _check_turn(self, method: str, *, ours: bool) -> None:
        role = "initiator" if self._initiator else "responder"
        if self._failed:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE, f"{method}() called by the {role} after the handshake failed"
            )
        if self.is_complete or self.is_our_turn != ours:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"{method}() called by the {role} at handshake message {self._index + 1}, "
                f"which is not its to {'write' if ours else 'read'}",
                found=self._index,
            )

    def _token_dh(self, token: str) -> bytes:
        # "es" is DH(initiator e, responder s); "se" is DH(initiator s, responder e).
        re, rs = self._re, self._rs
        if re is None:  # pragma: no cover - XX always reads "e" before any DH token
            raise LocalProtocolError(ErrorCode.BAD_STATE, "dh token before the peer's e")
        if token == "ee":
            return _dh(self._e, re)
        initiator_side = self._initiator
        if token == "es":
            if initiator_side:
                assert rs is not None
                return _dh(self._e, rs)
            return _dh(self._s, re)
        # token == "se"
        if initiator_side:
            return _dh(self._s, re)
        assert rs is not None
        return _dh(self._e, rs)
