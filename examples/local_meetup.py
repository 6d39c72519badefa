"""A local meetup: three members' nodes, no address configured, find each other.

Alice, Bob and Carol formed their garden club on the club's network (three hosts,
each a network namespace behind a router, each running ``p2pcomm run`` as its own
process, invitation codes and ``join``). Now they meet in a hall: a local network
(the hosts' links on one switch, one subnet) with no internet and no router, and
addresses that are not the club's. Each wrote something at home, offline, that the
others have not seen. Each starts ``p2pcomm run`` with no ``--peer``, mDNS on its own
link's address only: the nodes advertise themselves with tokens that only members of
the club recognise, find each other, dial, and converge on the same conversation.
The script prints how long discovery and convergence took.

mDNS is multicast on one link: a router does not forward it, which is why the meetup
is on a LAN (``Lab(..., lan=True)``) and not behind the lab's router.

    python examples/local_meetup.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when the three nodes found each other by mDNS and
hold the same conversation, 77 when namespaces cannot be made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pcomm.testing.netlab import (
    Lab,
    NodeProcess,
    found_group,
    readable,
    scenario,
)

GROUP = "Garden club"
PEOPLE = ["alice", "bob", "carol"]
LINES = {
    "alice": "Welcome to the meetup!",
    "bob": "I brought tomato seedlings.",
    "carol": "Who wants basil?",
}
#: How long discovery and convergence may take.
WITHIN = 60.0


def discovers(address: str, group: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for :meth:`NodeProcess.wait`: mDNS found the node at ``address``,
    advertising ``group``."""
    return lambda d: (
        d.get("event") == "peer-discovered" and d["address"] == address and d["groups"] == [group]
    )


class ClaimFailed(Exception):
    """What the nodes or the stores showed is not what the claim says."""


def check(held: bool, what: str) -> None:
    if not held:
        raise ClaimFailed(what)


def main() -> int:
    try:
        return meetup()
    except ClaimFailed as exc:
        print(f"claim failed: {exc}")
        return 1


def meetup() -> int:
    with tempfile.TemporaryDirectory() as folder:
        with Lab(PEOPLE, Path(folder)) as club:
            group, _ = found_group(club, "alice", ["bob", "carol"], GROUP)
            print(
                f"alice, bob and carol formed {GROUP!r} (group {group[:16]}) on the club's "
                "network, behind a router; their nodes stop"
            )
            remembered = club["alice"].address()
            members = {name: club[name].member for name in PEOPLE}
        # Leaving the lab stops every node and deletes the club's network.

        with Lab(PEOPLE, Path(folder), lan=True) as hall:
            print(
                "the hall: the three hosts on one switch, one subnet (169.254.0.0/16), "
                "no router, no internet"
            )
            posted = {}
            for name, text in LINES.items():
                posted[name] = hall[name].cli("post", GROUP, text)["id"]
                print(f"{name} wrote at home, offline: {text!r}")

            print("three nodes start; none is given an address")
            began = time.time()  # the clock node lines are stamped with
            nodes: dict[str, NodeProcess] = {}
            for name in PEOPLE:
                host = hall[name]
                nodes[name] = host.start("--interface", host.ip)  # mDNS on its link only
            last = time.time()
            found: dict[str, float] = {}
            for name, node in nodes.items():
                for other in PEOPLE:
                    if other == name:
                        continue
                    at, _ = node.wait(discovers(hall[other].address(), group), timeout=WITHIN)
                    found[f"{name}>{other}"] = at
            discovered = max(found.values())
            print(
                f"every node discovered the other two by mDNS: {discovered - began:.1f} s after "
                f"the first node started, {max(0.0, discovered - last):.1f} s after the last "
                f"(the three took {last - began:.1f} s to start)"
            )
            converged = began
            for name, node in nodes.items():
                for other, item in posted.items():
                    if other != name:
                        at, _ = node.wait(readable(item), timeout=WITHIN)
                        converged = max(converged, at)
            print(
                f"each node reads the other two's posts: {converged - began:.1f} s after the "
                f"first node started, {max(0.0, converged - last):.1f} s after the last"
            )

            for name in PEOPLE:
                status = hall[name].cli("status")
                check(status["mdns"] == [hall[name].ip], f"{name} speaks mDNS elsewhere: {status}")
                others = sorted(m for n, m in members.items() if n != name)
                check(sorted(status["peers"]) == others, f"{name}'s peers: {status['peers']}")
                # The only address a node knew: alice's on the club's network, remembered
                # from joining there; nobody answers at it in the hall.
                tried = {u["address"] for u in status["unreachable"]}
                check(tried <= {remembered}, f"{name}'s node dialled {tried}")
                if tried:
                    print(
                        f"{name}'s node also dialled the club address it remembered "
                        f"({remembered}): unreachable in the hall"
                    )
            held = {
                name: [
                    (i["author_name"], i["text"]) for i in hall[name].cli("read", GROUP)["items"]
                ]
                for name in PEOPLE
            }
            for node in nodes.values():
                node.stop()
        texts = sorted(text for _, text in held["alice"])
        if texts == sorted(LINES.values()) and held["alice"] == held["bob"] == held["carol"]:
            print("the three nodes hold the same conversation: converged")
            for author, text in held["alice"]:
                print(f"  {author}: {text!r}")
            return 0
        print(f"claim failed: not converged: {held}")
        return 1


if __name__ == "__main__":
    sys.exit(scenario(main))
