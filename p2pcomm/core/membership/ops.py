"""Operation bodies (spec/04-membership.md section 4.5): one class per operation kind,
each declaring its layout once (:mod:`.layout`), and :func:`decode_op`.

A body that does not decode makes its operation void (``malformed``, B2); that
decision, and everything else about what an operation does, belongs to the resolution
(:mod:`.resolve`). Here are only the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Final, TypeAlias

from ...errors import ErrorCode, ValidationError
from .kinds import Kind, Role
from .layout import BOOL, Bin, Body, Id, RoleField, Str, Tail, U63Int, layout

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "MAX_NOTE",
    "MAX_REASON",
    "MAX_RULES",
    "AddMember",
    "Ban",
    "ClaimAdmin",
    "GenesisBody",
    "KeysOp",
    "Invite",
    "Join",
    "Leave",
    "MembershipOp",
    "RelayGrant",
    "RemoveMember",
    "RevokeInvite",
    "SetMetadata",
    "SetRole",
    "decode_op",
]

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
#: Longest key block (it shares the body's 49152 bytes with the other fields).
MAX_KEY_BLOCK: Final = 49152

_Name: TypeAlias = Annotated[str, Str(MAX_NAME)]
_GroupName: TypeAlias = Annotated[str, Str(MAX_NAME, label="group name")]
_Description: TypeAlias = Annotated[str, Str(MAX_DESCRIPTION)]
_Rules: TypeAlias = Annotated[str, Str(MAX_RULES)]
_Reason: TypeAlias = Annotated[str, Str(MAX_REASON)]
#: A key block (spec/12-encryption.md section 12.9): absent in groups without
#: encryption; its inside is read by :mod:`p2pcomm.core.epochs`, not here.
_Keys: TypeAlias = Annotated[bytes, Tail(MAX_KEY_BLOCK, label="key block")]
#: Sealed private fields of an encrypted group's operation (spec/12-encryption.md).
_Sealed: TypeAlias = Annotated[bytes, Tail(MAX_KEY_BLOCK, label="sealed fields")]


@layout("genesis")
@dataclass(frozen=True, slots=True, kw_only=True)
class GenesisBody(Body):
    """Body of the genesis entry: ``[1, name, description, rules, founder_name, keys?,
    sealed?]``. The genesis author is the founder and first admin; ``keys``
    (spec/12-encryption.md) makes the group's content encrypted, and ``sealed`` holds
    its name, description and rules, then empty in the clear."""

    KIND: ClassVar[Kind] = Kind.GENESIS
    name: _GroupName
    description: _Description = ""
    rules: _Rules = ""
    founder_name: Annotated[str, Str(MAX_NAME, label="founder name")] = ""
    keys: _Keys = b""
    #: The group's name, description and rules, sealed (spec/12-encryption.md, 12.11a
    #: SM1): then the three fields above are empty.
    sealed: _Sealed = b""


@layout("add")
@dataclass(frozen=True, slots=True, kw_only=True)
class AddMember(Body):
    """``[1, member: bin(32), role: uint 1..=4, cut: uint, name: str]``: an admin adds a
    member (or lifts a ban). ``cut`` is the highest sequence of the member the author
    accepts as seen (0 for a newcomer)."""

    KIND: ClassVar[Kind] = Kind.ADD
    member: Id
    role: RoleField
    cut: U63Int = 0
    name: _Name = ""


@layout("remove")
@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveMember(Body):
    """``[1, member: bin(32), cut: uint, reason: str, keys?]``: a moderator or admin removes a
    member; the member's entries with a sequence above ``cut`` that did not see the
    removal are void (R2)."""

    KIND: ClassVar[Kind] = Kind.REMOVE
    member: Id
    cut: U63Int
    reason: _Reason = ""
    keys: _Keys = b""


@layout("set_role")
@dataclass(frozen=True, slots=True, kw_only=True)
class SetRole(Body):
    """``[1, member: bin(32), role: uint 1..=4, cut: uint]``: an admin changes a role."""

    KIND: ClassVar[Kind] = Kind.SET_ROLE
    member: Id
    role: RoleField
    cut: U63Int


@layout("leave")
@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(Body):
    """``[1]``: the author leaves."""

    KIND: ClassVar[Kind] = Kind.LEAVE


@layout("ban")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ban(Body):
    """``[1, member: bin(32), cut: uint, reason: str, keys?]``: removal that invitations cannot
    undo (R8). The target need not be a member."""

    KIND: ClassVar[Kind] = Kind.BAN
    member: Id
    cut: U63Int
    reason: _Reason = ""
    keys: _Keys = b""


@layout("set_metadata")
@dataclass(frozen=True, slots=True, kw_only=True)
class SetMetadata(Body):
    """``[1, name, description, rules, sealed?]``: an admin renames the group (last in
    ``T`` wins); in an encrypted group the three fields are in ``sealed``."""

    KIND: ClassVar[Kind] = Kind.SET_METADATA
    name: _GroupName
    description: _Description = ""
    rules: _Rules = ""
    sealed: _Sealed = b""


@layout("invite")
@dataclass(frozen=True, slots=True, kw_only=True)
class Invite(Body):
    """``[1, invitation_key: bin(32), role: uint 1..=4, max_uses: uint, expires_at: uint,
    note: str]``. ``max_uses`` 0 is unlimited, ``expires_at`` 0 never (milliseconds)."""

    KIND: ClassVar[Kind] = Kind.INVITE
    invitation_key: Annotated[bytes, Bin(32, label="invitation key")]
    role: RoleField = Role.MEMBER
    max_uses: U63Int = 1
    expires_at: U63Int = 0
    note: Annotated[str, Str(MAX_NOTE)] = ""


@layout("revoke_invite")
@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeInvite(Body):
    """``[1, invite: bin(32)]``: revoke the invitation made by entry ``invite``."""

    KIND: ClassVar[Kind] = Kind.REVOKE_INVITE
    invite: Id


@layout("join")
@dataclass(frozen=True, slots=True, kw_only=True)
class Join(Body):
    """``[1, invite: bin(32), proof: bin(64), name: str, keys?]``: the author joins with the
    invitation made by entry ``invite``; ``proof`` is the invitation key's signature
    (``invitation.join_proof``)."""

    KIND: ClassVar[Kind] = Kind.JOIN
    invite: Id
    proof: Annotated[bytes, Bin(64, label="a join proof", says="is")]
    name: _Name = ""
    keys: _Keys = b""


@layout("claim_admin")
@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimAdmin(Body):
    """``[1]``: in a headless group, a member of the highest remaining level claims admin."""

    KIND: ClassVar[Kind] = Kind.CLAIM_ADMIN


@layout("keys")
@dataclass(frozen=True, slots=True, kw_only=True)
class KeysOp(Body):
    """``[1, keys: bin]``: a key block alone (spec/12-encryption.md section 12.9): a
    member publishes or rotates its receive key, rekeys, or forwards secrets."""

    KIND: ClassVar[Kind] = Kind.KEYS
    keys: Annotated[bytes, Tail(MAX_KEY_BLOCK, label="key block", optional=False)]


@layout("relay")
@dataclass(frozen=True, slots=True, kw_only=True)
class RelayGrant(Body):
    """``[1, relay: bin(32), revoke: bool]``: an admin grants (or, with ``revoke``,
    withdraws) a relay's node key the right to carry the group: to store and serve its
    entries to members without ever being a member (spec/12-encryption.md)."""

    KIND: ClassVar[Kind] = Kind.RELAY
    relay: Id
    revoke: Annotated[bool, BOOL] = False


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
    | KeysOp
    | RelayGrant
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
        KeysOp,
        RelayGrant,
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
