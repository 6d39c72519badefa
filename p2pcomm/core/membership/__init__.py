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

*Modules*, along the chapter's sections:

* :mod:`.kinds`: kinds, roles, levels, the permission table, reasons (4.2 to 4.4, 4.13);
* :mod:`.layout`: how a body layout is declared once and encoded and decoded (4.5, 4.10);
* :mod:`.ops`: the operation bodies and :func:`decode_op` (4.5);
* :mod:`.world`: judging operations in ``T`` order against a set of voiders (4.6, 4.8.3,
  4.8.4);
* :mod:`.resolve`: intake, causal knowledge, the search for stable voiders, content, and
  :func:`resolve` (4.8.1, 4.8.2, 4.8.5, 4.8.6);
* :mod:`.state`: :class:`GroupState` and verdicts (4.8.8);
* :mod:`.machine`: :class:`MembershipMachine`, the incremental twin of :func:`resolve`.

What this module does not know about: bodies of content (``content.py`` decodes and
shows them), invitation codes (``invitation.py``), and the clock. Entries of a reserved
kind it does not know are void (``unknown-kind``); kinds from ``FIRST_APP_KIND`` on are
application content that needs the ``post`` permission.
"""

from __future__ import annotations

from .kinds import FIRST_APP_KIND as FIRST_APP_KIND
from .kinds import LEVEL_BANNED as LEVEL_BANNED
from .kinds import LEVEL_EQUIVOCATED as LEVEL_EQUIVOCATED
from .kinds import LEVEL_NONE as LEVEL_NONE
from .kinds import MEMBERSHIP_KINDS as MEMBERSHIP_KINDS
from .kinds import PERMISSIONS as PERMISSIONS
from .kinds import WEAK_MEMBER_IDS as WEAK_MEMBER_IDS
from .kinds import Kind as Kind
from .kinds import Permission as Permission
from .kinds import Reason as Reason
from .kinds import Role as Role
from .kinds import required_level as required_level
from .layout import BODY_VERSION as BODY_VERSION
from .layout import body_fields as body_fields
from .machine import MembershipMachine as MembershipMachine
from .ops import MAX_DESCRIPTION as MAX_DESCRIPTION
from .ops import MAX_NAME as MAX_NAME
from .ops import MAX_NOTE as MAX_NOTE
from .ops import MAX_REASON as MAX_REASON
from .ops import MAX_RULES as MAX_RULES
from .ops import AddMember as AddMember
from .ops import Ban as Ban
from .ops import ClaimAdmin as ClaimAdmin
from .ops import GenesisBody as GenesisBody
from .ops import Invite as Invite
from .ops import Join as Join
from .ops import KeysOp as KeysOp
from .ops import Leave as Leave
from .ops import MembershipOp as MembershipOp
from .ops import RelayGrant as RelayGrant
from .ops import RemoveMember as RemoveMember
from .ops import RevokeInvite as RevokeInvite
from .ops import SetMetadata as SetMetadata
from .ops import SetRole as SetRole
from .ops import decode_op as decode_op
from .resolve import resolve as resolve
from .state import GroupMetadata as GroupMetadata
from .state import GroupState as GroupState
from .state import Invitation as Invitation
from .state import Member as Member
from .state import Verdict as Verdict

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
    "KeysOp",
    "Kind",
    "Leave",
    "Member",
    "MembershipMachine",
    "MembershipOp",
    "Permission",
    "Reason",
    "RelayGrant",
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
