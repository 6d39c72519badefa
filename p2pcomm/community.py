"""``Group``: what an application does with a group, on a store.

    with SqliteStore("alice.db") as store:
        club = Group.create(store, alice, "Garden club")
        code = club.invite(addresses=["192.168.1.20:7447"]).code      # hand it to Bob
        club.post("Seed swap on Saturday")
        for item in club.items():
            print(item.text)

A :class:`Group` turns intentions into correct entries: it computes cuts, links and
invitation secrets, and refuses with :class:`~p2pcomm.errors.RefusedError` (carrying
the membership reason), before anything is written, what the group's rules would void:
a non-member posting, a moderator removing an admin, a body over the limit
(:mod:`p2pcomm.core.intent` does the judging). Every write is durable on return.

This handle works on a store alone (no network). A running node gives out the same
operations, live and pushed to peers at once: :meth:`p2pcomm.net.node.Node.group`.

Names: :func:`find_group`, :meth:`Group.find_member` and :meth:`Group.find_item`
accept what a person types: a full id, a unique prefix of at least 8 hex digits (or of
a ``pc1...`` member id), or a unique name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .core.content import ContentMachine, ContentView, Item
from .core.encoding import value_length
from .core.encryptor import MAX_DUTIES, genesis_body
from .core.epochs import HISTORY_FULL, HISTORY_SINCE_JOIN, encrypted_kind
from .core.identity import ID_TEXT_PREFIX, KeyPair, MemberId
from .core.intent import Intent, Planner
from .core.invitation import INVITATION_SECRET_SIZE, InvitationCode
from .core.log import Entry, Header
from .core.membership import (
    MEMBERSHIP_KINDS,
    GenesisBody,
    GroupMetadata,
    GroupState,
    Kind,
    Member,
    Role,
)
from .errors import ErrorCode, IdentityError, NotFoundError, ValidationError
from .group import GroupLog, now_ms
from .keychain import Keychain
from .store.base import Store

__all__ = [
    "MIN_PREFIX",
    "Group",
    "GroupReads",
    "Invitation",
    "find_group",
    "find_member",
    "find_item",
    "group_names",
]

#: Shortest hex prefix accepted for a group or an item.
MIN_PREFIX = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """An invitation just made: the entry in the log and the code for the invitee."""

    entry: Entry
    code: InvitationCode

    @property
    def text(self) -> str:
        return self.code.text()


class GroupReads:
    """What :class:`Group` and :class:`~p2pcomm.net.live.LiveGroup` show of a group, from
    their ``state`` and ``view`` (which differ: the store, or the node's live state)."""

    id: bytes

    @property
    def state(self) -> GroupState:
        raise NotImplementedError

    @property
    def view(self) -> ContentView:
        raise NotImplementedError

    def _me(self) -> bytes:
        raise NotImplementedError

    @property
    def metadata(self) -> GroupMetadata:
        return self.state.metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    def members(self) -> list[Member]:
        """Current members, admins first, then by name and id."""
        return sorted(self.state.members.values(), key=lambda m: (-m.role, m.name, m.id))

    def role(self, member: bytes | None = None) -> Role | None:
        """``member``'s role (default: this handle's identity); None if not a member."""
        return self.state.role_of(self._me() if member is None else member)

    def items(self, *, include_hidden: bool = False) -> list[Item]:
        """Posts and replies in display order; hidden ones only when asked."""
        view = self.view
        return list(view.items if include_hidden else view.visible())

    def item(self, item_id: bytes) -> Item | None:
        return self.view.item(item_id)

    def relays(self) -> list[bytes]:
        """The node keys granted to carry this group now (spec/12, RELAY)."""
        return sorted(self.state.relays)

    def find_member(self, text: str) -> bytes:
        return find_member(self.state, text)

    def find_item(self, text: str) -> bytes:
        return find_item((i.id for i in self.view.items), text)


class Group(GroupReads):
    """One group on a store, acting as ``identity``. See the module docstring.

    Not thread-safe; one handle per group per thread. Use :meth:`refresh` (called by
    every read and write) to see entries other handles or processes stored.
    """

    def __init__(
        self,
        store: Store,
        identity: KeyPair,
        group: bytes,
        *,
        clock: Callable[[], int] = now_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
        keys: Keychain | None = None,
    ) -> None:
        if store.count(group) == 0:
            raise NotFoundError(ErrorCode.NOT_FOUND, f"the store holds no group {group.hex()}")
        self.store = store
        self.identity = identity
        self.id = group
        self.log = GroupLog(store, group)
        self._clock = clock
        self._random = random_bytes
        self.keys = keys if keys is not None else Keychain(store, identity)
        self._machine = ContentMachine(self.keys)
        self._seen = 0

    # -- making and opening

    @classmethod
    def create(
        cls,
        store: Store,
        founder: KeyPair,
        name: str,
        *,
        description: str = "",
        rules: str = "",
        founder_name: str = "",
        clock: Callable[[], int] = now_ms,
        encrypted: bool = True,
        keys: Keychain | None = None,
        history: str = "full",
    ) -> Group:
        """Start a new group (its genesis entry names it) with ``founder`` as admin.

        ``encrypted`` (the default): posts, replies, reactions and moderation notes are
        readable by members only (spec/12-encryption.md); the founder's keys are kept
        in the store's sealed keyring. Without it, bodies are plaintext for anyone who
        holds the log. ``history`` (encrypted groups): ``"full"``, a newcomer reads
        everything written before it joined; ``"since-join"``, only what is written
        from then on (12.11b)."""
        if history not in _HISTORY:
            raise ValidationError(
                ErrorCode.BAD_OPERATION,
                f"history is 'full' or 'since-join', found {history!r}",
            )
        if not encrypted:
            body = GenesisBody(
                name=name, description=description, rules=rules, founder_name=founder_name
            ).encode()
            log = GroupLog.create(store, founder, body=body, timestamp=clock())
            return cls(store, founder, log.group, clock=clock, keys=keys)
        chain = keys if keys is not None else Keychain(store, founder)
        body, secret = genesis_body(
            name,
            founder=founder.public_key,
            receive=chain.receive,
            random_bytes=chain.random_bytes,
            description=description,
            rules=rules,
            founder_name=founder_name,
            history=_HISTORY[history],
        )
        chain.save()  # the receive key before the entry that publishes it
        log = GroupLog.create(store, founder, body=body, timestamp=clock())
        chain.secrets[log.group] = secret
        chain.save()
        return cls(store, founder, log.group, clock=clock, keys=chain)

    # -- reading

    def refresh(self) -> None:
        """Read what the store gained since the last call (from any writer)."""
        fresh: list[Entry] = []
        for local, e in self.store.iter_entries(self.id, after=self._seen):
            fresh.append(e)
            self._seen = max(self._seen, local)  # local sequence numbers only grow
        if fresh:
            me = self.identity.public_key
            if any(e.header.author != me for e in fresh):
                self.log.forget_heads()  # someone else wrote: link to what they wrote
            self._machine.apply_many(fresh)

    @property
    def state(self) -> GroupState:
        self.refresh()
        return self._machine.state

    @property
    def view(self) -> ContentView:
        self.refresh()
        return self._machine.view()

    def _me(self) -> bytes:
        return self.identity.public_key

    # -- writing

    def planner(self, *, now: int | None = None) -> Planner:
        """A planner on the current state (what every write below uses)."""
        state = self.state
        return planner_for(
            self.store,
            self.id,
            state,
            self._machine.view(),
            self.identity,
            self._clock() if now is None else now,
        )

    def write(self, intent: Intent, *, now: int | None = None) -> Entry:
        """Append a planned entry (durably) and return it. In an encrypted group a KEYS
        entry may come first (spec/12-encryption.md W1, W3)."""
        self.refresh()  # an intent not made by planner(): seal it on the current state
        entries = append_intent_all(
            self.log,
            self.identity,
            intent,
            self._clock() if now is None else now,
            self._machine,
        )
        self.refresh()
        return entries[-1]

    def welcome(self) -> Entry | None:
        """Hand the group's current key to the members who lack it (a welcome after a
        join or an add, spec/12-encryption.md W4); None when nobody needs it or this
        member cannot. A running node does this on its own."""
        self.refresh()
        entries = write_keys(self.log, self.identity, self._machine, self._clock(), forward=True)
        self.refresh()
        return entries[-1] if entries else None

    def rotate_keys(self) -> Entry:
        """Replace this member's receive key and start a new epoch in one KEYS entry
        (12.11 W1 and a rekey): what a device that may have been copied does to heal,
        since secrets sealed to the old key stop coming. Raises ``NotFoundError`` in a
        plaintext group or for a non-member."""
        self.refresh()
        entries = write_keys(self.log, self.identity, self._machine, self._clock(), rotate=True)
        self.refresh()
        if not entries:
            raise NotFoundError(
                ErrorCode.NOT_FOUND, "no keys to rotate: not an encrypted group's member here"
            )
        return entries[-1]

    def publish_keys(self) -> Entry | None:
        """Publish this member's receive key if the group has none for it yet (W1), so
        that others can hand it the group's key; None if not needed."""
        self.refresh()
        entries = write_keys(self.log, self.identity, self._machine, self._clock(), publish=True)
        self.refresh()
        return entries[-1] if entries else None

    @property
    def encrypted(self) -> bool:
        """Whether the group's content is readable by members only (12.10 C1)."""
        self.refresh()
        enc = self._machine.encryptor
        return enc is not None and enc.encrypted

    def act(self, plan: Callable[[Planner], Intent]) -> Entry:
        """Plan an entry and write it, with one reading of the clock (so that what the
        planner judged, e.g. an invitation's expiry, is the time the entry carries)."""
        now = self._clock()
        return self.write(plan(self.planner(now=now)), now=now)

    def post(self, text: str) -> Entry:
        return self.act(lambda p: p.post(text))

    def reply(self, parent: bytes, text: str) -> Entry:
        return self.act(lambda p: p.reply(parent, text))

    def react(self, target: bytes, emoji: str, *, on: bool = True) -> Entry:
        return self.act(lambda p: p.react(target, emoji, on=on))

    def retract(self, target: bytes) -> Entry:
        return self.act(lambda p: p.retract(target))

    def hide(self, target: bytes, reason: str = "") -> Entry:
        return self.act(lambda p: p.hide(target, reason))

    def unhide(self, target: bytes) -> Entry:
        return self.act(lambda p: p.unhide(target))

    def delete(self, target: bytes, reason: str = "") -> Entry:
        """Delete an item for good; this replica drops its body at once."""
        entry = self.act(lambda p: p.delete(target, reason))
        for eid in self._machine.view().drop_bodies:
            self.log.drop_body(eid)
        return entry

    def add(self, member: bytes, role: Role = Role.MEMBER, *, name: str = "") -> Entry:
        return self.act(lambda p: p.add(member, role, name=name))

    def remove(self, member: bytes, *, reason: str = "") -> Entry:
        return self.act(lambda p: p.remove(member, reason=reason))

    def ban(self, member: bytes, *, reason: str = "") -> Entry:
        return self.act(lambda p: p.ban(member, reason=reason))

    def set_role(self, member: bytes, role: Role) -> Entry:
        return self.act(lambda p: p.set_role(member, role))

    def leave(self) -> Entry:
        return self.act(lambda p: p.leave())

    def claim_admin(self) -> Entry:
        return self.act(lambda p: p.claim_admin())

    def set_metadata(
        self, *, name: str | None = None, description: str | None = None, rules: str | None = None
    ) -> Entry:
        return self.act(lambda p: p.set_metadata(name=name, description=description, rules=rules))

    def invite(
        self,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_in_ms: int | None = None,
        note: str = "",
        addresses: Sequence[str] = (),
    ) -> Invitation:
        """Issue an invitation; hand ``.text`` to the invitee. ``addresses`` are
        ``host:port`` hints where the invitee can reach a member."""
        now = self._clock()
        expires_at = 0 if expires_in_ms is None else now + expires_in_ms
        intent = self.planner(now=now).invite(
            self._random(INVITATION_SECRET_SIZE),
            role=role,
            max_uses=max_uses,
            expires_at=expires_at,
            note=note,
            hints=tuple(addresses),
        )
        assert intent.code is not None
        return Invitation(entry=self.write(intent, now=now), code=intent.code)

    def revoke_invite(self, invite: bytes) -> Entry:
        return self.act(lambda p: p.revoke_invite(invite))

    def grant_relay(self, relay: bytes) -> Entry:
        """Let the node with key ``relay`` carry this group for its members: store and
        serve its entries, read none of them (an admin's act, spec/12)."""
        return self.act(lambda p: p.relay(relay))

    def revoke_relay(self, relay: bytes) -> Entry:
        return self.act(lambda p: p.relay(relay, revoke=True))

    def join(self, code: InvitationCode, *, name: str = "") -> Entry:
        """Write this identity's JOIN; the group's INVITE entry must be in the store
        (sync with a member first: :meth:`p2pcomm.net.node.Node.join` does it all)."""
        return self.act(lambda p: p.join(code, name=name))


#: History modes by name (spec/12-encryption.md 12.11b).
_HISTORY: Final = {"full": HISTORY_FULL, "since-join": HISTORY_SINCE_JOIN}


# --------------------------------------------------------------------------- shared steps


def planner_for(
    store: Store,
    group: bytes,
    state: GroupState,
    view: ContentView,
    identity: KeyPair,
    now: int,
) -> Planner:
    """A :class:`Planner` reading targets from ``store``."""

    def header(eid: bytes) -> Header | None:
        e = store.get_entry(group, eid)
        return None if e is None else e.header

    me = identity.public_key
    last = 0  # the timestamp of this author's latest entry: a new one is never older
    for eid in store.ids_at(group, me, store.max_seq(group, me)):
        h = header(eid)
        last = max(last, 0 if h is None else h.timestamp)
    return Planner(
        state,
        view,
        me,
        now_ms=now,
        max_seq=lambda m: store.max_seq(group, m),
        header=header,
        last_timestamp=last,
    )


def append_intent(
    log: GroupLog,
    identity: KeyPair,
    intent: Intent,
    now: int,
    machine: ContentMachine | None = None,
) -> Entry:
    """Append ``intent`` to ``log`` as ``identity`` (durable on return); the entry."""
    return append_intent_all(log, identity, intent, now, machine)[-1]


def append_intent_all(
    log: GroupLog,
    identity: KeyPair,
    intent: Intent,
    now: int,
    machine: ContentMachine | None = None,
) -> list[Entry]:
    """Append ``intent`` (durable on return). In an encrypted group, with ``machine``
    (the group's state with this member's keys, up to date with ``log``): the body is
    sealed or given its key block, and a KEYS entry comes first when W1 or W3 asks for
    one (spec/12-encryption.md 12.11). Returns every entry written, the intent's last."""
    ts = max(now, intent.min_timestamp)
    enc = machine.encryptor if machine is not None else None
    if machine is None or enc is None or not enc.encrypted:
        return [log.append(identity, intent.kind, intent.body, timestamp=ts)]
    me = identity.public_key
    kind, body = intent.kind, intent.body
    if encrypted_kind(kind) and value_length(body) != len(body):
        # 12.10 C3: refused before a rekey or forward is written for it
        raise ValidationError(
            ErrorCode.MALFORMED,
            f"the body of kind {kind} in an encrypted group is one msgpack value;"
            " encode opaque bytes as a bin",
        )
    written: list[Entry] = []

    def position() -> tuple[int, int]:
        seq, parents = log.next_position(me)
        return seq, enc.cut(parents)

    def keys_first(*, rekey: bool = False, to: Sequence[bytes] = ()) -> None:
        seq, K = position()
        kb, secret = enc.keys_body(seq=seq, K=K, rekey=rekey, to=to)
        e = log.append(identity, Kind.KEYS, kb, timestamp=ts)
        enc.note(e.id, secret)
        machine.apply(e)
        written.append(e)

    seq, K = position()
    secret = None
    if kind == Kind.SET_METADATA and enc.needs_rekey(K):
        keys_first(rekey=True)  # 12.11a: sealed as content is, so W3 as for content
        seq, K = position()
    if kind in MEMBERSHIP_KINDS:
        member = me in enc.view.members(K)
        if member and kind != Kind.KEYS and not enc.has_receive_key(K):
            keys_first()  # W1: an added member publishes before anything else
            seq, K = position()
        body, secret = enc.op_body(kind, body, seq=seq, K=K)
    elif encrypted_kind(kind):
        if enc.needs_rekey(K):
            keys_first(rekey=True)  # W3
            seq, K = position()
        elif due := enc.forward_due(K):
            # W4 before writing: a member who joined a moment ago reads this too.
            keys_first(to=due)
            seq, K = position()
        body = enc.content_body(kind, body, seq=seq, K=K)
    entry = log.append(identity, kind, body, timestamp=ts)
    enc.note(entry.id, secret)
    machine.apply(entry)
    written.append(entry)
    assert machine.keys is not None
    machine.keys.save()
    return written


def write_keys(
    log: GroupLog,
    identity: KeyPair,
    machine: ContentMachine,
    now: int,
    *,
    forward: bool = False,
    publish: bool = False,
    rotate: bool = False,
) -> list[Entry]:
    """The entries W1 (``publish``) or the duties of :meth:`Encryptor.duty`
    (``forward``) ask for now, if any; with ``rotate``, one KEYS entry with a fresh
    receive key and a rekey."""
    enc = machine.encryptor
    if enc is None or not enc.encrypted:
        return []
    me = identity.public_key
    seq, parents = log.next_position(me)
    K = enc.cut(parents)
    if me not in enc.view.members(K):
        return []
    written: list[Entry] = []

    def write(kind: int, body: bytes, secret: bytes | None) -> None:
        entry = log.append(identity, kind, body, timestamp=now)
        enc.note(entry.id, secret)
        machine.apply(entry)
        written.append(entry)

    if rotate:
        write(Kind.KEYS, *enc.keys_body(seq=seq, K=K, rekey=True, rotate=True))
    elif publish and not enc.has_receive_key(K):
        write(Kind.KEYS, *enc.keys_body(seq=seq, K=K))
    elif forward:
        # Each duty written makes itself not due; the bound only guards a fault.
        for _ in range(MAX_DUTIES):
            duty = enc.duty(K)
            if duty is None:
                break
            write(*enc.duty_entry(duty, seq=seq, K=K))
            seq, parents = log.next_position(me)
            K = enc.cut(parents)
    if written:
        assert machine.keys is not None
        machine.keys.save()
    return written


# --------------------------------------------------------------------------- names


def _by_prefix(ids: Iterable[bytes], text: str, what: str) -> bytes | None:
    t = text.strip().lower()
    if len(t) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in t):
        return None
    found = sorted({i for i in ids if i.hex().startswith(t)})
    if len(found) > 1:
        raise NotFoundError(
            ErrorCode.AMBIGUOUS, f"{len(found)} {what}s start with {t}: give more digits"
        )
    return found[0] if found else None


def group_names(
    store: Store, groups: Iterable[bytes] | None = None, identity: KeyPair | None = None
) -> dict[bytes, str]:
    """Each group's current name (read from its log). An encrypted group's name is
    sealed: it is read with ``identity``'s keys, and is "" for whoever cannot open it."""
    out: dict[bytes, str] = {}
    keys = None if identity is None else Keychain(store, identity)
    for g in store.groups() if groups is None else groups:
        machine = ContentMachine(keys)
        machine.apply_many(e for _, e in store.iter_entries(g, with_bodies=True))
        try:
            out[g] = machine.state.metadata.name
        except Exception:  # no genesis held yet (a join in progress)
            out[g] = ""
    return out


def find_group(
    store: Store,
    text: str,
    *,
    names: dict[bytes, str] | None = None,
    identity: KeyPair | None = None,
) -> bytes:
    """The group ``text`` names: a full id, a unique prefix of 8+ hex digits, or a
    unique name. Raises :class:`NotFoundError` (code ``NOT_FOUND`` or ``AMBIGUOUS``)."""
    groups = store.groups()
    hit = _by_prefix(groups, text, "group")
    if hit is not None:
        return hit
    names = group_names(store, groups, identity) if names is None else names
    same = sorted(g for g, n in names.items() if n == text)
    if len(same) == 1:
        return same[0]
    if same:
        raise NotFoundError(
            ErrorCode.AMBIGUOUS,
            f"{len(same)} groups are named {text!r}: use the id ({', '.join(g.hex()[:12] for g in same)})",
        )
    raise NotFoundError(
        ErrorCode.NOT_FOUND,
        f"no group {text!r} here (p2pcomm group list shows the groups this store holds)",
    )


def find_member(state: GroupState, text: str) -> bytes:
    """The member ``text`` names: a ``pc1...`` id (also of non-members), a unique
    prefix of one (8+ characters), a unique hex prefix, or a unique display name."""
    t = text.strip()
    if t.lower().startswith(ID_TEXT_PREFIX) and len(t) >= 59:
        try:
            return MemberId.parse(t).raw
        except IdentityError as exc:
            raise NotFoundError(ErrorCode.NOT_FOUND, f"not a member id: {exc.message}") from None
    known = set(state.members) | set(state.banned)
    if t.lower().startswith(ID_TEXT_PREFIX) and len(t) >= MIN_PREFIX:
        found = sorted(m for m in known if MemberId(m).text().startswith(t.lower()))
        if len(found) == 1:
            return found[0]
        if found:
            raise NotFoundError(ErrorCode.AMBIGUOUS, f"{len(found)} members' ids start with {t}")
    hit = _by_prefix(known, t, "member")
    if hit is not None:
        return hit
    named = sorted(m.id for m in state.members.values() if m.name == t)
    if len(named) == 1:
        return named[0]
    if named:
        raise NotFoundError(
            ErrorCode.AMBIGUOUS, f"{len(named)} members are named {t!r}: use their pc1... id"
        )
    if t.lower().startswith(ID_TEXT_PREFIX) and len(t) < MIN_PREFIX:
        raise NotFoundError(
            ErrorCode.NOT_FOUND,
            f"no member {t!r} in this group (an id prefix needs {MIN_PREFIX} characters or more)",
        )
    raise NotFoundError(ErrorCode.NOT_FOUND, f"no member {t!r} in this group")


def find_item(ids: Iterable[bytes], text: str) -> bytes:
    """The item ``text`` names: its full id or a unique prefix of 8+ hex digits."""
    hit = _by_prefix(ids, text, "item")
    if hit is None:
        raise NotFoundError(
            ErrorCode.NOT_FOUND, f"no item {text!r} (give 8 or more hex digits of its id)"
        )
    return hit
