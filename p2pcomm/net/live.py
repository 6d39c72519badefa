"""``LiveGroup``: a group's application handle on a running node.

It has the operations of :class:`p2pcomm.community.Group` (the handle on a store),
as coroutines: each write is planned on the node's current view of the group, refused
with :class:`~p2pcomm.errors.RefusedError` if the group's rules would void it, stored
durably, and pushed at once to every peer the group is live with. Reads come from the
node's membership and content state, which every stored entry updates.

    async with open_node(store, alice) as node:
        club = node.group(group_id)
        await club.post("Seed swap on Saturday")
        print([m.name for m in club.members()])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..community import GroupReads, Invitation
from ..core.content import ContentView
from ..core.intent import Intent, Planner
from ..core.invitation import INVITATION_SECRET_SIZE
from ..core.log import Entry
from ..core.membership import GroupState, Role
from ..errors import ErrorCode, NotFoundError

if TYPE_CHECKING:
    from .node import Node

__all__ = ["LiveGroup"]


class LiveGroup(GroupReads):
    """See the module docstring. Made by :meth:`Node.group`, :meth:`Node.create_group`
    and :meth:`Node.join`."""

    def __init__(self, node: Node, group: bytes) -> None:
        self.node = node
        self.id = group

    def __repr__(self) -> str:
        return f"LiveGroup({self.id.hex()[:16]})"

    # -- reading (the node's current state)

    @property
    def ready(self) -> bool:
        """Whether the group's first entry is here (a join in progress may lack it)."""
        m = self.node.content[self.id].membership
        return m.group is not None and m.kind(self.id) is not None

    @property
    def state(self) -> GroupState:
        if not self.ready:
            raise NotFoundError(
                ErrorCode.NOT_FOUND,
                f"group {self.id.hex()[:16]} is not here yet (its first entry has not arrived)",
            )
        return self.node.content[self.id].state

    @property
    def view(self) -> ContentView:
        self.state  # noqa: B018 - raises while the group is not here
        return self.node.content[self.id].view()

    def _me(self) -> bytes:
        return self.node.peer_id

    async def wait_synced(self, peer: bytes | None = None) -> bytes:
        """Wait until this group is in sync with ``peer`` (any peer if None)."""
        return await self.node.wait_synced(self.id, peer)

    # -- writing

    async def post(self, text: str) -> Entry:
        return await self.node.act(self.id, lambda p: p.post(text))

    async def reply(self, parent: bytes, text: str) -> Entry:
        return await self.node.act(self.id, lambda p: p.reply(parent, text))

    async def react(self, target: bytes, emoji: str, *, on: bool = True) -> Entry:
        return await self.node.act(self.id, lambda p: p.react(target, emoji, on=on))

    async def retract(self, target: bytes) -> Entry:
        return await self.node.act(self.id, lambda p: p.retract(target))

    async def hide(self, target: bytes, reason: str = "") -> Entry:
        return await self.node.act(self.id, lambda p: p.hide(target, reason))

    async def unhide(self, target: bytes) -> Entry:
        return await self.node.act(self.id, lambda p: p.unhide(target))

    async def delete(self, target: bytes, reason: str = "") -> Entry:
        return await self.node.act(self.id, lambda p: p.delete(target, reason))

    async def add(self, member: bytes, role: Role = Role.MEMBER, *, name: str = "") -> Entry:
        return await self.node.act(self.id, lambda p: p.add(member, role, name=name))

    async def remove(self, member: bytes, *, reason: str = "") -> Entry:
        return await self.node.act(self.id, lambda p: p.remove(member, reason=reason))

    async def ban(self, member: bytes, *, reason: str = "") -> Entry:
        return await self.node.act(self.id, lambda p: p.ban(member, reason=reason))

    async def set_role(self, member: bytes, role: Role) -> Entry:
        return await self.node.act(self.id, lambda p: p.set_role(member, role))

    async def leave(self) -> Entry:
        return await self.node.act(self.id, lambda p: p.leave())

    async def claim_admin(self) -> Entry:
        return await self.node.act(self.id, lambda p: p.claim_admin())

    async def set_metadata(
        self, *, name: str | None = None, description: str | None = None, rules: str | None = None
    ) -> Entry:
        return await self.node.act(
            self.id, lambda p: p.set_metadata(name=name, description=description, rules=rules)
        )

    async def invite(
        self,
        *,
        role: Role = Role.MEMBER,
        max_uses: int = 1,
        expires_in_ms: int | None = None,
        note: str = "",
        addresses: Sequence[str] = (),
    ) -> Invitation:
        """Issue an invitation; hand ``.text`` to the invitee."""
        secret = os.urandom(INVITATION_SECRET_SIZE)
        made: list[Intent] = []

        def plan(p: Planner) -> Intent:
            expires_at = 0 if expires_in_ms is None else p.now_ms + expires_in_ms
            intent = p.invite(
                secret,
                role=role,
                max_uses=max_uses,
                expires_at=expires_at,
                note=note,
                hints=tuple(addresses),
            )
            made.append(intent)
            return intent

        entry = await self.node.act(self.id, plan)
        code = made[0].code
        assert code is not None
        return Invitation(entry=entry, code=code)

    async def revoke_invite(self, invite: bytes) -> Entry:
        return await self.node.act(self.id, lambda p: p.revoke_invite(invite))

    async def rotate_keys(self) -> Entry:
        """As :meth:`p2pcomm.community.Group.rotate_keys`."""
        return await self.node.rotate_keys(self.id)

    async def grant_relay(self, relay: bytes) -> Entry:
        """As :meth:`p2pcomm.community.Group.grant_relay`."""
        return await self.node.act(self.id, lambda p: p.relay(relay))

    async def revoke_relay(self, relay: bytes) -> Entry:
        return await self.node.act(self.id, lambda p: p.relay(relay, revoke=True))
