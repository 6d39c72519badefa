"""The hostile node of the scenarios (p2pcomm/testing/hostile.py), in one process over
loopback TCP: what it sends by sync is rewritten or withheld, and an honest node
refuses the one and gets around the other.

Story (a plaintext group, so that only the log is at stake):
  1: Alice founds the group with Bob and Mallory as members and posts P1, P2, P3.
  2: Mallory's node holds them; Bob's node does not. Alice's node holds them too.
  3: Bob's node syncs with Mallory's, then with Alice's.

Tampering: Mallory's node sends rewritten posts (a catch-up run); Bob's refuses them
(PeerMisbehaved naming Mallory), stores none of them, and gets the posts from Alice's.
Censoring Alice: Mallory's node sends nothing of Alice's, so the posts are not among
what Bob's node gets from it; Bob's node gets them from Alice's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from p2pcomm.community import Group
from p2pcomm.core.log import Entry
from p2pcomm.core.membership import Role
from p2pcomm.net import node as node_module
from p2pcomm.net.node import GroupSynced, NodeEvent, PeerMisbehaved, open_node
from p2pcomm.store import SqliteStore
from p2pcomm.testing import hostile
from p2pcomm.testing.history import keypair
from tests.net.node_helpers import PATIENCE, expect

ALICE, BOB, MALLORY = keypair(0), keypair(1), keypair(2)


def stores(
    tmp_path: Path,
) -> tuple[bytes, list[Entry], SqliteStore, SqliteStore, SqliteStore]:
    """The group, Alice's posts (three: a catch-up run of them), and the stores of
    Alice, Bob (without the posts) and Mallory."""
    a = SqliteStore(tmp_path / "a.db", durable=False)
    club = Group.create(a, ALICE, "club", encrypted=False)
    club.add(BOB.public_key, Role.MEMBER)
    club.add(MALLORY.public_key, Role.MEMBER)
    before = [e for _, e in a.iter_entries(club.id)]
    posts = [club.post(f"true post {n}") for n in range(3)]
    b = SqliteStore(tmp_path / "b.db", durable=False)
    b.put_entries(club.id, before)
    m = SqliteStore(tmp_path / "m.db", durable=False)
    m.put_entries(club.id, [*before, *posts])
    return club.id, posts, a, b, m


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def misbehaved(peer: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, PeerMisbehaved) and ev.peer_id == peer


def synced(peer: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, GroupSynced) and ev.peer_id == peer


@pytest.mark.parametrize("mode", ["tamper", "censor"])
async def test_the_hostile_node_rewrites_or_withholds_and_the_honest_one_gets_around_it(
    tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    group, posts, a, b, m = stores(tmp_path)
    spy = hostile.Interceptor(mode, ALICE.public_key)
    spy.me = MALLORY.public_key
    bad = [hostile.tampered(p) for p in posts]

    def holds(entries: list[Entry]) -> list[bool]:
        return [b.entry_meta(group, e.id) is not None for e in entries]

    try:
        with trio.fail_after(PATIENCE), hostile.intercepting(spy):
            async with (
                open_node(a, ALICE, gossip=None) as na,
                node_module.open_node(m, MALLORY, gossip=None) as nm,
                open_node(b, BOB, gossip=None, listen=False) as nb,
            ):
                events = nb.subscribe()
                await nb.connect(*nm.address)
                if mode == "tamper":
                    ev = await expect(events, misbehaved(MALLORY.public_key))
                    assert isinstance(ev, PeerMisbehaved)
                    assert ev.reason.startswith("bad-signature")
                else:
                    await expect(events, synced(MALLORY.public_key))
                    assert holds(posts) == [False] * 3  # withheld
                assert holds(bad) == [False] * 3
                await nb.connect(*na.address)
                await expect(events, synced(ALICE.public_key))
                assert holds(posts) == [True] * 3
                assert holds(bad) == [False] * 3
    finally:
        for s in (a, b, m):
            s.close()
    told = [d for d in lines(capsys.readouterr().out) if d.get("event") == "hostile"]
    if mode == "tamper":
        assert [(d["action"], d["original"]) for d in told] == [
            ("tampered", p.id.hex()) for p in posts
        ]
        assert [d["entry"] for d in told] == [e.id.hex() for e in bad]
    else:
        assert [(d["action"], d["entry"]) for d in told] == [("dropped", p.id.hex()) for p in posts]


def test_forgeries_do_not_verify_and_bad_arguments_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from p2pcomm.core.log import verify_signature

    club = Group.create(SqliteStore(":memory:"), ALICE, "club", encrypted=False)
    post = club.post("hello")
    assert verify_signature(post)
    for fake in (hostile.tampered(post), hostile.forged(post)):
        assert fake.header.author == ALICE.public_key
        assert fake.id != post.id and not verify_signature(fake)
    ran: list[list[str]] = []

    def run(argv: list[str]) -> int:
        ran.append(argv)
        return 0

    assert hostile.main(["--tamper", "--after", "2", "run", "--json"], run=run) == 0
    assert ran == [["run", "--json"]]
    for argv in ([], ["--censor"], ["--censor", "nobody", "run"], ["--tamper", "serve"]):
        assert hostile.main(argv, run=run) == 2
    assert ran == [["run", "--json"]]
    assert "Traceback" not in capsys.readouterr().err
