"""Only members read, only members write (spec/06-sync.md 6.22): over real loopback TCP.

Story:
  1: Alice founds the group, posts, adds Bob, posts more.
  2: Olivia, an outsider who learned the group id, connects: she gets no entry.
  3: Mallory, an outsider with a leaked copy of the genesis, pushes self-signed posts:
     none is stored, and Alice's node refuses her.
  4: Bob, connected and live, is removed: he receives the removal, then nothing
     written after it, and his session ends with a typed reason.
  4b: Bob, offline, is removed while he posts on his own copy: when he comes back he
     is served the removal and its past (he learns of it) and nothing after it; what
     he wrote since is not stored, and he is not refused as a misbehaving peer.
  5: Carol holds an invitation code: before her JOIN takes effect she is served the
     causal past of the INVITE entry and nothing written after it; once it takes
     effect she is served everything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from p2pcomm import Group, MemoryStore, Role, generate_keypair, open_node
from p2pcomm.core.content import Post
from p2pcomm.core.identity import NS_ENTRY
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.membership import Kind
from p2pcomm.group import GroupLog
from p2pcomm.net.events import GroupSynced, NodeEvent, PeerDown, PeerMisbehaved
from p2pcomm.net.node import Node
from p2pcomm.store import SqliteStore

PATIENCE = 20.0


async def until(events: trio.MemoryReceiveChannel[NodeEvent], pred: Callable[[NodeEvent], bool]) -> NodeEvent:
    async for ev in events:
        if pred(ev):
            return ev
    raise AssertionError("the node closed the event channel")


def texts(store: SqliteStore | MemoryStore, group: bytes) -> set[str]:
    out = set()
    for _, e in store.iter_entries(group):
        if e.header.kind == Kind.POST and e.body is not None:
            out.add(Post.decode(e.body).text)
    return out


def founded(tmp_path: Path) -> tuple[SqliteStore, Group]:
    store = SqliteStore(tmp_path / "alice.db")
    # Plaintext, so that what a store received can be read back (the serving rules are
    # the same for encrypted groups; tests/test_encrypted_group.py reads those).
    club = Group.create(store, ALICE, "club", founder_name="alice", encrypted=False)
    club.post("before bob")
    return store, club


ALICE, BOB, CAROL = generate_keypair(), generate_keypair(), generate_keypair()


async def test_an_outsider_who_knows_the_group_id_gets_nothing(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    olivia = generate_keypair()
    outsider_store = MemoryStore()
    with store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(outsider_store, olivia, groups=[club.id], listen=False) as no,
        ):
            events = no.subscribe()
            await no.connect(*na.address)
            # The session reconciles the group (the id was guessed right) and ends
            # with Olivia holding nothing of it.
            await until(events, lambda e: isinstance(e, GroupSynced))
            assert outsider_store.count(club.id) == 0
            assert no.statistics().entries_received == 0


async def test_an_outsiders_entries_are_not_stored_and_it_is_refused(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    mallory = generate_keypair()
    genesis = store.get_entry(club.id, club.id)
    assert genesis is not None
    leaked = MemoryStore()
    log = GroupLog(leaked, club.id)
    log.ingest([genesis])
    log.append_many(
        mallory, [(int(Kind.POST), Post(text=f"spam {i}" + "x" * 4000).encode()) for i in range(50)]
    )
    before = store.count(club.id)
    with store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(leaked, mallory, groups=[club.id], listen=False) as nm,
        ):
            events = na.subscribe()
            await nm.connect(*na.address)
            bad = await until(events, lambda e: isinstance(e, PeerMisbehaved))
            assert isinstance(bad, PeerMisbehaved) and bad.peer_id == mallory.public_key
            assert bad.reason.startswith("unauthorized")
            assert store.count(club.id) == before
            assert not any("spam" in t for t in texts(store, club.id))


async def test_a_removed_member_receives_nothing_written_after_the_removal(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    club.add(BOB.public_key, Role.MEMBER, name="bob")
    club.post("for members")
    bob_store = SqliteStore(tmp_path / "bob.db")
    with store, bob_store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(bob_store, BOB, groups=[club.id], listen=False) as nb,
        ):
            events = nb.subscribe()
            nb.add_peer(*na.address)  # Bob's node keeps redialling
            # Alice's side may still reconcile when she removes Bob: the removal is
            # then queued with the session's other pushes, and goes before the cut-off.
            await until(events, lambda e: isinstance(e, GroupSynced))
            assert texts(bob_store, club.id) == {"before bob", "for members"}

            await na.group(club.id).remove(BOB.public_key, reason="moved away")
            await na.group(club.id).post("after bob left")
            down = await until(events, lambda e: isinstance(e, PeerDown))
            assert isinstance(down, PeerDown)
            assert "unauthorized" in down.reason and club.id.hex()[:16] in down.reason
            # Bob's node holds the removal: it knows it was removed.
            assert nb.group(club.id).role() is None
            # It dials again; the new session serves it nothing.
            await until(events, lambda e: isinstance(e, GroupSynced))
            assert "after bob left" not in texts(bob_store, club.id)
            assert na.group(club.id).role(BOB.public_key) is None


async def test_a_member_removed_while_away_learns_of_it_when_back(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    club.add(BOB.public_key, Role.MEMBER, name="bob")
    club.post("for members")
    bob_store = SqliteStore(tmp_path / "bob.db")
    with bob_store:
        for _, e in store.iter_entries(club.id):
            GroupLog(bob_store, club.id).ingest([e])
        # Apart: Alice removes Bob and posts; Bob, not knowing, posts on his copy.
        club.remove(BOB.public_key, reason="moved away")
        club.post("after bob left")
        Group(bob_store, BOB, club.id).post("bob, unaware")
    bob_store = SqliteStore(tmp_path / "bob.db")
    with store, bob_store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(bob_store, BOB, groups=[club.id], listen=False) as nb,
        ):
            assert nb.group(club.id).role() is Role.MEMBER  # as far as he knows
            alice_events = na.subscribe()
            events = nb.subscribe()
            await nb.connect(*na.address)
            await until(events, lambda e: isinstance(e, GroupSynced))
            # He holds his removal, and so knows it; nothing written after it.
            assert nb.group(club.id).role() is None
            assert "after bob left" not in texts(bob_store, club.id)
            # Alice stored nothing of his since, and did not count him misbehaving.
            assert "bob, unaware" not in texts(store, club.id)
            assert not any(isinstance(e, PeerMisbehaved) for e in _drain(alice_events))


def _drain(events: trio.MemoryReceiveChannel[NodeEvent]) -> list[NodeEvent]:
    out = []
    while True:
        try:
            out.append(events.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_an_invitee_is_served_the_invitations_past_then_everything(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    invitation = club.invite()
    club.post("after the invitation")
    carol_store = SqliteStore(tmp_path / "carol.db")
    with store, carol_store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(carol_store, CAROL, groups=[], listen=False) as nc,
        ):
            # 1. Carol presents the invitation, without joining yet.
            events = nc.subscribe()
            await _present(nc, invitation.code)
            nc.add_peer(*na.address)
            await until(events, lambda e: isinstance(e, GroupSynced))
            held = {e.id for _, e in carol_store.iter_entries(club.id)}
            assert invitation.entry.id in held
            assert texts(carol_store, club.id) == {"before bob"}  # not what came after
            # 2. She joins; once her JOIN takes effect she gets everything.
            await nc.join(invitation.code, name="carol")
            while "after the invitation" not in texts(carol_store, club.id):
                await until(events, lambda e: isinstance(e, GroupSynced))
            assert na.group(club.id).role(CAROL.public_key) is Role.MEMBER


async def test_a_wrong_invitation_proof_gets_nothing(tmp_path: Path) -> None:
    store, club = founded(tmp_path)
    club.invite()
    forged = InvitationCode(group=club.id, secret=b"\x01" * 16, inviter=ALICE.public_key)
    carol_store = MemoryStore()
    with store, trio.fail_after(PATIENCE):
        async with (
            open_node(store, ALICE) as na,
            open_node(carol_store, CAROL, groups=[], listen=False) as nc,
        ):
            events = nc.subscribe()
            await _present(nc, forged)
            await nc.connect(*na.address)
            await until(events, lambda e: isinstance(e, GroupSynced))
            assert carol_store.count(club.id) == 0


async def _present(node: Node, code: InvitationCode) -> None:
    """Start replicating the code's group and present the code in every HELLO, as
    :meth:`Node.join` does before it writes the JOIN."""
    node._joining[code.group] = code
    await node.add_group(code.group)


def test_a_posts_signature_is_not_an_invitation_proof() -> None:
    """Namespaces keep the invitation key's signatures apart (a JOIN proof is not a
    HELLO proof, and the reverse)."""
    from p2pcomm.core.access import invitee_proof, verify_invitee_proof
    from p2pcomm.core.invitation import join_proof

    code = InvitationCode(group=b"\x05" * 32, secret=b"\x02" * 16, inviter=b"\x06" * 32)
    h = b"\x07" * 64
    member = CAROL.public_key
    proof = invitee_proof(code.keypair(), h, code.group, member)
    assert verify_invitee_proof(code.public_key, h, code.group, member, proof)
    assert not verify_invitee_proof(code.public_key, b"\x08" * 64, code.group, member, proof)
    assert not verify_invitee_proof(code.public_key, h, code.group, BOB.public_key, proof)
    other = join_proof(code.keypair(), code.group, b"\x09" * 32, member)
    assert not verify_invitee_proof(code.public_key, h, code.group, member, other)
    entry_signature = code.keypair().sign(NS_ENTRY, h[:32])
    assert not verify_invitee_proof(code.public_key, h, code.group, member, entry_signature)
