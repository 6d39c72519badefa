"""The planner (``p2pcomm/core/intent.py``) refuses exactly what the rules void.

The key property: on a random history (the simulated replicas of
``test_membership_properties``: members with roles, removals, bans, invitations, joins,
posts, forks, races), a random member (or a newcomer) means to do one of the seventeen
things a member can do. The planner is built on ``resolve`` of everything and the
content view; the replica that writes knows everything too, so its entry links every
head, and its causal past is the planner's state. Then:

* an :class:`Intent` is exactly the entry meant (kind and body), and that entry, written,
  is judged ``ok`` by ``resolve``;
* a :class:`RefusedError` carries ``e.reason``, and the same entry written anyway is
  judged with exactly that reason;
* a :class:`NotFoundError` is raised only when the target is not one the action can act
  on (then the entry would be judged by the author's standing alone and change
  nothing): a reply or reaction to something that is not a visible item, a retract of
  what is not one's own post, reply or reaction, a hide or unhide of what is not a post
  or reply, a delete of what is not a post, reply or reaction (or not held at all), and
  an add, removal, ban or role change of a member whose log forked;
* a :class:`ValidationError` only for an invitation that would expire before it is made.

Then drawn scenarios (one per kind of refusal), each with its DAG.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from p2pcomm.core.content import (
    MAX_TEXT,
    ContentView,
    Delete,
    Hide,
    Post,
    React,
    Reply,
    Retract,
    Unhide,
    content_view,
)
from p2pcomm.core.intent import Intent, Planner
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.log import MAX_LINKS, Entry, Header
from p2pcomm.core.membership import (
    AddMember,
    Ban,
    ClaimAdmin,
    GroupState,
    Invite,
    Join,
    Kind,
    Leave,
    Reason,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
    resolve,
)
from p2pcomm.errors import NotFoundError, RefusedError, ValidationError
from p2pcomm.testing.history import (
    STEP,
    History,
    Replica,
    invitation_secret,
    keypair,
    named_keypair,
)
from tests.core.test_membership_properties import KEYS, N, Step, World, dag, simulate, steps

#: Someone the history never heard of.
NEWCOMER = keypair(N)
TARGETS = [k.public_key for k in KEYS] + [NEWCOMER.public_key]
#: An id no entry has.
NOWHERE = b"\x99" * 32

INTENTIONS = (
    "post",
    "reply",
    "react",
    "retract",
    "hide",
    "unhide",
    "delete",
    "add",
    "remove",
    "ban",
    "set_role",
    "leave",
    "claim_admin",
    "set_metadata",
    "invite",
    "revoke_invite",
    "join",
)
CONTENT = {"reply", "react", "retract", "hide", "unhide", "delete"}
ON_MEMBERS = {"add", "remove", "ban", "set_role"}


# --------------------------------------------------------------------------- harness


def planner_for(rep: Replica, *, now: int) -> tuple[Planner, GroupState, ContentView]:
    """A planner for ``rep``'s author on everything ``rep`` knows (what a node does with
    its store)."""
    entries = [e for e in rep.history.entries if rep.knows(e.id)]
    state = resolve(entries)
    view = content_view(state, entries)
    headers = {e.id: e.header for e in entries}
    top: dict[bytes, int] = {}
    for e in entries:
        top[e.header.author] = max(top.get(e.header.author, 0), e.header.seq)

    def header(eid: bytes) -> Header | None:
        return headers.get(eid)

    planner = Planner(
        state,
        view,
        rep.id,
        now_ms=now,
        max_seq=lambda m: top.get(m, 0),
        header=header,
        last_timestamp=rep.last_ts,
    )
    return planner, state, view


def write(rep: Replica, intent: Intent, *, now: int) -> Entry:
    """Append a planned entry as ``community.append_intent`` does."""
    return rep.append(intent.kind, intent.body, timestamp=max(now, intent.min_timestamp))


def verdict(history: History, entry: Entry) -> Reason:
    return resolve(history.entries).verdicts[entry.id].reason


def refused(call: Callable[[], Intent]) -> Reason:
    with pytest.raises(RefusedError) as info:
        call()
    return Reason(info.value.reason)


# --------------------------------------------------------------------------- the property


def _target(arg: int, rep: Replica, world: World) -> bytes:
    """A content target: nothing, often a post or reply (often the writer's own), or
    any entry at all (an operation, a reaction...)."""
    entries = world.history.entries
    posts = world.posts
    mine = [e for e in entries if e.header.author == rep.id and e.header.kind >= Kind.POST]
    pick = arg // 3
    if arg % 13 == 0:
        return NOWHERE
    if arg % 4 == 1 and mine:
        return mine[pick % len(mine)].id
    if arg % 4 == 2 and posts:
        return posts[pick % len(posts)].id
    return entries[pick % len(entries)].id


def _invitation(arg: int, state: GroupState, world: World) -> tuple[Entry, InvitationCode] | None:
    """One of the history's invitations (often an effective one), or None."""
    effective = [x for x in world.invites if x[0].id in state.invitations]
    pool = effective if effective and arg % 2 else world.invites
    if not pool or arg % 5 == 0:
        return None
    return pool[arg // 5 % len(pool)]


def _meant(
    what: str, arg: int, rep: Replica, world: World, state: GroupState, now: int
) -> tuple[Callable[[Planner], Intent], int, bytes, int]:
    """The intention ``what`` with argument ``arg``, as a call on a planner, and the
    entry meant (kind, body, timestamp) written by hand, to write anyway if refused."""
    history = world.history
    entries = history.entries
    member = TARGETS[arg % len(TARGETS)]
    role = Role(arg // 7 % 4 + 1)
    target = _target(arg, rep, world)
    me = rep.id
    top: dict[bytes, int] = {}
    for e in entries:
        top[e.header.author] = max(top.get(e.header.author, 0), e.header.seq)
    cut = top.get(member, 0)
    ts = now
    plan: Callable[[Planner], Intent]
    body: bytes
    if what == "post":
        kind, body = Kind.POST, Post(text=f"post {arg}").encode()
        plan = lambda p: p.post(f"post {arg}")  # noqa: E731
    elif what == "reply":
        kind, body = Kind.REPLY, Reply(parent=target, text="re").encode()
        plan = lambda p: p.reply(target, "re")  # noqa: E731
    elif what == "react":
        on = arg % 3 != 0
        kind, body = Kind.REACT, React(target=target, emoji="+1", on=on).encode()
        plan = lambda p: p.react(target, "+1", on=on)  # noqa: E731
    elif what == "retract":
        kind, body = Kind.RETRACT, Retract(target=target).encode()
        plan = lambda p: p.retract(target)  # noqa: E731
    elif what == "hide":
        kind, body = Kind.HIDE, Hide(target=target, reason="why").encode()
        plan = lambda p: p.hide(target, "why")  # noqa: E731
    elif what == "unhide":
        kind, body = Kind.UNHIDE, Unhide(target=target).encode()
        plan = lambda p: p.unhide(target)  # noqa: E731
    elif what == "delete":
        kind, body = Kind.DELETE, Delete(target=target, reason="why").encode()
        plan = lambda p: p.delete(target, "why")  # noqa: E731
    elif what == "add":
        kind, body = Kind.ADD, AddMember(member=member, role=role, cut=cut, name="n").encode()
        plan = lambda p: p.add(member, role, name="n")  # noqa: E731
    elif what == "remove":
        kind, body = Kind.REMOVE, RemoveMember(member=member, cut=cut, reason="r").encode()
        plan = lambda p: p.remove(member, reason="r")  # noqa: E731
    elif what == "ban":
        kind, body = Kind.BAN, Ban(member=member, cut=cut, reason="r").encode()
        plan = lambda p: p.ban(member, reason="r")  # noqa: E731
    elif what == "set_role":
        kind, body = Kind.SET_ROLE, SetRole(member=member, role=role, cut=cut).encode()
        plan = lambda p: p.set_role(member, role)  # noqa: E731
    elif what == "leave":
        kind, body = Kind.LEAVE, Leave().encode()
        plan = lambda p: p.leave()  # noqa: E731
    elif what == "claim_admin":
        kind, body = Kind.CLAIM_ADMIN, ClaimAdmin().encode()
        plan = lambda p: p.claim_admin()  # noqa: E731
    elif what == "set_metadata":
        kind = Kind.SET_METADATA
        body = SetMetadata(name=f"renamed {arg}", description="", rules="").encode()
        plan = lambda p: p.set_metadata(name=f"renamed {arg}", description="", rules="")  # noqa: E731
    elif what == "invite":
        irole = Role(arg % 4 + 1)
        uses = arg % 3
        expires = (0, now - 1, now + 3600_000)[arg // 4 % 3]
        code = InvitationCode(
            group=history.group,
            secret=invitation_secret(10_000 + arg),
            inviter=me,
            role=irole,
            max_uses=uses,
            expires_at=expires,
        )
        kind = Kind.INVITE
        body = Invite(
            invitation_key=code.public_key, role=irole, max_uses=uses, expires_at=expires, note=""
        ).encode()
        plan = lambda p: p.invite(  # noqa: E731
            code.secret, role=irole, max_uses=uses, expires_at=expires
        )
    elif what == "revoke_invite":
        invite = (
            world.invites[arg % len(world.invites)][0].id if world.invites and arg % 5 else NOWHERE
        )
        kind, body = Kind.REVOKE_INVITE, RevokeInvite(invite=invite).encode()
        plan = lambda p: p.revoke_invite(invite)  # noqa: E731
    else:  # join
        chosen = _invitation(arg, state, world)
        if chosen is not None:
            invite_entry, jcode = chosen
            iid = invite_entry.id
            ts = max(now, invite_entry.header.timestamp)
        else:  # a code whose INVITE was never written
            jcode = InvitationCode(
                group=history.group,
                secret=invitation_secret(20_000 + arg),
                inviter=KEYS[0].public_key,
            )
            iid = NOWHERE
        kind = Kind.JOIN
        body = Join(invite=iid, proof=jcode.join_proof(iid, me), name="j").encode()
        plan = lambda p: p.join(jcode, name="j")  # noqa: E731
    return plan, kind, body, ts


def _not_applicable(
    what: str, arg: int, state: GroupState, view: ContentView, rep: Replica, world: World
) -> bool:
    """Whether the intention's target is one the planner documents as not applicable."""
    headers = {e.id: e.header for e in world.history.entries}
    target = _target(arg, rep, world)
    h = headers.get(target)
    kind = None if h is None else h.kind
    if what in ("reply", "react"):
        return view.item(target) is None
    if what == "retract":
        return h is None or kind not in (Kind.POST, Kind.REPLY, Kind.REACT) or h.author != rep.id
    if what in ("hide", "unhide"):
        return kind not in (Kind.POST, Kind.REPLY)
    if what == "delete":
        return kind not in (Kind.POST, Kind.REPLY, Kind.REACT)
    if what in ON_MEMBERS:
        return TARGETS[arg % len(TARGETS)] in state.equivocators
    return False


#: Who issues it, its role, uses and expiry (none, soon, in an hour), and what then
#: happens (nothing, someone uses it, the issuer revokes it, the founder removes them).
Prelude = tuple[int, Role, int, int, int]
preludes = st.none() | st.tuples(
    st.integers(0, N - 1),
    st.sampled_from(Role),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 3),
)


def _invitation_prelude(world: World, prelude: Prelude | None) -> None:
    """Most simulated histories have no invitation: with ``prelude``, a member who has
    synced issues one, and then maybe someone uses it, the issuer revokes it, or the
    founder removes the issuer."""
    if prelude is None:
        return
    who, role, uses, expiry, then = prelude
    history = world.history
    issuer = world.replicas[who]
    issuer.sync(*world.replicas)
    expires = (0, history.clock + 2 * STEP, history.clock + 3600_000)[expiry]
    secret = invitation_secret(30_000 + len(history))
    entry, code = issuer.invite(secret, role=role, max_uses=uses, expires_at=expires)
    world.invites.append((entry, code))
    if then == 1:
        other = history.replica(keypair(N + 1))
        other.sync(issuer)
        other.join(code, entry)
    elif then == 2:
        issuer.revoke_invite(entry)
    elif then == 3 and who != 0:
        founder = world.replicas[0]
        founder.sync(*world.replicas)
        founder.remove(issuer)


@settings(max_examples=300, deadline=None)
@given(
    script=steps,
    what=st.sampled_from(INTENTIONS),
    actor=st.integers(0, N),
    arg=st.integers(0, 2**16),
    skew=st.sampled_from([0, 0, 30 * STEP]),
    prelude=preludes,
    forker=st.none() | st.integers(1, N - 1),
)
def test_the_planner_refuses_exactly_what_resolve_voids(
    script: list[Step],
    what: str,
    actor: int,
    arg: int,
    skew: int,
    prelude: Prelude | None,
    forker: int | None,
) -> None:
    world = simulate(script)
    history = world.history
    _invitation_prelude(world, prelude)
    if forker is not None and world.replicas[forker].seq > 0:
        # Forks are rare in the simulation: make one (R10).
        fork = world.replicas[forker]
        fork.fork().post("one branch")
        fork.post("the other")
        fork.learn(list(history.entries))
    # The writer knows everything (so its entry links every head); N is a newcomer.
    # Hypothesis favours small numbers: joins are mostly by the outsiders m4 and N.
    actor = N - actor if what == "join" else actor
    rep = world.replicas[actor] if actor < N else history.replica(NEWCOMER)
    rep.learn(list(history.entries))
    others = [i for i, a in rep.heads.items() if a != rep.id]
    assert len(others) < MAX_LINKS  # so the entry links all of them, as GroupLog does
    # The clock: one step on, or behind the history (a device whose clock is late).
    now = history.clock + STEP - skew
    planner, state, view = planner_for(rep, now=now)
    plan, kind, body, ts = _meant(what, arg, rep, world, state, now)
    note(dag(history.entries))
    note(f"{what} by m{actor} (arg {arg}, now {now - history.clock:+d} ms)")
    try:
        intent = plan(planner)
    except RefusedError as exc:
        entry = rep.append(kind, body, timestamp=ts)
        event(f"{what}: refused {exc.reason}")
        assert verdict(history, entry).value == exc.reason, exc.message
    except NotFoundError as exc:
        event(f"{what}: not found")
        assert what in CONTENT | ON_MEMBERS, exc.message
        assert _not_applicable(what, arg, state, view, rep, world), exc.message
        if what in CONTENT:
            # Checked after the author's standing: written anyway, it would be "ok".
            entry = rep.append(kind, body, timestamp=ts)
            assert verdict(history, entry) is Reason.OK
    except ValidationError as exc:
        event(f"{what}: invalid")
        assert what == "invite", exc.message
        assert 0 < Invite.decode(body).expires_at <= now
    else:
        event(f"{what}: ok")
        assert (intent.kind, intent.body) == (kind, body)
        entry = write(rep, intent, now=now)
        assert verdict(history, entry) is Reason.OK


# --------------------------------------------------------------------------- scenarios

ALICE = named_keypair("alice")
BOB = named_keypair("bob")
CAROL = named_keypair("carol")
DAVE = named_keypair("dave")


def group_with(*member_roles: Role) -> tuple[History, Replica, list[Replica]]:
    """Alice founds; Bob, Carol, Dave are added by Alice with these roles; all sync."""
    history, alice = History.found(ALICE, name="garden club", founder_name="alice")
    out = []
    for kp, role in zip((BOB, CAROL, DAVE), member_roles, strict=False):
        rep = history.replica(kp)
        alice.add(rep, role)
        out.append(rep)
    for rep in out:
        rep.sync(alice)
    return history, alice, out


def now_of(history: History) -> int:
    return history.clock + STEP


def test_a_non_member_posting_is_refused_as_not_a_member() -> None:
    """
     G
     |
     a1        a1: Alice adds Bob
     |
    (c1)       Carol, never added, means to post: refused, not-a-member;
               written anyway, c1 is judged not-a-member
    """
    history, _alice, _ = group_with(Role.MEMBER)
    carol = history.replica(CAROL)
    carol.learn(list(history.entries))
    planner, _, _ = planner_for(carol, now=now_of(history))
    assert refused(lambda: planner.post("hi")) is Reason.NOT_A_MEMBER
    c1 = carol.post("hi")
    assert verdict(history, c1) is Reason.NOT_A_MEMBER


def test_a_moderator_removing_an_admin_is_refused_as_insufficient_role() -> None:
    """
     G
     |
     a1..a2    a1: Alice adds Bob as moderator; a2: Carol as admin
     |
    (b1)       Bob means to remove Carol: refused, insufficient-role (removing an
               admin needs remove-privileged); removing a member would be fine
    """
    history, _alice, (bob, _carol) = group_with(Role.MODERATOR, Role.ADMIN)
    bob.learn(list(history.entries))
    planner, _, _ = planner_for(bob, now=now_of(history))
    assert refused(lambda: planner.remove(CAROL.public_key)) is Reason.INSUFFICIENT_ROLE
    assert refused(lambda: planner.ban(CAROL.public_key)) is Reason.INSUFFICIENT_ROLE
    b1 = bob.remove(CAROL.public_key)
    assert verdict(history, b1) is Reason.INSUFFICIENT_ROLE
    # Alice (the founder) is an admin too: same answer.
    assert refused(lambda: planner.remove(ALICE.public_key)) is Reason.INSUFFICIENT_ROLE


def test_a_reader_may_react_but_not_post() -> None:
    """
     G
     |
     a1..a2    a1: Alice adds Bob as reader; a2: Alice posts
     |
    (b1)       Bob means to post: insufficient-role; to react to a2: ok
    """
    history, alice, (bob,) = group_with(Role.READER)
    a2 = alice.post("welcome")
    bob.sync(alice)
    now = now_of(history)
    planner, _, _ = planner_for(bob, now=now)
    assert refused(lambda: planner.post("me too")) is Reason.INSUFFICIENT_ROLE
    assert refused(lambda: planner.reply(a2.id, "me too")) is Reason.INSUFFICIENT_ROLE
    assert verdict(history, bob.post("me too")) is Reason.INSUFFICIENT_ROLE
    planner, _, _ = planner_for(bob, now=now)
    b2 = write(bob, planner.react(a2.id, "+1"), now=now)
    assert verdict(history, b2) is Reason.OK


def test_a_banned_member_is_refused_as_banned() -> None:
    """
     G
     |
     a1        a1: Alice adds Bob
     |
     a2        a2: Alice bans Bob; Bob syncs
     |
    (b1)       Bob means to post, or to join with an invitation: banned
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    alice.ban(bob)
    invite, code = alice.invite(invitation_secret(1), max_uses=0)
    bob.sync(alice)
    now = now_of(history)
    planner, state, _ = planner_for(bob, now=now)
    assert BOB.public_key in state.banned
    assert refused(lambda: planner.post("let me in")) is Reason.BANNED
    assert refused(lambda: planner.join(code)) is Reason.BANNED
    assert refused(lambda: planner.leave()) is Reason.BANNED
    assert verdict(history, bob.join(code, invite)) is Reason.BANNED


def test_an_equivocator_is_refused_as_equivocation() -> None:
    """
    G
    |
    a1            a1: Alice adds Bob as moderator
    |
    b1  b1'       Bob posts on two devices at seq 1: a fork (R10)
     \\ /
    (b2)          Bob means to post, hide, leave: equivocation;
                  Alice means to remove Bob: not found (expelled already)
    """
    history, alice, (bob,) = group_with(Role.MODERATOR)
    twin = bob.fork()
    twin.post("one")
    p = bob.post("other")
    bob.learn(list(history.entries))
    alice.learn(list(history.entries))
    now = now_of(history)
    planner, state, _ = planner_for(bob, now=now)
    assert BOB.public_key in state.equivocators
    assert refused(lambda: planner.post("still here")) is Reason.EQUIVOCATION
    assert refused(lambda: planner.leave()) is Reason.EQUIVOCATION
    assert refused(lambda: planner.invite(invitation_secret(2))) is Reason.EQUIVOCATION
    assert verdict(history, bob.hide(p)) is Reason.EQUIVOCATION
    a_planner, _, _ = planner_for(alice, now=now)
    with pytest.raises(NotFoundError):
        a_planner.remove(BOB.public_key)


def _invited(
    *, max_uses: int = 1, expires_at: int = 0
) -> tuple[History, Replica, Replica, Entry, InvitationCode]:
    history, alice = History.found(ALICE, name="garden club")
    invite, code = alice.invite(invitation_secret(7), max_uses=max_uses, expires_at=expires_at)
    dave = history.replica(DAVE)
    dave.sync(alice)
    return history, alice, dave, invite, code


def test_join_with_a_revoked_invitation() -> None:
    """
    G - a1 - a2 - (d1)    a1: Alice invites; a2: Alice revokes it; Dave syncs
                          Dave means to join: invitation-revoked
    """
    history, alice, dave, invite, code = _invited()
    alice.revoke_invite(invite)
    dave.sync(alice)
    planner, _, _ = planner_for(dave, now=now_of(history))
    assert refused(lambda: planner.join(code)) is Reason.INVITATION_REVOKED
    assert verdict(history, dave.join(code, invite)) is Reason.INVITATION_REVOKED


def test_join_with_a_used_up_invitation() -> None:
    """
    G - a1 - c1 - (d1)    a1: Alice invites (one use); c1: Carol joins with it
                          Dave, having synced, means to join: invitation-used-up
    """
    history, alice, dave, invite, code = _invited(max_uses=1)
    carol = history.replica(CAROL)
    carol.sync(alice)
    now = now_of(history)
    planner, _, _ = planner_for(carol, now=now)
    c1 = write(carol, planner.join(code, name="carol"), now=now)
    assert verdict(history, c1) is Reason.OK
    dave.sync(carol)
    planner, _, _ = planner_for(dave, now=now_of(history))
    assert refused(lambda: planner.join(code)) is Reason.INVITATION_USED_UP
    assert verdict(history, dave.join(code, invite)) is Reason.INVITATION_USED_UP


def test_join_under_an_issuer_who_lost_the_power() -> None:
    """
    G - a1 - b1 - a2 - (d1)   a1: Alice adds Bob as moderator; b1: Bob invites;
                              a2: Alice demotes Bob to member; Dave syncs
                              Dave means to join: inviter-revoked (R4)
    """
    history, alice, (bob,) = group_with(Role.MODERATOR)
    invite, code = bob.invite(invitation_secret(5))
    alice.sync(bob)
    alice.set_role(bob, Role.MEMBER)
    dave = history.replica(DAVE)
    dave.sync(alice)
    planner, state, _ = planner_for(dave, now=now_of(history))
    assert not state.invitations[invite.id].issuer_valid
    assert refused(lambda: planner.join(code)) is Reason.INVITER_REVOKED
    assert verdict(history, dave.join(code, invite)) is Reason.INVITER_REVOKED


def test_a_used_up_invitation_is_used_up_before_its_issuer_is_revoked() -> None:
    """
        G - a1 - b1 - c1 - a2 - (d1)
    a1: Alice adds Bob as moderator; b1: Bob invites (one use); c1: Carol joins with it;
    a2: Alice demotes Bob. Dave means to join: both J7 and J8 fail; J7 is checked
    first: invitation-used-up.
    """
    history, alice, (bob,) = group_with(Role.MODERATOR)
    invite, code = bob.invite(invitation_secret(6), max_uses=1)
    carol = history.replica(CAROL)
    carol.sync(bob)
    carol.join(code, invite)
    alice.sync(bob, carol)
    alice.set_role(bob, Role.MEMBER)
    dave = history.replica(DAVE)
    dave.sync(alice)
    planner, _, _ = planner_for(dave, now=now_of(history))
    assert refused(lambda: planner.join(code)) is Reason.INVITATION_USED_UP
    assert verdict(history, dave.join(code, invite)) is Reason.INVITATION_USED_UP


def test_join_with_an_expired_invitation() -> None:
    """
    G - a1 - (d1)         a1: Alice invites, expiring 10 s after a1
                          Dave means to join 20 s later: invitation-expired;
                          10 ms before the expiry: ok
    """
    history, _alice, dave, invite, code = _invited(expires_at=0)
    t1 = invite.header.timestamp
    history, _alice, dave, invite, code = _invited(expires_at=t1 + 10 * STEP)
    planner, _, _ = planner_for(dave, now=t1 + 20 * STEP)
    assert refused(lambda: planner.join(code)) is Reason.INVITATION_EXPIRED
    late = dave.join(code, invite, timestamp=t1 + 20 * STEP)
    assert verdict(history, late) is Reason.INVITATION_EXPIRED

    history, _alice, dave, invite, code = _invited(expires_at=t1 + 10 * STEP)
    now = t1 + 10 * STEP - 10
    planner, _, _ = planner_for(dave, now=now)
    assert verdict(history, write(dave, planner.join(code), now=now)) is Reason.OK


def test_a_rejoin_is_judged_at_the_time_it_will_carry() -> None:
    """
        G - a1 - b1 - a2 - a3 - (b2)
    a1: Alice adds Bob; b1: Bob posts, his clock then an hour fast (time t + 1 h);
    a2: Alice removes Bob; a3: Alice invites at t, expiring 10 s later. Bob, his
    clock right again (t + 1 s), means to join: his next entry cannot be older than b1,
    so it would carry t + 1 h: invitation-expired, although his clock is before the
    expiry.
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    b1 = bob.append(Kind.POST, Post(text="hello").encode(), timestamp=history.clock + 3600_000)
    alice.sync(bob)
    alice.remove(bob)
    invite, code = alice.invite(invitation_secret(3), expires_at=history.clock + 10 * STEP)
    bob.sync(alice)
    now = invite.header.timestamp + STEP
    assert now < Invite.decode(invite.body or b"").expires_at < b1.header.timestamp
    planner, _, _ = planner_for(bob, now=now)
    assert refused(lambda: planner.join(code)) is Reason.INVITATION_EXPIRED
    entry = bob.join(code, invite, timestamp=now)
    assert entry.header.timestamp == b1.header.timestamp
    assert verdict(history, entry) is Reason.INVITATION_EXPIRED


def test_a_join_is_never_older_than_its_invitation() -> None:
    """
    G - a1 - (d1)         a1: Alice invites at time t
                          Dave's clock says t - 1 hour: the join carries t (J5),
                          not his clock, and is ok rather than bad-timestamp
    """
    history, _alice, dave, invite, code = _invited()
    behind = invite.header.timestamp - 3600_000
    planner, _, _ = planner_for(dave, now=behind)
    intent = planner.join(code, name="dave")
    assert intent.min_timestamp == invite.header.timestamp
    d1 = write(dave, intent, now=behind)
    assert d1.header.timestamp == invite.header.timestamp
    assert verdict(history, d1) is Reason.OK
    # Written with the late clock, the same join would be void.
    history, _alice, dave, invite, code = _invited()
    early = dave.join(code, invite, timestamp=invite.header.timestamp - 3600_000)
    assert verdict(history, early) is Reason.BAD_TIMESTAMP


def test_the_cut_of_a_removal_covers_what_the_remover_holds() -> None:
    """
              G
              |
              a1            a1: Alice adds Bob
              |
              b1..b2        Bob posts twice; Alice syncs
             /      \\
           a2        b3     1 (a2): Alice removes Bob: the planner's cut is 2, Bob's
                            highest held sequence
                            2 (b3): Bob, concurrently, posts: revoked; b1, b2 stay ok
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    b1, b2 = bob.post("one"), bob.post("two")
    alice.sync(bob)
    now = now_of(history)
    planner, _, _ = planner_for(alice, now=now)
    intent = planner.remove(BOB.public_key, reason="spam")
    body = RemoveMember.decode(intent.body)
    assert body.cut == b2.header.seq == 2
    a2 = write(alice, intent, now=now)
    b3 = bob.post("three")
    state = resolve(history.entries)
    assert [state.verdicts[e.id].reason for e in (a2, b1, b2, b3)] == [
        Reason.OK,
        Reason.OK,
        Reason.OK,
        Reason.REVOKED,
    ]
    assert BOB.public_key not in state.members


def test_a_body_over_its_limit_is_invalid_and_nothing_is_planned() -> None:
    history, alice, _ = group_with(Role.MEMBER)
    before = len(history)
    planner, _, _ = planner_for(alice, now=now_of(history))
    with pytest.raises(ValidationError):
        planner.post("x" * (MAX_TEXT + 1))
    with pytest.raises(ValidationError):
        planner.set_metadata(name="n" * 65)
    with pytest.raises(ValidationError):
        planner.remove(BOB.public_key, reason="r" * 257)
    assert len(history) == before
    assert planner.post("x" * MAX_TEXT).kind == Kind.POST


def test_targets_that_are_not_applicable_are_not_found() -> None:
    """
        G
        |
        a1..a2    a1: Alice adds Bob as moderator; a2: Alice posts
        |
        b1        b1: Bob reacts to a2
    Bob cannot retract Alice's post, nor hide an operation or a reaction; anyone can
    delete a reaction (V1). Nothing held: not found.
    """
    history, alice, (bob,) = group_with(Role.MODERATOR)
    a2 = alice.post("hello")
    bob.sync(alice)
    b1 = bob.react(a2, "+1")
    a1 = history.entries[1]
    now = now_of(history)
    planner, _, _ = planner_for(bob, now=now)
    calls: list[Callable[[], Intent]] = [
        lambda: planner.retract(a2.id),
        lambda: planner.hide(a1.id),
        lambda: planner.unhide(b1.id),
        lambda: planner.delete(a1.id),
        lambda: planner.reply(NOWHERE, "?"),
        lambda: planner.react(b1.id, "+1"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    assert planner.retract(b1.id).kind == Kind.RETRACT
    assert planner.delete(b1.id).kind == Kind.DELETE
    assert planner.hide(a2.id).kind == Kind.HIDE


def test_an_invitation_expiring_before_it_is_made_is_invalid() -> None:
    history, alice, _ = group_with()
    now = now_of(history)
    planner, _, _ = planner_for(alice, now=now)
    with pytest.raises(ValidationError):
        planner.invite(invitation_secret(1), expires_at=now)
    intent = planner.invite(invitation_secret(1), expires_at=now + 1, hints=("127.0.0.1:7447",))
    assert intent.code is not None
    assert (intent.code.inviter, intent.code.expires_at, intent.code.hints) == (
        ALICE.public_key,
        now + 1,
        ("127.0.0.1:7447",),
    )
