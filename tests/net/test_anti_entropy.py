"""Anti-entropy (spec/07-gossip.md 7.12 N10): a node syncs now and then with a member
it knows of but holds no channel to, so that what gossip did not carry arrives anyway.

Real nodes over loopback TCP with real SQLite stores; waits are on the nodes' state.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from p2pcomm.core.gossip import GossipConfig, HyParViewConfig
from p2pcomm.net.node import Node, open_node
from p2pcomm.store.addresses import format_address

from .test_gossip_node import LOCALHOST, PATIENCE, holds, make_group, until


@contextlib.asynccontextmanager
async def strangers(
    tmp_path: Path, anti_entropy: float | None
) -> AsyncIterator[tuple[bytes, Node, Node]]:
    """Members 1 and 2 of a four-member group with no channel between them, so gossip
    carries nothing from one to the other: member 2's one neighbour is member 3 (its
    active view holds one), and member 1 has no contact. Member 2 knows member 1's
    address (as peer exchange would have told it), as a passive peer only."""
    group, keys, stores = make_group(tmp_path, 4)
    one = GossipConfig(hyparview=HyParViewConfig(active_view=1))
    try:
        async with (
            open_node(stores[1], keys[1], host=LOCALHOST, anti_entropy=None) as a,
            open_node(stores[3], keys[3], host=LOCALHOST, gossip=one, anti_entropy=None) as d,
            open_node(
                stores[2],
                keys[2],
                host=LOCALHOST,
                peers=[d.address],
                gossip=one,
                anti_entropy=anti_entropy,
            ) as c,
        ):
            ov = c.overlay
            assert ov is not None
            await until([c, d], lambda: ov.neighbours(group) == {d.peer_id})
            ov.groups[group].state.views._add_passive(
                a.peer_id, format_address(*a.address), a.peer_id, 0
            )
            yield group, a, c
    finally:
        for s in stores:
            s.close()


async def test_a_round_brings_what_gossip_never_carried_and_lets_the_peer_go(
    tmp_path: Path,
) -> None:
    with trio.fail_after(PATIENCE):
        async with strangers(tmp_path, None) as (group, a, c):
            post = await a.group(group).post("said while nobody listened")
            assert not holds(c, group, {post.id})
            ov = c.overlay
            assert ov is not None
            assert await ov.anti_entropy_round() == a.peer_id
            assert holds(c, group, {post.id})
            assert c.statistics().anti_entropy_rounds == 1
            # The channel was for the round only: it closes, and neither side made
            # the other a gossip neighbour.
            await until([a, c], lambda: a.peer_id not in c.peers() and not a.peers())
            assert a.peer_id not in ov.neighbours(group)


async def test_rounds_run_on_their_own(tmp_path: Path) -> None:
    with trio.fail_after(PATIENCE):
        async with strangers(tmp_path, 0.2) as (group, a, c):
            post = await a.group(group).post("heard in the end")
            await until([a, c], lambda: holds(c, group, {post.id}))


async def test_no_round_without_a_peer_to_try(tmp_path: Path) -> None:
    with trio.fail_after(PATIENCE):
        async with strangers(tmp_path, None) as (group, a, c):
            ov = c.overlay
            assert ov is not None
            ov.groups[group].state.views.passive.clear()
            assert await ov.anti_entropy_round() is None
            # A peer already connected is not a candidate either: its channel syncs.
            ov.groups[group].state.views._add_passive(
                a.peer_id, format_address(*a.address), a.peer_id, 0
            )
            c.add_peer(*a.address)
            await until([a, c], lambda: c.is_synced(a.peer_id))
            assert await ov.anti_entropy_round() is None
            assert c.statistics().anti_entropy_rounds == 0
