"""Censoring member: a member's node passes on everything but one author's posts; that
author's posts reach every other member anyway.

Five hosts (alice, bob, carol, dave, mallory), each a network namespace behind one
router, each running a node as a separate process. They form the garden club the
ordinary way (invitation codes, ``join``); mallory is a member like the others, but her
node is ``python -m p2pcomm.testing.hostile --censor ALICE``: the ordinary node, except
that it never passes on an entry of alice's, by sync or by gossip, and says so in its
own log. The router drops every packet between alice and bob and between alice and
carol, so alice's posts reach them only through dave or through mallory. Alice posts;
the script prints how long each post took to reach each reader, and counts from
mallory's log what her node withheld.

    python examples/censoring_member.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when every post of alice's reached every reader and
mallory's node did withhold them, 77 when namespaces cannot be made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from p2pcomm.testing import hostile
from p2pcomm.testing.netlab import (
    CommandFailed,
    Lab,
    Line,
    found_group,
    median_ms,
    post_timed,
    scenario,
)

GROUP = "Garden club"
READERS = ("bob", "carol", "dave")
POSTS = 4
#: A post must arrive within this.
WITHIN = 60.0


def withheld_line(entry: str) -> Line:
    return lambda d: (
        d.get("event") == "hostile" and d.get("action") == "dropped" and d.get("entry") == entry
    )


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab(["alice", *READERS, "mallory"], Path(folder)) as lab,
    ):
        print("five hosts, each its own network namespace behind one router")
        started = time.monotonic()
        group, nodes = found_group(
            lab, "alice", [*READERS, "mallory"], GROUP,
            start={"mallory": lambda peers: hostile.start(lab["mallory"], "--censor", lab["alice"].member, peers=peers)},
        )  # fmt: skip
        alice = lab["alice"].member
        print(
            f"alice founded {GROUP!r}; bob, carol, dave and mallory joined with invitation "
            f"codes ({time.monotonic() - started:.1f} s)"
        )
        print("mallory's node passes on everything except alice's entries")
        lab.partition(["alice"], ["bob", "carol"])
        print(
            "the router drops every packet between alice and bob and between alice and "
            "carol: alice's posts reach them only through dave or mallory"
        )

        took: dict[str, list[float]] = {r: [] for r in READERS}
        ids: list[str] = []
        for n in range(POSTS):
            posted, times = post_timed(
                lab, nodes, "alice", READERS, GROUP, f"alice's note {n}", WITHIN
            )
            ids.append(posted)
            for reader, seconds in times.items():
                took[reader].append(seconds)
        route = {
            "bob": "only through dave or mallory",
            "carol": "only through dave or mallory",
            "dave": "linked to alice",
        }
        for reader in READERS:
            print(
                f"{reader} read alice's {POSTS} posts: {median_ms(took[reader])} ({route[reader]})"
            )

        # Mallory's node holds every post it withholds; its log tells of each.
        for posted_id in ids:
            nodes["mallory"].wait(withheld_line(posted_id), timeout=WITHIN)
        dropped = [d for d in nodes["mallory"].events("hostile") if d["action"] == "dropped"]
        if any(d["author"] != alice for d in dropped):
            raise CommandFailed("mallory's node withheld an entry that is not alice's")
        withheld = {d["entry"] for d in dropped}
        posts_withheld = withheld & set(ids)
        if posts_withheld != set(ids):
            raise CommandFailed(f"mallory's node withheld {len(posts_withheld)} of alice's posts")
        print(
            f"mallory's node withheld {len(withheld)} of alice's entries, her {POSTS} posts "
            f"among them, from every peer ({len(dropped)} lines of its log)"
        )
        for name in ("alice", *READERS):
            got = lab[name].cli("read", GROUP)
            texts = {i["id"]: i["text"] for i in got["items"]}
            if any(texts.get(i) is None for i in ids):
                raise CommandFailed(f"{name} does not read every post of alice's: {texts}")
        print("alice, bob, carol and dave each read every post of alice's")
        print(
            f"claim held: alice's posts reached every member past the censoring member "
            f"(group {group[:16]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
