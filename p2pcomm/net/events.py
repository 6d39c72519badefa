"""What a running node tells its subscribers (:meth:`p2pcomm.net.node.Node.subscribe`).

Two levels:

* **application events** say what a person would notice: an item was added, changed,
  hidden or deleted; a member joined, left, was removed or changed role; a peer came,
  went or misbehaved; mDNS found a peer or its advert went; a group finished syncing
  with a peer. Void entries (whose author could not write them) never surface as items.
* **log events** (:class:`EntriesAdded`, :class:`MembershipChanged`) report every
  stored entry and every change of the role table, for tools that work on the log.

All are frozen, slotted, keyword-only dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from ..core.content import Item, Post, Reply, decode_content
from ..core.log import Entry
from ..core.membership import Kind, Role
from ..errors import DecodeError, ValidationError

__all__ = [
    "AppEvent",
    "EntriesAdded",
    "GroupSynced",
    "ItemAdded",
    "ItemDeleted",
    "ItemHidden",
    "ItemUpdated",
    "ItemsAdded",
    "MemberJoined",
    "MemberLeft",
    "MemberRoleChanged",
    "MembershipChanged",
    "NodeEvent",
    "PeerDiscovered",
    "PeerDown",
    "PeerGone",
    "PeerMisbehaved",
    "PeerUnreachable",
    "PeerUp",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class EntriesAdded:
    """Entries were stored: appended here (``origin is None``) or received from a peer.

    A log-level event: it includes entries membership voids and entries held without
    their body. Applications want :class:`ItemAdded` and the member events."""

    group: bytes
    entries: tuple[Entry, ...]
    #: Member id of the peer they came from; None for local appends.
    origin: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUp:
    peer_id: bytes
    #: ``(host, port)`` of the connection's remote end.
    address: tuple[str, int]
    #: True when this node dialled.
    outbound: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDown:
    peer_id: bytes
    #: Why the connection ended: ``"closed"``, or an ``ErrorCode`` value and message.
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerMisbehaved:
    """A peer broke the protocol or sent invalid entries (forged, tampered, flooding);
    the node closed the connection and refuses the peer for a while."""

    peer_id: bytes
    #: ``(host, port)`` of the connection's remote end.
    address: tuple[str, int]
    #: The ``ErrorCode`` value and message.
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUnreachable:
    """A kept address did not answer (said once, until it answers again)."""

    address: tuple[str, int]
    reason: str
    #: Seconds until the next attempt (it backs off up to 30 s).
    retry_in: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDiscovered:
    """mDNS found a node whose advert names groups this node holds; the node dials it
    (``PeerUp`` follows when it answers)."""

    #: ``(host, port)`` it advertises.
    address: tuple[str, int]
    #: The groups its advert names (those of this node that it holds too).
    groups: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerGone:
    """The last advert naming ``address`` was withdrawn, expired or no longer names a
    group of this node. A connection to it stays up; it is not dialled again."""

    address: tuple[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipChanged:
    """Who is in ``group`` with which role changed (spec/04-membership.md)."""

    group: bytes
    #: Member id -> role, after the change.
    members: Mapping[bytes, Role]
    #: Member ids that joined, and that left (removed, banned, expelled or gone).
    added: frozenset[bytes]
    removed: frozenset[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSynced:
    """Reconciliation of ``group`` with ``peer_id`` finished; live from now on."""

    group: bytes
    peer_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAdded:
    """A post or reply became visible (or visible-but-hidden, see ``item.hidden``)."""

    group: bytes
    item: Item
    #: Member id of the peer it came from; None when written here.
    origin: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemsAdded:
    """Several posts and replies became visible at once (a catch-up): one event for the
    batch rather than one per item, so that following a large sync stays cheap. Their
    bodies are decoded only when :attr:`items` is read."""

    group: bytes
    #: The entries of the new items (effective posts and replies, bodies held).
    entries: tuple[Entry, ...]
    #: Member id of the peer they came from.
    origin: bytes | None
    #: Opens an encrypted group's bodies (spec/12-encryption.md); None: plaintext.
    opener: Callable[[Entry], bytes | None] | None = field(default=None, compare=False, repr=False)

    @property
    def items(self) -> tuple[Item, ...]:
        """The items, as :class:`ItemAdded` would carry them (no reactions or hidden
        flag yet: a later event says if that changes)."""
        return tuple(i for e in self.entries if (i := item_from_entry(e, self.opener)) is not None)


def item_from_entry(
    entry: Entry, opener: Callable[[Entry], bytes | None] | None = None
) -> Item | None:
    """The item a post or reply entry shows, read from the entry alone (its body opened
    with ``opener`` in an encrypted group)."""
    h = entry.header
    if entry.body is None or h.kind not in (Kind.POST, Kind.REPLY):
        return None
    data = entry.body if opener is None else opener(entry)
    if data is None:
        # Encrypted, and this node holds no key for it (yet), or a relay's: the item
        # exists; what it says is sealed.
        return Item(
            id=entry.id,
            author=h.author,
            kind=Kind(h.kind),
            timestamp=h.timestamp,
            text=None,
            parent=None,
            hidden=False,
            reactions=(),
            sealed=True,
        )
    try:
        body = decode_content(h.kind, data)
    except (DecodeError, ValidationError):
        return None
    if not isinstance(body, Post | Reply):
        return None
    return Item(
        id=entry.id,
        author=h.author,
        kind=Kind(h.kind),
        timestamp=h.timestamp,
        text=body.text,
        parent=body.parent if isinstance(body, Reply) else None,
        hidden=False,
        reactions=(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemUpdated:
    """An item changed: its reactions, or its text arrived (a body fetched late)."""

    group: bytes
    item: Item


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemHidden:
    """A moderator hid an item (``hidden``) or showed it again (not ``hidden``)."""

    group: bytes
    item: Item
    hidden: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemDeleted:
    """An item is gone: deleted by a moderator, retracted by its author, or voided
    (its author turned out not to be allowed to write it)."""

    group: bytes
    item_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined:
    group: bytes
    member: bytes
    role: Role
    #: Display name from the member's add or join ("" if none).
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft:
    group: bytes
    member: bytes
    #: ``"left"`` (on their own), ``"removed"``, ``"banned"`` or ``"expelled"`` (their
    #: log forked).
    how: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRoleChanged:
    group: bytes
    member: bytes
    old: Role
    new: Role


AppEvent: TypeAlias = (
    ItemAdded
    | ItemsAdded
    | ItemUpdated
    | ItemHidden
    | ItemDeleted
    | MemberJoined
    | MemberLeft
    | MemberRoleChanged
    | PeerUp
    | PeerDown
    | PeerMisbehaved
    | PeerUnreachable
    | PeerDiscovered
    | PeerGone
    | GroupSynced
)

NodeEvent: TypeAlias = AppEvent | EntriesAdded | MembershipChanged
