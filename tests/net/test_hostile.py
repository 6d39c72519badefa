"""The hostile node of the scenarios (p2pcomm/testing/hostile.py), in one process over
loopback TCP: what it sends by sync is rewritten or withheld, and an honest node
refuses the one and gets around the other.

Story (a plaintext group, so that only the log is at stake):
  1: Alice founds the group with Bob and Mallory as members and posts P.
  2: Mallory's node holds P; Bob's node does not. Alice's node holds it too.
  3: Bob's node syncs with Mallory's, then with Alice's.

Tampering: Mallory's node sends a rewritten P; Bob's refuses it (PeerMisbehaved
naming Mallory), stores nothing of it, and gets P from Alice's. Censoring Alice:
Mallory's node sends nothing of Alice's, so P is not among what Bob's node gets from
it; Bob's node gets P from Alice's.
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


def stores(tmp_path: Path) -> tuple[bytes, Entry, SqliteStore, SqliteStore, SqliteStore]:
    """The group, Alice's post, and the stores of Alice, Bob (without the post) and
    Mallory."""
    a = SqliteStore(tmp_path / "a.db", durable=False)
    club = Group.create(a, ALICE, "club", encrypted=False)
    club.add(BOB.public_key, Role.MEMBER)
    club.add(MALLORY.public_key, Role.MEMBER)
    before = [e for _, e in a.iter_entries(club.id)]
    entry = club.post("the true post")
    b = SqliteStore(tmp_path / "b.db", durable=False)
    b.put_entries(club.id, before)
    m = SqliteStore(tmp_path / "m.db", durable=False)
    m.put_entries(club.id, [*before, entry])
    return club.id, entry, a, b, m


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
    group, post, a, b, m = stores(tmp_path)
    spy = hostile.Interceptor(mode, ALICE.public_key)
    spy.me = MALLORY.public_key
    bad = hostile.tampered(post)
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
                    assert b.entry_meta(group, post.id) is None  # withheld
                assert b.entry_meta(group, bad.id) is None
                await nb.connect(*na.address)
                await expect(events, synced(ALICE.public_key))
                assert b.entry_meta(group, post.id) is not None
                assert b.entry_meta(group, bad.id) is None
    finally:
        for s in (a, b, m):
            s.close()
    told = [d for d in lines(capsys.readouterr().out) if d.get("event") == "hostile"]
    if mode == "tamper":
        assert {"action": "tampered", "entry": bad.id.hex(), "original": post.id.hex()}.items() <= (
            told[0].items()
        )
    else:
        assert [(d["action"], d["entry"]) for d in told] == [("dropped", post.id.hex())]


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
