"""From what a member means to do to the entry that does it, refused before writing if the
group's rules would void it (spec/04-membership.md sections 4.9 and 8).

Theory of operation
-------------------
An application says "post this", "remove Bob", "join with this code". A :class:`Planner`
turns each intention into an :class:`Intent`: the entry kind, the encoded body, and the
least timestamp the entry may carry. It computes what the application should not have
to: the ``cut`` of a removal (the highest sequence of the target this replica holds), the
invitation key from a secret, the join proof.

It also judges the entry *before* it exists. A new entry links to every head the
replica holds, so its causal past is everything the replica knows and its verdict is
the one the current :class:`~p2pcomm.core.membership.GroupState` gives its author and
target now: R1 (role), R8 (ban), R10 (equivocation), the kind's target checks, and for
a join the invitation's state (R4, R5). Concurrent entries this replica has not seen can
still void it later (R2): that is the nature of a partition, not something a writer
can check. Whatever the planner refuses raises
:class:`~p2pcomm.errors.RefusedError` carrying the
:class:`~p2pcomm.core.membership.Reason` the entry would have been judged with (the
first check of spec/04 4.8.4 or 4.8.6 that fails, in the spec's order), and nothing is
written. The tests compare the planner's verdict with :func:`resolve` of the history
plus the written entry (``tests/core/test_intent.py``).

Two other refusals are not verdicts, because the entry would be judged ``ok`` and
change nothing:

* :class:`~p2pcomm.errors.NotFoundError`: the target is not something the action can
  act on here: a reply, reaction or moderation whose target is not a post, reply (or,
  for delete, reaction) held here; a retract of an entry that is not one's own post,
  reply or reaction; an add, removal, ban or role change of a member whose log forked
  (R10 expelled them for good, and their level is not part of the state);
* :class:`~p2pcomm.errors.ValidationError`: the request itself is invalid (a body over
  its limits, an invitation that would expire before it is made).

Pure: the clock reading and invitation secrets are passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrorCode, NotFoundError, RefusedError, ValidationError
from .content import ContentView, Delete, Hide, Post, React, Reply, Retract, Unhide
from .identity import MemberId
from .invitation import InvitationCode
from .log import Header
from .membership import (
    PERMISSIONS,
    WEAK_MEMBER_IDS,
    AddMember,
    Ban,
    ClaimAdmin,
    GroupState,
    Invite,
    Join,
    Kind,
    Leave,
    Permission,
    Reason,
    RelayGrant,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
)

__all__ = ["Intent", "Planner"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """An entry to append: kind, encoded body, and the least timestamp it may carry."""

    kind: int
    body: bytes
    #: The entry's timestamp must be at least this (a join is never older than its
    #: invitation); 0 when any time will do.
    min_timestamp: int = 0
    #: For an invitation: the code to hand to the invitee.
    code: InvitationCode | None = None


def _refuse(reason: Reason, message: str) -> RefusedError:
    return RefusedError(message, reason=reason.value)


class Planner:
    """Plans entries for ``author`` in the group whose state is ``state``.

    ``view`` is the group's visible content (for the targets of replies, reactions and
    moderation), ``header(entry_id)`` the header of a held entry (None if not held),
    ``max_seq(member)`` the highest sequence of ``member`` held, ``now_ms`` the clock,
    ``last_timestamp`` the timestamp of the author's latest entry (0 if none): a new
    entry is never older than it, whatever the clock says.
    """

    def __init__(
        self,
        state: GroupState,
        view: ContentView,
        author: bytes,
        *,
        now_ms: int,
        max_seq: Callable[[bytes], int],
        header: Callable[[bytes], Header | None],
        last_timestamp: int = 0,
    ) -> None:
        self.state = state
        self.view = view
        self.author = author
        self.now_ms = now_ms
        self._max_seq = max_seq
        self._header = header
        self.last_timestamp = last_timestamp

    # -- the author's standing

    def _level(self, who: bytes) -> int:
        """``who``'s level now: -2 equivocated, -1 banned, 0 none, else the role."""
        s = self.state
        if who in s.equivocators:
            return -2
        if who in s.banned:
            return -1
        role = s.role_of(who)
        return 0 if role is None else int(role)

    def _need(self, level: int, what: str) -> None:
        mine = self._level(self.author)
        if mine == -2:
            raise _refuse(Reason.EQUIVOCATION, "your log forked: the group expelled you")
        if mine == -1:
            raise _refuse(Reason.BANNED, "you are banned from this group")
        if mine == 0:
            raise _refuse(Reason.NOT_A_MEMBER, f"only members can {what}: you are not one")
        if mine < level:
            raise _refuse(
                Reason.INSUFFICIENT_ROLE,
                f"to {what} you need the {Role(level).name.lower()} role; "
                f"you are {Role(mine).name.lower()}",
            )

    def _permission(self, p: Permission, what: str) -> None:
        self._need(int(PERMISSIONS[p]), what)

    # -- content

    def _item(self, target: bytes, what: str) -> None:
        if self.view.item(target) is None:
            raise NotFoundError(
                ErrorCode.NOT_FOUND, f"no visible post or reply {target.hex()[:16]} to {what}"
            )

    def post(self, text: str) -> Intent:
        self._permission(Permission.POST, "post")
        return Intent(kind=Kind.POST, body=Post(text=text).encode())

    def reply(self, parent: bytes, text: str) -> Intent:
        self._permission(Permission.POST, "reply")
        self._item(parent, "reply to")
        return Intent(kind=Kind.REPLY, body=Reply(parent=parent, text=text).encode())

    def react(self, target: bytes, emoji: str, *, on: bool = True) -> Intent:
        self._permission(Permission.REACT, "react")
        self._item(target, "react to")
        return Intent(kind=Kind.REACT, body=React(target=target, emoji=emoji, on=on).encode())

    def retract(self, target: bytes) -> Intent:
        self._permission(Permission.REACT, "retract")
        h = self._header(target)
        # V1: a retract removes only its author's own post, reply or reaction; on
        # anything else it would be judged ok and change nothing.
        if h is None or h.kind not in _REMOVABLE or h.author != self.author:
            raise NotFoundError(
                ErrorCode.NOT_FOUND,
                f"no post, reply or reaction of yours {target.hex()[:16]} to retract",
            )
        return Intent(kind=Kind.RETRACT, body=Retract(target=target).encode())

    def _moderated(self, target: bytes, what: str, kinds: frozenset[int]) -> None:
        self._permission(Permission.MODERATE, what)
        h = self._header(target)
        # V1, V4: operations are never moderated, and only items are hidden; such a
        # moderation would be judged ok and change nothing.
        if h is None or h.kind not in kinds:
            things = "post, reply or reaction" if Kind.REACT in kinds else "post or reply"
            raise NotFoundError(ErrorCode.NOT_FOUND, f"no {things} {target.hex()[:16]} to {what}")

    def hide(self, target: bytes, reason: str = "") -> Intent:
        self._moderated(target, "hide", _ITEMS)
        return Intent(kind=Kind.HIDE, body=Hide(target=target, reason=reason).encode())

    def unhide(self, target: bytes) -> Intent:
        self._moderated(target, "unhide", _ITEMS)
        return Intent(kind=Kind.UNHIDE, body=Unhide(target=target).encode())

    def delete(self, target: bytes, reason: str = "") -> Intent:
        self._moderated(target, "delete", _REMOVABLE)
        return Intent(kind=Kind.DELETE, body=Delete(target=target, reason=reason).encode())

    # -- membership

    def _other(self, member: bytes, what: str) -> None:
        """B3, checked before anything else (O1)."""
        if member == self.author:
            raise _refuse(Reason.BAD_TARGET, f"you cannot {what} yourself")

    def _not_expelled(self, member: bytes, what: str) -> None:
        if member in self.state.equivocators:
            raise NotFoundError(
                ErrorCode.NOT_FOUND,
                f"{member.hex()[:16]}'s log forked: the group expelled them for good (R10); "
                f"there is no member to {what}",
            )

    def add(self, member: bytes, role: Role = Role.MEMBER, *, name: str = "") -> Intent:
        self._other(member, "add")
        if member in WEAK_MEMBER_IDS:
            raise _refuse(Reason.BAD_TARGET, "that key can never be a member (a weak key)")
        self._permission(Permission.ADD, "add members")
        self._not_expelled(member, "add")
        if self._level(member) >= int(Role.READER):
            raise _refuse(Reason.BAD_TARGET, "already a member (change the role instead)")
        if member in self.state.relays:
            raise _refuse(Reason.BAD_TARGET, "that key is a relay of this group: never a member")
        body = AddMember(member=member, role=role, cut=self._max_seq(member), name=name)
        return Intent(kind=Kind.ADD, body=body.encode())

    def _removal_permission(self, member: bytes, what: str) -> None:
        target = self._level(member)
        p = Permission.REMOVE if target <= int(Role.MEMBER) else Permission.REMOVE_PRIVILEGED
        self._permission(p, f"{what} {_a(Role(target).name.lower())}" if target > 0 else what)

    def remove(self, member: bytes, *, reason: str = "") -> Intent:
        self._other(member, "remove")
        self._need(int(Role.READER), "remove members")
        self._not_expelled(member, "remove")
        if self._level(member) < int(Role.READER):
            raise _refuse(Reason.BAD_TARGET, "not a member of this group")
        self._removal_permission(member, "remove")
        body = RemoveMember(member=member, cut=self._max_seq(member), reason=reason)
        return Intent(kind=Kind.REMOVE, body=body.encode())

    def ban(self, member: bytes, *, reason: str = "") -> Intent:
        self._other(member, "ban")
        self._need(int(Role.READER), "ban members")
        self._not_expelled(member, "ban")
        self._removal_permission(member, "ban")
        body = Ban(member=member, cut=self._max_seq(member), reason=reason)
        return Intent(kind=Kind.BAN, body=body.encode())

    def set_role(self, member: bytes, role: Role) -> Intent:
        self._permission(Permission.SET_ROLE, "change roles")
        if member != self.author:
            self._not_expelled(member, "change the role of")
            if self._level(member) < int(Role.READER):
                raise _refuse(Reason.BAD_TARGET, "not a member of this group")
        body = SetRole(member=member, role=role, cut=self._max_seq(member))
        return Intent(kind=Kind.SET_ROLE, body=body.encode())

    def leave(self) -> Intent:
        self._permission(Permission.LEAVE, "leave")
        return Intent(kind=Kind.LEAVE, body=Leave().encode())

    def claim_admin(self) -> Intent:
        self._need(int(Role.READER), "claim admin")
        levels = [int(m.role) for m in self.state.members.values()]
        if max(levels, default=0) >= int(Role.ADMIN):
            raise _refuse(Reason.NOT_HEADLESS, "the group has an admin")
        if self._level(self.author) < max(levels, default=0):
            raise _refuse(Reason.NOT_HEADLESS, "a member with a higher role may claim it")
        return Intent(kind=Kind.CLAIM_ADMIN, body=ClaimAdmin().encode())

    def set_metadata(
        self, *, name: str | None = None, description: str | None = None, rules: str | None = None
    ) -> Intent:
        self._permission(Permission.SET_METADATA, "change the group's name and rules")
        m = self.state.metadata
        body = SetMetadata(
            name=m.name if name is None else name,
            description=m.description if description is None else description,
            rules=m.rules if rules is None else rules,
        )
        return Intent(kind=Kind.SET_METADATA, body=body.encode())

    def invite(
        self,
        secret: bytes,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_at: int = 0,
        note: str = "",
        hints: tuple[str, ...] = (),
    ) -> Intent:
        """An invitation made from ``secret`` (16 random bytes the caller draws)."""
        p = Permission.INVITE if role <= Role.MEMBER else Permission.INVITE_PRIVILEGED
        self._permission(p, f"invite {role.name.lower()}s")
        if expires_at and expires_at <= max(self.now_ms, self.last_timestamp):
            raise ValidationError(
                ErrorCode.BAD_INVITATION,
                "the invitation would expire before it is made",
                expected=f"> {max(self.now_ms, self.last_timestamp)}",
                found=expires_at,
            )
        code = InvitationCode(
            group=self.state.group,
            secret=secret,
            inviter=self.author,
            role=int(role),
            max_uses=max_uses,
            expires_at=expires_at,
            hints=hints,
        )
        body = Invite(
            invitation_key=code.public_key,
            role=role,
            max_uses=max_uses,
            expires_at=expires_at,
            note=note,
        )
        return Intent(kind=Kind.INVITE, body=body.encode(), code=code)

    def relay(self, relay: bytes, *, revoke: bool = False) -> Intent:
        """Grant (or revoke) a relay's node key the right to carry the group: it stores
        and serves the group's entries to members, never reads them (spec/12)."""
        self._other(relay, "make a relay of")
        if relay in WEAK_MEMBER_IDS:
            raise _refuse(Reason.BAD_TARGET, "that key can never carry a group (a weak key)")
        self._permission(Permission.RELAY, "grant or revoke relays")
        if self._level(relay) >= int(Role.READER):
            raise _refuse(Reason.BAD_TARGET, "a member cannot be a relay (remove it first)")
        granted = relay in self.state.relays
        if granted != revoke:
            raise NotFoundError(
                ErrorCode.NOT_FOUND,
                f"{MemberId(relay).short()} is {'already' if granted else 'not'} a relay of "
                "this group",
            )
        return Intent(kind=Kind.RELAY, body=RelayGrant(relay=relay, revoke=revoke).encode())

    def revoke_invite(self, invite: bytes) -> Intent:
        self._need(int(Role.READER), "revoke invitations")
        inv = self.state.invitations.get(invite)
        if inv is None:
            raise _refuse(
                Reason.INVITATION_UNKNOWN, f"no invitation {invite.hex()[:16]} in this group"
            )
        p = Permission.REVOKE_OWN_INVITE if inv.inviter == self.author else Permission.REVOKE_INVITE
        self._permission(p, "revoke this invitation")
        return Intent(kind=Kind.REVOKE_INVITE, body=RevokeInvite(invite=invite).encode())

    def join(self, code: InvitationCode, *, name: str = "") -> Intent:
        """The JOIN for ``code``; the group's INVITE entry must be held.

        The checks follow spec/04 4.8.4 in order (O1, O3, J1, J3 to J8); J2 holds by
        construction, J9 and J10 are about entries not seen here."""
        if self.author in WEAK_MEMBER_IDS:
            raise _refuse(Reason.BAD_TARGET, "that key can never be a member (a weak key)")
        level = self._level(self.author)
        if level == -2:
            raise _refuse(Reason.EQUIVOCATION, "your log forked: the group expelled you")
        if code.group != self.state.group:
            raise _refuse(Reason.INVITATION_UNKNOWN, "this code is for another group")
        inv = self.state.invitation_for_key(code.public_key)
        if inv is None:
            raise _refuse(
                Reason.INVITATION_UNKNOWN,
                "the invitation is not in the group's log here yet (sync with a member first)",
            )
        if level == -1:
            raise _refuse(Reason.BANNED, "you are banned from this group")
        if level > 0:
            raise _refuse(Reason.BAD_TARGET, "you are already a member of this group")
        if inv.revoked:
            raise _refuse(Reason.INVITATION_REVOKED, "the invitation was revoked")
        h = self._header(inv.id)
        invite_ts = 0 if h is None else h.timestamp
        # The entry's timestamp: never before the invitation's (J5), nor before the
        # author's own latest entry (03), whatever the clock says.
        ts = max(self.now_ms, invite_ts, self.last_timestamp)
        if inv.expires_at and ts >= inv.expires_at:
            raise _refuse(Reason.INVITATION_EXPIRED, "the invitation has expired")
        if inv.max_uses and inv.uses >= inv.max_uses:
            raise _refuse(Reason.INVITATION_USED_UP, "the invitation has been used up")
        if not inv.issuer_valid:
            raise _refuse(Reason.INVITER_REVOKED, "whoever issued the invitation lost that power")
        proof = code.join_proof(inv.id, self.author)
        body = Join(invite=inv.id, proof=proof, name=name)
        return Intent(kind=Kind.JOIN, body=body.encode(), min_timestamp=invite_ts)


#: What a delete (or a retract) can remove (V1), and what can be hidden (V4).
_REMOVABLE: frozenset[int] = frozenset({Kind.POST, Kind.REPLY, Kind.REACT})
_ITEMS: frozenset[int] = frozenset({Kind.POST, Kind.REPLY})


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun
