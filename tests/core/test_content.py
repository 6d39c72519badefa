"""Content bodies and the visible-content view (spec/04-membership.md section 8)."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core.content import (
    ContentBody,
    ContentIndex,
    ContentMachine,
    Delete,
    Hide,
    Post,
    React,
    Reply,
    Retract,
    Unhide,
    build_view,
    content_view,
    decode_content,
    should_forward,
    visible_content,
)
from p2pcomm.core.log import Entry
from p2pcomm.core.membership import FIRST_APP_KIND, Kind, Role, resolve
from p2pcomm.errors import DecodeError, ErrorCode, ValidationError
from p2pcomm.testing.history import History, Replica, keypair

ids = st.binary(min_size=32, max_size=32)
BODIES: st.SearchStrategy[ContentBody] = st.one_of(
    st.builds(Post, text=st.text(max_size=40)),
    st.builds(Reply, parent=ids, text=st.text(max_size=40)),
    st.builds(React, target=ids, emoji=st.text(min_size=1, max_size=4), on=st.booleans()),
    st.builds(Retract, target=ids),
    st.builds(Hide, target=ids, reason=st.text(max_size=10)),
    st.builds(Unhide, target=ids),
    st.builds(Delete, target=ids, reason=st.text(max_size=10)),
)


@given(BODIES)
def test_content_bodies_round_trip(body: ContentBody) -> None:
    data = body.encode()
    assert decode_content(body.KIND, data) == body
    assert decode_content(body.KIND, data).encode() == data


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        (Kind.POST, [2, "hi"], ErrorCode.UNKNOWN_VERSION),
        (Kind.POST, [1, b"hi"], ErrorCode.WRONG_TYPE),
        (Kind.POST, [1, "x" * (16 * 1024 + 1)], ErrorCode.TOO_LARGE),
        (Kind.REPLY, [1, b"p" * 31, "x"], ErrorCode.WRONG_LENGTH),
        (Kind.REACT, [1, b"t" * 32, "", True], ErrorCode.WRONG_LENGTH),
        (Kind.REACT, [1, b"t" * 32, "+1", 1], ErrorCode.WRONG_TYPE),
        (Kind.DELETE, [1, b"t" * 32], ErrorCode.WRONG_LENGTH),
    ],
)
def test_malformed_content_bodies(kind: int, value: object, code: ErrorCode) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_content(kind, msgpack.packb(value, use_bin_type=True))
    assert exc.value.code is code


def test_content_encoding_limits_and_kinds() -> None:
    with pytest.raises(ValidationError) as exc:
        Post(text="x" * (16 * 1024 + 1)).encode()
    assert exc.value.code is ErrorCode.BAD_OPERATION
    with pytest.raises(ValidationError):
        React(target=b"t" * 32, emoji="").encode()
    with pytest.raises(ValidationError):
        decode_content(Kind.ADD, Post(text="x").encode())


def community() -> tuple[History, Replica, Replica, Replica]:
    """Alice (admin), Bob (moderator), Carol (member), all synced."""
    history, alice = History.found(keypair(0), name="club")
    bob, carol = history.replica(keypair(1)), history.replica(keypair(2))
    alice.add(bob, Role.MODERATOR)
    alice.add(carol, Role.MEMBER)
    bob.sync(alice)
    carol.sync(alice)
    return history, alice, bob, carol


def test_items_are_ordered_and_carry_reactions_and_replies() -> None:
    history, alice, bob, carol = community()
    p1 = carol.post("first")
    alice.sync(carol)
    bob.sync(carol)
    r1 = alice.reply(p1, "welcome")
    bob.react(p1, "+1")
    bob.react(p1, "+1", on=False)
    bob.react(p1, "<3")
    carol.sync(alice, bob)
    carol.react(p1, "<3")
    _, view = visible_content(history.entries)
    assert [(i.text, i.kind) for i in view.items] == [("first", Kind.POST), ("welcome", Kind.REPLY)]
    assert view.item(p1.id) is not None and view.item(p1.id).reactions == (("<3", 2),)  # type: ignore[union-attr]
    assert view.replies_to(p1.id) == (view.item(r1.id),)
    assert view.item(b"?" * 32) is None


def test_hide_and_unhide_last_wins() -> None:
    history, _alice, bob, carol = community()
    p = carol.post("spam?")
    bob.sync(carol)
    bob.hide(p, "looks like spam")
    _, view = visible_content(history.entries)
    assert view.items[0].hidden and view.visible() == ()
    bob.unhide(p)
    _, view = visible_content(history.entries)
    assert not view.items[0].hidden and len(view.visible()) == 1


def test_delete_by_a_moderator_drops_the_body_and_keeps_replies() -> None:
    history, alice, bob, carol = community()
    p = carol.post("rude")
    alice.sync(carol)
    reply = alice.reply(p, "please be kind")
    bob.sync(alice)
    d = bob.delete(p)
    state, view = visible_content(history.entries)
    assert state.authorized(d.id)
    assert p.id in view.removed and p.id in view.drop_bodies
    assert [i.id for i in view.items] == [reply.id]  # the reply stays, its parent is gone
    # The body is dropped: the header-only entry gives the same view.
    dropped = [e.without_body() if e.id == p.id else e for e in history.entries]
    assert content_view(resolve(dropped), dropped) == view


def test_a_delete_of_an_entry_not_held_removes_it_once_it_arrives() -> None:
    """04 V2: what a delete removes depends on the set of entries, not on which
    arrived first: nothing while the target is not held, then the target."""
    history, _alice, bob, carol = community()
    future = carol.post("not synced yet")
    bob.delete(future.id)  # Bob knows the id from elsewhere: outside his causal past
    without = [e for e in history.entries if e.id != future.id]
    _, view = visible_content(without)
    assert future.id not in view.drop_bodies and not view.removed
    _, full = visible_content(history.entries)
    assert future.id in full.removed and future.id in full.drop_bodies
    for order in (history.entries, history.entries[::-1]):
        machine = ContentMachine()
        for e in order:
            machine.apply(e)
        assert machine.view() == full


def test_a_delete_outside_the_past_never_touches_what_cannot_be_removed() -> None:
    """04 V2: a delete naming an operation or a moderation entry it has not seen
    removes nothing, whichever arrives first."""
    history, alice, bob, carol = community()
    p = carol.post("a post")
    alice.sync(carol)
    hide = alice.hide(p)
    op = alice.add(keypair(3), Role.MEMBER)
    bob.delete(hide.id)
    bob.delete(op.id)
    state, view = visible_content(history.entries)
    assert not view.removed and not view.drop_bodies
    assert state.is_member(keypair(3).public_key)
    for order in (history.entries, history.entries[::-1]):
        machine = ContentMachine()
        for e in order:
            machine.apply(e)
        assert machine.view() == view


def test_application_content_can_be_deleted_and_retracted() -> None:
    """04 V1, 4.4 and K2: application kinds are content like posts."""
    history, alice, bob, carol = community()
    mine = carol.append(FIRST_APP_KIND, b"carol's data")
    theirs = alice.append(FIRST_APP_KIND + 1, b"alice's data")
    carol.sync(alice)
    bob.sync(carol)
    bob.delete(mine)
    carol.retract(theirs)  # not her own: refused by V1
    own = alice.append(FIRST_APP_KIND, b"alice's second")
    alice.retract(own)
    state, view = visible_content(history.entries)
    assert all(state.authorized(e.id) for e in history.entries)
    assert view.removed == {mine.id, own.id} == view.drop_bodies


def test_operations_cannot_be_deleted_or_hidden() -> None:
    history, _alice, bob, _carol = community()
    op = history.entries[1]  # Alice adds Bob
    bob.delete(op)
    bob.hide(op)
    state, view = visible_content(history.entries)
    assert op.id not in view.removed and state.is_member(keypair(1).public_key)


def test_members_cannot_delete_others_posts_but_can_retract_their_own() -> None:
    history, alice, _bob, carol = community()
    pa = alice.post("alice's")
    carol.sync(alice)
    pc = carol.post("carol's")
    d = carol.delete(pa)
    r_other = carol.retract(pa)
    r_own = carol.retract(pc)
    state, view = visible_content(history.entries)
    assert state.verdicts[d.id].reason.value == "insufficient-role"
    assert state.authorized(r_other.id) and state.authorized(r_own.id)  # authorized, but ...
    assert [i.id for i in view.items] == [pa.id]  # ... a retract only works on one's own
    assert view.removed == {pc.id}


def test_orphan_reply_waits_for_its_parent() -> None:
    history, alice, _bob, carol = community()
    p = carol.post("parent")
    alice.sync(carol)
    r = alice.reply(p, "child")
    partial = [e for e in history.entries if e.id != p.id]
    index = ContentIndex(partial)
    assert build_view(resolve(history.entries), index).items == ()
    index.add(p)
    assert [i.id for i in build_view(resolve(history.entries), index).items] == [p.id, r.id]


def test_content_of_non_members_and_removed_members_is_not_shown() -> None:
    history, alice, _bob, carol = community()
    stranger = history.replica(keypair(9))
    stranger.sync(alice)
    s = stranger.post("buy my stuff")
    alice.sync(carol)
    alice.remove(carol)
    late = carol.post("concurrent with my removal")
    state, view = visible_content(history.entries)
    assert not should_forward(state, s.id) and not should_forward(state, late.id)
    assert view.items == ()


def test_missing_body_shows_a_placeholder() -> None:
    history, _alice, _bob, carol = community()
    p = carol.post("text")
    entries = [e.without_body() if e.id == p.id else e for e in history.entries]
    _, view = visible_content(entries)
    assert view.items[0].id == p.id and view.items[0].text is None


def test_malformed_content_is_not_shown() -> None:
    history, _alice, _bob, carol = community()
    carol.append(Kind.POST, b"\x92\x01\xc0")
    _, view = visible_content(history.entries)
    assert view.items == ()


def shuffled(entries: list[Entry], seed: int) -> list[Entry]:
    out = list(entries) + entries[: len(entries) // 4]
    random.Random(seed).shuffle(out)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_content_machine_equals_the_pure_view_in_any_order(seed: int) -> None:
    history, alice, bob, carol = community()
    p = carol.post("one")
    bob.sync(carol)
    alice.sync(carol)
    bob.hide(p)
    alice.reply(p, "two")
    carol.react(p, ":)")
    alice.remove(carol)
    carol.post("three")
    state, view = visible_content(history.entries)
    m = ContentMachine()
    for e in shuffled(history.entries, seed):
        m.apply(e)
    assert m.state == state and m.view() == view
    assert all(m.should_forward(e.id) == should_forward(state, e.id) for e in history.entries)
    batched = ContentMachine()
    batched.apply_many(shuffled(history.entries, seed + 100))
    assert batched.view() == view
