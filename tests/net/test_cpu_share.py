"""The CPU share of one peer (spec/06-sync.md H14), over real loopback TCP and real
SQLite files: the work a peer's messages cause is charged to it, and past its share,
while another peer shares the node, the node reads from it only as fast as the share
allows, without refusing it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from p2pcomm.group import GroupLog
from p2pcomm.net.node import CPU_PAUSE_MAX, Node
from tests.net.node_helpers import expect_all, follower, has_entry, open_node, sqlite, synced_with
from tests.sync_helpers import KIND_POST, group_history, key

#: A catch-up of this many entries costs a few tenths of a CPU second here.
ENTRIES = 1500
PATIENCE = 60.0


@contextlib.asynccontextmanager
async def receiver(
    tmp_path: Path, name: str, source: GroupLog, *, other: bool, **limits: float
) -> AsyncIterator[tuple[Node, GroupLog]]:
    """A node holding only ``source``'s genesis; with ``other``, already connected to
    a third node (idle, in sync) that shares it with the peer to come."""
    copy = follower(tmp_path, f"{name}-b", source)
    third = follower(tmp_path, f"{name}-c", source)
    async with (
        open_node(copy.store, key(61), **limits) as nb,
        open_node(third.store, key(62)) as nc,
    ):
        if other:
            events = nb.subscribe()
            await nb.connect(*nc.address)
            await expect_all(events, synced_with(nc.peer_id))
        yield nb, copy
    copy.store.close()
    third.store.close()


async def catch_up(
    tmp_path: Path, name: str, *, other: bool, **limits: float
) -> tuple[float, int, int]:
    """The receiver catches up ``ENTRIES`` posts from a node that has them. Returns
    the seconds it paced its reads, the peers it refused, and the entries it holds."""
    source = group_history(
        authors=3, entries=ENTRIES, seed=5, body_size=64, store=sqlite(tmp_path, f"{name}-a")
    )
    last = source.store.tips(source.group)[-1][2]
    with trio.fail_after(PATIENCE):
        async with (
            open_node(source.store, key(60)) as na,
            receiver(tmp_path, name, source, other=other, **limits) as (nb, copy),
        ):
            events = nb.subscribe()
            await nb.connect(*na.address)
            await expect_all(events, has_entry(last), synced_with(na.peer_id))
            stats = nb.statistics()
            held = copy.store.count(copy.group)
    source.store.close()
    return stats.cpu_paced_seconds, stats.refused_peers, held


async def test_a_peer_past_its_cpu_share_is_paced_not_refused(tmp_path: Path) -> None:
    # A share of 2% of a core after a burst of 10 ms: the catch-up outruns it at once.
    tiny = {"cpu_share": 0.02, "cpu_burst": 0.01}
    paced, refused, held = await catch_up(tmp_path, "tiny", other=True, **tiny)
    assert paced > 0.5, paced
    assert (refused, held) == (0, ENTRIES + 1)  # every post and the genesis
    # Alone, the same peer is not paced: nobody would gain from the pause.
    paced, refused, held = await catch_up(tmp_path, "alone", other=False, **tiny)
    assert (paced, refused, held) == (0.0, 0, ENTRIES + 1)
    # The default share leaves the same catch-up alone.
    paced, refused, held = await catch_up(tmp_path, "default", other=True)
    assert (paced, refused, held) == (0.0, 0, ENTRIES + 1)


async def test_a_stream_of_pushes_past_the_share_is_read_at_the_share(tmp_path: Path) -> None:
    """Live pushes, one post at a time: each is a read of its own, so past its share
    the peer's pushes wait for the share to refill between reads; all still arrive."""
    a_log = group_history(authors=2, entries=10, seed=23, store=sqlite(tmp_path, "a"))
    with trio.fail_after(PATIENCE):
        async with (
            open_node(a_log.store, key(50)) as na,
            receiver(tmp_path, "live", a_log, other=True, cpu_share=0.01, cpu_burst=0.0) as (
                nb,
                b_log,
            ),
        ):
            ev_b = nb.subscribe()
            await nb.connect(*na.address)
            await expect_all(ev_b, synced_with(na.peer_id))
            paced_before = nb.statistics().cpu_paced_seconds
            started = trio.current_time()
            for i in range(20):
                e = await na.append(a_log.group, KIND_POST, b"live %d" % i)
                await expect_all(ev_b, has_entry(e.id))
            took = trio.current_time() - started
            stats = nb.statistics()
            held = b_log.store.count(b_log.group)
    paced = stats.cpu_paced_seconds - paced_before
    assert paced > 1.0, paced
    # the pauses held the reads: all but the last one (it may follow the last read)
    # were over before the last post was read
    assert took >= paced - CPU_PAUSE_MAX, (took, paced)
    assert stats.refused_peers == 0
    assert held == a_log.store.count(a_log.group)
    a_log.store.close()
