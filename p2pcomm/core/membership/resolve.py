"""The resolution (spec/04-membership.md section 4.8): entries in, :class:`GroupState` out.

:class:`_Core` takes entries in any order and keeps their causal knowledge ``K`` (4.8.1),
the operations, and the current world (:mod:`.world`). In batch mode (:func:`resolve`) it
judges nothing until every entry is in; in incremental mode (:mod:`.machine`) it judges
each entry as it comes, and rebuilds the world only when a new operation may change the
fate of others (a voider with victims, a fork, a late body). ``rebuild`` is the search for
a stable set of voiders of 4.8.5 with the seniority rule R6; content is judged against the
result by 4.8.6.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Final

from ...errors import DecodeError, ErrorCode, ValidationError
from ..invitation import verify_join_proof
from ..log import KIND_GENESIS, Entry
from .kinds import (
    FIRST_APP_KIND,
    LEVEL_BANNED,
    LEVEL_EQUIVOCATED,
    LEVEL_NONE,
    MEMBERSHIP_KINDS,
    WEAK_MEMBER_IDS,
    Kind,
    Permission,
    Reason,
    Role,
    _need,
)
from .ops import (
    AddMember,
    Ban,
    ClaimAdmin,
    GenesisBody,
    Invite,
    Join,
    Leave,
    MembershipOp,
    RelayGrant,
    RemoveMember,
    RevokeInvite,
    SetMetadata,
    SetRole,
    decode_op,
)
from .state import (
    GroupMetadata,
    GroupState,
    Invitation,
    Member,
    Verdict,
    _content_verdict,
    _Verdicts,
)
from .world import _ADMIN, _READER, _Author, _bits, _Op, _World

if TYPE_CHECKING:
    from ..epochs import EpochView

__all__ = ["resolve"]


def encrypted_kind(kind: int) -> bool:
    """Content kinds that are envelopes in an encrypted group (12.10 C1; the same set
    as :data:`p2pcomm.core.epochs.ENCRYPTED_KINDS`, without importing it here)."""
    return 32 <= kind <= 35 or kind == 48 or kind == 49 or kind >= FIRST_APP_KIND


_MKINDS = MEMBERSHIP_KINDS
#: What a genesis body that is missing or does not decode stands for (B1).
_NO_GENESIS_BODY: Final = GenesisBody(name="")


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
        #: Content entry ids in arrival order (the stale set is extended, not redone).
        self.content_ids: list[bytes] = []
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
        #: Operation index -> its verdict in the resolution of its cut alone.
        self.local: dict[int, Reason] = {}
        #: Cut -> its members in the resolution of the cut alone.
        self.local_members_of: dict[int, frozenset[bytes]] = {}
        #: Some author's log forked.
        self.forked = False
        #: The world is stale: a rebuild is due before the next judgement.
        self.dirty = False
        #: Within apply_many: postpone rebuilds to the end.
        self.batching = False
        self._snapshot: GroupState | None = None
        #: Ids applied or re-judged since the caller last collected them.
        self.changed: dict[bytes, None] = {}
        self._epochs: EpochView | None = None
        #: (world, operations, content ids judged, stale ids) of the last stale_set.
        self._stale_memo: tuple[object, int, int, frozenset[bytes]] | None = None

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
            self.content_ids.append(eid)
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
        """A known entry arrives again: only a late body of an operation matters (B2;
        for the genesis, B1: it brings the metadata and the founder's name)."""
        o = self.by_id.get(entry.id)
        if o is None or entry.body is None or o.entry.body is not None:
            return
        o.entry = entry
        o.bad = None
        self.local.clear()  # a body in a cut may change the verdicts of that cut
        self.local_members_of.clear()
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
                self.forked = True
        else:
            rec.max_seq = seq
        kind = h.kind
        if kind in _MKINDS:
            self._new_op(entry, K, rec)
        else:
            Kd[eid] = K
            rec.content.append(eid)
            self.ckind[eid] = kind
            self.content_ids.append(eid)
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
        body: MembershipOp
        if kind == KIND_GENESIS and entry.body is None:
            # B1: the founder is the founder whether or not the body is held; no
            # metadata until it is.
            body = _NO_GENESIS_BODY
        elif entry.body is None:
            o.bad = Reason.BODY_MISSING
            return
        else:
            try:
                body = decode_op(kind, entry.body)
            except (DecodeError, ValidationError):
                if kind != KIND_GENESIS:
                    o.bad = Reason.MALFORMED
                    return
                # B1: the founder is the founder whatever the body says; no metadata.
                body = _NO_GENESIS_BODY
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
        elif isinstance(body, RelayGrant):
            o.target = body.relay
            if body.relay == author or body.relay in WEAK_MEMBER_IDS:
                o.bad = Reason.BAD_TARGET
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
                if q.seq > o.cut and not (q.K >> o.idx) & 1 and q.kind != Kind.LEAVE:
                    yield q
        for j in self.joins_by_inviter.get(target, ()):
            if not (o.K >> j.idx) & 1 and not (j.K >> o.idx) & 1:
                yield j

    def _evaluate(
        self,
        order: list[_Op],
        S: Iterable[_Op],
        excluded: frozenset[int],
        *,
        forkless: bool = False,
    ) -> _World:
        w = _World(self, S, forkless=forkless)
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
        world, excluded = self._search(sorted(self.ops, key=attrgetter("key")))
        world.go_live()
        self.world = world
        self.excluded = excluded

    def local_reason(self, o: _Op) -> Reason:
        """The verdict of ``o`` in the resolution of its cut alone: the operations in its
        past and itself, judged as if nobody had forked (12.10 F1: whether a rekey
        counts). A function of ``o``'s past, whatever else arrives; kept until a late
        body may change it."""
        got = self.local.get(o.idx)
        if got is None:
            world = self._local_world(o.K)
            got = self.local[o.idx] = world.reasons[o.idx]
            # The same world resolves the cut without ``o``, which is last in T and
            # voids nothing in its past (B4): the recipients of its rekey (12.9 KB6).
            before = o.K & ~o.bit
            if before not in self.local_members_of:
                self.local_members_of[before] = self._members_at(world, before)
        return got

    def local_members(self, K: int) -> frozenset[bytes]:
        """The members (level 1 to 4) at cut ``K`` in the resolution of ``K`` alone, as
        :meth:`local_reason` resolves it: those a rekey written at ``K`` is sealed to
        (12.9 KB6), whatever arrives later."""
        got = self.local_members_of.get(K)
        if got is None:
            got = self.local_members_of[K] = self._members_at(self._local_world(K), K)
        return got

    def _members_at(self, w: _World, K: int) -> frozenset[bytes]:
        return frozenset(
            who for who, m in w.mask.items() if m & K and w.level(who, K)[0] >= _READER
        )

    def _local_world(self, K: int) -> _World:
        """A world that judges the operations of cut ``K`` as the resolution of ``K``
        alone does, without forks: the current one when it does (:meth:`_alone`)."""
        if self._alone(K):
            return self.world
        order = sorted((self.ops[i] for i in _bits(K)), key=attrgetter("key"))
        return self._search(order, forkless=True)[0]

    def _alone(self, cut: int) -> bool:
        """Whether the current world judges the operations of ``cut`` as that cut alone
        would. It does when it is settled, nobody forked, no cycle excluded anything
        (R6), and no operation outside the cut can change a verdict in it: one that has
        the whole cut in its past cannot (B4 keeps a voider from reaching below what it
        saw, and it comes later in ``T``), nor can a concurrent one that voids nothing in
        the cut (R2, R4, R5) and is no JOIN of an invitation in the cut (R5's uses)."""
        ops = self.ops
        w = self.world
        if self.forked or self.dirty or self.excluded or len(w.reasons) != len(ops):
            return False
        by_id = self.by_id
        for i in _bits(((1 << len(ops)) - 1) & ~cut):
            p = ops[i]
            if p.K & cut == cut:
                continue
            if p.kind == Kind.JOIN and p.invite is not None:
                inv = by_id.get(p.invite)
                if inv is not None and (cut >> inv.idx) & 1:
                    return False
            if p.voider_kind and any((cut >> q.idx) & 1 for q in self._victim_ops(p)):
                return False
        return True

    def _search(
        self, order: list[_Op], *, forkless: bool = False
    ) -> tuple[_World, frozenset[int]]:
        """The stable world of the operations ``order`` (sorted by ``T`` key, closed
        under pasts) and the operations excluded from cycles (R6)."""
        ops = self.ops
        excluded: set[int] = set()
        while True:
            frozen = frozenset(excluded)
            world0 = self._evaluate(order, (), frozen, forkless=forkless)
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
                world = self._evaluate(
                    order, [ops[i] for i in sorted(S_next)], frozen, forkless=forkless
                )
            if cycle is None:
                break
            union = frozenset().union(*cycle)
            inter = frozenset(cycle[0]).intersection(*cycle[1:])
            D = [ops[i] for i in sorted(union - inter)]
            responsible = [c for c in D if any(d in D for d in self._victim_ops(c))]

            # The most junior participant goes: latest grant of the author, then latest op.
            ranked = [(world0.level(c.author, c.K)[1], c.key, c.idx) for c in responsible or D]
            excluded.add(max(ranked)[2])
        return world, frozenset(excluded)

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

    # -- encryption (spec/12-encryption.md 12.10)

    @property
    def epochs(self) -> EpochView:
        view = self._epochs
        if view is None:
            from ..epochs import EpochView

            view = self._epochs = EpochView(self)
        return view

    def is_stale(self, eid: bytes) -> bool:
        """X1: encrypted content whose key reaches a non-member of its past."""
        view = self.epochs
        return encrypted_kind(self.ckind[eid]) and view.encrypted and view.stale(self.K[eid])

    def stale_set(self) -> frozenset[bytes]:
        view = self.epochs
        if not view.encrypted:
            return frozenset()
        Kd = self.K
        ckind = self.ckind
        stale = view.stale
        ids = self.content_ids
        memo = self._stale_memo
        if memo is not None and memo[0] is self.world and memo[1] == len(self.ops):
            # Only content arrived since: judge the new entries alone.
            start, found = memo[2], memo[3]
        else:
            start, found = 0, frozenset()
        new = [eid for eid in ids[start:] if encrypted_kind(ckind[eid]) and stale(Kd[eid])]
        if new:
            found = found | frozenset(new)
        self._stale_memo = (self.world, len(self.ops), len(ids), found)
        return found

    def content_verdict(self, eid: bytes) -> Verdict:
        return _content_verdict(
            eid,
            self.ckind[eid],
            self.cauthor[eid],
            self.level[eid],
            self.lowered.get(eid),
            self.is_stale(eid),
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
            relays=frozenset(r for r in w.relay_ops if w.relay_granted(r, w.valid)),
            verdicts=_Verdicts(
                verdicts,
                self.ckind if self.deferred else dict(self.ckind),
                self.cauthor if self.deferred else dict(self.cauthor),
                self.level if self.deferred else dict(self.level),
                self.lowered if self.deferred else dict(self.lowered),
                self.stale_set(),
            ),
            pending=frozenset(self.pending),
        )
        self._snapshot = state
        return state


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
