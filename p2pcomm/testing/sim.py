"""A deterministic network simulator for the gossip core (spec/07-gossip.md 7.8).

Theory of operation
-------------------
Every node is a real :class:`p2pcomm.core.gossip.GossipState`; the simulator is only the
driver: it performs the effects and feeds back inputs, as ``p2pcomm.net`` does over
sockets, with a stand-in for the node's verify-and-store step (an entry is valid when its
id is the BLAKE2b-256 of its payload; a node's store is a dict of ids).

* Virtual time in integer milliseconds; events run in order of time, then of
  scheduling (a heap of the times that have events, a FIFO of events per time), so a
  run is a function of the seed.
* One ``random.Random(seed)`` for the network; each node gets
  ``random.Random(network.getrandbits(64))``. Nothing iterates a ``set``.
* Links: the latency of each pair of nodes is drawn once (uniform in ``latency_ms``);
  each message is lost with probability ``loss``; a partition drops every message
  between nodes on different sides (and, with ``close=True``, ends their connections);
  ``heal()`` ends it.
* Connections: ``Connect`` reaches the other side after one latency (``PeerUp`` there)
  and the dialler after two; a dial to a node that is down, frozen, partitioned off, or
  at an address that is not its own (a sybil address) fails after ``dial_timeout_ms``. A
  ``Disconnect`` is reported to the other side one latency + 1 ms later, after the data
  sent before it. A crash is seen by neighbours after one latency (the kernel closes
  the sockets); a frozen node keeps its connections and handles what queued when it
  thaws.
* Churn: ``crash(i)``, ``restart(i)`` (a fresh ``GossipState``, the store kept, joining
  through random live members), ``freeze(i, ms)``.
* Adversaries: :class:`Behaviour` on a node filters or adds to what it sends: drop
  everything, drop one author's entries (or all entries), delay, tamper, replay, flood
  announcements, sybil addresses in peer exchange.

``wire=True`` (the default) sends every message through ``encode_message`` and
``decode_message``, as the real node does; ``wire=False`` passes the message objects
(faster, for large benchmarks).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from ..core.gossip.messages import Gossip, IHave, Message, NodeInfo, Shuffle, ShuffleReply

__all__ = ["Behaviour", "Sim", "SimNode", "entry_id", "node_id"]


def node_id(seed: int, index: int) -> bytes:
    """The 32-byte member id of simulated node ``index``."""
    return hashlib.blake2b(f"sim node {seed} {index}".encode(), digest_size=32).digest()


def entry_id(payload: bytes) -> bytes:
    """The stand-in entry id: BLAKE2b-256 of the payload."""
    return hashlib.blake2b(payload, digest_size=32).digest()


@dataclass(kw_only=True)
class Behaviour:
    """What a misbehaving node does to what it sends (all off by default)."""

    #: Send nothing at all (it still accepts connections).
    silent: bool = False
    #: Never forward, announce or serve entries by these authors (node indexes);
    #: ``censor_all`` drops every entry.
    censor_authors: tuple[int, ...] = ()
    censor_all: bool = False
    #: Extra delay on everything sent, ms.
    delay_ms: int = 0
    #: Flip a byte of every payload forwarded.
    tamper: bool = False
    #: Every ``period_ms``: re-send an old entry (replay), send IHAVEs of ``flood`` made-up
    #: ids, or a SHUFFLE of made-up and foreign addresses (sybil) to each neighbour.
    replay: bool = False
    flood: int = 0
    sybil: bool = False
    period_ms: int = 200


@dataclass
class SimNode:
    index: int
    id: bytes
    addr: str
    rng: random.Random
    state: GossipState
    alive: bool = True
    incarnation: int = 0
    frozen_until: int = 0
    side: int = 0
    behaviour: Behaviour | None = None
    store: dict[bytes, int] = field(default_factory=dict)
    payloads_received: int = 0
    sent: int = 0
    bytes_sent: int = 0


_ANY = -1


class Sim:
    """A seeded network of gossip nodes in virtual time."""

    def __init__(
        self,
        seed: int = 0,
        *,
        latency_ms: tuple[int, int] = (10, 50),
        loss: float = 0.0,
        config: GossipConfig | None = None,
        wire: bool = True,
        dial_timeout_ms: int = 1000,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.latency_ms = latency_ms
        self.loss = loss
        self.config = config or GossipConfig()
        self.wire = wire
        self.dial_timeout_ms = dial_timeout_ms
        self.now = 0
        self.nodes: list[SimNode] = []
        self.by_id: dict[bytes, int] = {}
        self.members: dict[bytes, None] = {}
        #: the event queue: a heap of the times that have events, and per time the
        #: events ``(node, incarnation, item)`` in the order they were scheduled
        self._times: list[int] = []
        self._buckets: dict[int, deque[tuple[int, int, Any]]] = {}
        self._seq = 0
        #: link latencies, drawn once per pair: (a << 32 | b) and (b << 32 | a) -> ms
        self._lat: dict[int, int] = {}
        #: open connections: pair -> generation (a stale close never ends a newer one)
        self._conns: dict[tuple[int, int], int] = {}
        self.trace: list[tuple[int, int, str]] | None = [] if trace else None
        self.events = 0
        self.messages = 0
        self.dropped = 0
        self.bytes = 0
        #: entry id -> (author index, time broadcast)
        self.entries: dict[bytes, tuple[int, int]] = {}
        #: entry id -> {node index: time delivered}
        self.delivered: dict[bytes, dict[int, int]] = {}
        self.hops: dict[bytes, dict[int, int]] = {}
        self._counter = 0
        self._payloads: dict[bytes, bytes] = {}

    # ------------------------------------------------------------ building

    def add(self, n: int = 1, *, member: bool = True) -> list[int]:
        """Create ``n`` nodes (members unless ``member=False``); returns their indexes."""
        out = []
        for _ in range(n):
            i = len(self.nodes)
            nid = node_id(self.seed, i)
            rng = random.Random(self.rng.getrandbits(64))
            addr = f"sim:{i}"
            node = SimNode(i, nid, addr, rng, self._new_state(nid, addr, rng))
            self.nodes.append(node)
            self.by_id[nid] = i
            if member:
                self.members[nid] = None
            out.append(i)
        return out

    def _new_state(self, nid: bytes, addr: str, rng: random.Random) -> GossipState:
        members = self.members
        return GossipState(
            nid,
            addr,
            rng=rng,
            admit=members.__contains__,
            config=self.config,
            size=members.__len__,
        )

    def join(self, i: int, contacts: list[int]) -> None:
        """Node ``i`` joins the overlay through ``contacts``."""
        c = tuple((self.nodes[j].id, self.nodes[j].addr) for j in contacts)
        self._push(self.now, i, _ANY, Bootstrap(c))

    def join_all(self, *, spacing_ms: int = 10, contacts: int = 1) -> None:
        """Every node after the first joins through random earlier nodes, one by one."""
        for i in range(1, len(self.nodes)):
            k = min(contacts, i)
            picks = self.rng.sample(range(i), k)
            c = tuple((self.nodes[j].id, self.nodes[j].addr) for j in picks)
            self._push(self.now + i * spacing_ms, i, _ANY, Bootstrap(c))

    def behave(self, i: int, behaviour: Behaviour) -> None:
        self.nodes[i].behaviour = behaviour
        if behaviour.replay or behaviour.flood or behaviour.sybil:
            self._push(self.now + behaviour.period_ms, i, _ANY, ("adversary",))

    # ------------------------------------------------------------ network

    def latency(self, a: int, b: int) -> int:
        lat = self._lat.get((a << 32) | b)
        if lat is None:
            lat = self.rng.randint(*self.latency_ms)
            self._lat[(a << 32) | b] = self._lat[(b << 32) | a] = lat
        return lat

    def _push(self, at: int, node: int, inc: int, item: Any) -> None:
        bucket = self._buckets.get(at)
        if bucket is None:
            bucket = self._buckets[at] = deque()
            heapq.heappush(self._times, at)
        bucket.append((node, inc, item))

    def _cut(self, a: int, b: int) -> bool:
        return self.nodes[a].side != self.nodes[b].side

    def partition(self, sides: list[list[int]], *, close: bool = False) -> None:
        """Put the listed nodes on sides 1, 2, ...; everyone else stays on side 0."""
        for k, group in enumerate(sides, start=1):
            for i in group:
                self.nodes[i].side = k
        if close:
            for a, b in list(self._conns):
                if self._cut(a, b):
                    self._close(a, b, delay=self.dial_timeout_ms)

    def heal(self, *, rejoin: bool = False) -> None:
        """End the partition. ``rejoin``: every live node bootstraps again through two
        random live nodes (as a node redials its address book)."""
        for node in self.nodes:
            node.side = 0
        if rejoin:
            live = [n.index for n in self.nodes if n.alive]
            for i in live:
                self.join(i, self.rng.sample(live, min(2, len(live))))

    def _close(self, a: int, b: int, *, delay: int | None = None) -> None:
        key = (a, b) if a < b else (b, a)
        if key not in self._conns:
            return
        gen = self._conns.pop(key)
        d = self.latency(a, b) + 1 if delay is None else delay
        self._push(self.now + 1, a, _ANY, ("down", self.nodes[b].id, key, gen))
        self._push(self.now + d, b, _ANY, ("down", self.nodes[a].id, key, gen))

    # ------------------------------------------------------------ churn

    def crash(self, i: int) -> None:
        node = self.nodes[i]
        if not node.alive:
            return
        node.alive = False
        node.incarnation += 1
        for a, b in list(self._conns):
            if i in (a, b):
                other = b if a == i else a
                gen = self._conns.pop((a, b))
                self._push(
                    self.now + self.latency(a, b), other, _ANY, ("down", node.id, (a, b), gen)
                )

    def restart(self, i: int, *, contacts: int = 2) -> None:
        node = self.nodes[i]
        if node.alive:
            return
        node.alive = True
        node.incarnation += 1
        node.state = self._new_state(node.id, node.addr, node.rng)
        live = [n.index for n in self.nodes if n.alive and n.index != i]
        self.join(i, self.rng.sample(live, min(contacts, len(live))))

    def freeze(self, i: int, ms: int) -> None:
        self.nodes[i].frozen_until = self.now + ms

    # ------------------------------------------------------------ entries

    def broadcast(self, i: int, size: int = 64) -> bytes:
        """Node ``i`` writes a new entry of ``size`` random bytes and gossips it."""
        node = self.nodes[i]
        self._counter += 1
        payload = self._counter.to_bytes(8, "big") + self.rng.randbytes(max(0, size - 8))
        eid = entry_id(payload)
        self.entries[eid] = (i, self.now)
        self.delivered[eid] = {i: self.now}
        self.hops[eid] = {i: 0}
        node.store[eid] = self.now
        self._payloads[eid] = payload
        self._apply(i, node.state.handle(self.now, Broadcast(eid, payload)))
        return eid

    # ------------------------------------------------------------ running

    def run_for(self, ms: int) -> None:
        """Run every event due in the next ``ms`` milliseconds."""
        end = self.now + ms
        self._run(end, None)
        self.now = max(self.now, end)

    def run_until(self, pred: Callable[[], bool], *, timeout_ms: int) -> bool:
        """Run events until ``pred()`` holds (checked between events) or the time is up."""
        end = self.now + timeout_ms
        if self._run(end, pred):
            return True
        ok = pred()
        self.now = max(self.now, end)
        return ok

    def _run(self, end: int, pred: Callable[[], bool] | None) -> bool:
        """The event loop: True as soon as ``pred()`` holds (never without ``pred``).

        Events run in (time, order scheduled): the earliest time's bucket first, each
        bucket first in first out, and an event scheduled earlier than the bucket being
        run (a timer in the past) runs before the rest of that bucket."""
        times = self._times
        buckets = self._buckets
        nodes = self.nodes
        step = self._step
        while times and times[0] <= end:
            at = times[0]
            bucket = buckets[at]
            while bucket:
                if pred is not None and pred():
                    return True
                i, inc, item = bucket.popleft()
                self.now = at
                node = nodes[i]
                if not node.alive or (inc != _ANY and inc != node.incarnation):
                    continue
                if node.frozen_until > at:
                    self._push(node.frozen_until, i, inc, item)
                    continue
                step(node, item)
                if times[0] != at:
                    break  # something was scheduled before ``at``
            else:
                heapq.heappop(times)
                del buckets[at]
        return False

    def _step(self, node: SimNode, item: Any) -> None:
        self.events += 1
        event: Input
        if type(item) is tuple:
            if item[0] == "wire":
                sender, data = item[1], item[2]
                event = Received(sender, decode_message(data))
            elif item[0] == "down":
                if item[2] in self._conns:
                    return  # a newer connection between the pair is open
                event = PeerDown(item[1])
            elif item[0] == "adversary":
                self._adversary_tick(node)
                return
            else:  # pragma: no cover
                raise ValueError(item)
        else:
            event = item
        if self.trace is not None:
            self.trace.append((self.now, node.index, _describe(event)))
        if type(event) is Received and type(event.msg) is Gossip:
            node.payloads_received += 1
        self._apply(node.index, node.state.handle(self.now, event))

    def _apply(self, i: int, effects: list[Effect]) -> None:
        # exact type tests: the effect classes are final, and this is the hot path
        node = self.nodes[i]
        for eff in effects:
            if type(eff) is SendTo:
                self._send(node, eff.peer, eff.msg)
            elif type(eff) is SetTimer:
                self._push(eff.at, i, node.incarnation, TimerFired(eff.key))
            elif isinstance(eff, Offer):
                self._offer(node, eff)
            elif isinstance(eff, Deliver):
                d = self.delivered.get(eff.id)
                if d is not None and i not in d:
                    d[i] = self.now
                    self.hops[eff.id][i] = eff.hops
            elif isinstance(eff, Connect):
                self._connect(node, eff)
            elif isinstance(eff, Disconnect):
                j = self.by_id.get(eff.peer)
                if j is not None:
                    self._close(i, j)

    def _offer(self, node: SimNode, eff: Offer) -> None:
        # the payload the author wrote is valid by construction (objects passed as they
        # are, ``wire=False``): hash only what may have been altered on the way
        ok = self._payloads.get(eff.id) is eff.payload or entry_id(eff.payload) == eff.id
        known = ok and eff.id in node.store
        if ok and not known:
            node.store[eff.id] = self.now
        self._apply(node.index, node.state.handle(self.now, Verdict(eff.id, ok, known)))

    def _connect(self, node: SimNode, eff: Connect) -> None:
        i = node.index
        j = self.by_id.get(eff.peer)
        if j is None or eff.addr != self.nodes[j].addr:
            # nobody there, or someone who cannot prove to be that member
            self._push(self.now + self.dial_timeout_ms, i, node.incarnation, DialFailed(eff.peer))
            return
        other = self.nodes[j]
        if not other.alive or other.frozen_until > self.now or self._cut(i, j) or i == j:
            self._push(self.now + self.dial_timeout_ms, i, node.incarnation, DialFailed(eff.peer))
            return
        key = (i, j) if i < j else (j, i)
        lat = self.latency(i, j)
        if key not in self._conns:
            self._seq += 1
            self._conns[key] = self._seq
            self._push(self.now + lat, j, _ANY, PeerUp(node.id, False))
        self._push(self.now + 2 * lat, i, node.incarnation, PeerUp(other.id, True))

    def _send(self, node: SimNode, peer: bytes, msg: Message, *, extra: int = 0) -> None:
        b = node.behaviour
        if b is not None:
            msg_or_none = self._misbehave(node, b, msg)
            if msg_or_none is None:
                return
            msg = msg_or_none
            extra += b.delay_ms
        j = self.by_id.get(peer)
        if j is None:
            return
        self.messages += 1
        node.sent += 1
        i = node.index
        if node.side != self.nodes[j].side or (self.loss and self.rng.random() < self.loss):
            self.dropped += 1
            return
        lat = self._lat.get((i << 32) | j)
        at = self.now + (self.latency(i, j) if lat is None else lat) + extra
        if self.wire:
            data = encode_message(msg)
            self.bytes += len(data)
            node.bytes_sent += len(data)
            item: Any = ("wire", node.id, data)
        else:
            item = Received(node.id, msg)
        bucket = self._buckets.get(at)
        if bucket is None:
            bucket = self._buckets[at] = deque()
            heapq.heappush(self._times, at)
        bucket.append((j, _ANY, item))

    def _misbehave(self, node: SimNode, b: Behaviour, msg: Message) -> Message | None:
        if b.silent:
            return None
        if b.censor_all or b.censor_authors:
            if isinstance(msg, Gossip) and self._censored(b, msg.id):
                return None
            if isinstance(msg, IHave):
                items = tuple(it for it in msg.items if not self._censored(b, it[0]))
                if not items:
                    return None
                msg = IHave(items)
        if b.tamper and isinstance(msg, Gossip) and msg.payload:
            bad = bytes([msg.payload[0] ^ 1]) + msg.payload[1:]
            msg = Gossip(msg.id, msg.round, bad)
        return msg

    def _censored(self, b: Behaviour, eid: bytes) -> bool:
        if b.censor_all:
            return True
        meta = self.entries.get(eid)
        return meta is not None and meta[0] in b.censor_authors

    def _adversary_tick(self, node: SimNode) -> None:
        b = node.behaviour
        if b is None:
            return
        self._push(self.now + b.period_ms, node.index, _ANY, ("adversary",))
        neighbours = node.state.active
        if b.replay and node.store:
            ids = list(node.store)
            eid = ids[node.rng.randrange(len(ids))]
            payload = self._payloads.get(eid)
            if payload is not None:
                for p in neighbours:
                    self._send_raw(node, p, Gossip(eid, 0, payload))
        if b.flood:
            items = tuple((node.rng.randbytes(32), 0) for _ in range(min(b.flood, 256)))
            for p in neighbours:
                self._send_raw(node, p, IHave(items))
        if b.sybil:
            fake = [
                NodeInfo(node.rng.randbytes(32), f"sybil:{node.index}", self.now) for _ in range(8)
            ]
            # real members' ids pointing at this node, and fellow adversaries' real addresses
            members = list(self.members)
            for _ in range(4):
                m = members[node.rng.randrange(len(members))]
                fake.append(NodeInfo(m, node.addr, self.now))
            allies = [n for n in self.nodes if n.behaviour is not None and n.alive]
            for ally in allies[:4]:
                fake.append(NodeInfo(ally.id, ally.addr, self.now))
            sample = tuple(fake[:16])
            for p in neighbours:
                self._send_raw(node, p, Shuffle(node.id, node.addr, 0, sample))
                self._send_raw(node, p, ShuffleReply(sample))

    def _send_raw(self, node: SimNode, peer: bytes, msg: Message) -> None:
        saved, node.behaviour = node.behaviour, None
        try:
            self._send(node, peer, msg)
        finally:
            node.behaviour = saved

    # ------------------------------------------------------------ checks

    def live(self) -> list[int]:
        return [n.index for n in self.nodes if n.alive]

    def check_symmetry(self) -> list[tuple[int, int]]:
        """Pairs ``(a, b)`` of live nodes where ``b`` is in ``a``'s active view but not
        the other way round. Empty after quiescence."""
        bad = []
        for node in self.nodes:
            if not node.alive:
                continue
            for peer in node.state.active:
                j = self.by_id[peer]
                other = self.nodes[j]
                if not other.alive or node.id not in other.state.views.active:
                    bad.append((node.index, j))
        return bad

    def delivery_ratio(self, ids: list[bytes], among: list[int] | None = None) -> float:
        """Fraction of (entry, node) pairs delivered, over ``among`` (default: live)."""
        among = self.live() if among is None else among
        if not ids or not among:
            return 1.0
        got = 0
        for eid in ids:
            d = self.delivered[eid]
            got += sum(1 for i in among if i in d)
        return got / (len(ids) * len(among))

    def connected_component(self, start: int, among: list[int]) -> list[int]:
        """Nodes of ``among`` reachable from ``start`` over active views within ``among``."""
        allowed = dict.fromkeys(among)
        seen = {start: None}
        stack = [start]
        while stack:
            i = stack.pop()
            for peer in self.nodes[i].state.active:
                j = self.by_id[peer]
                if j in allowed and j not in seen:
                    seen[j] = None
                    stack.append(j)
        return sorted(seen)

    def report(self) -> dict[str, object]:
        live = [n for n in self.nodes if n.alive]
        act = [len(n.state.views.active) for n in live]
        pas = [len(n.state.views.passive) for n in live]
        return {
            "seed": self.seed,
            "now_ms": self.now,
            "nodes": len(self.nodes),
            "live": len(live),
            "events": self.events,
            "messages": self.messages,
            "dropped": self.dropped,
            "bytes": self.bytes,
            "active_min": min(act, default=0),
            "active_mean": sum(act) / len(act) if act else 0.0,
            "active_max": max(act, default=0),
            "passive_mean": sum(pas) / len(pas) if pas else 0.0,
            "isolated": sum(1 for a in act if a == 0),
            "asymmetric_pairs": len(self.check_symmetry()),
            "entries": len(self.entries),
        }


def _describe(event: Input) -> str:
    if isinstance(event, Received):
        return f"recv {event.peer.hex()[:8]} {type(event.msg).__name__}"
    if isinstance(event, TimerFired):
        return "timer " + "/".join(k if isinstance(k, str) else k.hex()[:8] for k in event.key)
    peer = getattr(event, "peer", None)
    return type(event).__name__ + (f" {peer.hex()[:8]}" if isinstance(peer, bytes) else "")
