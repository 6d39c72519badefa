"""The state a set of entries resolves to (spec/04-membership.md section 4.8.8), and the
verdict of a content entry (section 4.8.6, C1 to C4) as the state's verdict table builds
it on access.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Final, NamedTuple

from .kinds import (
    _CONTENT_NEED,
    FIRST_APP_KIND,
    LEVEL_EQUIVOCATED,
    PERMISSIONS,
    Permission,
    Reason,
    Role,
    _level_reason,
    _need,
)

__all__ = ["GroupMetadata", "GroupState", "Invitation", "Member", "Verdict"]


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
    #: Node keys granted the right to carry the group without being members
    #: (spec/12-encryption.md, RELAY).
    relays: frozenset[bytes]
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


# --------------------------------------------------------------------------- verdicts

#: Plain-int keys: looking up an int in a dict keyed by IntEnum members is slower.
_NEED_BY_KIND: Final[dict[int, int]] = {int(k): v for k, v in _CONTENT_NEED.items()}
_APP_NEED: Final = _need(Permission.POST)


def _content_verdict(
    eid: bytes, kind: int, author: bytes, base: int, lowered: int | None, stale: bool = False
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
    elif stale:
        reason = Reason.STALE_EPOCH
    else:
        reason = Reason.OK
    return Verdict(kind, author, eff, reason)


class _Verdicts(Mapping[bytes, Verdict]):
    """Entry id -> :class:`Verdict`, built on access from the resolver's per-entry
    levels (a hundred thousand tuples are not made unless someone asks for them).
    Read-only; holds its own copies of the machine's tables."""

    __slots__ = ("_author", "_kind", "_level", "_lowered", "_ops", "_stale")

    def __init__(
        self,
        ops: dict[bytes, Verdict],
        kind: dict[bytes, int],
        author: dict[bytes, bytes],
        level: dict[bytes, int],
        lowered: dict[bytes, int],
        stale: frozenset[bytes] = frozenset(),
    ) -> None:
        self._stale = stale
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
            eid,
            self._kind[eid],
            self._author[eid],
            self._level[eid],
            self._lowered.get(eid),
            eid in self._stale,
        )

    def get(self, eid: bytes, default: Verdict | None = None) -> Verdict | None:  # type: ignore[override]
        v = self._ops.get(eid)
        if v is not None:
            return v
        base = self._level.get(eid)
        if base is None:
            return default
        return _content_verdict(
            eid,
            self._kind[eid],
            self._author[eid],
            base,
            self._lowered.get(eid),
            eid in self._stale,
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
                and self._stale == other._stale
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
