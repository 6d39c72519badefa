"""The rooted broadcast tree (spec/07-gossip.md section 7.4, B10 to B14).

Theory of operation
-------------------
Pruning on duplicates (B3) builds a tree per author's traffic, and concurrent authors
tear it apart: each finds a different edge of the same cycle redundant. Here the tree's
shape does not depend on who writes. One member, the root, sends a numbered BEACON
every ``beacon_ms``; each node takes as its parent the neighbour that brought it a
beacon first (its fastest way to the root), attaches with ``graft(nil, r)`` and leaves
the old parent with ``prune``, and forwards the beacon one hop further. Eager links are
then exactly parent-child links, for every author. Within one beacon a parent had it
before its children, so no loop forms; a node that loses its parent takes a neighbour
that had the beacon at a smaller distance, never one below it.

A node that knows no root, or whose root has been silent for ``root_timeout``, stands
as root itself after a wait that is shorter for smaller ids, so that usually one node
does; a smaller root replaces a larger one as its beacons spread.

:class:`~.plumtree.Plumtree` inherits this: it owns the eager and lazy sets, and asks
here which links are the tree's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .events import Effect, SendTo, SetTimer
from .messages import MAX_SEQ, Beacon, Graft, Prune

if TYPE_CHECKING:
    from .plumtree import PlumtreeConfig

__all__ = ["RootedTree"]


class RootedTree:
    """The tree's state for one node: root, beacon number and its arrival, distance,
    parent, children, and each neighbour's last beacon."""

    def __init__(self, config: PlumtreeConfig, me: bytes, size: Callable[[], int] | None) -> None:
        self.config = config
        self.me = me
        #: the group's member count (B14), when the driver tells it
        self.size = size
        self.eager: dict[bytes, None] = {}
        self.lazy: dict[bytes, None] = {}
        self.root: bytes | None = None
        self.seq = 0
        self.dist = 0
        #: when the latest new beacon came (or the first neighbour, before any)
        self.heard = 0
        self.parent: bytes | None = None
        self.children: dict[bytes, None] = {}
        #: peer -> its last beacon (root, number, distance)
        self.beacons: dict[bytes, tuple[bytes, int, int]] = {}
        self._beacon_armed = False
        #: when the node last took a new root from a beacon (B11's rate)
        self._switched = -(2**62)
        #: children that asked for announcements as well (graft nil, 1); whether we did
        self.announce: dict[bytes, None] = {}
        self._announce_asked = False

    def _arm_beacon(self, now: int, out: list[Effect]) -> None:
        """The first neighbour starts the clock of B10."""
        if self.config.beacon_ms and not self._beacon_armed:
            self._beacon_armed = True
            self.heard = now
            out.append(SetTimer(("beacon",), now + self._stand_wait()))

    def _promote(self, peer: bytes) -> None:
        self.lazy.pop(peer, None)
        self.eager[peer] = None

    def _demote(self, peer: bytes, out: list[Effect]) -> bool:
        """Make an eager ``peer`` lazy and tell it (PRUNE); False if it was not eager."""
        if peer not in self.eager:
            return False
        del self.eager[peer]
        self.lazy[peer] = None
        out.append(SendTo(peer, Prune()))
        return True

    def _tree_neighbor_down(self, peer: bytes, out: list[Effect]) -> None:
        self.children.pop(peer, None)
        self.announce.pop(peer, None)
        self.beacons.pop(peer, None)
        if peer != self.parent:
            return
        self.parent = None
        # B13: another way to the root that cannot pass through us: a neighbour that had
        # this beacon at a smaller distance than ours (our subtree had it later).
        best: tuple[int, bytes] | None = None
        for q, (root, seq, hops) in self.beacons.items():
            same = root == self.root and seq == self.seq and q not in self.children
            if same and hops < self.dist and (best is None or hops < best[0]):
                best = (hops, q)
        if best is not None:
            self.dist = best[0] + 1
            self._attach(best[1], out)

    def flood_rounds(self) -> int:
        """Rounds from the author that go to every neighbour (B14)."""
        if self.root is None or self.size is None:
            return 0
        n, c, r = self.size(), self.config, 0
        while r < c.max_flood_rounds and c.flood_base * 4 ** (r + 1) <= n:
            r += 1
        return r

    def _attachment(self) -> Graft:
        """``graft(nil, 1)`` asks the parent to announce what it pushes, too: with fewer
        than two lazy neighbours, a lost push could leave this node no announcer."""
        self._announce_asked = len(self.lazy) < 2
        return Graft(None, 1 if self._announce_asked else 0)

    def _leave_parent(self, out: list[Effect]) -> None:
        old, self.parent = self.parent, None
        if old is not None and old not in self.children:
            self._demote(old, out)

    def _attach(self, peer: bytes, out: list[Effect]) -> None:
        """Make ``peer`` our parent: tell it (GRAFT nil) and leave the old one (PRUNE)."""
        if self.parent != peer:
            self._leave_parent(out)
        self.parent = peer
        self._promote(peer)
        out.append(SendTo(peer, self._attachment()))

    def _on_attached(self, peer: bytes, announce: bool) -> None:
        """``graft(nil, r)`` from a neighbour: it is our child (B12)."""
        if peer in self.lazy or peer in self.eager:
            self._promote(peer)
            self.children[peer] = None
            if announce:
                self.announce[peer] = None
            else:
                self.announce.pop(peer, None)

    def _on_tree_prune(self, peer: bytes, out: list[Effect]) -> bool:
        """``prune`` from a child ends it; from our parent it is answered by attaching
        again (B12). True when that answer is all there is to do."""
        self.children.pop(peer, None)
        self.announce.pop(peer, None)
        if peer != self.parent:
            return False
        out.append(SendTo(peer, self._attachment()))  # we are still its child
        return True

    def _become_rooted(self, out: list[Effect]) -> None:
        """Leave flooding: every eager link that is not the tree's becomes lazy."""
        for peer in list(self.eager):
            if peer != self.parent and peer not in self.children:
                self._demote(peer, out)

    def _send_beacon(self, skip: bytes | None, out: list[Effect]) -> None:
        assert self.root is not None
        msg = Beacon(self.root, self.seq, self.dist)
        for peer in (*self.eager, *self.lazy):
            if peer != skip:
                out.append(SendTo(peer, msg))

    def on_beacon(self, peer: bytes, msg: Beacon, now: int, out: list[Effect]) -> None:
        if peer not in self.eager and peer not in self.lazy:
            return
        if msg.root == self.me:
            if self.root == self.me and msg.seq > self.seq:
                self.seq = msg.seq  # an older incarnation's numbers still circulate
            return
        self.beacons[peer] = (msg.root, msg.seq, msg.hops)
        root, c = self.root, self.config
        if root is None or now - self.heard > c.root_timeout:
            pass  # no root, or a stale one: any beacon is new
        elif msg.root < root:
            # B11's rate: one change of root per stand_ms, so that a member making up
            # ever smaller roots cannot have every node forward each of them.
            if now - self._switched < c.stand_ms:
                return
        elif msg.root != root or msg.seq <= self.seq or now - self.heard < c.beacon_ms // 2:
            return  # not new, or too soon after the last: one beacon per half period
        if root is not None and msg.root != root:
            self._switched = now
        was_rooted = root is not None
        self.root, self.seq, self.dist, self.heard = msg.root, msg.seq, msg.hops + 1, now
        if not was_rooted:
            self.parent = peer  # kept eager by what follows
            self._become_rooted(out)
            self.parent = None
        if peer != self.parent:
            self.children.pop(peer, None)
            self._attach(peer, out)
        else:
            out.append(SendTo(peer, self._attachment()))  # again: a lost GRAFT heals here
        self._send_beacon(peer, out)

    def _stand_wait(self) -> int:
        """How long without a new beacon before this node stands as root (B10): smaller
        ids stand first, so that usually one node does."""
        c, b = self.config, self.me[0] if self.me else 0
        if self.root is None:
            return c.stand_ms + b * c.stand_ms // 256
        return c.root_timeout + b * c.beacon_ms // 256

    def on_beacon_timer(self, now: int, out: list[Effect]) -> None:
        c = self.config
        if self.root == self.me:
            self.seq = min(self.seq + 1, MAX_SEQ)
            self.heard = now
            self._send_beacon(None, out)
        elif (self.eager or self.lazy) and now - self.heard >= self._stand_wait():
            was_rooted = self.root is not None
            self.root, self.seq, self.dist, self.heard = self.me, 1, 0, now
            self._leave_parent(out)
            if not was_rooted:
                self._become_rooted(out)
            self._send_beacon(None, out)
        if self.root is None:
            at = max(now + 1, self.heard + self._stand_wait())
        else:
            at = now + c.beacon_ms
        out.append(SetTimer(("beacon",), at))
