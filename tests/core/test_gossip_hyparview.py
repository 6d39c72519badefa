"""Peer sampling transitions (spec 07 section 7.3), one input at a time."""

from __future__ import annotations

import random

from p2pcomm.core.gossip import (
    Bootstrap,
    Connect,
    DialFailed,
    Disconnect,
    GossipConfig,
    GossipState,
    HyParViewConfig,
    PeerDown,
    PeerUp,
    Received,
    SendTo,
    SetTimer,
    TimerFired,
)
from p2pcomm.core.gossip import messages as m
from tests.core.gossip_helpers import pid, sends

ME = pid(0)
MEMBERS = {pid(n) for n in range(1, 60)}


def make(*, active: int = 5, passive: int = 30, per_voucher: int = 6) -> GossipState:
    cfg = GossipConfig(
        hyparview=HyParViewConfig(
            active_view=active, passive_view=passive, passive_per_voucher=per_voucher
        )
    )
    return GossipState(ME, "me:1", rng=random.Random(1), admit=MEMBERS.__contains__, config=cfg)


def connect(g: GossipState, peer: bytes, t: int = 0) -> None:
    """Bring ``peer`` into the active view through its NEIGHBOR (as the other side)."""
    g.handle(t, PeerUp(peer, outbound=False))
    g.handle(t, Received(peer, m.Neighbor(True, f"p{peer[0]}:1")))
    assert peer in g.active


def test_bootstrap_dials_then_joins_then_waits_for_neighbor() -> None:
    g = make()
    out = g.handle(0, Bootstrap(((pid(1), "p1:1"),)))
    assert Connect(pid(1), "p1:1") in out
    assert any(isinstance(e, SetTimer) and e.key == ("shuffle",) for e in out)
    out = g.handle(10, PeerUp(pid(1), outbound=True))
    assert sends(out) == [(pid(1), m.Join("me:1"))]
    assert g.active == []  # not before the contact answers
    g.handle(20, Received(pid(1), m.Neighbor(True, "p1:1")))
    assert g.active == [pid(1)]


def test_unanswered_request_times_out_and_closes() -> None:
    g = make()
    g.handle(0, Bootstrap(((pid(1), "p1:1"),)))
    g.handle(10, PeerUp(pid(1), outbound=True))
    out = g.handle(600, TimerFired(("neighbor", pid(1))))
    assert Disconnect(pid(1)) in out
    assert g.active == []


def test_join_accepted_answered_and_forwarded() -> None:
    g = make()
    connect(g, pid(1))
    connect(g, pid(2))
    g.handle(0, PeerUp(pid(3), outbound=False))
    out = g.handle(1, Received(pid(3), m.Join("p3:1")))
    assert pid(3) in g.active
    assert (pid(3), m.Neighbor(True, "me:1")) in sends(out)
    fwd = [(p, msg) for p, msg in sends(out) if isinstance(msg, m.ForwardJoin)]
    assert sorted(p for p, _ in fwd) == [pid(1), pid(2)]
    assert all(msg == m.ForwardJoin(pid(3), "p3:1", 6) for _, msg in fwd)


def test_non_member_is_refused_everywhere() -> None:
    g = make()
    stranger = bytes([200]) * 32
    out = g.handle(0, Received(stranger, m.Join("x:1")))
    assert out == [Disconnect(stranger)]
    connect(g, pid(1))
    g.handle(0, Received(pid(1), m.ShuffleReply((m.NodeInfo(stranger, "x:1", 0),))))
    g.handle(0, Received(pid(1), m.ForwardJoin(stranger, "x:1", 0)))
    assert stranger not in g.passive and stranger not in g.active


def test_full_view_evicts_on_high_priority_and_refuses_low() -> None:
    g = make(active=2)
    connect(g, pid(1))
    connect(g, pid(2))
    g.handle(0, PeerUp(pid(3), outbound=False))
    out = g.handle(0, Received(pid(3), m.Neighbor(False, "p3:1")))
    assert (pid(3), m.Disconnect(True)) in sends(out)
    assert Disconnect(pid(3)) in out and pid(3) in g.passive
    out = g.handle(0, Received(pid(4), m.Neighbor(True, "p4:1")))
    assert pid(4) in g.active and len(g.active) == 2
    evicted = [p for p, msg in sends(out) if msg == m.Disconnect(True)]
    assert len(evicted) == 1 and evicted[0] in g.passive


def test_short_view_refills_from_passive() -> None:
    g = make(active=1)
    connect(g, pid(1))
    g.handle(0, Received(pid(1), m.ShuffleReply((m.NodeInfo(pid(9), "p9:1", 0),))))
    assert pid(9) in g.passive
    out = g.handle(5, PeerDown(pid(1)))
    assert g.active == []
    assert Connect(pid(9), "p9:1") in out
    out = g.handle(9, DialFailed(pid(9)))
    assert pid(9) not in g.passive


def test_one_voucher_cannot_fill_the_passive_view() -> None:
    g = make(passive=30, per_voucher=4)
    connect(g, pid(1))
    connect(g, pid(2))
    g.handle(
        0, Received(pid(2), m.ShuffleReply(tuple(m.NodeInfo(pid(n), "a:1", 0) for n in (40, 41))))
    )
    for batch in range(5):
        infos = tuple(m.NodeInfo(pid(10 + batch * 4 + k), "x:1", 0) for k in range(4))
        g.handle(batch, Received(pid(1), m.ShuffleReply(infos)))
    vouchers = [g.views.passive[p].voucher for p in g.passive]
    assert vouchers.count(pid(1)) <= 4
    assert pid(40) in g.passive and pid(41) in g.passive


def test_shuffle_walk_forwarded_then_answered() -> None:
    g = make()
    connect(g, pid(1))
    connect(g, pid(2))
    walk = m.Shuffle(pid(5), "p5:1", 3, (m.NodeInfo(pid(6), "p6:1", 0),))
    out = g.handle(0, Received(pid(1), walk))
    assert sends(out) == [(pid(2), m.Shuffle(pid(5), "p5:1", 2, walk.nodes))]
    out = g.handle(0, Received(pid(1), m.Shuffle(pid(5), "p5:1", 1, walk.nodes)))
    replies = [e for e in out if isinstance(e, SendTo) and isinstance(e.msg, m.ShuffleReply)]
    assert replies and replies[0].peer == pid(5) and replies[0].addr == "p5:1"
    assert pid(6) in g.passive


def test_disconnect_message_moves_peer_to_passive() -> None:
    g = make()
    connect(g, pid(1))
    out = g.handle(0, Received(pid(1), m.Disconnect(True)))
    assert g.active == [] and pid(1) in g.passive and Disconnect(pid(1)) in out


def test_same_seed_same_effects() -> None:
    def run() -> list[object]:
        g = make()
        log: list[object] = []
        for n in range(1, 8):
            g.handle(n, PeerUp(pid(n), outbound=False))
            log += g.handle(n, Received(pid(n), m.Neighbor(True, f"p{n}:1")))
        log += g.handle(100, TimerFired(("shuffle",)))
        return log

    assert run() == run()


def test_isolated_node_joins_again_through_its_contacts() -> None:
    g = make()
    g.handle(0, Bootstrap(((pid(1), "p1:1"),)))
    g.handle(10, PeerUp(pid(1), outbound=True))
    g.handle(20, Received(pid(1), m.Neighbor(True, "p1:1")))
    out = g.handle(30, PeerDown(pid(1)))
    assert Connect(pid(1), "p1:1") in out  # from the passive view
    out = g.handle(40, DialFailed(pid(1)))
    assert pid(1) not in g.passive
    # nothing left to dial: the contact again, at most every rejoin_interval
    assert SetTimer(("rejoin",), 5030) in out or Connect(pid(1), "p1:1") in out
    out = g.handle(5030, TimerFired(("rejoin",)))
    out += g.handle(6000, DialFailed(pid(1)))
    assert any(isinstance(e, (Connect, SetTimer)) for e in out)


def test_node_with_one_neighbour_asks_with_high_priority() -> None:
    g = make()
    connect(g, pid(1))
    g.handle(0, Received(pid(1), m.ShuffleReply((m.NodeInfo(pid(9), "p9:1", 0),))))
    out = g.handle(5, PeerUp(pid(9), outbound=True))
    assert (pid(9), m.Neighbor(True, "me:1")) in sends(out)


def test_neighbour_lost_without_goodbye_is_dialled_again_with_backoff() -> None:
    # A partition: the channel to pid(1) ends with no DISCONNECT, and the passive view
    # has no one else. The peer is dialled again after lost_retry, then twice as long
    # after each failed dial (H11); once it answers, it is a neighbour again.
    g = make()
    connect(g, pid(1))
    out = g.handle(1000, PeerDown(pid(1)))
    assert g.active == [] and not [e for e in out if isinstance(e, Connect)]
    assert SetTimer(("retry",), 6000) in out
    out = g.handle(6000, TimerFired(("retry",)))
    assert Connect(pid(1), "p1:1") in out
    out = g.handle(7000, DialFailed(pid(1)))
    assert SetTimer(("retry",), 16_000) in out  # 6000 + 2 x 5000
    out = g.handle(16_000, TimerFired(("retry",)))
    assert Connect(pid(1), "p1:1") in out
    out = g.handle(16_500, DialFailed(pid(1)))
    assert SetTimer(("retry",), 36_000) in out
    g.handle(36_000, TimerFired(("retry",)))
    g.handle(36_100, PeerUp(pid(1), outbound=True))
    g.handle(36_200, Received(pid(1), m.Neighbor(True, "p1:1")))
    assert g.active == [pid(1)] and pid(1) not in g.views.lost


def test_lost_neighbour_waits_while_the_passive_view_has_others() -> None:
    g = make(active=1)
    connect(g, pid(1))
    g.handle(0, Received(pid(1), m.ShuffleReply((m.NodeInfo(pid(9), "p9:1", 0),))))
    out = g.handle(10, PeerDown(pid(1)))
    assert Connect(pid(9), "p9:1") in out and Connect(pid(1), "p1:1") not in out
    # a neighbour that leaves with a goodbye is not "lost"; a removed member is forgotten
    g.handle(20, PeerUp(pid(9), outbound=True))
    g.handle(30, Received(pid(9), m.Neighbor(True, "p9:1")))
    g.handle(40, Received(pid(9), m.Disconnect(True)))
    assert pid(9) not in g.views.lost and pid(9) in g.passive
    g.handle(50, DialFailed(pid(9)))  # refilling from the passive view dialled it again
    MEMBERS.discard(pid(1))
    try:
        out = g.handle(100_000, TimerFired(("retry",)))
        assert Connect(pid(1), "p1:1") not in out and pid(1) not in g.views.lost
    finally:
        MEMBERS.add(pid(1))
