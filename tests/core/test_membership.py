"""Operation bodies, the permission table, and the machine's bookkeeping (spec/04).

Concurrency scenarios are in ``test_membership_scenarios.py``, properties in
``test_membership_properties.py``, vectors in ``test_membership_vectors.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core.log import KIND_GENESIS, Entry, create_entry
from p2pcomm.core.membership import (
    FIRST_APP_KIND,
    MEMBERSHIP_KINDS,
    PERMISSIONS,
    AddMember,
    Ban,
    ClaimAdmin,
    GenesisBody,
    Invite,
    Join,
    Kind,
    Leave,
    MembershipMachine,
    MembershipOp,
    Permission,
    Reason,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
    decode_op,
    required_level,
    resolve,
)
from p2pcomm.errors import DecodeError, ErrorCode, ValidationError
from p2pcomm.testing.history import History, invitation_secret, keypair

ids = st.binary(min_size=32, max_size=32)
roles = st.sampled_from(list(Role))
uints = st.integers(0, 2**63 - 1)
names = st.text(max_size=16)

OPS: st.SearchStrategy[MembershipOp] = st.one_of(
    st.builds(
        GenesisBody, name=names, description=names, rules=st.text(max_size=64), founder_name=names
    ),
    st.builds(AddMember, member=ids, role=roles, cut=uints, name=names),
    st.builds(RemoveMember, member=ids, cut=uints, reason=names),
    st.builds(SetRole, member=ids, role=roles, cut=uints),
    st.just(Leave()),
    st.builds(Ban, member=ids, cut=uints, reason=names),
    st.builds(SetMetadata, name=names, description=names, rules=names),
    st.builds(Invite, invitation_key=ids, role=roles, max_uses=uints, expires_at=uints, note=names),
    st.builds(RevokeInvite, invite=ids),
    st.builds(Join, invite=ids, proof=st.binary(min_size=64, max_size=64), name=names),
    st.just(ClaimAdmin()),
)


@given(OPS)
def test_every_body_round_trips(op: MembershipOp) -> None:
    data = op.encode()
    assert decode_op(op.KIND, data) == op
    assert type(op).decode(data).encode() == data


@given(OPS, st.data())
def test_truncated_and_extended_bodies_are_refused(op: MembershipOp, data: st.DataObject) -> None:
    """Habit 5: each decoder fed whole, cut short, and with trailing data."""
    blob = op.encode()
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(DecodeError) as exc:
        decode_op(op.KIND, blob[:cut])
    assert exc.value.code in (ErrorCode.TRUNCATED, ErrorCode.WRONG_TYPE, ErrorCode.MALFORMED)
    with pytest.raises(DecodeError) as exc:
        decode_op(op.KIND, blob + b"\xc0")
    assert exc.value.code is ErrorCode.TRAILING_DATA


CASES: list[tuple[str, int, list[object], ErrorCode]] = [
    ("unknown version", Kind.LEAVE, [2], ErrorCode.UNKNOWN_VERSION),
    ("version zero", Kind.CLAIM_ADMIN, [0], ErrorCode.UNKNOWN_VERSION),
    ("not an array", Kind.LEAVE, 1, ErrorCode.WRONG_TYPE),  # type: ignore[list-item]
    ("too few fields", Kind.REMOVE, [1, b"m" * 32, 3], ErrorCode.WRONG_LENGTH),
    ("too many fields", Kind.LEAVE, [1, 0], ErrorCode.WRONG_LENGTH),
    ("short member id", Kind.ADD, [1, b"m" * 31, 2, 0, ""], ErrorCode.WRONG_LENGTH),
    ("role zero", Kind.ADD, [1, b"m" * 32, 0, 0, ""], ErrorCode.OUT_OF_RANGE),
    ("role five", Kind.SET_ROLE, [1, b"m" * 32, 5, 0], ErrorCode.OUT_OF_RANGE),
    ("negative cut", Kind.BAN, [1, b"m" * 32, -1, ""], ErrorCode.OUT_OF_RANGE),
    ("name as bytes", Kind.JOIN, [1, b"i" * 32, b"p" * 64, b"x"], ErrorCode.WRONG_TYPE),
    ("proof too short", Kind.JOIN, [1, b"i" * 32, b"p" * 63, ""], ErrorCode.WRONG_LENGTH),
    ("name too long", Kind.GENESIS, [1, "n" * 65, "", "", ""], ErrorCode.TOO_LARGE),
    ("bool as uses", Kind.INVITE, [1, b"k" * 32, 2, True, 0, ""], ErrorCode.WRONG_TYPE),
]


@pytest.mark.parametrize(("what", "kind", "value", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_bodies_name_their_fault(
    what: str, kind: int, value: object, code: ErrorCode
) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_op(kind, msgpack.packb(value, use_bin_type=True))
    assert exc.value.code is code
    assert exc.value.message == exc.value.message.lower() or "utf-8" in exc.value.message


def test_non_canonical_and_map_bodies_are_refused() -> None:
    with pytest.raises(DecodeError) as exc:
        decode_op(Kind.LEAVE, b"\x91\xd0\x01")  # [1] with 1 as int8
    assert exc.value.code is ErrorCode.NOT_CANONICAL
    with pytest.raises(DecodeError) as exc:
        decode_op(Kind.LEAVE, msgpack.packb({1: 1}))
    assert exc.value.code is ErrorCode.FORBIDDEN_TYPE


def test_decode_op_refuses_content_kinds() -> None:
    with pytest.raises(ValidationError) as exc:
        decode_op(Kind.POST, Leave().encode())
    assert exc.value.code is ErrorCode.BAD_OPERATION and exc.value.found == Kind.POST


@pytest.mark.parametrize(
    "make",
    [
        lambda: GenesisBody(name="x" * 65),
        lambda: AddMember(member=b"short", role=Role.MEMBER),
        lambda: RemoveMember(member=b"m" * 32, cut=-1),
        lambda: Invite(invitation_key=b"k" * 32, note="n" * 257),
        lambda: Join(invite=b"i" * 32, proof=b"p" * 10),
        lambda: SetMetadata(name="ok", rules="r" * 8193),
    ],
)
def test_encoding_out_of_limits_is_a_typed_error(make: Callable[[], MembershipOp]) -> None:
    with pytest.raises(ValidationError) as exc:
        make().encode()
    assert exc.value.code is ErrorCode.BAD_OPERATION


def test_permission_table_is_monotone_and_complete() -> None:
    assert set(PERMISSIONS) == set(Permission)
    assert PERMISSIONS[Permission.POST] == Role.MEMBER
    assert PERMISSIONS[Permission.MODERATE] == Role.MODERATOR
    assert PERMISSIONS[Permission.REMOVE_PRIVILEGED] == Role.ADMIN
    assert required_level(Kind.POST) == Role.MEMBER
    assert required_level(Kind.REACT) == Role.READER
    assert required_level(Kind.DELETE) == Role.MODERATOR
    assert required_level(FIRST_APP_KIND + 7) == Role.MEMBER
    assert required_level(11) is None  # reserved
    assert all(required_level(k) is None for k in MEMBERSHIP_KINDS)


# --------------------------------------------------------------------------- state API


def small_group() -> tuple[History, list[Entry]]:
    history, alice = History.found(
        keypair(0), name="club", description="d", rules="be kind", founder_name="al"
    )
    bob = history.replica(keypair(1))
    alice.add(bob, Role.MODERATOR, name="bob")
    bob.sync(alice)
    inv, code = bob.invite(invitation_secret(1), max_uses=2)
    carol = history.replica(keypair(2))
    carol.sync(bob)
    carol.join(code, inv, name="carol")
    return history, list(history.entries)


def test_state_accessors() -> None:
    history, entries = small_group()
    state = resolve(entries)
    a, b, c = (keypair(i).public_key for i in range(3))
    assert state.group == history.group and state.founder == a
    assert (state.metadata.name, state.metadata.description, state.metadata.rules) == (
        "club",
        "d",
        "be kind",
    )
    assert {m.name for m in state.members.values()} == {"al", "bob", "carol"}
    assert state.role_of(c) == Role.MEMBER and state.role_of(b"x" * 32) is None
    assert state.can(b, Permission.MODERATE) and not state.can(c, Permission.MODERATE)
    assert state.admins == {a} and not state.headless
    (invitation,) = state.invitations.values()
    assert invitation.uses == 1 and invitation.usable() and invitation.issuer_valid
    assert state.invitation_for_key(invitation.invitation_key) == invitation
    assert not invitation.usable(now_ms=invitation.expires_at) or invitation.expires_at == 0
    assert all(state.authorized(e.id) for e in entries)
    assert state.verdict(b"?" * 32) is None and not state.authorized(b"?" * 32)
    assert state.members[c].since == entries[-1].id


def test_metadata_last_in_order_wins_and_needs_an_admin() -> None:
    history, alice = History.found(keypair(0), name="one")
    bob = history.replica(keypair(1))
    alice.add(bob, Role.MODERATOR)
    bob.sync(alice)
    refused = bob.set_metadata("hijacked")
    alice.set_metadata("two")
    state = resolve(history.entries)
    assert state.metadata.name == "two"
    assert state.verdicts[refused.id].reason is Reason.INSUFFICIENT_ROLE


def test_reserved_and_application_kinds() -> None:
    history, alice = History.found(keypair(0))
    reserved = alice.append(13, b"\x91\x01")  # 12 is RELAY; 13 to 31 are reserved
    app = alice.append(FIRST_APP_KIND, b"anything")
    state = resolve(history.entries)
    assert state.verdicts[reserved.id].reason is Reason.UNKNOWN_KIND
    assert state.verdicts[app.id].reason is Reason.OK


def test_malformed_genesis_body_still_makes_a_founder() -> None:
    genesis_history, _ = History.found(keypair(0))
    from p2pcomm.core.log import create_genesis

    genesis = create_genesis(
        keypair(0), timestamp=genesis_history.genesis.header.timestamp, body=b"\xc1"
    )
    state = resolve([genesis])
    assert state.admins == {keypair(0).public_key}
    assert state.metadata.name == ""


def test_malformed_operation_is_void() -> None:
    history, alice = History.found(keypair(0))
    bad = alice.append(Kind.ADD, b"\x92\x01\x02")
    state = resolve(history.entries)
    assert state.verdicts[bad.id].reason is Reason.MALFORMED


def test_self_targeted_removal_is_a_bad_target() -> None:
    history, alice = History.found(keypair(0))
    e = alice.remove(alice)
    assert resolve(history.entries).verdicts[e.id].reason is Reason.BAD_TARGET


def test_cut_below_the_targets_seen_operations_is_a_bad_target() -> None:
    """Spec 4.3: a removal must accept as seen every operation of its target in its past."""
    history, alice = History.found(keypair(0))
    bob = history.replica(keypair(1))
    alice.add(bob, Role.MODERATOR)
    bob.sync(alice)
    bob.invite(invitation_secret(2))
    alice.sync(bob)
    low = alice.remove(bob, cut=0)
    assert resolve(history.entries).verdicts[low.id].reason is Reason.BAD_TARGET


# --------------------------------------------------------------------------- the machine


def test_machine_waits_for_dependencies_and_ignores_duplicates() -> None:
    _history, entries = small_group()
    m = MembershipMachine()
    assert m.apply(entries[-1]) == []
    assert m.group is None  # waiting for the genesis
    changed = m.apply_many(entries[:-1])
    assert set(changed) == {e.id for e in entries}
    assert m.apply(entries[2]) == []
    assert m.state == resolve(entries)
    assert len(m) == len(entries)


def test_machine_reports_rejudged_entries() -> None:
    """A late removal re-judges the removed member's concurrent posts."""
    history, alice = History.found(keypair(0))
    bob = history.replica(keypair(1))
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    removal = alice.remove(bob)
    posts = [bob.post(str(i)) for i in range(3)]
    m = MembershipMachine()
    for e in history.entries:
        if e.id != removal.id:
            m.apply(e)
    assert all(m.authorized(p.id) for p in posts)
    changed = m.apply(removal)
    assert set(changed) == {removal.id} | {p.id for p in posts}
    assert not any(m.authorized(p.id) for p in posts)
    assert m.verdict(posts[0].id).reason is Reason.REVOKED  # type: ignore[union-attr]
    assert m.verdict(b"?" * 32) is None
    # kind() is the entry's kind, whatever its verdict
    assert m.kind(removal.id) == Kind.REMOVE
    assert [m.kind(p.id) for p in posts] == [Kind.POST] * 3
    assert m.kind(history.entries[0].id) == KIND_GENESIS
    assert m.kind(b"?" * 32) is None
    assert m.roles() == {alice.id: Role.ADMIN} and MembershipMachine().roles() == {}


def test_operation_body_arriving_late() -> None:
    history, alice = History.found(keypair(0))
    bob = history.replica(keypair(1))
    add = alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    post = bob.post("hi")
    m = MembershipMachine()
    m.apply_many([history.entries[0], add.without_body(), post])
    assert m.verdict(add.id).reason is Reason.BODY_MISSING  # type: ignore[union-attr]
    assert not m.authorized(post.id)
    changed = m.apply(add)
    assert {add.id, post.id} <= set(changed)
    assert m.authorized(post.id)
    assert m.state == resolve(history.entries)


def test_entries_of_another_group_are_refused() -> None:
    _history, entries = small_group()
    other, _ = History.found(keypair(5), name="other")
    m = MembershipMachine()
    m.apply_many(entries)
    with pytest.raises(ValidationError) as exc:
        m.apply(other.genesis)
    assert exc.value.code is ErrorCode.WRONG_GROUP
    stranger = create_entry(
        keypair(5),
        group=other.group,
        seq=2,
        prev=other.genesis.id,
        links=[],
        timestamp=1,
        kind=Kind.POST,
        body=b"",
    )
    with pytest.raises(ValidationError) as exc:
        m.apply(stranger)
    assert exc.value.code is ErrorCode.WRONG_GROUP
    assert m.state == resolve(entries)


def test_resolve_without_genesis_is_a_typed_error() -> None:
    _, entries = small_group()
    with pytest.raises(ValidationError) as exc:
        resolve(entries[1:])
    assert exc.value.code is ErrorCode.BAD_GENESIS


def test_pending_entries_are_listed() -> None:
    _, entries = small_group()
    state = resolve([entries[0], entries[-1]])
    assert state.pending == {entries[-1].id}
    assert entries[-1].id not in state.verdicts


def test_small_order_member_ids_are_never_admitted() -> None:
    """09-security 9.4: anyone can sign as a small-order key; 04 refuses to admit one."""
    from p2pcomm.core.invitation import InvitationCode
    from p2pcomm.core.log import encode_header, entry_id, make_header
    from p2pcomm.core.membership import WEAK_MEMBER_IDS

    assert len(WEAK_MEMBER_IDS) == 14 and bytes(32) in WEAK_MEMBER_IDS
    assert (1).to_bytes(32, "little") in WEAK_MEMBER_IDS
    history, alice = History.found(keypair(0))
    weak = next(iter(sorted(WEAK_MEMBER_IDS)))
    add = alice.add(weak, Role.MEMBER)
    inv, code = alice.invite(invitation_secret(9))
    assert isinstance(code, InvitationCode)
    body = Join(invite=inv.id, proof=code.join_proof(inv.id, weak)).encode()
    header = make_header(
        group=history.group,
        author=weak,
        seq=1,
        prev=None,
        links=[inv.id],
        timestamp=history.tick(),
        kind=Kind.JOIN,
        body=body,
    )
    hb = encode_header(header)
    forged = Entry(
        entry_id(hb), header, hb, bytes(64), body
    )  # the signature is not checked here (03 is)
    state = resolve([*history.entries, forged])
    assert state.verdicts[add.id].reason is Reason.BAD_TARGET
    assert state.verdicts[forged.id].reason is Reason.BAD_TARGET
    assert not state.is_member(weak)


def test_a_failing_batch_leaves_a_consistent_machine() -> None:
    _history, entries = small_group()
    other, _ = History.found(keypair(5), name="other")
    m = MembershipMachine()
    with pytest.raises(ValidationError):
        m.apply_many([*entries[:3], other.genesis, *entries[3:]])
    assert m.state == resolve(entries[:3])
    m.apply_many(entries[3:])
    assert m.state == resolve(entries)


def test_a_genesis_without_its_body_still_makes_the_founder_admin() -> None:
    """04 B1 and 4.8.4: the genesis always makes its author admin, body or not. A replica
    that syncs headers first sees the founder's operations take effect before the
    genesis body arrives; the body, when it comes, brings only the metadata."""
    history, alice = History.found(keypair(0), name="club", founder_name="al")
    bob = history.replica(keypair(1))
    add = alice.add(bob, Role.MEMBER, name="bob")
    post = alice.post("hello")
    bob.sync(alice)
    reply = bob.reply(post, "hi")
    genesis, *rest = history.entries
    bare = [genesis.without_body(), *rest]
    a, b = keypair(0).public_key, keypair(1).public_key
    state = resolve(bare)
    assert state.verdicts[genesis.id].reason is Reason.OK
    assert {e: state.verdicts[e].reason for e in (add.id, post.id, reply.id)} == dict.fromkeys(
        (add.id, post.id, reply.id), Reason.OK
    )
    assert state.role_of(a) is Role.ADMIN and state.role_of(b) is Role.MEMBER
    assert state.metadata.name == "" and state.members[a].name == ""
    for order in (bare, bare[::-1]):
        m = MembershipMachine()
        for e in order:
            m.apply(e)
        assert m.state == state
        # The body arrives late: the metadata and the founder's name appear.
        changed = m.apply(genesis)
        assert genesis.id in changed
        assert m.state == resolve(history.entries)
        assert m.state.metadata.name == "club" and m.state.members[a].name == "al"
    assert resolve([*bare, genesis]) == resolve(history.entries)
