"""Vectors for members-only service (spec/06-sync.md 6.22): invitation proofs and the
HELLO that carries them.

An ``invitee-proof`` vector gives an invitation secret, a session hash ``h``, a group
id and a member id, and the proof the member sends: the invitation key's signature
over ``"p2pcomm/1/invitee" namespace || h || G || M``. ``verify`` vectors give a proof
and the inputs a verifier holds, and whether it must accept. ``hello`` vectors give the
framed HELLO of a joining side (group tokens and the proofs). ``grant`` vectors give a
group's entries, a peer, and what that peer is served (AC1 to AC3, AC2a): its access and,
for a cut-limited grant, per author the highest sequence it may be sent.
"""

from __future__ import annotations

from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core.access import (
    NS_INVITEE,
    causal_cut,
    grant_for,
    invitee_proof,
    verify_invitee_proof,
)
from p2pcomm.core.invitation import invitation_keypair
from p2pcomm.core.log import encode_entry
from p2pcomm.core.membership import MembershipMachine, Role
from p2pcomm.core.sync import SyncSession
from p2pcomm.testing.history import History, keypair

REVISION = 6
H = crypto.blake2b_256(b"vector access session hash") + crypto.blake2b_256(b"second half")
GROUP = crypto.blake2b_256(b"vector access group")
MEMBER = bytes.fromhex("2c" * 32)
OTHER = bytes.fromhex("3d" * 32)
SECRET = bytes(range(16))


def generate() -> dict[str, Any]:
    inv = invitation_keypair(SECRET)
    proof = invitee_proof(inv, H, GROUP, MEMBER)
    vectors: list[dict[str, Any]] = [
        {
            "type": "invitee-proof",
            "name": "invitee-proof",
            "namespace": NS_INVITEE.hex(),
            "secret": SECRET.hex(),
            "invitation_key": inv.public_key.hex(),
            "session_hash": H.hex(),
            "group": GROUP.hex(),
            "member": MEMBER.hex(),
            "signed": (NS_INVITEE + H + GROUP + MEMBER).hex(),
            "proof": proof.hex(),
        }
    ]
    cases = [
        ("verify-ok", H, GROUP, MEMBER, proof, True),
        ("verify-other-session", H[::-1], GROUP, MEMBER, proof, False),
        ("verify-other-group", H, OTHER, MEMBER, proof, False),
        ("verify-lent-to-another-member", H, GROUP, OTHER, proof, False),
        ("verify-flipped-bit", H, GROUP, MEMBER, bytes([proof[0] ^ 1]) + proof[1:], False),
    ]
    for name, h, g, m, p, ok in cases:
        assert verify_invitee_proof(inv.public_key, h, g, m, p) is ok
        vectors.append(
            {
                "type": "verify",
                "name": name,
                "invitation_key": inv.public_key.hex(),
                "session_hash": h.hex(),
                "group": g.hex(),
                "member": m.hex(),
                "proof": p.hex(),
                "ok": ok,
            }
        )
    session = SyncSession(initiator=True, session_hash=H, groups=[GROUP], proofs=[proof])
    session.start()
    vectors.append(
        {
            "type": "hello",
            "name": "hello-of-a-joining-initiator",
            "session_hash": H.hex(),
            "initiator": True,
            "groups": [GROUP.hex()],
            "proofs": [proof.hex()],
            "bytes": session.data_to_send().hex(),
        }
    )
    vectors.extend(grant_vectors())
    return {
        "description": "Members-only service: invitation proofs and the HELLO that carries them",
        "revision": REVISION,
        "vectors": vectors,
    }


def grant_vectors() -> list[dict[str, Any]]:
    """Who is served what of one history: alice (admin) adds bob and carol (an admin);
    bob posts; alice and carol remove bob concurrently; alice posts again. Bob is served
    the union of the two removals' pasts (AC2a), alice all (AC1), a stranger nothing
    (AC3)."""
    history, alice = History.found(keypair(0), name="club")
    bob, carol = history.replica(keypair(1)), history.replica(keypair(2))
    alice.add(bob, Role.MEMBER)
    alice.add(carol, Role.ADMIN)
    for r in (bob, carol):
        r.learn(history.entries)
    bob.post("before the removals")
    alice.learn(history.entries)
    carol.learn(history.entries)
    alice.remove(bob)
    carol.remove(bob)
    alice.learn(history.entries)
    alice.post("after the removals")
    machine = MembershipMachine()
    machine.apply_many(history.entries)
    headers = {e.id: e.header for e in history.entries}
    out = []
    for name, peer in (
        ("grant-removed-twice-concurrently", keypair(1).public_key),
        ("grant-member", keypair(0).public_key),
        ("grant-stranger", keypair(3).public_key),
    ):
        grant = grant_for(
            machine.state, peer, proofs=[], session_hash=H, now_ms=0,
            cut_of=lambda eid: causal_cut(eid, headers.get), removals=machine.removals,
        )  # fmt: skip
        out.append(
            {
                "type": "grant",
                "name": name,
                "group": history.group.hex(),
                "entries": [encode_entry(e).hex() for e in history.entries],
                "peer": peer.hex(),
                "access": grant.access.value,
                "cut": {a.hex(): seq for a, seq in sorted(grant.cut.items())},
            }
        )
    return out
