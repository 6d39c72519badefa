"""Members-only service, the pure part (p2pcomm/core/access.py; spec/06-sync.md 6.22):
the invitation proof against spec/vectors/access.json, grants and admission."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pcomm.core.access import (
    Access,
    admit,
    causal_cut,
    grant_for,
    invitee_proof,
    verify_invitee_proof,
)
from p2pcomm.core.content import visible_content
from p2pcomm.core.invitation import invitation_keypair
from p2pcomm.core.log import decode_entry
from p2pcomm.core.membership import MembershipMachine, Role, resolve
from p2pcomm.core.sync import Msg, SharedGroups, SyncSession
from p2pcomm.testing.history import History, keypair

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "vectors" / "access.json").read_text()
)["vectors"]


def by_type(kind: str) -> list[dict[str, object]]:
    return [v for v in VECTORS if v["type"] == kind]


def test_the_proof_vector() -> None:
    (v,) = by_type("invitee-proof")
    inv = invitation_keypair(bytes.fromhex(str(v["secret"])))
    assert inv.public_key.hex() == v["invitation_key"]
    args = [bytes.fromhex(str(v[k])) for k in ("session_hash", "group", "member")]
    assert invitee_proof(inv, *args).hex() == v["proof"]


@pytest.mark.parametrize("v", by_type("verify"), ids=lambda v: str(v["name"]))
def test_verify_vectors(v: dict[str, object]) -> None:
    args = [
        bytes.fromhex(str(v[k]))
        for k in ("invitation_key", "session_hash", "group", "member", "proof")
    ]
    assert verify_invitee_proof(*args) is v["ok"]


def test_the_hello_vector_is_what_a_joining_side_sends_and_what_a_peer_reads() -> None:
    (v,) = by_type("hello")
    h = bytes.fromhex(str(v["session_hash"]))
    groups = [bytes.fromhex(str(g)) for g in v["groups"]]  # type: ignore[attr-defined]
    proofs = [bytes.fromhex(str(p)) for p in v["proofs"]]  # type: ignore[attr-defined]
    sender = SyncSession(initiator=True, session_hash=h, groups=groups, proofs=proofs)
    sender.start()
    wire = sender.data_to_send()
    assert wire.hex() == v["bytes"]
    assert wire[4 + 1] == Msg.HELLO
    receiver = SyncSession(initiator=False, session_hash=h, groups=groups)
    receiver.receive_data(wire)
    (event,) = receiver.events()
    assert event == SharedGroups(groups=tuple(groups), proofs=tuple(proofs))


def _story() -> tuple[History, dict[str, object]]:
    """alice founds and posts; adds bob; invites (secret 1); posts again."""
    history, alice = History.found(keypair(0), name="club")
    bob = history.replica(keypair(1))
    alice.post("one")
    add = alice.add(bob, Role.MEMBER)
    invite, code = alice.invite(bytes(range(16)))
    later = alice.post("after the invite")
    return history, {"alice": alice, "bob": bob, "add": add, "invite": invite, "code": code, "later": later}


def test_grants() -> None:
    history, s = _story()
    state = resolve(history.entries)
    headers = {e.id: e.header for e in history.entries}
    h = b"\x07" * 64
    carol = keypair(2).public_key

    def grant(peer: bytes, proofs: list[bytes], now: int = 0) -> Access:
        return grant_for(
            state,
            peer,
            proofs=proofs,
            session_hash=h,
            now_ms=now,
            cut_of=lambda eid: causal_cut(eid, headers.get),
        ).access

    assert grant(keypair(0).public_key, []) is Access.MEMBER
    assert grant(keypair(1).public_key, []) is Access.MEMBER
    assert grant(carol, []) is Access.NONE
    proof = invitee_proof(s["code"].keypair(), h, state.group, carol)  # type: ignore[attr-defined]
    assert grant(carol, [proof]) is Access.INVITEE
    assert grant(carol, [proof[::-1]]) is Access.NONE
    # bound to the prover: another key cannot use carol's proof
    assert grant(keypair(3).public_key, [proof]) is Access.NONE
    assert grant_for(
        None, carol, proofs=[proof], session_hash=h, now_ms=0, cut_of=lambda _: {}
    ).access is Access.NONE


def test_a_removed_member_is_served_the_past_of_its_removal() -> None:
    history, s = _story()
    alice, bob = s["alice"], keypair(1).public_key
    removal = alice.remove(bob)  # type: ignore[attr-defined]
    after = alice.post("after bob")  # type: ignore[attr-defined]
    machine = MembershipMachine()
    machine.apply_many(history.entries)
    headers = {e.id: e.header for e in history.entries}
    assert machine.removals(bob) == [removal.id]
    assert machine.removals(keypair(0).public_key) == []
    grant = grant_for(
        machine.state, bob, proofs=[], session_hash=b"\x07" * 64, now_ms=0,
        cut_of=lambda eid: causal_cut(eid, headers.get), removals=machine.removals,
    )  # fmt: skip
    assert grant.access is Access.REMOVED
    assert grant.allows(removal, bob) and not grant.allows(after, bob)
    # A stranger is never served, and a removal that is void serves nothing.
    assert machine.removals(keypair(2).public_key) == []


@pytest.mark.parametrize("v", by_type("grant"), ids=lambda v: str(v["name"]))
def test_grant_vectors(v: dict[str, object]) -> None:
    """What a peer is served (06 AC1 to AC3, AC2a), recomputed from the entries alone,
    in two arrival orders."""
    entries = [decode_entry(bytes.fromhex(x)) for x in v["entries"]]  # type: ignore[attr-defined]
    headers = {e.id: e.header for e in entries}
    for order in (entries, entries[::-1]):
        machine = MembershipMachine()
        machine.apply_many(order)
        grant = grant_for(
            machine.state, bytes.fromhex(str(v["peer"])), proofs=[], session_hash=b"\0" * 64,
            now_ms=0, cut_of=lambda eid: causal_cut(eid, headers.get), removals=machine.removals,
        )  # fmt: skip
        assert grant.access.value == v["access"]
        assert {a.hex(): seq for a, seq in grant.cut.items()} == v["cut"]


def test_an_invitees_cut_is_the_causal_past_of_the_invite() -> None:
    history, s = _story()
    headers = {e.id: e.header for e in history.entries}
    invite, later = s["invite"], s["later"]
    cut = causal_cut(invite.id, headers.get)  # type: ignore[attr-defined]
    alice = keypair(0).public_key
    assert cut == {alice: invite.header.seq}  # type: ignore[attr-defined]
    assert later.header.seq > cut[alice]  # type: ignore[attr-defined]


def test_admission_keeps_strangers_entries_out() -> None:
    history, s = _story()
    state, _ = visible_content(history.entries)
    alice, bob = s["alice"], s["bob"]
    dave = history.replica(keypair(3))
    dave.sync(alice)  # type: ignore[arg-type]
    spam = dave.post("spam")
    group = state.group
    stranger = keypair(9).public_key
    # From a stranger: the members' entries may be relayed, the stranger's are refused.
    assert admit(group, state, history.entries[:-1], stranger) == []
    assert admit(group, state, [spam], stranger) == [spam]
    # From a member, nothing is refused (it relays what its node accepted).
    assert admit(group, state, [spam], keypair(1).public_key) == []
    # A batch that brings its own members (the genesis's author, the targets of ADDs
    # by members) is judged with them.
    clean = [e for e in history.entries if e.id != spam.id]
    assert admit(group, None, clean, stranger) == []
    assert admit(group, None, [*clean, spam], stranger) == [spam]
    assert bob is not None


def test_members_learned_from_earlier_batches_of_a_session_count() -> None:
    """A replica that holds no view yet (it is joining) learns the members from the
    catch-up itself, which may arrive in several batches: a member relaying its own
    entries in a later batch is not taken for a stranger."""
    history, s = _story()
    bob = s["bob"]
    bob.sync(s["alice"])  # type: ignore[attr-defined]
    post = bob.post("from bob")  # type: ignore[attr-defined]
    group = history.entries[0].id
    first = [e for e in history.entries if e.id != post.id]
    peer = keypair(1).public_key  # bob relays
    assert admit(group, None, [post], peer) == [post]  # alone, bob looks like a stranger
    known: set[bytes] = set()
    assert admit(group, None, first, peer, known) == []
    assert keypair(1).public_key in known
    assert admit(group, None, [post], peer, known) == []
