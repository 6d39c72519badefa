"""Invitation codes and the join proof (spec/04-membership.md section 6).

Theory of operation
-------------------
An invitation is a secret shared out of band. The inviter draws a 16-byte *invitation
secret* (randomness is the caller's: this module reads none) and derives from it an
Ed25519 *invitation key pair*::

    seed = BLAKE2b-256(namespace("p2pcomm/1/invitation-key") || secret)

The INVITE entry in the group log commits to the invitation *public* key only. The
secret travels to the invitee inside a short text code; whoever holds the code can make
the key pair and so prove possession by signing, with the invitation key, the statement
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

The text code::

    "pci1" || base32_lower(group_prefix(10) || secret(16) || checksum(4)) [ "@" hint ]

is 52 characters plus an optional bootstrap hint (an address such as
``192.168.1.20:7777``) that is *not* covered by the checksum and is only a hint.
``checksum = BLAKE2b-256(namespace("p2pcomm/1/invitation-code") || group_prefix ||
secret)[0..4]``. The group prefix (the first 10 bytes of the group id) lets the invitee
find the group and check it got the right one; the full id and the INVITE entry come
from the peer it syncs with. Parsing is case-insensitive and ignores ``-`` and white
space, so codes can be read aloud and typed in groups.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from ..errors import ErrorCode, ValidationError
from . import crypto
from .identity import KeyPair

__all__ = [
    "CODE_PREFIX",
    "GROUP_PREFIX_SIZE",
    "INVITATION_SECRET_SIZE",
    "NS_INVITATION_CODE",
    "NS_INVITATION_KEY",
    "NS_JOIN",
    "InvitationCode",
    "invitation_keypair",
    "join_proof",
    "join_signable",
    "verify_join_proof",
]

#: Bytes of entropy in an invitation secret.
INVITATION_SECRET_SIZE: Final = 16
#: Bytes of the group id carried in a code.
GROUP_PREFIX_SIZE: Final = 10
_CHECKSUM_SIZE: Final = 4
_PAYLOAD_SIZE: Final = GROUP_PREFIX_SIZE + INVITATION_SECRET_SIZE + _CHECKSUM_SIZE  # 30
_TEXT_BODY_LEN: Final = _PAYLOAD_SIZE * 8 // 5  # 48 base32 characters, no padding
CODE_PREFIX: Final = "pci1"
_MAX_HINT: Final = 100
_HINT_RE: Final = re.compile(r"[A-Za-z0-9.:\[\]_\-]{1,100}")

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


def _checksum(prefix: bytes, secret: bytes) -> bytes:
    return crypto.blake2b_256(NS_INVITATION_CODE + prefix + secret)[:_CHECKSUM_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationCode:
    """What an invitee is handed: enough to find the group and to prove the invitation."""

    #: First ``GROUP_PREFIX_SIZE`` bytes of the group id.
    group_prefix: bytes
    #: The invitation secret (``INVITATION_SECRET_SIZE`` bytes). Keep it secret.
    secret: bytes
    #: Where to find a member (for example ``"192.168.1.20:7777"``); not authenticated.
    hint: str | None = None

    def __post_init__(self) -> None:
        if len(self.group_prefix) != GROUP_PREFIX_SIZE:
            raise _bad(
                f"a group prefix is {GROUP_PREFIX_SIZE} bytes, found {len(self.group_prefix)}",
                expected=GROUP_PREFIX_SIZE,
                found=len(self.group_prefix),
            )
        if len(self.secret) != INVITATION_SECRET_SIZE:
            raise _bad(
                f"an invitation secret is {INVITATION_SECRET_SIZE} bytes, found {len(self.secret)}",
                expected=INVITATION_SECRET_SIZE,
                found=len(self.secret),
            )
        if self.hint is not None and not _HINT_RE.fullmatch(self.hint):
            raise _bad(
                f"a hint is 1 to {_MAX_HINT} characters of a-z, 0-9 and .:[]_-, found {self.hint!r}",
                found=self.hint,
            )

    @classmethod
    def for_group(cls, group: bytes, secret: bytes, *, hint: str | None = None) -> InvitationCode:
        """The code for an invitation to ``group`` (its 32-byte id) made from ``secret``."""
        if len(group) != 32:
            raise _bad(f"a group id is 32 bytes, found {len(group)}", expected=32, found=len(group))
        return cls(group_prefix=group[:GROUP_PREFIX_SIZE], secret=secret, hint=hint)

    def text(self) -> str:
        """The text form: ``pci1`` + 48 base32 characters, then ``@hint`` if any."""
        payload = self.group_prefix + self.secret + _checksum(self.group_prefix, self.secret)
        body = base64.b32encode(payload).decode("ascii").lower()
        return CODE_PREFIX + body + ("" if self.hint is None else "@" + self.hint)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        # The secret is not shown.
        return f"InvitationCode(group_prefix={self.group_prefix.hex()!r}, hint={self.hint!r})"

    @classmethod
    def parse(cls, text: str) -> InvitationCode:
        """Parse a text code. Raises :class:`ValidationError` with ``BAD_INVITATION`` for a
        malformed code and ``BAD_CHECKSUM`` when the checksum does not match (a typo)."""
        if not isinstance(text, str):
            raise _bad("an invitation code must be a str", found=type(text).__name__)
        code, sep, hint = text.strip().partition("@")
        compact = re.sub(r"[\s\-]", "", code).lower()
        if not compact.startswith(CODE_PREFIX):
            raise _bad(
                f"an invitation code starts with {CODE_PREFIX!r}, found {compact[:4]!r}",
                expected=CODE_PREFIX,
                found=compact[:4],
            )
        body = compact[len(CODE_PREFIX) :]
        if len(body) != _TEXT_BODY_LEN:
            raise _bad(
                f"an invitation code has {_TEXT_BODY_LEN} characters after the prefix, found {len(body)}",
                expected=_TEXT_BODY_LEN,
                found=len(body),
            )
        if not re.fullmatch(r"[a-z2-7]+", body):
            raise _bad(
                "an invitation code contains characters outside base32 (a-z, 2-7)",
                expected="base32",
            )
        try:
            payload = base64.b32decode(body.upper())
        except (binascii.Error, ValueError):  # pragma: no cover - excluded by the regex
            raise _bad("an invitation code is not base32", expected="base32") from None
        prefix = payload[:GROUP_PREFIX_SIZE]
        secret = payload[GROUP_PREFIX_SIZE : GROUP_PREFIX_SIZE + INVITATION_SECRET_SIZE]
        check = payload[GROUP_PREFIX_SIZE + INVITATION_SECRET_SIZE :]
        if _checksum(prefix, secret) != check:
            raise ValidationError(
                ErrorCode.BAD_CHECKSUM,
                "invitation code checksum does not match (a typo?)",
                expected=_checksum(prefix, secret).hex(),
                found=check.hex(),
            )
        return cls(group_prefix=prefix, secret=secret, hint=hint.strip() if sep else None)

    def keypair(self) -> KeyPair:
        """The invitation key pair."""
        return invitation_keypair(self.secret)

    @property
    def public_key(self) -> bytes:
        """The invitation public key, as the INVITE entry states it."""
        return self.keypair().public_key

    def matches_group(self, group: bytes) -> bool:
        """Whether ``group`` (a full 32-byte id) is the group this code names."""
        return group[:GROUP_PREFIX_SIZE] == self.group_prefix

    def join_proof(self, group: bytes, invite_id: bytes, member: bytes) -> bytes:
        """The proof a JOIN by ``member`` carries (see :func:`join_proof`)."""
        if not self.matches_group(group):
            raise _bad(
                f"this code is for a group starting {self.group_prefix.hex()}, not {group[:GROUP_PREFIX_SIZE].hex()}",
                expected=self.group_prefix.hex(),
                found=group[:GROUP_PREFIX_SIZE].hex(),
            )
        return join_proof(self.keypair(), group, invite_id, member)
