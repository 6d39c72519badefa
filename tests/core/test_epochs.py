"""Key blocks, frontiers, holders and the stale-epoch rule (p2pcomm.core.epochs), and
the writing rules W1 to W4 (p2pcomm.core.encryptor), driven through
:class:`~p2pcomm.testing.crypted.CryptReplica`.

The concurrency cases each check four things about a content entry written after the
concurrent operations: which rekeys form its frontier, who holds its key by the public
count (``EpochView.holders``), who can actually open it (``CryptReplica.read``), and its
verdict. Everyone's names: Alice founds and is the senior admin, Bob and Carol are
admins, Xavier and Yves members, Zoe comes later.
"""

from __future__ import annotations

import pytest

from p2pcomm.core import crypto
from p2pcomm.core.encoding import encode
from p2pcomm.core.epochs import KEY_BLOCK_VERSION, EpochView, KeyBlock, block_of, build_block
from p2pcomm.core.log import Entry
from p2pcomm.core.membership import (
    Kind,
    MembershipMachine,
    Reason,
    RemoveMember,
    Role,
    resolve,
)
from p2pcomm.core.membership.ops import KeysOp
from p2pcomm.core.seal import SLOT_SIZE
from p2pcomm.errors import DecodeError, ErrorCode
from p2pcomm.testing.crypted import CryptReplica
from p2pcomm.testing.cryptsim import derivable, sync_all
from p2pcomm.testing.history import History, Replica, invitation_secret, named_keypair

NAMES = ("alice", "bob", "carol", "xavier", "yves", "zoe", "walt")
KEYS = {n: named_keypair(n) for n in NAMES}
WHO = {kp.public_key: n for n, kp in KEYS.items()}

# --------------------------------------------------------------------------- key blocks

ID_A, ID_B = bytes([1]) * 32, bytes([2]) * 32
PUB = crypto.x25519_public(bytes(range(32)))
EPH = crypto.x25519_public(bytes(range(1, 33)))
#: X25519 points of small order: every shared secret with them is zero (12.5 SK4).
WEAK = (
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
)


def raw(*fields: object) -> bytes:
    return encode(list(fields))  # type: ignore[arg-type]


def refused(data: bytes) -> ErrorCode:
    with pytest.raises(DecodeError) as info:
        KeyBlock.decode(data)
    return info.value.code


@pytest.mark.parametrize(
    "block",
    [
        KeyBlock(receive=PUB),
        KeyBlock(eph_pub=EPH, slots=bytes(2 * SLOT_SIZE), pointers=bytes(16 + 64)),
        KeyBlock(receive=PUB, eph_pub=EPH, exclude=(ID_A, ID_B), slots=bytes(SLOT_SIZE)),
        KeyBlock(eph_pub=EPH, to=(ID_A, ID_B), slots=bytes(2 * SLOT_SIZE), pointers=bytes(48)),
        KeyBlock(
            eph_pub=EPH, to=(ID_A,), epoch=(ID_A, ID_B), slots=bytes(SLOT_SIZE), pointers=bytes(80)
        ),
    ],
    ids=["receive", "rekey", "rekey-exclude", "forward", "forward-epoch"],
)
def test_key_block_round_trip(block: KeyBlock) -> None:
    data = block.encode()
    assert KeyBlock.decode(data) == block
    assert data == raw(
        1,
        block.receive,
        b"".join(block.exclude),
        b"".join(block.to),
        b"".join(block.epoch),
        block.eph_pub,
        block.slots,
        block.pointers,
    )
    assert block.is_rekey == (not block.to and bool(block.eph_pub))
    assert block.is_forward == bool(block.to)
    assert block.slot_count == len(block.slots) // SLOT_SIZE


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ((PUB[:31], b"", b"", b"", b"", b"", b""), ErrorCode.WRONG_LENGTH),
        ((PUB + b"\0", b"", b"", b"", b"", b"", b""), ErrorCode.WRONG_LENGTH),
        ((b"", b"", b"", b"", EPH[:31], b"", b""), ErrorCode.WRONG_LENGTH),
        ((b"", b"", b"", b"", EPH, bytes(SLOT_SIZE + 1), b""), ErrorCode.WRONG_LENGTH),
        ((b"", b"", b"", b"", EPH, b"", bytes(15)), ErrorCode.WRONG_LENGTH),
        ((b"", b"", b"", b"", EPH, b"", bytes(16 + 31)), ErrorCode.WRONG_LENGTH),
        ((b"", ID_A[:31], b"", b"", EPH, b"", b""), ErrorCode.WRONG_LENGTH),
        ((b"", b"", ID_A + b"\0", b"", EPH, bytes(SLOT_SIZE), b""), ErrorCode.WRONG_LENGTH),
    ],
    ids=[
        "receive-31",
        "receive-33",
        "eph-31",
        "slots-49",
        "pointers-15",
        "pointers-47",
        "exclude-31",
        "to-33",
    ],
)
def test_key_block_refuses_wrong_lengths(fields: tuple[bytes, ...], code: ErrorCode) -> None:
    assert refused(raw(1, *fields)) is code


@pytest.mark.parametrize("where", ["exclude", "to"])
@pytest.mark.parametrize("ids", [(ID_B, ID_A), (ID_A, ID_A)], ids=["descending", "repeated"])
def test_key_block_refuses_ids_out_of_order(where: str, ids: tuple[bytes, bytes]) -> None:
    joined = b"".join(ids)
    exclude, to = (joined, b"") if where == "exclude" else (b"", joined)
    data = raw(1, b"", exclude, to, b"", EPH, bytes(2 * SLOT_SIZE) if to else b"", b"")
    assert refused(data) is ErrorCode.MALFORMED
    with pytest.raises(DecodeError):
        KeyBlock(eph_pub=EPH, **{where: ids})  # type: ignore[arg-type]


def test_key_block_refuses_a_forward_that_excludes() -> None:
    assert refused(raw(1, b"", ID_A, ID_B, b"", EPH, bytes(SLOT_SIZE), b"")) is ErrorCode.MALFORMED


def test_key_block_refuses_an_epoch_without_recipients_or_out_of_order() -> None:
    # A past epoch is forwarded to someone (KB3): not in a rekey ...
    assert refused(raw(1, b"", b"", b"", ID_A, EPH, b"", b"")) is ErrorCode.MALFORMED
    # ... and its ids ascend, like every list of ids.
    data = raw(1, b"", b"", ID_A, ID_B + ID_A, EPH, bytes(SLOT_SIZE), b"")
    assert refused(data) is ErrorCode.MALFORMED
    with pytest.raises(DecodeError):
        KeyBlock(eph_pub=EPH, epoch=(ID_A,))


def test_key_block_refuses_an_empty_block() -> None:
    assert refused(raw(1, b"", b"", b"", b"", b"", b"", b"")) is ErrorCode.MALFORMED
    with pytest.raises(DecodeError):
        KeyBlock()


@pytest.mark.parametrize(
    "fields",
    [
        (b"", b"", b"", b"", b"", bytes(SLOT_SIZE), b""),
        (b"", b"", b"", b"", b"", b"", bytes(48)),
        (PUB, ID_A, b"", b"", b"", b"", b""),
        (PUB, b"", ID_A, b"", b"", b"", b""),
    ],
    ids=["slots", "pointers", "exclude", "to"],
)
def test_key_block_refuses_secrets_without_an_ephemeral_key(fields: tuple[bytes, ...]) -> None:
    assert refused(raw(1, *fields)) is ErrorCode.MALFORMED


@pytest.mark.parametrize("weak", WEAK, ids=["zero", "one", "order-8"])
def test_key_block_refuses_a_weak_receive_key(weak: bytes) -> None:
    assert refused(raw(1, weak, b"", b"", b"", b"", b"", b"")) is ErrorCode.WRONG_LENGTH


def test_key_block_refuses_an_unknown_version() -> None:
    assert refused(raw(2, PUB, b"", b"", b"", b"", b"", b"")) is ErrorCode.UNKNOWN_VERSION
    assert refused(raw(2)) is ErrorCode.UNKNOWN_VERSION
    assert KEY_BLOCK_VERSION == 1


def test_key_block_refuses_other_shapes() -> None:
    assert refused(raw(1, PUB, b"", b"", b"", b"")) is ErrorCode.WRONG_LENGTH
    assert refused(raw(1, PUB, b"", b"", b"", b"", b"", b"", b"")) is ErrorCode.TOO_LARGE
    assert refused(raw(1, "text", b"", b"", b"", b"", b"", b"")) is ErrorCode.WRONG_TYPE
    assert refused(encode(b"not an array")) is ErrorCode.WRONG_TYPE


def test_key_block_refuses_a_non_canonical_encoding() -> None:
    good = KeyBlock(receive=PUB).encode()
    assert good[:2] == b"\x98\x01"
    # The version as a uint8 (0xcc 0x01) instead of a fixint.
    assert refused(b"\x98\xcc\x01" + good[2:]) is ErrorCode.NOT_CANONICAL
    # The receive key with a bin16 length.
    assert good[2:4] == b"\xc4\x20"
    assert refused(good[:2] + b"\xc5\x00\x20" + good[4:]) is ErrorCode.NOT_CANONICAL


def test_an_undecodable_key_block_is_ignored_but_the_removal_stands() -> None:
    history, r = group()
    alice, xavier = r["alice"], r["xavier"]
    body = RemoveMember(member=xavier.id, cut=xavier.seq, keys=b"\x91\x02").encode()
    removal = Replica.append(alice, Kind.REMOVE, body)
    machine = full(history)
    op = machine._core.by_id[removal.id]
    assert block_of(op) is None
    assert machine.authorized(removal.id)
    assert xavier.id not in machine.roles()


# --------------------------------------------------------------------------- histories


def group(
    admins: tuple[str, ...] = ("bob", "carol"), members: tuple[str, ...] = ("xavier", "yves")
) -> tuple[History, dict[str, CryptReplica]]:
    """Alice founds an encrypted group and adds these people; each publishes its
    receive key, Alice forwards the first epoch to them, and everyone syncs."""
    history, alice = CryptReplica.found(KEYS["alice"])
    r = {"alice": alice}
    for name in admins + members:
        r[name] = CryptReplica(history, KEYS[name])
        alice.add(r[name], Role.ADMIN if name in admins else Role.MEMBER)
    for name in admins + members:
        r[name].sync(alice)
        r[name].publish()
        alice.sync(r[name])
    assert alice.forward() is not None
    sync_all(list(r.values()))
    return history, r


def newcomer(history: History, r: dict[str, CryptReplica], name: str) -> CryptReplica:
    r[name] = CryptReplica(history, KEYS[name])
    return r[name]


def full(history: History) -> MembershipMachine:
    machine = MembershipMachine()
    machine.apply_many(history.entries)
    return machine


def view_of(history: History) -> tuple[MembershipMachine, EpochView]:
    machine = full(history)
    return machine, machine._core.epochs


def frontier(history: History, entry: Entry) -> list[bytes]:
    machine, view = view_of(history)
    return [o.id for o in view.frontier(machine._core.K[entry.id])]


def holders(history: History, entry: Entry) -> set[str]:
    machine, view = view_of(history)
    return {WHO[m] for m in view.holders(machine._core.K[entry.id])}


def members_at(history: History, entry: Entry) -> set[str]:
    machine, view = view_of(history)
    return {WHO[m] for m in view.members(machine._core.K[entry.id])}


def readers(r: dict[str, CryptReplica], entry: Entry) -> set[str]:
    """Who opens ``entry`` (after learning everything there is)."""
    sync_all(list(r.values()))
    return {name for name, rep in r.items() if rep.read(entry) is not None}


def reason(history: History, entry: Entry) -> Reason:
    state = resolve(history.entries)
    assert full(history).state == state
    return state.verdicts[entry.id].reason


def ids(*entries: Entry) -> list[bytes]:
    return sorted(e.id for e in entries)


def forwards(history: History) -> list[Entry]:
    machine, view = view_of(history)
    out = []
    for e in history.entries:
        o = machine._core.by_id.get(e.id)
        block = None if o is None else view.block(o)
        if block is not None and block.is_forward:
            out.append(e)
    return out


def forward_round(r: dict[str, CryptReplica]) -> list[Entry]:
    """Everyone syncs, each member writes the forward W4 asks for, everyone syncs."""
    reps = list(r.values())
    sync_all(reps)
    written = [f for rep in reps if (f := rep.forward()) is not None]
    sync_all(reps)
    return written


def forwarded_to(history: History, entry: Entry) -> set[str]:
    machine, view = view_of(history)
    block = view.block(machine._core.by_id[entry.id])
    assert block is not None and block.is_forward
    return {WHO[m] for m in block.to}


def cannot_derive(history: History, rep: CryptReplica, entry: Entry) -> bool:
    """Even trying every slot with every receive key it had, and every pointer."""
    machine, view = view_of(history)
    held = derivable(view, rep.receive.values(), rep.secrets)
    return not all(o.id in held for o in view.frontier(machine._core.K[entry.id]))


# --------------------------------------------------------------------------- cases


def test_a_concurrent_removals_need_both_secrets() -> None:
    """Alice removes Xavier while Bob removes Yves: Carol's post after both needs both
    secrets; no extra entry is written and no forward is due."""
    history, r = group()
    alice, bob, carol = r["alice"], r["bob"], r["carol"]
    rx = alice.remove(r["xavier"])
    ry = bob.remove(r["yves"])
    carol.sync(alice, bob)
    before = len(history)
    post = carol.post("after both removals")
    assert len(history) == before + 1
    assert frontier(history, post) == ids(rx, ry)
    assert holders(history, post) == {"alice", "bob", "carol"}
    assert readers(r, post) == {"alice", "bob", "carol"}
    assert reason(history, post) is Reason.OK
    later = alice.post("Alice, after syncing")
    assert readers(r, later) == {"alice", "bob", "carol"}
    for gone in ("xavier", "yves"):
        assert cannot_derive(history, r[gone], post)
        assert cannot_derive(history, r[gone], later)
    assert forward_round(r) == []
    assert len(history) == before + 2


def test_b_two_admins_remove_the_same_member() -> None:
    history, r = group()
    alice, bob, carol = r["alice"], r["bob"], r["carol"]
    ra = alice.remove(r["xavier"])
    rb = bob.remove(r["xavier"])
    carol.sync(alice, bob)
    before = len(history)
    post = carol.post("after the removal")
    assert len(history) == before + 1
    assert frontier(history, post) == ids(ra, rb)
    assert holders(history, post) == {"alice", "bob", "carol", "yves"}
    assert readers(r, post) == {"alice", "bob", "carol", "yves"}
    assert reason(history, post) is Reason.OK
    assert cannot_derive(history, r["xavier"], post)
    assert forward_round(r) == []


def test_c_mutual_removal_the_senior_gets_the_juniors_secret_by_one_forward() -> None:
    """Alice (senior) removes Bob while Bob removes Alice: Bob's removal is void, but its
    rekey still counts, and Alice lacks it. One forward hands it to her."""
    history, r = group()
    alice, bob, carol = r["alice"], r["bob"], r["carol"]
    ra = alice.remove(bob)
    rb = bob.remove(alice)
    carol.sync(alice, bob)
    post = carol.post("after the mutual removal")
    assert reason(history, ra) is Reason.OK
    assert reason(history, rb) is not Reason.OK
    assert frontier(history, post) == ids(ra, rb)
    assert members_at(history, post) == {"alice", "carol", "xavier", "yves"}
    assert holders(history, post) == {"carol", "xavier", "yves"}
    assert readers(r, post) == {"carol", "xavier", "yves"}
    assert reason(history, post) is Reason.OK
    assert alice.enc.needs_rekey(alice.next_cut())  # she lacks Bob's secret
    # One forward: the first holder to act hands Bob's secret to Alice; after it,
    # nobody else has one to write.
    sync_all(list(r.values()))
    first = carol.forward()
    assert first is not None and forwarded_to(history, first) == {"alice"}
    assert forward_round(r) == []
    assert forwards(history)[1:] == [first]  # [0]: Alice's welcome in group()
    assert readers(r, post) == {"alice", "carol", "xavier", "yves"}
    before = len(history)
    mine = alice.post("Alice, after the forward")
    assert len(history) == before + 1  # no rekey needed any more
    assert frontier(history, mine) == ids(ra, rb)
    assert holders(history, mine) == {"alice", "carol", "xavier", "yves"}
    assert readers(r, mine) == {"alice", "carol", "xavier", "yves"}
    assert cannot_derive(history, bob, mine)


def test_d_removal_concurrent_with_an_add_one_forward_welcomes() -> None:
    history, r = group()
    alice, carol = r["alice"], r["carol"]
    zoe = newcomer(history, r, "zoe")
    rx = alice.remove(r["xavier"])
    carol.add(zoe)
    zoe.sync(carol)
    zoe.publish()
    carol.sync(alice, zoe)
    post = carol.post("welcome zoe")
    assert frontier(history, post) == ids(rx)
    assert "zoe" in members_at(history, post)
    assert holders(history, post) == {"alice", "bob", "carol", "yves"}
    assert readers(r, post) == {"alice", "bob", "carol", "yves"}
    assert reason(history, post) is Reason.OK
    sync_all(list(r.values()))
    first = alice.forward()
    assert first is not None and forwarded_to(history, first) == {"zoe"}
    assert forward_round(r) == []
    assert readers(r, post) == {"alice", "bob", "carol", "yves", "zoe"}
    assert cannot_derive(history, r["xavier"], post)


def test_d_a_stale_epoch_is_still_forwarded_to_the_members_it_was_for() -> None:
    """Zoe is added and Carol posts; then Xavier leaves, so the epoch is stale (X1) and
    the next writer will rekey. Carol's post is for Zoe all the same: Alice forwards
    the epoch to her without waiting for a writer."""
    history, r = group()
    alice, carol, xavier = r["alice"], r["carol"], r["xavier"]
    zoe = newcomer(history, r, "zoe")
    carol.add(zoe)
    zoe.sync(carol)
    zoe.publish()
    carol.sync(zoe)
    post = carol.post("hello zoe")
    xavier.sync(carol)
    xavier.leave()
    sync_all(list(r.values()))
    K = alice.next_cut()
    assert alice.enc.view.stale(K)
    first = alice.forward()
    assert first is not None and forwarded_to(history, first) == {"zoe"}
    assert "zoe" in readers(r, post)
    assert forward_round(r) == []


@pytest.mark.parametrize("inviter", ["carol", "xavier"])
def test_e_removal_concurrent_with_a_join(inviter: str) -> None:
    """Zoe joins with an invitation while Alice removes Xavier. With Carol's invitation
    Zoe is a member and gets the key by one forward; with Xavier's (a moderator, whose
    removal voids the join, R4) she is not, and gets nothing."""
    history, r = group(members=("yves",))
    alice, carol = r["alice"], r["carol"]
    xavier = r["xavier"] = CryptReplica(history, KEYS["xavier"])
    alice.add(xavier, Role.MODERATOR)
    xavier.sync(alice)
    xavier.publish()
    alice.sync(xavier)
    alice.forward()
    sync_all(list(r.values()))
    invite, code = r[inviter].invite(invitation_secret(1))
    sync_all(list(r.values()))
    zoe = newcomer(history, r, "zoe")
    zoe.sync(r[inviter])
    rx = alice.remove(xavier)
    join = zoe.join(code, invite)
    block = view_of(history)[1].block(full(history)._core.by_id[join.id])
    assert block is not None and block.receive and not block.eph_pub  # W1
    carol.sync(alice, zoe)
    post = carol.post("after the removal and the join")
    assert frontier(history, post) == ids(rx)
    assert holders(history, post) == {"alice", "bob", "carol", "yves"}
    assert readers(r, post) == {"alice", "bob", "carol", "yves"}
    assert reason(history, post) is Reason.OK
    sync_all(list(r.values()))
    first = alice.forward()
    if inviter == "carol":
        assert reason(history, join) is Reason.OK
        assert first is not None and forwarded_to(history, first) == {"zoe"}
        assert forward_round(r) == []
        assert readers(r, post) == {"alice", "bob", "carol", "yves", "zoe"}
    else:
        assert reason(history, join) is Reason.INVITER_REVOKED
        assert first is None
        assert forward_round(r) == []
        assert readers(r, post) == {"alice", "bob", "carol", "yves"}
        assert cannot_derive(history, zoe, post)
    assert cannot_derive(history, xavier, post)


def test_f_after_a_leave_the_next_post_is_preceded_by_a_rekey() -> None:
    history, r = group()
    alice, xavier = r["alice"], r["xavier"]
    xavier.leave()
    alice.sync(xavier)
    before = len(history)
    post = alice.post("after Xavier left")
    rekey = history.entries[before]
    assert len(history) == before + 2
    assert rekey.header.kind == Kind.KEYS and rekey.header.author == alice.id
    assert frontier(history, post) == ids(rekey)
    assert holders(history, post) == {"alice", "bob", "carol", "yves"}
    assert readers(r, post) == {"alice", "bob", "carol", "yves"}
    assert reason(history, post) is Reason.OK
    assert cannot_derive(history, xavier, post)


def test_f_without_the_rekey_the_post_is_stale() -> None:
    history, r = group()
    alice, xavier = r["alice"], r["xavier"]
    xavier.leave()
    alice.sync(xavier)
    alice.follow_rules = False
    before = len(history)
    post = alice.post("after Xavier left, without a rekey")
    assert len(history) == before + 1
    assert frontier(history, post) == [history.group]
    assert holders(history, post) == {"alice", "bob", "carol", "xavier", "yves"}
    assert "xavier" not in members_at(history, post)
    assert reason(history, post) is Reason.STALE_EPOCH
    assert "xavier" in readers(r, post)  # which is why it is void


def test_f_a_leave_concurrent_with_a_forward_to_the_leaver_still_forces_a_rekey() -> None:
    """Alice adds Zoe, who publishes her receive key, and Alice forwards her the epoch;
    meanwhile Zoe leaves. Bob sees the add, the key and the leave but not the forward:
    the public count says Zoe holds nothing (X1 is met), yet the forward reached her,
    so Bob rekeys before posting (W3)."""
    history, r = group()
    alice, bob = r["alice"], r["bob"]
    zoe = newcomer(history, r, "zoe")
    alice.add(zoe)
    zoe.sync(alice)
    zoe.publish()
    alice.sync(zoe)
    welcome = alice.forward()
    assert welcome is not None and forwarded_to(history, welcome) == {"zoe"}
    zoe.leave()
    bob.sync(zoe)
    K = bob.next_cut()
    view = bob.enc.view
    assert not view.stale(K) and "zoe" not in {WHO[m] for m in view.holders(K)}
    before = len(history)
    post = bob.post("after Zoe left")
    assert len(history) == before + 2 and history.entries[before].header.kind == Kind.KEYS
    assert frontier(history, post) == ids(history.entries[before])
    assert reason(history, post) is Reason.OK
    sync_all(list(r.values()))
    assert zoe.read(post) is None
    assert cannot_derive(history, zoe, post)


@pytest.mark.parametrize("how", ["remove", "rekey"])
def test_g_the_next_rekey_leaves_out_a_member_whose_log_forked(how: str) -> None:
    history, r = group()
    alice, xavier = r["alice"], r["xavier"]
    twin = Replica.fork(xavier)
    one = xavier.post("one branch")
    two = twin.post("the other branch")
    alice.sync(xavier)
    alice.learn([two])
    assert xavier.id in full(history).state.equivocators
    assert reason(history, one) is Reason.EQUIVOCATION
    op = alice.remove(r["yves"]) if how == "remove" else alice.rekey()
    machine, view = view_of(history)
    o = machine._core.by_id[op.id]
    block = view.block(o)
    assert block is not None and block.is_rekey
    assert block.exclude == (xavier.id,)
    assert xavier.id not in {m for m, _ in view.recipients(o)}
    post = alice.post("after the fork")
    assert frontier(history, post) == ids(op)
    expected = {"alice", "bob", "carol"} | ({"yves"} if how == "rekey" else set())
    assert holders(history, post) == expected
    assert reason(history, post) is Reason.OK
    # W4 does not hand the new epoch to the forked member either.
    assert forward_round(r) == []
    assert readers(r, post) == expected
    assert cannot_derive(history, xavier, post)


def test_h_a_member_offline_across_three_rekeys_catches_up_from_the_log() -> None:
    history, r = group(members=("xavier", "yves", "walt"))
    alice, bob, carol, yves = r["alice"], r["bob"], r["carol"], r["yves"]
    known = len(yves.known)
    posts = [alice.post("before")]
    k1 = alice.remove(r["xavier"])
    posts.append(alice.post("after the first rekey"))
    bob.sync(alice)
    k2 = bob.rekey()
    posts.append(bob.post("after the second"))
    carol.sync(bob)
    k3 = carol.remove(r["walt"])
    posts.append(carol.post("after the third"))
    assert [frontier(history, p) for p in posts[1:]] == [ids(k1), ids(k2), ids(k3)]
    assert len(yves.known) == known  # offline all along
    before = len(forwards(history))
    yves.sync(carol)
    assert [yves.read(p) is not None for p in posts] == [True] * 4
    assert {k1.id, k2.id, k3.id} <= set(yves.secrets)
    assert len(forwards(history)) == before


def test_i_a_garbled_slot_keeps_its_recipient_out_until_a_forward() -> None:
    history, r = group()
    alice, bob, yves = r["alice"], r["bob"], r["yves"]
    K = alice.next_cut()
    alice.enc.learn()
    view = alice.enc.view
    block, secret = build_block(
        view,
        author=alice.id,
        seq=alice.seq + 1,
        kind=Kind.KEYS,
        K=K,
        secrets=alice.secrets,
        random_bytes=alice.random,
        rekey=True,
    )
    names = sorted(view.members(K))
    i = names.index(yves.id)
    slots = bytearray(block.slots)
    slots[i * SLOT_SIZE + 7] ^= 0x01
    garbled = KeyBlock(eph_pub=block.eph_pub, slots=bytes(slots), pointers=block.pointers)
    rekey = Replica.append(alice, Kind.KEYS, KeysOp(keys=garbled.encode()).encode())
    alice.enc.note(rekey.id, secret)
    post = alice.post("after the garbled rekey")
    assert frontier(history, post) == ids(rekey)
    # The public count says Yves holds it (he has a slot) ...
    assert holders(history, post) == {"alice", "bob", "carol", "xavier", "yves"}
    assert reason(history, post) is Reason.OK
    # ... but his slot does not open.
    assert readers(r, post) == {"alice", "bob", "carol", "xavier"}
    # A holder checks the slots against the secret and forwards it to him.
    first = bob.forward()
    assert first is not None and forwarded_to(history, first) == {"yves"}
    assert forward_round(r) == []
    assert readers(r, post) == {"alice", "bob", "carol", "xavier", "yves"}


def test_j_a_removed_member_gets_nothing_written_after_its_removal() -> None:
    """Alice removes Xavier while Bob, who has not seen it, rekeys (and Xavier gets a
    slot of Bob's rekey); and Xavier, unaware too, rekeys himself. Nothing whose past
    holds the removal opens for him."""
    history, r = group()
    alice, bob, carol, xavier = r["alice"], r["bob"], r["carol"], r["xavier"]
    removal = alice.remove(xavier)
    kb = bob.rekey()
    window = bob.post("Bob, not knowing")
    kx = xavier.rekey()
    carol.sync(alice, bob, xavier)
    post = carol.post("after the removal")
    bob.sync(alice)
    later = bob.post("Bob, after seeing the removal")
    assert frontier(history, post) == ids(removal, kb, kx)
    assert frontier(history, later) == ids(removal, kb)
    assert reason(history, kx) is not Reason.OK  # Xavier's rekey is void, yet counts
    for e in (post, later):
        assert holders(history, e) == {"alice", "bob", "carol", "yves"}
        assert reason(history, e) is Reason.OK
    assert "xavier" in readers(r, window)  # the propagation window: its past lacks it
    assert readers(r, post) == readers(r, later) == {"alice", "bob", "carol", "yves"}
    assert forward_round(r) == []
    bob.rekey()
    last = bob.post("after another rekey")
    assert readers(r, last) == {"alice", "bob", "carol", "yves"}
    machine = full(history)
    bit = machine._core.by_id[removal.id].bit
    after = [e for e in history.entries if machine._core.K.get(e.id, 0) & bit]
    assert {post.id, later.id, last.id} <= {e.id for e in after}
    for e in after:
        if e.header.kind == Kind.POST:
            assert xavier.read(e) is None
            assert cannot_derive(history, xavier, e)


# --------------------------------------------------------------------------- known gaps


def test_c_if_the_senior_writes_before_the_forward_a_history_forward_repairs_it() -> None:
    """A W3 rekey by a writer that cannot derive the epoch before it has no pointers;
    a holder of that epoch then forwards it, named, to whoever lacks it (W5)."""
    history, r = group()
    alice, bob, carol = r["alice"], r["bob"], r["carol"]
    ra = alice.remove(bob)
    rb = bob.remove(alice)
    carol.sync(alice, bob)
    post = carol.post("after the mutual removal")
    assert frontier(history, post) == ids(ra, rb)
    alice.sync(carol)
    before = len(history)
    alice.post("Alice, before any forward")
    rekey = history.entries[before]
    machine, view = view_of(history)
    block = view.block(machine._core.by_id[rekey.id])
    assert block is not None and block.is_rekey and block.pointers == b""
    forward_round(r)
    assert "alice" in readers(r, post)
    machine, view = view_of(history)
    named = [
        b.epoch
        for e in history.entries[before:]
        if e.header.kind == Kind.KEYS
        and (b := view.block(machine._core.by_id[e.id])) is not None
        and b.epoch
    ]
    assert tuple(ids(ra, rb)) in named


@pytest.mark.parametrize("how", ["ban", "remove"])
def test_k_a_rekey_void_at_its_own_cut_starts_no_epoch(how: str) -> None:
    """12.10 F1: Xavier, a plain member, bans (or removes) Alice, which his own cut
    already voids (insufficient-role), and his rekey leaves her out. It does not count:
    his post, and what is written after it, stay in the epoch before, which Alice holds.
    Counted, it would lock her out of them, and once everyone it reached is gone no
    forward could ever reach her.

        genesis -- adds -- forward F (everyone) -- X: BAN alice (void) -- X: post P
                                                                            |
                                        yves, xavier leave; bob removed -- Alice reads P
    """
    history, r = group(admins=("bob",), members=("xavier", "yves"))
    alice, bob, xavier, yves = r["alice"], r["bob"], r["xavier"], r["yves"]
    before = frontier(history, xavier.post("before"))
    void = xavier.ban(alice) if how == "ban" else xavier.remove(alice)
    assert reason(history, void) is Reason.INSUFFICIENT_ROLE
    machine, view = view_of(history)
    op = machine._core.by_id[void.id]
    block = view.block(op)
    assert block is not None and block.is_rekey and not view.counts(op)
    assert "alice" not in {WHO[m] for m, _ in view.recipients(op)}
    post = xavier.post("after my void ban")
    assert frontier(history, post) == before
    assert holders(history, post) == {"alice", "bob", "xavier", "yves"}
    assert reason(history, post) is Reason.OK
    # Everyone the void rekey reached goes: it would have had no holder left.
    for rep in (yves, xavier):
        rep.sync(alice)
        rep.leave()
    alice.sync(yves, xavier)
    alice.remove(bob)
    sync_all(list(r.values()))
    assert alice.read(post) is not None
    assert forward_round(r) == []


def test_k_a_rekey_void_at_its_own_cut_counts_for_nothing_even_if_its_removal_stands() -> None:
    """The verdict of a cut alone and the final one can differ the other way: Carol
    demotes Bob while Alice, concurrently, removes Carol (R2 voids the demotion). Bob,
    who has seen his demotion and not Carol's removal, removes Yves: void at his cut,
    effective in the end. His rekey starts no epoch, so Yves, removed, still holds the
    epoch of the cut: X1 makes it stale, and the next writer rekeys first (W3).

        Carol: SET_ROLE bob member -- Bob: REMOVE yves (void at its cut, effective)
        Alice: REMOVE carol (cut before the demotion) --------+-- Alice: post (rekeys)
    """
    history, r = group(admins=("bob", "carol"), members=("xavier", "yves"))
    alice, bob, carol, yves = r["alice"], r["bob"], r["carol"], r["yves"]
    cut = carol.seq
    demotion = carol.set_role(bob, Role.MEMBER)
    bob.sync(carol)
    removal = bob.remove(yves)
    alice.remove(carol, cut=cut)
    assert reason(history, demotion) is Reason.REVOKED
    assert reason(history, removal) is Reason.OK
    machine, view = view_of(history)
    assert not view.counts(machine._core.by_id[removal.id])
    assert yves.id not in full(history).roles()
    alice.sync(bob)
    alice.follow_rules = False
    stale = alice.post("without the rekey")
    alice.follow_rules = True
    assert "yves" in holders(history, stale)
    assert reason(history, stale) is Reason.STALE_EPOCH
    post = alice.post("after the removal")
    assert reason(history, post) is Reason.OK
    assert "yves" not in holders(history, post)
    assert cannot_derive(history, yves, post)


def test_l_a_slot_sealed_to_a_member_whose_add_is_voided_later_makes_her_a_holder() -> None:
    """KB6: the recipients of a rekey are the members its own cut resolves alone, those
    its author sealed to. Bob adds Zoe while Alice demotes Bob below that ADD (R2 voids
    it); Yves, who has not seen the demotion, rekeys and seals a slot to Zoe. Zoe stays
    a recipient and so a holder (H1): the epoch reaches a non-member and is stale (X1),
    and Carol, who sees the demotion, rekeys before she posts.

        Bob: ADD zoe -- Zoe: her key -- Yves: rekey R (a slot for Zoe) --+-- Carol: post
        Alice: SET_ROLE bob member (cut before the ADD) -----------------+
    """
    history, r = group(admins=("bob",), members=("carol", "yves"))
    alice, bob, carol, yves = r["alice"], r["bob"], r["carol"], r["yves"]
    zoe = newcomer(history, r, "zoe")
    cut = bob.seq
    add = bob.add(zoe)
    zoe.sync(bob)
    zoe.publish()
    bob.sync(zoe)
    yves.sync(bob, zoe)
    alice.set_role(bob, Role.MEMBER, cut=cut)  # demotes Bob below his ADD of Zoe
    rekey = yves.rekey()  # Yves has not seen it: Zoe gets a slot
    assert reason(history, add) is Reason.REVOKED
    machine, view = view_of(history)
    recipients = [WHO[m] for m, _ in view.recipients(machine._core.by_id[rekey.id])]
    assert recipients == sorted(recipients, key=lambda n: KEYS[n].public_key)
    assert "zoe" in recipients  # her slot is counted where Yves sealed it
    carol.sync(alice, yves)
    carol.follow_rules = False
    careless = carol.post("sealed for the epoch Zoe holds")
    carol.follow_rules = True
    assert frontier(history, careless) == ids(rekey)
    assert "zoe" in holders(history, careless) and "zoe" not in members_at(history, careless)
    assert reason(history, careless) is Reason.STALE_EPOCH
    zoe.sync(carol)
    assert zoe.read(careless) is not None  # what X1 is about
    post = carol.post("after the demotion")
    assert frontier(history, post) != ids(rekey)
    assert "zoe" not in members_at(history, post)
    assert "zoe" not in holders(history, post)
    assert reason(history, post) is Reason.OK
    assert cannot_derive(history, zoe, post)


def test_the_resolver_and_the_epochs_agree_on_which_kinds_are_envelopes() -> None:
    # resolve.py keeps its own copy (it cannot import epochs.py at load time).
    from p2pcomm.core.epochs import encrypted_kind
    from p2pcomm.core.membership.resolve import encrypted_kind as resolver_kind

    assert all(encrypted_kind(k) == resolver_kind(k) for k in range(0, 1 << 16))
