"""Joining with a code, over real TCP on loopback: any reachable member admits the
newcomer; the inviter need not be online.

    alice (admin) --invites--> code (hint: alice's address, which is down)
    carol (member) holds the group and runs a node
    bob has the code and carol's address: joins through carol
"""

from __future__ import annotations

import socket

import trio
import trio.testing

from p2pcomm import Group, MemoryStore, Role, generate_keypair, open_node
from p2pcomm.group import GroupLog


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_member_other_than_the_inviter_admits_the_newcomer() -> None:
    alice, carol, bob = generate_keypair(), generate_keypair(), generate_keypair()
    alice_store, carol_store = MemoryStore(), MemoryStore()
    club = Group.create(alice_store, alice, "club", founder_name="alice")
    club.add(carol.public_key, Role.MEMBER, name="carol")
    invitation = club.invite(addresses=[f"127.0.0.1:{_closed_port()}"])  # alice goes offline
    GroupLog(carol_store, club.id).ingest(e for _, e in alice_store.iter_entries(club.id))

    async with open_node(carol_store, carol, port=0) as carol_node:
        host, port = carol_node.address
        async with open_node(MemoryStore(), bob, listen=False, groups=[], peers=[(host, port)]) as bob_node:
            with trio.fail_after(30):
                garden = await bob_node.join(invitation.text, name="bob")
            assert garden.role() is Role.MEMBER
            assert carol_node.group(club.id).role(bob.public_key) is Role.MEMBER
            # The code's unreachable hint was tried and reported, not fatal.
            assert (("127.0.0.1", invitation.code.hint_addresses()[0][1])) in bob_node.dial_failures()


async def test_join_waits_for_a_member_then_completes() -> None:
    """The newcomer starts before any member is reachable; the join completes once one
    is (no sleeping: the node waits on its own state)."""
    alice, bob = generate_keypair(), generate_keypair()
    alice_store = MemoryStore()
    club = Group.create(alice_store, alice, "club")
    async with open_node(alice_store, alice, port=0) as alice_node:
        host, port = alice_node.address
        invitation = await alice_node.group(club.id).invite()  # no address in the code
        async with open_node(MemoryStore(), bob, listen=False, groups=[]) as bob_node:
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def join() -> None:
                    await bob_node.join(invitation.text)
                    done.set()

                nursery.start_soon(join)
                await trio.testing.wait_all_tasks_blocked()
                assert not done.is_set()
                bob_node.add_peer(host, port)
                with trio.fail_after(30):
                    await done.wait()
            assert alice_node.group(club.id).role(bob.public_key) is Role.MEMBER
