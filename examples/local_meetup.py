"""A local meetup: three members' nodes, no address configured, find each other.

Alice, Bob and Carol are in the same garden club (each device holds its history)
and meet in a hall with a local network and no internet. Each wrote something at
home that the others have not seen. Nobody types an address: each node advertises
itself over mDNS with tokens that only members of the club recognise, finds the
others, dials them, and the three converge on the same conversation.

The example keeps mDNS on loopback (127.0.0.1), so the three nodes run in this one
process and nothing leaves the machine. On a real network a node uses its LAN
interfaces (``p2pcomm run`` does by default).

    python examples/local_meetup.py

Exits 0 when the three nodes hold the same conversation.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

from p2pcomm import Group, Role, SqliteStore, generate_keypair, open_node
from p2pcomm.bundle import export_bundle, import_bundle
from p2pcomm.net.discovery import DiscoveryConfig
from p2pcomm.net.events import ItemAdded, ItemUpdated, PeerDiscovered
from p2pcomm.net.node import Node

ON_LOOPBACK = DiscoveryConfig(interfaces=("127.0.0.1",))


def readable(node: Node, group: bytes) -> int:
    g = node.group(group)
    return sum(i.text is not None for i in g.items()) if g.ready else 0


async def hear(node: Node, name: str, group: bytes, want: int) -> None:
    """Wait until ``node`` reads ``want`` items of ``group``, saying what arrives. The
    club is encrypted: a post arrives sealed until a member's node hands this one the
    key it was written under, then it reads."""
    events = node.subscribe()
    found = False
    while readable(node, group) < want:
        event = await events.receive()
        if isinstance(event, PeerDiscovered) and not found:
            found = True
            host, port = event.address
            print(f"{name}'s node found a member's node at {host}:{port} by mDNS")
        elif (
            isinstance(event, ItemAdded | ItemUpdated)
            and event.item.text is not None
            and event.item.author != node.peer_id
        ):
            print(f"{name}'s node reads: {event.item.text!r}")


async def run(folder: Path) -> bool:
    people = {name: generate_keypair() for name in ("alice", "bob", "carol")}
    stores = {name: SqliteStore(folder / f"{name}.db") for name in people}
    try:
        club = Group.create(stores["alice"], people["alice"], "Garden club", founder_name="alice")
        for name in ("bob", "carol"):
            club.add(people[name].public_key, Role.MEMBER, name=name)
        print("alice starts the garden club and adds bob and carol")
        # The club as it was at the last meeting, carried to bob's and carol's devices.
        export_bundle(stores["alice"], club.id, folder / "club.p2pb")
        for name in ("bob", "carol"):
            import_bundle(stores[name], folder / "club.p2pb")
        (folder / "club.p2pb").unlink()
        # Then each writes at home, alone.
        lines = {
            "alice": "Welcome to the meetup!",
            "bob": "I brought tomato seedlings.",
            "carol": "Who wants basil?",
        }
        for name, text in lines.items():
            Group(stores[name], people[name], club.id).post(text)
            print(f"{name} writes at home: {text!r}")
        async with (
            open_node(stores["alice"], people["alice"], discovery=ON_LOOPBACK) as a,
            open_node(stores["bob"], people["bob"], discovery=ON_LOOPBACK) as b,
            open_node(stores["carol"], people["carol"], discovery=ON_LOOPBACK) as c,
        ):
            nodes = {"alice": a, "bob": b, "carol": c}
            print("three nodes start; none is given an address")
            with trio.move_on_after(30):
                async with trio.open_nursery() as nursery:
                    for name, node in nodes.items():
                        nursery.start_soon(hear, node, name, club.id, 3)
            held = {
                name: sorted(str(i.text) for i in n.group(club.id).items())
                if n.group(club.id).ready
                else []
                for name, n in nodes.items()
            }
        if len(held["alice"]) == 3 and held["alice"] == held["bob"] == held["carol"]:
            print("the three nodes hold the same conversation: converged")
            return True
        print(f"not converged: {held}")
        return False
    finally:
        for s in stores.values():
            s.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="p2pcomm-example-") as tmp:
        return 0 if trio.run(run, Path(tmp)) else 1


if __name__ == "__main__":
    sys.exit(main())
