"""Concurrency scenarios of spec/04-membership.md, one test per conflict rule.

Each test draws its DAG (time flows down; ``G`` is the genesis; an edge is a ``prev`` or
a link) and tells the story by number. Every scenario is checked three ways: the pure
``resolve`` over the set, the incremental machine in creation order, and the machine in
reverse order (everything waits, then resolves at once) -- they must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pcomm.core.content import visible_content
from p2pcomm.core.log import Entry
from p2pcomm.core.membership import (
    GroupState,
    MembershipMachine,
    Role,
    resolve,
)
from p2pcomm.testing.history import History, Replica, invitation_secret, named_keypair

ALICE = named_keypair("alice")
BOB = named_keypair("bob")
CAROL = named_keypair("carol")
DAVE = named_keypair("dave")
ERIN = named_keypair("erin")
NAMES = {
    k.public_key: n
    for n, k in [("alice", ALICE), ("bob", BOB), ("carol", CAROL), ("dave", DAVE), ("erin", ERIN)]
}


def settle(entries: Sequence[Entry]) -> GroupState:
    """Resolve, and check the incremental machine agrees in two delivery orders."""
    state = resolve(entries)
    for order in (list(entries), list(reversed(entries))):
        m = MembershipMachine()
        for e in order:
            m.apply(e)
        assert m.state == state
    return state


def roles(state: GroupState) -> dict[str, str]:
    return {NAMES[m]: info.role.name.lower() for m, info in state.members.items()}


def why(state: GroupState, entry: Entry) -> str:
    return state.verdicts[entry.id].reason.value


def group_with(*member_roles: Role) -> tuple[History, Replica, list[Replica]]:
    """Alice founds; Bob, Carol, ... are added by Alice with these roles; all sync."""
    history, alice = History.found(ALICE, name="garden club", founder_name="alice")
    out = []
    for kp, role in zip((BOB, CAROL, DAVE, ERIN), member_roles, strict=False):
        rep = history.replica(kp)
        alice.add(rep, role, name=NAMES[kp.public_key])
        out.append(rep)
    for rep in out:
        rep.sync(alice)
    return history, alice, out


def test_mutual_removal_of_two_admins_the_senior_wins() -> None:
    """
            G
            |
            a1
           /  \\
         a2    b1
                |
                b2
    a1: Alice adds Bob as admin (Alice, the founder, is senior: her grant is G)
    1 (a2): Alice removes Bob
    2 (b1): Bob, concurrently, removes Alice
    b2: Bob posts, still not having seen a2
    R6: the cycle a2 <-> b1 is broken by excluding the junior's operation; then
    R2 voids Bob's concurrent post. Alice stays admin, Bob is out.
    """
    history, alice, (bob,) = group_with(Role.ADMIN)
    a2 = alice.remove(bob)
    b1 = bob.remove(alice)
    b2 = bob.post("I run this place now")
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin"}
    assert why(state, a2) == "ok"
    assert why(state, b1) == "conflict"
    assert why(state, b2) == "revoked"


def test_mutual_removal_between_non_founders_goes_by_seniority() -> None:
    """
              G
              |
              a1..a2
             /      \\
           b1        c1
    a1: Alice adds Bob as admin; a2: then Carol as admin (Bob is senior to Carol)
    1 (b1): Bob removes Carol
    2 (c1): Carol, concurrently, removes Bob
    Bob's removal stands whichever was written first.
    """
    history, _alice, (bob, carol) = group_with(Role.ADMIN, Role.ADMIN)
    c1 = carol.remove(bob)
    b1 = bob.remove(carol)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "admin"}
    assert (why(state, b1), why(state, c1)) == ("ok", "conflict")


def test_circular_removal_of_three_admins() -> None:
    """
                 G
                 |
              a1..a3
            /    |    \\
          b1     c1    d1
    a1..a3: Alice adds Bob, Carol, Dave as admins, in that order
    1 (b1): Bob removes Carol
    2 (c1): Carol removes Dave
    3 (d1): Dave removes Bob          (all concurrent: a cycle of three)
    R6 excludes the most junior participant's removal (Dave's); then Bob's removal
    of Carol voids Carol's concurrent removal of Dave. Bob and Dave stay, Carol goes.
    """
    history, _alice, (bob, carol, dave) = group_with(Role.ADMIN, Role.ADMIN, Role.ADMIN)
    b1 = bob.remove(carol)
    c1 = carol.remove(dave)
    d1 = dave.remove(bob)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "admin", "dave": "admin"}
    assert [why(state, e) for e in (b1, c1, d1)] == ["ok", "revoked", "conflict"]


def test_removal_voids_concurrent_actions_of_the_removed_admin() -> None:
    """
            G
            |
            a1
           /  \\
         a2    b1
                |
                d1
    a1: Alice adds Bob as admin
    1 (a2): Alice removes Bob
    2 (b1): Bob, concurrently, adds Dave
    d1: Dave, having seen b1, posts
    Strong removal (R2): b1 is void, so Dave never became a member (R1).
    """
    history, alice, (bob,) = group_with(Role.ADMIN)
    a2 = alice.remove(bob)
    dave = history.replica(DAVE)
    b1 = bob.add(dave, Role.MEMBER)
    dave.sync(bob)
    d1 = dave.post("hi, Bob let me in")
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin"}
    assert (why(state, a2), why(state, b1), why(state, d1)) == ("ok", "revoked", "not-a-member")


def test_removal_wins_over_a_concurrent_promotion_of_the_same_member() -> None:
    """
              G
              |
            a1,a2
            /    \\
          a3      b1
                   |
                   c1
    a1: Alice adds Bob as admin; a2: Alice adds Carol as member
    1 (a3): Alice removes Carol
    2 (b1): Bob, concurrently, promotes Carol to moderator
    c1: Carol, who saw only b1, hides a post
    R3: of two concurrent assignments the lowest wins, so Carol is out; R2
    voids her concurrent moderation.
    """
    history, alice, (bob, carol) = group_with(Role.ADMIN, Role.MEMBER)
    post = alice.post("welcome")
    bob.sync(alice)
    carol.sync(alice)
    a3 = alice.remove(carol)
    b1 = bob.set_role(carol, Role.MODERATOR)
    carol.sync(bob)
    c1 = carol.hide(post)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "admin"}
    assert (why(state, a3), why(state, b1), why(state, c1)) == ("ok", "ok", "revoked")
    _, view = visible_content(history.entries)
    assert [i.hidden for i in view.items] == [False]


def test_removal_wins_over_a_concurrent_re_add() -> None:
    """
                G
                |
              a1..a3
              /    \\
            a4      b2
    a1: Alice adds Bob as admin; a2: Alice adds Carol; a3: Alice removes Carol
    1 (b2): Bob, having seen a3, adds Carol back
    2 (a4): Alice, concurrently, bans Carol
    b2 and a4 are concurrent assignments to Carol: the ban (lowest) wins (R3).
    """
    history, alice, (bob, carol) = group_with(Role.ADMIN, Role.MEMBER)
    alice.remove(carol)
    bob.sync(alice)
    b2 = bob.add(carol, Role.MEMBER)
    a4 = alice.ban(carol)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "admin"}
    assert state.banned == {CAROL.public_key}
    assert (why(state, b2), why(state, a4)) == ("ok", "ok")


def test_invitation_use_concurrent_with_removal_of_its_issuer() -> None:
    """
              G
              |
              a1
              |
              b1
             /  \\
           a2    d1
    a1: Alice adds Bob as admin
    b1: Bob issues an invitation; Dave receives the code
    1 (a2): Alice removes Bob (she saw b1)
    2 (d1): Dave, concurrently, joins with Bob's invitation
    R4: a join acts under its issuer; the issuer's concurrent removal voids it.
    """
    history, alice, (bob,) = group_with(Role.ADMIN)
    b1, code = bob.invite(invitation_secret(1))
    alice.sync(bob)
    a2 = alice.remove(bob)
    dave = history.replica(DAVE)
    dave.sync(bob)
    d1 = dave.join(code, b1)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin"}
    assert (why(state, a2), why(state, d1)) == ("ok", "inviter-revoked")
    assert not state.invitations[b1.id].issuer_valid


def test_invitation_used_before_the_issuer_was_removed_stands() -> None:
    """
            G - a1 - b1 - d1 - a2
    b1: Bob (admin) issues an invitation; d1: Dave joins with it
    a2: Alice removes Bob, having seen d1
    The join is in the removal's past: Dave stays (removal does not cascade).
    """
    history, alice, (bob,) = group_with(Role.ADMIN)
    b1, code = bob.invite(invitation_secret(1))
    dave = history.replica(DAVE)
    dave.sync(bob)
    d1 = dave.join(code, b1)
    alice.sync(dave)
    a2 = alice.remove(bob)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "dave": "member"}
    assert (why(state, d1), why(state, a2)) == ("ok", "ok")


def test_re_join_concurrent_with_removal_is_void() -> None:
    """
                G
                |
               a1..a3
              /      \\
            a4        b1
    a1: Alice adds Bob as member; a2: Alice issues an invitation, Bob gets the code
    b0: Bob leaves; a3: Alice sees the leave
    1 (b1): Bob joins again with the invitation
    2 (a4): Alice, concurrently, bans Bob
    The join is concurrent with an assignment lower than what it asks: void (R2).
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    inv, code = alice.invite(invitation_secret(2))
    bob.sync(alice)
    bob.leave()
    alice.sync(bob)
    a4 = alice.ban(bob)
    b1 = bob.join(code, inv)
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin"}
    assert (why(state, a4), why(state, b1)) == ("ok", "revoked")


def test_posts_of_a_removed_member_concurrent_with_the_removal() -> None:
    """
              G
              |
              a1
              |
              b1
             /  \\
           a2    b2
    a1: Alice adds Bob; b1: Bob posts (Alice sees it)
    1 (a2): Alice removes Bob, cut = 1 (the last of Bob's entries she saw)
    2 (b2): Bob, concurrently, posts again
    Strong removal for content too: b1 stays, b2 is void.
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    b1 = bob.post("first")
    alice.sync(bob)
    a2 = alice.remove(bob)
    b2 = bob.post("second, after I was removed")
    state = settle(history.entries)
    assert (why(state, b1), why(state, a2), why(state, b2)) == ("ok", "ok", "revoked")
    _, view = visible_content(history.entries)
    assert [i.text for i in view.items] == ["first"]


def test_remove_then_re_add() -> None:
    """
              G
              |
              a1
             /  \\
           a2    b1
           |
           a3
           |
           b2
    a1: Alice adds Bob
    1 (a2): Alice removes Bob
    2 (b1): Bob, concurrently, posts
    3 (a3): Alice adds Bob again
    4 (b2): Bob, having synced, posts
    R7: Bob is a member again; b2 counts; b1 stays void (a re-add does not revive
    what was written concurrently with the removal).
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    a2 = alice.remove(bob)
    b1 = bob.post("written while being removed")
    a3 = alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    b2 = bob.post("back again")
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "member"}
    assert [why(state, e) for e in (a2, b1, a3, b2)] == ["ok", "revoked", "ok", "ok"]


def test_demotion_racing_the_demoted_admins_own_actions() -> None:
    """
              G
              |
              a1
             /  \\
           a2    b1..b2
    a1: Alice adds Bob as admin
    1 (a2): Alice demotes Bob to member
    2 (b1): Bob, concurrently, adds Dave (needs admin)
    3 (b2): Bob posts (needs member)
    R2 undoes only what the new level no longer allows: b1 void, b2 stands.
    """
    history, alice, (bob,) = group_with(Role.ADMIN)
    a2 = alice.set_role(bob, Role.MEMBER)
    b1 = bob.add(DAVE.public_key, Role.MEMBER)
    b2 = bob.post("still here")
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "bob": "member"}
    assert [why(state, e) for e in (a2, b1, b2)] == ["ok", "revoked", "ok"]


def test_last_admin_leaves_and_a_successor_claims() -> None:
    """
            G - a1 - a2 - a3
                            \\
                             b1 (Bob)     c1 (Carol)
    a1: Alice adds Bob as moderator; a2: Carol as member
    a3: Alice, the only admin, leaves (R9: leaving is never refused); the group is
        headless
    1 (b1): Bob, the member with the highest remaining level, claims admin
    2 (c1): Carol claims admin too: refused, Bob outranks her
    A claim made before the leave is refused (the group had an admin).
    """
    history, alice, (bob, carol) = group_with(Role.MODERATOR, Role.MEMBER)
    early = carol.claim_admin()
    a3 = alice.leave()
    bob.sync(alice)
    carol.sync(alice)
    headless = resolve(history.entries)
    assert headless.headless and roles(headless) == {"bob": "moderator", "carol": "member"}
    c1 = carol.claim_admin()
    b1 = bob.claim_admin()
    state = settle(history.entries)
    assert roles(state) == {"bob": "admin", "carol": "member"}
    assert [why(state, e) for e in (early, a3, b1, c1)] == [
        "not-headless",
        "ok",
        "ok",
        "not-headless",
    ]


def test_the_last_admin_cannot_be_removed_by_a_moderator() -> None:
    """
            G - a1 - b1
    a1: Alice adds Bob as moderator
    b1: Bob tries to remove Alice (an admin): insufficient role
    """
    history, alice, (bob,) = group_with(Role.MODERATOR)
    b1 = bob.remove(alice)
    state = settle(history.entries)
    assert why(state, b1) == "insufficient-role"
    assert roles(state) == {"alice": "admin", "bob": "moderator"}


def test_equivocating_admin_is_expelled_from_the_fork_on() -> None:
    """
                 G
                 |
                 a1
                 |
                 b1          (Bob's seq 1 .. 2: a post)
               /    \\
            b3'      b3''    (two different entries at Bob's seq 3)
    a1: Alice adds Bob as admin
    b2: Bob adds Carol (before the fork: counts)
    1 (b3'): Bob adds Dave on one branch
    2 (b3''): Bob removes Carol on the other
    R10: both branches are void from the forked sequence on; Bob is out; what he
    did before the fork (adding Carol) stands.
    """
    history, _alice, (bob,) = group_with(Role.ADMIN)
    b2 = bob.add(CAROL.public_key, Role.MEMBER)
    twin = bob.fork()
    b3a = bob.add(DAVE.public_key, Role.MEMBER)
    b3b = twin.remove(CAROL.public_key)
    assert b3a.header.seq == b3b.header.seq
    state = settle(history.entries)
    assert roles(state) == {"alice": "admin", "carol": "member"}
    assert state.equivocators == {BOB.public_key: b3a.header.seq}
    assert [why(state, e) for e in (b2, b3a, b3b)] == ["ok", "equivocation", "equivocation"]


def test_equivocation_of_the_only_admin_makes_the_group_headless() -> None:
    """
            G - a1 - (a2' | a2'')
                  \\
                   b1 (claim, after seeing both branches)
    a1: Alice adds Bob as member
    a2', a2'': Alice forks (two posts at one sequence)
    b1: Bob claims admin: Alice no longer counts (R10), so the group is headless
    """
    history, alice, (bob,) = group_with(Role.MEMBER)
    twin = alice.fork()
    a2a = alice.post("one")
    a2b = twin.post("two")
    bob.sync(alice, twin)
    b1 = bob.claim_admin()
    state = settle(history.entries)
    assert roles(state) == {"bob": "admin"}
    assert [why(state, e) for e in (a2a, a2b, b1)] == ["equivocation", "equivocation", "ok"]


def test_ban_outlives_invitations_but_not_an_explicit_add() -> None:
    """
            G - a1 - a2 - a3 - c1 - a4 - c2
    a1: Alice issues an invitation; Carol gets the code
    a2: Alice bans Carol (Carol was never a member: a pre-emptive ban)
    c1: Carol joins with the invitation: refused (R8)
    a4: Alice adds Carol explicitly: the ban is lifted
    c2: Carol posts
    """
    history, alice = History.found(ALICE, name="club")
    inv, code = alice.invite(invitation_secret(3), max_uses=5)
    a2 = alice.ban(CAROL.public_key)
    carol = history.replica(CAROL)
    carol.sync(alice)
    c1 = carol.join(code, inv)
    alice.sync(carol)
    before = settle(history.entries)
    assert before.banned == {CAROL.public_key}
    a4 = alice.add(carol, Role.MEMBER)
    carol.sync(alice)
    c2 = carol.post("thanks")
    state = settle(history.entries)
    assert [why(state, e) for e in (a2, c1, a4, c2)] == ["ok", "banned", "ok", "ok"]
    assert roles(state) == {"alice": "admin", "carol": "member"} and not state.banned


def test_two_camps_removing_each_other_through_delegation() -> None:
    """
                    G
                    |
                 a1..a4            Alice adds Bob and Carol as admins, Dave and Erin
               /        \\          as members
        c1 (Carol promotes Dave)   b1 (Bob promotes Erin)
             |                          |
        d1 (Dave removes Bob)      e1 (Erin removes Carol)
    c1 and e1 are concurrent, and so are b1 and d1: each camp's removal voids the
    other camp's promotion, which its own removal needed -- a cycle through
    delegation (no operation is directly mutual). R6 excludes the most junior
    participant: Dave and Erin were promoted concurrently, so their grants tie on
    history and the T key (entry id) decides. The junior's removal is excluded, the
    senior's stands and voids the other camp's promotion.
    """
    history, alice, (bob, carol) = group_with(Role.ADMIN, Role.ADMIN)
    dave = history.replica(DAVE)
    erin = history.replica(ERIN)
    alice.add(dave, Role.MEMBER)
    alice.add(erin, Role.MEMBER)
    for r in (bob, carol, dave, erin):
        r.sync(alice)
    c1 = carol.set_role(dave, Role.ADMIN)
    b1 = bob.set_role(erin, Role.ADMIN)
    dave.sync(carol)
    erin.sync(bob)
    d1 = dave.remove(bob)
    e1 = erin.remove(carol)
    state = settle(history.entries)
    # Equal histories: the larger entry id is the junior grant.
    if c1.id > b1.id:  # Dave is junior: Erin's camp wins
        assert [why(state, e) for e in (c1, b1, d1, e1)] == ["revoked", "ok", "conflict", "ok"]
        assert roles(state) == {"alice": "admin", "bob": "admin", "dave": "member", "erin": "admin"}
    else:  # Erin is junior: Dave's camp wins
        assert [why(state, e) for e in (c1, b1, d1, e1)] == ["ok", "revoked", "ok", "conflict"]
        assert roles(state) == {
            "alice": "admin",
            "carol": "admin",
            "dave": "admin",
            "erin": "member",
        }


def test_concurrent_joins_beyond_max_uses_go_by_order() -> None:
    """
                 G - a1
                /   |   \\
              c1    d1    e1        three concurrent joins, max_uses = 2
    Uses are counted in the order T (R5): the two first in T get in, whatever
    order they arrive in; the third is refused as used up.
    """
    history, alice = History.found(ALICE, name="club")
    inv, code = alice.invite(invitation_secret(4), max_uses=2)
    joins = []
    for kp in (CAROL, DAVE, ERIN):
        r = history.replica(kp)
        r.sync(alice)
        joins.append(r.join(code, inv))
    state = settle(history.entries)
    reasons = sorted(why(state, j) for j in joins)
    assert reasons == ["invitation-used-up", "ok", "ok"]
    assert state.invitations[inv.id].uses == 2


def test_revocation_wins_over_a_concurrent_join() -> None:
    """
              G - a1
                 /  \\
               a2    c1
    a1: Alice issues an invitation; Carol gets the code
    1 (a2): Alice revokes it
    2 (c1): Carol, concurrently, joins with it
    R5: the revocation wins. A join made after seeing the revocation is refused too.
    """
    history, alice = History.found(ALICE, name="club")
    inv, code = alice.invite(invitation_secret(5))
    carol = history.replica(CAROL)
    carol.sync(alice)
    a2 = alice.revoke_invite(inv)
    c1 = carol.join(code, inv)
    dave = history.replica(DAVE)
    dave.sync(alice)
    d1 = dave.join(code, inv)
    state = settle(history.entries)
    assert [why(state, e) for e in (a2, c1, d1)] == [
        "ok",
        "invitation-revoked",
        "invitation-revoked",
    ]
    assert roles(state) == {"alice": "admin"}


def test_expired_invitation_and_backdated_join() -> None:
    """
            G - a1 - c1        (Carol joins after the expiry)
                  \\
                   d1          (Dave's join claims a time before the invitation)
    Expiry compares the join's claimed timestamp with ``expires_at`` (R5); a join
    claiming a time before its invitation is refused.
    """
    history, alice = History.found(ALICE, name="club")
    inv, code = alice.invite(invitation_secret(6), max_uses=0, expires_at=history.clock + 5_000)
    carol = history.replica(CAROL)
    carol.sync(alice)
    c1 = carol.join(code, inv, timestamp=history.clock + 10_000)
    dave = history.replica(DAVE)
    dave.sync(alice)
    d1 = dave.join(code, inv, timestamp=inv.header.timestamp - 1)
    state = settle(history.entries)
    assert (why(state, c1), why(state, d1)) == ("invitation-expired", "bad-timestamp")


def test_join_with_a_wrong_code_and_without_the_invitation() -> None:
    """
    G - a1 - c1 (proof made with another secret)
          \\- d1 (names an invitation that is not in its past)
    """
    history, alice = History.found(ALICE, name="club")
    inv, _code = alice.invite(invitation_secret(7))
    _, wrong = History.found(ALICE, name="club")[1].invite(invitation_secret(8))
    carol = history.replica(CAROL)
    carol.sync(alice)
    c1 = carol.join(wrong, inv)
    dave = history.replica(DAVE)
    dave.learn([history.genesis])
    d1 = dave.join(_code, b"\x07" * 32)
    state = settle(history.entries)
    assert (why(state, c1), why(state, d1)) == ("bad-proof", "invitation-unknown")


def test_moderator_removed_concurrently_with_a_delete() -> None:
    """
              G - a1 - a2 - c1
                        /  \\
                      a3    b1
    a1: Alice adds Bob as moderator; a2: Carol as member; c1: Carol posts
    1 (a3): Alice demotes Bob to member
    2 (b1): Bob, concurrently, deletes Carol's post
    The delete needs a moderator: void by R2; the post stays.
    """
    history, alice, (bob, carol) = group_with(Role.MODERATOR, Role.MEMBER)
    c1 = carol.post("my garden")
    bob.sync(carol)
    alice.sync(carol)
    a3 = alice.set_role(bob, Role.MEMBER)
    b1 = bob.delete(c1)
    state, view = visible_content(history.entries)
    assert settle(history.entries) == state
    assert (why(state, a3), why(state, b1)) == ("ok", "revoked")
    assert [i.text for i in view.items] == ["my garden"] and not view.drop_bodies
