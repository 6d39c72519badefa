"""Posts, replies, reactions and moderation, and the visible-content view
(spec/04-membership.md section 8).

Theory of operation
-------------------
Content entries change no membership; :mod:`p2pcomm.core.membership` only says, for
each, whether its author could write it at that entry (``GroupState.verdicts``). This
module gives their bodies a meaning and computes what a UI shows, as a pure function of
the state and the entries:

* an *item* is an effective POST or REPLY whose body decodes; a reply is shown only
  when its parent is a known, effective post or reply (otherwise it waits: the parent
  may arrive later);
* an effective DELETE (moderator) or RETRACT (the target's own author) *removes* its
  target when the target is a post, reply, reaction or application entry held by the
  replica (at least its header): the item is omitted, and the target's body must be
  dropped by every replica that honours moderation (``ContentView.drop_bodies``); the
  header stays so the log still verifies. A delete of an entry not held yet removes
  nothing until it arrives, so that the result is a function of the set of entries.
  Operations (membership kinds) and moderation entries cannot be removed;
* HIDE and UNHIDE (moderator) flag an item; between several, the last by
  ``(timestamp, entry id)`` wins. Hidden items stay in the view, flagged, so a client
  can show them to moderators;
* a REACT sets one emoji of its author on an item on or off; per (author, item, emoji)
  the entry with the highest sequence number wins;
* items are ordered by ``(timestamp, entry id)``: deterministic on every replica.

What the sync layer needs is :func:`should_forward`: an entry is forwarded and shown
only if its author was authorized at that entry. Moderation needs no special case
there: a delete is an authorized entry like any other.

:class:`ContentMachine` is the incremental form: it feeds a
:class:`~p2pcomm.core.membership.MembershipMachine` and keeps the raw content entries;
``view()`` is rebuilt on demand (decoded bodies are cached), and always equals
``content_view(resolve(entries), entries)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar, Final, NamedTuple, TypeAlias

from ..errors import DecodeError, ErrorCode, ValidationError
from .encryptor import Encryptor, MemberKeys
from .epochs import encrypted_kind
from .log import Entry
from .membership import (
    FIRST_APP_KIND,
    MAX_REASON,
    MEMBERSHIP_KINDS,
    GroupMetadata,
    GroupState,
    Kind,
    MembershipMachine,
    Reason,
    resolve,
)
from .membership.layout import BOOL, Body, Id, Str, layout

#: ``opener(entry_id, author, seq, kind, body)``: the plaintext body, None if it cannot
#: be opened (yet).
Opener: TypeAlias = "Callable[[bytes, bytes, int, int, bytes], bytes | None]"

__all__ = [
    "CONTENT_KINDS",
    "MAX_EMOJI",
    "MAX_TEXT",
    "ContentBody",
    "ContentIndex",
    "ContentMachine",
    "ContentView",
    "Delete",
    "Hide",
    "Item",
    "Post",
    "React",
    "Reply",
    "Retract",
    "Unhide",
    "build_view",
    "content_view",
    "decode_content",
    "removable",
    "should_forward",
    "visible_content",
]

#: Longest post or reply text, in UTF-8 bytes.
MAX_TEXT: Final = 16 * 1024
#: Longest reaction, in UTF-8 bytes.
MAX_EMOJI: Final = 32

#: Kinds this module interprets.
CONTENT_KINDS: Final = frozenset(
    {Kind.POST, Kind.REPLY, Kind.REACT, Kind.RETRACT, Kind.HIDE, Kind.UNHIDE, Kind.DELETE}
)


_Text: TypeAlias = Annotated[str, Str(MAX_TEXT)]
_Reason: TypeAlias = Annotated[str, Str(MAX_REASON)]


@layout("post")
@dataclass(frozen=True, slots=True, kw_only=True)
class Post(Body):
    """``[1, text: str]``."""

    KIND: ClassVar[Kind] = Kind.POST
    text: _Text


@layout("reply")
@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Body):
    """``[1, parent: bin(32), text: str]``: a reply to a post or reply."""

    KIND: ClassVar[Kind] = Kind.REPLY
    parent: Id
    text: _Text


@layout("react")
@dataclass(frozen=True, slots=True, kw_only=True)
class React(Body):
    """``[1, target: bin(32), emoji: str(1 ..= 32), on: bool]``: set one reaction on or
    off."""

    KIND: ClassVar[Kind] = Kind.REACT
    target: Id
    emoji: Annotated[str, Str(MAX_EMOJI, empty="a reaction needs an emoji")]
    on: Annotated[bool, BOOL] = True


@layout("retract")
@dataclass(frozen=True, slots=True, kw_only=True)
class Retract(Body):
    """``[1, target: bin(32)]``: the author withdraws their own post, reply or reaction."""

    KIND: ClassVar[Kind] = Kind.RETRACT
    target: Id


@layout("hide")
@dataclass(frozen=True, slots=True, kw_only=True)
class Hide(Body):
    """``[1, target: bin(32), reason: str]``: a moderator hides an item (reversible)."""

    KIND: ClassVar[Kind] = Kind.HIDE
    target: Id
    reason: _Reason = ""


@layout("unhide")
@dataclass(frozen=True, slots=True, kw_only=True)
class Unhide(Body):
    """``[1, target: bin(32)]``: a moderator shows a hidden item again."""

    KIND: ClassVar[Kind] = Kind.UNHIDE
    target: Id


@layout("delete")
@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Body):
    """``[1, target: bin(32), reason: str]``: a moderator deletes content for good; every
    replica that honours it drops the target's body."""

    KIND: ClassVar[Kind] = Kind.DELETE
    target: Id
    reason: _Reason = ""


ContentBody: TypeAlias = Post | Reply | React | Retract | Hide | Unhide | Delete

_TYPES: Final[Mapping[int, type[ContentBody]]] = {
    t.KIND: t for t in (Post, Reply, React, Retract, Hide, Unhide, Delete)
}


def decode_content(kind: int, data: bytes) -> ContentBody:
    """Decode the body of a content entry of ``kind``. Raises :class:`DecodeError`, or
    :class:`ValidationError` (``BAD_OPERATION``) when ``kind`` is not a content kind."""
    cls = _TYPES.get(kind)
    if cls is None:
        raise ValidationError(
            ErrorCode.BAD_OPERATION, f"kind {kind} is not a content kind", found=kind
        )
    return cls.decode(data)


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """A post or reply as a UI shows it."""

    id: bytes
    author: bytes
    #: ``Kind.POST`` or ``Kind.REPLY``.
    kind: Kind
    #: The author's claimed time (milliseconds).
    timestamp: int
    #: None when the body is not held (not fetched yet).
    text: str | None
    #: The replied-to item (replies only).
    parent: bytes | None
    #: Hidden by a moderator (show it to moderators only, or collapsed).
    hidden: bool
    #: ``(emoji, count)`` pairs, sorted by emoji.
    reactions: tuple[tuple[str, int], ...]
    #: The body is here but encrypted under a key this member does not hold (yet):
    #: ``text`` is None (spec/12-encryption.md).
    sealed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentView:
    """What a UI shows, and which bodies to drop."""

    #: Effective posts and replies by ``(timestamp, id)``; removed ones are omitted.
    items: tuple[Item, ...]
    #: Entries removed by an effective delete or retract (omitted from ``items``).
    removed: frozenset[bytes]
    #: Entries whose body every honouring replica drops (and never fetches again).
    drop_bodies: frozenset[bytes]

    def visible(self) -> tuple[Item, ...]:
        """Items that are not hidden."""
        return tuple(i for i in self.items if not i.hidden)

    def item(self, entry_id: bytes) -> Item | None:
        for i in self.items:
            if i.id == entry_id:
                return i
        return None

    def replies_to(self, entry_id: bytes) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.parent == entry_id)


class _Raw(NamedTuple):
    kind: int
    author: bytes
    seq: int
    timestamp: int
    body: bytes | None


class _Malformed:
    """Marker for a body that does not decode."""


_MALFORMED: Final = _Malformed()


class ContentIndex:
    """The content entries of a group (whatever their verdict), with lazily decoded
    bodies: what :func:`build_view` reads."""

    __slots__ = ("_decoded", "opener", "raw")

    def __init__(self, entries: Iterable[Entry] = (), *, opener: Opener | None = None) -> None:
        self.raw: dict[bytes, _Raw] = {}
        self._decoded: dict[bytes, ContentBody | _Malformed | None] = {}
        #: Turns a stored body into the plaintext body (spec/12-encryption.md), or None
        #: while it cannot be opened; None: bodies are plaintext.
        self.opener = opener
        for e in entries:
            self.add(e)

    def add(self, entry: Entry) -> bool:
        """Index a content entry (operations are ignored); True if it is new or brings
        its missing body."""
        h = entry.header
        if h.kind in MEMBERSHIP_KINDS:
            return False
        eid = entry.id
        old = self.raw.get(eid)
        if old is not None and (old.body is not None or entry.body is None):
            return False
        self.raw[eid] = _Raw(h.kind, h.author, h.seq, h.timestamp, entry.body)
        self._decoded.pop(eid, None)
        return True

    def body(self, entry_id: bytes) -> ContentBody | _Malformed | None:
        """The decoded body; None if not held; ``_MALFORMED`` if it does not decode."""
        if entry_id in self._decoded:
            return self._decoded[entry_id]
        raw = self.raw[entry_id]
        got: ContentBody | _Malformed | None
        if raw.body is None or raw.kind not in _TYPES:
            got = None
        else:
            data = raw.body
            if self.opener is not None:
                opened = self.opener(entry_id, raw.author, raw.seq, raw.kind, data)
                if opened is None:
                    return None  # not cached: the key may come later
                data = opened
            try:
                got = decode_content(raw.kind, data)
            except (DecodeError, ValidationError):
                got = _MALFORMED
        self._decoded[entry_id] = got
        return got

    def __len__(self) -> int:
        return len(self.raw)


_ITEM_KINDS: Final = (Kind.POST, Kind.REPLY)
_REMOVABLE: Final = frozenset({Kind.POST, Kind.REPLY, Kind.REACT})


def removable(kind: int) -> bool:
    """Whether a DELETE or RETRACT can remove an entry of ``kind`` (04 V1): posts,
    replies, reactions and application content; never operations or moderation."""
    return kind in _REMOVABLE or kind >= FIRST_APP_KIND


def build_view(state: GroupState, index: ContentIndex) -> ContentView:
    """The visible content of ``state``'s group given its content entries."""
    verdicts = state.verdicts
    raw = index.raw
    ok_ids = [eid for eid in raw if (v := verdicts.get(eid)) is not None and v.reason is Reason.OK]

    removed: set[bytes] = set()
    hide_events: dict[bytes, tuple[int, bytes, bool]] = {}
    for eid in ok_ids:
        r = raw[eid]
        kind = r.kind
        if kind == Kind.DELETE or kind == Kind.RETRACT or kind == Kind.HIDE or kind == Kind.UNHIDE:
            body = index.body(eid)
            if not isinstance(body, Delete | Retract | Hide | Unhide):
                continue
            target = body.target
            t = raw.get(target)
            if t is None and target in verdicts:
                continue  # an operation: never moderated
            if isinstance(body, Delete):
                # V2: only a target held (at least its header) is removed, so that what
                # is removed and dropped depends on the set, not on arrival order.
                if t is not None and removable(t.kind):
                    removed.add(target)
            elif isinstance(body, Retract):
                if t is not None and removable(t.kind) and t.author == r.author:
                    removed.add(target)
            else:
                event = (r.timestamp, eid, isinstance(body, Hide))
                last = hide_events.get(target)
                if last is None or last[:2] < event[:2]:
                    hide_events[target] = event

    # A post whose body is not held yet is shown without text; a reply without its body
    # has no known parent, so it waits.
    items: dict[bytes, tuple[_Raw, Post | Reply | None]] = {}
    for eid in ok_ids:
        r = raw[eid]
        if r.kind not in _ITEM_KINDS or eid in removed:
            continue
        body = index.body(eid)
        if isinstance(body, Post | Reply):
            items[eid] = (r, body)
        elif body is None and r.kind == Kind.POST:
            items[eid] = (r, None)

    def parent_ok(parent: bytes) -> bool:
        p = raw.get(parent)
        v = verdicts.get(parent)
        return p is not None and p.kind in _ITEM_KINDS and v is not None and v.reason is Reason.OK

    latest: dict[tuple[bytes, bytes, str], tuple[int, bool]] = {}
    for eid in ok_ids:
        r = raw[eid]
        if r.kind != Kind.REACT or eid in removed:
            continue
        body = index.body(eid)
        if not isinstance(body, React) or body.target not in items:
            continue
        k = (r.author, body.target, body.emoji)
        seen = latest.get(k)
        if seen is None or seen[0] < r.seq:
            latest[k] = (r.seq, body.on)
    counts: dict[bytes, dict[str, int]] = {}
    for (_author, target, emoji), (_seq, on) in latest.items():
        if on:
            per = counts.setdefault(target, {})
            per[emoji] = per.get(emoji, 0) + 1

    out: list[Item] = []
    for eid, (r, body) in items.items():
        parent = body.parent if isinstance(body, Reply) else None
        if parent is not None and not parent_ok(parent):
            continue
        hidden = hide_events.get(eid)
        out.append(
            Item(
                id=eid,
                author=r.author,
                kind=Kind(r.kind),
                timestamp=r.timestamp,
                text=None if body is None else body.text,
                parent=parent,
                hidden=hidden is not None and hidden[2],
                reactions=tuple(sorted(counts.get(eid, {}).items())),
                sealed=body is None and r.body is not None,
            )
        )
    out.sort(key=lambda i: (i.timestamp, i.id))
    return ContentView(items=tuple(out), removed=frozenset(removed), drop_bodies=frozenset(removed))


def content_view(state: GroupState, entries: Iterable[Entry]) -> ContentView:
    """The view of ``entries`` given their resolved ``state`` (pure)."""
    return build_view(state, ContentIndex(entries))


def visible_content(entries: Iterable[Entry]) -> tuple[GroupState, ContentView]:
    """Resolve a set of entries and build its view: the pure reference."""
    items = list(entries)
    state = resolve(items)
    return state, content_view(state, items)


def should_forward(state: GroupState, entry_id: bytes) -> bool:
    """Whether the sync layer may forward (and a UI may show) entry ``entry_id``: its
    author was authorized at that entry (spec/04-membership.md section 4.11). False for unknown entries."""
    return state.authorized(entry_id)


class ContentMachine:
    """Membership and content, applied one entry at a time (the incremental twin of
    :func:`visible_content`). With ``keys`` (a member's keys, spec/12-encryption.md), an
    encrypted group's bodies are opened for the view and :attr:`encryptor` writes."""

    def __init__(self, keys: MemberKeys | None = None) -> None:
        self.membership = MembershipMachine()
        self.keys = keys
        self.encryptor: Encryptor | None = None
        if keys is not None:
            self.encryptor = Encryptor(
                self.membership,
                keys.me,
                keys.receive,
                keys.secrets,
                random_bytes=keys.random_bytes,
                on_receive_key=keys.save,
            )
        self.index = ContentIndex(opener=self._open if keys is not None else None)
        self._can_open: tuple[tuple[int, int, int], bool] | None = None
        #: (the membership snapshot, secrets held, that snapshot with opened metadata)
        self._opened_state: tuple[GroupState, int, GroupState] | None = None
        self._view: ContentView | None = None

    def _open(self, eid: bytes, author: bytes, seq: int, kind: int, body: bytes) -> bytes | None:
        enc = self.encryptor
        if enc is None or not enc.encrypted or not encrypted_kind(kind):
            return body
        return enc.open(eid, author, seq, kind, body)

    def _learn(self) -> None:
        enc = self.encryptor
        if enc is not None and enc.encrypted and enc.learn():
            self._view = None
            assert self.keys is not None
            self.keys.save()

    def apply(self, entry: Entry) -> list[bytes]:
        """Apply one entry; returns the ids whose verdict is new or changed."""
        changed = self.membership.apply(entry)
        if self.index.add(entry) or changed:
            self._view = None
        if entry.header.kind in MEMBERSHIP_KINDS:
            self._learn()
        return changed

    def apply_many(self, entries: Iterable[Entry]) -> list[bytes]:
        items = list(entries)
        for e in items:
            self.index.add(e)
        self._view = None
        changed = self.membership.apply_many(items)
        self._learn()
        return changed

    @property
    def state(self) -> GroupState:
        """The membership state; in an encrypted group, with the group's name,
        description and rules opened with this member's keys (sealed in the log, 12.11a)."""
        state = self.membership.state
        enc = self.encryptor
        if enc is None or not enc.encrypted:
            return state
        memo = self._opened_state
        if memo is not None and memo[0] is state and memo[1] == len(enc.secrets):
            return memo[2]
        fields = enc.metadata()
        meta = self.membership._core.world.meta
        if fields is None and meta is not None and bool(getattr(meta.body, "sealed", None)):
            fields = ("", "", "")  # SM3: sealed and unknown here, never the clear fields
        if fields is not None:
            name, description, rules = fields
            state = replace(
                state,
                metadata=GroupMetadata(name=name, description=description, rules=rules),
            )
        self._opened_state = (self.membership.state, len(enc.secrets), state)
        return state

    def view(self) -> ContentView:
        """The current view (cached until the next apply)."""
        if self._view is None:
            self._view = build_view(self.membership.state, self.index)
        return self._view

    def should_forward(self, entry_id: bytes) -> bool:
        """:func:`should_forward` without building a snapshot."""
        return self.membership.authorized(entry_id)

    def can_open(self, entry_id: bytes) -> bool:
        """Whether this member holds the key of an encrypted entry's epoch (a lookup,
        not a decryption); True in a plaintext group."""
        enc = self.encryptor
        if enc is None or not enc.encrypted:
            return True
        core = self.membership._core
        K = core.K.get(entry_id)
        if K is None:
            return False
        # A catch-up's posts share a few cuts: remember the last answer.
        stamp = (K, len(core.ops), len(enc.secrets))
        if self._can_open is not None and self._can_open[0] == stamp:
            return self._can_open[1]
        enc.learn()
        answer = enc.keys.epoch_key(K) is not None
        self._can_open = (stamp, answer)
        return answer

    def keeps_body(self, entry: Entry) -> bool:
        """Whether ``entry`` goes out with its body even when void (04 F2): an
        operation of an encrypted group, whose key block every replica needs to compute
        the same frontiers (spec/12-encryption.md F1)."""
        if entry.header.kind not in MEMBERSHIP_KINDS:
            return False
        enc = self.encryptor
        if enc is not None:
            return enc.encrypted
        return self.membership._core.epochs.encrypted
