"""One world: every operation judged in ``T`` order against a fixed set ``S`` of assumed
voiders (spec/04-membership.md sections 4.6 levels at a cut, 4.8.3 judging against S, 4.8.4
the checks O1 to O5 and J1 to J10), and the per-operation facts it reads (:class:`_Op`).

The search for a stable ``S`` (4.8.5), the intake of entries and the judging of content
are in :mod:`.resolve`; this module knows nothing of arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from ..log import Entry
from .kinds import (
    LEVEL_BANNED,
    LEVEL_EQUIVOCATED,
    LEVEL_NONE,
    Kind,
    Permission,
    Reason,
    Role,
    _level_reason,
    _need,
)
from .ops import Invite, MembershipOp

if TYPE_CHECKING:
    from .resolve import _Core

_READER: Final = int(Role.READER)
_MEMBER: Final = int(Role.MEMBER)
_ADMIN: Final = int(Role.ADMIN)


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
        "forkless",
        "levels",
        "mask",
        "meta",
        "names",
        "o_revokes",
        "o_voiders",
        "out",
        "reasons",
        "relay_ops",
        "s_revokes",
        "s_voiders",
        "uses",
        "valid",
    )

    def __init__(self, core: _Core, S: Iterable[_Op] = (), *, forkless: bool = False) -> None:
        self.core = core
        #: Judge as if no author had forked (the resolution of a cut alone, 12.10 F1).
        self.forkless = forkless
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
        #: Relay id -> its effective RELAY operations (grants and revocations).
        self.relay_ops: dict[bytes, list[_Op]] = {}

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

    def relay_granted(self, relay: bytes, K: int) -> bool:
        """Whether ``relay`` holds a grant at cut ``K``: its maximal effective RELAY
        operations in ``K`` are all grants (a revocation wins over a concurrent grant,
        as a removal wins over a concurrent add)."""
        ops = [o for o in self.relay_ops.get(relay, ()) if (K >> o.idx) & 1]
        if not ops:
            return False
        maximal = [a for a in ops if not any(b is not a and (b.K >> a.idx) & 1 for b in ops)]
        return all(not _revokes(a) for a in maximal)

    def invitation(self, o: _Op) -> _Op | None:
        """The INVITE a JOIN or REVOKE_INVITE names, if it is in the op's cut and
        effective so far (J1; REVOKE_INVITE's ``invitation-unknown``)."""
        inv = self.core.by_id.get(o.invite) if o.invite is not None else None
        if (
            inv is None
            or inv.kind != Kind.INVITE
            or not (o.K >> inv.idx) & 1
            or not (self.valid >> inv.idx) & 1
        ):
            return None
        return inv

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
        if arec.fork and o.seq >= arec.fork and not self.forkless:
            self.levels[o.idx] = LEVEL_EQUIVOCATED
            return Reason.EQUIVOCATION
        need: int
        if kind == Kind.JOIN:
            inv = self.invitation(o)
            if inv is None:
                return Reason.INVITATION_UNKNOWN
            if not o.proof_ok:
                return Reason.BAD_PROOF
            if lvl == LEVEL_BANNED:
                return Reason.BANNED
            if lvl >= _READER or self.relay_granted(author, K):
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
            if (
                core.authors[inv.author].fork and not self.forkless
            ) or self.level(inv.author, K)[0] < ineed:
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
                if (
                    self.level(o.target, K)[0] >= _READER
                    or not o.cut_ok
                    or self.relay_granted(o.target, K)
                ):
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
                # R9: leaving is never refused; O5 does not apply.
                return Reason.OK
            elif kind == Kind.SET_METADATA:
                need = _need(Permission.SET_METADATA)
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            elif kind == Kind.INVITE:
                need = o.need_static
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            elif kind == Kind.REVOKE_INVITE:
                inv = self.invitation(o)
                if inv is None:
                    return Reason.INVITATION_UNKNOWN
                need = (
                    _need(Permission.REVOKE_OWN_INVITE)
                    if inv.author == author
                    else _need(Permission.REVOKE_INVITE)
                )
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
            elif kind == Kind.RELAY:
                # 12: a relay is never a member, and only admins grant one.
                need = _need(Permission.RELAY)
                if lvl < need:
                    return Reason.INSUFFICIENT_ROLE
                assert o.target is not None
                if self.level(o.target, K)[0] >= _READER:
                    return Reason.BAD_TARGET
            elif kind == Kind.KEYS:
                # 12: any member may publish keys, rekey or forward secrets.
                need = _READER
            else:  # CLAIM_ADMIN
                need = _READER
                top = 0
                for who, m in self.mask.items():
                    inK = m & K
                    rec = core.authors.get(who)
                    if not inK or (rec is not None and rec.fork and not self.forkless):
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
        if kind == Kind.RELAY:
            assert target is not None
            self.relay_ops.setdefault(target, []).append(o)
        if (kind == Kind.SET_METADATA or kind == Kind.GENESIS) and (
            self.meta is None or self.meta.key < o.key
        ):
            self.meta = o


def _revokes(o: _Op) -> bool:
    body = o.body
    return bool(getattr(body, "revoke", False))
