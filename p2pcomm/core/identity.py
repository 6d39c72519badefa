"""Member identities and signing namespaces (spec/02-identity.md).

A member is an Ed25519 key pair; the 32-byte public key *is* the member id. People see
it in a text form that catches typos::

    "pc1" + base32_lower(public_key || checksum)      59 characters in all

where ``checksum`` is the first 3 bytes of
``BLAKE2b-256(namespace("p2pcomm/1/id-checksum") || public_key)``. 35 bytes make exactly
56 base32 characters, so there is no padding. Parsing is case-insensitive and rejects a
wrong prefix, wrong length, non-base32 characters and a bad checksum with distinct
error codes; ``MemberId.parse(str(m)) == m`` for every id.

Signatures are domain-separated: ``sign(ns, data)`` signs ``namespace(ns) || data``
where ``data`` is a fixed-layout byte string built by one function per signed type.
The namespaces in use are the ``NS_*`` constants below; the spec lists them.

This module is pure: randomness is not read here. Keys are made from a 32-byte seed
that the caller draws (``p2pcomm.keys.generate`` uses ``os.urandom``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from ..errors import ErrorCode, IdentityError
from . import crypto

__all__ = [
    "ID_TEXT_PREFIX",
    "NS_ENTRY",
    "NS_HANDSHAKE",
    "NS_ID_CHECKSUM",
    "KeyPair",
    "MemberId",
    "verify",
]

ID_TEXT_PREFIX: Final = "pc1"

#: Namespace of log entry signatures: signs ``entry_id`` (spec/03-log.md).
NS_ENTRY: Final = crypto.namespace("p2pcomm/1/entry")
#: Namespace of the identity proof inside the channel handshake (spec/05-channel.md).
NS_HANDSHAKE: Final = crypto.namespace("p2pcomm/1/handshake")
#: Namespace of the checksum in the text form of a member id.
NS_ID_CHECKSUM: Final = crypto.namespace("p2pcomm/1/id-checksum")

_CHECKSUM_SIZE = 3
_BASE32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_TEXT_BODY_LEN = 56  # base32 of 32 + 3 bytes
#: P1: exactly these are removed at both ends; Unicode white space (U+00A0, U+3000, ...)
#: and ASCII 1c..1f, which ``str.strip()`` would also remove, stay and are refused.
_P1_WHITE_SPACE: Final = " \t\n\v\f\r"


def _checksum(public_key: bytes) -> bytes:
    return crypto.blake2b_256(NS_ID_CHECKSUM + public_key)[:_CHECKSUM_SIZE]


class MemberId:
    """A member's public key with its human-checkable text form. Immutable, hashable."""

    __slots__ = ("raw",)
    raw: bytes

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != crypto.PUBLIC_KEY_SIZE:
            raise IdentityError(
                ErrorCode.BAD_KEY,
                f"a member id is {crypto.PUBLIC_KEY_SIZE} bytes, found {len(raw) if isinstance(raw, bytes) else type(raw).__name__}",
                expected=crypto.PUBLIC_KEY_SIZE,
            )
        object.__setattr__(self, "raw", raw)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MemberId is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemberId) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __lt__(self, other: MemberId) -> bool:
        return self.raw < other.raw

    def __repr__(self) -> str:
        return f"MemberId({self.text()!r})"

    def __str__(self) -> str:
        return self.text()

    def text(self) -> str:
        """The 59-character text form, e.g. ``pc1...``."""
        body = base64.b32encode(self.raw + _checksum(self.raw)).decode("ascii").lower()
        return ID_TEXT_PREFIX + body

    def short(self) -> str:
        """A short label for display (not unique; never use it to identify)."""
        return self.text()[:11]

    @classmethod
    def parse(cls, text: str) -> MemberId:
        """Parse the text form. Raises :class:`IdentityError` with ``BAD_ID_TEXT`` or
        ``BAD_CHECKSUM``."""
        if not isinstance(text, str):
            raise IdentityError(ErrorCode.BAD_ID_TEXT, "a member id text must be a str")
        t = text.strip(_P1_WHITE_SPACE)
        if not t.isascii():
            raise IdentityError(
                ErrorCode.BAD_ID_TEXT, "member id contains non-ascii characters", expected="ascii"
            )
        t = t.lower()
        if not t.startswith(ID_TEXT_PREFIX):
            raise IdentityError(
                ErrorCode.BAD_ID_TEXT,
                f"member id must start with {ID_TEXT_PREFIX!r}, found {t[:3]!r}",
                expected=ID_TEXT_PREFIX,
                found=t[:3],
            )
        body = t[len(ID_TEXT_PREFIX) :]
        if len(body) != _TEXT_BODY_LEN:
            raise IdentityError(
                ErrorCode.BAD_ID_TEXT,
                f"member id must have {_TEXT_BODY_LEN} characters after the prefix, found {len(body)}",
                expected=_TEXT_BODY_LEN,
                found=len(body),
            )
        if not all(c in _BASE32 for c in body):
            raise IdentityError(
                ErrorCode.BAD_ID_TEXT,
                "member id contains characters outside base32 (a-z, 2-7)",
                expected="base32",
            )
        try:
            raw = base64.b32decode(body.upper(), casefold=False)
        except (binascii.Error, ValueError):
            raise IdentityError(
                ErrorCode.BAD_ID_TEXT,
                "member id contains characters outside base32 (a-z, 2-7)",
                expected="base32",
            ) from None
        key, check = raw[: crypto.PUBLIC_KEY_SIZE], raw[crypto.PUBLIC_KEY_SIZE :]
        if _checksum(key) != check:
            raise IdentityError(
                ErrorCode.BAD_CHECKSUM,
                "member id checksum does not match (a typo?)",
                expected=_checksum(key).hex(),
                found=check.hex(),
            )
        return cls(key)


class KeyPair:
    """An Ed25519 key pair made from a 32-byte seed."""

    __slots__ = ("_signer", "id", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != crypto.SEED_SIZE:
            raise IdentityError(
                ErrorCode.BAD_KEY,
                f"a key seed is {crypto.SEED_SIZE} bytes",
                expected=crypto.SEED_SIZE,
                found=len(seed) if isinstance(seed, bytes) else type(seed).__name__,
            )
        self._signer = crypto.Ed25519Signer(seed)
        self.public_key: bytes = self._signer.public_key
        self.id = MemberId(self.public_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        return cls(seed)

    def seed(self) -> bytes:
        """The 32-byte secret seed. Handle with care."""
        return self._signer.seed()

    def sign(self, ns: bytes, data: bytes) -> bytes:
        """Sign ``ns || data``; ``ns`` is one of the ``NS_*`` namespaces."""
        return self._signer.sign(ns + data)

    def signer(self) -> crypto.Ed25519Signer:
        """The underlying signer (for code that signs many messages in a row)."""
        return self._signer

    def sign_raw(self, message: bytes) -> bytes:
        """Sign ``message`` as is (for protocols that build their own signable bytes)."""
        return self._signer.sign(message)

    def __repr__(self) -> str:
        return f"KeyPair({self.id.text()!r})"


def verify(public_key: bytes, ns: bytes, data: bytes, signature: bytes) -> bool:
    """True iff ``signature`` signs ``ns || data`` under ``public_key``."""
    return crypto.ed25519_verify(public_key, ns + data, signature)
