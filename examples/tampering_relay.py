"""Tampering relay: a member's node rewrites the entries it relays and forges others in
members' names; every honest node refuses it and still gets the true posts.

Four hosts (alice, bob, carol, mallory), each a network namespace behind one router,
each running a node as a separate process. They form the garden club the ordinary way
(invitation codes, ``join``); mallory is a member like the others, but her node is
``python -m p2pcomm.testing.hostile --tamper``: the ordinary node, except that once it
is linked to all three it rewrites every entry of another author it sends (a byte of
the body changed, the author's signature kept), and whenever it stores someone's post
it pushes every peer a rewritten copy and a forged "next post" of that author, signed
with a key that is not theirs. The router drops every packet between alice and bob, so
what one of them writes reaches the other through carol or through mallory: mallory is
on the path. Each of alice, bob and carol posts; the script checks that every honest
node refused mallory (its ``peer-misbehaved`` line names her), read every true post,
verifies its store, and stored none of what mallory made up.

    python examples/tampering_relay.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when the claim held, 77 when namespaces cannot be
made here, 1 otherwise.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from p2pcomm.paths import Home
from p2pcomm.store import SqliteStore
from p2pcomm.testing import hostile
from p2pcomm.testing.netlab import (
    CommandFailed,
    Lab,
    Line,
    found_group,
    post_timed,
    scenario,
)

GROUP = "Garden club"
HONEST = ("alice", "bob", "carol")
#: A post must arrive within this; mallory must be refused within this.
WITHIN = 60.0


def refused(peer: str) -> Line:
    return lambda d: d.get("event") == "peer-misbehaved" and d.get("peer") == peer


def sent_forged(peer: str) -> Line:
    return lambda d: d.get("action") == "forged" and d.get("peer") == peer


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab([*HONEST, "mallory"], Path(folder)) as lab,
    ):
        print("four hosts, each its own network namespace behind one router")
        started = time.monotonic()
        group, nodes = found_group(
            lab, "alice", ["bob", "carol", "mallory"], GROUP,
            start={"mallory": lambda peers: hostile.start(lab["mallory"], "--tamper", "--after", "3", peers=peers)},
        )  # fmt: skip
        mallory = lab["mallory"].member
        print(
            f"alice founded {GROUP!r}; bob, carol and mallory joined with invitation codes "
            f"({time.monotonic() - started:.1f} s)"
        )
        # Mallory's node behaves until it has links to all three (gossip's peer
        # exchange), then turns: its own line says when.
        nodes["mallory"].wait(lambda d: d.get("action") == "armed", timeout=WITHIN)
        print(
            "mallory's node, once linked to all three, turns: it rewrites every entry of "
            "others it sends and pushes forged posts in their names"
        )
        lab.block("alice", "bob")
        print(
            "the router drops every packet between alice and bob: their posts go through carol or mallory"
        )

        posts: list[tuple[str, str, str]] = []  # (author, item id, text)
        took: list[float] = []
        for n in range(2):
            for author in HONEST:
                text = f"{author}'s note {n}"
                readers = [r for r in HONEST if r != author]
                posted, times = post_timed(lab, nodes, author, readers, GROUP, text, WITHIN)
                posts.append((author, posted, text))
                took.extend(times.values())
        print(
            f"{len(posts)} posts by alice, bob and carol, each read by the two others: "
            f"median {statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms"
        )
        for name in HONEST:
            _, doc = nodes[name].wait(refused(mallory), timeout=WITHIN)
            print(f"{name}'s node refused mallory's node: {doc['reason']}")
        for name in HONEST:
            wrong = [d for d in nodes[name].events("peer-misbehaved") if d.get("peer") != mallory]
            if wrong:
                raise CommandFailed(f"{name} refused an honest node: {wrong}")

        # Mallory's node tells of each forgery it sent, after the rewritten copy before it.
        for name in HONEST:
            nodes["mallory"].wait(sent_forged(lab[name].member), timeout=WITHIN)
        made = [d for d in nodes["mallory"].events("hostile") if d["action"] != "armed"]
        names = {lab[n].member: n for n in HONEST}
        for name in HONEST:
            sent = [d for d in made if d["peer"] == lab[name].member]
            rewritten = sum(1 for d in sent if d["action"] == "tampered")
            forged = sum(1 for d in sent if d["action"] == "forged")
            if not rewritten or not forged:
                raise CommandFailed(f"mallory's node did not get to tamper with {name}'s feed")
            print(
                f"mallory's node sent {name} {rewritten} rewritten and {forged} forged entries "
                f"(authors: {', '.join(sorted({names[d['author']] for d in sent}))})"
            )

        texts = sorted(t for _, _, t in posts)
        for name in HONEST:
            got = lab[name].cli("read", GROUP)
            read = sorted(i["text"] for i in got["items"])
            if read != texts:
                raise CommandFailed(f"{name} reads {read}, expected {texts}")
            check = lab[name].cli("verify")
            if not check["ok"]:
                raise CommandFailed(f"{name}'s store does not verify: {check}")
        print(f"alice, bob and carol each read the {len(texts)} true posts; each store verifies")

        bad = {bytes.fromhex(d["entry"]) for d in made}
        gid = bytes.fromhex(group)
        for name in HONEST:
            nodes[name].stop()
        for name in HONEST:
            with SqliteStore(Home(lab[name].home).store_path) as store:
                held = [e for e in bad if store.entry_meta(gid, e) is not None]
            if held:
                raise CommandFailed(f"{name} stored {len(held)} of mallory's made-up entries")
        print(f"none of the {len(bad)} entries mallory made up is stored by alice, bob or carol")
        print(
            f"claim held: every honest node refused the tampering relay and read the true posts (group {group[:16]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
