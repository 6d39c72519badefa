"""Vectors for members-only service (spec/06-sync.md 6.22): invitation proofs and the
HELLO that carries them.

An ``invitee-proof`` vector gives an invitation secret, a session hash ``h``, a group
id and a member id, and the proof the member sends: the invitation key's signature
over ``"p2pcomm/1/invitee" namespace || h || G || M``. ``verify`` vectors give a proof
and the inputs a verifier holds, and whether it must accept. ``hello`` vectors give the
framed HELLO of a joining side (group tokens and the proofs).
"""

from __future__ import annotations

from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core.access import NS_INVITEE, invitee_proof, verify_invitee_proof
from p2pcomm.core.invitation import invitation_keypair
from p2pcomm.core.sync import SyncSession

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
    return {
        "description": "Members-only service: invitation proofs and the HELLO that carries them",
        "revision": REVISION,
        "vectors": vectors,
    }
