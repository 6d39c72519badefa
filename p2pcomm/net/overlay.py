"""The node's side of gossip (spec/07-gossip.md 7.5, 7.12): one
:class:`~p2pcomm.core.gossip.GossipState` per group this node is a member of, driven
over the node's connections.

Theory of operation
-------------------
The node keeps one connection per peer, shared by every group the two hold (06); each
group's gossip state decides which peers are its neighbours. This module performs the
states' effects and feeds back what happened:

* ``SendTo``: a GOSSIP message (06 6.5.9) on the peer's connection, built outside the
  sync session (it changes no session state, so it is safe beside a worker thread
  that feeds the session);
* ``Connect``: a peer already connected is reported up as soon as the group is live
  on its session; otherwise a dial (the handshake must show the expected member);
* ``Disconnect``: the connection is closed, once what was queued before is sent, when
  no group wants the peer any more, and only if gossip brought it (a connection made
  for another reason, to a contact or by an invitee, stays);
* ``Offer``: queued for the connection the entry came on; the node verifies and
  stores it on that connection's replicator and answers with a ``Verdict`` when it is
  stored (at once, or when its dependencies arrive), known, or refused;
* ``SetTimer``: one task runs every group's timers.

A group's link to a peer is *up* when the group is live on their session (its
reconciliation finished): gossip carries only what is new after that, and sync (06)
is the backstop at every (re)connection. Entries that arrive outside gossip are
spread by it too (:meth:`Overlay.stored`), except those caught up in a reconciliation,
which 06 6.11 L1 pushes to the peers that lack them.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..core.gossip import (
    Bootstrap,
    Broadcast,
    Connect,
    Deliver,
    DialFailed,
    Disconnect,
    Effect,
    GossipConfig,
    GossipState,
    Input,
    Offer,
    PeerDown,
    PeerUp,
    Received,
    SendTo,
    SetTimer,
    TimerFired,
    Verdict,
    decode_message,
    encode_message,
)
from ..core.gossip.messages import Gossip, IHave, Join, Message, Neighbor, Shuffle
from ..core.log import Entry
from ..core.sync import encode_gossip, encode_gossip_entry
from ..errors import ErrorCode, P2PCommError, RemoteProtocolError
from ..store.addresses import format_address, parse_address

if TYPE_CHECKING:
    from .node import Node, _Conn

__all__ = ["Overlay"]

logger = logging.getLogger(__name__)

_UNSPECIFIED = ("", "0.0.0.0", "::")
#: Channels opened at once only to deliver a message (a SHUFFLE_REPLY), and how long
#: one may take (s).
MAX_DELIVERIES = 4
#: Entry ids remembered per peer as held by it (to leave them out of announcements).
HELD_PER_PEER = 4096
DELIVERY_TIMEOUT = 10.0
#: Seconds between anti-entropy rounds (07 7.12 N10), each drawn from 0.5 to 1.5
#: times this; and how long one round may take (s).
ANTI_ENTROPY = 60.0
ANTI_ENTROPY_TIMEOUT = 30.0


def _address(text: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port`` text from a peer (07 7.2), or None."""
    try:
        return parse_address(text)
    except ValueError:
        return None


@dataclass(slots=True)
class _Group:
    state: GossipState
    #: Entries offered by a peer and not judged yet: id -> that peer.
    offered: dict[bytes, bytes] = field(default_factory=dict)


class Overlay:
    """Every group's gossip on one node. Made and driven by :class:`~.node.Node`."""

    def __init__(self, node: Node, config: GossipConfig, *, seed: int | None = None) -> None:
        self.node = node
        self.config = config
        self.rng = random.Random(seed)
        self.groups: dict[bytes, _Group] = {}
        #: Offers to ingest, per peer they came from: (group, offer).
        self.offers: dict[bytes, list[tuple[bytes, Offer]]] = {}
        #: Peers gossip dialled or made neighbours (only their connections does a
        #: Disconnect close).
        self.managed: set[bytes] = set()
        self._deliveries = 0
        #: Per peer, entries it is known to have (recent ones), and announcements
        #: left out for that reason.
        self._held: dict[bytes, dict[bytes, None]] = {}
        self.announcements_saved = 0
        #: Messages sent over a channel opened for them (SHUFFLE_REPLY to an origin).
        self.delivered = 0
        self._timers: list[tuple[int, int, bytes, tuple[str | bytes, ...]]] = []
        self._seq = 0
        self._timer_changed = trio.Event()
        #: GOSSIP messages (full entries) received, duplicates included.
        self.payloads_received = 0
        self.messages_sent = 0
        #: Anti-entropy rounds that reconciled with a peer (07 N10).
        self.anti_entropy_rounds = 0

    # -- time

    @staticmethod
    def now() -> int:
        return int(trio.current_time() * 1000)

    # -- groups

    def my_address(self) -> str:
        host, port = self.node.address
        return format_address(host, port)

    def start(
        self,
        group: bytes,
        admit: Callable[[bytes], bool],
        size: Callable[[], int] | None = None,
    ) -> None:
        """Run gossip for ``group`` (this node became, or is, a member); ``size`` counts
        its members."""
        if group in self.groups:
            return
        state = GossipState(
            self.node.peer_id,
            self.my_address(),
            rng=random.Random(self.rng.getrandbits(64)),
            admit=admit,
            config=self.config,
            size=size,
        )
        self.groups[group] = _Group(state)

    def stop(self, group: bytes) -> None:
        """Stop gossip for ``group`` (this node left it or was removed). Connections
        stay: the sessions go on for the other groups, and the peers end what they no
        longer serve (06 6.22)."""
        self.groups.pop(group, None)

    def neighbours(self, group: bytes) -> set[bytes]:
        g = self.groups.get(group)
        return set(g.state.active) if g is not None else set()

    def wants(self, peer: bytes) -> bool:
        """Whether some group keeps ``peer`` (a neighbour, asked, or being dialled)."""
        for g in self.groups.values():
            v = g.state.views
            if peer in v.active or peer in v.pending or peer in v.dialing:
                return True
        return False

    def isolated(self) -> bool:
        """Whether some group has no neighbour and nothing under way to get one: the
        node's contacts are then dialled again."""
        for g in self.groups.values():
            v = g.state.views
            if not v.active and not v.pending and not v.dialing:
                return True
        return False

    # -- feeding

    def feed(self, group: bytes, event: Input) -> None:
        g = self.groups.get(group)
        if g is None:
            return
        effects = g.state.handle(self.now(), event)
        self._perform(group, g, effects)
        self.node._note_change()

    def _perform(self, group: bytes, g: _Group, effects: Iterable[Effect]) -> None:
        node = self.node
        for effect in effects:
            if isinstance(effect, SendTo):
                sent = self._send(group, effect.peer, effect.msg)
                if not sent and effect.addr is not None and self._deliveries < MAX_DELIVERIES:
                    # A reply to a peer we hold no channel to (a SHUFFLE's origin):
                    # a short channel of its own carries it.
                    self._deliveries += 1
                    node._nursery.start_soon(
                        self._deliver, group, effect.peer, effect.addr, effect.msg
                    )
            elif isinstance(effect, SetTimer):
                heapq.heappush(self._timers, (effect.at, self._seq, group, effect.key))
                self._seq += 1
                if self._timers[0][1] == self._seq - 1:
                    self._timer_changed.set()
            elif isinstance(effect, Offer):
                # Ingested by the reader of the connection it came on, right after
                # the message that brought it (or its next read, for a copy offered
                # again after another peer's was refused).
                self.offers.setdefault(effect.from_peer, []).append((group, effect))
            elif isinstance(effect, Connect):
                self.managed.add(effect.peer)
                conn = node._conns.get(effect.peer)
                if conn is not None:
                    if group in conn.synced_announced:
                        self.feed(group, PeerUp(effect.peer, conn.outbound))
                    # else: PeerUp when the group goes live on that session
                else:
                    node._nursery.start_soon(self._dial, group, effect.peer, effect.addr)
            elif isinstance(effect, Disconnect):
                self._release(effect.peer)
            elif isinstance(effect, Deliver):
                pass  # the node announces what it stores (EntriesAdded and the rest)

    def _holds(self, peer: bytes) -> dict[bytes, None]:
        held = self._held.get(peer)
        if held is None:
            held = self._held[peer] = {}
        return held

    def _note_holds(self, peer: bytes, ids: Iterable[bytes]) -> None:
        """``peer`` has these entries (it sent or announced them, or we sent them)."""
        held = self._holds(peer)
        for i in ids:
            held[i] = None
        while len(held) > HELD_PER_PEER:
            del held[next(iter(held))]

    def _send(self, group: bytes, peer: bytes, msg: Message) -> bool:
        """Queue ``msg`` on the channel to ``peer``; False if there is none (yet).
        Announcements of entries the peer is known to have are left out (it would
        ignore them)."""
        conn = self.node._conns.get(peer)
        if conn is None or conn.ended:
            return False
        gi = conn.replicator.session.index(group)
        if gi is None:
            return False
        if isinstance(msg, IHave):
            held = self._holds(peer)
            items = tuple(item for item in msg.items if item[0] not in held)
            self.announcements_saved += len(msg.items) - len(items)
            if not items:
                return True
            msg = IHave(items)
            self._note_holds(peer, (i for i, _ in items))
        elif isinstance(msg, Gossip):
            self._note_holds(peer, (msg.id,))
        data = encode_gossip(gi, encode_message(msg))
        self.messages_sent += 1
        try:
            conn.send_later(data)
        except RemoteProtocolError as exc:  # that peer stopped reading
            self.node._close(conn, f"{exc.code.value}: {exc.message}")
        return True

    async def _deliver(self, group: bytes, peer: bytes, addr: str, msg: Message) -> None:
        """Open a channel to ``peer`` at ``addr`` to send it ``msg``, then let it go
        (unless a group wants it meanwhile). At most :data:`MAX_DELIVERIES` at once."""
        node = self.node
        try:
            address = _address(addr)
            if address is None or len(node._conns) >= node.max_connections:
                return
            with trio.move_on_after(DELIVERY_TIMEOUT):
                try:
                    stream = await node._open(*address, expected=peer)
                except (OSError, P2PCommError, trio.BrokenResourceError):
                    return
                node._nursery.start_soon(node._run_connection, stream, True, address)
                while not self._send(group, peer, msg):
                    await node._wait_change()
                self.managed.add(peer)
                self.delivered += 1
                self._release(peer)
        finally:
            self._deliveries -= 1

    def _release(self, peer: bytes) -> None:
        """A group let ``peer`` go: close the connection if gossip brought it and no
        group keeps it, once what is queued is sent (the DISCONNECT first)."""
        if peer not in self.managed or self.wants(peer):
            return
        self.managed.discard(peer)
        conn = self.node._conns.get(peer)
        if conn is not None and conn.closing_reason is None:
            conn.closing_reason = "not a gossip neighbour any more"
            conn.drain_then_close = True
            conn.wake.set()

    async def _dial(self, group: bytes, peer: bytes, addr: str) -> None:
        node = self.node
        address = _address(addr)
        if address is None or len(node._conns) >= node.max_connections:
            self.feed(group, DialFailed(peer))
            return
        host, port = address
        try:
            stream = await node._open(host, port, expected=peer)
        except (OSError, P2PCommError, trio.BrokenResourceError) as exc:
            logger.debug("gossip dial %s at %s failed: %s", peer.hex()[:16], addr, exc)
            self.feed(group, DialFailed(peer))
            return
        await node._run_connection(stream, True, address)

    # -- what the node reports

    def link_up(self, group: bytes, conn: _Conn, contact: bool) -> None:
        """``group`` went live on ``conn``'s session. ``contact``: the node dialled
        this address itself (a configured peer, a discovered one, an invitation's
        hint): join the overlay through it."""
        g = self.groups.get(group)
        if g is None:
            return
        peer = conn.peer_id
        if peer in g.state.views.dialing:
            self.feed(group, PeerUp(peer, conn.outbound))
        elif contact and peer not in g.state.views.active:
            addr = format_address(*conn.address)
            self.feed(group, Bootstrap(((peer, addr),)))

    def conn_down(self, peer: bytes) -> None:
        """The connection to ``peer`` ended (whatever the reason)."""
        for group, g in list(self.groups.items()):
            v = g.state.views
            if peer in v.active or peer in v.pending or peer in v.dialing:
                self.feed(group, PeerDown(peer))
            # Offers only it made: judged failed, so that the id can come again (a
            # copy from another peer, or an announcement).
            for eid, who in list(g.offered.items()):
                if who == peer:
                    del g.offered[eid]
                    self.feed(group, Verdict(eid, False))
        self.offers.pop(peer, None)
        self.managed.discard(peer)
        self._held.pop(peer, None)

    def received(self, conn: _Conn, group: bytes, blob: bytes) -> None:
        """A GOSSIP message from ``conn``'s peer. Raises RemoteProtocolError when it is
        not a valid gossip message (the connection is closed for it)."""
        g = self.groups.get(group)
        if g is None:
            return  # not a member here (yet): the peer's gossip is not for us
        try:
            msg = decode_message(blob)
        except P2PCommError as exc:
            raise RemoteProtocolError(
                ErrorCode.MALFORMED, f"bad gossip message: {exc.message}"
            ) from None
        if isinstance(msg, Gossip):
            self.payloads_received += 1
            self._note_holds(conn.peer_id, (msg.id,))
        elif isinstance(msg, IHave):
            self._note_holds(conn.peer_id, (i for i, _ in msg.items))
        msg = _with_seen_host(msg, conn)
        if isinstance(msg, Join | Neighbor):
            self.managed.add(conn.peer_id)
        self.feed(group, Received(conn.peer_id, msg))

    def take_offers(self, peer: bytes) -> list[tuple[bytes, Offer]]:
        return self.offers.pop(peer, [])

    def offered(self, group: bytes, offer: Offer) -> None:
        """``offer`` is being ingested: its verdict comes when it is stored."""
        g = self.groups.get(group)
        if g is not None:
            g.offered[offer.id] = offer.from_peer

    def judge(self, group: bytes, eid: bytes, *, ok: bool, known: bool = False) -> None:
        g = self.groups.get(group)
        if g is not None:
            g.offered.pop(eid, None)
            self.feed(group, Verdict(eid, ok, known))

    def stored(self, group: bytes, entries: Iterable[Entry], *, own: bool, live: bool) -> None:
        """Entries stored: verdicts for those offered; the node's own and those that
        came live outside gossip are broadcast. Entries caught up on are not (06 L1).
        Gossip carries only what the node forwards whole (04 F1: not an entry that
        membership voids, whose header alone sync sends where needed, 04 F2): one it
        does not is judged held, so that it is neither passed on nor held against the
        peer that sent it (that peer's view may differ)."""
        g = self.groups.get(group)
        if g is None:
            return
        forwards = self.node._forwards_whole
        for e in entries:
            if g.offered.pop(e.id, None) is not None:
                self.feed(group, Verdict(e.id, True, known=not forwards(group, e)))
            elif (own or live) and forwards(group, e):
                self.feed(group, Broadcast(e.id, encode_gossip_entry(e)))

    # -- anti-entropy

    async def run_anti_entropy(self, period: float) -> None:
        """Every ``period`` seconds (jittered), one anti-entropy round (07 N10)."""
        while True:
            await trio.sleep(period * (0.5 + self.rng.random()))
            await self.anti_entropy_round()

    async def anti_entropy_round(self) -> bytes | None:
        """Reconcile with one random peer of some group's passive view that this node
        holds no channel to (07 7.12 N10): the session syncs every group the two share
        (06), then the channel is closed unless a group made the peer a neighbour
        meanwhile. Returns the peer, or None when there was none to try or the round
        failed (it is only tried again next round)."""
        node = self.node
        if len(node._conns) >= node.max_connections:
            return None
        # The passive views, and the neighbours lost without a goodbye (H11): in a
        # group large enough that each side of a partition refilled its views, these
        # are what still reaches across once the partition heals.
        candidates = sorted(
            {
                (peer, addr)
                for g in self.groups.values()
                for peer, addr in [
                    *((p, i.addr) for p, i in g.state.views.passive.items()),
                    *((p, lost.addr) for p, lost in g.state.views.lost.items()),
                ]
                if peer not in node._conns and peer != node.peer_id
            }
        )
        if not candidates:
            return None
        peer, addr = candidates[self.rng.randrange(len(candidates))]
        address = _address(addr)
        if address is None:
            return None
        synced = False
        with trio.move_on_after(ANTI_ENTROPY_TIMEOUT):
            try:
                stream = await node._open(*address, expected=peer)
            except (OSError, P2PCommError, trio.BrokenResourceError) as exc:
                logger.debug("anti-entropy with %s at %s failed: %s", peer.hex()[:16], addr, exc)
                return None
            ended = trio.Event()

            async def run() -> None:
                try:
                    await node._run_connection(stream, True, address)
                finally:
                    ended.set()
                    node._note_change()

            node._nursery.start_soon(run)
            while not ended.is_set():
                conn = node._conns.get(peer)
                if conn is not None and conn.stream is not stream:
                    break  # a channel of the peer's own won the crossing: it syncs
                if conn is not None and conn.replicator.session.all_live:
                    synced = True
                    break
                await node._wait_change()
        if synced:
            self.anti_entropy_rounds += 1
        conn = node._conns.get(peer)
        if conn is not None and conn.stream is stream:
            self.managed.add(peer)
            self._release(peer)
        return peer if synced else None

    # -- timers

    async def run_timers(self) -> None:
        while True:
            self._timer_changed = trio.Event()
            if not self._timers:
                await self._timer_changed.wait()
                continue
            at = self._timers[0][0]
            if at > self.now():
                with trio.move_on_at(at / 1000):
                    await self._timer_changed.wait()
                continue
            _, _, group, key = heapq.heappop(self._timers)
            self.feed(group, TimerFired(key))


def _with_seen_host(msg: Message, conn: _Conn) -> Message:
    """A node listening on every interface gives its address with an unspecified host:
    take the host the connection came from."""
    if isinstance(msg, Join | Neighbor | Shuffle):
        if isinstance(msg, Shuffle) and msg.origin != conn.peer_id:
            return msg
        address = _address(msg.addr)
        if address is not None and address[0] in _UNSPECIFIED and conn.address[0]:
            fixed = format_address(conn.address[0], address[1])
            if isinstance(msg, Join):
                return Join(fixed)
            if isinstance(msg, Neighbor):
                return Neighbor(msg.high, fixed)
            return Shuffle(msg.origin, fixed, msg.ttl, msg.nodes)
    return msg
