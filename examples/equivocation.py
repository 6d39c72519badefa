"""Equivocation: a member signs two different entries with one sequence number and shows
each to a different half of the group; every replica ends with the same fork proof and
the member expelled, including a node that only ever saw one branch.

Six hosts (alice the admin, bob, carol, dave, erin, frank), each a network namespace
behind one router, each running ``p2pcomm run`` as a separate process, form the garden
club with invitation codes. Bob posts once. Then his device is cloned, as a restored
backup would be: his node is stopped and his whole home (key and store) copied to a
seventh host, bob-copy. The router splits the network into {alice, carol, bob} and
{dave, erin, frank, bob-copy}; each copy of bob posts its own text with the same
sequence number, and each half reads only its own. Frank, having read bob-copy's post,
is cut off from everyone before bob's other post exists. The split heals for everyone
but frank; when the others agree, frank's blocks are lifted too.

What frank can get of the other branch: its signed header, never its text. A node that
knows of the fork sends bob's void entries as headers alone (spec 06 P2; the node's
forwarding policy), and a header with its signature is what a fork proof carries (03
3.16): frank finds the fork from it and makes the proof himself, byte for byte the one
the others hold. (A proof received alone, in a FORKS message, is stored but does not
expel anyone: membership counts a fork from the entries, 04 R10.) The script checks that
frank's node never showed the other text, and says what his store holds of it.

    python examples/equivocation.py [--hold SECONDS]

``--hold`` keeps the split that long after both branches are shown (and checks that no
node learns of the fork meanwhile): held past 45 s, the channels across it die (a node
gives up on a silent channel then), and the halves must find each other again (spec 07
H11) before the fork can be found.

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when every honest replica ended with the same proof,
bob expelled and the same conversation, 77 when namespaces cannot be made here, 1
otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from p2pcomm.core.log import encode_fork_proof, entry_id
from p2pcomm.store import SqliteStore
from p2pcomm.testing.netlab import (
    SKIPPED,
    CommandFailed,
    Lab,
    LabUnavailable,
    Line,
    NodeProcess,
    ensure_lab,
    found_group,
    item_ids,
    readable,
    synced,
    wait_each,
)

GROUP = "Garden club"
LEFT = ["alice", "carol", "bob"]
RIGHT = ["dave", "erin", "frank", "bob-copy"]
HONEST = ["alice", "carol", "dave", "erin", "frank"]
#: A post must arrive, and a fork be found, within this.
WITHIN = 60.0


def first_lines(
    nodes: dict[str, NodeProcess], names: Iterable[str], pred: Line, timeout: float = WITHIN
) -> dict[str, float]:
    """For each of ``names``, when its node printed its first line that ``pred`` accepts
    (wall clock, as read; the nodes are read together)."""
    names = list(names)
    seen = wait_each([nodes[n] for n in names], pred, timeout)
    return {name: at for name, (at, _) in zip(names, seen, strict=True)}


def expelled(member: str) -> Line:
    return lambda d: (
        d.get("event") == "member-left" and d.get("member") == member and d.get("how") == "expelled"
    )


def showed(node: NodeProcess, text: str) -> bool:
    """Whether the node ever printed an item with this text."""
    return any(i.get("text") == text for _, d in node.seen for i in item_ids(d).values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="A member equivocates; the group expels him.")
    parser.add_argument(
        "--hold", type=float, default=0.0, metavar="SECONDS", help="keep the split this long"
    )
    hold = parser.parse_args(argv).hold
    if not 0 <= hold <= 600:
        parser.error("--hold is 0 to 600 seconds")
    try:
        ensure_lab()
    except LabUnavailable as exc:
        print(f"skipped: {exc}")
        return SKIPPED
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab([*LEFT, *RIGHT], Path(folder)) as lab,
    ):
        print("seven hosts, each its own network namespace behind one router")
        started = time.monotonic()
        group, nodes = found_group(lab, "alice", ["bob", "carol", "dave", "erin", "frank"], GROUP)
        bob = lab["bob"].member
        print(
            f"alice founded {GROUP!r}; bob, carol, dave, erin and frank joined with "
            f"invitation codes ({time.monotonic() - started:.1f} s)"
        )
        welcome = lab["alice"].cli("post", GROUP, "Welcome to the garden club")
        first = lab["bob"].cli("post", GROUP, "Hello from bob")
        first_lines(nodes, nodes, readable(welcome["id"]))
        first_lines(nodes, nodes, readable(first["id"]))
        print(f"alice and bob posted (bob's post: seq {first['seq']}); all six nodes show both")

        # The clone: a consistent copy needs the node stopped (its store is written by
        # the node alone), as a backup would be taken.
        nodes["bob"].stop()
        shutil.copytree(lab["bob"].home, lab["bob-copy"].home)
        copy = lab["bob-copy"]
        copy.member = copy.cli("id")["id"]
        counts = {
            h: {g["id"]: g["entries"] for g in lab[h].cli("status")["groups"]}[group]
            for h in ("bob", "bob-copy")
        }
        checks = [lab[h].cli("verify")["ok"] for h in ("bob", "bob-copy")]
        assert copy.member == bob and counts["bob"] == counts["bob-copy"] and all(checks)
        print(
            f"bob's home copied to a second device, bob-copy: same identity, the same "
            f"{counts['bob']} entries, both stores verify"
        )

        lab.partition(LEFT, RIGHT)
        print("the router splits the network: {alice, carol, bob} | {dave, erin, frank, bob-copy}")
        nodes["bob"] = lab["bob"].start(peers=[lab["alice"], lab["carol"]])
        nodes["bob-copy"] = copy.start(peers=[lab["dave"], lab["erin"], lab["frank"]])
        nodes["bob"].wait(synced(group))
        nodes["bob-copy"].wait(synced(group))

        sunday = "Garden meeting moved to Sunday"
        saturday = "Garden meeting stays on Saturday"
        b = copy.cli("post", GROUP, sunday)
        first_lines(nodes, ["dave", "erin", "frank"], readable(b["id"]))
        # frank has read one branch; from now on the router drops all his packets
        for other in lab.hosts:
            if other != "frank":
                lab.block("frank", other)
        a = lab["bob"].cli("post", GROUP, saturday)
        first_lines(nodes, ["alice", "carol"], readable(a["id"]))
        assert a["seq"] == b["seq"] and a["id"] != b["id"], (a, b)
        print(
            f"bob-copy posted {sunday!r} (seq {b['seq']}, entry {b['id'][:8]}): "
            "dave, erin and frank show it"
        )
        print("frank is now cut off from every host")
        print(
            f"bob posted {saturday!r} (seq {a['seq']}, entry {a['id'][:8]}): alice and carol show it"
        )
        print(f"both posts carry bob's sequence number {a['seq']}: his log forked")

        # Nothing crosses the split: every node is read for a while (a fixed wait, to
        # show what does not arrive), as long as --hold says, and no node has learned
        # of the fork.
        for node in nodes.values():
            node.drain(max(hold, 1.4) / len(nodes))
        assert not any(node.events("member-left") for node in nodes.values()), "fork crossed"
        if hold:
            print(f"the split held {hold:.0f} s: no node learned of the fork meanwhile")
        healed = time.time()
        for x in LEFT:
            for y in RIGHT:
                if y != "frank":
                    lab.unblock(x, y)
        print("the split heals (frank stays cut off)")
        took = first_lines(nodes, ["alice", "carol", "dave", "erin"], expelled(bob))
        print(
            "bob expelled on "
            + ", ".join(f"{h} {at - healed:.1f} s" for h, at in sorted(took.items()))
            + " after the heal"
        )
        freed = time.time()
        for other in lab.hosts:
            lab.unblock("frank", other)
        at = first_lines(nodes, ["frank"], expelled(bob))["frank"]
        print(f"frank's blocks lifted: bob expelled on frank {at - freed:.1f} s later")
        print(
            f"time to agree: {max(took.values()) - healed:.1f} s after the split healed, "
            f"{at - freed:.1f} s after frank's blocks were lifted"
        )

        views: dict[str, Any] = {}
        for h in HONEST:
            members = lab[h].cli("members", GROUP)
            assert bob not in [m["id"] for m in members["members"]], (h, members)
            assert members["expelled"] == [{"id": bob, "forked_at": a["seq"]}], (h, members)
            views[h] = [
                (i["id"], i["author"], i["text"]) for i in lab[h].cli("read", GROUP)["items"]
            ]
        texts = [t for _, _, t in views["alice"]]
        assert all(v == views["alice"] for v in views.values()), views
        assert texts == ["Welcome to the garden club", "Hello from bob"], texts
        print(
            f"members --json on every honest host: bob is no member, expelled "
            f"(forked at seq {a['seq']})"
        )
        print(
            "read --json on every honest host: the same items, alice's welcome and bob's "
            "post before the fork; neither branch"
        )
        assert not showed(nodes["frank"], saturday)
        for h in ("bob", "bob-copy"):
            mine = lab[h].cli("members", GROUP)["expelled"]
            print(f"{h}'s own device: {'knows it is expelled' if mine else 'does not know yet'}")

        for node in nodes.values():
            node.stop()
        gid, forked = bytes.fromhex(group), {bytes.fromhex(a["id"]), bytes.fromhex(b["id"])}
        proofs: dict[str, list[bytes]] = {}
        for h in HONEST:
            with SqliteStore(lab[h].home / "store.db") as store:
                proofs[h] = [encode_fork_proof(p) for p in store.fork_proofs(gid)]
                assert {
                    entry_id(r.headers[0]) for p in store.fork_proofs(gid) for r in (p.a, p.b)
                } == forked
                if h == "frank":
                    entry = store.get_entry(gid, bytes.fromhex(a["id"]))
                    assert entry is not None, "frank holds no header of the other branch"
                    frank_body = entry.body is not None
        assert all(p == proofs["alice"] and len(p) == 1 for p in proofs.values()), proofs
        print(
            f"every honest store holds the same fork proof, byte for byte "
            f"({len(proofs['alice'][0])} bytes: bob's two signed headers at seq {a['seq']})"
        )
        print(
            f"frank never showed {saturday!r}; his store holds that entry "
            + ("with its body (void)" if frank_body else "as a signed header only")
        )
        print("claim held: the fork was found, proved and punished the same way everywhere")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (AssertionError, CommandFailed, KeyError, TimeoutError) as exc:
        print(f"claim failed: {exc}")
        sys.exit(1)
