"""Broadcast tree transitions (spec 07 section 7.4), one input at a time."""

from __future__ import annotations

import random

from p2pcomm.core.gossip import (
    Broadcast,
    Deliver,
    Disconnect,
    GossipConfig,
    GossipState,
    Offer,
    PeerUp,
    PlumtreeConfig,
    Received,
    SetTimer,
    TimerFired,
    Verdict,
)
from p2pcomm.core.gossip import messages as m
from tests.core.gossip_helpers import pid, sends

ME = pid(0)
EID = bytes([0xEE]) * 32
EID2 = bytes([0xEF]) * 32


def make(neighbours: int = 3, **plumtree: int) -> GossipState:
    cfg = GossipConfig(plumtree=PlumtreeConfig(**plumtree))
    g = GossipState(ME, "me:1", rng=random.Random(1), admit=lambda p: p != pid(99), config=cfg)
    for n in range(1, neighbours + 1):
        g.handle(0, PeerUp(pid(n), outbound=False))
        g.handle(0, Received(pid(n), m.Neighbor(True, f"p{n}:1")))
    return g


def test_broadcast_goes_eager_to_all_neighbours() -> None:
    g = make()
    out = g.handle(10, Broadcast(EID, b"payload"))
    assert sorted(sends(out)) == [(pid(n), m.Gossip(EID, 0, b"payload")) for n in (1, 2, 3)]


def test_nothing_forwarded_before_the_verdict() -> None:
    g = make()
    out = g.handle(10, Received(pid(1), m.Gossip(EID, 0, b"p")))
    assert out == [Offer(EID, b"p", pid(1))]
    out = g.handle(11, Verdict(EID, ok=True))
    assert Deliver(EID, pid(1), 1) in out
    assert sorted(sends(out)) == [(pid(n), m.Gossip(EID, 1, b"p")) for n in (2, 3)]


def test_rejected_entry_blames_sender_and_offers_next_copy() -> None:
    g = make()
    g.handle(10, Received(pid(1), m.Gossip(EID, 0, b"bad")))
    g.handle(11, Received(pid(2), m.Gossip(EID, 0, b"good")))
    out = g.handle(12, Verdict(EID, ok=False))
    assert Disconnect(pid(1)) in out
    assert Offer(EID, b"good", pid(2)) in out
    assert not sends(out)  # nothing forwarded
    out = g.handle(13, Verdict(EID, ok=True))
    assert Deliver(EID, pid(2), 1) in out


def test_known_entry_is_neither_delivered_nor_forwarded() -> None:
    g = make()
    g.handle(10, Received(pid(1), m.Gossip(EID, 0, b"p")))
    out = g.handle(11, Verdict(EID, ok=True, known=True))
    assert out == []


def test_duplicate_prunes_sender() -> None:
    g = make(prune_grace=0)
    g.handle(10, Received(pid(1), m.Gossip(EID, 0, b"p")))
    g.handle(11, Verdict(EID, ok=True))
    out = g.handle(12, Received(pid(2), m.Gossip(EID, 0, b"p")))
    assert sends(out) == [(pid(2), m.Prune())]
    assert pid(2) in g.tree.lazy and pid(2) not in g.tree.eager


def test_duplicate_from_a_lazy_peer_is_pruned_again() -> None:
    # 1: EID comes from 1, then a copy from 2: 2 goes lazy, PRUNE to 2 (lost on the way).
    # 2: 2 still holds us eager and pushes EID2 after 1 did: PRUNE again, or 2 would
    #    push every later entry to us, each one a duplicate.
    g = make()
    for t, eid in ((10, EID), (20, EID2)):
        g.handle(t, Received(pid(1), m.Gossip(eid, 0, b"p")))
        g.handle(t + 1, Verdict(eid, ok=True))
        out = g.handle(t + 2, Received(pid(2), m.Gossip(eid, 0, b"p")))
        assert sends(out) == [(pid(2), m.Prune())]
        assert pid(2) in g.tree.lazy and pid(2) not in g.tree.eager


def test_lazy_peers_get_batched_ihave() -> None:
    g = make()
    g.handle(0, Received(pid(2), m.Prune()))
    g.handle(0, Received(pid(3), m.Prune()))
    out = g.handle(10, Broadcast(EID, b"a"))
    assert sends(out) == [(pid(1), m.Gossip(EID, 0, b"a"))]
    timers = [e for e in out if isinstance(e, SetTimer)]
    due = 10 + g.config.plumtree.dispatch_timeout
    assert timers == [SetTimer(("ihave",), due)]
    out += g.handle(12, Broadcast(EID2, b"b"))
    out = g.handle(due, TimerFired(("ihave",)))
    assert sorted(sends(out)) == [
        (pid(2), m.IHave(((EID, 0), (EID2, 0)))),
        (pid(3), m.IHave(((EID, 0), (EID2, 0)))),
    ]


def test_ihave_then_graft_after_timeout_then_next_announcer() -> None:
    g = make()
    out = g.handle(0, Received(pid(1), m.IHave(((EID, 2),))))
    assert SetTimer(("graft", EID), 80) in out
    g.handle(5, Received(pid(2), m.IHave(((EID, 3),))))
    out = g.handle(80, TimerFired(("graft", EID)))
    assert sends(out) == [(pid(1), m.Graft(EID, 2))]
    assert SetTimer(("graft", EID), 120) in out
    out = g.handle(120, TimerFired(("graft", EID)))
    assert sends(out) == [(pid(2), m.Graft(EID, 3))]


def test_stale_graft_timer_is_a_no_op() -> None:
    g = make()
    g.handle(0, Received(pid(1), m.IHave(((EID, 2),))))
    g.handle(10, Received(pid(2), m.Gossip(EID, 1, b"p")))
    g.handle(11, Verdict(EID, ok=True))
    assert g.handle(80, TimerFired(("graft", EID))) == []


def test_graft_is_answered_from_the_cache() -> None:
    g = make()
    g.handle(0, Received(pid(2), m.Prune()))
    g.handle(1, Broadcast(EID, b"x"))
    out = g.handle(2, Received(pid(2), m.Graft(EID, 0)))
    assert sends(out) == [(pid(2), m.Gossip(EID, 0, b"x"))]
    assert pid(2) in g.tree.eager


def test_new_neighbour_hears_recent_ids() -> None:
    g = make(neighbours=1)
    g.handle(1, Broadcast(EID, b"x"))
    g.handle(2, PeerUp(pid(7), outbound=False))
    g.handle(2, Received(pid(7), m.Neighbor(True, "p7:1")))
    out = g.handle(7, TimerFired(("ihave",)))
    assert (pid(7), m.IHave(((EID, 0),))) in sends(out)


def test_tables_are_bounded() -> None:
    g = make(max_missing=10, max_seen=20, max_pending=5)
    for k in range(50):
        g.handle(k, Received(pid(1), m.IHave(((bytes([k]) * 32, 0),))))
    assert len(g.tree.missing) <= 10
    for k in range(50):
        g.handle(k, Broadcast(bytes([k, 1]) * 16, b"x"))
    assert len(g.tree.seen) <= 20
    for k in range(50):
        g.handle(k, Received(pid(1), m.Gossip(bytes([k, 2]) * 16, 0, b"x")))
    assert len(g.tree.pending) <= 5


def test_stranger_messages_are_dropped() -> None:
    g = make()
    out = g.handle(0, Received(pid(99), m.Gossip(EID, 0, b"p")))
    assert out == [Disconnect(pid(99))]
