"""Gossip on real nodes (spec/07-gossip.md 7.12): members' nodes over loopback TCP,
each given one contact, keep a bounded set of neighbours, spread new entries along a
tree, and heal when a node goes away.

Real time and real sockets; nothing sleeps to synchronise: waits are on the nodes'
state (``Node._changed``) under ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import trio

from p2pcomm.community import Group
from p2pcomm.core.gossip import GossipConfig, HyParViewConfig, PlumtreeConfig
from p2pcomm.core.gossip.messages import Gossip
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import create_entry
from p2pcomm.core.membership import Kind, Role
from p2pcomm.core.sync import encode_gossip_entry
from p2pcomm.net.node import Node, open_node
from p2pcomm.store import SqliteStore
from p2pcomm.testing.history import keypair

PATIENCE = 30.0
LOCALHOST = "127.0.0.1"


def make_group(tmp_path: Path, n: int) -> tuple[bytes, list[KeyPair], list[SqliteStore]]:
    """A group founded by member 0 with members 1..n-1, copied into n stores."""
    keys = [keypair(i) for i in range(n)]
    first = SqliteStore(tmp_path / "n0.db", durable=False)
    group = Group.create(first, keys[0], "gossip club")
    for k in keys[1:]:
        group.add(k.public_key, Role.MEMBER)
    entries = [e for _, e in first.iter_entries(group.id)]
    stores = [first]
    for i in range(1, n):
        store = SqliteStore(tmp_path / f"n{i}.db", durable=False)
        store.put_entries(group.id, entries)
        stores.append(store)
    return group.id, keys, stores


async def until(nodes: Sequence[Node], cond: Callable[[], bool]) -> None:
    """Wait until ``cond()`` holds, looking again whenever any node's state changes."""
    while not cond():
        async with trio.open_nursery() as nursery:

            async def one(node: Node) -> None:
                await node._wait_change()
                nursery.cancel_scope.cancel()

            for node in nodes:
                nursery.start_soon(one, node)


def holds(node: Node, group: bytes, ids: set[bytes]) -> bool:
    store = node.store
    return all(store.entry_meta(group, i) is not None for i in ids)


@contextlib.asynccontextmanager
async def network(
    tmp_path: Path,
    n: int,
    *,
    active: int = 3,
    bound: int = 6,
    shuffle_ms: int = 60_000,
    plumtree: PlumtreeConfig | None = None,
) -> AsyncIterator[tuple[bytes, list[Node], list[trio.CancelScope]]]:
    """``n`` member nodes; node i > 0 is given node 0's address as its one contact.
    Yields the group, the nodes, and a cancel scope per node (cancel it: a crash)."""
    group, keys, stores = make_group(tmp_path, n)
    config = GossipConfig(
        hyparview=HyParViewConfig(active_view=active, passive_view=12, shuffle_interval=shuffle_ms),
        plumtree=plumtree or PlumtreeConfig(prune_grace=0),
    )
    nodes: list[Node] = []
    scopes: list[trio.CancelScope] = []

    async def run(i: int, task_status: trio.TaskStatus[Node]) -> None:
        peers = [nodes[0].address] if i else []
        with trio.CancelScope() as scope:
            scopes.append(scope)
            async with open_node(
                stores[i],
                keys[i],
                host=LOCALHOST,
                peers=peers,
                gossip=config,
                max_connections=bound,
            ) as node:
                task_status.started(node)
                await trio.sleep_forever()

    try:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nodes.append(await nursery.start(run, i))
            yield group, nodes, scopes
            nursery.cancel_scope.cancel()
    finally:
        for s in stores:
            s.close()


def neighbours(node: Node, group: bytes) -> set[bytes]:
    ov = node.overlay
    assert ov is not None
    return ov.neighbours(group)


async def test_a_star_of_contacts_becomes_a_bounded_overlay_that_spreads_posts(
    tmp_path: Path,
) -> None:
    n, active, bound = 8, 3, 6
    with trio.fail_after(PATIENCE):
        async with network(tmp_path, n, active=active, bound=bound) as (group, nodes, _):
            most = 0

            def settled() -> bool:
                nonlocal most
                most = max(most, *(len(node.peers()) for node in nodes))
                return all(neighbours(node, group) for node in nodes)

            await until(nodes, settled)
            # Node 0 was everyone's contact, yet holds no more than its bound.
            assert most <= bound
            assert all(len(neighbours(node, group)) <= active for node in nodes)
            rng = random.Random(7)

            async def post_and_spread(count: int) -> set[bytes]:
                # One at a time, as a conversation goes.
                posted: set[bytes] = set()
                for k in range(count):
                    author = nodes[rng.randrange(n)]
                    entry = await author.group(group).post(f"post {k}")
                    posted.add(entry.id)
                    await until(
                        nodes,
                        lambda: all(holds(node, group, posted) for node in nodes) and settled(),
                    )
                return posted

            # The first broadcasts go out on every link and prune the redundant ones.
            await post_and_spread(4)
            before = sum(node.statistics().entries_received for node in nodes)
            posted = await post_and_spread(16)
            received = sum(node.statistics().entries_received for node in nodes) - before
            copies = received / (len(posted) * (n - 1))
            # Flooding over the same overlay costs about the mean degree minus one
            # (about 2 here); the tree costs about one copy.
            assert copies < 1.5, copies
            assert most <= bound


def passive(node: Node, group: bytes) -> list[bytes]:
    ov = node.overlay
    assert ov is not None
    return ov.groups[group].state.passive


async def test_the_overlay_heals_when_a_node_crashes(tmp_path: Path) -> None:
    """Everyone's one contact crashes. Peer exchange (shuffles, whose replies travel on
    channels opened for them) has told each node of others to turn to: the rest stay
    one overlay and a post still reaches them all."""
    n = 7
    with trio.fail_after(PATIENCE):
        async with network(tmp_path, n, active=3, bound=6, shuffle_ms=300) as (
            group,
            nodes,
            scopes,
        ):
            # Shuffles run every 300 ms; wait for one reply carried on a channel of its
            # own, besides full views (forward joins may fill passive views first).
            await until(
                nodes,
                lambda: all(
                    neighbours(node, group) and len(passive(node, group)) >= 2 for node in nodes
                )
                and sum(node.overlay.delivered for node in nodes if node.overlay) > 0,
            )
            # The contact everyone was given goes away.
            scopes[0].cancel()
            rest = nodes[1:]
            gone = nodes[0].peer_id
            await until(
                rest,
                lambda: all(neighbours(node, group) and gone not in node.peers() for node in rest),
            )
            entry = await rest[0].group(group).post("still here")
            await until(rest, lambda: all(holds(node, group, {entry.id}) for node in rest))


async def test_members_agree_on_one_root_and_a_tree_of_parents(tmp_path: Path) -> None:
    """Spec 07 B10 to B12 over real channels: one member stands as root, the others
    attach to the neighbour that brought them its beacon first, and each parent holds
    its children eager; a post then reaches everyone along that tree."""
    n = 6
    fast = PlumtreeConfig(beacon_ms=300, root_timeout=900, stand_ms=200)
    with trio.fail_after(PATIENCE):
        async with network(tmp_path, n, active=3, bound=6, plumtree=fast) as (group, nodes, _):

            def one_tree() -> bool:
                trees = {}
                for node in nodes:
                    ov = node.overlay
                    assert ov is not None
                    trees[node.peer_id] = ov.groups[group].state.tree
                roots = {t.root for t in trees.values()}
                if len(roots) != 1 or None in roots:
                    return False  # not yet one root for all
                rooted = [me for me, t in trees.items() if t.root == me]
                return len(rooted) == 1 and all(
                    t.parent is not None and t.parent in trees and me in trees[t.parent].children
                    for me, t in trees.items()
                    if me not in rooted
                )

            await until(nodes, one_tree)
            entry = await nodes[n - 1].group(group).post("along the tree")
            await until(nodes, lambda: all(holds(node, group, {entry.id}) for node in nodes))


async def test_an_entry_membership_voids_is_kept_but_not_gossiped_on(tmp_path: Path) -> None:
    """Spec 04 F1 over gossip: a member's node (2) pushes node 1 a well-formed post by a
    key that is no member. Node 1 keeps it (it is valid; F1: SHOULD keep) but shows it
    nowhere and gossips it to nobody: node 0, which hears from node 1 the post it writes
    next, never receives the stranger's body (sync sends the header alone, 04 F2, as
    node 1's post depends on it)."""
    with trio.fail_after(PATIENCE):
        async with network(tmp_path, 3, active=3, bound=6) as (group, nodes, _):
            await until(nodes, lambda: all(len(neighbours(node, group)) == 2 for node in nodes))
            first = await nodes[0].group(group).post("before")
            await until(nodes, lambda: all(holds(node, group, {first.id}) for node in nodes))
            stranger = create_entry(
                keypair(99),
                group=group,
                seq=1,
                prev=None,
                links=[first.id],
                timestamp=first.header.timestamp + 1,
                kind=Kind.POST,
                body=b"from nobody",
            )
            relay = nodes[2].overlay
            assert relay is not None
            assert relay._send(
                group, nodes[1].peer_id, Gossip(stranger.id, 0, encode_gossip_entry(stranger))
            )
            await until(nodes, lambda: holds(nodes[1], group, {stranger.id}))
            assert not nodes[1].membership(group).should_forward(stranger.id)
            after = await nodes[1].group(group).post("after")
            await until(nodes, lambda: holds(nodes[0], group, {after.id}))
            # Node 1's post links what node 1 holds, the stranger's post among it (04
            # W4 asks writers not to): node 0 may fetch its header, never its body.
            held = nodes[0].store.get_entry(group, stranger.id)
            assert held is None or held.body is None
            ov = nodes[1].overlay
            assert ov is not None
            assert stranger.id not in ov.groups[group].state.tree.cache  # nothing to serve
            assert stranger.id not in {i.id for i in nodes[1].group(group).items()}
