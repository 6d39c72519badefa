"""Broadcast: a Plumtree-class epidemic broadcast tree (spec/07-gossip.md section 7.4).

Theory of operation
-------------------
Each neighbour (a peer of the active view) is *eager* or *lazy*. A new entry goes in
full (``GOSSIP``) to eager neighbours and as an announcement (``IHAVE``, batched for
``dispatch_timeout``) to lazy ones. A node that receives an entry it already has moves
the sender to lazy and answers ``PRUNE`` (again, if the sender is lazy already: a lost
or crossed ``PRUNE`` must not leave the link eager on the far side for good); the eager
links thus shrink towards a spanning tree. A node that hears an announcement of an entry
it lacks sets a graft timer; when it fires and the entry still has not come, it sends
``GRAFT`` to an announcer (making that link eager again and asking for the entry), and
tries the next announcer ``graft_timeout_2`` later. That repairs the tree after losses
and failures.

The rooted tree (revision 5, B10 to B14) decides which links are eager once a node
knows a root: see :mod:`.tree`, which this class inherits. In large groups the
author's first hops push to every neighbour, so that an entry enters the tree at many
places near its author.

Verify before forwarding (DESIGN hard requirement 2): a received entry is *pending*
until the node's :class:`~.events.Verdict`; only an accepted entry is delivered,
cached and forwarded. A copy that fails blames its sender (``Disconnect``) and the
next copy held for the same id, if any, is offered instead, so a tamperer that races an
honest peer cannot make the honest copy count as a duplicate.

Message ids are entry ids (03): unique per author and sequence number, never a hash of
the payload alone. Every table is bounded: the payload cache by age and bytes, the ids
seen by age and count, pending ids, copies per id, announcers per id and missing ids.
Stale timers are no-ops: each handler re-checks the state.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from .events import Deliver, Disconnect, Effect, Offer, SendTo, SetTimer
from .messages import MAX_IHAVE, MAX_ROUND, Beacon, Gossip, Graft, IHave, Prune
from .tree import RootedTree

__all__ = ["Plumtree", "PlumtreeConfig", "PlumtreeStats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlumtreeConfig:
    """Parameters, in ms. Sources: Plumtree paper (Leitão, Pereira, Rodrigues, SRDS
    2007) and iroh-gossip ``plumtree.rs``."""

    #: First graft wait after an announcement (iroh-gossip: 80 ms, from the paper's
    #: "timer" on IHAVE; should exceed a typical one-hop latency).
    graft_timeout_1: int = 80
    #: Wait before asking the next announcer (iroh-gossip: 40 ms).
    graft_timeout_2: int = 40
    #: Most GRAFTs for one id before giving up until a new announcement (p2pcomm).
    max_graft_attempts: int = 8
    #: IHAVE batching delay (iroh-gossip: 5 ms; p2pcomm: 15, see 7.10).
    dispatch_timeout: int = 15
    #: How long payloads stay servable to GRAFTs (iroh-gossip: 30 s).
    cache_ms: int = 30_000
    #: Payload cache bound in bytes (p2pcomm: 8 MiB).
    cache_bytes: int = 8 << 20
    #: How long ids seen are remembered (iroh-gossip: 90 s), and at most how many.
    seen_ms: int = 90_000
    max_seen: int = 65_536
    #: Entries awaiting a verdict, and copies kept per pending id (p2pcomm).
    max_pending: int = 1024
    max_copies: int = 4
    #: Ids announced but missing, and announcers remembered per id (p2pcomm).
    max_missing: int = 4096
    max_announcers: int = 8
    #: A duplicate prunes its sender only if that sender gave no first copy for this
    #: long (p2pcomm; 0 prunes on every duplicate, as the paper does). With many
    #: authors broadcasting at once, each author's messages find a different edge of a
    #: cycle redundant; pruning each of them splits the shared tree.
    prune_grace: int = 1000
    #: A new neighbour is sent IHAVE for the entries cached in this last window (ms,
    #: p2pcomm), at most ``MAX_IHAVE`` of them: what crossed the overlay while the link
    #: was forming is not lost (older entries are the sync protocol's job).
    recent_ms: int = 5000
    #: GRAFTs a neighbour may leave unanswered (announced, asked for, never sent) before
    #: it is disconnected as a flooder (p2pcomm); any first copy it sends resets it.
    max_unserved: int = 32
    #: How often the tree's root sends a BEACON (ms, p2pcomm); 0 turns the rooted tree
    #: off (eager links then shrink by pruning alone, as in the paper).
    beacon_ms: int = 10_000
    #: A root unheard for this long is gone (ms, p2pcomm): another is elected.
    root_timeout: int = 30_000
    #: A node that knows no root stands after this long with neighbours (ms, p2pcomm):
    #: a new group has a tree within seconds; a newcomer to a rooted one hears the
    #: root from its first neighbour at once (B1).
    stand_ms: int = 2000
    #: The author's first hops flood (push to every neighbour): ``r`` rounds where
    #: ``r`` is the largest number up to ``max_flood_rounds`` with
    #: ``flood_base * 4**r <= group size`` (p2pcomm; 0 rounds below 48 members).
    max_flood_rounds: int = 3
    flood_base: int = 12


@dataclass(slots=True)
class PlumtreeStats:
    """Counters since creation."""

    payloads_received: int = 0
    duplicates: int = 0
    grafts_sent: int = 0
    prunes_sent: int = 0
    rejected: int = 0
    delivered: int = 0


class Plumtree(RootedTree):
    """One node's broadcast tree. Drive it through :class:`~.state.GossipState`."""

    def __init__(
        self, config: PlumtreeConfig, me: bytes = b"", size: Callable[[], int] | None = None
    ) -> None:
        super().__init__(config, me, size)
        self.config = config
        #: (id, peer) of the latest GRAFTs sent: their answers are no reason to prune
        self._grafted: dict[tuple[bytes, bytes], None] = {}
        #: id -> (payload, round, when cached)
        self.cache: dict[bytes, tuple[bytes, int, int]] = {}
        self._cache_bytes = 0
        #: id -> when first accepted (or known)
        self.seen: dict[bytes, int] = {}
        #: id -> copies [(peer, round, payload)] awaiting the verdict on the first
        self.pending: dict[bytes, list[tuple[bytes, int, bytes]]] = {}
        #: id -> announcers [(peer, round)], and GRAFTs sent so far
        self.missing: dict[bytes, list[tuple[bytes, int]]] = {}
        self.attempts: dict[bytes, int] = {}
        self._graft_armed: dict[bytes, None] = {}
        self.queue: dict[bytes, list[tuple[bytes, int]]] = {}
        self._dispatch_armed = False
        #: peer -> when it last gave us a first copy
        self.useful: dict[bytes, int] = {}
        #: id -> the peer last asked by GRAFT; peer -> GRAFTs it left unanswered
        self.asked: dict[bytes, bytes] = {}
        self.unserved: dict[bytes, int] = {}
        self.stats = PlumtreeStats()

    # ------------------------------------------------------------ neighbours

    def neighbor_up(self, peer: bytes, now: int, out: list[Effect]) -> None:
        if self.root is None:
            self._promote(peer)
        else:
            # Rooted: a new neighbour is lazy until it attaches to us (GRAFT nil); it
            # learns the root at once, and attaches if we are its best way there.
            self.eager.pop(peer, None)
            self.lazy[peer] = None
            out.append(SendTo(peer, Beacon(self.root, self.seq, self.dist)))
        self._arm_beacon(now, out)
        horizon = now - self.config.recent_ms
        recent = [(id, c[1]) for id, c in self.cache.items() if c[2] >= horizon]
        if recent:
            self.queue.setdefault(peer, []).extend(recent[-MAX_IHAVE:])
            self._arm_dispatch(now, out)

    def _arm_dispatch(self, now: int, out: list[Effect]) -> None:
        if not self._dispatch_armed:
            self._dispatch_armed = True
            out.append(SetTimer(("ihave",), now + self.config.dispatch_timeout))

    def neighbor_down(self, peer: bytes, out: list[Effect]) -> None:
        self.eager.pop(peer, None)
        self.lazy.pop(peer, None)
        self.queue.pop(peer, None)
        self.useful.pop(peer, None)
        self.unserved.pop(peer, None)
        for announcers in self.missing.values():
            announcers[:] = [a for a in announcers if a[0] != peer]
        self._tree_neighbor_down(peer, out)

    def _to_lazy(self, peer: bytes, out: list[Effect]) -> None:
        if self._demote(peer, out):
            self.stats.prunes_sent += 1

    def _duplicate(self, peer: bytes, id: bytes, round: int, now: int, out: list[Effect]) -> None:
        """``peer`` sent a copy of an entry that had already come (B3)."""
        if self.root is not None and (
            peer == self.parent
            or peer in self.children
            or round < self.flood_rounds()
            or (id, peer) in self._grafted
        ):
            # Two waves met on the tree, the author's first hops, or the answer to
            # our GRAFT: none of these says the link should be lazy.
            return
        if peer in self.lazy:
            # It still pushes to us although we made it lazy: our PRUNE was lost or
            # crossed one of its messages (a GRAFT, a first copy). Say it again: nothing
            # else would, and every entry it forwards would be a duplicate here.
            self.stats.prunes_sent += 1
            out.append(SendTo(peer, Prune()))
        elif self.root is not None or (
            now - self.useful.get(peer, -(2**62)) >= self.config.prune_grace
        ):
            self._to_lazy(peer, out)

    def _to_eager(self, peer: bytes) -> None:
        if self.root is None and peer in self.lazy:  # rooted, the tree decides (B12)
            self._promote(peer)

    # ------------------------------------------------------------ tables

    def _remember(self, id: bytes, now: int) -> None:
        seen = self.seen
        seen[id] = now
        horizon = now - self.config.seen_ms
        while seen:
            first = next(iter(seen))
            if len(seen) <= self.config.max_seen and seen[first] >= horizon:
                break
            del seen[first]
        self.missing.pop(id, None)
        self.attempts.pop(id, None)

    def _cache(self, id: bytes, payload: bytes, round: int, now: int) -> None:
        if id in self.cache:
            return
        self.cache[id] = (payload, round, now)
        self._cache_bytes += len(payload)
        horizon = now - self.config.cache_ms
        while self.cache:
            first = next(iter(self.cache))
            old = self.cache[first]
            if self._cache_bytes <= self.config.cache_bytes and old[2] >= horizon:
                break
            del self.cache[first]
            self._cache_bytes -= len(old[0])

    def _push(
        self,
        id: bytes,
        payload: bytes,
        round: int,
        skip: Container[bytes],
        now: int,
        out: list[Effect],
    ) -> None:
        """Send ``id`` on, except to the peers in ``skip``: those known to hold it."""
        msg = Gossip(id, min(round, MAX_ROUND), payload)
        flood = round < self.flood_rounds()
        for peer in self.eager:
            if peer not in skip:
                out.append(SendTo(peer, msg))
                if peer in self.announce:
                    self.queue.setdefault(peer, []).append((id, msg.round))
        for peer in self.lazy:
            if peer in skip:
                continue
            if flood:
                out.append(SendTo(peer, msg))
            else:
                self.queue.setdefault(peer, []).append((id, msg.round))
        if self.queue:
            self._arm_dispatch(now, out)

    # ------------------------------------------------------------ inputs

    def broadcast(self, id: bytes, payload: bytes, now: int, out: list[Effect]) -> None:
        if id in self.seen:
            return
        self._remember(id, now)
        self._cache(id, payload, 0, now)
        self._push(id, payload, 0, (), now, out)

    def on_gossip(self, peer: bytes, msg: Gossip, now: int, out: list[Effect]) -> None:
        self.stats.payloads_received += 1
        if msg.id in self.seen:
            self.stats.duplicates += 1
            self._duplicate(peer, msg.id, msg.round, now, out)
            return
        copies = self.pending.get(msg.id)
        if copies is not None:
            self.stats.duplicates += 1
            if len(copies) < self.config.max_copies and all(c[0] != peer for c in copies):
                copies.append((peer, msg.round, msg.payload))
            return
        if len(self.pending) >= self.config.max_pending:
            return  # the announcement path (IHAVE, GRAFT) brings it later
        self.pending[msg.id] = [(peer, msg.round, msg.payload)]
        self.unserved.pop(peer, None)
        self._to_eager(peer)
        out.append(Offer(msg.id, msg.payload, peer))

    def on_verdict(self, id: bytes, ok: bool, known: bool, now: int, out: list[Effect]) -> None:
        copies = self.pending.pop(id, None)
        if not copies:
            return
        peer, round, payload = copies[0]
        if not ok:
            self.stats.rejected += 1
            out.append(Disconnect(peer))
            if len(copies) > 1:
                self.pending[id] = copies[1:]
                out.append(Offer(id, copies[1][2], copies[1][0]))
            return
        # Who holds it already: its senders, and those that announced it to us.
        holders = {c[0] for c in copies}
        holders.update(a[0] for a in self.missing.get(id, ()))
        self._remember(id, now)
        self.useful[peer] = now
        for other, other_round, _ in copies[1:]:
            self._duplicate(other, id, other_round, now, out)
        if known:
            return
        self.stats.delivered += 1
        self._cache(id, payload, round + 1, now)
        out.append(Deliver(id, peer, round + 1))
        self._push(id, payload, round + 1, holders, now, out)

    def on_ihave(self, peer: bytes, msg: IHave, now: int, out: list[Effect]) -> None:
        c = self.config
        if peer == self.parent and not self._announce_asked:
            out.append(SendTo(peer, self._attachment()))  # it lost our GRAFT: attach again
        queued = self.queue.get(peer)
        for id, round in msg.items:
            if id in self.seen or id in self.pending:
                if queued:  # it has it: no need to announce it there
                    queued[:] = [q for q in queued if q[0] != id]
                continue
            announcers = self.missing.get(id)
            if announcers is None:
                if len(self.missing) >= c.max_missing:
                    continue
                announcers = self.missing[id] = []
            if len(announcers) < c.max_announcers and all(a[0] != peer for a in announcers):
                announcers.append((peer, round))
            if id not in self._graft_armed:
                self._graft_armed[id] = None
                out.append(SetTimer(("graft", id), now + c.graft_timeout_1))

    def on_graft_timer(self, id: bytes, now: int, out: list[Effect]) -> None:
        self._graft_armed.pop(id, None)
        if id in self.seen or id in self.pending:
            self.missing.pop(id, None)
            self.asked.pop(id, None)
            return
        failed = self.asked.pop(id, None)
        if failed is not None and (failed in self.eager or failed in self.lazy):
            n_unserved = self.unserved.get(failed, 0) + 1
            self.unserved[failed] = n_unserved
            if n_unserved > self.config.max_unserved:
                self.unserved.pop(failed, None)
                out.append(Disconnect(failed))
                self.neighbor_down(failed, out)
        announcers = self.missing.get(id)
        if not announcers:
            self.missing.pop(id, None)
            self.attempts.pop(id, None)
            return
        n = self.attempts.get(id, 0) + 1
        if n > min(self.config.max_graft_attempts, max(4, 2 * len(announcers))):
            self.missing.pop(id, None)
            self.attempts.pop(id, None)
            return
        self.attempts[id] = n
        peer, round = announcers.pop(0)
        announcers.append((peer, round))
        self._to_eager(peer)
        self.stats.grafts_sent += 1
        self.asked[id] = peer
        self._grafted[(id, peer)] = None
        if len(self._grafted) > self.config.max_missing:
            del self._grafted[next(iter(self._grafted))]
        out.append(SendTo(peer, Graft(id, round)))
        self._graft_armed[id] = None
        out.append(SetTimer(("graft", id), now + self.config.graft_timeout_2))

    def on_graft(self, peer: bytes, msg: Graft, now: int, out: list[Effect]) -> None:
        if msg.id is None and self.root is not None:
            self._on_attached(peer, announce=msg.round == 1)
        self._to_eager(peer)
        if msg.id is not None:
            cached = self.cache.get(msg.id)
            if cached is not None:
                out.append(SendTo(peer, Gossip(msg.id, cached[1], cached[0])))

    def on_prune(self, peer: bytes, out: list[Effect]) -> None:
        if self._on_tree_prune(peer, out):
            return
        if peer in self.eager:
            del self.eager[peer]
            self.lazy[peer] = None

    def on_dispatch_timer(self, out: list[Effect]) -> None:
        self._dispatch_armed = False
        queue, self.queue = self.queue, {}
        for peer, items in queue.items():
            if peer not in self.lazy and peer not in self.eager:
                continue
            for i in range(0, len(items), MAX_IHAVE):
                out.append(SendTo(peer, IHave(tuple(items[i : i + MAX_IHAVE]))))
