"""Blind relay: two members who are never online at the same time exchange posts
through a relay that is not a member; the relay stores and forwards everything and
reads none of it; a removed member gets nothing new from it.

Three hosts, each a network namespace behind one router: alice (admin), bob, and a
relay (a node alice granted the right to carry the group with ``p2pcomm relay grant``;
it runs ``p2pcomm run --relay GROUP_ID`` and never becomes a member, never gets a key).
Alice and bob each come online only while the other is away, and dial only the relay.

    python examples/blind_relay.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when the claim held, 77 when namespaces cannot be
made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pcomm.testing.netlab import (
    Host,
    Lab,
    found_group,
    item_ids,
    left,
    readable,
    scenario,
    synced_with,
)

GROUP = "Garden club"


def carries(item_id: str) -> Callable[[dict[str, Any]], bool]:
    """The relay's node shows the item: stored, and sealed to it."""
    return lambda d: item_id in item_ids(d)


def texts(host: Host) -> list[str | None]:
    return [i["text"] for i in host.cli("read", GROUP)["items"]]


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab(["alice", "bob", "relay"], Path(folder)) as lab,
    ):
        alice, bob, relay = lab["alice"], lab["bob"], lab["relay"]
        group, nodes = found_group(lab, "alice", ["bob"], GROUP)
        relay.member = relay.cli("init", "--name", "relay")["id"]
        alice.cli("relay", "grant", GROUP, relay.member)
        nodes["bob"].stop()
        print(f"alice founded {GROUP!r}, bob joined and went offline; alice granted a relay")

        r = relay.start("--relay", group, peers=[alice])
        r.wait(synced_with(alice.member))
        first = alice.cli("post", GROUP, "Seed swap moved to Sunday")
        r.wait(carries(first["id"]))
        nodes["alice"].stop()
        print("alice posts while bob is away; the relay carries it; alice goes offline")

        b = bob.start(peers=[relay])
        b.wait(readable(first["id"]))
        reply = bob.cli("reply", GROUP, first["id"][:8], "Sunday works, I'll bring chard")
        r.wait(carries(reply["id"]))
        b.stop()
        print(
            "bob comes online, dialling only the relay: he reads alice's post and replies;"
            " bob goes offline"
        )

        a = alice.start(peers=[relay])
        a.wait(readable(reply["id"]))
        print(f"alice comes back, dialling only the relay: she reads {texts(alice)}")

        carried = relay.cli("read", group)["items"]  # its name is sealed to it
        raw = b"".join(f.read_bytes() for f in relay.home.rglob("*") if f.is_file())
        visible = [t for t in ("Seed swap", "chard", GROUP) if t.encode() in raw]
        legible = [i for i in carried if i["text"] is not None]
        print(
            f"the relay carried both entries; its read shows {len(carried)} items, "
            f"{len(legible)} readable; plaintext in its files: {visible or 'none'}"
        )
        if legible or visible or not carried:
            print("claim failed: the relay could read what it carried")
            return 1

        alice.cli("remove", GROUP, bob.member)
        secret = alice.cli("post", GROUP, "New allotment gate code: 7720")
        r.wait(carries(secret["id"]))
        a.stop()
        b = bob.start(peers=[relay])
        b.wait(left(bob.member))
        b.wait(synced_with(relay.member))
        held = {i["id"] for i in bob.cli("read", GROUP)["items"]}
        print(
            f"alice removes bob and posts; bob, back, dials the relay: it tells him he was "
            f"removed and serves the new post: {secret['id'] in held}"
        )
        if secret["id"] in held:
            print("claim failed: the relay served a removed member")
            return 1
        print(
            "claim held: alice and bob, never online together, talked through a relay "
            "that read nothing, and that gave the removed member nothing new"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
