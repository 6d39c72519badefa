"""The command set, once: each CLI command is a method taking JSON parameters and giving
a JSON result, run by the node for its control socket (docs/control-protocol.md) and by
the CLI itself on the store when no node runs. So both paths give the same results.

A method works on a :class:`Backend`: :class:`NodeBackend` (a running node: writes are
pushed to peers at once) or :class:`LocalBackend` (the store alone; a ``join`` starts a
node for as long as it takes). Names in parameters are what a person typed (a group's
name or id prefix, a member's name or ``pc1...`` id, an item's id prefix) and are
resolved here.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import trio

from ..community import Group, Invitation, find_group, group_names
from ..core.content import Item
from ..core.identity import KeyPair, MemberId
from ..core.invitation import InvitationCode
from ..core.log import Entry
from ..core.membership import GroupMetadata, GroupState, Kind, Member, Role
from ..errors import ErrorCode, NotFoundError, P2PCommError, ValidationError
from ..net.events import ItemAdded, ItemDeleted, ItemHidden, ItemsAdded, ItemUpdated, NodeEvent
from ..store.base import Store

__all__ = [
    "JOIN_TIMEOUT",
    "METHODS",
    "Backend",
    "LocalBackend",
    "NodeBackend",
    "Params",
    "Result",
    "call",
    "item_json",
    "join_timed_out",
    "member_json",
    "stream",
]

Params = Mapping[str, Any]
Result = dict[str, Any]

#: Method name -> (kind, where it may run). ``node``: needs the running node;
#: ``either``: through the node when it runs, else on the store.
METHODS: dict[str, tuple[Literal["call", "stream"], Literal["node", "either"]]] = {
    "id": ("call", "either"),
    "groups": ("call", "either"),
    "group.create": ("call", "either"),
    "group.info": ("call", "either"),
    "invite": ("call", "either"),
    "join": ("call", "either"),
    "post": ("call", "either"),
    "reply": ("call", "either"),
    "react": ("call", "either"),
    "read": ("call", "either"),
    "members": ("call", "either"),
    "remove": ("call", "either"),
    "ban": ("call", "either"),
    "role": ("call", "either"),
    "hide": ("call", "either"),
    "unhide": ("call", "either"),
    "delete": ("call", "either"),
    "leave": ("call", "either"),
    "relay.grant": ("call", "either"),
    "relay.revoke": ("call", "either"),
    "relay.list": ("call", "either"),
    "peers": ("call", "node"),
    "status": ("call", "either"),
    "follow": ("stream", "node"),
}


# --------------------------------------------------------------------------- JSON forms


def rfc3339(ms: int) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member_json(m: Member) -> Result:
    return {"id": MemberId(m.id).text(), "name": m.name, "role": m.role.name.lower()}


def item_json(item: Item, names: Mapping[bytes, str]) -> Result:
    return {
        "id": item.id.hex(),
        "kind": item.kind.name.lower(),
        "author": MemberId(item.author).text(),
        "author_name": names.get(item.author, ""),
        "time": rfc3339(item.timestamp),
        "timestamp": item.timestamp,
        "text": item.text,
        "sealed": item.sealed,
        "parent": None if item.parent is None else item.parent.hex(),
        "hidden": item.hidden,
        "reactions": dict(item.reactions),
    }


def entry_json(group: bytes, entry: Entry) -> Result:
    h = entry.header
    try:
        kind = Kind(h.kind).name.lower()
    except ValueError:
        kind = str(h.kind)
    return {"group": group.hex(), "id": entry.id.hex(), "kind": kind, "seq": h.seq}


# --------------------------------------------------------------------------- backends


class Handle(Protocol):
    """What the methods need of a group: :class:`~p2pcomm.net.live.LiveGroup`, or
    :class:`_LocalHandle` around a :class:`~p2pcomm.community.Group`."""

    id: bytes

    @property
    def state(self) -> GroupState: ...
    @property
    def metadata(self) -> GroupMetadata: ...
    def members(self) -> list[Member]: ...
    def items(self, *, include_hidden: bool = False) -> list[Item]: ...
    def find_member(self, text: str) -> bytes: ...
    def find_item(self, text: str) -> bytes: ...
    async def post(self, text: str) -> Entry: ...
    async def reply(self, parent: bytes, text: str) -> Entry: ...
    async def react(self, target: bytes, emoji: str, *, on: bool = True) -> Entry: ...
    async def hide(self, target: bytes, reason: str = "") -> Entry: ...
    async def unhide(self, target: bytes) -> Entry: ...
    async def delete(self, target: bytes, reason: str = "") -> Entry: ...
    async def remove(self, member: bytes, *, reason: str = "") -> Entry: ...
    async def ban(self, member: bytes, *, reason: str = "") -> Entry: ...
    async def set_role(self, member: bytes, role: Role) -> Entry: ...
    async def leave(self) -> Entry: ...
    def relays(self) -> list[bytes]: ...
    async def grant_relay(self, relay: bytes) -> Entry: ...
    async def revoke_relay(self, relay: bytes) -> Entry: ...
    async def invite(
        self,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_in_ms: int | None = None,
        note: str = "",
        addresses: Sequence[str] = (),
    ) -> Invitation: ...


class Backend(Protocol):
    identity: KeyPair
    store: Store
    #: Display name of this identity (from ``init --name``).
    display_name: str

    def group_ids(self) -> list[bytes]: ...
    def handle(self, group: bytes) -> Handle: ...
    async def create_group(self, name: str, history: str = "full") -> Handle: ...
    async def join(self, code: InvitationCode) -> Handle: ...
    def node_status(self) -> Result | None: ...


class _LocalHandle:
    """A :class:`Group` with the coroutine interface of a live handle."""

    def __init__(self, group: Group) -> None:
        self.g = group
        self.id = group.id

    @property
    def state(self) -> GroupState:
        return self.g.state

    @property
    def metadata(self) -> GroupMetadata:
        return self.g.metadata

    def members(self) -> list[Member]:
        return self.g.members()

    def items(self, *, include_hidden: bool = False) -> list[Item]:
        return self.g.items(include_hidden=include_hidden)

    def find_member(self, text: str) -> bytes:
        return self.g.find_member(text)

    def find_item(self, text: str) -> bytes:
        return self.g.find_item(text)

    async def post(self, text: str) -> Entry:
        return self.g.post(text)

    async def reply(self, parent: bytes, text: str) -> Entry:
        return self.g.reply(parent, text)

    async def react(self, target: bytes, emoji: str, *, on: bool = True) -> Entry:
        return self.g.react(target, emoji, on=on)

    async def hide(self, target: bytes, reason: str = "") -> Entry:
        return self.g.hide(target, reason)

    async def unhide(self, target: bytes) -> Entry:
        return self.g.unhide(target)

    async def delete(self, target: bytes, reason: str = "") -> Entry:
        return self.g.delete(target, reason)

    async def remove(self, member: bytes, *, reason: str = "") -> Entry:
        return self.g.remove(member, reason=reason)

    async def ban(self, member: bytes, *, reason: str = "") -> Entry:
        return self.g.ban(member, reason=reason)

    async def set_role(self, member: bytes, role: Role) -> Entry:
        return self.g.set_role(member, role)

    async def leave(self) -> Entry:
        return self.g.leave()

    def relays(self) -> list[bytes]:
        return self.g.relays()

    async def grant_relay(self, relay: bytes) -> Entry:
        return self.g.grant_relay(relay)

    async def revoke_relay(self, relay: bytes) -> Entry:
        return self.g.revoke_relay(relay)

    async def invite(
        self,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_in_ms: int | None = None,
        note: str = "",
        addresses: Sequence[str] = (),
    ) -> Invitation:
        return self.g.invite(
            role=role,
            max_uses=max_uses,
            expires_in_ms=expires_in_ms,
            note=note,
            addresses=addresses,
        )


#: How long a join waits for a member's node (seconds), on either path.
JOIN_TIMEOUT = 60.0


def join_timed_out(code: InvitationCode, timeout: float) -> P2PCommError:
    where = ", ".join(code.hints) or "no address in the code"
    return P2PCommError(
        ErrorCode.TIMEOUT,
        f"no member answered within {timeout:.0f} s ({where}); is a member's node "
        "running and reachable? run the join again later (what came is kept)",
    )


@dataclass
class LocalBackend:
    """The store alone (no node runs). ``join`` starts a node while it works:
    ``join_node`` opens it (the CLI passes where to listen and which peers to dial)."""

    identity: KeyPair
    store: Store
    display_name: str = ""
    join_timeout: float = JOIN_TIMEOUT
    known_peers: Sequence[tuple[str, int]] = ()
    on_progress: Callable[[str], None] | None = None
    #: Called with the number of entries fetched so far while joining (catch-up).
    on_fetched: Callable[[int], None] | None = None

    def group_ids(self) -> list[bytes]:
        return [g for g in self.store.groups() if self.store.count(g)]

    def handle(self, group: bytes) -> Handle:
        return _LocalHandle(Group(self.store, self.identity, group))

    async def create_group(self, name: str, history: str = "full") -> Handle:
        return _LocalHandle(
            Group.create(
                self.store, self.identity, name, founder_name=self.display_name, history=history
            )
        )

    async def join(self, code: InvitationCode) -> Handle:
        from ..net.events import EntriesAdded, PeerUnreachable
        from ..net.node import PeerDown, open_node

        async with open_node(
            self.store, self.identity, listen=False, peers=list(self.known_peers), groups=[]
        ) as node:
            events = node.subscribe()

            async def report() -> None:
                fetched = 0
                async for ev in events:
                    if isinstance(ev, EntriesAdded) and ev.origin is not None:
                        fetched += len(ev.entries)
                        if self.on_fetched is not None:
                            self.on_fetched(fetched)
                    if self.on_progress is None:
                        continue
                    if isinstance(ev, PeerDown) and ev.reason.startswith(
                        ("unauthorized", "refused", "closed by the peer")
                    ):
                        # Sessions restarted on purpose (a group added, access widened)
                        # are not news; being turned away is.
                        self.on_progress(f"peer {MemberId(ev.peer_id).short()} left: {ev.reason}")
                    elif isinstance(ev, PeerUnreachable):
                        host, port = ev.address
                        self.on_progress(
                            f"cannot reach {host}:{port} ({ev.reason}); still trying for up "
                            f"to {self.join_timeout:.0f} s"
                        )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(report)
                with trio.move_on_after(self.join_timeout) as scope:
                    await node.join(code, name=self.display_name)
                nursery.cancel_scope.cancel()
            if scope.cancelled_caught:
                raise join_timed_out(code, self.join_timeout)
        return self.handle(code.group)

    def node_status(self) -> Result | None:
        return None


class NodeBackend:
    """A running node (what ``p2pcomm run`` serves on its control socket)."""

    def __init__(
        self,
        node: Any,
        display_name: str = "",
        listen: str = "",
        join_timeout: float = JOIN_TIMEOUT,
    ) -> None:
        from ..net.node import Node

        assert isinstance(node, Node)
        self.node = node
        self.join_timeout = join_timeout
        self.identity = node.identity
        self.store = node.store
        self.display_name = display_name
        self.listen = listen

    def group_ids(self) -> list[bytes]:
        return sorted(g for g in self.node.logs if self.node.group(g).ready)

    def handle(self, group: bytes) -> Handle:
        if group not in self.node.logs:
            raise NotFoundError(ErrorCode.NOT_FOUND, f"this node has no group {group.hex()[:16]}")
        return self.node.group(group)

    async def create_group(self, name: str, history: str = "full") -> Handle:
        return await self.node.create_group(name, founder_name=self.display_name, history=history)

    async def join(self, code: InvitationCode) -> Handle:
        # Bounded like the local path: the client waits for the answer, not forever.
        with trio.move_on_after(self.join_timeout):
            return await self.node.join(code, name=self.display_name)
        raise join_timed_out(code, self.join_timeout)

    def node_status(self) -> Result | None:
        node = self.node
        stats = node.statistics()
        host, port = node.address
        return {
            "running": True,
            "listening": f"{host}:{port}",
            "peers": [MemberId(p).text() for p in stats.peers],
            "unreachable": [
                {"address": f"{h}:{p}", "failures": n, "retry_in_s": round(wait, 1)}
                for (h, p), (n, wait) in sorted(node.dial_failures().items())
            ],
            "entries_received": stats.entries_received,
            "entries_accepted": stats.entries_accepted,
            "mdns": list(node.discovery.addresses) if node.discovery is not None else None,
            "discovered": [
                {"address": f"{h}:{p}", "groups": [g.hex() for g in groups]}
                for (h, p), groups in sorted(node.discovered().items())
            ],
        }


# --------------------------------------------------------------------------- the methods


def _str(params: Params, key: str, *, default: str | None = None) -> str:
    value = params.get(key, default)
    if not isinstance(value, str):
        raise ValidationError(ErrorCode.WRONG_TYPE, f"parameter {key!r} must be a string")
    return value


def _int(params: Params, key: str, default: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(ErrorCode.WRONG_TYPE, f"parameter {key!r} must be a whole number")
    return value


def _group(b: Backend, params: Params) -> Handle:
    text = _str(params, "group")
    gid = find_group(b.store, text, names=group_names(b.store, b.group_ids(), b.identity))
    return b.handle(gid)


def _names(h: Handle) -> dict[bytes, str]:
    return {m.id: m.name for m in h.members()}


def _group_json(b: Backend, h: Handle) -> Result:
    state = h.state
    me = b.identity.public_key
    role = state.role_of(me)
    return {
        "id": h.id.hex(),
        "name": state.metadata.name,
        "description": state.metadata.description,
        "rules": state.metadata.rules,
        "members": len(state.members),
        "role": None if role is None else role.name.lower(),
        "entries": b.store.count(h.id),
    }


def _role(text: str) -> Role:
    try:
        return Role[text.upper()]
    except KeyError:
        raise ValidationError(
            ErrorCode.BAD_OPERATION,
            f"no role {text!r}: choose reader, member, moderator or admin",
        ) from None


async def _id(b: Backend, p: Params) -> Result:
    return {"id": b.identity.id.text(), "name": b.display_name}


async def _groups(b: Backend, p: Params) -> Result:
    return {"groups": [_group_json(b, b.handle(g)) for g in b.group_ids()]}


async def _group_create(b: Backend, p: Params) -> Result:
    history = _str(p, "history", default="full")
    return _group_json(b, await b.create_group(_str(p, "name"), history))


async def _group_info(b: Backend, p: Params) -> Result:
    h = _group(b, p)
    out = _group_json(b, h)
    out["members_list"] = [member_json(m) for m in h.members()]
    return out


async def _invite(b: Backend, p: Params) -> Result:
    h = _group(b, p)
    expires = p.get("expires_ms")
    if expires is not None and (not isinstance(expires, int) or expires <= 0):
        raise ValidationError(ErrorCode.WRONG_TYPE, "expires_ms must be a positive whole number")
    addresses = p.get("addresses", [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ValidationError(ErrorCode.WRONG_TYPE, "addresses must be a list of strings")
    inv = await h.invite(
        role=_role(_str(p, "role", default="member")),
        max_uses=_int(p, "uses", 1),
        expires_in_ms=expires,
        addresses=addresses,
    )
    return {
        "group": h.id.hex(),
        "code": inv.text,
        "invite": inv.entry.id.hex(),
        "role": Role(inv.code.role).name.lower(),
        "uses": inv.code.max_uses,
        "expires_at": inv.code.expires_at or None,
        "addresses": list(inv.code.hints),
    }


async def _join(b: Backend, p: Params) -> Result:
    code = InvitationCode.parse(_str(p, "code"))
    h = await b.join(code)
    return _group_json(b, h)


async def _write(b: Backend, p: Params, act: Callable[[Handle], Awaitable[Entry]]) -> Result:
    h = _group(b, p)
    return entry_json(h.id, await act(h))


def _text(p: Params, key: str = "text") -> str:
    return _str(p, key)


async def _post(b: Backend, p: Params) -> Result:
    return await _write(b, p, lambda h: h.post(_text(p)))


async def _reply(b: Backend, p: Params) -> Result:
    return await _write(b, p, lambda h: h.reply(h.find_item(_str(p, "item")), _text(p)))


async def _react(b: Backend, p: Params) -> Result:
    return await _write(b, p, lambda h: h.react(h.find_item(_str(p, "item")), _str(p, "emoji")))


async def _hide(b: Backend, p: Params) -> Result:
    reason = _str(p, "reason", default="")
    return await _write(b, p, lambda h: h.hide(h.find_item(_str(p, "item")), reason))


async def _unhide(b: Backend, p: Params) -> Result:
    return await _write(b, p, lambda h: h.unhide(h.find_item(_str(p, "item"))))


async def _delete(b: Backend, p: Params) -> Result:
    reason = _str(p, "reason", default="")
    return await _write(b, p, lambda h: h.delete(h.find_item(_str(p, "item")), reason))


async def _remove(b: Backend, p: Params) -> Result:
    reason = _str(p, "reason", default="")
    return await _write(b, p, lambda h: h.remove(h.find_member(_str(p, "member")), reason=reason))


async def _ban(b: Backend, p: Params) -> Result:
    reason = _str(p, "reason", default="")
    return await _write(b, p, lambda h: h.ban(h.find_member(_str(p, "member")), reason=reason))


async def _set_role(b: Backend, p: Params) -> Result:
    role = _role(_str(p, "role"))
    return await _write(b, p, lambda h: h.set_role(h.find_member(_str(p, "member")), role))


async def _leave(b: Backend, p: Params) -> Result:
    return await _write(b, p, lambda h: h.leave())


def _relay_id(p: Params) -> bytes:
    """A relay's node key, as ``p2pcomm id`` prints it on the relay's home."""
    return MemberId.parse(_str(p, "relay")).raw


async def _relay_grant(b: Backend, p: Params) -> Result:
    relay = _relay_id(p)
    return await _write(b, p, lambda h: h.grant_relay(relay))


async def _relay_revoke(b: Backend, p: Params) -> Result:
    relay = _relay_id(p)
    return await _write(b, p, lambda h: h.revoke_relay(relay))


async def _relay_list(b: Backend, p: Params) -> Result:
    h = _group(b, p)
    return {"group": h.id.hex(), "relays": [MemberId(r).text() for r in h.relays()]}


async def _read(b: Backend, p: Params) -> Result:
    h = _group(b, p)
    items = h.items(include_hidden=bool(p.get("hidden", False)))
    last = p.get("last")
    if isinstance(last, int) and not isinstance(last, bool) and last >= 0:
        items = items[-last:] if last else []
    names = _names(h)
    return {
        "group": h.id.hex(),
        "name": h.metadata.name,
        "items": [item_json(i, names) for i in items],
    }


async def _members(b: Backend, p: Params) -> Result:
    h = _group(b, p)
    state = h.state
    return {
        "group": h.id.hex(),
        "members": [member_json(m) for m in h.members()],
        "banned": sorted(MemberId(m).text() for m in state.banned),
        # Expelled for signing two entries with one sequence number (04 R10): their
        # entries from that sequence on count for nothing, on both branches.
        "expelled": [
            {"id": MemberId(m).text(), "forked_at": seq}
            for m, seq in sorted(state.equivocators.items())
        ],
    }


async def _peers(b: Backend, p: Params) -> Result:
    status = b.node_status()
    if status is None:
        raise NotFoundError(ErrorCode.NODE_UNREACHABLE, "no node runs")
    result = {"peers": status["peers"], "unreachable": status["unreachable"]}
    if status["discovered"]:  # found on the local network (mDNS), connected or not
        result["discovered"] = status["discovered"]
    return result


async def _status(b: Backend, p: Params) -> Result:
    status = b.node_status() or {"running": False}
    status["id"] = b.identity.id.text()
    status["groups"] = [
        {"id": g.hex(), "name": n, "entries": b.store.count(g)}
        for g, n in sorted(group_names(b.store, b.group_ids(), b.identity).items())
    ]
    return status


_CALLS: dict[str, Callable[[Backend, Params], Awaitable[Result]]] = {
    "id": _id,
    "groups": _groups,
    "group.create": _group_create,
    "group.info": _group_info,
    "invite": _invite,
    "join": _join,
    "post": _post,
    "reply": _reply,
    "react": _react,
    "read": _read,
    "members": _members,
    "remove": _remove,
    "ban": _ban,
    "role": _set_role,
    "hide": _hide,
    "unhide": _unhide,
    "delete": _delete,
    "leave": _leave,
    "relay.grant": _relay_grant,
    "relay.revoke": _relay_revoke,
    "relay.list": _relay_list,
    "peers": _peers,
    "status": _status,
}


async def call(b: Backend, method: str, params: Params) -> Result:
    fn = _CALLS.get(method)
    if fn is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no method {method!r}")
    return await fn(b, params)


async def stream(b: NodeBackend, method: str, params: Params) -> AsyncIterator[Result]:
    """``follow``: the group's items as they are added, changed, hidden or deleted. The
    first event, ``{"event": "following"}``, says the node now watches: what arrives
    after it is in the stream (a client reads what was there before afterwards)."""
    if method != "follow":
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no stream {method!r}")
    h = _group(b, params)
    events = b.node.subscribe()
    async with events:
        yield {"event": "following", "group": h.id.hex()}
        async for ev in events:
            if isinstance(ev, ItemsAdded) and ev.group == h.id:
                names = _names(h)
                for item in ev.items:  # a catch-up's batch: one line per item still
                    yield {"event": "added", "item": item_json(item, names)}
                continue
            out = _event_json(h, ev)
            if out is not None:
                yield out


def _event_json(h: Handle, ev: NodeEvent) -> Result | None:
    if isinstance(ev, ItemAdded | ItemUpdated | ItemHidden) and ev.group == h.id:
        kind = {ItemAdded: "added", ItemUpdated: "updated", ItemHidden: "hidden"}[type(ev)]
        out: Result = {"event": kind, "item": item_json(ev.item, _names(h))}
        if isinstance(ev, ItemHidden):
            out["hidden"] = ev.hidden
        return out
    if isinstance(ev, ItemDeleted) and ev.group == h.id:
        return {"event": "deleted", "item": {"id": ev.item_id.hex()}}
    return None


def home_display_name(config: Path) -> str:
    """The display name ``init --name`` saved (``""`` if none)."""
    import json

    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return ""
    name = data.get("name", "") if isinstance(data, dict) else ""
    return name if isinstance(name, str) else ""
