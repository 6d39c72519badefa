"""Kinds, roles, levels, permissions and verdict reasons (spec/04-membership.md sections
4.2 terminology and levels, 4.3 kinds, 4.4 roles and the permission table, 4.13 reasons,
and B3's weak member ids).

Plain tables: nothing here decodes or resolves anything.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = [
    "FIRST_APP_KIND",
    "LEVEL_BANNED",
    "LEVEL_EQUIVOCATED",
    "LEVEL_NONE",
    "MEMBERSHIP_KINDS",
    "PERMISSIONS",
    "WEAK_MEMBER_IDS",
    "Kind",
    "Permission",
    "Reason",
    "Role",
    "required_level",
]


class Kind(enum.IntEnum):
    """Entry kinds defined by this chapter (the header's ``kind``)."""

    GENESIS = 0
    ADD = 1
    REMOVE = 2
    SET_ROLE = 3
    LEAVE = 4
    BAN = 5
    SET_METADATA = 6
    INVITE = 7
    REVOKE_INVITE = 8
    JOIN = 9
    CLAIM_ADMIN = 10
    KEYS = 11
    RELAY = 12
    POST = 32
    REPLY = 33
    REACT = 34
    RETRACT = 35
    HIDE = 48
    UNHIDE = 49
    DELETE = 50


#: Kinds that are membership operations.
MEMBERSHIP_KINDS: Final = frozenset(range(0, 13))
#: Kinds from here on are application content (need the ``post`` permission).
FIRST_APP_KIND: Final = 256


class Role(enum.IntEnum):
    """A member's role. Higher values include every power of lower ones."""

    READER = 1
    MEMBER = 2
    MODERATOR = 3
    ADMIN = 4


#: Level of a member whose log forked (R10).
LEVEL_EQUIVOCATED: Final = -2
#: Level of a banned member (R8).
LEVEL_BANNED: Final = -1
#: Level of someone who is not a member.
LEVEL_NONE: Final = 0

_READER = int(Role.READER)
_MEMBER = int(Role.MEMBER)
_MODERATOR = int(Role.MODERATOR)
_ADMIN = int(Role.ADMIN)


class Permission(enum.Enum):
    """What a role allows (the table is :data:`PERMISSIONS`)."""

    #: React to posts and replies; retract one's own posts.
    REACT = "react"
    #: Leave the group.
    LEAVE = "leave"
    #: Revoke an invitation one issued oneself.
    REVOKE_OWN_INVITE = "revoke-own-invite"
    #: Write posts and replies (and application content).
    POST = "post"
    #: Hide, unhide and delete anyone's posts, replies and reactions.
    MODERATE = "moderate"
    #: Issue invitations for the reader and member roles.
    INVITE = "invite"
    #: Remove or ban readers and members; ban non-members.
    REMOVE = "remove"
    #: Issue invitations for the moderator and admin roles.
    INVITE_PRIVILEGED = "invite-privileged"
    #: Remove or ban moderators and admins.
    REMOVE_PRIVILEGED = "remove-privileged"
    #: Add members directly (also lifts a ban).
    ADD = "add"
    #: Change members' roles.
    SET_ROLE = "set-role"
    #: Change the group's name, description and rules.
    SET_METADATA = "set-metadata"
    #: Revoke anyone's invitation.
    REVOKE_INVITE = "revoke-invite"
    #: Grant or revoke a relay's right to carry the group (spec/12-encryption.md).
    RELAY = "relay"


#: The lowest role that has each permission.
PERMISSIONS: Final[Mapping[Permission, Role]] = {
    Permission.REACT: Role.READER,
    Permission.LEAVE: Role.READER,
    Permission.REVOKE_OWN_INVITE: Role.READER,
    Permission.POST: Role.MEMBER,
    Permission.MODERATE: Role.MODERATOR,
    Permission.INVITE: Role.MODERATOR,
    Permission.REMOVE: Role.MODERATOR,
    Permission.INVITE_PRIVILEGED: Role.ADMIN,
    Permission.REMOVE_PRIVILEGED: Role.ADMIN,
    Permission.ADD: Role.ADMIN,
    Permission.SET_ROLE: Role.ADMIN,
    Permission.SET_METADATA: Role.ADMIN,
    Permission.REVOKE_INVITE: Role.ADMIN,
    Permission.RELAY: Role.ADMIN,
}


def _need(permission: Permission) -> int:
    return int(PERMISSIONS[permission])


_CONTENT_NEED: Final[Mapping[int, int]] = {
    Kind.POST: _need(Permission.POST),
    Kind.REPLY: _need(Permission.POST),
    Kind.REACT: _need(Permission.REACT),
    Kind.RETRACT: _need(Permission.REACT),
    Kind.HIDE: _need(Permission.MODERATE),
    Kind.UNHIDE: _need(Permission.MODERATE),
    Kind.DELETE: _need(Permission.MODERATE),
}


def required_level(kind: int) -> int | None:
    """The level a content entry of ``kind`` needs; None for a reserved, unknown kind
    (never effective). Operations have their own, target-dependent needs."""
    need = _CONTENT_NEED.get(kind)
    if need is not None:
        return need
    if kind >= FIRST_APP_KIND:
        return _need(Permission.POST)
    return None


class Reason(enum.Enum):
    """Why an entry does or does not take effect. Values are stable names (vectors)."""

    OK = "ok"
    #: The author is not a member at the entry's cut.
    NOT_A_MEMBER = "not-a-member"
    #: The author is banned at the entry's cut.
    BANNED = "banned"
    #: The author's role is too low for this entry.
    INSUFFICIENT_ROLE = "insufficient-role"
    #: Concurrent with an effective assignment that lowers the author (R2).
    REVOKED = "revoked"
    #: The author's log forked at or before this entry (R10).
    EQUIVOCATION = "equivocation"
    #: Excluded to break a cycle of mutually voiding operations (R6).
    CONFLICT = "conflict"
    #: The body does not decode.
    MALFORMED = "malformed"
    #: An operation whose body is not held (it cannot be interpreted).
    BODY_MISSING = "body-missing"
    #: The operation's target does not allow it (self, wrong state, cut too low).
    BAD_TARGET = "bad-target"
    #: A join or revocation naming no effective invitation in its past.
    INVITATION_UNKNOWN = "invitation-unknown"
    #: The invitation was revoked (R5).
    INVITATION_REVOKED = "invitation-revoked"
    #: The join is not earlier than the invitation's expiry.
    INVITATION_EXPIRED = "invitation-expired"
    #: The invitation's uses are taken (R5).
    INVITATION_USED_UP = "invitation-used-up"
    #: The join's timestamp is before the invitation's.
    BAD_TIMESTAMP = "bad-timestamp"
    #: The join's proof is not the invitation key's signature.
    BAD_PROOF = "bad-proof"
    #: The invitation's issuer lost the power to issue it (R4).
    INVITER_REVOKED = "inviter-revoked"
    #: A claim of admin while the group has an admin or a higher member (R9).
    NOT_HEADLESS = "not-headless"
    #: A reserved kind this implementation does not know.
    UNKNOWN_KIND = "unknown-kind"
    #: Encrypted content whose epoch some non-member of its past can open
    #: (spec/12-encryption.md 12.10 X1; spec/04-membership.md C5).
    STALE_EPOCH = "stale-epoch"


def _small_order_encodings() -> frozenset[bytes]:
    """The 14 encodings of the 8 points of small order (02 V3 accepts them all, and for
    such a key anyone can forge signatures; spec/09-security.md section 9.4)."""
    p = 2**255 - 19
    # y of the order-8 points; y = 0 (order 4), 1 (order 1) and p - 1 (order 2).
    y8 = int.from_bytes(
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
    )
    ys = (0, 1, p - 1, y8, p - y8, p, p + 1)  # p and p + 1: non-canonical 0 and 1
    return frozenset((y | sign << 255).to_bytes(32, "little") for y in ys for sign in (0, 1))


#: Member ids that can never be admitted (R1: an add of one, or a join by one, is a
#: bad target).
WEAK_MEMBER_IDS: Final = _small_order_encodings()


def _level_reason(level: int) -> Reason:
    if level == LEVEL_EQUIVOCATED:
        return Reason.EQUIVOCATION
    if level == LEVEL_BANNED:
        return Reason.BANNED
    if level <= LEVEL_NONE:
        return Reason.NOT_A_MEMBER
    return Reason.INSUFFICIENT_ROLE
