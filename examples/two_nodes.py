"""Two members' nodes in one process, over real TCP on loopback.

Alice starts a group and writes; Bob's node connects, catches up, and then receives
new entries live as Alice writes them.

    python examples/two_nodes.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from p2pcomm import GroupLog, SqliteStore, generate_keypair
from p2pcomm.net.node import EntriesAdded, GroupSynced, open_node

KIND_TEXT = 16


async def main() -> None:
    alice, bob = generate_keypair(), generate_keypair()
    folder = Path(tempfile.mkdtemp(prefix="p2pcomm-example-"))
    with (
        SqliteStore(folder / "alice.db") as alice_store,
        SqliteStore(folder / "bob.db") as bob_store,
    ):
        group = GroupLog.create(alice_store, alice, body=b"Garden club").group
        log = GroupLog(alice_store, group)
        log.append_many(alice, [(KIND_TEXT, f"note {i}".encode()) for i in range(1000)])
        print(f"alice wrote {len(log)} entries in group {group.hex()[:16]}")

        async with (
            open_node(alice_store, alice) as alice_node,
            open_node(bob_store, bob, groups=[group], listen=False) as bob_node,
        ):
            events = bob_node.subscribe()
            await bob_node.connect(*alice_node.address)
            async for event in events:
                if isinstance(event, GroupSynced):
                    print(f"bob caught up: {bob_store.count(group)} entries")
                    break
            entry = await alice_node.append(group, KIND_TEXT, b"Seed swap moved to Sunday")
            async for event in events:
                if isinstance(event, EntriesAdded) and entry in event.entries:
                    print(f"bob got alice's new entry live: {event.entries[-1].body!r}")
                    break
    print(f"stores in {folder}")


if __name__ == "__main__":
    trio.run(main)
