"""Encrypted groups through the application handle (``p2pcomm.community.Group``) on real
SQLite files (spec/12-encryption.md).

Proved here: a group is encrypted by default and its members read and write plaintext
as before; a member who joins reads the history once a member welcomes it; a removed
member cannot read what is written after its removal; the keys survive closing and
reopening the store, and a second handle of the same member reads what the first one
wrote; the store's files alone (a stolen laptop's) contain no post's text and no key;
content written as a rule-breaker would (no rekey after a leave) is void everywhere;
``encrypted=False`` keeps plaintext bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.community import Group
from p2pcomm.core.encoding import encode
from p2pcomm.core.intent import Intent
from p2pcomm.core.membership import FIRST_APP_KIND, Kind, Reason, Role
from p2pcomm.core.seal import decode_envelope
from p2pcomm.errors import ErrorCode, NotFoundError, ValidationError
from p2pcomm.store import SqliteStore
from p2pcomm.testing.history import named_keypair
from tests.test_community import Clock, copy

ALICE = named_keypair("alice")
BOB = named_keypair("bob")
CAROL = named_keypair("carol")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def stores(tmp_path: Path, *names: str) -> Iterator[SqliteStore]:
    for n in names:
        yield SqliteStore(tmp_path / f"{n}.db")


def texts(g: Group) -> list[str | None]:
    return [i.text for i in g.items()]


def test_members_read_and_a_removed_member_does_not(tmp_path: Path, clock: Clock) -> None:
    a_store, b_store = stores(tmp_path, "alice", "bob")
    club = Group.create(a_store, ALICE, "Garden club", founder_name="alice", clock=clock)
    assert club.encrypted
    first = club.post("Seed swap on Saturday")
    body = club.store.get_entry(club.id, first.id).body  # type: ignore[union-attr]
    assert body is not None and b"Seed swap" not in body
    decode_envelope(body)  # the stored body is an envelope
    assert texts(club) == ["Seed swap on Saturday"]

    code = club.invite().code
    copy(club, b_store)
    bob = Group(b_store, BOB, club.id, clock=clock)
    bob.join(code, name="bob")
    assert texts(bob) == [None]  # a member now, but nobody handed bob the key yet
    copy(bob, a_store)
    welcome = club.welcome()
    assert welcome is not None and welcome.header.kind == Kind.KEYS
    assert club.welcome() is None  # bob holds it now: nothing more to do
    copy(club, b_store)
    assert texts(bob) == ["Seed swap on Saturday"]
    bob.post("Count me in")
    copy(bob, a_store)
    assert texts(club) == ["Seed swap on Saturday", "Count me in"]

    removal = club.remove(BOB.public_key)
    assert removal.header.kind == Kind.REMOVE
    club.post("Bob is not told about this")
    copy(club, b_store)
    assert texts(club)[-1] == "Bob is not told about this"
    assert texts(bob) == ["Seed swap on Saturday", "Count me in", None]
    a_store.close()
    b_store.close()


def test_keys_survive_reopening_and_a_second_handle(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "alice.db"
    with SqliteStore(path) as store:
        club = Group.create(store, ALICE, "Garden club", clock=clock)
        club.post("one")
        other = Group(store, ALICE, club.id, clock=clock)
        other.post("two")
        assert texts(club) == ["one", "two"]
        gid = club.id
    with SqliteStore(path) as store:
        again = Group(store, ALICE, gid, clock=clock)
        assert texts(again) == ["one", "two"]
        again.post("three")
        assert texts(again) == ["one", "two", "three"]


def test_a_stolen_store_holds_no_text_and_no_key(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "alice.db"
    words = [f"private words number {i}" for i in range(20)]
    with SqliteStore(path) as store:
        club = Group.create(
            store, ALICE, "Garden club", description="seeds and soil", rules="be kind", clock=clock
        )
        for w in words:
            club.post(w)
        club.add(BOB.public_key)
        club.set_metadata(name="Allotment society")
        secrets = dict(club.keys.secrets)
        receive = dict(club.keys.receive)
        assert texts(club) == words
        meta = club.metadata
        assert (meta.name, meta.description, meta.rules) == (
            "Allotment society",
            "seeds and soil",
            "be kind",
        )
        # A reader without the keys sees that the group exists, not what it is called.
        assert Group(store, BOB, club.id, clock=clock).name == ""
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert raw and not any(w.encode() in raw for w in words)
    for private in (b"Garden club", b"Allotment society", b"seeds and soil", b"be kind"):
        assert private not in raw
    assert not any(s in raw for s in secrets.values())
    assert not any(k in raw for k in receive.values())


def test_content_after_a_leave_without_rekey_is_void(tmp_path: Path, clock: Clock) -> None:
    (a_store, b_store) = stores(tmp_path, "alice", "bob")
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    club.add(BOB.public_key)
    copy(club, b_store)
    bob = Group(b_store, BOB, club.id, clock=clock)
    assert bob.publish_keys() is not None
    copy(bob, a_store)
    assert club.welcome() is not None
    copy(club, b_store)
    bob.leave()
    copy(bob, a_store)
    # The rule W3: alice's next post is preceded by a rekey without bob.
    before = a_store.count(club.id)
    club.post("after bob left")
    assert a_store.count(club.id) == before + 2
    assert texts(club)[-1] == "after bob left"
    copy(club, b_store)
    assert texts(bob)[-1:] in ([None], [])
    a_store.close()
    b_store.close()


def test_plaintext_groups_stay_plaintext(tmp_path: Path, clock: Clock) -> None:
    with SqliteStore(tmp_path / "a.db") as store:
        club = Group.create(store, ALICE, "Open club", clock=clock, encrypted=False)
        assert not club.encrypted
        e = club.post("everyone may read this")
        body = store.get_entry(club.id, e.id).body  # type: ignore[union-attr]
        assert body is not None and b"everyone may read this" in body
        assert club.state.verdicts[e.id].reason is Reason.OK
        assert [m.role for m in club.members()] == [Role.ADMIN]


def test_a_member_rotates_its_receive_key_and_the_epoch(tmp_path: Path, clock: Clock) -> None:
    (a_store, b_store) = stores(tmp_path, "alice", "bob")
    club = Group.create(a_store, ALICE, "Garden club", clock=clock)
    club.add(BOB.public_key)
    copy(club, b_store)
    bob = Group(b_store, BOB, club.id, clock=clock)
    bob.publish_keys()
    copy(bob, a_store)
    club.welcome()
    copy(club, b_store)
    old_keys = set(bob.keys.receive)
    rotation = bob.rotate_keys()  # one entry: a new receive key and a new epoch
    assert rotation.header.kind == Kind.KEYS
    assert set(bob.keys.receive) - old_keys
    copy(bob, a_store)
    club.post("after bob's rotation")
    copy(club, b_store)
    assert texts(bob)[-1] == "after bob's rotation"
    with SqliteStore(tmp_path / "plain.db") as store:
        plain = Group.create(store, ALICE, "Open", clock=clock, encrypted=False)
        with pytest.raises(NotFoundError):
            plain.rotate_keys()
    a_store.close()
    b_store.close()


def test_a_since_join_group_shows_a_newcomer_only_what_follows(
    tmp_path: Path, clock: Clock
) -> None:
    a_store, b_store, c_store = stores(tmp_path, "alice", "bob", "carol")
    club = Group.create(a_store, ALICE, "Garden club", clock=clock, history="since-join")
    club.add(BOB.public_key)
    copy(club, b_store)
    bob = Group(b_store, BOB, club.id, clock=clock)
    bob.publish_keys()
    copy(bob, a_store)
    # A newcomer is welcomed by a rekey, not by a forward of what came before (HM2);
    # then the group's fields are sealed again for it (HM4).
    before = a_store.count(club.id)
    assert club.welcome() is not None
    welcome, reseal = [e for _, e in a_store.iter_entries(club.id)][before:]
    assert welcome.header.kind == Kind.KEYS and reseal.header.kind == Kind.SET_METADATA
    machine = club._machine.membership
    block = machine._core.epochs.block(machine._core.by_id[welcome.id])
    assert block is not None and block.is_rekey and not block.pointers
    club.post("for bob and alice")
    copy(club, b_store)
    assert texts(bob) == ["for bob and alice"]

    code = club.invite().code
    copy(club, c_store)
    carol = Group(c_store, CAROL, club.id, clock=clock)
    carol.join(code, name="carol")
    copy(carol, a_store)
    club.post("welcome, carol")  # the writer rekeys first: carol is a newcomer
    copy(club, c_store)
    copy(club, b_store)
    assert texts(carol) == [None, "welcome, carol"]  # not what came before she joined
    assert texts(bob) == ["for bob and alice", "welcome, carol"]
    # The group's name was sealed before she joined: an admin seals it again (HM4),
    # and the forwarding round hands her no past epoch (HM3).
    assert carol.name == ""
    reseal = club.welcome()
    assert reseal is not None and reseal.header.kind == Kind.SET_METADATA
    assert club.welcome() is None
    copy(club, c_store)
    assert texts(carol) == [None, "welcome, carol"]
    assert club.name == carol.name == "Garden club"
    with pytest.raises(ValidationError):
        Group.create(a_store, ALICE, "x", history="forever")
    for s in (a_store, b_store, c_store):
        s.close()


def test_an_application_body_is_one_msgpack_value_in_an_encrypted_group(
    tmp_path: Path, clock: Clock
) -> None:
    """12.10 C3 and 12.3: the plaintext says where it ends, so padding needs no
    terminator; opaque bytes are written as a bin, and anything else is refused before
    a byte is written (no rekey or forward for it either)."""
    (a_store,) = stores(tmp_path, "alice")
    club = Group.create(a_store, ALICE, "Garden club", founder_name="alice", clock=clock)
    before = a_store.count(club.id)
    for raw in [b"", b"opaque bytes", b"\xc1", encode(b"x") + b"\x00"]:
        with pytest.raises(ValidationError) as info:
            club.write(Intent(kind=FIRST_APP_KIND, body=raw))
        assert info.value.code is ErrorCode.MALFORMED
    assert a_store.count(club.id) == before
    entry = club.write(Intent(kind=FIRST_APP_KIND, body=encode(b"opaque bytes")))
    body = a_store.get_entry(club.id, entry.id).body  # type: ignore[union-attr]
    assert body is not None and b"opaque" not in body
    # 14 bytes pad to Padmé(14) = 14: no byte of padding, 44 of envelope
    assert len(body) == 14 + 44
    plain = Group.create(a_store, BOB, "Open club", founder_name="bob", encrypted=False)
    assert plain.write(Intent(kind=FIRST_APP_KIND, body=b"opaque bytes")).body == b"opaque bytes"
    a_store.close()
