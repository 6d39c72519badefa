"""Peer sampling: a HyParView-class membership overlay (spec/07-gossip.md section 7.3).

Theory of operation
-------------------
A node keeps two views of other members' nodes:

* the **active view** (default 5): peers it holds a connection to and gossips with.
  It is kept symmetric: a node enters another's active view only by ``JOIN``,
  ``NEIGHBOR`` or the end of a ``FORWARD_JOIN`` walk, and leaves with ``DISCONNECT`` or
  when the connection ends;
* the **passive view** (default 30): addresses of other members, filled by peer
  exchange (``FORWARD_JOIN`` and periodic ``SHUFFLE``), from which the active view is
  refilled when a neighbour goes down;
* the **lost** peers (H11): neighbours whose channel ended without a goodbye. They may
  be behind a partition rather than gone, so they are dialled again, with a doubling
  wait, while the active view is short and the passive view has no one left (a small
  group split by a partition would otherwise forget the other side for good).

Members only: every peer admitted to either view first passes the injected
``admit(peer)`` (the node's "who is served" rule, 06 6.22). Every passive entry records
who vouched for it (the peer whose message carried it, or the peer itself) and when it
was seen; one voucher holds at most ``passive_per_voucher`` entries, and when the view is
full the entry dropped is one of the voucher holding the most. A peer that floods the
exchange with addresses therefore only replaces its own share.

This module does not know about connections beyond ``PeerUp``/``PeerDown``/
``DialFailed`` and emits ``Connect``/``Disconnect``/``SendTo``; it knows nothing about
entries. ``up``/``down`` list the neighbours gained and lost by the last call, for the
broadcast layer. Iteration is over dicts (insertion order); random choices use the
injected ``random.Random``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .events import Connect, Disconnect, Effect, SendTo, SetTimer
from .messages import (
    MAX_SHUFFLE_NODES,
    MAX_TTL,
    ForwardJoin,
    Join,
    Neighbor,
    NodeInfo,
    Shuffle,
    ShuffleReply,
)
from .messages import Disconnect as DisconnectMsg

__all__ = ["AddrInfo", "HyParView", "HyParViewConfig", "Lost", "Rng", "sample"]

T = TypeVar("T")


class Rng(Protocol):
    """What the core needs of an injected ``random.Random``."""

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...


def sample(rng: Rng, items: list[T], k: int) -> list[T]:
    """``k`` distinct items of ``items`` in random order (a partial Fisher-Yates shuffle)."""
    pool = list(items)
    k = min(k, len(pool))
    for i in range(k):
        j = rng.randrange(i, len(pool))
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


@dataclass(frozen=True, slots=True, kw_only=True)
class HyParViewConfig:
    """Parameters. Sources: HyParView paper (Leitão, Pereira, Rodrigues, DSN 2007) p. 9,
    and iroh-gossip ``hyparview.rs`` where the paper gives none."""

    #: Active view size (paper: log10(n) + 1; 5 for 10,000 nodes).
    active_view: int = 5
    #: Passive view size (paper: k * (log10(n) + 1), k = 6).
    passive_view: int = 30
    #: Active random walk length (paper: 6).
    active_walk: int = 6
    #: Passive random walk length (paper: 3).
    passive_walk: int = 3
    #: Shuffle walk length, and how many active / passive entries a shuffle carries
    #: (iroh-gossip: 6, 3, 4).
    shuffle_walk: int = 6
    shuffle_active: int = 3
    shuffle_passive: int = 4
    #: Between shuffles, in ms (iroh-gossip: 60 s, "wild guess"); jittered by up to 1/4.
    shuffle_interval: int = 60_000
    #: Most passive entries one voucher may hold (p2pcomm: passive / active view).
    passive_per_voucher: int = 6
    #: A peer that refused our NEIGHBOR is not asked again for this long, in ms
    #: (p2pcomm), so that two nodes with full views do not dial each other in a loop.
    refused_backoff: int = 10_000
    #: How long a NEIGHBOR (or JOIN) waits for the answering NEIGHBOR, in ms
    #: (iroh-gossip ``neighbor_request_timeout``: 500 ms).
    neighbor_timeout: int = 500
    #: A node with no neighbour and nothing to dial joins again through its bootstrap
    #: contacts at most this often, in ms (p2pcomm).
    rejoin_interval: int = 5000
    #: A neighbour whose channel ended without a goodbye is dialled again, while the
    #: view is short and the passive view has no one else, this long after it went
    #: down (ms), then after twice as long at every failed dial, up to ``lost_retry_max``
    #: (p2pcomm: H11, what heals a partition that outlived the channels across it).
    lost_retry: int = 5000
    lost_retry_max: int = 60_000

    def __post_init__(self) -> None:
        if self.active_view < 1 or self.passive_view < 1:
            raise ValueError("view sizes must be at least 1")
        if not 0 <= self.passive_walk <= self.active_walk <= MAX_TTL:
            raise ValueError("need 0 <= passive_walk <= active_walk <= 16")
        if self.shuffle_walk > MAX_TTL:
            raise ValueError("shuffle_walk must be at most 16")
        if 1 + self.shuffle_active + self.shuffle_passive > MAX_SHUFFLE_NODES:
            raise ValueError("a shuffle carries at most 16 nodes")
        if not 0 < self.lost_retry <= self.lost_retry_max:
            raise ValueError("need 0 < lost_retry <= lost_retry_max")


@dataclass(slots=True)
class Lost:
    """A neighbour lost without a goodbye (H11): where it listened, dials since, and
    when it may be dialled again."""

    addr: str
    failures: int
    retry_at: int


@dataclass(slots=True)
class AddrInfo:
    """A passive view entry: where ``peer`` listens, who vouched for it, when seen."""

    addr: str
    voucher: bytes
    seen: int


class HyParView:
    """One node's views. Drive it through :class:`~.state.GossipState`."""

    def __init__(
        self,
        me: bytes,
        addr: str,
        config: HyParViewConfig,
        rng: Rng,
        admit: Callable[[bytes], bool],
    ) -> None:
        self.me = me
        self.addr = addr
        self.config = config
        self.rng = rng
        self.admit = admit
        #: Active view: peer -> address (insertion ordered).
        self.active: dict[bytes, str] = {}
        #: Passive view: peer -> entry (insertion ordered).
        self.passive: dict[bytes, AddrInfo] = {}
        #: Dials in progress: peer -> (address, purpose: "join" | "high" | "low").
        self.dialing: dict[bytes, tuple[str, str]] = {}
        #: Requests sent (JOIN or NEIGHBOR) awaiting the peer's NEIGHBOR: peer -> address.
        self.pending: dict[bytes, str] = {}
        #: Peers that refused our NEIGHBOR request -> when.
        self.refused: dict[bytes, int] = {}
        #: Bootstrap contacts, kept to join again when isolated.
        self.contacts: dict[bytes, str] = {}
        #: Neighbours whose channel ended without a goodbye (H11), oldest first.
        self.lost: dict[bytes, Lost] = {}
        self._last_rejoin: int | None = None
        self._rejoin_armed = False
        self._retry_armed = False
        self.now = 0
        self.up: list[bytes] = []
        self.down: list[bytes] = []
        self._shuffle_armed = False

    # ------------------------------------------------------------ helpers

    def _pick(self, peers: list[bytes]) -> bytes | None:
        return peers[self.rng.randrange(len(peers))] if peers else None

    def _add_active(self, peer: bytes, addr: str, out: list[Effect]) -> None:
        if peer == self.me or peer in self.active:
            return
        if len(self.active) >= self.config.active_view:
            victim = self._pick(list(self.active))
            assert victim is not None
            self._drop_active(victim, out, notify=True)
        self.passive.pop(peer, None)
        self.lost.pop(peer, None)
        self.active[peer] = addr
        self.up.append(peer)

    def _drop_active(self, peer: bytes, out: list[Effect], *, notify: bool) -> None:
        addr = self.active.pop(peer, None)
        if addr is None:
            return
        self.down.append(peer)
        if notify:
            out.append(SendTo(peer, DisconnectMsg(alive=True)))
            out.append(Disconnect(peer))
            self._add_passive(peer, addr, peer, 0)

    def _add_passive(self, peer: bytes, addr: str, voucher: bytes, seen: int) -> None:
        if peer == self.me or peer in self.active or not self.admit(peer):
            return
        known = self.passive.get(peer)
        if known is not None:
            if seen >= known.seen:
                known.seen = seen
                if voucher == peer:  # heard from the peer itself: trust its own address
                    known.addr, known.voucher = addr, peer
            return
        mine = [p for p, a in self.passive.items() if a.voucher == voucher]
        if len(mine) >= self.config.passive_per_voucher:
            del self.passive[mine[self.rng.randrange(len(mine))]]
        elif len(self.passive) >= self.config.passive_view:
            counts: dict[bytes, int] = {}
            for a in self.passive.values():
                counts[a.voucher] = counts.get(a.voucher, 0) + 1
            top = max(counts.values())
            heavy = [p for p, a in self.passive.items() if counts[a.voucher] == top]
            del self.passive[heavy[self.rng.randrange(len(heavy))]]
        self.passive[peer] = AddrInfo(addr, voucher, seen)

    def _sample(self, n_active: int, n_passive: int, now: int) -> tuple[NodeInfo, ...]:
        act = list(self.active.items())
        pas = [(p, a.addr) for p, a in self.passive.items()]
        picks = sample(self.rng, act, n_active)
        picks += sample(self.rng, pas, n_passive)
        return tuple(NodeInfo(p, a, now) for p, a in picks)

    def fill(self, out: list[Effect]) -> None:
        """Dial passive peers while the active view plus dials in progress is short."""
        while len(self.active) + len(self.dialing) + len(self.pending) < self.config.active_view:
            horizon = self.now - self.config.refused_backoff
            for p in [p for p, at in self.refused.items() if at < horizon]:
                del self.refused[p]
            # an isolated node asks anyone (with high priority, always accepted)
            refused = self.refused if self.active else {}
            candidates = [
                p
                for p in self.passive
                if p not in self.dialing and p not in refused and p not in self.pending
            ]
            peer = self._pick(candidates)
            if peer is not None:
                addr = self.passive[peer].addr
            else:
                peer = self._due_lost(out)
                if peer is None:
                    self._rejoin(out)
                    return
                lost = self.lost[peer]
                addr = lost.addr
                # the next try waits twice as long, whatever comes of this one
                lost.failures += 1
                lost.retry_at = self.now + self._retry_delay(lost.failures)
            high = len(self.active) < 2
            self.dialing[peer] = (addr, "high" if high else "low")
            out.append(Connect(peer, addr))

    def _due_lost(self, out: list[Effect]) -> bytes | None:
        """A lost neighbour to dial again now (H11), the one lost longest ago; if none
        is due yet, the retry timer is armed for the first that will be."""
        first: int | None = None
        for peer, lost in list(self.lost.items()):
            if peer in self.dialing or peer in self.pending or peer in self.active:
                continue
            if not self.admit(peer):
                del self.lost[peer]
            elif lost.retry_at <= self.now:
                return peer
            elif first is None or lost.retry_at < first:
                first = lost.retry_at
        if first is not None and not self._retry_armed:
            self._retry_armed = True
            out.append(SetTimer(("retry",), first))
        return None

    def on_retry_timer(self, out: list[Effect]) -> None:
        self._retry_armed = False
        self.fill(out)

    def _retry_delay(self, tries: int) -> int:
        c = self.config
        return min(c.lost_retry << min(tries, 16), c.lost_retry_max)

    def _note_lost(self, peer: bytes, addr: str) -> None:
        self.lost.pop(peer, None)
        if len(self.lost) >= self.config.passive_view:
            del self.lost[next(iter(self.lost))]
        self.lost[peer] = Lost(addr, 0, self.now + self._retry_delay(0))

    def _rejoin(self, out: list[Effect]) -> None:
        if self.active or self.dialing or self.pending or not self.contacts:
            return
        last = self._last_rejoin
        if last is not None and self.now - last < self.config.rejoin_interval:
            if not self._rejoin_armed:
                self._rejoin_armed = True
                out.append(SetTimer(("rejoin",), last + self.config.rejoin_interval))
            return
        self._last_rejoin = self.now
        for peer, addr in self.contacts.items():
            self.dialing[peer] = (addr, "join")
            out.append(Connect(peer, addr))

    def on_rejoin_timer(self, out: list[Effect]) -> None:
        self._rejoin_armed = False
        self.fill(out)

    def arm(self, now: int, out: list[Effect]) -> None:
        if not self._shuffle_armed:
            self._shuffle_armed = True
            jitter = self.rng.randrange(self.config.shuffle_interval // 4 + 1)
            out.append(SetTimer(("shuffle",), now + self.config.shuffle_interval - jitter))

    # ------------------------------------------------------------ inputs

    def bootstrap(
        self, contacts: tuple[tuple[bytes, str], ...], now: int, out: list[Effect]
    ) -> None:
        for peer, addr in contacts:
            if peer != self.me and self.admit(peer):
                self._add_passive(peer, addr, peer, now)
                self.contacts[peer] = addr
        for peer, addr in contacts:
            if peer in self.passive and peer not in self.dialing and peer not in self.active:
                self.dialing[peer] = (addr, "join")
                out.append(Connect(peer, addr))
                break
        self.arm(now, out)

    def on_peer_up(self, peer: bytes, now: int, out: list[Effect]) -> None:
        dial = self.dialing.pop(peer, None)
        if dial is None:
            return  # inbound: the peer says what it wants
        addr, purpose = dial
        if not self.admit(peer):
            out.append(Disconnect(peer))
            return
        if peer in self.active:
            return
        if purpose == "join":
            out.append(SendTo(peer, Join(self.addr)))
        else:
            out.append(SendTo(peer, Neighbor(purpose == "high" or len(self.active) < 2, self.addr)))
        self.pending[peer] = addr
        out.append(SetTimer(("neighbor", peer), now + self.config.neighbor_timeout))

    def on_neighbor_timer(self, peer: bytes, now: int, out: list[Effect]) -> None:
        if self.pending.pop(peer, None) is None:
            return
        self.refused[peer] = now
        out.append(Disconnect(peer))
        self.fill(out)

    def on_peer_down(self, peer: bytes, now: int, out: list[Effect]) -> None:
        self.dialing.pop(peer, None)
        self.pending.pop(peer, None)
        addr = self.active.pop(peer, None)
        if addr is not None:
            self.down.append(peer)
            # No goodbye (H7 ends with one): the peer may be behind a partition or a
            # failed link rather than gone; dialled again later (H11).
            self._note_lost(peer, addr)
        self.fill(out)

    def on_dial_failed(self, peer: bytes, now: int, out: list[Effect]) -> None:
        dial = self.dialing.pop(peer, None)
        self.passive.pop(peer, None)
        if dial is not None and dial[1] == "join" and not self.active:
            # try the next contact, if any
            pass
        self.fill(out)

    def on_join(self, peer: bytes, msg: Join, now: int, out: list[Effect]) -> None:
        if peer in self.active:
            return
        self._add_active(peer, msg.addr, out)
        out.append(SendTo(peer, Neighbor(True, self.addr)))
        for other in list(self.active):
            if other != peer:
                out.append(SendTo(other, ForwardJoin(peer, msg.addr, self.config.active_walk)))

    def on_forward_join(self, sender: bytes, msg: ForwardJoin, now: int, out: list[Effect]) -> None:
        if msg.peer == self.me or not self.admit(msg.peer):
            return
        if msg.ttl == 0 or len(self.active) <= 1:
            busy = msg.peer in self.active or msg.peer in self.dialing or msg.peer in self.pending
            if not busy:
                self.dialing[msg.peer] = (msg.addr, "high")
                out.append(Connect(msg.peer, msg.addr))
            return
        if msg.ttl == self.config.passive_walk:
            self._add_passive(msg.peer, msg.addr, sender, now)
        nxt = self._pick([p for p in self.active if p not in (sender, msg.peer)])
        if nxt is None:
            return
        out.append(SendTo(nxt, ForwardJoin(msg.peer, msg.addr, msg.ttl - 1)))

    def on_neighbor(self, peer: bytes, msg: Neighbor, now: int, out: list[Effect]) -> None:
        if peer in self.active:
            return
        if self.pending.pop(peer, None) is not None:
            # the answer to our request (or a crossing request): both sides add
            self._add_active(peer, msg.addr, out)
            return
        if msg.high or len(self.active) < self.config.active_view:
            self._add_active(peer, msg.addr, out)
            out.append(SendTo(peer, Neighbor(True, self.addr)))
        else:
            out.append(SendTo(peer, DisconnectMsg(alive=True)))
            out.append(Disconnect(peer))
            self._add_passive(peer, msg.addr, peer, now)

    def on_disconnect(self, peer: bytes, msg: DisconnectMsg, now: int, out: list[Effect]) -> None:
        pending = self.pending.pop(peer, None)
        if pending is not None:
            self.refused[peer] = now
            out.append(Disconnect(peer))
            if msg.alive:
                self._add_passive(peer, pending, peer, now)
        addr = self.active.pop(peer, None)
        if addr is not None:
            self.down.append(peer)
            out.append(Disconnect(peer))
            if msg.alive:
                self._add_passive(peer, addr, peer, now)
        self.fill(out)

    def on_shuffle_timer(self, now: int, out: list[Effect]) -> None:
        self._shuffle_armed = False
        self.arm(now, out)
        self.fill(out)
        target = self._pick(list(self.active))
        if target is None:
            return
        c = self.config
        nodes = self._sample(c.shuffle_active, c.shuffle_passive, now)
        out.append(SendTo(target, Shuffle(self.me, self.addr, c.shuffle_walk, nodes)))

    def on_shuffle(self, sender: bytes, msg: Shuffle, now: int, out: list[Effect]) -> None:
        if msg.origin == self.me:
            return
        if msg.ttl > 1 and len(self.active) > 1:
            nxt = self._pick([p for p in self.active if p not in (sender, msg.origin)])
            if nxt is not None:
                out.append(SendTo(nxt, Shuffle(msg.origin, msg.addr, msg.ttl - 1, msg.nodes)))
                return
        if not self.admit(msg.origin):
            return
        reply = self._sample(0, len(msg.nodes), now)
        out.append(SendTo(msg.origin, ShuffleReply(reply), msg.addr))
        self._merge(sender, msg.nodes, now)
        self.fill(out)

    def on_shuffle_reply(
        self, sender: bytes, msg: ShuffleReply, now: int, out: list[Effect]
    ) -> None:
        self._merge(sender, msg.nodes, now)
        self.fill(out)

    def _merge(self, voucher: bytes, nodes: tuple[NodeInfo, ...], now: int) -> None:
        for n in nodes:
            self._add_passive(n.peer, n.addr, voucher, min(n.seen, now))
