"""Partition and heal: the group splits in two, each side's admin removes the other
admin, both sides post; after healing every replica computes the same group.

Five hosts, each a network namespace behind one router, each running ``p2pcomm run``
as its own process: alice and bob are admins, carol, dave and erin members. The router
then drops every packet between {alice, carol, dave} and {bob, erin} (kernel blackhole
rules). On each side, its admin removes the other admin, and both sides post. Then
the partition heals. The claim: every host ends with the same members and roles, the
same visible posts, and the script prints what that agreed state is (spec 04 decides
concurrent mutual removal) and how long agreement took after healing.

    python examples/partition_heal.py

Needs network namespaces: run as root, or where user namespaces are allowed (it runs
itself again inside one). Exits 0 when every replica agrees, 77 when namespaces cannot
be made here, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from p2pcomm.testing.netlab import (
    Lab,
    found_group,
    left,
    readable,
    scenario,
    synced_with,
)

GROUP = "Garden club"
LEFT = ["alice", "carol", "dave"]
RIGHT = ["bob", "erin"]
#: How long the healed group may take to agree.
WITHIN = 90.0


def view(lab: Lab, host: str) -> tuple[Any, ...]:
    """What a person on ``host`` sees: members with roles, banned, and visible posts."""
    members = lab[host].cli("members", GROUP)
    items = lab[host].cli("read", GROUP)["items"]
    return (
        tuple(sorted((m["name"], m["role"]) for m in members["members"])),
        tuple(sorted(members["banned"])),
        tuple((i["author_name"] or i["author"][:12], i["text"], i["hidden"]) for i in items),
    )


def agreed(views: dict[str, tuple[Any, ...]]) -> bool:
    """Every host sees the same members, roles and bans, and every host that is still
    a member the same posts (a removed member is served nothing new, spec 06)."""
    if len({(v[0], v[1]) for v in views.values()}) > 1:
        return False
    names = {n for n, _ in next(iter(views.values()))[0]}
    return len({v[2] for h, v in views.items() if h in names}) == 1


def main() -> int:
    with tempfile.TemporaryDirectory() as folder, Lab(LEFT + RIGHT, Path(folder)) as lab:
        group, nodes = found_group(lab, "alice", ["bob", "carol", "dave", "erin"], GROUP)
        # Everyone's node dialled alice; erin's also knows bob's address, so that the
        # side they will share is linked whatever the gossip overlay chose (a node cut
        # off from all its neighbours only looks for others once their links time out).
        nodes["erin"].stop()
        nodes["erin"] = lab["erin"].start(peers=[lab["alice"], lab["bob"]])
        nodes["erin"].wait(synced_with(lab["bob"].member))
        lab["alice"].cli("role", GROUP, lab["bob"].member, "admin")
        posted = lab["alice"].cli("post", GROUP, "Spring planting: who takes which bed?")
        for host in LEFT + RIGHT:
            nodes[host].wait(readable(posted["id"]))
        print(
            f"five hosts in {GROUP!r} (group {group[:16]}); alice and bob are admins; "
            "every host reads alice's first post"
        )

        lab.partition(LEFT, RIGHT)
        print("the router now drops every packet between {alice, carol, dave} and {bob, erin}")
        lab["alice"].cli("remove", GROUP, lab["bob"].member, "--reason", "partition test")
        lab["bob"].cli("remove", GROUP, lab["alice"].member, "--reason", "partition test")
        # Each side's member posts once its node holds the removal, so the post is
        # written after it (causally) and sealed to the members that side has left.
        nodes["carol"].wait(left(lab["bob"].member))
        nodes["erin"].wait(left(lab["alice"].member))
        left_post = lab["carol"].cli("post", GROUP, "Left side: I'll take the tomatoes")
        right_post = lab["erin"].cli("post", GROUP, "Right side: beans for me")
        nodes["dave"].wait(readable(left_post["id"]))
        nodes["bob"].wait(readable(right_post["id"]))
        before = {h: view(lab, h) for h in LEFT + RIGHT}
        print("on each side its admin removed the other admin, and a member posted:")
        for side in (LEFT, RIGHT):
            members = ", ".join(f"{n} ({r})" for n, r in before[side[0]][0])
            print(f"  {'/'.join(side)} sees {len(before[side[0]][2])} posts; members: {members}")
        if before["alice"] == before["bob"]:
            print("the two sides agree while partitioned: the partition did not hold")
            return 1

        lab.heal()
        healed = time.monotonic()
        print("the partition heals")
        hosts = LEFT + RIGHT
        views = {h: view(lab, h) for h in hosts}
        while not agreed(views):
            # Each host is asked again until all agree (no fixed wait: every round is
            # five real commands); a deadline bounds it.
            if time.monotonic() - healed > WITHIN:
                for host, seen in views.items():
                    print(f"  {host}: {seen}")
                print(f"claim failed: the replicas still differ {WITHIN:.0f} s after healing")
                return 1
            views = {h: view(lab, h) for h in hosts}
        took = time.monotonic() - healed
        members, banned, items = views["alice"]
        names = {n for n, _ in members}
        print(f"after healing, all five hosts agree on the members ({took:.1f} s):")
        print(f"  members: {', '.join(f'{n} ({r})' for n, r in members)}; banned: {len(banned)}")
        print(f"  the {len(names)} members read the same {len(items)} posts:")
        for author, text, hidden in items:
            print(f"    {author}: {text!r}{' (hidden)' if hidden else ''}")
        texts = {text for _, text, _ in items}
        assert "Left side: I'll take the tomatoes" in texts
        assert "Right side: beans for me" in texts
        for host in sorted(set(hosts) - names):
            legible = [text for _, text, _ in views[host][2] if text is not None]
            sealed = len(views[host][2]) - len(legible)
            print(f"  {host}, removed, knows it; reads {legible} and {sealed} sealed")
            # Carol wrote after seeing the removal: sealed to the members left.
            assert "Left side: I'll take the tomatoes" not in legible
        print(
            "claim held: every replica computes the same members and roles, every member "
            "the same visible posts, and the removed admin reads nothing written after "
            "its removal"
        )
    return 0


if __name__ == "__main__":
    sys.exit(scenario(main))
