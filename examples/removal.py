"""Removal: a removed member receives nothing written after the removal.

Four hosts, each a network namespace behind one router, each running ``p2pcomm run``
as its own process: alice (admin), bob, carol and mallory. Mallory is removed while her
node is online and linked to the others. The members go on posting; mallory's node
keeps dialling every member, and later restarts and dials them all again. The claim:
her node learns that she was removed, and holds nothing written after it: not the
posts' text, not even their sealed entries.

    python examples/removal.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when the claim held, 77 when namespaces cannot be
made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from p2pcomm.testing.netlab import (
    Lab,
    found_group,
    left,
    readable,
    scenario,
    synced_with,
)

GROUP = "Garden club"
HOSTS = ["alice", "bob", "carol", "mallory"]
#: How long mallory's node is watched for anything new (a fixed wait is the point
#: here: it shows that nothing arrives, it synchronises nothing).
WATCH = 5.0


def main() -> int:
    with tempfile.TemporaryDirectory() as folder, Lab(HOSTS, Path(folder)) as lab:
        group, nodes = found_group(lab, "alice", HOSTS[1:], GROUP)
        before = lab["bob"].cli("post", GROUP, "Compost bins arrive Friday")
        for host in HOSTS:
            nodes[host].wait(readable(before["id"]))
        print(f"four hosts in {GROUP!r} (group {group[:16]}); all read bob's post")

        mallory = lab["mallory"].member
        lab["alice"].cli("remove", GROUP, mallory, "--reason", "spam")
        nodes["mallory"].wait(left(mallory))
        print("alice removes mallory; mallory's node learns it at once")

        # Carol writes once her node holds the removal: "after" it causally, not only
        # by the clock (a post written before she knew would still be mallory's to read).
        nodes["carol"].wait(left(mallory))
        after = [
            lab["alice"].cli("post", GROUP, "Gate code changes to 4411 tomorrow"),
            lab["carol"].cli("post", GROUP, "Bring gloves on Saturday"),
        ]
        for item in after:
            for host in ("alice", "bob", "carol"):
                nodes[host].wait(readable(item["id"]))
        print("alice and carol post; alice, bob and carol read both")

        # Mallory's node keeps trying: it is restarted, dialling every member.
        nodes["mallory"].stop()
        again = lab["mallory"].start(peers=[lab[h] for h in ("alice", "bob", "carol")])
        synced = [again.wait(synced_with(lab[h].member)) for h in ("alice", "bob", "carol")]
        again.drain(WATCH)
        print(f"mallory's node restarts and syncs with all {len(synced)} members")

        items = lab["mallory"].cli("read", GROUP)["items"]
        held = {i["id"] for i in items}
        new = [i for i in after if i["id"] in held]
        members = lab["mallory"].cli("members", GROUP)["members"]
        print(
            f"mallory's store: {len(items)} items, of those written after her removal: "
            f"{len(new)}; she is a member in her own view: "
            f"{any(m['id'] == mallory for m in members)}"
        )
        raw = b"".join(f.read_bytes() for f in lab["mallory"].home.rglob("*") if f.is_file())
        leaked = [t for t in ("4411", "gloves") if t.encode() in raw]
        if new or leaked or any(m["id"] == mallory for m in members) or before["id"] not in held:
            print(f"claim failed: held {new}, text found {leaked}")
            return 1
        print("claim held: the removed member received nothing written after her removal")
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
