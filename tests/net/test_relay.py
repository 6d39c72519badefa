"""A blind relay at scale, in one process over real TCP on loopback with real SQLite
files (spec/12-encryption.md 12.14): a relay that carried a group for 1,000 posts
served every one of them to a member who was never online with their author, read
none of them, and served none to a member removed before they were written.

The command-line path with separate processes is tests/test_relay_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pcomm.community import Group
from p2pcomm.group import GroupLog
from p2pcomm.net.events import GroupSynced
from p2pcomm.net.node import open_node
from p2pcomm.store import SqliteStore
from p2pcomm.testing.history import named_keypair

pytestmark = pytest.mark.slow

ALICE, BOB, CAROL, RELAY = (named_keypair(n) for n in ("alice", "bob", "carol", "relay"))
POSTS = 1000
PATIENCE = 120


def copy(src: SqliteStore, dst: SqliteStore, group: bytes) -> None:
    result = GroupLog(dst, group).ingest([e for _, e in src.iter_entries(group)])
    assert not result.rejected


async def synced_with(node_events: trio.MemoryReceiveChannel[object], peer: bytes) -> None:
    async for ev in node_events:
        if isinstance(ev, GroupSynced) and ev.peer_id == peer:
            return


async def test_a_relay_serves_a_thousand_posts_to_members_and_reads_none(tmp_path: Path) -> None:
    stores = {n: SqliteStore(tmp_path / f"{n}.db") for n in ("alice", "bob", "carol", "relay")}
    a, b, c, r = stores["alice"], stores["bob"], stores["carol"], stores["relay"]
    try:
        club = Group.create(a, ALICE, "Garden club", founder_name="alice")
        club.add(BOB.public_key, name="bob")
        club.add(CAROL.public_key, name="carol")
        club.grant_relay(RELAY.public_key)
        for store, kp in ((b, BOB), (c, CAROL)):
            copy(a, store, club.id)
            Group(store, kp, club.id).publish_keys()
            copy(store, a, club.id)
        club.welcome()
        for store in (b, c):
            copy(a, store, club.id)
        club.remove(CAROL.public_key)  # before any of the posts
        texts = [f"post {i}: tomatoes, beans and {i} seeds" for i in range(POSTS)]
        ids = [club.post(t).id for t in texts]

        with trio.fail_after(PATIENCE):
            # Alice's node hands the group to the relay, then goes away.
            async with open_node(r, RELAY, host="127.0.0.1", port=0, groups=[club.id]) as rn:
                relay_events = rn.subscribe()
                async with open_node(a, ALICE, listen=False) as an:
                    an.add_peer(*rn.address)
                    await synced_with(relay_events, ALICE.public_key)  # the relay's side
                held = {e.id for _, e in r.iter_entries(club.id)}
                assert set(ids) <= held
                # Bob, who was never online with alice, gets all of it from the relay.
                async with open_node(b, BOB, listen=False) as bn:
                    events = bn.subscribe()
                    bn.add_peer(*rn.address)
                    await synced_with(events, RELAY.public_key)
                # Carol, removed, asks the relay too.
                async with open_node(c, CAROL, listen=False) as cn:
                    events = cn.subscribe()
                    cn.add_peer(*rn.address)
                    await synced_with(events, RELAY.public_key)

        bob_reads = {i.id: i.text for i in Group(b, BOB, club.id).items()}
        assert [bob_reads.get(i) for i in ids] == texts  # 100% served, and readable
        carol_holds = {e.id for _, e in c.iter_entries(club.id)}
        assert not carol_holds & set(ids)  # 0 served to the removed member
        relay_view = Group(r, RELAY, club.id)
        assert relay_view.role() is None and relay_view.name == ""
        assert [i.text for i in relay_view.items()] == [None] * POSTS
        assert all(i.sealed for i in relay_view.items())
    finally:
        for s in stores.values():
            s.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("relay"))
    assert raw and not any(t.encode() in raw for t in texts)  # 0 bodies readable
    assert b"Garden club" not in raw
