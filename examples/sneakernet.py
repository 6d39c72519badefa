"""Sneakernet: a device with no network catches up from a file carried by hand.

Three hosts (alice, bob, carol), each a network namespace behind one router, each
running ``p2pcomm run`` as its own process, form the garden club the ordinary way.
Then bob's device goes offline: his node stops and the router drops every packet
between his address and the others (both at once: no node, and no route to one).
Alice and carol keep posting. Alice writes the group's log to a file with
``p2pcomm bundle export``; the file goes onto a USB stick and to bob. Someone flips a
few bytes of one copy: ``p2pcomm bundle import`` of it says what it refused, and bob's
store holds only entries that verify (``p2pcomm verify``). The clean copy imports whole
and bob reads every post, with no network. Back online, bob's node fetches only what
the stick did not carry: the script compares what it received with the group's size.

    python examples/sneakernet.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when the claim held, 77 when namespaces cannot be
made here, 1 otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from p2pcomm.testing.netlab import (
    DEADLINE,
    CommandFailed,
    Host,
    Lab,
    found_group,
    item_ids,
    scenario,
)

GROUP = "Garden club"
#: Posts each of alice and carol writes while bob is away, and after the stick left.
AWAY = 15
LATER = 2
#: How long bob's node may take to catch up once back online.
WITHIN = 60.0


def run(host: Host, *args: str) -> tuple[int, Any]:
    """``p2pcomm ARGS --json`` on ``host``: exit status and parsed output, whatever the
    status (``Host.cli`` keeps only stderr when a command fails; an import that refused
    records fails and prints its report)."""
    res = subprocess.run(
        [*host.command(*args), "--json"],
        capture_output=True, text=True, env=host.lab.env, timeout=DEADLINE, check=False,
    )  # fmt: skip
    if "Traceback" in res.stderr:
        raise CommandFailed(f"{host.name}: p2pcomm {' '.join(args)} crashed:\n{res.stderr}")
    text = res.stdout.strip()
    return res.returncode, json.loads(text) if text else None


def write(lab: Lab, author: str, label: str, count: int) -> dict[str, str]:
    """``author`` posts ``count`` notes with the CLI; their texts by item id."""
    posted = {}
    for n in range(count):
        text = f"{author}'s {label} note {n}"
        posted[lab[author].cli("post", GROUP, text)["id"]] = text
    return posted


def write_both(lab: Lab, label: str, count: int) -> dict[str, str]:
    """Alice and carol post at the same time (two people, two devices)."""
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(write, lab, who, label, count) for who in ("alice", "carol")]
        return {k: v for job in jobs for k, v in job.result().items()}


def all_readable(ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for one :meth:`NodeProcess.wait` over a node's lines: true at the
    line by which every item of ``ids`` has shown readable."""
    pending = set(ids)

    def pred(doc: dict[str, Any]) -> bool:
        pending.difference_update(i for i, x in item_ids(doc).items() if x["text"] is not None)
        return not pending

    return pred


def readable_posts(host: Host) -> dict[str, str | None]:
    """What ``p2pcomm read`` shows on ``host``: each item's text (None: sealed), by id."""
    return {i["id"]: i["text"] for i in host.cli("read", GROUP)["items"]}


def entries(host: Host, group: str) -> int:
    """How many entries of ``group`` the store on ``host`` holds (``p2pcomm status``)."""
    return int(next(g["entries"] for g in host.cli("status")["groups"] if g["id"] == group))


def tamper(clean: Path, spoiled: Path) -> int:
    """A copy of ``clean`` with one byte flipped near the end of an entry record past
    the file's middle (spec/11-bundle.md: a 46-byte header, then records of
    ``u8 type || u32 length || payload``); the record's number."""
    data = bytearray(clean.read_bytes())
    records: list[tuple[int, int]] = []
    at = 46
    while at < len(data):
        length = int.from_bytes(data[at + 1 : at + 5], "big")
        if data[at] == 1:  # an entry record
            records.append((at + 5, length))
        at += 5 + length
    n = len(records) * 3 // 5
    start, length = records[n]
    data[start + length - 8] ^= 0x01
    spoiled.write_bytes(bytes(data))
    return n


class ClaimFailed(Exception):
    """What the nodes or the stores showed is not what the claim says."""


def check(held: bool, what: str) -> None:
    if not held:
        raise ClaimFailed(what)


def main() -> int:
    try:
        return sneakernet()
    except ClaimFailed as exc:
        print(f"claim failed: {exc}")
        return 1


def sneakernet() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab(["alice", "bob", "carol"], Path(folder)) as lab,
    ):
        alice, bob, carol = lab["alice"], lab["bob"], lab["carol"]
        group, nodes = found_group(lab, "alice", ["bob", "carol"], GROUP)
        print(f"alice, bob and carol are in {GROUP!r} (group {group[:16]}), each on a host")

        nodes["bob"].stop()
        lab.block("bob", "alice")
        lab.block("bob", "carol")
        print("bob's device goes offline: his node stops and the router drops his packets")

        started = time.monotonic()
        away = write_both(lab, "away", AWAY)
        carols = {i for i, t in away.items() if t.startswith("carol")}
        nodes["alice"].wait(all_readable(carols), timeout=WITHIN)
        print(
            f"alice and carol post {len(away)} notes while bob is away "
            f"({time.monotonic() - started:.1f} s); alice's node holds carol's"
        )

        exported = Path(folder) / "alice-export.p2pb"
        report = alice.cli("bundle", "export", GROUP, str(exported))
        stick = Path(folder) / "usb-stick"
        stick.mkdir()
        shutil.copy(exported, stick / "garden-club.p2pb")
        data = (stick / "garden-club.p2pb").read_bytes()
        check(all(t.encode() not in data for t in away.values()), "plaintext in the bundle")
        print(
            f"alice exports {report['entries']} entries ({report['bytes']:,} bytes) to a file "
            "and copies it onto a USB stick; it holds ciphertext only"
        )

        record = tamper(stick / "garden-club.p2pb", stick / "tampered.p2pb")
        before = entries(bob, group)
        status, spoiled = run(bob, "bundle", "import", str(stick / "tampered.p2pb"))
        codes = Counter(r["error"] for r in spoiled["rejected"])
        why = ", ".join(f"{code} x{n}" for code, n in codes.items())
        print(
            f"a copy with one bit flipped in entry record {record}: import exits {status}, "
            f"{spoiled['accepted']} entries verified and stored, "
            f"{len(spoiled['rejected'])} refused, the damaged entry and those built on it ({why})"
        )
        check(
            status != 0 and spoiled["rejected"] and not spoiled["complete"],
            f"the tampered copy imported as if whole: {spoiled}",
        )
        verified = bob.cli("verify")
        held = readable_posts(bob)
        refused = {r["entry"] for r in spoiled["rejected"] if r["entry"]}
        # Every item bob's store shows is one that was posted, as it was written (or
        # sealed), and none of the refused entries is there.
        forged = {i: t for i, t in held.items() if i not in away or t not in (None, away[i])}
        check(verified["ok"], f"verify found damage after the tampered import: {verified}")
        check(not forged, f"bob's store shows what nobody wrote: {forged}")
        check(not refused & held.keys(), f"refused entries are shown: {refused & held.keys()}")
        print(
            f"bob's store after it: {entries(bob, group)} entries, verify ok; "
            f"reads {sum(t is not None for t in held.values())} of the {len(away)} posts, "
            "each as written; nothing unverified kept"
        )

        status, clean = run(bob, "bundle", "import", str(stick / "garden-club.p2pb"))
        check(status == 0 and clean["complete"], f"the clean copy did not import whole: {clean}")
        held = readable_posts(bob)
        reads = sum(held.get(i) == t for i, t in away.items())
        print(
            f"bob's offline device: {clean['accepted'] + spoiled['accepted']} new entries "
            f"verified and stored; reads {reads} of {len(away)} posts"
        )
        check(reads == len(away), "bob does not read every post from the stick")
        check(
            clean["accepted"] + spoiled["accepted"] == entries(bob, group) - before,
            "the imports stored other entries than they reported",
        )

        later = write_both(lab, "later", LATER)
        nodes["alice"].wait(all_readable({i for i, t in later.items() if "carol" in t}))
        lab.unblock("bob", "alice")
        lab.unblock("bob", "carol")
        had = entries(bob, group)
        back = time.monotonic()
        nodes["bob"] = bob.start(peers=[alice, carol])
        nodes["bob"].wait(all_readable(set(later)), timeout=WITHIN)
        took = time.monotonic() - back
        stats = bob.cli("status")
        total = entries(alice, group)
        lacked = entries(bob, group) - had
        print(
            f"alice and carol post {len(later)} more; bob comes back online: his node reads "
            f"them in {took:.1f} s"
        )
        print(
            f"bob's node received {stats['entries_received']} copies of entries over the network and "
            f"stored {stats['entries_accepted']}; the group holds {total}, bob had {had} "
            f"and lacked {lacked}"
        )
        check(entries(bob, group) == total, "bob's node did not catch up")
        # He stored exactly what he lacked. A new entry may reach him more than once
        # (by sync and by gossip, from each of two peers: copies counted in
        # entries_received), but the history the stick brought is not fetched again:
        # that alone would be as many entries as he had.
        check(stats["entries_accepted"] == lacked, "bob's node stored what it did not lack")
        check(
            stats["entries_received"] < had,
            "bob's node was sent as many entries as the stick had brought",
        )
        print(
            "claim held: the stick carried the history with no network, the tampered copy "
            "added nothing unverified, and back online bob stored only what he still lacked"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
