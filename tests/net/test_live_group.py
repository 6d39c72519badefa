"""``LiveGroup`` (``p2pcomm/net/live.py``) and the node's application events, over real
loopback TCP. Every wait is bounded by ``trio.fail_after`` and none sleeps.

Story (``test_a_group_lives_on_two_nodes``):

  1: Alice's node creates "Garden club" and invites with its own address.
  2: Bob's node, knowing nothing else, joins with the code: ``join`` returns once
     Alice's node holds the JOIN; both see Bob as a member (MemberJoined on Alice's).
  3: Bob posts: Alice gets ItemAdded with the text, from Bob.
  4: Alice hides it: Bob gets ItemHidden; Alice deletes it: Bob gets ItemDeleted and
     his store has dropped the body by then.
  5: Bob, a member, tries to remove Alice: RefusedError, nothing stored or sent.
  6: Alice makes Bob a moderator (MemberRoleChanged on both), then removes him
     (MemberLeft "removed" on both).

Also: an address that does not answer gives one PeerUnreachable, however often it is
retried; a group whose first entry has not arrived is not ready and its state is
NotFoundError.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from p2pcomm.core.membership import Role
from p2pcomm.errors import NotFoundError, RefusedError
from p2pcomm.net.events import (
    ItemAdded,
    ItemDeleted,
    ItemHidden,
    MemberJoined,
    MemberLeft,
    MemberRoleChanged,
    NodeEvent,
    PeerUnreachable,
)
from p2pcomm.net.node import Node, open_node
from p2pcomm.store import BodyState, SqliteStore
from p2pcomm.testing.history import named_keypair

ALICE = named_keypair("alice")
BOB = named_keypair("bob")
PATIENCE = 10.0

E = TypeVar("E")


async def expect(
    events: trio.MemoryReceiveChannel[NodeEvent],
    kind: type[E],
    where: Callable[[E], bool] = lambda _: True,
) -> E:
    """The next event of ``kind`` that satisfies ``where`` (others are skipped)."""
    async for event in events:
        if isinstance(event, kind) and where(event):
            return event
    raise AssertionError(f"the node closed the channel before a {kind.__name__}")


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    with SqliteStore(tmp_path / "alice.db") as a, SqliteStore(tmp_path / "bob.db") as b:
        yield a, b


@asynccontextmanager
async def two_nodes(
    stores: tuple[SqliteStore, SqliteStore],
) -> AsyncIterator[tuple[Node, Node]]:
    a_store, b_store = stores
    async with open_node(a_store, ALICE) as na, open_node(b_store, BOB, listen=False) as nb:
        yield na, nb


def entries_sent(node: Node) -> int:
    return sum(c.replicator.stats.entries_sent for c in node._conns.values())


async def test_a_group_lives_on_two_nodes(stores: tuple[SqliteStore, SqliteStore]) -> None:
    a_store, b_store = stores
    with trio.fail_after(PATIENCE):
        async with two_nodes(stores) as (na, nb):
            a_events, b_events = na.subscribe(), nb.subscribe()
            club = await na.create_group("Garden club", founder_name="alice")
            host, port = na.address
            inv = await club.invite(addresses=[f"{host}:{port}"])
            assert inv.code.hints == (f"{host}:{port}",)

            # 2: Bob's node knows nothing but the code.
            assert nb.peers() == [] and b_store.groups() == []
            bobs = await nb.join(inv.text, name="bob")
            assert bobs.id == club.id
            joins = [
                e for _, e in a_store.iter_entries(club.id) if e.header.author == BOB.public_key
            ]
            assert len(joins) == 1  # Alice's node holds the JOIN
            assert club.role(BOB.public_key) is Role.MEMBER
            assert bobs.role() is Role.MEMBER and bobs.name == "Garden club"
            assert [(m.name, m.role) for m in bobs.members()] == [
                ("alice", Role.ADMIN),
                ("bob", Role.MEMBER),
            ]
            joined = await expect(a_events, MemberJoined)
            assert (joined.member, joined.role, joined.name) == (BOB.public_key, Role.MEMBER, "bob")

            # wait_synced: already in sync, so it returns without blocking at all.
            with trio.move_on_after(0) as scope:
                assert await bobs.wait_synced() == ALICE.public_key
                assert await club.wait_synced(BOB.public_key) == BOB.public_key
            assert not scope.cancelled_caught

            # 3: Bob posts.
            post = await bobs.post("I'll bring beans")
            added = await expect(a_events, ItemAdded, lambda e: e.item.id == post.id)
            assert (added.item.text, added.item.author, added.origin) == (
                "I'll bring beans",
                BOB.public_key,
                BOB.public_key,
            )
            assert [i.text for i in club.items()] == ["I'll bring beans"]
            mine = await expect(b_events, ItemAdded, lambda e: e.item.id == post.id)
            assert mine.origin is None  # written on this node

            # 4: Alice hides it, then deletes it.
            await club.hide(post.id, "later")
            hidden = await expect(b_events, ItemHidden)
            assert (hidden.item.id, hidden.hidden) == (post.id, True)
            assert bobs.items() == [] and bobs.items(include_hidden=True)[0].id == post.id
            await club.delete(post.id, "off topic")
            deleted = await expect(b_events, ItemDeleted)
            assert deleted.item_id == post.id
            assert b_store.body_state(club.id, post.id) is BodyState.DROPPED
            assert a_store.body_state(club.id, post.id) is BodyState.DROPPED
            assert bobs.items(include_hidden=True) == []

            # 5: refused over the live handle: nothing stored, nothing sent.
            counts = (a_store.count(club.id), b_store.count(club.id))
            # entries, not bytes: gossip's own messages (a beacon) may go meanwhile
            sent = entries_sent(nb)
            with pytest.raises(RefusedError) as info:
                await bobs.remove(ALICE.public_key)
            assert info.value.reason == "insufficient-role"
            with pytest.raises(NotFoundError):
                await bobs.reply(b"\x07" * 32, "?")
            assert (a_store.count(club.id), b_store.count(club.id)) == counts
            assert entries_sent(nb) == sent

            # 6: role change, then removal.
            await club.set_role(BOB.public_key, Role.MODERATOR)
            for events in (a_events, b_events):
                changed = await expect(events, MemberRoleChanged)
                assert (changed.member, changed.old, changed.new) == (
                    BOB.public_key,
                    Role.MEMBER,
                    Role.MODERATOR,
                )
            await club.remove(BOB.public_key, reason="moved away")
            for events in (a_events, b_events):
                left = await expect(events, MemberLeft)
                assert (left.member, left.how) == (BOB.public_key, "removed")
            assert bobs.role() is None and club.role(BOB.public_key) is None
            with pytest.raises(RefusedError) as info:
                await bobs.post("still here?")
            assert info.value.reason == "not-a-member"


async def test_an_unreachable_address_is_reported_once(tmp_path: Path) -> None:
    # A port that was bound, then closed: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SqliteStore(tmp_path / "bob.db") as store, trio.fail_after(PATIENCE):
        async with open_node(store, BOB, listen=False) as node:
            events = node.subscribe()
            node.add_peer("127.0.0.1", port)
            node.add_peer("127.0.0.1", port)  # kept once
            first = await expect(events, PeerUnreachable)
            assert first.address == ("127.0.0.1", port) and first.retry_in > 0
            # Let it fail twice more (the node notes every failure), then look back.
            while node.dial_failures()[("127.0.0.1", port)][0] < 3:
                await node._wait_change()
            more: list[NodeEvent] = []
            while True:
                try:
                    more.append(events.receive_nowait())
                except trio.WouldBlock:
                    break
            assert not [e for e in more if isinstance(e, PeerUnreachable)]


async def test_a_group_whose_first_entry_has_not_arrived(tmp_path: Path) -> None:
    group = b"\x42" * 32
    with SqliteStore(tmp_path / "bob.db") as store, trio.fail_after(PATIENCE):
        async with open_node(store, BOB, groups=[group], listen=False) as node:
            live = node.group(group)
            assert not live.ready
            for read in (
                lambda: live.state,
                lambda: live.view,
                lambda: live.members(),
                lambda: live.items(),
                lambda: live.role(),
            ):
                with pytest.raises(NotFoundError):
                    read()
            with pytest.raises(NotFoundError):
                await live.post("anyone?")
            assert store.count(group) == 0
