"""Build group histories for tests: seeded key pairs and replicas that append entries
with correct ``prev``, ``links`` and timestamps.

A :class:`History` is everything ever written in one group, in creation order (which is
a causal order). A :class:`Replica` is one member's device: it knows a subset of the
history, appends entries that link to the heads *it* knows, and learns from other
replicas with :meth:`Replica.sync`. Concurrency is made by letting replicas append
without syncing; a fork (equivocation) by :meth:`Replica.fork`.

Everything is deterministic: keys come from fixed seeds, timestamps from a logical clock
(``T0`` plus one second per entry unless given), Ed25519 is deterministic, and nothing
reads a clock or a random source. This module is pure (no I/O)::

    history, alice = History.found(keypair(0), name="garden club")
    bob = history.replica(keypair(1))
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    hello = bob.post("hello")
    state = resolve(history.entries)
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core import crypto
from ..core.content import Delete, Hide, Post, React, Reply, Retract, Unhide
from ..core.identity import KeyPair
from ..core.invitation import INVITATION_SECRET_SIZE, InvitationCode
from ..core.log import MAX_LINKS, Entry, create_entry, create_genesis
from ..core.membership import (
    AddMember,
    Ban,
    ClaimAdmin,
    GenesisBody,
    Invite,
    Join,
    Kind,
    Leave,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
)

__all__ = [
    "T0",
    "History",
    "Replica",
    "invitation_secret",
    "keypair",
    "named_keypair",
]

#: 2026-11-23T00:00:00Z in milliseconds: the first timestamp of every history.
T0 = 1_795_392_000_000
#: Logical clock step between entries (one second).
STEP = 1000


def keypair(n: int) -> KeyPair:
    """Test identity ``n``: seed ``BLAKE2b-256("p2pcomm testing keypair " || n)``."""
    return KeyPair(crypto.blake2b_256(b"p2pcomm testing keypair %d" % n))


def named_keypair(name: str) -> KeyPair:
    """The spec's named test key (``alice``, ``bob``, ...): seed
    ``BLAKE2b-256("p2pcomm test key " || name)`` (spec/README.md section 5.1)."""
    return KeyPair(crypto.blake2b_256(b"p2pcomm test key " + name.encode("ascii")))


def invitation_secret(n: int) -> bytes:
    """A deterministic 16-byte invitation secret."""
    return crypto.blake2b_256(b"p2pcomm testing invitation %d" % n)[:INVITATION_SECRET_SIZE]


def _member_id(member: bytes | KeyPair | Replica) -> bytes:
    if isinstance(member, Replica):
        return member.keypair.public_key
    if isinstance(member, KeyPair):
        return member.public_key
    return member


class History:
    """All entries of one group, in creation order."""

    def __init__(self, genesis: Entry, *, step: int = STEP) -> None:
        self.group = genesis.id
        self.genesis = genesis
        self.entries: list[Entry] = [genesis]
        self.position: dict[bytes, int] = {genesis.id: 0}
        self.step = step
        self.clock = genesis.header.timestamp

    @classmethod
    def found(
        cls,
        founder: KeyPair,
        *,
        name: str = "test group",
        description: str = "",
        rules: str = "",
        founder_name: str = "",
        timestamp: int = T0,
        step: int = STEP,
    ) -> tuple[History, Replica]:
        """Start a group: the genesis entry and the founder's replica."""
        body = GenesisBody(
            name=name, description=description, rules=rules, founder_name=founder_name
        )
        genesis = create_genesis(founder, timestamp=timestamp, body=body.encode())
        history = cls(genesis, step=step)
        replica = Replica(history, founder)
        replica.learn([genesis])
        replica.seq, replica.prev, replica.last_ts = 1, genesis.id, timestamp
        return history, replica

    def tick(self) -> int:
        self.clock += self.step
        return self.clock

    def record(self, entry: Entry) -> None:
        if entry.id not in self.position:
            self.position[entry.id] = len(self.entries)
            self.entries.append(entry)

    def replica(self, kp: KeyPair) -> Replica:
        """A new device for ``kp`` that knows only the genesis entry."""
        r = Replica(self, kp)
        r.learn([self.genesis])
        return r

    def __len__(self) -> int:
        return len(self.entries)


class Replica:
    """One member's device: what it knows, and how it appends."""

    def __init__(self, history: History, kp: KeyPair) -> None:
        self.history = history
        self.keypair = kp
        self.known: set[bytes] = set()
        #: Known entries nothing known refers to: id -> author.
        self.heads: dict[bytes, bytes] = {}
        #: Highest known sequence per author.
        self.max_seq: dict[bytes, int] = {}
        self.seq = 0
        self.prev: bytes | None = None
        self.last_ts = 0

    @property
    def id(self) -> bytes:
        return self.keypair.public_key

    def __repr__(self) -> str:
        return f"Replica({self.keypair.id.short()}, knows {len(self.known)})"

    # -- knowledge

    def learn(self, entries: Iterable[Entry]) -> None:
        """Add entries to what this replica knows (their dependencies must be known or
        among them)."""
        pos = self.history.position
        fresh = sorted((e for e in entries if e.id not in self.known), key=lambda e: pos[e.id])
        for e in fresh:
            h = e.header
            if e.id in self.known:
                continue
            self.known.add(e.id)
            if h.prev is not None:
                self.heads.pop(h.prev, None)
            for link in h.links:
                self.heads.pop(link, None)
            self.heads[e.id] = h.author
            if h.seq > self.max_seq.get(h.author, 0):
                self.max_seq[h.author] = h.seq

    def sync(self, *others: Replica) -> None:
        """Learn everything the other replicas know (one way: they learn nothing)."""
        entries = self.history.entries
        pos = self.history.position
        wanted = set().union(*(o.known for o in others)) - self.known
        self.learn(entries[i] for i in sorted(pos[x] for x in wanted))

    def exchange(self, other: Replica) -> None:
        """Both replicas end knowing the union."""
        self.sync(other)
        other.sync(self)

    def knows(self, entry_id: bytes) -> bool:
        return entry_id in self.known

    def fork(self) -> Replica:
        """A second device with the same key and the same knowledge: appending on both
        makes a fork (equivocation)."""
        twin = Replica(self.history, self.keypair)
        twin.known = set(self.known)
        twin.heads = dict(self.heads)
        twin.max_seq = dict(self.max_seq)
        twin.seq, twin.prev, twin.last_ts = self.seq, self.prev, self.last_ts
        return twin

    # -- appending

    def links(self) -> list[bytes]:
        """The links of the next entry: the latest 16 heads of other authors it knows."""
        pos = self.history.position
        others = sorted((i for i, a in self.heads.items() if a != self.id), key=lambda i: pos[i])
        return others[-MAX_LINKS:]

    def append(self, kind: int, body: bytes, *, timestamp: int | None = None) -> Entry:
        """Append an entry linking to the (latest 16) heads of other authors it knows."""
        history = self.history
        ts = history.tick() if timestamp is None else timestamp
        ts = max(ts, self.last_ts)
        links = self.links()
        entry = create_entry(
            self.keypair,
            group=history.group,
            seq=self.seq + 1,
            prev=self.prev,
            links=links,
            timestamp=ts,
            kind=kind,
            body=body,
        )
        history.record(entry)
        self.seq, self.prev, self.last_ts = self.seq + 1, entry.id, ts
        self.learn([entry])
        return entry

    def _cut(self, member: bytes, cut: int | None) -> int:
        return self.max_seq.get(member, 0) if cut is None else cut

    # -- membership operations

    def add(
        self,
        member: bytes | KeyPair | Replica,
        role: Role = Role.MEMBER,
        *,
        name: str = "",
        cut: int | None = None,
    ) -> Entry:
        m = _member_id(member)
        return self.append(
            Kind.ADD, AddMember(member=m, role=role, cut=self._cut(m, cut), name=name).encode()
        )

    def remove(
        self, member: bytes | KeyPair | Replica, *, cut: int | None = None, reason: str = ""
    ) -> Entry:
        m = _member_id(member)
        return self.append(
            Kind.REMOVE, RemoveMember(member=m, cut=self._cut(m, cut), reason=reason).encode()
        )

    def ban(
        self, member: bytes | KeyPair | Replica, *, cut: int | None = None, reason: str = ""
    ) -> Entry:
        m = _member_id(member)
        return self.append(Kind.BAN, Ban(member=m, cut=self._cut(m, cut), reason=reason).encode())

    def set_role(
        self, member: bytes | KeyPair | Replica, role: Role, *, cut: int | None = None
    ) -> Entry:
        m = _member_id(member)
        return self.append(
            Kind.SET_ROLE, SetRole(member=m, role=role, cut=self._cut(m, cut)).encode()
        )

    def leave(self) -> Entry:
        return self.append(Kind.LEAVE, Leave().encode())

    def claim_admin(self) -> Entry:
        return self.append(Kind.CLAIM_ADMIN, ClaimAdmin().encode())

    def set_metadata(self, name: str, description: str = "", rules: str = "") -> Entry:
        return self.append(
            Kind.SET_METADATA, SetMetadata(name=name, description=description, rules=rules).encode()
        )

    def invite(
        self,
        secret: bytes,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_at: int = 0,
        note: str = "",
        hints: tuple[str, ...] = (),
    ) -> tuple[Entry, InvitationCode]:
        """Create an invitation; returns the INVITE entry and the code to hand out (with
        this replica as inviter and the INVITE's role, uses and expiry)."""
        code = InvitationCode(
            group=self.history.group,
            secret=secret,
            inviter=self.id,
            role=role,
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
        return self.append(Kind.INVITE, body.encode()), code

    def revoke_invite(self, invite: bytes | Entry) -> Entry:
        iid = invite.id if isinstance(invite, Entry) else invite
        return self.append(Kind.REVOKE_INVITE, RevokeInvite(invite=iid).encode())

    def join(
        self,
        code: InvitationCode,
        invite: bytes | Entry,
        *,
        name: str = "",
        timestamp: int | None = None,
    ) -> Entry:
        """Join with ``code`` and the INVITE entry (which this replica must know)."""
        iid = invite.id if isinstance(invite, Entry) else invite
        proof = code.join_proof(iid, self.id)
        return self.append(
            Kind.JOIN, Join(invite=iid, proof=proof, name=name).encode(), timestamp=timestamp
        )

    # -- content

    def post(self, text: str) -> Entry:
        return self.append(Kind.POST, Post(text=text).encode())

    def reply(self, parent: bytes | Entry, text: str) -> Entry:
        pid = parent.id if isinstance(parent, Entry) else parent
        return self.append(Kind.REPLY, Reply(parent=pid, text=text).encode())

    def react(self, target: bytes | Entry, emoji: str, *, on: bool = True) -> Entry:
        tid = target.id if isinstance(target, Entry) else target
        return self.append(Kind.REACT, React(target=tid, emoji=emoji, on=on).encode())

    def retract(self, target: bytes | Entry) -> Entry:
        tid = target.id if isinstance(target, Entry) else target
        return self.append(Kind.RETRACT, Retract(target=tid).encode())

    def hide(self, target: bytes | Entry, reason: str = "") -> Entry:
        tid = target.id if isinstance(target, Entry) else target
        return self.append(Kind.HIDE, Hide(target=tid, reason=reason).encode())

    def unhide(self, target: bytes | Entry) -> Entry:
        tid = target.id if isinstance(target, Entry) else target
        return self.append(Kind.UNHIDE, Unhide(target=tid).encode())

    def delete(self, target: bytes | Entry, reason: str = "") -> Entry:
        tid = target.id if isinstance(target, Entry) else target
        return self.append(Kind.DELETE, Delete(target=tid, reason=reason).encode())
