"""``Group`` (``p2pcomm/community.py``): the application handle on a store, with real
SQLite files.

Proved here: a group is created and reopened from its file; every action a member can
take writes the entry meant (posts, replies, reactions, hide and unhide, delete, which
drops the body at once, retract; add, remove, ban, set_role, leave, set_metadata);
``members()`` and ``items()`` read the result; an invitation's code carries the group,
inviter, role, uses, expiry and addresses of the INVITE; a second device that received
the entries (``GroupLog.ingest``) joins with the code, and the first sees the new member
once it receives the JOIN; every refused action (RefusedError, NotFoundError,
ValidationError) leaves the store's entry count unchanged; and names resolve:
``find_group`` by full id, 8-hex prefix or name (a name two groups share is AMBIGUOUS),
``find_member`` by ``pc1...`` id, id prefix or display name, ``find_item`` by prefix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from p2pcomm.community import Group, find_group, find_item, find_member
from p2pcomm.core.content import MAX_TEXT
from p2pcomm.core.identity import MemberId
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.membership import Kind, Reason, Role
from p2pcomm.errors import ErrorCode, NotFoundError, RefusedError, ValidationError
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore
from p2pcomm.store.base import BodyState
from p2pcomm.testing.history import T0, named_keypair

ALICE = named_keypair("alice")
BOB = named_keypair("bob")
CAROL = named_keypair("carol")
DAVE = named_keypair("dave")


class Clock:
    """A settable clock (milliseconds), one second per reading."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def a_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "alice.db") as store:
        yield store


@pytest.fixture
def b_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "bob.db") as store:
        yield store


def copy(src: Group, dst: SqliteStore) -> None:
    """Carry every entry of ``src``'s group to ``dst`` (what a sync or a bundle does)."""
    result = GroupLog(dst, src.id).ingest([e for _, e in src.store.iter_entries(src.id)])
    assert not result.rejected


def unchanged(group: Group, call: Callable[[], object], error: type[Exception]) -> Exception:
    """``call`` raises ``error`` and writes nothing."""
    before = group.store.count(group.id)
    with pytest.raises(error) as info:
        call()
    assert group.store.count(group.id) == before
    return info.value


def refused(group: Group, call: Callable[[], object]) -> str:
    exc = unchanged(group, call, RefusedError)
    assert isinstance(exc, RefusedError)
    return exc.reason


def test_create_and_reopen(tmp_path: Path, clock: Clock) -> None:
    with SqliteStore(tmp_path / "a.db") as store:
        club = Group.create(
            store, ALICE, "Garden club", description="seeds", founder_name="alice", clock=clock
        )
        gid = club.id
        assert (club.name, club.metadata.description) == ("Garden club", "seeds")
        assert [(m.id, m.role, m.name) for m in club.members()] == [
            (ALICE.public_key, Role.ADMIN, "alice")
        ]
        assert club.role() is Role.ADMIN
        club.post("first")
    with SqliteStore(tmp_path / "a.db") as store:
        again = Group(store, ALICE, gid, clock=clock)
        assert again.name == "Garden club"
        assert [i.text for i in again.items()] == ["first"]
        with pytest.raises(NotFoundError):
            Group(store, ALICE, b"\x01" * 32)


def test_content_actions(a_store: SqliteStore, clock: Clock) -> None:
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    club.add(BOB.public_key, Role.MODERATOR, name="bob")
    bob = Group(a_store, BOB, club.id, clock=clock)  # Bob's handle on the same store

    p = club.post("Seed swap on Saturday")
    r = bob.reply(p.id, "I'll bring beans")
    bob.react(p.id, "🌱")
    club.react(p.id, "🌱")
    items = club.items()
    assert [(i.id, i.kind, i.text, i.parent) for i in items] == [
        (p.id, Kind.POST, "Seed swap on Saturday", None),
        (r.id, Kind.REPLY, "I'll bring beans", p.id),
    ]
    assert items[0].reactions == (("🌱", 2),)
    assert club.item(r.id) is not None and bob.item(r.id) == club.item(r.id)

    bob.hide(r.id, "off topic")
    assert [i.id for i in club.items()] == [p.id]
    assert [(i.id, i.hidden) for i in club.items(include_hidden=True)] == [
        (p.id, False),
        (r.id, True),
    ]
    club.unhide(r.id)
    assert [i.id for i in club.items()] == [p.id, r.id]

    mine = club.react(p.id, "👍")
    club.retract(mine.id)
    assert club.items()[0].reactions == (("🌱", 2),)
    gone = bob.post("oops")
    bob.retract(gone.id)
    assert gone.id not in {i.id for i in club.items(include_hidden=True)}

    d = club.delete(r.id, "spam")
    assert d.header.kind == Kind.DELETE
    assert r.id not in {i.id for i in club.items(include_hidden=True)}
    held = a_store.get_entry(club.id, r.id)
    assert held is not None and held.body is None  # the body is dropped at once
    assert a_store.body_state(club.id, r.id) is BodyState.DROPPED


def test_membership_actions(a_store: SqliteStore, clock: Clock) -> None:
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    club.add(BOB.public_key, name="bob")
    club.add(CAROL.public_key, Role.READER, name="carol")
    assert [(m.name, m.role) for m in club.members()] == [
        ("", Role.ADMIN),
        ("bob", Role.MEMBER),
        ("carol", Role.READER),
    ]
    club.set_role(CAROL.public_key, Role.MODERATOR)
    assert club.role(CAROL.public_key) is Role.MODERATOR
    club.remove(BOB.public_key, reason="inactive")
    assert club.role(BOB.public_key) is None
    club.ban(DAVE.public_key, reason="spammer")  # a ban may target a non-member
    assert DAVE.public_key in club.state.banned
    club.set_metadata(name="Seed savers", rules="be kind")
    assert (club.name, club.metadata.rules, club.metadata.description) == (
        "Seed savers",
        "be kind",
        "",
    )
    carol = Group(a_store, CAROL, club.id, clock=clock)
    carol.leave()
    assert [m.id for m in club.members()] == [ALICE.public_key]


def test_invite_and_join_on_a_second_store(
    a_store: SqliteStore, b_store: SqliteStore, clock: Clock
) -> None:
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    inv = club.invite(
        role=Role.READER, max_uses=3, expires_in_ms=3600_000, addresses=["192.168.1.20:7447"]
    )
    code = InvitationCode.parse(inv.text)
    assert code == inv.code
    assert (code.group, code.inviter, code.role, code.max_uses) == (
        club.id,
        ALICE.public_key,
        Role.READER,
        3,
    )
    assert code.expires_at == inv.entry.header.timestamp + 3600_000
    assert code.hints == ("192.168.1.20:7447",) and code.hint_addresses() == [
        ("192.168.1.20", 7447)
    ]
    assert club.state.invitations[inv.entry.id].invitation_key == code.public_key

    copy(club, b_store)
    bob = Group(b_store, BOB, club.id, clock=clock)
    assert bob.role() is None
    joined = bob.join(code, name="bob")
    assert joined.header.kind == Kind.JOIN
    assert bob.role() is Role.READER
    assert unchanged(bob, lambda: bob.post("hi"), RefusedError).reason == "insufficient-role"  # type: ignore[attr-defined]
    copy(bob, a_store)
    assert [(m.name, m.role) for m in club.members()] == [("", Role.ADMIN), ("bob", Role.READER)]
    assert club.state.invitations[inv.entry.id].uses == 1


def test_refused_actions_write_nothing(
    a_store: SqliteStore, b_store: SqliteStore, clock: Clock
) -> None:
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    club.add(BOB.public_key, Role.MODERATOR)
    club.add(CAROL.public_key, Role.ADMIN)
    p = club.post("hello")
    bob = Group(a_store, BOB, club.id, clock=clock)
    dave = Group(a_store, DAVE, club.id, clock=clock)

    assert refused(dave, lambda: dave.post("spam")) == Reason.NOT_A_MEMBER.value
    assert refused(dave, lambda: dave.leave()) == Reason.NOT_A_MEMBER.value
    assert refused(bob, lambda: bob.remove(CAROL.public_key)) == "insufficient-role"
    assert refused(bob, lambda: bob.add(DAVE.public_key)) == "insufficient-role"
    assert refused(bob, lambda: bob.set_metadata(name="mine")) == "insufficient-role"
    assert refused(bob, lambda: bob.invite(role=Role.ADMIN)) == "insufficient-role"
    assert refused(club, lambda: club.remove(ALICE.public_key)) == "bad-target"
    assert refused(club, lambda: club.add(BOB.public_key)) == "bad-target"
    assert refused(club, lambda: club.remove(DAVE.public_key)) == "bad-target"
    assert refused(club, lambda: club.claim_admin()) == "not-headless"
    assert refused(club, lambda: club.revoke_invite(b"\x07" * 32)) == "invitation-unknown"
    unchanged(club, lambda: club.post("x" * (MAX_TEXT + 1)), ValidationError)
    unchanged(club, lambda: club.reply(b"\x07" * 32, "?"), NotFoundError)
    unchanged(bob, lambda: bob.retract(p.id), NotFoundError)
    unchanged(club, lambda: club.hide(b"\x07" * 32), NotFoundError)

    # A used-up invitation, on the invitee's store.
    inv = club.invite(max_uses=1)
    carol_inv = club.invite(max_uses=1)
    del carol_inv
    copy(club, b_store)
    erin_kp = named_keypair("erin")
    first = Group(b_store, erin_kp, club.id, clock=clock)
    first.join(inv.code)
    second = Group(b_store, DAVE, club.id, clock=clock)
    assert refused(second, lambda: second.join(inv.code)) == "invitation-used-up"
    assert refused(first, lambda: first.join(inv.code)) == "bad-target"  # already in


def test_find_group(a_store: SqliteStore, clock: Clock) -> None:
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    one = Group.create(a_store, ALICE, "Chess", clock=clock)
    two = Group.create(a_store, BOB, "Chess", clock=clock, encrypted=False)
    secret = Group.create(a_store, BOB, "Poker", clock=clock)
    find = functools.partial(find_group, identity=ALICE)
    assert find(a_store, club.id.hex()) == club.id
    assert find(a_store, club.id.hex()[:8]) == club.id
    assert find(a_store, club.id.hex()[:8].upper()) == club.id
    assert find(a_store, "Garden club") == club.id
    assert find(a_store, one.id.hex()[:10]) == one.id
    # An encrypted group's name is sealed: only who holds its keys finds it by name.
    assert find_group(a_store, "Poker", identity=BOB) == secret.id
    with pytest.raises(NotFoundError):
        find(a_store, "Poker")
    with pytest.raises(NotFoundError):
        find_group(a_store, "Garden club")  # no identity: no key
    with pytest.raises(NotFoundError) as info:
        find(a_store, "Chess")
    assert info.value.code is ErrorCode.AMBIGUOUS
    assert one.id.hex()[:12] in info.value.message and two.id.hex()[:12] in info.value.message
    with pytest.raises(NotFoundError) as info:
        find(a_store, "Bridge")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(NotFoundError) as info:
        find(a_store, club.id.hex()[:7])  # too short for a prefix, and no name
    assert info.value.code is ErrorCode.NOT_FOUND


def test_find_member_and_item(a_store: SqliteStore, clock: Clock) -> None:
    club = Group.create(a_store, ALICE, "Garden club", founder_name="alice", clock=clock)
    club.add(BOB.public_key, name="bob")
    club.add(CAROL.public_key, name="bob")  # two members may share a display name
    bob_text = MemberId(BOB.public_key).text()
    assert club.find_member(bob_text) == BOB.public_key
    assert club.find_member(bob_text.upper()) == BOB.public_key
    assert club.find_member(bob_text[:12]) == BOB.public_key
    assert club.find_member(BOB.public_key.hex()[:8]) == BOB.public_key
    assert club.find_member("alice") == ALICE.public_key
    # A full id names anyone, member or not.
    dave_text = MemberId(DAVE.public_key).text()
    assert find_member(club.state, dave_text) == DAVE.public_key
    with pytest.raises(NotFoundError) as info:
        club.find_member("bob")
    assert info.value.code is ErrorCode.AMBIGUOUS
    with pytest.raises(NotFoundError) as info:
        club.find_member("erin")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(NotFoundError) as info:
        club.find_member(bob_text[:7])  # a prefix too short to name anyone: says so
    assert "8 characters" in info.value.message
    with pytest.raises(NotFoundError):
        club.find_member(dave_text[:-1] + ("a" if dave_text[-1] != "a" else "b"))

    p = club.post("hello")
    q = club.post("again")
    assert club.find_item(p.id.hex()) == p.id
    assert club.find_item(p.id.hex()[:8]) == p.id
    assert find_item([p.id, q.id], q.id.hex()[:9]) == q.id
    with pytest.raises(NotFoundError) as info:
        club.find_item(p.id.hex()[:6])
    assert info.value.code is ErrorCode.NOT_FOUND
    twins = [bytes.fromhex("abcdef01" + "00" * 28), bytes.fromhex("abcdef01" + "11" * 28)]
    with pytest.raises(NotFoundError) as info:
        find_item(twins, "abcdef01")
    assert info.value.code is ErrorCode.AMBIGUOUS
