"""The node and membership (spec/04-membership.md 4.11): over real loopback TCP.

Story:
  1: Alice founds the group and adds Bob as a member.
  2: Bob posts "hello"; Mallory, who was never added, posts "spam".
  3: Alice (admin) deletes Bob's post.
  4: Bob's node, empty, connects to Alice's node and catches up.

Expected on Bob's node: the membership it computes is Alice (admin) and Bob (member),
announced as MembershipChanged; Mallory's spam arrives header-only (its content is
never forwarded, but the log stays complete); the deleted post's body is not held; and a
post Bob then writes reaches Alice live, with its body.
"""

from __future__ import annotations

from pathlib import Path

import trio

from p2pcomm.core.content import Post
from p2pcomm.core.membership import Kind, Role
from p2pcomm.group import GroupLog
from p2pcomm.net.node import EntriesAdded, GroupSynced, MembershipChanged, open_node
from p2pcomm.store import BodyState, SqliteStore
from p2pcomm.testing.history import History, keypair

PATIENCE = 20.0


async def test_membership_filters_forwarding_and_drops_deleted_bodies(tmp_path: Path) -> None:
    history, alice = History.found(keypair(0), name="garden club")
    bob = history.replica(keypair(1))
    mallory = history.replica(keypair(2))
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    mallory.sync(alice)
    hello = bob.post("hello")
    spam = mallory.post("spam")
    alice.sync(bob, mallory)
    alice.delete(hello, "off topic")

    group = history.entries[0].id
    a_store = SqliteStore(tmp_path / "a.db")
    b_store = SqliteStore(tmp_path / "b.db")
    try:
        result = GroupLog(a_store, group).ingest(history.entries)
        assert len(result.accepted) == len(history.entries)
        with trio.fail_after(PATIENCE):
            async with (
                open_node(a_store, alice.keypair) as na,
                open_node(b_store, bob.keypair, groups=[group], listen=False) as nb,
            ):
                # Alice's node applied the delete to its own store when it loaded.
                assert a_store.body_state(group, hello.id) is BodyState.DROPPED
                assert not na.membership(group).should_forward(spam.id)

                events = nb.subscribe()
                await nb.connect(*na.address)
                members = None
                async for event in events:
                    if isinstance(event, MembershipChanged):
                        members = dict(event.members)
                    if isinstance(event, GroupSynced):
                        break
                assert members == {alice.id: Role.ADMIN, bob.id: Role.MEMBER}
                assert b_store.count(group) == len(history.entries)
                spam_copy = b_store.get_entry(group, spam.id)
                assert spam_copy is not None and spam_copy.body is None
                assert b_store.body_state(group, spam.id) is BodyState.MISSING
                assert b_store.get_entry(group, hello.id).body is None  # type: ignore[union-attr]
                state = nb.membership(group).state
                assert not state.authorized(spam.id) and state.authorized(hello.id)
                assert hello.id in nb.membership(group).view().drop_bodies

                a_events = na.subscribe()
                live = await nb.append(group, Kind.POST, Post(text="see you").encode())
                async for event in a_events:
                    if isinstance(event, EntriesAdded) and live.id in {e.id for e in event.entries}:
                        break
                got = a_store.get_entry(group, live.id)
                assert got is not None and got.body == live.body
                assert na.membership(group).state.authorized(live.id)
    finally:
        a_store.close()
        b_store.close()
