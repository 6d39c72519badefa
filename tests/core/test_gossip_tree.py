"""The rooted broadcast tree (spec 07 section 7.4, B10 to B14), one input at a time."""

from __future__ import annotations

import random

from p2pcomm.core.gossip import (
    Broadcast,
    GossipConfig,
    GossipState,
    PeerDown,
    PeerUp,
    PlumtreeConfig,
    Received,
    SetTimer,
    TimerFired,
    Verdict,
)
from p2pcomm.core.gossip import messages as m
from tests.core.gossip_helpers import pid, sends

ME = bytes([0x80]) * 32  # waits root_timeout + half a beacon period before standing
ROOT = bytes(31) + b"\x05"
EID = bytes([0xEE]) * 32
EID2 = bytes([0xEF]) * 32


def make(neighbours: int = 3, size: int = 10, **plumtree: int) -> GossipState:
    cfg = GossipConfig(plumtree=PlumtreeConfig(**plumtree))
    g = GossipState(
        ME, "me:1", rng=random.Random(1), admit=lambda p: True, config=cfg, size=lambda: size
    )
    for n in range(1, neighbours + 1):
        g.handle(0, PeerUp(pid(n), outbound=False))
        g.handle(0, Received(pid(n), m.Neighbor(True, f"p{n}:1")))
    return g


def rooted(neighbours: int = 3, parent: int = 1, **kw: int) -> GossipState:
    """A node whose parent is ``parent``, at distance 2 from ``ROOT``."""
    g = make(neighbours, **kw)
    g.handle(100, Received(pid(parent), m.Beacon(ROOT, 1, 1)))
    return g


def test_first_beacon_attaches_to_its_sender_and_leaves_flooding() -> None:
    g = make()
    out = g.handle(100, Received(pid(2), m.Beacon(ROOT, 1, 1)))
    got = sends(out)
    assert (pid(2), m.Graft(None, 0)) in got
    # the other links stop being eager, and hear the beacon one hop further
    assert (pid(1), m.Prune()) in got and (pid(3), m.Prune()) in got
    assert (pid(1), m.Beacon(ROOT, 1, 2)) in got and (pid(3), m.Beacon(ROOT, 1, 2)) in got
    assert all(p != pid(2) for p, msg in got if isinstance(msg, m.Beacon))
    t = g.tree
    assert (t.root, t.seq, t.dist, t.parent) == (ROOT, 1, 2, pid(2))
    assert list(t.eager) == [pid(2)]


def test_a_larger_root_or_an_old_number_is_ignored() -> None:
    g = rooted()
    assert sends(g.handle(110, Received(pid(3), m.Beacon(pid(5), 9, 0)))) == []
    assert sends(g.handle(111, Received(pid(3), m.Beacon(ROOT, 1, 0)))) == []
    assert g.tree.parent == pid(1)
    # a smaller root wins at once; the next number of the same root comes first from 3
    out = g.handle(112, Received(pid(3), m.Beacon(bytes(32), 1, 4)))
    assert (pid(3), m.Graft(None, 0)) in sends(out) and (pid(1), m.Prune()) in sends(out)
    assert (g.tree.root, g.tree.dist, g.tree.parent) == (bytes(32), 5, pid(3))


def test_next_beacon_first_from_another_neighbour_moves_the_parent() -> None:
    g = rooted()
    t = 100 + g.config.plumtree.beacon_ms
    out = g.handle(t, Received(pid(2), m.Beacon(ROOT, 2, 1)))
    assert (pid(2), m.Graft(None, 0)) in sends(out) and (pid(1), m.Prune()) in sends(out)
    assert g.tree.parent == pid(2)
    # the same number again from the old parent changes nothing and is not forwarded
    assert sends(g.handle(t + 1, Received(pid(1), m.Beacon(ROOT, 2, 1)))) == []


def test_beacons_faster_than_half_a_period_are_not_forwarded() -> None:
    # A member sending beacons with ever larger numbers, or ever smaller made-up
    # roots, would otherwise have every node of the group forward each one.
    g = rooted()
    c = g.config.plumtree
    for seq in range(2, 50):
        assert sends(g.handle(100 + seq, Received(pid(3), m.Beacon(ROOT, seq, 0)))) == []
    assert (g.tree.seq, g.tree.parent) == (1, pid(1))
    out = g.handle(100 + c.beacon_ms // 2, Received(pid(3), m.Beacon(ROOT, 50, 0)))
    assert (pid(2), m.Beacon(ROOT, 50, 1)) in sends(out)
    # smaller roots: one change, then none for stand_ms
    t = 100 + c.beacon_ms
    out = g.handle(t, Received(pid(3), m.Beacon(bytes(32), 1, 0)))
    assert g.tree.root == bytes(32) and sends(out)
    fake = bytes(31) + b"\x01"  # larger than the new root: ignored anyway
    assert sends(g.handle(t + 1, Received(pid(2), m.Beacon(fake, 1, 0)))) == []
    g2 = rooted()
    roots = [bytes(31) + bytes([k]) for k in (4, 3, 2, 1)]
    out = g2.handle(200, Received(pid(3), m.Beacon(roots[0], 1, 0)))
    assert g2.tree.root == roots[0]
    for k, r in enumerate(roots[1:]):
        assert sends(g2.handle(201 + k, Received(pid(3), m.Beacon(r, 1, 0)))) == []
    assert g2.tree.root == roots[0]
    g2.handle(200 + c.stand_ms, Received(pid(3), m.Beacon(roots[3], 1, 0)))
    assert g2.tree.root == roots[3]


def test_a_node_with_no_root_stands_after_the_timeout_and_then_beacons() -> None:
    g = make()
    c = g.config.plumtree
    stand = c.stand_ms + 0x80 * c.stand_ms // 256  # the first neighbour came at 0
    out = g.handle(stand - 1, TimerFired(("beacon",)))  # early: nothing, and again later
    assert sends(out) == [] and g.tree.root is None
    assert SetTimer(("beacon",), stand) in out
    t = stand
    out = g.handle(t, TimerFired(("beacon",)))
    assert SetTimer(("beacon",), t + c.beacon_ms) in out
    assert sorted((p, msg) for p, msg in sends(out) if isinstance(msg, m.Beacon)) == [
        (pid(n), m.Beacon(ME, 1, 0)) for n in (1, 2, 3)
    ]
    assert sorted(p for p, msg in sends(out) if isinstance(msg, m.Prune)) == [
        pid(1),
        pid(2),
        pid(3),
    ]
    out = g.handle(t + c.beacon_ms, TimerFired(("beacon",)))
    assert sorted(sends(out)) == [(pid(n), m.Beacon(ME, 2, 0)) for n in (1, 2, 3)]


def test_a_root_yields_to_a_smaller_one() -> None:
    g = make()
    c = g.config.plumtree
    for t in range(c.beacon_ms, 20 * c.beacon_ms, c.beacon_ms):
        g.handle(t, TimerFired(("beacon",)))
    assert g.tree.root == ME
    g.handle(50_000, Received(pid(3), m.Beacon(pid(1), 7, 1)))
    assert (g.tree.root, g.tree.parent) == (pid(1), pid(3))
    out = g.handle(50_000 + c.beacon_ms, TimerFired(("beacon",)))
    assert [msg for _, msg in sends(out) if isinstance(msg, m.Beacon)] == []


def test_a_silent_root_is_replaced() -> None:
    g = rooted()
    c = g.config.plumtree
    t = 100
    while g.tree.root != ME:
        t += c.beacon_ms
        g.handle(t, TimerFired(("beacon",)))
    assert t - 100 > c.root_timeout
    assert g.tree.parent is None and g.tree.dist == 0


def test_entries_follow_the_tree_and_announcements_the_rest() -> None:
    g = rooted()
    g.handle(120, Received(pid(3), m.Graft(None, 0)))  # 3 attaches to us
    assert g.tree.children == {pid(3): None}
    out = g.handle(130, Broadcast(EID, b"p"))
    assert sorted(sends(out)) == [(pid(n), m.Gossip(EID, 0, b"p")) for n in (1, 3)]
    out = g.handle(135, TimerFired(("ihave",)))
    assert sends(out) == [(pid(2), m.IHave(((EID, 0),)))]


def test_tree_duplicates_and_graft_answers_prune_nothing() -> None:
    g = rooted()
    g.handle(120, Received(pid(3), m.Graft(None, 0)))
    g.handle(130, Received(pid(1), m.Gossip(EID, 5, b"p")))
    g.handle(131, Verdict(EID, ok=True))
    # waves meeting on the tree: a copy from the child
    assert sends(g.handle(132, Received(pid(3), m.Gossip(EID, 5, b"p")))) == []
    # an answer to our GRAFT that crossed the parent's copy
    g.handle(140, Received(pid(2), m.IHave(((EID2, 3),))))
    out = g.handle(140 + g.config.plumtree.graft_timeout_1, TimerFired(("graft", EID2)))
    assert sends(out) == [(pid(2), m.Graft(EID2, 3))]
    assert pid(2) in g.tree.lazy  # a graft for one entry does not change the tree
    g.handle(230, Received(pid(1), m.Gossip(EID2, 5, b"q")))
    g.handle(231, Verdict(EID2, ok=True))
    assert sends(g.handle(240, Received(pid(2), m.Gossip(EID2, 3, b"q")))) == []


def test_a_push_from_off_the_tree_is_pruned() -> None:
    g = rooted()
    g.handle(130, Received(pid(1), m.Gossip(EID, 5, b"p")))
    g.handle(131, Verdict(EID, ok=True))
    assert sends(g.handle(132, Received(pid(2), m.Gossip(EID, 5, b"p")))) == [(pid(2), m.Prune())]


def test_parent_lost_attaches_to_a_closer_neighbour_only() -> None:
    g = rooted(neighbours=4)
    g.handle(101, Received(pid(2), m.Beacon(ROOT, 1, 2)))  # as far as we are: no
    g.handle(102, Received(pid(3), m.Beacon(ROOT, 1, 0)))  # closer: yes
    g.handle(103, Received(pid(4), m.Graft(None, 0)))  # our child
    out = g.handle(200, PeerDown(pid(1)))
    # one lazy neighbour left (2): it asks its new parent to announce as well
    assert (pid(3), m.Graft(None, 1)) in sends(out)
    assert (g.tree.parent, g.tree.dist) == (pid(3), 1)


def test_parent_lost_with_no_closer_neighbour_waits_for_the_next_beacon() -> None:
    g = rooted()
    g.handle(101, Received(pid(2), m.Beacon(ROOT, 1, 2)))
    out = g.handle(200, PeerDown(pid(1)))
    assert not [p for p, msg in sends(out) if isinstance(msg, m.Graft)]
    assert g.tree.parent is None


def test_a_parent_that_forgot_us_is_asked_again() -> None:
    g = rooted()
    out = g.handle(150, Received(pid(1), m.IHave(((EID, 2),))))
    assert (pid(1), m.Graft(None, 0)) in sends(out)
    out = g.handle(160, Received(pid(1), m.Prune()))
    assert sends(out) == [(pid(1), m.Graft(None, 0))]
    assert g.tree.parent == pid(1)


def test_the_authors_first_hops_flood_in_a_large_group() -> None:
    big = rooted(size=1000)
    assert big.tree.flood_rounds() == 3
    out = big.handle(130, Broadcast(EID, b"p"))
    assert sorted(sends(out)) == [(pid(n), m.Gossip(EID, 0, b"p")) for n in (1, 2, 3)]
    # a copy at round 3 follows the tree only
    big.handle(140, Received(pid(1), m.Gossip(EID2, 2, b"q")))
    out = big.handle(141, Verdict(EID2, ok=True))
    assert sends(out) == []  # no children; 2 and 3 hear IHAVE
    # a flooded copy is no reason to prune its sender
    assert sends(big.handle(142, Received(pid(2), m.Gossip(EID2, 1, b"q")))) == []
    small = rooted(size=47)
    assert small.tree.flood_rounds() == 0
    assert [rooted(size=n).tree.flood_rounds() for n in (48, 191, 192, 767, 768, 10**6)] == [
        1,
        1,
        2,
        2,
        3,
        3,
    ]


def test_a_child_with_one_announcer_asks_its_parent_to_announce_too() -> None:
    # the child's side: parent 1 and one lazy neighbour
    g = make(neighbours=2)
    out = g.handle(100, Received(pid(1), m.Beacon(ROOT, 1, 1)))
    assert (pid(1), m.Graft(None, 1)) in sends(out)
    # its parent's announcements are then no sign of a lost attachment
    out = g.handle(150, Received(pid(1), m.IHave(((EID, 2),))))
    assert not [msg for _, msg in sends(out) if isinstance(msg, m.Graft)]
    # the parent's side: a child that asked gets the entry and its announcement
    p = rooted()
    p.handle(120, Received(pid(2), m.Graft(None, 1)))
    p.handle(121, Received(pid(3), m.Graft(None, 0)))
    out = p.handle(130, Broadcast(EID, b"p"))
    assert sorted(sends(out)) == [(pid(n), m.Gossip(EID, 0, b"p")) for n in (1, 2, 3)]
    out = p.handle(135, TimerFired(("ihave",)))
    assert sends(out) == [(pid(2), m.IHave(((EID, 0),)))]
    # attaching again without the request ends it
    p.handle(140, Received(pid(2), m.Graft(None, 0)))
    p.handle(141, Broadcast(EID2, b"q"))
    assert sends(p.handle(146, TimerFired(("ihave",)))) == []
