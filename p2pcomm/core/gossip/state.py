"""One node's gossip for one group: HyParView + Plumtree behind one ``handle``.

Theory of operation
-------------------
``GossipState.handle(now, input) -> list[Effect]`` is the only entry point. The driver
(``p2pcomm.net`` for real sockets, ``p2pcomm.testing.sim`` in memory) performs the
effects and feeds back what happened: ``PeerUp``/``PeerDown``/``DialFailed`` for
connections, ``TimerFired`` for timers, ``Verdict`` after each ``Offer`` (the node
verifies and stores the entry; nothing is forwarded before), ``Received`` for messages.

Routing: peer sampling messages go to :class:`~.hyparview.HyParView`, broadcast messages
to :class:`~.plumtree.Plumtree`; neighbours gained or lost by the first are fed to the
second. Messages from a peer that ``admit`` refuses are dropped and its connection
closed; broadcast messages from a peer outside the active view are ignored.

Driver's duties (like sile/hyparview's "User's responsibility"): perform every effect
in order; answer every ``Connect`` with exactly one ``PeerUp`` or ``DialFailed`` and
every ``Offer`` with one ``Verdict``; report every closed connection as ``PeerDown``;
fire every timer at or after its time; feed ``Bootstrap`` once with contacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .events import (
    Bootstrap,
    Broadcast,
    Connect,
    Deliver,
    DialFailed,
    Disconnect,
    Effect,
    Input,
    Offer,
    PeerDown,
    PeerUp,
    Received,
    SendTo,
    SetTimer,
    TimerFired,
    TimerKey,
    Verdict,
)
from .hyparview import HyParView, HyParViewConfig, Rng
from .messages import (
    Beacon,
    ForwardJoin,
    Gossip,
    Graft,
    IHave,
    Join,
    Neighbor,
    Prune,
    Shuffle,
    ShuffleReply,
)
from .messages import Disconnect as DisconnectMsg
from .plumtree import Plumtree, PlumtreeConfig

__all__ = [
    "Bootstrap",
    "Broadcast",
    "Connect",
    "Deliver",
    "DialFailed",
    "Disconnect",
    "Effect",
    "GossipConfig",
    "GossipState",
    "Input",
    "Offer",
    "PeerDown",
    "PeerUp",
    "Received",
    "SendTo",
    "SetTimer",
    "TimerFired",
    "TimerKey",
    "Verdict",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipConfig:
    """Both layers' parameters (spec 07 section 7.6)."""

    hyparview: HyParViewConfig = field(default_factory=HyParViewConfig)
    plumtree: PlumtreeConfig = field(default_factory=PlumtreeConfig)


class GossipState:
    """Sans-IO gossip for one group on one node."""

    def __init__(
        self,
        me: bytes,
        addr: str,
        *,
        rng: Rng,
        admit: Callable[[bytes], bool],
        config: GossipConfig | None = None,
        size: Callable[[], int] | None = None,
    ) -> None:
        self.me = me
        self.config = config or GossipConfig()
        self.admit = admit
        self.views = HyParView(me, addr, self.config.hyparview, rng, admit)
        self.tree = Plumtree(self.config.plumtree, me, size)

    @property
    def active(self) -> list[bytes]:
        return list(self.views.active)

    @property
    def passive(self) -> list[bytes]:
        return list(self.views.passive)

    def handle(self, now: int, event: Input) -> list[Effect]:
        # Exact type tests, most frequent first: the input and message classes are
        # final, and this is the hot path of every simulated and real message.
        out: list[Effect] = []
        v, t = self.views, self.tree
        v.now = now
        kind = type(event)
        if kind is Received:
            self._on_message(event, now, out)  # type: ignore[arg-type]
        elif kind is TimerFired:
            key = event.key  # type: ignore[union-attr]
            if key == ("ihave",):
                t.on_dispatch_timer(out)
            elif key[0] == "graft" and len(key) == 2 and isinstance(key[1], bytes):
                t.on_graft_timer(key[1], now, out)
            elif key == ("beacon",):
                t.on_beacon_timer(now, out)
            elif key[0] == "neighbor" and len(key) == 2 and isinstance(key[1], bytes):
                v.on_neighbor_timer(key[1], now, out)
            elif key == ("rejoin",):
                v.on_rejoin_timer(out)
            elif key == ("retry",):
                v.on_retry_timer(out)
            elif key == ("shuffle",):
                v.on_shuffle_timer(now, out)
        elif isinstance(event, Verdict):
            t.on_verdict(event.id, event.ok, event.known, now, out)
        elif isinstance(event, Broadcast):
            t.broadcast(event.id, event.payload, now, out)
        elif isinstance(event, PeerUp):
            v.on_peer_up(event.peer, now, out)
        elif isinstance(event, PeerDown):
            v.on_peer_down(event.peer, now, out)
        elif isinstance(event, DialFailed):
            v.on_dial_failed(event.peer, now, out)
        elif isinstance(event, Bootstrap):
            v.bootstrap(event.contacts, now, out)
        if v.down or v.up:
            self._sync_neighbors(now, out)
        return out

    def _sync_neighbors(self, now: int, out: list[Effect]) -> None:
        v, t = self.views, self.tree
        if v.down:
            for peer in v.down:
                if peer not in v.active:
                    t.neighbor_down(peer, out)
            v.down.clear()
        if v.up:
            for peer in v.up:
                if peer in v.active:
                    t.neighbor_up(peer, now, out)
            v.up.clear()

    def _on_message(self, event: Received, now: int, out: list[Effect]) -> None:
        peer, msg = event.peer, event.msg
        if peer == self.me:
            return
        if not self.admit(peer):
            out.append(Disconnect(peer))
            return
        v, t = self.views, self.tree
        kind = type(msg)
        # Broadcast messages from any admitted peer, in the active view or not: a lost
        # NEIGHBOR or DISCONNECT can leave views briefly asymmetric, and entries are
        # verified before anything is forwarded anyway.
        if kind is IHave:
            t.on_ihave(peer, msg, now, out)  # type: ignore[arg-type]
        elif kind is Gossip:
            t.on_gossip(peer, msg, now, out)  # type: ignore[arg-type]
        elif kind is Graft:
            t.on_graft(peer, msg, now, out)  # type: ignore[arg-type]
        elif kind is Prune:
            t.on_prune(peer, out)
        elif isinstance(msg, Beacon):
            t.on_beacon(peer, msg, now, out)
        elif isinstance(msg, Join):
            v.on_join(peer, msg, now, out)
        elif isinstance(msg, ForwardJoin):
            v.on_forward_join(peer, msg, now, out)
        elif isinstance(msg, Shuffle):
            v.on_shuffle(peer, msg, now, out)
        elif isinstance(msg, ShuffleReply):
            v.on_shuffle_reply(peer, msg, now, out)
        elif isinstance(msg, Neighbor):
            v.on_neighbor(peer, msg, now, out)
        elif isinstance(msg, DisconnectMsg):
            v.on_disconnect(peer, msg, now, out)
