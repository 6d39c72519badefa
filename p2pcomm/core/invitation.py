"""Invitation codes and the join proof (spec/04-membership.md section 4.7).

Theory of operation
-------------------
An invitation is a secret shared out of band. The inviter draws a 16-byte *invitation
secret* (randomness is the caller's: this module reads none) and derives from it an
Ed25519 *invitation key pair*::

    seed = BLAKE2b-256(namespace("p2pcomm/1/invitation-key") || secret)

The INVITE entry in the group log commits to the invitation *public* key only. The
secret travels to the invitee inside a text code; whoever holds the code can make the
key pair and so prove possession by signing, with the invitation key, the statement
"member M joins group G with invitation I"::

    proof = Ed25519(invitation_key, namespace("p2pcomm/1/join") || G || I || M)

where ``G`` is the group id, ``I`` the id of the INVITE entry and ``M`` the joining
member's id (32 bytes each). The JOIN entry carrying the proof is signed by the joiner's
own member key like every entry. So:

* a leaked code lets its holder join (that is what a bearer invitation is; uses,
  lifetime and revocation bound it), but never act as the inviter: the code holds no
  key of the inviter;
* a JOIN proves possession of the code, and the proof cannot be lifted onto another
  member id, group or invitation, because all three are signed;
* the invitee does not need the inviter to be online: the INVITE entry, synced from
  any member, is enough for every replica to check the JOIN.

The code holds everything a newcomer needs to start a join: the full group id, the
secret, the inviter's member id, the invitation's limits as the inviter wrote them
(informative: the INVITE entry is authoritative) and up to four ``host:port`` hints
where members may be reached. It is a positional msgpack array (spec/01-encoding.md)::

    payload = [1, group: bin(32), secret: bin(16), inviter: bin(32), role: uint 1..=4,
               max_uses: uint, expires_at: uint, hints: array (..=4) of str (..=100)]
    text    = "pci2" || base32_lower(payload || checksum(4))
    checksum = BLAKE2b-256(namespace("p2pcomm/1/invitation-code") || payload)[0..4]

Every byte, hints included, is under the checksum, and the payload is decoded strictly
(canonical, bounded), so one code has one text. Parsing is case-insensitive and ignores
``-`` and ASCII white space, so codes can be typed in groups; the checksum is checked
before the payload is decoded, so a typo reads as ``bad-checksum``. Codes of the first
format (``pci1``: a 10-byte group prefix, no inviter) are refused with a message that
says so.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from ..errors import DecodeError, ErrorCode, ValidationError
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
from .identity import KeyPair

__all__ = [
    "CODE_PREFIX",
    "CODE_VERSION",
    "INVITATION_SECRET_SIZE",
    "MAX_HINTS",
    "MAX_HINT_LENGTH",
    "NS_INVITATION_CODE",
    "NS_INVITATION_KEY",
    "NS_JOIN",
    "OLD_CODE_PREFIX",
    "InvitationCode",
    "invitation_keypair",
    "join_proof",
    "join_signable",
    "verify_join_proof",
]

#: Bytes of entropy in an invitation secret.
INVITATION_SECRET_SIZE: Final = 16
#: The text prefix of a code (the second code format).
CODE_PREFIX: Final = "pci2"
#: The prefix of first-format codes, refused with a message that names them.
OLD_CODE_PREFIX: Final = "pci1"
#: Item 0 of the payload array.
CODE_VERSION: Final = 1
#: Most address hints in one code.
MAX_HINTS: Final = 4
#: Longest hint, in characters (hints are ASCII).
MAX_HINT_LENGTH: Final = 100

_ID_SIZE: Final = 32
_MAX_U63: Final = 2**63 - 1
_CHECKSUM_SIZE: Final = 4
_FIELDS: Final = 8
#: Smallest payload: no hints, role/max_uses/expires_at as one-byte integers.
_MIN_PAYLOAD: Final = 1 + 1 + (2 + _ID_SIZE) + (2 + INVITATION_SECRET_SIZE) + (2 + _ID_SIZE) + 3 + 1
#: Largest payload: two 9-byte integers and four hints of MAX_HINT_LENGTH (str8 headers).
_MAX_PAYLOAD: Final = _MIN_PAYLOAD - 2 + 9 + 9 + MAX_HINTS * (2 + MAX_HINT_LENGTH)
_MIN_BODY: Final = -(-(_MIN_PAYLOAD + _CHECKSUM_SIZE) * 8 // 5)  # 154 base32 characters
_MAX_BODY: Final = -(-(_MAX_PAYLOAD + _CHECKSUM_SIZE) * 8 // 5)  # 832
#: Longest text ``parse`` looks at, separators included.
_MAX_TEXT: Final = 4096
_PAYLOAD_LIMITS: Final = Limits(
    max_size=_MAX_PAYLOAD, max_bytes=MAX_HINT_LENGTH, max_array=_FIELDS, max_depth=2
)
#: Removed before decoding: ASCII white space (TAB, LF, VT, FF, CR, SPACE) and "-".
_SEPARATORS: Final = re.compile(r"[\t\n\x0b\x0c\r \-]")
_BASE32: Final = re.compile(r"[a-z2-7]*")

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?")
_IPV4: Final = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_IPV6_CHARS: Final = re.compile(r"[0-9a-f:.]+")
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")

#: Derivation of the invitation key pair's seed from the secret.
NS_INVITATION_KEY: Final = crypto.namespace("p2pcomm/1/invitation-key")
#: Signatures by the invitation key inside JOIN entries.
NS_JOIN: Final = crypto.namespace("p2pcomm/1/join")
#: Checksum of the text code (not a signature).
NS_INVITATION_CODE: Final = crypto.namespace("p2pcomm/1/invitation-code")


def _bad(message: str, **kw: object) -> ValidationError:
    return ValidationError(ErrorCode.BAD_INVITATION, message, **kw)


def invitation_keypair(secret: bytes) -> KeyPair:
    """The invitation key pair made from an invitation secret."""
    if not isinstance(secret, bytes) or len(secret) != INVITATION_SECRET_SIZE:
        raise _bad(
            f"an invitation secret is {INVITATION_SECRET_SIZE} bytes",
            expected=INVITATION_SECRET_SIZE,
            found=len(secret) if isinstance(secret, bytes) else type(secret).__name__,
        )
    return KeyPair(crypto.blake2b_256(NS_INVITATION_KEY + secret))


def join_signable(group: bytes, invite_id: bytes, member: bytes) -> bytes:
    """The 96 bytes the invitation key signs (after ``NS_JOIN``): ``G || I || M``."""
    for name, value in (("group", group), ("invite id", invite_id), ("member id", member)):
        if len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes, found {len(value)}")
    return group + invite_id + member


def join_proof(keypair: KeyPair, group: bytes, invite_id: bytes, member: bytes) -> bytes:
    """The invitation key's signature that ``member`` joins ``group`` with ``invite_id``."""
    return keypair.sign(NS_JOIN, join_signable(group, invite_id, member))


def verify_join_proof(
    invitation_key: bytes, group: bytes, invite_id: bytes, member: bytes, proof: bytes
) -> bool:
    """Whether ``proof`` is the invitation key's signature over ``G || I || M``."""
    if len(invitation_key) != 32 or len(proof) != crypto.SIGNATURE_SIZE:
        return False
    if len(group) != 32 or len(invite_id) != 32 or len(member) != 32:
        return False
    return crypto.ed25519_verify(invitation_key, NS_JOIN + group + invite_id + member, proof)


def _checksum(payload: bytes) -> bytes:
    return crypto.blake2b_256(NS_INVITATION_CODE + payload)[:_CHECKSUM_SIZE]


def _hint_address(hint: object) -> tuple[str, int]:
    """``(host, port)`` of a hint (an IPv6 host without its brackets), or ``BAD_INVITATION``."""
    if not isinstance(hint, str):
        raise _bad(f"a hint is a str, found {type(hint).__name__}", found=type(hint).__name__)
    if not 1 <= len(hint) <= MAX_HINT_LENGTH or not hint.isascii():
        raise _bad(
            f"a hint is 1 to {MAX_HINT_LENGTH} ascii characters, found {hint!r}",
            expected=MAX_HINT_LENGTH,
            found=hint,
        )
    if hint.startswith("["):
        host, sep, port = hint[1:].partition("]:")
        ok = bool(sep) and _IPV6_CHARS.fullmatch(host) is not None
        if ok:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                ok = False
        what = "a bracketed ipv6 address in lower case"
    else:
        host, sep, port = hint.rpartition(":")
        labels = host.split(".")
        if labels[-1].isdigit():  # read as IPv4
            ok = _IPV4.fullmatch(host) is not None and all(int(x) <= 255 for x in labels)
            what = "an ipv4 address"
        else:
            ok = all(_LABEL.fullmatch(label) for label in labels)
            what = "a dns name in lower case"
    if not ok or not sep:
        raise _bad(f"a hint is host:port with {what} as host, found {hint!r}", found=hint)
    if _PORT.fullmatch(port) is None or int(port) > 65535:
        raise _bad(f"a hint's port is 1 to 65535 without leading zeros, found {hint!r}", found=hint)
    return host, int(port)


def _check_id(value: object, what: str, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        found = len(value) if isinstance(value, bytes) else type(value).__name__
        raise _bad(f"{what} is {size} bytes, found {found}", expected=size, found=found)


def _check_uint(value: object, what: str, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise _bad(
            f"{what} is an integer in [{minimum}, {maximum}], found {value!r}",
            expected=(minimum, maximum),
            found=value,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationCode:
    """What an invitee is handed: everything needed to find the group, reach a member
    and prove the invitation (spec/04-membership.md 4.7, rules IC1 to IC7)."""

    #: The group id (32 bytes: the id of its genesis entry).
    group: bytes
    #: The invitation secret (``INVITATION_SECRET_SIZE`` bytes). Keep it secret.
    secret: bytes
    #: Member id of the issuer, the author of the INVITE entry (32 bytes).
    inviter: bytes
    #: Role the invitation grants, 1 reader to 4 admin (``Role`` values). Informative:
    #: the INVITE entry is authoritative.
    role: int = 2
    #: Uses the invitation allows, 0 = unlimited. Informative.
    max_uses: int = 1
    #: Expiry in milliseconds since the epoch, 0 = never. Informative.
    expires_at: int = 0
    #: Up to ``MAX_HINTS`` addresses where members may be reached, ``"host:port"`` with
    #: an IPv4 address, a bracketed IPv6 address or a DNS name, in lower case.
    hints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.group, "a group id", _ID_SIZE)
        _check_id(self.secret, "an invitation secret", INVITATION_SECRET_SIZE)
        _check_id(self.inviter, "an inviter id", _ID_SIZE)
        _check_uint(self.role, "role", 1, 4)
        _check_uint(self.max_uses, "max_uses", 0, _MAX_U63)
        _check_uint(self.expires_at, "expires_at", 0, _MAX_U63)
        if not isinstance(self.hints, tuple) or len(self.hints) > MAX_HINTS:
            found = len(self.hints) if isinstance(self.hints, tuple) else type(self.hints).__name__
            raise _bad(
                f"hints is a tuple of at most {MAX_HINTS} str, found {found}",
                expected=MAX_HINTS,
                found=found,
            )
        for hint in self.hints:
            _hint_address(hint)
        # A Role (an IntEnum) is kept as the plain int it encodes to.
        object.__setattr__(self, "role", int(self.role))

    def _payload(self) -> bytes:
        """The canonical payload array that the text form carries (before the checksum)."""
        return encode(
            [
                CODE_VERSION,
                self.group,
                self.secret,
                self.inviter,
                self.role,
                self.max_uses,
                self.expires_at,
                list(self.hints),
            ]
        )

    def text(self) -> str:
        """The text form: ``pci2`` + base32 of the payload and its checksum, lower case."""
        payload = self._payload()
        body = base64.b32encode(payload + _checksum(payload)).decode("ascii").rstrip("=")
        return CODE_PREFIX + body.lower()

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        # The secret is not shown (nor the text, which holds it).
        return (
            f"InvitationCode(group={self.group.hex()!r}, inviter={self.inviter.hex()!r}, "
            f"role={self.role}, max_uses={self.max_uses}, expires_at={self.expires_at}, "
            f"hints={self.hints!r})"
        )

    @classmethod
    def parse(cls, text: str) -> InvitationCode:
        """Parse a text code (rules IC1 to IC7). Raises :class:`ValidationError` with
        ``BAD_CHECKSUM`` when the checksum does not match (a typo) and ``BAD_INVITATION``
        for anything else; never another exception type for a ``str``. A payload that
        does not decode has the :class:`DecodeError` as ``__cause__``."""
        if not isinstance(text, str):
            raise _bad("an invitation code must be a str", found=type(text).__name__)
        if len(text) > _MAX_TEXT:
            raise _bad(
                f"an invitation code is at most {_MAX_TEXT} characters, found {len(text)}",
                expected=_MAX_TEXT,
                found=len(text),
            )
        compact = _SEPARATORS.sub("", text)
        if not compact.isascii():
            raise _bad("an invitation code contains a character outside ascii", expected="ascii")
        compact = compact.lower()
        if not compact.startswith(CODE_PREFIX):
            if compact.startswith(OLD_CODE_PREFIX):
                raise _bad(
                    f"this is an old-format code ({OLD_CODE_PREFIX}, without the group id and "
                    f"inviter); ask the inviter for a new one, starting with {CODE_PREFIX}",
                    expected=CODE_PREFIX,
                    found=OLD_CODE_PREFIX,
                )
            if compact.startswith("pc1"):
                raise _bad(
                    f"this is a member id (pc1), not an invitation code ({CODE_PREFIX})",
                    expected=CODE_PREFIX,
                    found="pc1",
                )
            raise _bad(
                f"an invitation code starts with {CODE_PREFIX!r}, found {compact[:4]!r}",
                expected=CODE_PREFIX,
                found=compact[:4],
            )
        body = compact[len(CODE_PREFIX) :]
        if _BASE32.fullmatch(body) is None:
            raise _bad(
                "an invitation code contains characters outside base32 (a-z, 2-7)",
                expected="base32",
            )
        if not _MIN_BODY <= len(body) <= _MAX_BODY or len(body) % 8 in (1, 3, 6):
            raise _bad(
                f"an invitation code has {_MIN_BODY} to {_MAX_BODY} base32 characters "
                f"after the prefix (not 1, 3 or 6 more than a multiple of 8), found {len(body)}",
                expected=(_MIN_BODY, _MAX_BODY),
                found=len(body),
            )
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
            raise _bad("an invitation code is not base32", expected="base32") from None
        if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != body:
            raise _bad(
                "an invitation code's last character has unused bits set (a typo?)",
                expected="unused bits zero",
            )
        payload, check = raw[:-_CHECKSUM_SIZE], raw[-_CHECKSUM_SIZE:]
        if _checksum(payload) != check:
            raise ValidationError(
                ErrorCode.BAD_CHECKSUM,
                "invitation code checksum does not match (a typo?)",
                expected=_checksum(payload).hex(),
                found=check.hex(),
            )
        try:
            items = decode_canonical(payload, _PAYLOAD_LIMITS)
            if (
                items
                and isinstance(items[0], int)
                and not isinstance(items[0], bool)
                and items[0] != CODE_VERSION
            ):
                raise DecodeError(
                    ErrorCode.UNKNOWN_VERSION,
                    f"invitation code version {items[0]} is not supported",
                    expected=CODE_VERSION,
                    found=items[0],
                )
            expect_array(items, "invitation code", length=_FIELDS)
            expect_uint(items[0], "version", minimum=CODE_VERSION, maximum=CODE_VERSION)
            group = expect_bytes(items[1], "group", length=_ID_SIZE)
            secret = expect_bytes(items[2], "secret", length=INVITATION_SECRET_SIZE)
            inviter = expect_bytes(items[3], "inviter", length=_ID_SIZE)
            role = expect_uint(items[4], "role", minimum=1, maximum=4)
            max_uses = expect_uint(items[5], "max_uses", maximum=_MAX_U63)
            expires_at = expect_uint(items[6], "expires_at", maximum=_MAX_U63)
            hints = tuple(
                expect_str(hint, "hint", max_length=MAX_HINT_LENGTH)
                for hint in expect_array(items[7], "hints", max_length=MAX_HINTS)
            )
        except DecodeError as exc:
            raise _bad(
                f"the code's contents do not decode ({exc.code.value}): {exc.message}",
                expected="an invitation code payload",
                found=exc.code.value,
            ) from exc
        return cls(
            group=group,
            secret=secret,
            inviter=inviter,
            role=role,
            max_uses=max_uses,
            expires_at=expires_at,
            hints=hints,
        )

    def keypair(self) -> KeyPair:
        """The invitation key pair."""
        return invitation_keypair(self.secret)

    @property
    def public_key(self) -> bytes:
        """The invitation public key, as the INVITE entry states it."""
        return self.keypair().public_key

    def join_proof(self, invite_id: bytes, member: bytes) -> bytes:
        """The proof a JOIN by ``member`` to this code's group carries (see
        :func:`join_proof`); ``invite_id`` is the id of the INVITE entry."""
        return join_proof(self.keypair(), self.group, invite_id, member)

    def hint_addresses(self) -> list[tuple[str, int]]:
        """The hints as ``(host, port)`` pairs, in order; an IPv6 host has no brackets."""
        return [_hint_address(hint) for hint in self.hints]
