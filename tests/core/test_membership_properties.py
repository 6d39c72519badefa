"""Hypothesis properties of the membership CRDT (STYLE.md habit 9).

Histories are made by simulated replicas (``p2pcomm.testing.history``): five members'
devices that act on partial knowledge and sync now and then, so operations are
concurrent; some act without the power to (their entries must not take effect), some
fork. Hypothesis draws the script; on failure the script and the DAG are printed.

Checked:

* any delivery order, with duplicates, gives the same state (pure and incremental);
* the incremental machine equals the pure resolver after every entry;
* replicas that exchanged everything hold equal states and views;
* no unauthorized operation ever takes effect, checked against an independent,
  deliberately naive reading of the rules (explicit ancestor sets, no bit sets, no
  caches);
* removing then re-adding behaves as specified.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given, note
from hypothesis import strategies as st

from p2pcomm.core.content import ContentMachine, content_view, removable
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.log import Entry
from p2pcomm.core.membership import (
    FIRST_APP_KIND,
    LEVEL_NONE,
    MEMBERSHIP_KINDS,
    AddMember,
    Ban,
    GroupState,
    Invite,
    Join,
    Kind,
    MembershipMachine,
    RemoveMember,
    Role,
    SetRole,
    decode_op,
    resolve,
)
from p2pcomm.testing.history import History, Replica, invitation_secret, keypair

N = 5
KEYS = [keypair(i) for i in range(N)]
NAME = {k.public_key: f"m{i}" for i, k in enumerate(KEYS)}


@dataclass
class World:
    history: History
    replicas: list[Replica]
    invites: list[tuple[Entry, InvitationCode]] = field(default_factory=list)
    posts: list[Entry] = field(default_factory=list)
    #: Per replica, the ids it learned, in the order it learned them.
    learned: list[list[bytes]] = field(default_factory=list)


Step = tuple[int, int, int, int]
steps = st.lists(
    st.tuples(
        st.integers(0, N - 1),  # actor
        st.integers(0, 15),  # what
        st.integers(0, 31),  # argument
        st.integers(0, 2 * N),  # sync from (N and above: no sync)
    ),
    min_size=4,
    max_size=30,
)


def _track(world: World, i: int, before: set[bytes]) -> None:
    pos = world.history.position
    fresh = sorted(world.replicas[i].known - before, key=pos.__getitem__)
    world.learned[i].extend(fresh)


def simulate(script: Sequence[Step]) -> World:
    """Run a script. Member 0 founds the group and adds 1 (admin), 2 (moderator) and
    3 (member); 4 starts outside. Then each step lets one replica act on what it
    knows, maybe after syncing from another."""
    history, founder = History.found(KEYS[0], name="sim", founder_name="m0")
    replicas = [founder] + [history.replica(k) for k in KEYS[1:]]
    world = World(history, replicas, learned=[[history.genesis.id] for _ in range(N)])
    for i, role in ((1, Role.ADMIN), (2, Role.MODERATOR), (3, Role.MEMBER)):
        founder.add(replicas[i], role, name=f"m{i}")
    world.learned[0].extend(e.id for e in history.entries[1:])
    for i in (1, 2, 3):
        before = set(replicas[i].known)
        replicas[i].sync(founder)
        _track(world, i, before)
    for actor, what, arg, source in script:
        me = replicas[actor]
        before = set(me.known)
        if source < N and source != actor:
            me.sync(replicas[source])
        target = KEYS[arg % N].public_key
        role = Role(arg % 4 + 1)
        known_posts = [p for p in world.posts if me.knows(p.id)]
        known_invites = [(e, c) for e, c in world.invites if me.knows(e.id)]
        if what == 0:
            world.posts.append(me.post(f"post {len(history)}"))
        elif what == 1 and known_posts:
            world.posts.append(me.reply(known_posts[arg % len(known_posts)], "re"))
        elif what == 2 and known_posts:
            me.react(known_posts[arg % len(known_posts)], "+1", on=arg % 3 != 0)
        elif what == 3:
            me.add(target, role)
        elif what == 4:
            me.remove(target)
        elif what == 5 and arg % 2:
            me.ban(target)
        elif what == 6:
            me.set_role(target, role)
        elif what == 7 and arg % 3 == 0:
            me.leave()
        elif what == 8:
            entry, code = me.invite(
                invitation_secret(len(history)), role=Role(arg % 3 + 1), max_uses=arg % 3
            )
            world.invites.append((entry, code))
        elif what == 9 and world.invites:
            # Someone (often the outsider m4) joins; it gets the invitation from its issuer.
            entry, code = world.invites[arg % len(world.invites)]
            joiner = replicas[4] if arg % 3 else me
            if not joiner.knows(entry.id):
                issuer = next(r for r in replicas if r.knows(entry.id))
                joiner_before = set(joiner.known)
                joiner.sync(issuer)
                _track(world, replicas.index(joiner), joiner_before)
            joiner_before = set(joiner.known)
            joiner.join(code, entry)
            _track(world, replicas.index(joiner), joiner_before)
        elif what == 10 and known_invites:
            me.revoke_invite(known_invites[arg % len(known_invites)][0])
        elif what == 11 and known_posts:
            (me.hide if arg % 2 else me.delete)(known_posts[arg % len(known_posts)])
        elif what == 12:
            me.claim_admin()
        elif what == 13:
            me.set_metadata(f"name {arg}")
        elif what == 14 and arg % 4 == 0 and me.seq > 0:
            twin = me.fork()
            twin.post("the other branch")
            me.post("this branch")
            me.known |= twin.known
        elif what == 14 or what == 15:
            # A race: the actor lowers the target while the target, unaware, acts.
            other = replicas[arg % N]
            if other is not me:
                other_before = set(other.known)
                (me.remove if arg % 2 else me.set_role)(other, *(() if arg % 2 else (Role.MEMBER,)))
                pick = arg // N % 3
                if pick == 0:
                    other.remove(me)
                elif pick == 1:
                    other.add(KEYS[(arg + 1) % N].public_key, Role.MODERATOR)
                else:
                    world.posts.append(other.post("racing"))
                _track(world, arg % N, other_before)
        _track(world, actor, before)
    return world


def dag(entries: Sequence[Entry]) -> str:
    """One line per entry: index, author, seq, kind, and the indexes it points to."""
    index = {e.id: i for i, e in enumerate(entries)}
    lines = []
    for i, e in enumerate(entries):
        h = e.header
        parents = ([index[h.prev]] if h.prev else []) + sorted(index[x] for x in h.links)
        kind = Kind(h.kind).name if h.kind in Kind._value2member_map_ else str(h.kind)
        lines.append(f"{i:3} {NAME.get(h.author, '?')} seq={h.seq} {kind} <- {parents}")
    return "\n".join(lines)


def report(world: World, state: GroupState | None = None) -> None:
    lines = dag(world.history.entries).splitlines()
    if state is not None:
        lines = [
            f"{line}   [{state.verdicts[e.id].reason.value}]" if e.id in state.verdicts else line
            for line, e in zip(lines, world.history.entries, strict=True)
        ]
    note("\n".join(lines))


def deliveries(entries: Sequence[Entry], seed: int) -> list[Entry]:
    """A shuffled delivery with duplicates, where some entries first arrive without
    their body (header-only sync) and get it later."""
    rng = random.Random(seed)
    out = list(entries) + [rng.choice(entries) for _ in range(len(entries) // 3)]
    rng.shuffle(out)
    for e in rng.sample(list(entries), len(entries) // 5):
        first = out.index(e)
        out.insert(rng.randrange(first + 1), e.without_body())
    return out


# --------------------------------------------------------------------------- properties


@given(script=steps, seed=st.integers(0, 2**32 - 1))
def test_any_delivery_order_and_duplication_gives_the_same_state(
    script: list[Step], seed: int
) -> None:
    world = simulate(script)
    entries = world.history.entries
    expected = resolve(entries)
    report(world, expected)
    order = deliveries(entries, seed)
    assert resolve(order) == expected
    one_by_one = MembershipMachine()
    for e in order:
        one_by_one.apply(e)
    assert one_by_one.state == expected
    batched = MembershipMachine()
    cut = seed % (len(order) + 1)
    batched.apply_many(order[:cut])
    batched.apply_many(order[cut:])
    assert batched.state == expected


@given(script=steps)
def test_incremental_equals_pure_after_every_entry(script: list[Step]) -> None:
    world = simulate(script)
    entries = world.history.entries
    report(world, resolve(entries))
    machine = MembershipMachine()
    for n, e in enumerate(entries, 1):
        machine.apply(e)
        # roles() first: it must not depend on a snapshot having been built
        roles = machine.roles()
        state = resolve(entries[:n])
        assert machine.state == state, f"after entry {n - 1}"
        assert roles == {m: member.role for m, member in state.members.items()}


@given(script=steps)
def test_replicas_that_exchanged_everything_agree(script: list[Step]) -> None:
    world = simulate(script)
    history = world.history
    replicas = world.replicas
    # Everyone syncs with everyone, twice round.
    for _ in range(2):
        for i, r in enumerate(replicas):
            before = set(r.known)
            r.sync(*replicas)
            _track(world, i, before)
    by_id = {e.id: e for e in history.entries}
    machines = []
    for ids in world.learned:
        m = ContentMachine()
        for eid in ids:
            m.apply(by_id[eid])
        machines.append(m)
    expected = resolve(history.entries)
    report(world, expected)
    view = content_view(expected, history.entries)
    for m in machines:
        assert m.state == expected
        assert m.view() == view


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class _Assign:
    id: bytes
    target: bytes
    level: int
    cut: int
    self_assign: bool


def _ancestors(entries: Sequence[Entry]) -> dict[bytes, frozenset[bytes]]:
    anc: dict[bytes, frozenset[bytes]] = {}
    for e in entries:  # creation order is causal
        h = e.header
        parents = ([h.prev] if h.prev else []) + list(h.links)
        acc: set[bytes] = set()
        for p in parents:
            acc |= anc[p] | {p}
        anc[e.id] = frozenset(acc)
    return anc


_NEED = {
    Kind.ADD: Role.ADMIN,
    Kind.SET_ROLE: Role.ADMIN,
    Kind.SET_METADATA: Role.ADMIN,
    Kind.REMOVE: Role.MODERATOR,
    Kind.BAN: Role.MODERATOR,
    Kind.INVITE: Role.MODERATOR,
    Kind.REVOKE_INVITE: Role.READER,
    Kind.LEAVE: Role.READER,
    Kind.CLAIM_ADMIN: Role.READER,
    Kind.POST: Role.MEMBER,
    Kind.REPLY: Role.MEMBER,
    Kind.REACT: Role.READER,
    Kind.RETRACT: Role.READER,
    Kind.HIDE: Role.MODERATOR,
    Kind.UNHIDE: Role.MODERATOR,
    Kind.DELETE: Role.MODERATOR,
}


def check_no_unauthorized_effect(entries: Sequence[Entry], state: GroupState) -> None:
    """Every effective entry satisfies R1, R2, R3, R4, R5, R8, R9 and R10, recomputed
    naively; and the final member list is what R3 says."""
    anc = _ancestors(entries)
    ok = {eid for eid, v in state.verdicts.items() if v.ok}
    ops = {
        e.id: decode_op(e.header.kind, e.body)
        for e in entries
        if e.header.kind in MEMBERSHIP_KINDS and e.body
    }
    by_id = {e.id: e for e in entries}
    assigns: list[_Assign] = []
    for e in entries:
        op = ops.get(e.id)
        a = e.header.author
        if op is None or e.id not in ok:
            continue
        k = e.header.kind
        if k == Kind.GENESIS or k == Kind.CLAIM_ADMIN:
            assigns.append(_Assign(e.id, a, Role.ADMIN, 0, True))
        elif k == Kind.LEAVE:
            assigns.append(_Assign(e.id, a, LEVEL_NONE, 0, True))
        elif k == Kind.JOIN:
            assert isinstance(op, Join)
            inv = ops[op.invite]
            assert isinstance(inv, Invite)
            assigns.append(_Assign(e.id, a, inv.role, 0, True))
        elif isinstance(op, AddMember | SetRole):
            assigns.append(_Assign(e.id, op.member, op.role, op.cut, op.member == a))
        elif isinstance(op, RemoveMember | Ban):
            assigns.append(
                _Assign(
                    e.id,
                    op.member,
                    LEVEL_NONE if isinstance(op, RemoveMember) else -1,
                    op.cut,
                    False,
                )
            )

    def level(member: bytes, cut: frozenset[bytes]) -> int:
        mine = [x for x in assigns if x.target == member and x.id in cut]
        top = [x for x in mine if not any(x.id in anc[y.id] for y in mine if y is not x)]
        return min((x.level for x in top), default=LEVEL_NONE)

    forks = state.equivocators
    for e in entries:
        if e.id not in ok or e.header.kind == Kind.GENESIS:
            continue
        h = e.header
        past = anc[e.id]
        author = h.author
        assert not (author in forks and h.seq >= forks[author]), "an equivocated entry took effect"
        lvl = level(author, past)
        kind = h.kind
        op = ops.get(e.id)
        if kind == Kind.JOIN:
            assert isinstance(op, Join)
            assert lvl == LEVEL_NONE, "a member (or banned) joined"
            assert op.invite in past and op.invite in ok, "join without an effective invitation"
            inv = ops[op.invite]
            assert isinstance(inv, Invite)
            need = int(inv.role)
            issuer = by_id[op.invite].header.author
            assert level(issuer, past) >= Role.MODERATOR, "join under an issuer without power"
            assert issuer not in forks
            for x in assigns:
                if (
                    x.target == issuer
                    and not x.self_assign
                    and x.id not in past
                    and e.id not in anc[x.id]
                ):
                    assert x.level >= Role.MODERATOR or x.level >= _issue_need(inv), (
                        "issuer revoked concurrently"
                    )
        else:
            need = (
                int(_NEED.get(Kind(kind), Role.MEMBER))
                if kind in Kind._value2member_map_
                else Role.MEMBER
            )
            assert lvl >= need, f"{Kind(kind).name} by level {lvl} took effect"
            if isinstance(op, AddMember | RemoveMember | Ban):
                assert op.member != author
            if kind == Kind.CLAIM_ADMIN:
                others = {x.target for x in assigns if x.id in past} - set(forks)
                assert all(level(m, past) < Role.ADMIN for m in others), (
                    "claim in a group with an admin"
                )
        # R2: no concurrent assignment leaves the author below the need (R9: a leave
        # is never refused).
        for x in assigns:
            if kind == Kind.LEAVE:
                break
            if x.target == author and not x.self_assign and x.id not in past:
                assert not (h.seq > x.cut and x.level < need), (
                    "entry concurrent with its author's revocation"
                )
    # R3 on the final state.
    everyone = {x.target for x in assigns}
    final = {m: level(m, frozenset(by_id)) for m in everyone}
    expected = {m: Role(v) for m, v in final.items() if v >= Role.READER and m not in forks}
    assert {m: info.role for m, info in state.members.items()} == expected
    assert state.banned == {m for m, v in final.items() if v == -1 and m not in forks}


def _issue_need(inv: Invite) -> int:
    return Role.MODERATOR if inv.role <= Role.MEMBER else Role.ADMIN


@given(script=steps)
def test_no_unauthorized_operation_ever_takes_effect(script: list[Step]) -> None:
    world = simulate(script)
    entries = world.history.entries
    state = resolve(entries)
    report(world, state)
    check_no_unauthorized_effect(entries, state)


@given(script=steps, posts_while_removed=st.integers(0, 3))
def test_remove_then_re_add(script: list[Step], posts_while_removed: int) -> None:
    """Whatever happened before: the founder removes m3 (after syncing), m3 keeps
    posting without syncing, the founder adds m3 back, m3 syncs and posts. Then m3 is a
    member, the posts written while removed are void, the one after is effective."""
    world = simulate(script)
    founder, m3 = world.replicas[0], world.replicas[3]
    founder.sync(*world.replicas)
    m3.sync(founder)
    state = resolve(world.history.entries)
    if KEYS[0].public_key not in state.admins or KEYS[3].public_key in state.equivocators:
        return  # the founder lost power or m3 forked in the script: nothing to test
    role = state.role_of(KEYS[3].public_key)
    if role is None:
        founder.add(m3, Role.MEMBER)
    elif role < Role.MEMBER:
        founder.set_role(m3, Role.MEMBER)
    m3.sync(founder)
    founder.remove(m3)
    concurrent = [m3.post(f"while removed {i}") for i in range(posts_while_removed)]
    founder.add(m3, Role.MEMBER)
    m3.sync(founder)
    after = m3.post("back")
    entries = world.history.entries
    state = resolve(entries)
    report(world, state)
    assert state.role_of(KEYS[3].public_key) == Role.MEMBER
    assert [state.verdicts[e.id].reason.value for e in concurrent] == [
        "revoked"
    ] * posts_while_removed
    assert state.authorized(after.id)


blind = st.lists(
    st.tuples(
        st.integers(0, 2),  # what: delete, application entry, retract
        st.integers(0, 1000),  # which entry
        st.integers(0, 2 * N),  # sync from (N and above: no sync)
    ),
    min_size=1,
    max_size=8,
)


@given(script=steps, extra=blind, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 7))
def test_deletes_outside_the_past_give_one_state_and_view_in_every_order(
    script: list[Step], extra: list[tuple[int, int, int]], seed: int, cut: int
) -> None:
    """04 V2: deletes naming entries outside their author's causal past (operations,
    moderation, posts, application entries, known or not) leave the state and the view,
    removed entries and dropped bodies included, a function of the set of entries: every
    delivery order and batching gives the same, and on the way no replica is told to
    drop a body it cannot yet know to be removable."""
    world = simulate(script)
    history, replicas = world.history, world.replicas
    for what, which, source in extra:
        me = replicas[0] if what == 0 and which % 2 else replicas[2]
        if source < N:
            me.sync(replicas[source])
        target = history.entries[which % len(history.entries)]
        if what == 0:
            me.delete(target.id)  # whatever it is, seen or not
        elif what == 1:
            replicas[3].append(FIRST_APP_KIND + which % 3, b"app %d" % which)
        else:
            replicas[3].retract(target.id)
    entries = list(history.entries)
    state = resolve(entries)
    view = content_view(state, entries)
    report(world, state)
    kind = {e.id: e.header.kind for e in entries}
    for k, order in enumerate((deliveries(entries, seed), deliveries(entries, seed + 1))):
        one = ContentMachine()
        held: set[bytes] = set()
        for e in order:
            one.apply(e)
            held.add(e.id)
            if history.group not in held:
                continue
            # A body is dropped only for an entry held, of a kind a delete can remove
            # (never an operation, a moderation entry, or an id not yet seen).
            for x in one.view().drop_bodies:
                assert x in held and removable(kind[x]), (x.hex(), kind.get(x))
        assert one.state == state and one.view() == view
        batched = ContentMachine()
        for i in range(0, len(order), cut + k):
            batched.apply_many(order[i : i + cut + k])
        assert batched.state == state and batched.view() == view
        assert resolve(order) == state and content_view(state, order) == view
