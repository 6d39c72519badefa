"""Blocked link: a censor drops every packet between two members; their posts still
arrive, carried by the others.

Four hosts (alice, bob, carol, dave), each a network namespace joined to a router
namespace, each running ``p2pcomm run`` as a separate process. They form the garden
club the ordinary way (invitation codes, ``join``). First alice and bob exchange posts
over an open network; then the router drops every packet between their two addresses
(kernel blackhole rules: a real censor's firewall) and they post again. Every post still
reaches the other, through carol and dave, and the script prints the delivery latency
with and without the block.

    python examples/blocked_link.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when every post arrived readable on both sides, 77
when namespaces cannot be made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from p2pcomm.testing.netlab import (
    Lab,
    NodeProcess,
    found_group,
    median_ms,
    post_timed,
    scenario,
)

GROUP = "Garden club"
ROUNDS = 4
#: A post must arrive within this, blocked or not.
WITHIN = 60.0


def exchange(lab: Lab, nodes: dict[str, NodeProcess], phase: str) -> list[float]:
    """Alice and bob each post ``ROUNDS`` times; the seconds each post took to show
    readable on the other's node."""
    took = []
    for n in range(ROUNDS):
        for author, reader in (("alice", "bob"), ("bob", "alice")):
            text = f"{phase}: {author}'s note {n}"
            took.append(post_timed(lab, nodes, author, [reader], GROUP, text, WITHIN)[1][reader])
    return took


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        Lab(["alice", "bob", "carol", "dave"], Path(folder)) as lab,
    ):
        print("four hosts, each its own network namespace behind one router")
        started = time.monotonic()
        group, nodes = found_group(lab, "alice", ["bob", "carol", "dave"], GROUP)
        print(
            f"alice founded {GROUP!r}; bob, carol and dave joined with invitation codes "
            f"({time.monotonic() - started:.1f} s)"
        )
        open_net = exchange(lab, nodes, "open")
        print(
            f"open network: {len(open_net)} posts between alice and bob, "
            f"each arrived readable; {median_ms(open_net)}"
        )

        lab.block("alice", "bob")
        print("the router now drops every packet between alice and bob, both ways")
        blocked = exchange(lab, nodes, "blocked")
        print(
            f"link blocked: {len(blocked)} posts between alice and bob, "
            f"each arrived readable; {median_ms(blocked)}"
        )
        for who in ("alice", "bob"):
            others = {d["peer"] for d in nodes[who].events("peer-up")}
            print(f"{who}'s node was linked to {len(others)} peers over the run")
        print(
            f"claim held: every post crossed the blocked link through other members "
            f"(group {group[:16]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
