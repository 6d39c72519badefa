"""Invitation codes and join proofs (spec/04-membership.md section 4.7)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from p2pcomm.core import crypto
from p2pcomm.core.encoding import encode
from p2pcomm.core.invitation import (
    CODE_PREFIX,
    INVITATION_SECRET_SIZE,
    MAX_HINT_LENGTH,
    MAX_HINTS,
    NS_INVITATION_CODE,
    InvitationCode,
    invitation_keypair,
    join_proof,
    join_signable,
    verify_join_proof,
)
from p2pcomm.core.membership import Reason, Role, resolve
from p2pcomm.errors import DecodeError, ErrorCode, ValidationError
from p2pcomm.testing.history import History, invitation_secret, keypair

GROUP = bytes(range(32))
SECRET = bytes(range(100, 116))
INVITER = bytes(range(200, 232))
B32 = "abcdefghijklmnopqrstuvwxyz234567"
MAX_U63 = 2**63 - 1

CODE = InvitationCode(
    group=GROUP,
    secret=SECRET,
    inviter=INVITER,
    role=3,
    max_uses=5,
    expires_at=1_795_392_000_000,
    hints=("192.168.1.20:7777", "[2001:db8::7]:7447", "garden.example.org:7447"),
)


def text_of(payload: bytes) -> str:
    """A code text around any payload, with a correct checksum."""
    check = crypto.blake2b_256(NS_INVITATION_CODE + payload)[:4]
    return CODE_PREFIX + base64.b32encode(payload + check).decode().rstrip("=").lower()


def fields(**change: object) -> list[object]:
    """The payload array of ``CODE`` with some items replaced (by index name)."""
    items: dict[str, object] = {
        "version": 1,
        "group": GROUP,
        "secret": SECRET,
        "inviter": INVITER,
        "role": 3,
        "max_uses": 5,
        "expires_at": 1_795_392_000_000,
        "hints": ["192.168.1.20:7777"],
    }
    items.update(change)
    return list(items.values())


# --------------------------------------------------------------------------- generated codes

labels = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
ports = st.integers(1, 65535).map(str)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
dns = (
    st.lists(labels, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.rpartition(".")[2].isdigit())
)
hint_st = st.builds(lambda host, port: f"{host}:{port}", ipv4 | ipv6 | dns, ports).filter(
    lambda h: len(h) <= MAX_HINT_LENGTH
)
codes = st.builds(
    InvitationCode,
    group=st.binary(min_size=32, max_size=32),
    secret=st.binary(min_size=INVITATION_SECRET_SIZE, max_size=INVITATION_SECRET_SIZE),
    inviter=st.binary(min_size=32, max_size=32),
    role=st.integers(1, 4),
    max_uses=st.integers(0, MAX_U63),
    expires_at=st.integers(0, MAX_U63),
    hints=st.lists(hint_st, max_size=MAX_HINTS).map(tuple),
)


@given(codes)
def test_text_round_trips(code: InvitationCode) -> None:
    text = code.text()
    assert text.startswith(CODE_PREFIX) and set(text[len(CODE_PREFIX) :]) <= set(B32)
    assert InvitationCode.parse(text) == code
    assert InvitationCode.parse(text).text() == text


@given(codes, st.data())
def test_any_single_character_typo_is_caught(code: InvitationCode, data: st.DataObject) -> None:
    text = code.text()
    i = data.draw(st.integers(0, len(text) - 1))
    c = data.draw(st.characters(codec="utf-8") | st.sampled_from(B32))
    assume(c.lower() != text[i])
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text[:i] + c + text[i + 1 :])
    assert exc.value.code in (ErrorCode.BAD_CHECKSUM, ErrorCode.BAD_INVITATION)


def test_every_base32_substitution_is_caught() -> None:
    """Every character after the prefix replaced by every other base32 character: the
    checksum catches it, except in the last character, whose unused bits must be zero."""
    text = CODE.text()
    for i in range(len(CODE_PREFIX), len(text)):
        for c in B32.replace(text[i], ""):
            with pytest.raises(ValidationError) as exc:
                InvitationCode.parse(text[:i] + c + text[i + 1 :])
            if i < len(text) - 1:
                assert exc.value.code is ErrorCode.BAD_CHECKSUM
            else:
                assert exc.value.code in (ErrorCode.BAD_CHECKSUM, ErrorCode.BAD_INVITATION)


@given(st.text(max_size=300))
def test_parse_of_any_text_raises_only_validation_errors(text: str) -> None:
    try:
        InvitationCode.parse(text)
    except ValidationError as exc:
        assert exc.code in (ErrorCode.BAD_INVITATION, ErrorCode.BAD_CHECKSUM)


@given(st.text(B32 + "-ABC 18", max_size=900))
def test_parse_of_base32_noise_raises_only_validation_errors(body: str) -> None:
    try:
        InvitationCode.parse(CODE_PREFIX + body)
    except ValidationError as exc:
        assert exc.code in (ErrorCode.BAD_INVITATION, ErrorCode.BAD_CHECKSUM)


@given(st.binary(min_size=92, max_size=516))
def test_any_checksummed_payload_parses_or_is_bad_invitation(payload: bytes) -> None:
    try:
        code = InvitationCode.parse(text_of(payload))
    except ValidationError as exc:
        assert exc.code is ErrorCode.BAD_INVITATION
    else:
        assert code.text() == text_of(payload)


# --------------------------------------------------------------------------- the text


def test_parse_is_forgiving_about_case_dashes_and_ascii_white_space() -> None:
    text = CODE.text()
    grouped = "-".join(text[i : i + 5] for i in range(0, len(text), 5))
    assert InvitationCode.parse(grouped.upper()) == CODE
    assert InvitationCode.parse(f" \t{grouped[:40]}\r\n{grouped[40:]}\x0b\x0c ") == CODE


@pytest.mark.parametrize(
    ("char", "name"), [("\u00a0", "no-break space"), ("\u212a", "kelvin sign, lowers to k")]
)
def test_only_ascii_is_normalised(char: str, name: str) -> None:
    text = CODE.text()
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text[:10] + char + text[10:])
    assert exc.value.code is ErrorCode.BAD_INVITATION and "ascii" in exc.value.message


def test_an_old_format_code_is_named() -> None:
    old = "pci1" + "a" * 48 + "@192.168.1.20:7777"
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(old.upper())
    assert exc.value.code is ErrorCode.BAD_INVITATION
    assert "old-format code" in exc.value.message and exc.value.found == "pci1"


@pytest.mark.parametrize(
    ("text", "code", "what"),
    [
        ("pc1" + "a" * 56, ErrorCode.BAD_INVITATION, "member id"),
        ("pcx2" + "a" * 160, ErrorCode.BAD_INVITATION, "starts with"),
        ("", ErrorCode.BAD_INVITATION, "starts with"),
        (CODE.text() + "@x", ErrorCode.BAD_INVITATION, "base32"),
        (CODE.text()[:-1] + "1", ErrorCode.BAD_INVITATION, "base32"),
        (CODE_PREFIX + "a" * 153, ErrorCode.BAD_INVITATION, "154 to 832"),
        (CODE_PREFIX + "a" * 833, ErrorCode.BAD_INVITATION, "154 to 832"),
        (CODE_PREFIX + "a" * 161, ErrorCode.BAD_INVITATION, "not 1, 3 or 6"),
        ("x" * 4097, ErrorCode.BAD_INVITATION, "at most 4096"),
        (CODE.text()[:-8], ErrorCode.BAD_CHECKSUM, "checksum"),
    ],
)
def test_malformed_texts_are_typed_errors(text: str, code: ErrorCode, what: str) -> None:
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text)
    assert exc.value.code is code and what in exc.value.message
    assert exc.value.message == exc.value.message.lower()


def test_unused_bits_of_the_last_character_must_be_zero() -> None:
    text = text_of(encode(fields()))
    assert (len(text) - len(CODE_PREFIX)) * 5 % 8  # this length has unused bits
    last = B32.index(text[-1])
    assert InvitationCode.parse(text)
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text[:-1] + B32[last | 1])
    assert exc.value.code is ErrorCode.BAD_INVITATION and "unused bits" in exc.value.message


@pytest.mark.parametrize(
    ("payload", "decode_error"),
    [
        (encode(fields(version=2)), "unknown-version"),
        (encode(fields()[:-1]), "wrong-length"),
        (encode([*fields(), 0]), "too-large"),  # 9 items: over max_array
        (encode(fields(role=0)), "out-of-range"),
        (encode(fields(role=5)), "out-of-range"),
        (encode(fields(max_uses=MAX_U63 + 1)), "out-of-range"),
        (encode(fields(expires_at=2**64 - 1)), "out-of-range"),
        (encode(fields(group=GROUP[:31] + b"\x00\x00")), "wrong-length"),
        (encode(fields(inviter=INVITER.hex())), "wrong-type"),
        (encode(fields(hints=["a:1"] * 5)), "too-large"),
        (encode(fields(hints=["a" * 99 + ":1"])), "too-large"),
        (encode(fields(hints="a:1")), "wrong-type"),
        (encode(fields(hints=[b"a:1"])), "wrong-type"),
        (encode(fields())[:-1], "truncated"),
        (encode(fields()) + b"\x00", "trailing-data"),
        (b"\xdc\x00\x08" + encode(fields())[1:], "not-canonical"),
        (encode(b"x" * 90), "wrong-type"),
    ],
)
def test_a_checksummed_payload_that_does_not_decode_is_bad_invitation(
    payload: bytes, decode_error: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(text_of(payload))
    assert exc.value.code is ErrorCode.BAD_INVITATION
    assert isinstance(exc.value.__cause__, DecodeError)
    assert exc.value.__cause__.code.value == decode_error == exc.value.found


# --------------------------------------------------------------------------- hints

GOOD_HINTS = {
    "192.168.1.20:7777": ("192.168.1.20", 7777),
    "0.0.0.0:1": ("0.0.0.0", 1),
    "255.255.255.255:65535": ("255.255.255.255", 65535),
    "[::1]:7447": ("::1", 7447),
    "[2001:db8::7]:7447": ("2001:db8::7", 7447),
    "[::ffff:192.0.2.1]:80": ("::ffff:192.0.2.1", 80),
    "localhost:7447": ("localhost", 7447),
    "garden-club.example.org:7447": ("garden-club.example.org", 7447),
    "3com.example:1": ("3com.example", 1),
    "a" * 63 + ".b:1": ("a" * 63 + ".b", 1),
}
BAD_HINTS = [
    "",
    "192.168.1.20",  # no port
    "192.168.1.20:",
    "192.168.1.20:0",
    "192.168.1.20:65536",
    "192.168.1.20:07777",
    "192.168.1.20:+7",
    "256.1.1.1:1",
    "01.2.3.4:1",
    "1.2.3:1",
    "example.123:1",  # last label all digits: read as ipv4
    "Example.org:1",  # upper case
    "-example.org:1",
    "example-.org:1",
    "example..org:1",
    "example.org.:1",
    "a" * 64 + ".b:1",
    "exa_mple.org:1",
    "::1:7447",  # ipv6 without brackets
    "[::1]",
    "[::1]7447",
    "[::g]:1",
    "[2001:DB8::7]:1",  # upper case
    "[fe80::1%eth0]:1",  # zone
    "[1.2.3.4]:1",
    "[::1]:1]:2",
    "\u00e9xample.org:1",
    "a" * 99 + ":1",  # 101 characters
]


@pytest.mark.parametrize("hint", GOOD_HINTS)
def test_good_hints(hint: str) -> None:
    code = InvitationCode(group=GROUP, secret=SECRET, inviter=INVITER, hints=(hint,))
    assert code.hint_addresses() == [GOOD_HINTS[hint]]
    assert InvitationCode.parse(code.text()) == code


@pytest.mark.parametrize("hint", BAD_HINTS)
def test_bad_hints_are_refused_when_made_and_when_parsed(hint: str) -> None:
    with pytest.raises(ValidationError) as exc:
        InvitationCode(group=GROUP, secret=SECRET, inviter=INVITER, hints=(hint,))
    assert exc.value.code is ErrorCode.BAD_INVITATION and "hint" in exc.value.message
    payload = encode(fields(hints=[hint]))
    if len(hint.encode()) <= MAX_HINT_LENGTH:
        with pytest.raises(ValidationError) as exc:
            InvitationCode.parse(text_of(payload))
        assert exc.value.code is ErrorCode.BAD_INVITATION and "hint" in exc.value.message


def test_at_most_four_hints_and_longest_hints_fit() -> None:
    longest = "a" * 62 + "." + "b" * 31 + ":65535"
    assert len(longest) == MAX_HINT_LENGTH
    code = InvitationCode(
        group=GROUP,
        secret=SECRET,
        inviter=INVITER,
        max_uses=MAX_U63,
        expires_at=MAX_U63,
        hints=(longest,) * MAX_HINTS,
    )
    assert len(code.text()) == len(CODE_PREFIX) + 832
    assert InvitationCode.parse(code.text()) == code
    with pytest.raises(ValidationError):
        InvitationCode(group=GROUP, secret=SECRET, inviter=INVITER, hints=("a:1",) * 5)


# --------------------------------------------------------------------------- the object


@pytest.mark.parametrize(
    "change",
    [
        {"group": GROUP[:10]},
        {"secret": b"short"},
        {"inviter": INVITER + b"\x00"},
        {"inviter": INVITER.hex()},
        {"role": 0},
        {"role": 5},
        {"role": True},
        {"max_uses": -1},
        {"expires_at": MAX_U63 + 1},
        {"hints": ["a:1"]},
        {"hints": "a:1"},
    ],
)
def test_constructor_checks_every_field(change: dict[str, object]) -> None:
    args: dict[str, object] = {"group": GROUP, "secret": SECRET, "inviter": INVITER}
    with pytest.raises(ValidationError) as exc:
        InvitationCode(**{**args, **change})  # type: ignore[arg-type]
    assert exc.value.code is ErrorCode.BAD_INVITATION


def test_a_role_is_kept_as_its_int() -> None:
    code = InvitationCode(group=GROUP, secret=SECRET, inviter=INVITER, role=Role.ADMIN)
    assert type(code.role) is int and code.role == 4
    assert code == InvitationCode.parse(code.text())


def test_invitation_keypair_checks_the_secret() -> None:
    with pytest.raises(ValidationError) as exc:
        invitation_keypair(b"x" * 15)
    assert exc.value.found == 15


def test_repr_does_not_show_the_secret() -> None:
    assert SECRET.hex() not in repr(CODE) and CODE.text() not in repr(CODE)
    assert GROUP.hex() in repr(CODE) and INVITER.hex() in repr(CODE)


def test_join_proof_binds_group_invitation_and_member() -> None:
    invite, member = b"i" * 32, b"m" * 32
    proof = CODE.join_proof(invite, member)
    key = CODE.public_key
    assert key == invitation_keypair(SECRET).public_key
    assert verify_join_proof(key, GROUP, invite, member, proof)
    assert not verify_join_proof(key, GROUP, invite, b"n" * 32, proof)  # another member
    assert not verify_join_proof(key, GROUP, b"j" * 32, member, proof)  # another invitation
    assert not verify_join_proof(key, bytes(32), invite, member, proof)  # another group
    assert not verify_join_proof(key, GROUP, invite, member, proof[:-1])
    assert proof == join_proof(invitation_keypair(SECRET), GROUP, invite, member)
    with pytest.raises(ValueError):
        join_signable(GROUP, b"short", member)


def test_a_leaked_code_holds_no_key_of_the_inviter() -> None:
    """The code's key pair is derived from the secret alone: it cannot sign as the
    admin who made the invitation, and whoever joins proves they hold the code."""
    history, alice = History.found(keypair(0))
    inv, code = alice.invite(
        invitation_secret(1), role=Role.MEMBER, max_uses=3, hints=("192.168.1.20:7777",)
    )
    assert code.keypair().public_key != alice.id
    assert (code.group, code.inviter, code.role, code.max_uses) == (
        history.group,
        alice.id,
        Role.MEMBER,
        3,
    )
    assert InvitationCode.parse(code.text()) == code
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
