"""Invitation codes and join proofs (spec/04-membership.md section 6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core.invitation import (
    CODE_PREFIX,
    GROUP_PREFIX_SIZE,
    INVITATION_SECRET_SIZE,
    InvitationCode,
    invitation_keypair,
    join_proof,
    join_signable,
    verify_join_proof,
)
from p2pcomm.core.membership import Reason, Role, resolve
from p2pcomm.errors import ErrorCode, ValidationError
from p2pcomm.testing.history import History, invitation_secret, keypair

GROUP = bytes(range(32))
SECRET = bytes(range(100, 116))
B32 = "abcdefghijklmnopqrstuvwxyz234567"

codes = st.builds(
    InvitationCode,
    group_prefix=st.binary(min_size=GROUP_PREFIX_SIZE, max_size=GROUP_PREFIX_SIZE),
    secret=st.binary(min_size=INVITATION_SECRET_SIZE, max_size=INVITATION_SECRET_SIZE),
    hint=st.none() | st.from_regex(r"[a-z0-9.:]{1,20}", fullmatch=True),
)


@given(codes)
def test_text_round_trips(code: InvitationCode) -> None:
    text = code.text()
    assert text.startswith(CODE_PREFIX)
    assert len(text.partition("@")[0]) == 52
    assert InvitationCode.parse(text) == code


def test_parse_is_forgiving_about_case_dashes_and_spaces() -> None:
    code = InvitationCode.for_group(GROUP, SECRET, hint="192.168.1.20:7777")
    body, _, hint = code.text().partition("@")
    grouped = "-".join(body[i : i + 4] for i in range(0, len(body), 4)).upper()
    assert InvitationCode.parse(f"  {grouped} @{hint} ") == code
    assert InvitationCode.parse(body) == InvitationCode.for_group(GROUP, SECRET)


def test_every_single_character_typo_is_caught() -> None:
    text = InvitationCode.for_group(GROUP, SECRET).text()
    for i in range(len(CODE_PREFIX), len(text)):
        for c in (B32[(B32.index(text[i]) + 1) % 32], B32[(B32.index(text[i]) + 17) % 32]):
            typo = text[:i] + c + text[i + 1 :]
            with pytest.raises(ValidationError) as exc:
                InvitationCode.parse(typo)
            assert exc.value.code is ErrorCode.BAD_CHECKSUM


@pytest.mark.parametrize(
    ("text", "code", "what"),
    [
        ("pc1" + "a" * 48, ErrorCode.BAD_INVITATION, "starts with"),
        ("pci1" + "a" * 47, ErrorCode.BAD_INVITATION, "48 characters"),
        ("pci1" + "a" * 47 + "1", ErrorCode.BAD_INVITATION, "base32"),
        (
            InvitationCode.for_group(GROUP, SECRET).text() + "@bad hint!",
            ErrorCode.BAD_INVITATION,
            "hint",
        ),
    ],
)
def test_malformed_codes_are_typed_errors(text: str, code: ErrorCode, what: str) -> None:
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text)
    assert exc.value.code is code and what in exc.value.message
    assert exc.value.message == exc.value.message.lower()


def test_constructor_checks_sizes() -> None:
    with pytest.raises(ValidationError):
        InvitationCode(group_prefix=b"short", secret=SECRET)
    with pytest.raises(ValidationError):
        InvitationCode(group_prefix=GROUP[:10], secret=b"short")
    with pytest.raises(ValidationError):
        InvitationCode.for_group(b"short", SECRET)
    with pytest.raises(ValidationError) as exc:
        invitation_keypair(b"x" * 15)
    assert exc.value.found == 15


def test_repr_does_not_show_the_secret() -> None:
    code = InvitationCode.for_group(GROUP, SECRET)
    assert SECRET.hex() not in repr(code) and code.text() not in repr(code)


def test_join_proof_binds_group_invitation_and_member() -> None:
    code = InvitationCode.for_group(GROUP, SECRET)
    invite, member = b"i" * 32, b"m" * 32
    proof = code.join_proof(GROUP, invite, member)
    key = code.public_key
    assert key == invitation_keypair(SECRET).public_key
    assert verify_join_proof(key, GROUP, invite, member, proof)
    assert not verify_join_proof(key, GROUP, invite, b"n" * 32, proof)  # another member
    assert not verify_join_proof(key, GROUP, b"j" * 32, member, proof)  # another invitation
    assert not verify_join_proof(key, bytes(32), invite, member, proof)  # another group
    assert not verify_join_proof(key, GROUP, invite, member, proof[:-1])
    assert proof == join_proof(invitation_keypair(SECRET), GROUP, invite, member)
    with pytest.raises(ValueError):
        join_signable(GROUP, b"short", member)


def test_a_code_for_one_group_cannot_prove_a_join_to_another() -> None:
    code = InvitationCode.for_group(GROUP, SECRET)
    with pytest.raises(ValidationError) as exc:
        code.join_proof(bytes(32), b"i" * 32, b"m" * 32)
    assert exc.value.code is ErrorCode.BAD_INVITATION


def test_a_leaked_code_holds_no_key_of_the_inviter() -> None:
    """The code's key pair is derived from the secret alone: it cannot sign as the
    admin who made the invitation, and whoever joins proves they hold the code."""
    history, alice = History.found(keypair(0))
    inv, code = alice.invite(invitation_secret(1), role=Role.MEMBER)
    assert code.keypair().public_key != alice.id
    assert code.matches_group(history.group)
    thief = history.replica(keypair(7))
    thief.sync(alice)
    honest = history.replica(keypair(8))
    honest.sync(alice)
    joined = honest.join(code, inv)
    # Replaying the honest join's proof under another key does not verify.
    from p2pcomm.core.membership import Join, Kind

    stolen = Join.decode(joined.body or b"")
    replay = thief.append(Kind.JOIN, Join(invite=inv.id, proof=stolen.proof).encode())
    state = resolve(history.entries)
    assert state.verdicts[joined.id].reason is Reason.OK
    assert state.verdicts[replay.id].reason is Reason.BAD_PROOF
