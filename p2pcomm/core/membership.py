"""Group membership, roles, invitations and moderation powers: a convergent CRDT over the
signed group log (spec/04-membership.md).

Theory of operation
-------------------
Every replica holds a set of log entries (already valid at the log level: signed,
chained, with their ``prev`` and ``links`` present). From that set alone, whatever order
it arrived in, this module computes who is in the group, with which role, and whether
each entry's author was entitled to write it. Nothing here reads a clock, does I/O or
keeps state beyond the entries.

*Operations.* Entries whose kind is in :data:`MEMBERSHIP_KINDS` (genesis, add, remove,
set-role, leave, ban, set-metadata, invite, revoke-invite, join, claim-admin) are
*operations*. The other kinds (posts, replies, reactions, moderation) are *content*:
they change no membership, and are only judged.

*Causal knowledge.* Each entry ``e`` has a bit set ``K(e)``: the operations in its
causal past, itself included when it is one (bit ``i`` is the ``i``-th operation this
replica met; bit numbers are local, what they denote is not). ``K(e)`` is the union of
the sets of its ``prev`` and ``links``. ``a`` is in the past of ``b`` iff ``a``'s bit is
in ``K(b)``. The popcount of ``K(op)`` is the number of operations in the op's past: the
order ``T`` sorts operations by ``(popcount(K), id)``, a deterministic linear extension
of causality that every replica computes alike.

*Levels.* A member's *level* is ``-2`` (equivocated), ``-1`` (banned), ``0`` (none) or
a :class:`Role` (1 reader .. 4 admin). *Assignments* are operations that set one
member's level: genesis (founder -> admin), add, remove (0), ban (-1), set-role, leave
(0, self), join (the invitation's role, self), claim-admin (4, self). The level of
member ``X`` at a cut ``K`` is the **minimum** over the *maximal* effective assignments
to ``X`` in ``K`` (R3): a removal concurrent with an add wins, a ban beats a
removal, a demotion beats a concurrent promotion.

*Rules* (R1 to R10 of spec/04-membership.md section 4.9, where each has its rationale
and a drawn example; section 4.8 is the algorithm):

* R1 An entry takes effect only if its author's level at the entry's causal cut
  reaches what its kind needs (:data:`PERMISSIONS`), and the kind-specific checks hold.
* R2 **Strong revocation.** An entry by ``X`` is void if some effective assignment to
  ``X`` made by someone else gives ``X`` a level below what the entry needs, and is
  concurrent with it: the assignment is not in the entry's past, and the entry's
  sequence number is above the *cut* the assignment declares (the highest sequence of
  ``X`` its author accepts as seen). Removed, banned or demoted members' concurrent
  actions are undone, for operations and content alike.
* R3 The lowest concurrent assignment wins (above).
* R4 A join acts under its invitation's issuer: the issuer must still have the power to
  issue it at the join's cut, and no effective assignment lowering the issuer below that
  power may be concurrent with the join.
* R5 A revocation of an invitation wins over a concurrent join; uses are counted in
  ``T`` order; expiry compares claimed timestamps.
* R6 **Seniority.** R2, R4 and R5 let operations void each other, which can form cycles
  (two admins removing each other). The resolver looks for a *stable* set of voiding
  operations ``S = Γ(S)`` by iteration from ``Γ(∅)``; if the iteration cycles, the
  operation of the most junior author among those that void each other is excluded
  (voided with reason ``conflict``) and the search restarts. Seniority is the ``T`` key
  of the assignment that gave the author its level.
* R7 Removal is not a ban: a removed member may come back through an invitation or an
  add; what they wrote concurrently with the removal stays void.
* R8 A ban outlives invitations: a banned member's join is refused; only an add made
  after the ban lifts it.
* R9 Leaving is never refused. A group whose members include no admin is *headless*;
  then a member with the highest remaining level may claim admin.
* R10 **Equivocation.** A member with two entries at one sequence number (a fork) is
  expelled: all their entries from the first forked sequence on are void, on both
  branches; they no longer count as admin and their invitations die.

*Two implementations of one function.* :func:`resolve` computes the state of a set of
entries in one batch. :class:`MembershipMachine` applies entries one at a time: content
costs a bit-set union and a cached level lookup; an operation that cannot change any
existing operation's fate (no structural victim, R6 not in play) is judged alone;
anything else (a revocation concurrent with its target's operations, a fork, a late
body) rebuilds the operation world and re-judges the content of the members whose
level history changed. The tests check both agree on every delivery order.

What this module does not know about: bodies of content (``content.py`` decodes and
shows them), invitation codes (``invitation.py``), and the clock. Entries of a reserved
kind it does not know are void (``unknown-kind``); kinds from ``FIRST_APP_KIND`` on are
application content that needs the ``post`` permission.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar, Final, NamedTuple, TypeAlias

from ..errors import DecodeError, ErrorCode, ValidationError
from .encoding import (
    Limits,
    Value,
    decode,
    encode,
    expect_array,
    expect_bytes,
    expect_str,
    expect_uint,
)
from .invitation import verify_join_proof
from .log import KIND_GENESIS, MAX_BODY_SIZE, MAX_U63, Entry

__all__ = [
    "BODY_VERSION",
    "FIRST_APP_KIND",
    "LEVEL_BANNED",
    "LEVEL_EQUIVOCATED",
    "LEVEL_NONE",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "MAX_NOTE",
    "MAX_REASON",
    "MAX_RULES",
    "MEMBERSHIP_KINDS",
    "PERMISSIONS",
    "WEAK_MEMBER_IDS",
    "AddMember",
    "Ban",
    "ClaimAdmin",
    "GenesisBody",
    "GroupMetadata",
    "GroupState",
    "Invitation",
    "Invite",
    "Join",
    "Kind",
    "Leave",
    "Member",
    "MembershipMachine",
    "MembershipOp",
    "Permission",
    "Reason",
    "RemoveMember",
    "RevokeInvite",
    "Role",
    "SetMetadata",
    "SetRole",
    "Verdict",
    "body_fields",
    "decode_op",
    "required_level",
    "resolve",
]


# --------------------------------------------------------------------------- kinds, roles


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
    POST = 32
    REPLY = 33
    REACT = 34
    RETRACT = 35
    HIDE = 48
    UNHIDE = 49
    DELETE = 50


#: Kinds that are membership operations.
MEMBERSHIP_KINDS: Final = frozenset(range(0, 11))
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


# --------------------------------------------------------------------------- bodies

#: Version of every body layout defined by this chapter.
BODY_VERSION: Final = 1
#: Longest display or group name, in UTF-8 bytes.
MAX_NAME: Final = 64
#: Longest group description.
MAX_DESCRIPTION: Final = 1024
#: Longest rules text.
MAX_RULES: Final = 8192
#: Longest reason given for a removal, ban or moderation.
MAX_REASON: Final = 256
#: Longest note on an invitation.
MAX_NOTE: Final = 256

_BODY_LIMITS: Final = Limits(
    max_size=MAX_BODY_SIZE, max_bytes=MAX_BODY_SIZE, max_array=8, max_depth=1
)


def body_fields(data: bytes, what: str, length: int) -> list[Value]:
    """Decode a body ``[version, ...]`` of exactly ``length`` items, version 1.

    Raises :class:`DecodeError` (``UNKNOWN_VERSION`` for another version)."""
    items = expect_array(decode(data, _BODY_LIMITS), what)
    if (
        items
        and isinstance(items[0], int)
        and not isinstance(items[0], bool)
        and items[0] != BODY_VERSION
    ):
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"{what} version {items[0]} is not supported",
            expected=BODY_VERSION,
            found=items[0],
        )
    expect_array(items, what, length=length)
    expect_uint(items[0], f"{what}.version", minimum=BODY_VERSION, maximum=BODY_VERSION)
    return items


def _text(value: Value, what: str, limit: int) -> str:
    return expect_str(value, what, max_length=limit)


def _role(value: Value, what: str) -> Role:
    return Role(expect_uint(value, what, minimum=_READER, maximum=_ADMIN))


def _id(value: Value, what: str) -> bytes:
    return expect_bytes(value, what, length=32)


def _cut(value: Value, what: str) -> int:
    return expect_uint(value, what, maximum=MAX_U63)


def _check_text(value: str, what: str, limit: int) -> None:
    size = len(value.encode("utf-8"))
    if size > limit:
        raise ValidationError(
            ErrorCode.BAD_OPERATION,
            f"{what} is {size} utf-8 bytes, at most {limit} allowed",
            expected=limit,
            found=size,
        )


def _check_id(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValidationError(ErrorCode.BAD_OPERATION, f"{what} must be 32 bytes", expected=32)


def _check_uint(value: int, what: str) -> None:
    if not 0 <= value <= MAX_U63:
        raise ValidationError(
            ErrorCode.BAD_OPERATION, f"{what} {value} is outside 0 ..= 2^63-1", found=value
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GenesisBody:
    """Body of the genesis entry: ``[1, name, description, rules, founder_name]``.
    The genesis author is the founder and first admin."""

    KIND: ClassVar[Kind] = Kind.GENESIS
    name: str
    description: str = ""
    rules: str = ""
    founder_name: str = ""

    def encode(self) -> bytes:
        _check_text(self.name, "group name", MAX_NAME)
        _check_text(self.description, "description", MAX_DESCRIPTION)
        _check_text(self.rules, "rules", MAX_RULES)
        _check_text(self.founder_name, "founder name", MAX_NAME)
        return encode([BODY_VERSION, self.name, self.description, self.rules, self.founder_name])

    @classmethod
    def decode(cls, data: bytes) -> GenesisBody:
        f = body_fields(data, "genesis", 5)
        return cls(
            name=_text(f[1], "genesis.name", MAX_NAME),
            description=_text(f[2], "genesis.description", MAX_DESCRIPTION),
            rules=_text(f[3], "genesis.rules", MAX_RULES),
            founder_name=_text(f[4], "genesis.founder_name", MAX_NAME),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AddMember:
    """``[1, member: bin(32), role: uint 1..=4, cut: uint, name: str]``: an admin adds a
    member (or lifts a ban). ``cut`` is the highest sequence of the member the author
    accepts as seen (0 for a newcomer)."""

    KIND: ClassVar[Kind] = Kind.ADD
    member: bytes
    role: Role
    cut: int = 0
    name: str = ""

    def encode(self) -> bytes:
        _check_id(self.member, "member")
        _check_uint(self.cut, "cut")
        _check_text(self.name, "name", MAX_NAME)
        return encode([BODY_VERSION, self.member, int(self.role), self.cut, self.name])

    @classmethod
    def decode(cls, data: bytes) -> AddMember:
        f = body_fields(data, "add", 5)
        return cls(
            member=_id(f[1], "add.member"),
            role=_role(f[2], "add.role"),
            cut=_cut(f[3], "add.cut"),
            name=_text(f[4], "add.name", MAX_NAME),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveMember:
    """``[1, member: bin(32), cut: uint, reason: str]``: a moderator or admin removes a
    member; the member's entries with a sequence above ``cut`` that did not see the
    removal are void (R2)."""

    KIND: ClassVar[Kind] = Kind.REMOVE
    member: bytes
    cut: int
    reason: str = ""

    def encode(self) -> bytes:
        _check_id(self.member, "member")
        _check_uint(self.cut, "cut")
        _check_text(self.reason, "reason", MAX_REASON)
        return encode([BODY_VERSION, self.member, self.cut, self.reason])

    @classmethod
    def decode(cls, data: bytes) -> RemoveMember:
        f = body_fields(data, "remove", 4)
        return cls(
            member=_id(f[1], "remove.member"),
            cut=_cut(f[2], "remove.cut"),
            reason=_text(f[3], "remove.reason", MAX_REASON),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRole:
    """``[1, member: bin(32), role: uint 1..=4, cut: uint]``: an admin changes a role."""

    KIND: ClassVar[Kind] = Kind.SET_ROLE
    member: bytes
    role: Role
    cut: int

    def encode(self) -> bytes:
        _check_id(self.member, "member")
        _check_uint(self.cut, "cut")
        return encode([BODY_VERSION, self.member, int(self.role), self.cut])

    @classmethod
    def decode(cls, data: bytes) -> SetRole:
        f = body_fields(data, "set_role", 4)
        return cls(
            member=_id(f[1], "set_role.member"),
            role=_role(f[2], "set_role.role"),
            cut=_cut(f[3], "set_role.cut"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """``[1]``: the author leaves."""

    KIND: ClassVar[Kind] = Kind.LEAVE

    def encode(self) -> bytes:
        return encode([BODY_VERSION])

    @classmethod
    def decode(cls, data: bytes) -> Leave:
        body_fields(data, "leave", 1)
        return cls()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ban:
    """``[1, member: bin(32), cut: uint, reason: str]``: removal that invitations cannot
    undo (R8). The target need not be a member."""

    KIND: ClassVar[Kind] = Kind.BAN
    member: bytes
    cut: int
    reason: str = ""

    def encode(self) -> bytes:
        _check_id(self.member, "member")
        _check_uint(self.cut, "cut")
        _check_text(self.reason, "reason", MAX_REASON)
        return encode([BODY_VERSION, self.member, self.cut, self.reason])

    @classmethod
    def decode(cls, data: bytes) -> Ban:
        f = body_fields(data, "ban", 4)
        return cls(
            member=_id(f[1], "ban.member"),
            cut=_cut(f[2], "ban.cut"),
            reason=_text(f[3], "ban.reason", MAX_REASON),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMetadata:
    """``[1, name, description, rules]``: an admin renames the group (last in ``T`` wins)."""

    KIND: ClassVar[Kind] = Kind.SET_METADATA
    name: str
    description: str = ""
    rules: str = ""

    def encode(self) -> bytes:
        _check_text(self.name, "group name", MAX_NAME)
        _check_text(self.description, "description", MAX_DESCRIPTION)
        _check_text(self.rules, "rules", MAX_RULES)
        return encode([BODY_VERSION, self.name, self.description, self.rules])

    @classmethod
    def decode(cls, data: bytes) -> SetMetadata:
        f = body_fields(data, "set_metadata", 4)
        return cls(
            name=_text(f[1], "set_metadata.name", MAX_NAME),
            description=_text(f[2], "set_metadata.description", MAX_DESCRIPTION),
            rules=_text(f[3], "set_metadata.rules", MAX_RULES),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """``[1, invitation_key: bin(32), role: uint 1..=4, max_uses: uint, expires_at: uint,
    note: str]``. ``max_uses`` 0 is unlimited, ``expires_at`` 0 never (milliseconds)."""

    KIND: ClassVar[Kind] = Kind.INVITE
    invitation_key: bytes
    role: Role = Role.MEMBER
    max_uses: int = 1
    expires_at: int = 0
    note: str = ""

    def encode(self) -> bytes:
        _check_id(self.invitation_key, "invitation key")
        _check_uint(self.max_uses, "max_uses")
        _check_uint(self.expires_at, "expires_at")
        _check_text(self.note, "note", MAX_NOTE)
        return encode(
            [
                BODY_VERSION,
                self.invitation_key,
                int(self.role),
                self.max_uses,
                self.expires_at,
                self.note,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Invite:
        f = body_fields(data, "invite", 6)
        return cls(
            invitation_key=_id(f[1], "invite.invitation_key"),
            role=_role(f[2], "invite.role"),
            max_uses=expect_uint(f[3], "invite.max_uses", maximum=MAX_U63),
            expires_at=expect_uint(f[4], "invite.expires_at", maximum=MAX_U63),
            note=_text(f[5], "invite.note", MAX_NOTE),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeInvite:
    """``[1, invite: bin(32)]``: revoke the invitation made by entry ``invite``."""

    KIND: ClassVar[Kind] = Kind.REVOKE_INVITE
    invite: bytes

    def encode(self) -> bytes:
        _check_id(self.invite, "invite")
        return encode([BODY_VERSION, self.invite])

    @classmethod
    def decode(cls, data: bytes) -> RevokeInvite:
        f = body_fields(data, "revoke_invite", 2)
        return cls(invite=_id(f[1], "revoke_invite.invite"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """``[1, invite: bin(32), proof: bin(64), name: str]``: the author joins with the
    invitation made by entry ``invite``; ``proof`` is the invitation key's signature
    (``invitation.join_proof``)."""

    KIND: ClassVar[Kind] = Kind.JOIN
    invite: bytes
    proof: bytes
    name: str = ""

    def encode(self) -> bytes:
        _check_id(self.invite, "invite")
        if len(self.proof) != 64:
            raise ValidationError(
                ErrorCode.BAD_OPERATION,
                "a join proof is 64 bytes",
                expected=64,
                found=len(self.proof),
            )
        _check_text(self.name, "name", MAX_NAME)
        return encode([BODY_VERSION, self.invite, self.proof, self.name])

    @classmethod
    def decode(cls, data: bytes) -> Join:
        f = body_fields(data, "join", 4)
        return cls(
            invite=_id(f[1], "join.invite"),
            proof=expect_bytes(f[2], "join.proof", length=64),
            name=_text(f[3], "join.name", MAX_NAME),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimAdmin:
    """``[1]``: in a headless group, a member of the highest remaining level claims admin."""

    KIND: ClassVar[Kind] = Kind.CLAIM_ADMIN

    def encode(self) -> bytes:
        return encode([BODY_VERSION])

    @classmethod
    def decode(cls, data: bytes) -> ClaimAdmin:
        body_fields(data, "claim_admin", 1)
        return cls()


MembershipOp: TypeAlias = (
    GenesisBody
    | AddMember
    | RemoveMember
    | SetRole
    | Leave
    | Ban
    | SetMetadata
    | Invite
    | RevokeInvite
    | Join
    | ClaimAdmin
)

_OP_TYPES: Final[Mapping[int, type[MembershipOp]]] = {
    t.KIND: t
    for t in (
        GenesisBody,
        AddMember,
        RemoveMember,
        SetRole,
        Leave,
        Ban,
        SetMetadata,
        Invite,
        RevokeInvite,
        Join,
        ClaimAdmin,
    )
}


def decode_op(kind: int, data: bytes) -> MembershipOp:
    """Decode the body of an operation of ``kind``. Raises :class:`DecodeError`, or
    :class:`ValidationError` (``BAD_OPERATION``) when ``kind`` is not an operation."""
    cls = _OP_TYPES.get(kind)
    if cls is None:
        raise ValidationError(
            ErrorCode.BAD_OPERATION, f"kind {kind} is not a membership operation", found=kind
        )
    return cls.decode(data)


# --------------------------------------------------------------------------- the state


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMetadata:
    """The group's name, description and rules text."""

    name: str
    description: str
    rules: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A current member."""

    #: The member id (Ed25519 public key).
    id: bytes
    role: Role
    #: Display name from the member's latest effective add or join ("" if none).
    name: str
    #: Id of the entry that gave the member the current role.
    since: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """An effective INVITE entry and how it stands."""

    #: Id of the INVITE entry.
    id: bytes
    #: Who issued it.
    inviter: bytes
    #: Public key of the invitation key pair.
    invitation_key: bytes
    role: Role
    #: 0 = unlimited.
    max_uses: int
    #: Milliseconds since the epoch; 0 = never.
    expires_at: int
    #: Effective joins so far.
    uses: int
    #: An effective revocation exists.
    revoked: bool
    #: The issuer can still issue it (member with the power, not equivocated).
    issuer_valid: bool

    def usable(self, now_ms: int | None = None) -> bool:
        """Whether a join could still succeed (``now_ms`` checks the expiry too)."""
        if self.revoked or not self.issuer_valid:
            return False
        if self.max_uses and self.uses >= self.max_uses:
            return False
        return not (now_ms is not None and self.expires_at and now_ms >= self.expires_at)


class Verdict(NamedTuple):
    """How one entry stands."""

    kind: int
    author: bytes
    #: The author's effective level at the entry (after R2).
    level: int
    reason: Reason

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupState:
    """What a set of entries says about the group: members, roles, invitations, and a
    verdict for every entry. Two equal sets of entries give equal states."""

    group: bytes
    founder: bytes
    metadata: GroupMetadata
    members: Mapping[bytes, Member]
    #: Banned member ids (R8).
    banned: frozenset[bytes]
    #: Authors whose log forked -> first forked sequence (R10).
    equivocators: Mapping[bytes, int]
    invitations: Mapping[bytes, Invitation]
    #: Entry id -> verdict, for every entry whose dependencies are present.
    verdicts: Mapping[bytes, Verdict]
    #: Entries waiting for a dependency (not judged).
    pending: frozenset[bytes]

    def role_of(self, member: bytes) -> Role | None:
        m = self.members.get(member)
        return None if m is None else m.role

    def is_member(self, member: bytes) -> bool:
        return member in self.members

    def can(self, member: bytes, permission: Permission) -> bool:
        """Whether ``member`` has ``permission`` now."""
        role = self.role_of(member)
        return role is not None and role >= PERMISSIONS[permission]

    @property
    def admins(self) -> frozenset[bytes]:
        return frozenset(m.id for m in self.members.values() if m.role == Role.ADMIN)

    @property
    def headless(self) -> bool:
        """No admin among the members (R9)."""
        return bool(self.members) and not self.admins

    def verdict(self, entry_id: bytes) -> Verdict | None:
        return self.verdicts.get(entry_id)

    def authorized(self, entry_id: bytes) -> bool:
        """Whether the entry takes effect (its author could write it, R1 to R10)."""
        v = self.verdicts.get(entry_id)
        return v is not None and v.reason is Reason.OK

    def invitation_for_key(self, invitation_key: bytes) -> Invitation | None:
        """The invitation committing to ``invitation_key`` (what an invitee looks for)."""
        found = [i for i in self.invitations.values() if i.invitation_key == invitation_key]
        return min(found, key=attrgetter("id")) if found else None


# --------------------------------------------------------------------------- internals


class _Op:
    """One operation, with what can be known about it without resolving anything."""

    __slots__ = (
        "K",
        "author",
        "bad",
        "bit",
        "body",
        "cut",
        "cut_ok",
        "entry",
        "id",
        "idx",
        "invite",
        "key",
        "kind",
        "level",
        "need_static",
        "proof_ok",
        "self_assign",
        "seq",
        "target",
        "ts",
    )

    def __init__(self, idx: int, entry: Entry, K: int) -> None:
        h = entry.header
        self.idx = idx
        self.bit = 1 << idx
        self.entry = entry
        self.id = entry.id
        self.author = h.author
        self.seq = h.seq
        self.kind = h.kind
        self.ts = h.timestamp
        self.K = K
        self.key = (K.bit_count(), entry.id)
        self.body: MembershipOp | None = None
        self.bad: Reason | None = None
        #: Member whose level this op assigns (assignments only).
        self.target: bytes | None = None
        #: Level assigned (assignments only).
        self.level: int | None = None
        self.cut = 0
        self.self_assign = False
        self.cut_ok = True
        #: Invitation entry id (JOIN, REVOKE_INVITE).
        self.invite: bytes | None = None
        self.proof_ok = False
        #: For INVITE: the level needed to issue it.
        self.need_static = 0

    @property
    def voider_kind(self) -> bool:
        """Could void other operations (R2, R4, R5)?"""
        if self.bad is not None:
            return False
        if self.kind == Kind.REVOKE_INVITE:
            return True
        return self.level is not None and not self.self_assign


_MAX_KEY: Final = (1 << 62, b"\xff" * 32)


class _Author:
    __slots__ = ("cache", "content", "fork", "id", "max_seq", "mops")

    def __init__(self, member: bytes) -> None:
        self.id = member
        #: Bits of the operations this member authored.
        self.mops = 0
        #: (valid assignments to this member in a cut) -> (level, T key of the grant).
        self.cache: dict[int, tuple[int, tuple[int, bytes]]] = {}
        #: First forked sequence, 0 if none.
        self.fork = 0
        self.max_seq = 0
        #: Ids of this author's content entries, in arrival order.
        self.content: list[bytes] = []


def _bits(x: int) -> list[int]:
    out = []
    while x:
        low = x & -x
        out.append(low.bit_length() - 1)
        x ^= low
    return out


class _World:
    """The outcome of judging every operation in ``T`` order against a fixed set ``S``
    of voiding operations (one step of the fixpoint search, or the live result)."""

    __slots__ = (
        "core",
        "levels",
        "mask",
        "meta",
        "names",
        "o_revokes",
        "o_voiders",
        "out",
        "reasons",
        "s_revokes",
        "s_voiders",
        "uses",
        "valid",
    )

    def __init__(self, core: _Core, S: Iterable[_Op] = ()) -> None:
        self.core = core
        self.reasons: dict[int, Reason] = {}
        self.levels: dict[int, int] = {}
        self.valid = 0
        #: Member -> bits of their effective assignments.
        self.mask: dict[bytes, int] = {}
        self.s_voiders: dict[bytes, list[_Op]] = {}
        self.s_revokes: dict[bytes, list[_Op]] = {}
        for v in S:
            if v.kind == Kind.REVOKE_INVITE:
                assert v.invite is not None
                self.s_revokes.setdefault(v.invite, []).append(v)
            else:
                assert v.target is not None
                self.s_voiders.setdefault(v.target, []).append(v)
        self.o_voiders: dict[bytes, list[_Op]] = {}
        self.o_revokes: dict[bytes, list[_Op]] = {}
        self.out: set[int] = set()
        self.uses: dict[bytes, int] = {}
        self.meta: _Op | None = None
        self.names: dict[bytes, _Op] = {}

    def go_live(self) -> None:
        """Make the output the input (at a fixpoint they are equal): fast-path updates
        then keep both in step."""
        self.s_voiders = self.o_voiders
        self.s_revokes = self.o_revokes

    def level(self, who: bytes, K: int) -> tuple[int, tuple[int, bytes]]:
        inK = self.mask.get(who, 0) & K
        if not inK:
            return LEVEL_NONE, _MAX_KEY
        return self.core.level_of(who, inK)

    def check(self, o: _Op, excluded: frozenset[int] | set[int]) -> Reason:
        core = self.core
        kind = o.kind
        if kind == Kind.GENESIS:
            self.levels[o.idx] = _ADMIN
            return Reason.OK if o.id == core.group else Reason.BAD_TARGET
        author = o.author
        K = o.K
        lvl = self.level(author, K)[0]
        self.levels[o.idx] = lvl
        if o.bad is not None:
            return o.bad
        if o.idx in excluded:
            return Reason.CONFLICT
        arec = core.authors[author]
        if arec.fork and o.seq >= arec.fork:
            return Reason.EQUIVOCATION
        need: int
        if kind == Kind.JOIN:
            inv = core.by_id.get(o.invite) if o.invite is not None else None
            if (
                inv is None
                or inv.kind != Kind.INVITE
                or not (K >> inv.idx) & 1
                or not (self.valid >> inv.idx) & 1
            ):
                return Reason.INVITATION_UNKNOWN
            if not o.proof_ok:
                return Reason.BAD_PROOF
            if lvl == LEVEL_BANNED:
                return Reason.BANNED
            if lvl >= _READER:
                return Reason.BAD_TARGET
            for r in self.o_revokes.get(inv.id, ()):
                if (K >> r.idx) & 1:
                    return Reason.INVITATION_REVOKED
            body = inv.body
            assert isinstance(body, Invite)
            if o.ts < inv.ts:
                return Reason.BAD_TIMESTAMP
            if body.expires_at and o.ts >= body.expires_at:
                return Reason.INVITATION_EXPIRED
            if body.max_uses and self.uses.get(inv.id, 0) >= body.max_uses:
                return Reason.INVITATION_USED_UP
            ineed = inv.need_static
            if core.authors[inv.author].fork or self.level(inv.author, K)[0] < ineed:
                return Reason.INVITER_REVOKED
            for v in self.s_voiders.get(inv.author, ()):
                if (
                    v.level is not None
                    and v.level < ineed
                    and not (K >> v.idx) & 1
                    and not (v.K >> o.idx) & 1
                ):
                    return Reason.INVITER_REVOKED
            for r in self.s_revokes.get(inv.id, ()):
                if not (K >> r.idx) & 1 and not (r.K >> o.idx) & 1:
                    return Reason.INVITATION_REVOKED
            assert o.level is not None
            need = o.level
        else:
            if lvl < _READER:
                return _level_reason(lvl)
            if kind == Kind.ADD:
                need = _need(Permission.ADD)
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
                assert o.target is not None
                if self.level(o.target, K)[0] >= _READER or not o.cut_ok:
                    return Reason.BAD_TARGET
            elif kind == Kind.REMOVE or kind == Kind.BAN:
                assert o.target is not None
                t = self.level(o.target, K)[0]
                if kind == Kind.REMOVE and t < _READER:
                    return Reason.BAD_TARGET
                need = (
                    _need(Permission.REMOVE)
                    if t <= _MEMBER
                    else _need(Permission.REMOVE_PRIVILEGED)
                )
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
                if not o.cut_ok:
                    return Reason.BAD_TARGET
            elif kind == Kind.SET_ROLE:
                need = _need(Permission.SET_ROLE)
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
                assert o.target is not None
                if not o.self_assign and (self.level(o.target, K)[0] < _READER or not o.cut_ok):
                    return Reason.BAD_TARGET
            elif kind == Kind.LEAVE:
                need = _need(Permission.LEAVE)
            elif kind == Kind.SET_METADATA:
                need = _need(Permission.SET_METADATA)
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            elif kind == Kind.INVITE:
                need = o.need_static
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            elif kind == Kind.REVOKE_INVITE:
                inv = core.by_id.get(o.invite) if o.invite is not None else None
                if (
                    inv is None
                    or inv.kind != Kind.INVITE
                    or not (K >> inv.idx) & 1
                    or not (self.valid >> inv.idx) & 1
                ):
                    return Reason.INVITATION_UNKNOWN
                need = (
                    _need(Permission.REVOKE_OWN_INVITE)
                    if inv.author == author
                    else _need(Permission.REVOKE_INVITE)
                )
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            else:  # CLAIM_ADMIN
                need = _READER
                top = 0
                for who, m in self.mask.items():
                    inK = m & K
                    rec = core.authors.get(who)
                    if not inK or (rec is not None and rec.fork):
                        continue
                    other = core.level_of(who, inK)[0]
                    if other >= _ADMIN:
                        return Reason.NOT_HEADLESS
                    top = max(top, other)
                if lvl < top:
                    return Reason.NOT_HEADLESS
        # R2: a concurrent, effective assignment that leaves the author too low.
        seq = o.seq
        for v in self.s_voiders.get(author, ()):
            if v.level is not None and v.level < need and seq > v.cut and not (K >> v.idx) & 1:
                return Reason.REVOKED
        return Reason.OK

    def accept(self, o: _Op) -> None:
        self.valid |= o.bit
        kind = o.kind
        target = o.target
        if o.level is not None and target is not None:
            self.mask[target] = self.mask.get(target, 0) | o.bit
            if not o.self_assign:
                self.out.add(o.idx)
                self.o_voiders.setdefault(target, []).append(o)
            if kind == Kind.ADD or kind == Kind.JOIN or kind == Kind.GENESIS:
                prior = self.names.get(target)
                if prior is None or prior.key < o.key:
                    self.names[target] = o
        if kind == Kind.REVOKE_INVITE:
            assert o.invite is not None
            self.out.add(o.idx)
            self.o_revokes.setdefault(o.invite, []).append(o)
        elif kind == Kind.JOIN:
            assert o.invite is not None
            self.uses[o.invite] = self.uses.get(o.invite, 0) + 1
        if (kind == Kind.SET_METADATA or kind == Kind.GENESIS) and (
            self.meta is None or self.meta.key < o.key
        ):
            self.meta = o


_MKINDS = MEMBERSHIP_KINDS
#: Plain-int keys: looking up an int in a dict keyed by IntEnum members is slower.
_NEED_BY_KIND: Final[dict[int, int]] = {int(k): v for k, v in _CONTENT_NEED.items()}
_APP_NEED: Final = _need(Permission.POST)


def _content_verdict(
    eid: bytes, kind: int, author: bytes, base: int, lowered: int | None
) -> Verdict:
    need = _NEED_BY_KIND.get(kind)
    if need is None and kind >= FIRST_APP_KIND:
        need = _APP_NEED
    eff = base if lowered is None else lowered
    if need is None:
        reason = Reason.UNKNOWN_KIND
    elif base < need or base == LEVEL_EQUIVOCATED:
        reason = _level_reason(base)
    elif eff < need:
        reason = Reason.REVOKED
    else:
        reason = Reason.OK
    return Verdict(kind, author, eff, reason)


class _Verdicts(Mapping[bytes, Verdict]):
    """Entry id -> :class:`Verdict`, built on access from the resolver's per-entry
    levels (a hundred thousand tuples are not made unless someone asks for them).
    Read-only; holds its own copies of the machine's tables."""

    __slots__ = ("_author", "_kind", "_level", "_lowered", "_ops")

    def __init__(
        self,
        ops: dict[bytes, Verdict],
        kind: dict[bytes, int],
        author: dict[bytes, bytes],
        level: dict[bytes, int],
        lowered: dict[bytes, int],
    ) -> None:
        self._ops = ops
        self._kind = kind
        self._author = author
        self._level = level
        self._lowered = lowered

    def __getitem__(self, eid: bytes) -> Verdict:
        v = self._ops.get(eid)
        if v is not None:
            return v
        return _content_verdict(
            eid, self._kind[eid], self._author[eid], self._level[eid], self._lowered.get(eid)
        )

    def get(self, eid: bytes, default: Verdict | None = None) -> Verdict | None:  # type: ignore[override]
        v = self._ops.get(eid)
        if v is not None:
            return v
        base = self._level.get(eid)
        if base is None:
            return default
        return _content_verdict(
            eid, self._kind[eid], self._author[eid], base, self._lowered.get(eid)
        )

    def __contains__(self, eid: object) -> bool:
        return eid in self._ops or eid in self._level

    def __iter__(self) -> Iterator[bytes]:
        yield from self._ops
        yield from self._level

    def __len__(self) -> int:
        return len(self._ops) + len(self._level)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Verdicts):
            return (
                self._ops == other._ops
                and self._level == other._level
                and self._lowered == other._lowered
                and self._kind == other._kind
                and self._author == other._author
            )
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} verdicts>"


class _Core:
    """Entries seen, their causal knowledge, the operations, and the current world."""

    def __init__(self, *, deferred: bool) -> None:
        #: Batch mode: judge nothing until :meth:`finish`.
        self.deferred = deferred
        self.group: bytes | None = None
        self.genesis: _Op | None = None
        #: Entry id -> bits of the operations in its past (itself included).
        self.K: dict[bytes, int] = {}
        self.ops: list[_Op] = []
        self.by_id: dict[bytes, _Op] = {}
        self.authors: dict[bytes, _Author] = {}
        #: Content entry id -> its kind, author and sequence number (three plain dicts:
        #: no per-entry objects, which keeps the garbage collector out of the way).
        self.ckind: dict[bytes, int] = {}
        self.cauthor: dict[bytes, bytes] = {}
        self.cseq: dict[bytes, int] = {}
        #: Content entry id -> author's level at its cut.
        self.level: dict[bytes, int] = {}
        #: Content entry id -> lower effective level (R2), when lowered.
        self.lowered: dict[bytes, int] = {}
        self.pending: dict[bytes, Entry] = {}
        self.waiting: dict[bytes, list[bytes]] = {}
        #: All JOIN ops naming an invitation (any validity), by invitation id / issuer.
        self.joins_by_invite: dict[bytes, list[_Op]] = {}
        self.joins_by_inviter: dict[bytes, list[_Op]] = {}
        self.world = _World(self)
        self.world.go_live()
        self.excluded: frozenset[int] = frozenset()
        #: The world is stale: a rebuild is due before the next judgement.
        self.dirty = False
        #: Within apply_many: postpone rebuilds to the end.
        self.batching = False
        self._snapshot: GroupState | None = None
        #: Ids applied or re-judged since the caller last collected them.
        self.changed: dict[bytes, None] = {}

    # -- intake

    def feed(self, entry: Entry) -> None:
        eid = entry.id
        Kd = self.K
        if eid in Kd:
            self._again(entry)
            return
        h = entry.header
        kind = h.kind
        group = self.group
        if group is None or kind == KIND_GENESIS or h.group != group or eid in self.pending:
            self._feed_slow(entry)
            return
        # The usual case, inlined: dependencies present, content or operation.
        prev = h.prev
        if prev is None:
            K = 0
        else:
            got = Kd.get(prev)
            if got is None:
                self._feed_slow(entry)
                return
            K = got
        for link in h.links:
            kl = Kd.get(link)
            if kl is None:
                self._feed_slow(entry)
                return
            if kl is not K:
                r = K | kl
                if r == kl:
                    K = kl
                elif r != K:
                    K = r
        author = h.author
        rec = self.authors.get(author)
        if rec is None:
            rec = self.authors[author] = _Author(author)
        seq = h.seq
        if seq <= rec.max_seq or kind in _MKINDS:
            self._process(entry, K, rec)
        else:
            rec.max_seq = seq
            Kd[eid] = K
            rec.content.append(eid)
            self.ckind[eid] = kind
            self.cauthor[eid] = author
            self.cseq[eid] = seq
            if not self.deferred:
                self.changed[eid] = None
                if not self.dirty:
                    self._judge_content(rec, eid, K, seq)
        if self.waiting and eid in self.waiting:
            self._release(eid)

    def _feed_slow(self, entry: Entry) -> None:
        eid = entry.id
        if eid in self.pending:
            if entry.body is not None and self.pending[eid].body is None:
                self.pending[eid] = entry
            return
        h = entry.header
        if h.kind == KIND_GENESIS:
            if self.group is None:
                self.group = eid
            elif eid != self.group:
                raise ValidationError(
                    ErrorCode.WRONG_GROUP,
                    f"a second genesis {eid.hex()[:16]} for group {self.group.hex()[:16]}",
                    expected=self.group.hex(),
                    found=eid.hex(),
                )
        elif self.group is not None and h.group != self.group:
            raise ValidationError(
                ErrorCode.WRONG_GROUP,
                f"entry of group {h.group.hex()[:16]} fed to group {self.group.hex()[:16]}",
                expected=self.group.hex(),
                found=h.group.hex(),
            )
        missing = self._missing(entry)
        if missing is not None:
            self.pending[eid] = entry
            self.waiting.setdefault(missing, []).append(eid)
            return
        self._process(entry)
        self._release(eid)

    def _release(self, eid: bytes) -> None:
        """Process the entries that waited for ``eid`` (and, in turn, for them)."""
        stack = [eid]
        while stack:
            waiters = self.waiting.pop(stack.pop(), None)
            if not waiters:
                continue
            for wid in waiters:
                w = self.pending.get(wid)
                if w is None:
                    continue
                miss = self._missing(w)
                if miss is not None:
                    self.waiting.setdefault(miss, []).append(wid)
                    continue
                del self.pending[wid]
                self._process(w)
                stack.append(wid)

    def _missing(self, entry: Entry) -> bytes | None:
        h = entry.header
        K = self.K
        if h.prev is not None and h.prev not in K:
            return h.prev
        for link in h.links:
            if link not in K:
                return link
        if h.kind != KIND_GENESIS and self.group is None:
            return h.group
        return None

    def _again(self, entry: Entry) -> None:
        """A known entry arrives again: only a late body of an operation matters."""
        o = self.by_id.get(entry.id)
        if o is None or o.bad is not Reason.BODY_MISSING or entry.body is None:
            return
        o.entry = entry
        o.bad = None
        self._interpret(o)
        if o.kind == Kind.INVITE:
            for j in self.joins_by_invite.get(o.id, ()):
                self._interpret(j)
        if self.deferred:
            return
        self.dirty = True
        self.changed[o.id] = None
        self._settle()

    def _process(self, entry: Entry, K: int | None = None, rec: _Author | None = None) -> None:
        """Take in an entry whose dependencies are present (``K`` and ``rec`` when the
        caller already computed them)."""
        h = entry.header
        eid = entry.id
        Kd = self.K
        if K is None:
            prev = h.prev
            K = Kd[prev] if prev is not None else 0
            for link in h.links:
                kl = Kd[link]
                if kl is not K:
                    r = K | kl
                    if r == kl:
                        K = kl
                    elif r != K:
                        K = r
        author = h.author
        if rec is None:
            rec = self.authors.get(author)
            if rec is None:
                rec = self.authors[author] = _Author(author)
        seq = h.seq
        forked = False
        if seq <= rec.max_seq:
            if not rec.fork or seq < rec.fork:
                rec.fork = seq
                forked = True
        else:
            rec.max_seq = seq
        kind = h.kind
        if kind in _MKINDS:
            self._new_op(entry, K, rec)
        else:
            Kd[eid] = K
            rec.content.append(eid)
            self.ckind[eid] = kind
            self.cauthor[eid] = author
            self.cseq[eid] = seq
            if not self.deferred:
                self.changed[eid] = None
                if not self.dirty:
                    self._judge_content(rec, eid, K, seq)
        if forked and not self.deferred:
            self.dirty = True
            self._settle()

    def _new_op(self, entry: Entry, K: int, rec: _Author) -> None:
        idx = len(self.ops)
        o = _Op(idx, entry, K | (1 << idx))
        self.ops.append(o)
        self.by_id[o.id] = o
        self.K[o.id] = o.K
        rec.mops |= o.bit
        if o.kind == KIND_GENESIS:
            self.genesis = o
        self._interpret(o)
        if self.deferred:
            return
        self.changed[o.id] = None
        if self.dirty or self._needs_rebuild(o):
            self.dirty = True
            self._settle()
            return
        w = self.world
        reason = w.check(o, self.excluded)
        w.reasons[o.idx] = reason
        if reason is Reason.OK:
            w.accept(o)
            if o.voider_kind and o.kind != Kind.REVOKE_INVITE:
                assert o.target is not None
                self._rejudge_after(o.target, o.cut)
        self._snapshot = None

    def _interpret(self, o: _Op) -> None:
        """Decode the body and derive the structural facts (no resolution)."""
        kind = o.kind
        entry = o.entry
        if entry.body is None:
            o.bad = Reason.BODY_MISSING
            return
        try:
            body = decode_op(kind, entry.body)
        except (DecodeError, ValidationError):
            if kind == KIND_GENESIS:
                # The founder is the founder whatever the body says; no metadata.
                body = GenesisBody(name="")
            else:
                o.bad = Reason.MALFORMED
                return
        o.body = body
        o.bad = None
        author = o.author
        if isinstance(body, GenesisBody):
            o.target, o.level, o.self_assign = author, _ADMIN, True
        elif isinstance(body, AddMember | RemoveMember | Ban | SetRole):
            o.target = body.member
            o.cut = body.cut
            if isinstance(body, AddMember | SetRole):
                o.level = int(body.role)
            else:
                o.level = LEVEL_NONE if isinstance(body, RemoveMember) else LEVEL_BANNED
            if isinstance(body, AddMember) and body.member in WEAK_MEMBER_IDS:
                o.bad = Reason.BAD_TARGET
                return
            if body.member == author:
                if isinstance(body, SetRole):
                    o.self_assign = True
                else:
                    o.bad = Reason.BAD_TARGET
                    return
            else:
                trec = self.authors.get(body.member)
                if trec is not None:
                    seen = [self.ops[i].seq for i in _bits(trec.mops & o.K)]
                    o.cut_ok = not seen or max(seen) <= body.cut
        elif isinstance(body, Leave):
            o.target, o.level, o.self_assign = author, LEVEL_NONE, True
        elif isinstance(body, ClaimAdmin):
            o.target, o.level, o.self_assign = author, _ADMIN, True
        elif isinstance(body, Invite):
            o.need_static = (
                _need(Permission.INVITE)
                if body.role <= Role.MEMBER
                else _need(Permission.INVITE_PRIVILEGED)
            )
        elif isinstance(body, RevokeInvite):
            o.invite = body.invite
        elif isinstance(body, Join):
            o.invite = body.invite
            o.target, o.self_assign = author, True
            if author in WEAK_MEMBER_IDS:
                o.bad = Reason.BAD_TARGET
            if o not in self.joins_by_invite.get(body.invite, ()):
                self.joins_by_invite.setdefault(body.invite, []).append(o)
            inv = self.by_id.get(body.invite)
            o.level = None
            o.proof_ok = False
            if inv is not None and (o.K >> inv.idx) & 1 and isinstance(inv.body, Invite):
                o.level = int(inv.body.role)
                joins = self.joins_by_inviter.setdefault(inv.author, [])
                if o not in joins:
                    joins.append(o)
                assert self.group is not None
                o.proof_ok = verify_join_proof(
                    inv.body.invitation_key, self.group, inv.id, author, body.proof
                )
            if o.level is None:
                # Unusable without its invitation; judged INVITATION_UNKNOWN.
                o.level = LEVEL_NONE

    # -- judging content

    def level_of(self, who: bytes, inK: int) -> tuple[int, tuple[int, bytes]]:
        """Level of ``who`` given ``inK``, the effective assignments to them in a cut
        (R3): minimum over the maximal ones; also the ``T`` key of the grant."""
        rec = self.authors.get(who)
        if rec is None:
            rec = self.authors[who] = _Author(who)
        got = rec.cache.get(inK)
        if got is not None:
            return got
        ops = self.ops
        cands = [ops[i] for i in _bits(inK)]
        if len(cands) == 1:
            o = cands[0]
            assert o.level is not None
            res = (o.level, o.key)
        else:
            # Bits are numbered in arrival order, a causal order: the last one is maximal.
            top = cands[-1]
            if not inK & ~top.K:
                # Everything else is in its past: the usual case.
                maximal = [top]
            else:
                maximal = [
                    a for a in cands if not any(b is not a and (b.K >> a.idx) & 1 for b in cands)
                ]
            lvl = min(a.level for a in maximal if a.level is not None)
            grant = min(a.key for a in maximal if a.level == lvl)
            res = (lvl, grant)
        rec.cache[inK] = res
        return res

    def _content_level(self, rec: _Author, K: int, seq: int) -> tuple[int, int]:
        """(level at the cut, effective level after R2) of a content entry."""
        if rec.fork and seq >= rec.fork:
            return LEVEL_EQUIVOCATED, LEVEL_EQUIVOCATED
        w = self.world
        inK = w.mask.get(rec.id, 0) & K
        if not inK:
            return LEVEL_NONE, LEVEL_NONE
        got = rec.cache.get(inK)
        base = got[0] if got is not None else self.level_of(rec.id, inK)[0]
        eff = base
        for v in w.s_voiders.get(rec.id, ()):
            lv = v.level
            if lv is not None and lv < eff and seq > v.cut and not (K >> v.idx) & 1:
                eff = lv
        return base, eff

    def _judge_content(self, rec: _Author, eid: bytes, K: int, seq: int) -> bool:
        """Judge one content entry; True if its verdict changed."""
        base, eff = self._content_level(rec, K, seq)
        old = self.level.get(eid)
        old_low = self.lowered.get(eid)
        self.level[eid] = base
        if eff != base:
            self.lowered[eid] = eff
        elif old_low is not None:
            del self.lowered[eid]
        return old != base or old_low != (eff if eff != base else None)

    def _rejudge_author(self, rec: _Author, min_seq: int = 0) -> None:
        Kd = self.K
        cseq = self.cseq
        for eid in rec.content:
            seq = cseq[eid]
            if seq > min_seq and self._judge_content(rec, eid, Kd[eid], seq):
                self.changed[eid] = None

    def _rejudge_after(self, member: bytes, cut: int) -> None:
        rec = self.authors.get(member)
        if rec is not None and rec.content:
            self._rejudge_author(rec, cut)

    # -- resolving operations

    def _needs_rebuild(self, o: _Op) -> bool:
        """Whether a new operation might change the fate of existing ones (then the
        world is rebuilt), or can be judged alone against the current world."""
        if o.voider_kind and (self.excluded or self._victims(o)):
            return True
        if o.kind == Kind.JOIN and o.invite is not None:
            inv = self.by_id.get(o.invite)
            if isinstance(inv, _Op) and isinstance(inv.body, Invite) and inv.body.max_uses:
                return any(
                    j is not o and j.key > o.key for j in self.joins_by_invite.get(o.invite, ())
                )
        return False

    def _victims(self, o: _Op) -> bool:
        return any(True for _ in self._victim_ops(o))

    def _victim_ops(self, o: _Op) -> Iterable[_Op]:
        """Operations ``o`` would void if effective (structurally, R2, R4, R5)."""
        ops = self.ops
        if o.kind == Kind.REVOKE_INVITE:
            assert o.invite is not None
            for j in self.joins_by_invite.get(o.invite, ()):
                if not (o.K >> j.idx) & 1 and not (j.K >> o.idx) & 1:
                    yield j
            return
        target = o.target
        assert target is not None
        trec = self.authors.get(target)
        if trec is not None:
            for i in _bits(trec.mops & ~o.K):
                q = ops[i]
                if q.seq > o.cut and not (q.K >> o.idx) & 1:
                    yield q
        for j in self.joins_by_inviter.get(target, ()):
            if not (o.K >> j.idx) & 1 and not (j.K >> o.idx) & 1:
                yield j

    def _evaluate(self, order: list[_Op], S: Iterable[_Op], excluded: frozenset[int]) -> _World:
        w = _World(self, S)
        check = w.check
        accept = w.accept
        reasons = w.reasons
        for o in order:
            r = check(o, excluded)
            reasons[o.idx] = r
            if r is Reason.OK:
                accept(o)
        return w

    def rebuild(self) -> None:
        """R6: search a stable set of voiding operations, excluding the most junior
        participant of any cycle, and install the resulting world."""
        ops = self.ops
        order = sorted(ops, key=attrgetter("key"))
        excluded: set[int] = set()
        while True:
            frozen = frozenset(excluded)
            world0 = self._evaluate(order, (), frozen)
            history: list[frozenset[int]] = [frozenset()]
            world = world0
            cycle: list[frozenset[int]] | None = None
            while True:
                S_next = frozenset(world.out)
                if S_next == history[-1]:
                    break
                if S_next in history or len(history) > 32:
                    start = history.index(S_next) if S_next in history else len(history) - 2
                    cycle = [*history[start:], S_next]
                    break
                history.append(S_next)
                world = self._evaluate(order, [ops[i] for i in sorted(S_next)], frozen)
            if cycle is None:
                break
            union = frozenset().union(*cycle)
            inter = frozenset(cycle[0]).intersection(*cycle[1:])
            D = [ops[i] for i in sorted(union - inter)]
            responsible = [c for c in D if any(d in D for d in self._victim_ops(c))]

            # The most junior participant goes: latest grant of the author, then latest op.
            ranked = [(world0.level(c.author, c.K)[1], c.key, c.idx) for c in responsible or D]
            excluded.add(max(ranked)[2])
        world.go_live()
        self.world = world
        self.excluded = frozenset(excluded)

    def _settle(self) -> None:
        if self.batching or not self.dirty:
            return
        old = self.world
        self.rebuild()
        self.dirty = False
        self._snapshot = None
        new = self.world
        for o in self.ops:
            if old.reasons.get(o.idx) is not new.reasons.get(o.idx):
                self.changed[o.id] = None
        for rec in self.authors.values():
            if not rec.content:
                continue
            who = rec.id
            before = (old.mask.get(who, 0), [v.idx for v in old.s_voiders.get(who, ())])
            after = (new.mask.get(who, 0), [v.idx for v in new.s_voiders.get(who, ())])
            # Entries that arrived while the world was stale were not judged yet; they are
            # at the end of the list.
            if before != after or rec.fork or rec.content[-1] not in self.level:
                self._rejudge_author(rec)

    def finish(self) -> None:
        """Batch mode: resolve the operations once, then judge all content."""
        self.rebuild()
        Kd = self.K
        cseq = self.cseq
        level = self.level
        lowered = self.lowered
        w = self.world
        mask_of = w.mask
        voiders_of = w.s_voiders
        level_of = self.level_of
        for rec in self.authors.values():
            if not rec.content:
                continue
            who = rec.id
            mask = mask_of.get(who, 0)
            voiders = voiders_of.get(who, ())
            cache = rec.cache
            fork = rec.fork
            for eid in rec.content:
                seq = cseq[eid]
                if fork and seq >= fork:
                    level[eid] = LEVEL_EQUIVOCATED
                    continue
                K = Kd[eid]
                inK = mask & K
                if not inK:
                    level[eid] = LEVEL_NONE
                    continue
                got = cache.get(inK)
                base = got[0] if got is not None else level_of(who, inK)[0]
                level[eid] = base
                if voiders:
                    eff = base
                    for v in voiders:
                        lv = v.level
                        if lv is not None and lv < eff and seq > v.cut and not (K >> v.idx) & 1:
                            eff = lv
                    if eff != base:
                        lowered[eid] = eff

    def content_verdict(self, eid: bytes) -> Verdict:
        return _content_verdict(
            eid, self.ckind[eid], self.cauthor[eid], self.level[eid], self.lowered.get(eid)
        )

    # -- the snapshot

    def members(self) -> tuple[dict[bytes, Member], set[bytes]]:
        """Members now (with role, name, since) and banned ids: O(authors)."""
        w = self.world
        members: dict[bytes, Member] = {}
        banned: set[bytes] = set()
        for who, mask in w.mask.items():
            lvl, grant = self.level_of(who, mask)
            rec = self.authors[who]
            if rec.fork:
                continue
            if lvl == LEVEL_BANNED:
                banned.add(who)
            elif lvl >= _READER:
                named = w.names.get(who)
                name = ""
                if named is not None:
                    b = named.body
                    if isinstance(b, AddMember | Join):
                        name = b.name
                    elif isinstance(b, GenesisBody):
                        name = b.founder_name
                members[who] = Member(id=who, role=Role(lvl), name=name, since=grant[1])
        return members, banned

    def snapshot(self) -> GroupState:
        if self._snapshot is not None:
            return self._snapshot
        if self.group is None or self.genesis is None:
            raise ValidationError(ErrorCode.BAD_GENESIS, "no genesis entry: the group is unknown")
        w = self.world
        ops = self.ops
        members, banned = self.members()
        meta_body = w.meta.body if w.meta is not None else None
        if isinstance(meta_body, GenesisBody | SetMetadata):
            metadata = GroupMetadata(
                name=meta_body.name, description=meta_body.description, rules=meta_body.rules
            )
        else:  # pragma: no cover - the genesis always decodes to a GenesisBody
            metadata = GroupMetadata(name="", description="", rules="")
        invitations: dict[bytes, Invitation] = {}
        for o in ops:
            if o.kind != Kind.INVITE or w.reasons.get(o.idx) is not Reason.OK:
                continue
            body = o.body
            assert isinstance(body, Invite)
            arec = self.authors[o.author]
            issuer = w.level(o.author, w.valid)[0]
            invitations[o.id] = Invitation(
                id=o.id,
                inviter=o.author,
                invitation_key=body.invitation_key,
                role=body.role,
                max_uses=body.max_uses,
                expires_at=body.expires_at,
                uses=w.uses.get(o.id, 0),
                revoked=bool(w.o_revokes.get(o.id)),
                issuer_valid=not arec.fork and issuer >= o.need_static,
            )
        verdicts: dict[bytes, Verdict] = {}
        for o in ops:
            verdicts[o.id] = Verdict(
                o.kind, o.author, w.levels.get(o.idx, LEVEL_NONE), w.reasons[o.idx]
            )
        state = GroupState(
            group=self.group,
            founder=self.genesis.author,
            metadata=metadata,
            members=members,
            banned=frozenset(banned),
            equivocators={r.id: r.fork for r in self.authors.values() if r.fork},
            invitations=invitations,
            verdicts=_Verdicts(
                verdicts,
                self.ckind if self.deferred else dict(self.ckind),
                self.cauthor if self.deferred else dict(self.cauthor),
                self.level if self.deferred else dict(self.level),
                self.lowered if self.deferred else dict(self.lowered),
            ),
            pending=frozenset(self.pending),
        )
        self._snapshot = state
        return state


# --------------------------------------------------------------------------- public API


def resolve(entries: Iterable[Entry]) -> GroupState:
    """The state of a group given a set of its entries (any order, duplicates allowed).

    This is the reference: a pure function of the set. Entries whose dependencies are
    not in the set are listed in ``pending`` and judged as if absent. Raises
    :class:`ValidationError` (``WRONG_GROUP``) for entries of two groups and
    (``BAD_GENESIS``) when the genesis entry is missing.
    """
    core = _Core(deferred=True)
    for e in entries:
        core.feed(e)
    core.finish()
    return core.snapshot()


class MembershipMachine:
    """The incremental twin of :func:`resolve`: feed entries as they arrive.

    ``apply(e)`` accepts entries in any order (those whose dependencies are missing wait
    inside), ignores duplicates, and returns the ids whose verdict is new or changed.
    :attr:`state` is always equal to ``resolve`` of everything applied.
    """

    def __init__(self) -> None:
        self._core = _Core(deferred=False)

    @property
    def group(self) -> bytes | None:
        return self._core.group

    def apply(self, entry: Entry) -> list[bytes]:
        """Apply one entry; returns the ids whose verdict is new or changed.

        Raises :class:`ValidationError` (``WRONG_GROUP``) for an entry of another group;
        the machine is then as before."""
        core = self._core
        try:
            core.feed(entry)
        finally:
            core._settle()
        return self._collect()

    def apply_many(self, entries: Iterable[Entry]) -> list[bytes]:
        """Apply a batch (for example one sync round): rebuilds happen once, at the end.
        If an entry raises, the entries before it stay applied."""
        core = self._core
        core.batching = True
        try:
            for e in entries:
                core.feed(e)
        finally:
            core.batching = False
            core._settle()
        return self._collect()

    def _collect(self) -> list[bytes]:
        core = self._core
        core._snapshot = None
        changed = list(core.changed)
        core.changed.clear()
        return changed

    @property
    def state(self) -> GroupState:
        """The current state (a frozen snapshot; cached until the next apply)."""
        return self._core.snapshot()

    def verdict(self, entry_id: bytes) -> Verdict | None:
        """How one entry stands now (None if unknown or pending)."""
        core = self._core
        o = core.by_id.get(entry_id)
        if o is not None:
            w = core.world
            return Verdict(o.kind, o.author, w.levels.get(o.idx, LEVEL_NONE), w.reasons[o.idx])
        if entry_id not in core.level:
            return None
        return core.content_verdict(entry_id)

    def roles(self) -> dict[bytes, Role]:
        """Who is a member now, with which role: the ``members`` of :attr:`state`
        without building the whole snapshot (which copies every entry's verdict
        inputs, so costs time in proportion to the group's size). Empty until the
        genesis is known."""
        core = self._core
        if core.group is None or core.genesis is None:
            return {}
        return {m: member.role for m, member in core.members()[0].items()}

    def kind(self, entry_id: bytes) -> int | None:
        """The kind of an entry the machine has seen (None if unknown): a lookup, where
        :meth:`verdict` judges the entry."""
        core = self._core
        o = core.by_id.get(entry_id)
        return o.kind if o is not None else core.ckind.get(entry_id)

    def authorized(self, entry_id: bytes) -> bool:
        """Whether the entry takes effect now (R1 to R10); False if unknown or pending."""
        v = self.verdict(entry_id)
        return v is not None and v.reason is Reason.OK

    def __len__(self) -> int:
        return len(self._core.K)
