"""Who is served what of a group, and whose entries are stored (spec/06-sync.md 6.22).

Theory of operation
-------------------
Reading a group needs more than its id. For each session and each shared group, a node
decides from its own view of the membership (:class:`~p2pcomm.core.membership.GroupState`)
what the peer gets:

* a **member** (any role) gets everything: tips, entries, live pushes, fork proofs;
* an **invitee** (a non-member that proved, in this session, that it holds the secret of
  a usable invitation) gets the causal past of that invitation's INVITE entry: what it
  needs to check the group and write a valid JOIN, and nothing written after;
* a **relay** (a node key an effective RELAY operation grants, spec/12-encryption.md)
  gets everything a member gets, and what it sends is stored as a member's would be:
  it carries the group between members who are not online at the same time;
* a **removed member** (removed or banned, in this node's view) gets the causal past
  of the operations that removed it: it learns of its removal, however long it was
  away, and of nothing written after it;
* **anyone else** gets nothing: empty tips, no entry, no fork proof. It learns that the
  node holds the group (from the group tokens, if it knows the group id) and no more.

The decision is remade whenever the membership changes; a peer whose access changes
(removed, banned, or an invitee whose JOIN took effect) has its session closed, with a
typed reason, and a new session starts from the new decision.

*Invitation proofs.* A joining node proves it holds an invitation without showing the
secret: with the invitation key pair (derived from the secret, spec/04 4.7) it signs
``NS_INVITEE || h || G || M``, where ``h`` is the session's handshake hash, ``G`` the
group id and ``M`` its own member id. Only someone holding the group's log knows the
invitation public keys to check it against; the signature is bound to this session
(a replay elsewhere fails) and to the prover's key (it cannot be lent).

*Admission.* Entries are stored only if their author is a member in the receiver's
view, counting the members the same batch brings in (an ADD by a member, a JOIN, the
genesis): :func:`admit`. A peer that is not a member and sends entries by authors who
are not members either is refused (closed with ``unauthorized``); a member relaying
them is not at fault (a removed member's entries may precede the removal), and those
entries are simply not stored.

Pure: no I/O, no clock (callers pass ``now_ms``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..errors import DecodeError, ValidationError
from . import crypto
from .identity import KeyPair
from .log import Entry, Header
from .membership import AddMember, GroupState, Kind, decode_op

__all__ = [
    "NS_INVITEE",
    "Access",
    "Grant",
    "admit",
    "causal_cut",
    "grant_for",
    "invitee_proof",
    "verify_invitee_proof",
]

#: Signatures by an invitation key that prove, in one session, holding the invitation.
NS_INVITEE: Final = crypto.namespace("p2pcomm/1/invitee")


class Access(enum.Enum):
    """What a peer may read of a group in a session."""

    NONE = "none"
    INVITEE = "invitee"
    MEMBER = "member"
    #: A node an admin granted the right to carry the group (RELAY, spec/12): served
    #: everything a member is, never a member (it holds no key and writes nothing).
    RELAY = "relay"
    #: A former member, removed or banned: served the causal past of the operations
    #: that removed it (it learns of its removal, and nothing written after it).
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Grant:
    access: Access
    #: For an invitee: the INVITE entry its proof matched.
    invite: bytes | None = None
    #: For an invitee: per author, the highest sequence it may be sent (the causal
    #: past of the INVITE entry); for a removed member, of the operations that
    #: removed it.
    cut: Mapping[bytes, int] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        """Everything of the group goes: a member's or a relay's grant."""
        return self.access is Access.MEMBER or self.access is Access.RELAY

    def allows(self, entry: Entry, peer: bytes) -> bool:
        """Whether ``entry`` may be sent to ``peer`` under this grant."""
        if self.access is Access.MEMBER or self.access is Access.RELAY:
            return True
        if self.access is Access.NONE:
            return False
        h = entry.header
        return h.author == peer or h.seq <= self.cut.get(h.author, 0)


NO_ACCESS: Final = Grant(Access.NONE)
FULL_ACCESS: Final = Grant(Access.MEMBER)
RELAY_ACCESS: Final = Grant(Access.RELAY)


def _signable(session_hash: bytes, group: bytes, member: bytes) -> bytes:
    for name, value, size in (
        ("session hash", session_hash, 64),
        ("group", group, 32),
        ("member", member, 32),
    ):
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, found {len(value)}")
    return NS_INVITEE + session_hash + group + member


def invitee_proof(invitation: KeyPair, session_hash: bytes, group: bytes, member: bytes) -> bytes:
    """The proof a joining ``member`` sends in its HELLO (06 6.5.1)."""
    return invitation.signer().raw_sign(_signable(session_hash, group, member))


def verify_invitee_proof(
    invitation_key: bytes, session_hash: bytes, group: bytes, member: bytes, proof: bytes
) -> bool:
    if len(proof) != crypto.SIGNATURE_SIZE or len(invitation_key) != 32:
        return False
    return crypto.ed25519_verify(invitation_key, _signable(session_hash, group, member), proof)


def grant_for(
    state: GroupState | None,
    peer: bytes,
    *,
    proofs: Sequence[bytes],
    session_hash: bytes,
    now_ms: int,
    cut_of: Callable[[bytes], Mapping[bytes, int]],
    removals: Callable[[bytes], Sequence[bytes]] = lambda _peer: (),
) -> Grant:
    """What ``peer`` gets of the group whose state is ``state`` (None: this node does not
    hold the group's genesis yet, so it has nothing to serve). ``cut_of(entry_id)`` is
    :func:`causal_cut` of a held entry; ``removals(peer)`` the effective REMOVE and BAN
    entries naming ``peer`` (``MembershipMachine.removals``)."""
    if state is None:
        return NO_ACCESS
    if peer in state.members:
        return FULL_ACCESS
    if peer in state.relays:
        return RELAY_ACCESS
    if peer in state.equivocators:
        return NO_ACCESS
    if proofs and peer not in state.banned:
        for inv in sorted(state.invitations.values(), key=lambda i: i.id):
            if not inv.usable(now_ms):
                continue
            if any(
                verify_invitee_proof(inv.invitation_key, session_hash, state.group, peer, p)
                for p in proofs
            ):
                return Grant(Access.INVITEE, invite=inv.id, cut=cut_of(inv.id))
    ended = removals(peer)
    if ended:
        cut: dict[bytes, int] = {}
        for eid in ended:
            for author, seq in cut_of(eid).items():
                if seq > cut.get(author, 0):
                    cut[author] = seq
        return Grant(Access.REMOVED, cut=cut)
    return NO_ACCESS


def causal_cut(entry_id: bytes, header: Callable[[bytes], Header | None]) -> dict[bytes, int]:
    """Per author, the highest sequence in the causal past of ``entry_id`` (itself
    included): the entries reachable through ``prev`` and ``links``."""
    cut: dict[bytes, int] = {}
    stack = [entry_id]
    seen: set[bytes] = set()
    while stack:
        eid = stack.pop()
        if eid in seen:
            continue
        seen.add(eid)
        h = header(eid)
        if h is None:
            continue
        if h.seq > cut.get(h.author, 0):
            cut[h.author] = h.seq
        if h.prev is not None:
            stack.append(h.prev)
        stack.extend(h.links)
    return cut


def admit(
    group: bytes,
    state: GroupState | None,
    entries: Iterable[Entry],
    peer: bytes,
    known: set[bytes] | None = None,
) -> list[Entry]:
    """The entries of a batch from ``peer`` that must not be stored: none when ``peer``
    is a member (in ``state``, or brought in by the batch itself: the genesis's author,
    the targets of ADDs by members), since a member relays what its node accepted (a
    removed member's old entries, headers of void ones, 04 4.11); otherwise those whose
    author is not a member either, JOINs excepted (a newcomer's way in, judged by the
    membership rules). Whether an ADD or JOIN takes effect is for the rules; this only
    keeps strangers' entries out of the store.

    ``known`` carries the members learned from earlier batches of the same session
    (a catch-up arrives in several batches before the receiver's view catches up); it
    is updated with those of this batch."""
    batch = list(entries)
    members: set[bytes] = set() if known is None else set(known)
    if state is not None:
        members.update(state.members)
        members.add(state.founder)
    for e in batch:
        h = e.header
        if h.kind == Kind.GENESIS and e.id == group:
            members.add(h.author)
    changed = True
    while changed:
        changed = False
        for e in batch:
            h = e.header
            if h.kind != Kind.ADD or h.author not in members or e.body is None:
                continue
            try:
                op = decode_op(Kind.ADD, e.body)
            except (DecodeError, ValidationError):
                continue
            if isinstance(op, AddMember) and op.member not in members:
                members.add(op.member)
                changed = True
    if known is not None:
        known |= members
    if peer in members or (state is not None and peer in state.relays):
        return []
    return [e for e in batch if e.header.author not in members and e.header.kind != Kind.JOIN]
