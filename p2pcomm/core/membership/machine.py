"""The incremental machine (spec/04-membership.md section 4.8: "the reference has a batch
and an incremental implementation"): :class:`MembershipMachine` feeds entries to the
resolution core one at a time and always equals :func:`.resolve` of what it was fed.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..log import Entry
from .kinds import LEVEL_NONE, Kind, Reason, Role
from .resolve import _Core
from .state import GroupState, Verdict

__all__ = ["MembershipMachine"]


class MembershipMachine:
    """The incremental twin of :func:`resolve`: feed entries as they arrive.

    ``apply(e)`` accepts entries in any order (those whose dependencies are missing wait
    inside), ignores duplicates, and returns the ids whose verdict is new or changed.
    :attr:`state` is always equal to ``resolve`` of everything applied.
    """

    def __init__(self) -> None:
        self._core = _Core(deferred=False)

    @property
    def group(self) -> bytes | None:
        return self._core.group

    def apply(self, entry: Entry) -> list[bytes]:
        """Apply one entry; returns the ids whose verdict is new or changed.

        Raises :class:`ValidationError` (``WRONG_GROUP``) for an entry of another group;
        the machine is then as before."""
        core = self._core
        try:
            core.feed(entry)
        finally:
            core._settle()
        return self._collect()

    def apply_many(self, entries: Iterable[Entry]) -> list[bytes]:
        """Apply a batch (for example one sync round): rebuilds happen once, at the end.
        If an entry raises, the entries before it stay applied."""
        core = self._core
        core.batching = True
        try:
            for e in entries:
                core.feed(e)
        finally:
            core.batching = False
            core._settle()
        return self._collect()

    def _collect(self) -> list[bytes]:
        core = self._core
        core._snapshot = None
        changed = list(core.changed)
        core.changed.clear()
        return changed

    @property
    def state(self) -> GroupState:
        """The current state (a frozen snapshot; cached until the next apply)."""
        return self._core.snapshot()

    def verdict(self, entry_id: bytes) -> Verdict | None:
        """How one entry stands now (None if unknown or pending)."""
        core = self._core
        o = core.by_id.get(entry_id)
        if o is not None:
            w = core.world
            return Verdict(o.kind, o.author, w.levels.get(o.idx, LEVEL_NONE), w.reasons[o.idx])
        if entry_id not in core.level:
            return None
        return core.content_verdict(entry_id)

    def roles(self) -> dict[bytes, Role]:
        """Who is a member now, with which role: the ``members`` of :attr:`state`
        without building the whole snapshot (which copies every entry's verdict
        inputs, so costs time in proportion to the group's size). Empty until the
        genesis is known."""
        core = self._core
        if core.group is None or core.genesis is None:
            return {}
        return {m: member.role for m, member in core.members()[0].items()}

    def removals(self, member: bytes) -> list[bytes]:
        """The operations that ended ``member``'s membership and take effect now: the
        effective REMOVE and BAN entries naming it, in arrival order (empty when it is
        a member, never was one, or left on its own)."""
        core = self._core
        reasons = core.world.reasons
        return [
            o.id
            for o in core.ops
            if o.target == member
            and (o.kind == Kind.REMOVE or o.kind == Kind.BAN)
            and reasons.get(o.idx) is Reason.OK
        ]

    def kind(self, entry_id: bytes) -> int | None:
        """The kind of an entry the machine has seen (None if unknown): a lookup, where
        :meth:`verdict` judges the entry."""
        core = self._core
        o = core.by_id.get(entry_id)
        return o.kind if o is not None else core.ckind.get(entry_id)

    def authorized(self, entry_id: bytes) -> bool:
        """Whether the entry takes effect now (R1 to R10); False if unknown or pending."""
        v = self.verdict(entry_id)
        return v is not None and v.reason is Reason.OK

    def __len__(self) -> int:
        return len(self._core.K)
