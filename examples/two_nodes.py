"""Two members' nodes in one process, over real TCP on loopback.

Alice starts a group and invites Bob with a code that says where her node listens.
Bob's node, knowing nothing else, joins with the code; then they talk, and each post
arrives on the other node live.

    python examples/two_nodes.py

Exits 0 when every message arrived.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from p2pcomm import Group, SqliteStore, generate_keypair, open_node
from p2pcomm.net.events import ItemAdded, MemberJoined


async def run(folder: Path) -> None:
    alice, bob = generate_keypair(), generate_keypair()
    with (
        SqliteStore(folder / "alice.db") as alice_store,
        SqliteStore(folder / "bob.db") as bob_store,
    ):
        club = Group.create(alice_store, alice, "Garden club", founder_name="alice")
        club.post("Welcome! Seed swap on Saturday.")
        async with open_node(alice_store, alice, host="127.0.0.1", port=0) as alice_node:
            host, port = alice_node.address
            print(f"alice's node listens on {host}:{port}")
            heard = alice_node.subscribe()
            invitation = await alice_node.group(club.id).invite(addresses=[f"{host}:{port}"])
            print(f"alice invites bob: {invitation.text[:32]}...")

            async with open_node(bob_store, bob, listen=False, groups=[]) as bob_node:
                with trio.fail_after(30):
                    garden = await bob_node.join(invitation.text, name="bob")
                print(f"bob joined {garden.name!r}; he sees: {[i.text for i in garden.items()]}")

                bob_heard = bob_node.subscribe()
                await garden.post("Hi all, I'll bring tomato seeds.")
                with trio.fail_after(30):
                    async for event in heard:
                        if isinstance(event, MemberJoined):
                            print(f"alice's node: {event.name} joined as {event.role.name.lower()}")
                        if isinstance(event, ItemAdded) and event.origin == bob.public_key:
                            print(f"alice's node received: {event.item.text!r}")
                            break

                await alice_node.group(club.id).post("Great, see you Saturday!")
                with trio.fail_after(30):
                    async for event in bob_heard:
                        if isinstance(event, ItemAdded) and event.item.author == alice.public_key:
                            print(f"bob's node received: {event.item.text!r}")
                            break

                texts = [i.text for i in garden.items()]
                assert texts == [
                    "Welcome! Seed swap on Saturday.",
                    "Hi all, I'll bring tomato seeds.",
                    "Great, see you Saturday!",
                ], texts
                print("both nodes hold the whole conversation")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="p2pcomm-example-") as tmp:
        trio.run(run, Path(tmp))


if __name__ == "__main__":
    main()
