"""The trio node: listens, dials, and replicates group logs with every connected peer.

Theory of operation
-------------------
``open_node(...)`` is an async context manager. Inside it a nursery runs:

* the listener (:func:`~p2pcomm.net.transport.serve_secure` on ``host:port``);
* one *dial loop* per static peer, reconnecting with exponential backoff;
* per connection, a *reader* and a *writer* task sharing one
  :class:`~p2pcomm.replication.Replicator`.

The reader never waits for the writer: it ingests what arrives and queues the small
replies; bulk catch-up is a job the writer advances one window at a time, after the
previous window was written. So two peers that both stream catch-up at once cannot
deadlock on full TCP buffers, and memory stays bounded by a window per connection.

All store work (ingest, reads for sync) runs in worker threads under one node-wide
lock, so the trio thread never blocks on SQLite and no two threads use a GroupLog at
once. Entries accepted from one peer, and entries appended locally, are pushed at
once to every other peer whose session is live (store-and-forward).

Hostile peers: a protocol error, an invalid entry, or a stall (no progress for
``stall_timeout`` while a sync is unfinished) ends that connection with a typed
reason and refuses the peer for ``ban_seconds``. Nothing a peer sends can crash the
node or touch the store except through the validating ingest.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeVar

import trio

from ..community import Group, append_intent_all, planner_for, write_keys
from ..core import crypto
from ..core.access import Access, Grant, admit, causal_cut, grant_for, invitee_proof
from ..core.channel import CloseCode
from ..core.content import ContentMachine, Item
from ..core.gossip import GossipConfig, Offer
from ..core.identity import KeyPair
from ..core.intent import Intent, Planner
from ..core.invitation import InvitationCode
from ..core.log import Entry, Header
from ..core.membership import GroupState, Kind, Role
from ..core.sync import MAX_PROOFS, decode_gossip_entry
from ..errors import (
    ErrorCode,
    NotFoundError,
    P2PCommError,
    RemoteProtocolError,
    ValidationError,
)
from ..group import GroupLog, now_ms
from ..keychain import Keychain
from ..replication import INGEST_BATCH, SHARED_INGEST_BATCH, Accepted, Replicator
from ..store.base import Store
from .admission import AdmissionLimits, Refusal
from .events import (
    EntriesAdded,
    GroupSynced,
    ItemAdded,
    ItemDeleted,
    ItemHidden,
    ItemsAdded,
    ItemUpdated,
    MemberJoined,
    MemberLeft,
    MemberRoleChanged,
    MembershipChanged,
    NodeEvent,
    PeerDiscovered,
    PeerDown,
    PeerGone,
    PeerMisbehaved,
    PeerUnreachable,
    PeerUp,
    item_from_entry,
)
from .live import LiveGroup
from .overlay import ANTI_ENTROPY, Overlay
from .transport import SecureStream, open_secure_stream, serve_secure

if TYPE_CHECKING:
    from .discovery import Discovery, DiscoveryConfig, DiscoveryEvent

__all__ = [
    "EntriesAdded",
    "GroupSynced",
    "ItemAdded",
    "ItemDeleted",
    "ItemHidden",
    "ItemUpdated",
    "LiveGroup",
    "MemberJoined",
    "MemberLeft",
    "MemberRoleChanged",
    "MembershipChanged",
    "Node",
    "NodeEvent",
    "NodeStatistics",
    "PeerDiscovered",
    "PeerDown",
    "PeerGone",
    "PeerMisbehaved",
    "PeerUnreachable",
    "PeerUp",
    "open_node",
]

logger = logging.getLogger(__name__)

#: Seconds of quiet after which gathered catch-up entries are ingested.
FLUSH_AFTER = 0.01
#: CLOSE code of a session ended because the peer's access to a group changed
#: (removed, banned, or an invitee now a member); the reason names the group.
CLOSE_ACCESS = 0x8001
#: Replies waiting for a peer that does not read, before it counts as flooding.
MAX_QUEUED_BYTES = 4 * 1024 * 1024
#: CPU share (06 H14): the work a peer's messages cause (decoding, verifying, storing,
#: reading what it asks for) may use this share of one core over time, after a burst of
#: ``CPU_BURST`` seconds; past it, the node reads from that peer only as fast as the
#: share allows. Valid work is not misbehaviour (a large catch-up is honest): the peer
#: is paced, not refused, and the others keep the rest of the core.
CPU_SHARE: Final = 0.5
CPU_BURST: Final = 5.0
#: Longest single pause, so that the reader keeps its liveness and stall clocks.
CPU_PAUSE_MAX: Final = 1.0
_T = TypeVar("_T")
#: Failed dials in a row after which an address found by discovery is left alone
#: (until its node advertises again).
MAX_HINT_FAILURES = 5
#: First and longest wait of a dial loop between attempts (doubling in between).
DIAL_BACKOFF = (0.25, 30.0)
#: A connection that lasted this long (or reached live sync) served: the dial loop's
#: backoff starts again from the shortest wait after it.
SERVED_AFTER = 10.0
#: Seconds a connection whose liveness deadline passed is still read, for frames
#: that arrived while the reader was busy, before it counts as silent.
LIVENESS_GRACE = 0.05
#: Longest wait (s) of a session for another session's catch-up of the same group to
#: end before it offers its own tips (at most a third of the stall timeout).
OFFER_BOUND = 5.0
#: Queued messages are joined into one write up to this many bytes (one DATA record
#: carries at most 65,518, spec/05-channel.md 5.5).
COALESCE_BYTES = 65_000
#: Connections a node holds at most by default (gossip keeps 5 neighbours per group;
#: the rest is room for requests under way and for peers outside gossip).
MAX_CONNECTIONS = 12
#: Gossip as spec/07-gossip.md 7.6 gives it (``open_node(gossip=None)`` turns it off).
DEFAULT_GOSSIP: Final = GossipConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatistics:
    peers: tuple[bytes, ...]
    #: Sync protocol bytes (plaintext messages), all connections so far.
    bytes_sent: int
    bytes_received: int
    #: Bytes on the wire (handshakes, record framing and tags included).
    wire_bytes_sent: int
    wire_bytes_received: int
    entries_received: int
    entries_accepted: int
    refused_peers: int
    #: Connections refused before their handshake (spec/05-channel.md 5.6.1).
    refused_connections: int = 0
    #: Gossip: this node's neighbours per group it gossips in (spec/07-gossip.md).
    neighbours: Mapping[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    #: Gossip: anti-entropy rounds that synced with a peer (07 7.12 N10).
    anti_entropy_rounds: int = 0
    #: Seconds the node held reads from peers past their CPU share (06 H14).
    cpu_paced_seconds: float = 0.0


@dataclass(slots=True, eq=False)
class _Conn:
    peer_id: bytes
    stream: SecureStream
    replicator: Replicator
    address: tuple[str, int]
    outbound: bool
    queue: deque[bytes] = field(default_factory=deque)
    wake: trio.Event = field(default_factory=trio.Event)
    synced_announced: set[bytes] = field(default_factory=set)
    queued_bytes: int = 0
    scope: trio.CancelScope | None = None
    closing_reason: str | None = None
    closing_code: int = CloseCode.GOING_AWAY
    #: Close once what is queued is sent (the entry that ended the peer's access is
    #: delivered; nothing after it is).
    drain_then_close: bool = False
    #: ``trio.current_time()`` of the last send (a keepalive follows an idle spell).
    last_sent: float = 0.0
    #: Entries received counted into the node's statistics so far.
    counted_received: int = 0
    #: Readers applying a large batch from this peer in slices (no GroupSynced then).
    tracking: int = 0
    #: When this session started waiting to offer tips (another session catches the
    #: same group up), and whether the connection ended.
    waiting_since: float | None = None
    ended: bool = False
    #: CPU share (06 H14): seconds of CPU this peer may still use before its reads are
    #: paced, when that was last refilled, and CPU used since.
    cpu_tokens: float = CPU_BURST
    cpu_at: float = 0.0
    cpu_used: float = 0.0

    def send_later(self, data: bytes) -> None:
        if data:
            self.queue.append(data)
            self.queued_bytes += len(data)
            self.wake.set()
            if self.queued_bytes > MAX_QUEUED_BYTES:
                raise RemoteProtocolError(
                    ErrorCode.FLOOD,
                    f"peer does not read: {self.queued_bytes} bytes of replies are waiting",
                    expected=MAX_QUEUED_BYTES,
                    found=self.queued_bytes,
                )


class _Refused(Exception):
    pass


class _Silent(Exception):
    """Nothing at all arrived for the liveness timeout: the peer or the link is gone
    (a fault, not misbehaviour)."""


class Node:
    """A running node. Made by :func:`open_node`; do not construct directly."""

    def __init__(
        self,
        *,
        store: Store,
        identity: KeyPair,
        groups: Iterable[bytes],
        nursery: trio.Nursery,
        stall_timeout: float,
        ban_seconds: float,
        forward: Callable[[bytes, Entry], bool | Entry | None] | None,
        event_buffer: int,
        membership: bool,
        keepalive: float = 15.0,
        liveness_timeout: float = 45.0,
        gossip: GossipConfig | None = None,
        max_connections: int = MAX_CONNECTIONS,
        cpu_share: float = CPU_SHARE,
        cpu_burst: float = CPU_BURST,
    ) -> None:
        self.store = store
        self._cpu_share = cpu_share
        self._cpu_burst = cpu_burst
        self._cpu_paced = 0.0
        self.identity = identity
        self._signer = crypto.Ed25519Signer(identity.seed())
        self.logs: dict[bytes, GroupLog] = {g: GroupLog(store, g) for g in groups}
        self._nursery = nursery
        self._lock = trio.Lock()
        #: Held while a bulk window waits for and holds ``_lock`` (one at a time).
        self._bulk = trio.Lock()
        self._conns: dict[bytes, _Conn] = {}
        self._subscribers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._event_buffer = event_buffer
        self._banned: dict[bytes, float] = {}
        self._stall_timeout = stall_timeout
        self._ban_seconds = ban_seconds
        self._keepalive = keepalive
        self._liveness_timeout = liveness_timeout
        self._offer_bound = min(OFFER_BOUND, stall_timeout / 3)
        #: Per group: the session reconciling it now (offered, not live yet) and since
        #: when (time.monotonic: the gate is asked from worker threads).
        self._offering: dict[bytes, tuple[_Conn, float]] = {}
        self._offering_lock = threading.Lock()
        self._forward = forward
        #: This member's keys for encrypted groups (spec/12-encryption.md), kept in
        #: the store's sealed keyring.
        self.keys: Keychain | None = Keychain(store, identity) if membership else None
        #: Per group: membership and content state, fed with every stored entry.
        self.content: dict[bytes, ContentMachine] = (
            {g: ContentMachine(self.keys) for g in self.logs} if membership else {}
        )
        #: Groups whose key duties (W1, W4) are to be looked at.
        self._key_work: set[bytes] = set()
        self._track_membership = membership
        self._roles: dict[bytes, dict[bytes, Role]] = {}
        #: Per group: the items last announced (application events diff against it).
        self._items: dict[bytes, dict[bytes, Item | None]] = {}
        #: Per group: items announced sealed (no key for them then), so that the key's
        #: arrival is announced as an update (spec/12-encryption.md).
        self._sealed: dict[bytes, set[bytes]] = {}
        #: Per group: peers with which reconciliation finished (live now).
        self._synced: dict[bytes, set[bytes]] = {}
        #: Set (and replaced) whenever state a waiter may look at changes.
        self._changed = trio.Event()
        self._dropped: dict[bytes, set[bytes]] = {}
        self._bytes_sent = 0
        self._bytes_received = 0
        self._entries_received = 0
        self._entries_accepted = 0
        self._refused = 0
        self._wire_closed = [0, 0]
        self._conn_gone = trio.Event()
        self.address: tuple[str, int] = ("", 0)
        self._dialing: set[tuple[str, int]] = set()
        #: Groups being joined, with their codes (proofs go into every HELLO).
        self._joining: dict[bytes, InvitationCode] = {}
        #: Address -> (failures in a row, when the next attempt is due).
        self._dial_failed: dict[tuple[str, int], tuple[int, float]] = {}
        #: Addresses given with add_peer (dialled for ever); the others came from
        #: discovery: address -> the adverts naming it (name -> their groups).
        self._static: set[tuple[str, int]] = set()
        self._hints: dict[tuple[str, int], dict[str, tuple[bytes, ...]]] = {}
        #: mDNS discovery, when open_node was given a DiscoveryConfig.
        self.discovery: Discovery | None = None
        #: Gossip (spec/07-gossip.md) for the groups this node is a member of; None
        #: floods every new entry to every live session instead (06 6.11).
        self.overlay: Overlay | None = (
            Overlay(self, gossip) if gossip is not None and membership else None
        )
        self.max_connections = max_connections
        #: Addresses the dial loops reached at least once.
        self._contacted: set[tuple[str, int]] = set()
        #: Set once the node listens (gossip needs the address it gives peers).
        self._running = False
        self._offers_ingested = 0
        #: Connections the listener refused before their handshake (admission).
        self._refused_accepts = 0

    # -- public API

    @property
    def peer_id(self) -> bytes:
        return self.identity.public_key

    def peers(self) -> list[bytes]:
        """Member ids of the peers connected now."""
        return list(self._conns)

    def subscribe(self) -> trio.MemoryReceiveChannel[NodeEvent]:
        """A channel of :data:`NodeEvent`. A subscriber that falls more than the node's
        ``event_buffer`` events behind is closed (it sees ``EndOfChannel``)."""
        send, receive = trio.open_memory_channel[NodeEvent](self._event_buffer)
        self._subscribers.append(send)
        return receive

    async def append(self, group: bytes, kind: int, body: bytes = b"") -> Entry:
        """Append an entry as this node's member (durably) and push it to live peers.

        Low level: nothing checks that the group's rules allow it. Applications use
        :meth:`group` and its methods, which refuse what the rules would void."""
        log = self._log(group)
        # A peer's batch still being written: waited for before the lock, so that
        # others can go on meanwhile.
        if log.inflight is not None:
            await trio.to_thread.run_sync(log.wait_written)
        entries = await self._write(group, lambda: [log.append(self.identity, kind, body)])
        return entries[0]

    def group(self, group: bytes) -> LiveGroup:
        """The application handle of a group this node replicates."""
        self._log(group)
        return LiveGroup(self, group)

    async def act(self, group: bytes, plan: Callable[[Planner], Intent]) -> Entry:
        """Plan an entry on the group's current state (``plan`` raises
        :class:`~p2pcomm.errors.RefusedError` to refuse), append it durably and push
        it to live peers. What every :class:`LiveGroup` write does."""
        log = self._log(group)
        machine = self.content.get(group)
        if machine is None:
            raise P2PCommError(ErrorCode.BAD_STATE, "this node does not track membership")
        entries = await self._write(group, lambda: self._plan_and_append(log, machine, plan))
        return entries[-1]

    async def _write(self, group: bytes, write: Callable[[], list[Entry]]) -> list[Entry]:
        """Run ``write`` (appending to ``group``'s log) in a worker thread with the node
        lock held, feed what it wrote to the group's state, and push it to peers."""
        async with self._lock:
            entries = await trio.to_thread.run_sync(write)
            await self._track(group, entries, origin=None)
        if entries:
            self._stored(group, entries, origin=None)
            self._recheck_access(group)
        return entries

    def _plan_and_append(
        self, log: GroupLog, machine: ContentMachine, plan: Callable[[Planner], Intent]
    ) -> list[Entry]:
        state = _state_of(machine, log.group)
        now = now_ms()
        intent = plan(planner_for(self.store, log.group, state, machine.view(), self.identity, now))
        _catch_up(machine, log)
        return append_intent_all(log, self.identity, intent, now, machine)

    async def create_group(
        self,
        name: str,
        *,
        description: str = "",
        rules: str = "",
        founder_name: str = "",
        encrypted: bool = True,
        history: str = "full",
    ) -> LiveGroup:
        """Start a new group with this node's member as founder, and replicate it;
        ``encrypted`` as :meth:`p2pcomm.community.Group.create`."""

        def create() -> bytes:
            return Group.create(
                self.store,
                self.identity,
                name,
                description=description,
                rules=rules,
                founder_name=founder_name,
                encrypted=encrypted,
                keys=self.keys,
                history=history,
            ).id

        async with self._lock:
            gid = await trio.to_thread.run_sync(create)
        await self.add_group(gid)
        return LiveGroup(self, gid)

    async def join(
        self, code: InvitationCode | str, *, name: str = "", dial: bool = True
    ) -> LiveGroup:
        """Join a group with an invitation code: dial its address hints (with
        ``dial``), fetch the group from whichever member answers, write the JOIN, and
        return once a member's node holds it. Cancel it (``trio.move_on_after``) to
        give up; what was fetched stays stored and the join can be resumed."""
        if isinstance(code, str):
            code = InvitationCode.parse(code)
        group = code.group
        self._joining[group] = code
        await self.add_group(group)
        if dial:
            for host, port in code.hint_addresses():
                self.add_peer(host, port)
        machine = self.content[group]
        me = self.peer_id
        while True:
            state = machine.membership.state if machine.membership.group is not None else None
            if state is not None and me in state.members:
                break  # joined already (an earlier, interrupted run)
            if (
                state is not None
                and state.invitation_for_key(code.public_key) is not None
                and self._synced.get(group)
            ):
                entry = await self.act(group, lambda p: p.join(code, name=name))
                await self.wait_held(group, entry.id)
                # An encrypted group: a member's node hands the newcomer the key at once
                # (12.11 W4); wait a moment for it, so that the newcomer reads at once.
                with trio.move_on_after(WELCOME_WAIT):
                    await self._wait_readable(group)
                break
            await self._wait_change()
        return LiveGroup(self, group)

    async def rotate_keys(self, group: bytes) -> Entry:
        """A fresh receive key and a new epoch for ``group`` in one KEYS entry, pushed to
        peers (:meth:`p2pcomm.community.Group.rotate_keys`)."""
        log = self._log(group)
        machine = self.content[group]

        def write() -> list[Entry]:
            _catch_up(machine, log)
            return write_keys(log, self.identity, machine, now_ms(), rotate=True)

        entries = await self._write(group, write)
        if not entries:
            raise NotFoundError(
                ErrorCode.NOT_FOUND, "no keys to rotate: not an encrypted group's member here"
            )
        return entries[-1]

    async def _wait_readable(self, group: bytes) -> None:
        """Until this member holds the key of its group's current epoch (at once for a
        plaintext group)."""
        while True:
            machine = self.content.get(group)
            enc = machine.encryptor if machine is not None else None
            log = self.logs.get(group)
            if enc is None or log is None or not enc.encrypted:
                return
            try:
                K = enc.cut(log.next_position(self.peer_id)[1])
            except ValidationError:
                K = None
            if K is not None:
                enc.learn()
                if enc.keys.epoch_key(K) is not None:
                    return
            await self._wait_change()

    # -- key duties (spec/12-encryption.md 12.11 W1, W4)

    async def _run_key_duties(self) -> None:
        """Publish this member's receive key where it has none (W1), and hand the
        current key (W4), and past keys (W5), to members who lack them: the holder first
        in id order at once,
        the others after :data:`KEY_STAGGER` seconds per rank, each checking again
        first, so that usually one forward is written."""
        pending: set[bytes] = set()
        async with trio.open_nursery() as nursery:
            while True:
                for group in list(self.content):
                    if group in pending:
                        continue
                    rank = self._key_rank(group)
                    if rank is None:
                        continue
                    pending.add(group)
                    nursery.start_soon(self._key_duty, group, rank, pending)
                await self._wait_change()

    def _key_rank(self, group: bytes) -> int | None:
        """None if nothing is due in ``group``; 0 to publish; else the rank of this
        member among the holders of the current key (0 first)."""
        machine = self.content.get(group)
        enc = machine.encryptor if machine is not None else None
        log = self.logs.get(group)
        if enc is None or log is None or not enc.encrypted:
            return None
        try:
            K = enc.cut(log.next_position(self.peer_id)[1])
        except ValidationError:
            return None
        view = enc.view
        if self.peer_id not in view.members(K):
            return None
        if not enc.has_receive_key(K):
            return 0
        if enc.duty(K) is None:
            return None
        holders = sorted(view.holders(K) & view.members(K))
        return holders.index(self.peer_id) if self.peer_id in holders else len(holders)

    async def _key_duty(self, group: bytes, rank: int, pending: set[bytes]) -> None:
        try:
            if rank:
                await trio.sleep(rank * KEY_STAGGER)
            log = self.logs[group]
            machine = self.content[group]

            def write() -> list[Entry]:
                if self._key_rank(group) is None:
                    return []  # done meanwhile, by this node or another
                now = now_ms()
                return write_keys(log, self.identity, machine, now, publish=True) or write_keys(
                    log, self.identity, machine, now, forward=True
                )

            await self._write(group, write)
        except P2PCommError as exc:
            logger.warning("key duty in group %s failed: %s", group.hex()[:16], exc)
        finally:
            pending.discard(group)
            self._note_change()

    async def wait_synced(self, group: bytes, peer: bytes | None = None) -> bytes:
        """Wait until ``group`` is in sync with ``peer`` (any peer if None): its
        reconciliation finished and the session is live. Returns the peer's id."""
        self._log(group)
        while True:
            live = self._synced.get(group, set())
            if peer is None and live:
                return min(live)
            if peer is not None and peer in live:
                return peer
            await self._wait_change()

    async def wait_held(self, group: bytes, entry_id: bytes) -> bytes:
        """Wait until a member's node (a connected peer that is a member of ``group``)
        shows it holds entry ``entry_id``, which this node holds. Returns its id."""
        asked: set[int] = set()  # sessions asked (a new session is asked again)
        while True:
            machine = self.content.get(group)
            members = machine.state.members if machine is not None else {}
            for peer, conn in list(self._conns.items()):
                rep = conn.replicator
                if entry_id in rep.confirmed and peer in members:
                    return peer
                if id(rep) not in asked and group in rep.synced and peer in members:
                    asked.add(id(rep))
                    conn.send_later(rep.confirm(group, [entry_id]))
            await self._wait_change()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def add_group(self, group: bytes) -> None:
        """Start replicating ``group``. A session covers the groups of its start, so
        connections open now are closed (cleanly: they are dialled again at once) to
        start sessions that include it."""
        if group not in self.logs:
            async with self._lock:
                self.logs[group] = await trio.to_thread.run_sync(GroupLog, self.store, group)
                if self._track_membership:
                    self.content[group] = ContentMachine(self.keys)
                    await self._load(group)
            for conn in list(self._conns.values()):
                conn.closing_reason = "starting a session with a new group"
                if conn.scope is not None:
                    conn.scope.cancel()
            if self.discovery is not None:
                self.discovery.set_groups(self.logs)

    async def connect(self, host: str, port: int) -> bytes:
        """Dial once and run the connection in the background; returns the peer id."""
        stream = await self._open(host, port)
        peer = stream.peer_id
        self._nursery.start_soon(self._run_connection, stream, True, (host, port))
        return peer

    def add_peer(self, host: str, port: int) -> None:
        """Keep a connection to ``host:port``, reconnecting with backoff. Adding an
        address already kept does nothing."""
        self._static.add((host, port))
        if (host, port) in self._dialing:
            return
        self._dialing.add((host, port))
        self._nursery.start_soon(self._dial_loop, host, port)

    def discovered(self) -> dict[tuple[str, int], tuple[bytes, ...]]:
        """Addresses discovery found now (their adverts name groups of this node):
        ``(host, port)`` -> those groups."""
        return {
            a: tuple(sorted({g for groups in adverts.values() for g in groups}))
            for a, adverts in self._hints.items()
        }

    def dial_failures(self) -> dict[tuple[str, int], tuple[int, float]]:
        """Kept addresses that do not answer now: ``(host, port)`` -> (failed attempts
        in a row, seconds until the next one)."""
        now = trio.current_time()
        return {a: (n, max(0.0, at - now)) for a, (n, at) in self._dial_failed.items()}

    def statistics(self) -> NodeStatistics:
        live = list(self._conns.values())
        return NodeStatistics(
            peers=tuple(self._conns),
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            wire_bytes_sent=self._wire_closed[0] + sum(c.stream.wire_bytes_sent for c in live),
            wire_bytes_received=self._wire_closed[1]
            + sum(c.stream.wire_bytes_received for c in live),
            entries_received=self._entries_received + self._gossip_duplicates(),
            entries_accepted=self._entries_accepted,
            refused_peers=self._refused,
            refused_connections=self._refused_accepts,
            neighbours=(
                {g: tuple(ov.neighbours(g)) for g in ov.groups}
                if (ov := self.overlay) is not None
                else {}
            ),
            anti_entropy_rounds=ov.anti_entropy_rounds if ov is not None else 0,
            cpu_paced_seconds=self._cpu_paced,
        )

    def _refused_at_accept(self, reason: Refusal, host: str) -> None:
        self._refused_accepts += 1

    def _gossip_duplicates(self) -> int:
        """Entries that came in gossip messages and were not ingested (copies of what
        was held or offered already): received all the same."""
        if self.overlay is None:
            return 0
        return max(0, self.overlay.payloads_received - self._offers_ingested)

    def is_synced(self, peer_id: bytes) -> bool:
        """Whether every shared group with ``peer_id`` finished reconciling."""
        conn = self._conns.get(peer_id)
        # Live means both DONEs went out and came in, so every bulk send is over (its
        # job may not have been stepped past its last chunk yet).
        return conn is not None and conn.replicator.session.all_live

    # -- internals

    def _log(self, group: bytes) -> GroupLog:
        log = self.logs.get(group)
        if log is None:
            raise KeyError(f"this node does not replicate group {group.hex()[:16]}")
        return log

    def _emit(self, event: NodeEvent) -> None:
        for ch in list(self._subscribers):
            try:
                ch.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(ch)
                ch.close()

    def _outgoing(self, group: bytes, entry: Entry) -> bool | Entry | None:
        """What peers get of an entry: everything if its author could write it; the
        header alone if membership voids it (its content is neither shown nor forwarded,
        but entries that link to it stay acceptable); and the user's policy on top."""
        machine = self.content.get(group)
        # 04 F2: a void operation of an encrypted group keeps its body: its key block
        # counts in every later frontier (12 F1), void or not.
        if (
            machine is not None
            and entry.body is not None
            and not machine.should_forward(entry.id)
            and not machine.keeps_body(entry)
        ):
            entry = entry.without_body()
        if self._forward is not None:
            return self._forward(group, entry)
        return entry

    def _forwards_whole(self, group: bytes, entry: Entry) -> bool:
        """Whether peers get ``entry`` as it is (:meth:`_outgoing`): what gossip may
        carry."""
        out = self._outgoing(group, entry)
        return out is True or out == entry

    def membership(self, group: bytes) -> ContentMachine:
        """Membership and content state of ``group`` (when the node tracks them)."""
        return self.content[group]

    async def _track(
        self, group: bytes, entries: Sequence[Entry], *, origin: bytes | None, announce: bool = True
    ) -> None:
        """Feed stored entries to membership; announce changes; drop deleted bodies.
        Call with the node lock held."""
        machine = self.content.get(group)
        if machine is None or not entries:
            return
        # All of it on a worker thread: the event loop keeps serving connections.
        applied = await trio.to_thread.run_sync(
            _apply,
            machine,
            list(entries),
            self._dropped.setdefault(group, set()),
            self._roles.get(group, {}),
            self._items.setdefault(group, {}),
            self._sealed.setdefault(group, set()),
        )
        roles, drop = applied.roles, applied.drop
        if drop:
            # Before the events: whoever hears ItemDeleted finds the body gone.
            log = self.logs[group]
            await trio.to_thread.run_sync(_drop_bodies, log, sorted(drop))
            self._dropped[group] |= drop
        before = self._roles.get(group, {})
        old_items = self._items.get(group, {})
        self._items[group] = applied.items
        if roles != before:
            self._roles[group] = roles
            self._gossip_membership(group)
            if announce:
                self._emit(
                    MembershipChanged(
                        group=group,
                        members=roles,
                        added=frozenset(roles.keys() - before.keys()),
                        removed=frozenset(before.keys() - roles.keys()),
                    )
                )
                self._member_events(group, before, roles, applied)
        if announce and applied.added is not None:
            opener = _opener(machine)
            if len(applied.added) > ONE_BY_ONE:
                self._emit(
                    ItemsAdded(group=group, entries=applied.added, origin=origin, opener=opener)
                )
            else:
                # A few posts (live ones): one ItemAdded each, as a diff would give.
                for e in applied.added:
                    item = item_from_entry(e, opener)
                    if item is not None:
                        self._items[group][e.id] = item
                        self._emit(ItemAdded(group=group, item=item, origin=origin))
        elif announce and applied.items is not old_items:
            self._item_events(group, old_items, applied.items, origin, self._sealed.get(group))
        self._note_change()

    def _wait_written(self) -> None:
        for log in list(self.logs.values()):
            log.wait_written()

    async def _track_accepted(self, conn: _Conn, accepted: list[Accepted]) -> None:
        """Feed what ``conn``'s replicator stored to the groups' state. Called with the
        lock held: a small batch is tracked at once; a large one releases the lock and
        goes in slices (:meth:`_track_in_slices`). Meanwhile the session's groups are
        not announced synced (their entries are not all applied yet)."""
        if all(len(a.entries) <= TRACK_SLICE for a in accepted):
            for a in accepted:
                await self._track(a.group, a.entries, origin=conn.peer_id)
            return
        conn.tracking += 1
        self._lock.release()
        try:
            for a in accepted:
                await self._track_in_slices(a.group, a.entries, origin=conn.peer_id)
        finally:
            await self._lock.acquire()
            conn.tracking -= 1

    async def _track_in_slices(
        self, group: bytes, entries: Sequence[Entry], *, origin: bytes | None
    ) -> None:
        """:meth:`_track` for entries a peer sent, each part under the lock: the posts
        and replies :data:`TRACK_SLICE` at a time, after everything else in one part
        (each part with other kinds rebuilds the group's view). A catch-up of
        thousands of posts then holds the node's own posts and other peers' pushes up
        for one slice at most, not for all of it. The membership machine takes entries
        in any order, so what runs in between is applied correctly."""
        if len(entries) <= TRACK_SLICE:
            async with self._lock:
                await self._track(group, entries, origin=origin)
            return
        posts = [e for e in entries if e.header.kind in _ITEM_KINDS]
        others = [e for e in entries if e.header.kind not in _ITEM_KINDS]
        if others:
            async with self._lock:
                await self._track(group, others, origin=origin)
        for i in range(0, len(posts), TRACK_SLICE):
            async with self._lock:
                await self._track(group, posts[i : i + TRACK_SLICE], origin=origin)

    def _gossip_membership(self, group: bytes) -> None:
        """Gossip runs for the groups this node is a member of (it admits members
        only, and so do they)."""
        ov = self.overlay
        if ov is None or not self._running:
            return
        if self.peer_id in self._roles.get(group, {}):
            if group in ov.groups:
                return
            ov.start(
                group,
                lambda peer: peer in self._roles.get(group, {}),
                lambda: len(self._roles.get(group, {})),
            )
            # Sessions live already (this node just became a member): join through
            # the contacts among them.
            for conn in list(self._conns.values()):
                if group in conn.synced_announced:
                    ov.link_up(group, conn, self._is_contact(conn))
        else:
            ov.stop(group)

    def _is_contact(self, conn: _Conn) -> bool:
        """Whether this node dialled ``conn`` to an address it was given or found (a
        contact to join gossip through, spec/07-gossip.md 7.12 N4)."""
        return conn.outbound and (conn.address in self._static or conn.address in self._hints)

    def _needs_contacts(self) -> bool:
        """Whether the configured and discovered addresses are to be kept connected:
        always without gossip, and while some group has no gossip neighbour (or this
        node is not a member of it yet: joining runs over sync alone)."""
        ov = self.overlay
        if ov is None:
            return True
        return any(g not in ov.groups for g in self.logs) or ov.isolated()

    async def _open(self, host: str, port: int, *, expected: bytes | None = None) -> SecureStream:
        return await open_secure_stream(
            host, port, identity=self._signer, expected_peer_id=expected
        )

    def _close(self, conn: _Conn, reason: str) -> None:
        conn.closing_reason = reason
        if conn.scope is not None:
            conn.scope.cancel()

    async def _load(self, group: bytes) -> None:
        """Feed what the store already holds of ``group`` to its membership state."""
        entries = await trio.to_thread.run_sync(_all_entries, self.store, group)
        await self._track(group, entries, origin=None, announce=False)

    def _grant(self, group: bytes, peer: bytes, proofs: tuple[bytes, ...], h: bytes) -> Grant:
        """What ``peer`` may read of ``group`` now (``core/access.py``)."""
        machine = self.content.get(group)
        state = _held_state(machine, group)
        store = self.store

        def header(eid: bytes) -> Header | None:
            e = store.get_entry(group, eid)
            return None if e is None else e.header

        return grant_for(
            state,
            peer,
            proofs=proofs,
            session_hash=h,
            now_ms=now_ms(),
            cut_of=lambda eid: causal_cut(eid, header),
            removals=(lambda _p: ()) if machine is None else machine.membership.removals,
        )

    def _refuse(
        self, group: bytes, entries: list[Entry], peer: bytes, known: set[bytes]
    ) -> list[Entry]:
        return admit(group, _held_state(self.content.get(group), group), entries, peer, known)

    def _invitee_proofs(self, session_hash: bytes) -> list[bytes]:
        return [
            invitee_proof(code.keypair(), session_hash, group, self.peer_id)
            for group, code in sorted(self._joining.items())[:MAX_PROOFS]
        ]

    def _recheck_access(self, group: bytes) -> None:
        """Close the sessions whose peer's access to ``group`` changed: a removed or
        banned member is cut off at once; an admitted invitee starts a full session."""
        if not self._track_membership:
            return  # no membership view: the log is served to every peer
        roles = self._roles.get(group, {})
        for conn in list(self._conns.values()):
            rep = conn.replicator
            old = rep.grants.get(group)
            if old is None or conn.closing_reason is not None:
                continue
            member = conn.peer_id in roles
            if (old.access is Access.MEMBER and member) or (
                old.access is Access.NONE and not member and not rep.peer_proofs
            ):
                continue  # unchanged, known without the full decision (a batch's cost)
            new = self._grant(group, conn.peer_id, rep.peer_proofs, rep.session_hash)
            if new.access is old.access:
                continue
            if new.full and group not in rep.withheld:
                rep.grants[group] = new  # nothing was held back: widen in place
                continue
            if new.full:
                conn.closing_reason = (
                    f"access changed: now {new.access.value} of group {group.hex()[:16]}"
                )
            else:
                # What was queued for it while the group reconciles (the entry that
                # ended its access among it) goes now; nothing more of the group goes
                # to this peer after that.
                if group not in rep.synced:
                    conn.send_later(rep.send_queued(group))
                rep.grants[group] = new
                conn.closing_reason = (
                    f"{ErrorCode.UNAUTHORIZED.value}: no longer served group {group.hex()[:16]} "
                    f"(access {new.access.value})"
                )
            conn.closing_code = CLOSE_ACCESS
            conn.drain_then_close = True
            conn.wake.set()

    def _member_events(
        self,
        group: bytes,
        before: Mapping[bytes, Role],
        after: Mapping[bytes, Role],
        applied: _Applied,
    ) -> None:
        for m in sorted(after.keys() - before.keys()):
            self._emit(
                MemberJoined(group=group, member=m, role=after[m], name=applied.names.get(m, ""))
            )
        for m in sorted(before.keys() & after.keys()):
            if before[m] != after[m]:
                self._emit(MemberRoleChanged(group=group, member=m, old=before[m], new=after[m]))
        for m in sorted(before.keys() - after.keys()):
            if m in applied.expelled:
                how = "expelled"
            elif m in applied.banned:
                how = "banned"
            elif m in applied.leavers:
                how = "left"
            else:
                how = "removed"
            self._emit(MemberLeft(group=group, member=m, how=how))

    def _item_events(
        self,
        group: bytes,
        before: Mapping[bytes, Item | None],
        after: Mapping[bytes, Item | None],
        origin: bytes | None,
        sealed: set[bytes] | None = None,
    ) -> None:
        for iid, item in after.items():
            if item is None:
                continue
            if iid not in before:
                self._emit(ItemAdded(group=group, item=item, origin=origin))
                continue
            old = before[iid]
            if old is None:  # announced in a catch-up's batch, not read since
                if item.hidden:
                    self._emit(ItemHidden(group=group, item=item, hidden=True))
                elif sealed and iid in sealed and item.text is not None:
                    # Announced sealed; its key came since.
                    sealed.discard(iid)
                    self._emit(ItemUpdated(group=group, item=item))
            elif old.hidden != item.hidden:
                self._emit(ItemHidden(group=group, item=item, hidden=item.hidden))
            elif old != item:
                self._emit(ItemUpdated(group=group, item=item))
        for iid in before.keys() - after.keys():
            self._emit(ItemDeleted(group=group, item_id=iid))

    def _stored(
        self, group: bytes, entries: Sequence[Entry], origin: bytes | None, *, live: bool = True
    ) -> None:
        """Announce stored entries and push them to the other peers: all of them when
        they arrived live (or were appended here); entries caught up on only to the
        peers whose tips do not show they hold them (no repair storm)."""
        if not entries:
            return
        self._emit(EntriesAdded(group=group, entries=tuple(entries), origin=origin))
        ov = self.overlay
        gossiped: set[bytes] = set()
        if ov is not None and group in ov.groups:
            # Gossip carries new entries to the group's neighbours (spec 07); sessions
            # outside it (invitees, peers that do not gossip) are pushed to as before,
            # and so is what was caught up on (06 L1: only to peers that lack it).
            ov.stored(group, entries, own=origin is None, live=live)
            gossiped = ov.neighbours(group)
        for peer, conn in list(self._conns.items()):
            if peer == origin:
                continue
            if peer in gossiped and live:
                continue
            try:
                conn.send_later(conn.replicator.push(group, list(entries), if_lacking=not live))
            except RemoteProtocolError as exc:  # that peer stopped reading
                self._close(conn, f"{exc.code.value}: {exc.message}")

    async def _dial_loop(self, host: str, port: int) -> None:
        """Keep ``host:port`` connected. The wait between attempts doubles up to 30 s
        and starts again from 0.25 s only after a connection that served (it reached
        live sync or lasted :data:`SERVED_AFTER`): a connection refused after its
        handshake ("already connected", "misbehaved recently", access) backs off like
        a failed dial. While another connection to the same peer lasts (it dialled us,
        or a crossing dial won), the loop waits for it to end instead of dialling."""
        delay = DIAL_BACKOFF[0]
        address = (host, port)
        try:
            while self._keep_dialing(address):
                while self._dialled_once(address) and not self._needs_contacts():
                    # Gossip keeps this node connected: the address is dialled again
                    # only if some group loses every neighbour.
                    await self._wait_change()
                    if not self._keep_dialing(address):
                        return
                try:
                    stream = await self._open(host, port)
                except (OSError, P2PCommError, trio.BrokenResourceError) as exc:
                    logger.debug("dial %s:%d failed: %s", host, port, exc)
                    wait = delay * (0.5 + random.random())
                    failures = self._dial_failed.get(address, (0, 0.0))[0] + 1
                    self._dial_failed[address] = (failures, trio.current_time() + wait)
                    if failures == 1:  # said once; status() has the rest
                        self._emit(
                            PeerUnreachable(address=address, reason=_why(exc), retry_in=wait)
                        )
                    self._note_change()  # dial_failures() changed
                    if address not in self._static and failures >= MAX_HINT_FAILURES:
                        return  # a hint that does not answer: wait for its next advert
                else:
                    self._dial_failed.pop(address, None)
                    self._contacted.add(address)
                    peer = stream.peer_id
                    if await self._run_connection(stream, True, address):
                        delay = DIAL_BACKOFF[0]
                    while peer in self._conns:
                        await self._conn_gone.wait()
                    wait = delay * (0.5 + random.random())
                await trio.sleep(wait)
                delay = min(delay * 2, DIAL_BACKOFF[1])
        finally:
            self._dialing.discard(address)
            if address not in self._static:
                self._dial_failed.pop(address, None)

    def _keep_dialing(self, address: tuple[str, int]) -> bool:
        return address in self._static or address in self._hints

    def _dialled_once(self, address: tuple[str, int]) -> bool:
        return address in self._contacted

    # -- discovery

    async def _run_discovery(
        self,
        config: DiscoveryConfig,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        from .discovery import open_discovery

        port = self.address[1] if self.address[1] else None
        async with open_discovery(config, groups=self.logs, port=port) as discovery:
            self.discovery = discovery
            task_status.started()
            try:
                async for event in discovery:
                    self._on_discovery(event)
            finally:
                self.discovery = None

    def _on_discovery(self, event: DiscoveryEvent) -> None:
        """Dial what discovery found (with the dial loop: backoff, one per address);
        say when an address is found and when the last advert naming it is gone."""
        from .discovery import PeerFound

        address = event.address
        adverts = self._hints.get(address)
        if isinstance(event, PeerFound):
            if adverts is None:
                adverts = self._hints[address] = {}
                self._emit(PeerDiscovered(address=address, groups=event.groups))
            adverts[event.name] = event.groups
            if address not in self._dialing:
                self._dialing.add(address)
                self._nursery.start_soon(self._dial_loop, *address)
        elif adverts is not None and adverts.pop(event.name, None) is not None and not adverts:
            del self._hints[address]
            self._emit(PeerGone(address=address))
        self._note_change()

    async def _accept(self, stream: SecureStream) -> None:
        try:
            sock = stream.transport
            name = sock.socket.getpeername() if isinstance(sock, trio.SocketStream) else ("", 0)
            address = (str(name[0]), int(name[1]))
        except OSError:
            address = ("", 0)
        await self._run_connection(stream, False, address)

    async def _run_connection(
        self, stream: SecureStream, outbound: bool, address: tuple[str, int]
    ) -> bool:
        """Run one connection until it ends; returns whether it served (reached live
        sync or lasted :data:`SERVED_AFTER`, and was not ended over access)."""
        peer = stream.peer_id
        reason = "closed"
        code: int = CloseCode.NORMAL
        leftover: Replicator | None = None  # to announce what it stored, at the end
        served = False
        started = trio.current_time()
        try:
            if peer == self.peer_id:
                raise _Refused("connected to itself")
            if self._banned.get(peer, -math.inf) > trio.current_time():
                self._refused += 1
                raise _Refused("refused: misbehaved recently")
            if peer not in self._conns and len(self._conns) >= self.max_connections:
                # Either way: a dial of ours that completed while others filled the
                # last places is closed too, so the bound holds (07 N9).
                raise _Refused(f"too many connections ({self.max_connections})")
            existing = self._conns.get(peer)
            if existing is not None:
                # Both may have dialled at once: keep, on both sides, the connection
                # dialled by the smaller member id.
                def dialler(outbound: bool) -> bytes:
                    return self.peer_id if outbound else peer

                if dialler(outbound) < dialler(existing.outbound):
                    existing.closing_reason = "replaced by a simultaneous connection"
                    if existing.scope is not None:
                        existing.scope.cancel()
                    while peer in self._conns:
                        await self._conn_gone.wait()
                else:
                    raise _Refused("already connected")
            cell: list[_Conn] = []
            rep = leftover = Replicator(
                self.logs,
                initiator=outbound,
                session_hash=stream.handshake_hash,
                forward=self._outgoing if (self.content or self._forward) else None,
                peer=peer,
                policy=_Policy(self, peer) if self._track_membership else None,
                proofs=self._invitee_proofs(stream.handshake_hash),
                gate=lambda g: self._may_offer(g, cell[0]),
            )
            conn = _Conn(peer, stream, rep, address, outbound)
            cell.append(conn)
            self._conns[peer] = conn
            self._emit(PeerUp(peer_id=peer, address=address, outbound=outbound))
            try:
                async with self._lock:
                    conn.send_later(rep.start())
                failure: list[BaseException] = []

                async def guarded(
                    task: Callable[[_Conn], Awaitable[None]], scope: trio.CancelScope
                ) -> None:
                    # Whichever task ends first ends the connection; its exception (if
                    # any) is re-raised below, outside the nursery, so it is never
                    # wrapped in an ExceptionGroup.
                    try:
                        await task(conn)
                    except (
                        P2PCommError,
                        trio.BrokenResourceError,
                        trio.ClosedResourceError,
                        _Silent,
                    ) as exc:
                        failure.append(exc)
                    except Exception as exc:  # a bug: end this connection, not the node
                        logger.exception("connection to %s failed", peer.hex()[:16])
                        failure.append(exc)
                    finally:
                        scope.cancel()

                async with trio.open_nursery() as nursery:
                    conn.scope = nursery.cancel_scope
                    if conn.closing_reason is not None or rep.logs.keys() != self.logs.keys():
                        # Asked to close before it could be (a group was added while
                        # this session started without it).
                        conn.closing_reason = conn.closing_reason or "groups changed"
                        nursery.cancel_scope.cancel()
                    nursery.start_soon(guarded, self._writer, nursery.cancel_scope)
                    nursery.start_soon(guarded, self._reader, nursery.cancel_scope)
                served = bool(conn.synced_announced) or (
                    trio.current_time() - started >= SERVED_AFTER
                )
                if conn.closing_code == CLOSE_ACCESS or (
                    stream.close_received is not None and stream.close_received.code == CLOSE_ACCESS
                ):
                    served = False
                if failure:
                    raise failure[0]
                if conn.closing_reason is not None:
                    reason, code = conn.closing_reason, conn.closing_code
                elif (closed := stream.close_received) is not None and closed.reason not in (
                    "",
                    "closed",
                ):
                    reason = f"closed by the peer: {closed.reason}"
            finally:
                conn.ended = True
                self._release(conn, list(rep.logs))
                if self._conns.get(peer) is conn:
                    del self._conns[peer]
                    for live in self._synced.values():
                        live.discard(peer)
                    if self.overlay is not None:
                        self.overlay.conn_down(peer)
                self._conn_gone.set()
                self._conn_gone = trio.Event()
        except _Refused as exc:
            reason, code = str(exc), CloseCode.GOING_AWAY
        except RemoteProtocolError as exc:
            reason = f"{exc.code.value}: {exc.message}"
            code = CloseCode.TIMEOUT if exc.code is ErrorCode.TIMEOUT else CloseCode.PROTOCOL_ERROR
            self._banned[peer] = trio.current_time() + self._ban_seconds
            logger.info("peer %s misbehaved: %s", peer.hex()[:16], reason)
            self._emit(PeerMisbehaved(peer_id=peer, address=address, reason=reason))
        except _Silent as exc:  # a fault (frozen peer, cut link): no ban
            reason = f"{ErrorCode.TIMEOUT.value}: {exc}"
            code = CloseCode.TIMEOUT
        except P2PCommError as exc:  # our side could not go on (store, limits)
            reason = f"{exc.code.value}: {exc.message}"
            code = CloseCode.INTERNAL_ERROR
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = exc.__cause__
            closed = stream.close_received
            if closed is not None:
                # The peer closed while we were sending: a close, not a failure.
                reason = (
                    f"closed by the peer: {closed.reason}"
                    if closed.reason not in ("", "closed")
                    else "closed"
                )
            else:
                reason = f"broken: {cause}" if cause else "broken"
            # A connection that ended without CLOSE (a crash, a cut link) is a fault:
            # only a protocol violation gets the peer refused.
            if isinstance(cause, RemoteProtocolError) and cause.code not in (
                ErrorCode.CLOSED,
                ErrorCode.TRUNCATED,
            ):
                self._banned[peer] = trio.current_time() + self._ban_seconds
        except Exception as exc:
            reason, code = f"internal error: {exc!r}", CloseCode.INTERNAL_ERROR
        finally:
            if leftover is not None:
                with trio.CancelScope(shield=True):
                    await self._announce_leftovers(peer, leftover)
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await stream.aclose(code=code, reason=reason)
            self._wire_closed[0] += stream.wire_bytes_sent
            self._wire_closed[1] += stream.wire_bytes_received
        if reason != "already connected" and reason != "connected to itself":
            self._emit(PeerDown(peer_id=peer, reason=reason))
        return served

    async def _reader(self, conn: _Conn) -> None:
        """Read and process until the stream ends. Two clocks: nothing at all (not a
        keepalive, not a whole frame) for ``liveness_timeout`` is a dead peer or link
        (:class:`_Silent`); no sync bytes for ``stall_timeout`` while a sync is
        unfinished or a sync message is cut in the middle is a stall (``timeout``)."""
        rep = conn.replicator
        stream = conn.stream
        progress = conn.cpu_at = trio.current_time()
        conn.cpu_tokens = self._cpu_burst
        while True:
            if conn.cpu_used:
                await self._pace(conn)
                progress = max(progress, conn.cpu_at)  # a pause of ours is no stall
            if rep.has_deferred:
                # Entries are gathered for one big ingest; if the peer pauses, store
                # what we have rather than wait.
                with trio.move_on_after(FLUSH_AFTER) as scope:
                    data = await stream.receive_some()
                if scope.cancelled_caught:
                    await self._process(conn, None)
                    continue
            else:
                syncing = not rep.session.all_live or rep.has_bulk or rep.session.buffered > 0
                deadline = stream.last_frame_received + self._liveness_timeout
                if syncing:
                    deadline = min(deadline, progress + self._stall_timeout)
                with trio.move_on_at(deadline) as scope:
                    data = await stream.receive_some()
                if scope.cancelled_caught:
                    got: bytes | None = None
                    if trio.current_time() - stream.last_frame_received >= self._liveness_timeout:
                        # Frames may be waiting unread (this task was busy, or the
                        # deadline passed before the read began): read them first.
                        with trio.move_on_after(LIVENESS_GRACE):
                            got = await stream.receive_some()
                        late = trio.current_time() - stream.last_frame_received
                        if got is None and late >= self._liveness_timeout:
                            raise _Silent(f"nothing received for {self._liveness_timeout} s")
                    if got is None:
                        if syncing and trio.current_time() - progress >= self._stall_timeout:
                            if stream.last_frame_received <= progress:
                                # Nothing at all came (not even a keepalive): a frozen
                                # or cut-off peer, a fault rather than a stall.
                                raise _Silent(
                                    f"nothing received for {self._stall_timeout} s during sync"
                                )
                            raise RemoteProtocolError(
                                ErrorCode.TIMEOUT,
                                f"no progress for {self._stall_timeout} s during sync"
                                if not rep.session.all_live or rep.has_bulk
                                else f"a message left unfinished for {self._stall_timeout} s",
                            )
                        continue
                    data = got
            progress = trio.current_time()
            if not data:
                if rep.session.buffered:
                    raise RemoteProtocolError(
                        ErrorCode.TRUNCATED,
                        f"stream ended inside a sync message ({rep.session.buffered} bytes of it)",
                        found=rep.session.buffered,
                    )
                await self._process(conn, None)
                return
            await self._process(conn, data)

    async def _work(self, conn: _Conn, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn(*args)`` in a worker thread and charge its CPU time to ``conn``'s
        peer (06 H14)."""

        def run() -> _T:
            started = time.thread_time()
            try:
                return fn(*args)
            finally:
                conn.cpu_used += time.thread_time() - started

        return await trio.to_thread.run_sync(run)

    async def _pace(self, conn: _Conn) -> None:
        """Hold this peer's next read while it is past its CPU share and others share
        the node with it (06 H14)."""
        now = trio.current_time()
        tokens = min(self._cpu_burst, conn.cpu_tokens + (now - conn.cpu_at) * self._cpu_share)
        conn.cpu_tokens, conn.cpu_at, conn.cpu_used = tokens - conn.cpu_used, now, 0.0
        if len(self._conns) < 2 and not self._lock.statistics().tasks_waiting:
            # Nobody to share with: no pause, and no debt for when somebody comes.
            conn.cpu_tokens = max(conn.cpu_tokens, 0.0)
        elif conn.cpu_tokens < 0:
            pause = min(CPU_PAUSE_MAX, -conn.cpu_tokens / self._cpu_share)
            self._cpu_paced += pause
            await trio.sleep(pause)

    async def _process(self, conn: _Conn, data: bytes | None) -> None:
        """Feed ``data`` to the replicator (None: ingest what it gathered) and act on
        what it stored, refused or finished."""
        rep = conn.replicator
        stats = rep.stats
        rejected_before = stats.entries_rejected - stats.rejections.get("pending-full", 0)
        # Shielded: once entries are stored they are fed to the membership state, even
        # if the connection is cancelled meanwhile (replaced by a crossing dial, say);
        # otherwise the store and the node's view of it would part.
        # A write still in flight (a large batch handed to the store's writer process)
        # that this call's ingest would wait for is waited for here, before the lock,
        # not under it. Only then: reading the next messages overlaps with the write.
        if (data is None or rep.ingest_due(len(data))) and any(
            log.inflight is not None for log in self.logs.values()
        ):
            await trio.to_thread.run_sync(self._wait_written)
        with trio.CancelScope(shield=True):
            async with self._lock:
                # Others may wait for the store (other peers, this node's own posts):
                # this peer's catch-up then goes in smaller batches, each of which holds
                # them up for its validation and write. Alone, it goes in large ones.
                rep.ingest_batch = (
                    SHARED_INGEST_BATCH
                    if len(self._conns) > 1 or self._lock.statistics().tasks_waiting
                    else INGEST_BATCH
                )
                if data is None:
                    out = await self._work(conn, rep.flush)
                else:
                    self._bytes_received += len(data)
                    out = await self._work(conn, rep.receive, data)
                accepted = rep.take_accepted()
                await self._track_accepted(conn, accepted)
        self._after_ingest(conn, out, accepted, rejected_before)
        gossip = rep.take_gossip()
        if self.overlay is not None:
            for group, blob in gossip:
                self.overlay.received(conn, group, blob)
            while offers := self.overlay.take_offers(conn.peer_id):
                await self._ingest_offers(conn, offers)

    def _after_ingest(
        self, conn: _Conn, out: bytes, accepted: list[Accepted], rejected_before: int
    ) -> None:
        rep = conn.replicator
        stats = rep.stats
        conn.send_later(out)
        rejected = stats.entries_rejected - stats.rejections.get("pending-full", 0)
        # Counted as they arrive: the figure never goes down when a connection ends.
        self._entries_received += stats.entries_received - conn.counted_received
        conn.counted_received = stats.entries_received
        for a in accepted:
            self._entries_accepted += len(a.entries)
            self._stored(a.group, a.entries, origin=conn.peer_id, live=a.live)
        for g in {a.group for a in accepted}:
            self._recheck_access(g)
        self._announce_synced(conn)
        if rep.unoffered:
            conn.wake.set()  # the writer offers when the gate opens
        if rejected > rejected_before:
            codes = ", ".join(sorted(k for k in stats.rejections if k != "pending-full"))
            raise RemoteProtocolError(
                ErrorCode.BAD_SIGNATURE if "bad-signature" in codes else ErrorCode.MALFORMED,
                f"peer sent invalid entries ({codes})",
            )
        if rep.has_bulk:
            conn.wake.set()

    async def _ingest_offers(self, conn: _Conn, offers: list[tuple[bytes, Offer]]) -> None:
        """Verify and store entries that came in gossip messages from ``conn``'s peer,
        on its replicator (as live pushes), and give the gossip state its verdicts: a
        stored entry's comes with :meth:`_stored`, one still waiting for what it
        depends on when that arrives."""
        ov = self.overlay
        assert ov is not None
        rep = conn.replicator
        todo: list[tuple[bytes, Entry]] = []
        for group, offer in offers:
            log = self.logs.get(group)
            try:
                entry = decode_gossip_entry(group, offer.payload)
            except P2PCommError as exc:
                ov.judge(group, offer.id, ok=False)
                raise RemoteProtocolError(
                    ErrorCode.MALFORMED, f"gossip carried a malformed entry: {exc.message}"
                ) from None
            if entry.id != offer.id:
                ov.judge(group, offer.id, ok=False)
                raise RemoteProtocolError(
                    ErrorCode.MALFORMED, "gossip carried an entry under another entry's id"
                )
            if log is None:
                continue
            if log.store.entry_meta(group, entry.id) is not None:
                ov.judge(group, offer.id, ok=True, known=True)
                rep.note_received((entry.id,))  # H9: the same entry again is waste
                continue
            ov.offered(group, offer)
            todo.append((group, entry))
        if not todo:
            return
        self._offers_ingested += len(todo)
        stats = rep.stats
        rejected_before = stats.entries_rejected - stats.rejections.get("pending-full", 0)

        def ingest() -> tuple[bytes, list[bytes]]:
            out: list[bytes] = []
            refused: list[bytes] = []
            for group, entry in todo:
                before = stats.entries_rejected
                out.append(rep.ingest_gossip(group, entry))
                if stats.entries_rejected > before:
                    refused.append(entry.id)
            return b"".join(out), refused

        with trio.CancelScope(shield=True):
            async with self._lock:
                out, refused = await self._work(conn, ingest)
                accepted = rep.take_accepted()
                await self._track_accepted(conn, accepted)
        for group, entry in todo:
            if entry.id in refused:
                ov.judge(group, entry.id, ok=False)
        self._after_ingest(conn, out, accepted, rejected_before)

    async def _announce_leftovers(self, peer: bytes, rep: Replicator) -> None:
        """When a connection ends: entries its last ingests stored (a write that was
        still in flight) are fed to the membership state and announced like any other."""
        try:
            async with self._lock:
                await trio.to_thread.run_sync(rep.settle)
                accepted = rep.take_accepted()
                if rep.peer:
                    await trio.to_thread.run_sync(rep.discard_pending)
            for a in accepted:
                await self._track_in_slices(a.group, a.entries, origin=peer)
        except P2PCommError as exc:  # the store failed: nothing more to announce
            logger.info("entries from %s not announced: %s", peer.hex()[:16], exc)
            return
        for a in accepted:
            self._entries_accepted += len(a.entries)
            self._stored(a.group, a.entries, origin=peer, live=False)
            self._recheck_access(a.group)

    def _may_offer(self, group: bytes, conn: _Conn, *, waited: bool = False) -> bool:
        """Whether ``conn``'s session may offer its tips of ``group`` now: one session
        at a time reconciles a group, so that a node that is behind catches up from
        one peer and then offers the others tips that show what it holds (06 6.11 L2).
        ``waited``: the session waited long enough and goes ahead anyway."""
        with self._offering_lock:
            now = time.monotonic()
            held = self._offering.get(group)
            if (
                held is None
                or held[0] is conn
                or held[0].ended
                or waited
                or now - held[1] >= self._offer_bound
            ):
                self._offering[group] = (conn, now)
                return True
            return False

    def _release(self, conn: _Conn, groups: Iterable[bytes]) -> None:
        """``conn`` reconciled ``groups`` (or ended): sessions waiting to offer go on."""
        with self._offering_lock:
            for g in groups:
                held = self._offering.get(g)
                if held is not None and held[0] is conn:
                    del self._offering[g]
        for other in self._conns.values():
            if other.replicator.unoffered:
                other.wake.set()

    def _announce_synced(self, conn: _Conn) -> None:
        """Emit GroupSynced once for each group whose reconciliation with ``conn`` ended
        (the reader or the writer may be the one that sees it end)."""
        if conn.tracking:
            return  # announced once what the peer sent is applied (_track_accepted)
        newly = conn.replicator.synced - conn.synced_announced
        if newly:
            self._release(conn, newly)
        for g in newly:
            conn.synced_announced.add(g)
            self._synced.setdefault(g, set()).add(conn.peer_id)
            self._emit(GroupSynced(group=g, peer_id=conn.peer_id))
            self._note_change()
            if self.overlay is not None:
                self.overlay.link_up(g, conn, self._is_contact(conn))
        if conn.replicator.confirmed:
            self._note_change()

    async def _build_window(self, conn: _Conn, out: list[bytes | None]) -> None:
        rep = conn.replicator
        # One bulk window at a time waits for the node lock: with many peers catching
        # up at once, the node's own posts and live pushes wait behind one window, not
        # behind one per peer (the lock serves its waiters in turn).
        async with self._bulk, self._lock:
            out.append(await self._work(conn, rep.next_bulk))

    async def _writer(self, conn: _Conn) -> None:
        rep = conn.replicator
        ready: bytes | None = None  # a bulk window built and not sent yet
        conn.last_sent = trio.current_time()
        while True:
            while conn.queue:
                # Small replies and gossip messages queued together go out in one
                # record (one tag, one write) rather than one each.
                parts = [conn.queue.popleft()]
                size = len(parts[0])
                while conn.queue and size + len(conn.queue[0]) <= COALESCE_BYTES:
                    parts.append(conn.queue.popleft())
                    size += len(parts[-1])
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                conn.queued_bytes -= size
                await conn.stream.send_all(data)
                self._bytes_sent += size
                conn.last_sent = trio.current_time()
            if conn.drain_then_close:
                return  # ends the connection with conn.closing_reason
            if rep.unoffered:
                now = trio.current_time()
                if conn.waiting_since is None:
                    conn.waiting_since = now
                waited = now - conn.waiting_since >= self._offer_bound
                due = [g for g in rep.unoffered if self._may_offer(g, conn, waited=waited)]
                if due:
                    async with self._lock:
                        out = await self._work(conn, rep.offer, due)
                    conn.send_later(out)
                    self._announce_synced(conn)
                    if not rep.unoffered:
                        conn.waiting_since = None
                    continue
            if ready is not None or rep.has_bulk:
                # Build the next window in a worker thread while this one is sent.
                built: list[bytes | None] = []
                try:
                    async with trio.open_nursery() as nursery:
                        if rep.has_bulk:
                            nursery.start_soon(self._build_window, conn, built)
                        if ready is not None:
                            await conn.stream.send_all(ready)
                            self._bytes_sent += len(ready)
                            conn.last_sent = trio.current_time()
                except BaseExceptionGroup as group:
                    # Raise what failed as itself (a peer gone mid-window is a broken
                    # stream, not an ExceptionGroup for the bug handler).
                    failure = _first_failure(group)
                    raise failure from failure.__cause__  # keep what broke it
                ready = built[0] if built and built[0] else None
                self._announce_synced(conn)
                continue
            conn.wake = trio.Event()
            if not conn.queue and not rep.has_bulk:
                # Idle: after ``keepalive`` seconds without sending, an empty DATA frame
                # (05 5.5.7) tells the peer we are alive.
                deadline = conn.last_sent + self._keepalive
                if rep.unoffered and conn.waiting_since is not None:
                    deadline = min(deadline, conn.waiting_since + self._offer_bound)
                with trio.move_on_at(deadline):
                    await conn.wake.wait()
                if (
                    not conn.wake.is_set()
                    and not conn.queue
                    and not rep.has_bulk
                    and trio.current_time() >= conn.last_sent + self._keepalive
                ):
                    await conn.stream.send_keepalive()
                    conn.last_sent = trio.current_time()


@contextlib.asynccontextmanager
async def open_node(
    store: Store,
    identity: KeyPair,
    *,
    groups: Iterable[bytes] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    peers: Sequence[tuple[str, int]] = (),
    listen: bool = True,
    stall_timeout: float = 30.0,
    ban_seconds: float = 60.0,
    keepalive: float = 15.0,
    liveness_timeout: float = 45.0,
    forward: Callable[[bytes, Entry], bool | Entry | None] | None = None,
    event_buffer: int = 10_000,
    membership: bool = True,
    discovery: DiscoveryConfig | None = None,
    gossip: GossipConfig | None = DEFAULT_GOSSIP,
    max_connections: int = MAX_CONNECTIONS,
    admission: AdmissionLimits | None = None,
    anti_entropy: float | None = ANTI_ENTROPY,
    cpu_share: float = CPU_SHARE,
    cpu_burst: float = CPU_BURST,
) -> AsyncIterator[Node]:
    """Run a node until the block exits.

    ``groups`` defaults to every group in ``store``. ``host``/``port`` is where to
    listen (port 0 picks a free port; see ``node.address``). ``peers`` are dialled and
    kept connected with backoff. With ``membership`` (the default) the node keeps each
    group's membership and content state (:meth:`Node.membership`), emits
    :class:`MembershipChanged`, serves each group to its members only (and an invitee
    the causal past of its invitation), stores no stranger's entries, cuts a removed
    member off (spec/06-sync.md 6.22), sends peers only the header of entries whose
    author could not write them, and drops bodies that an effective delete targets.
    ``membership=False`` makes a log-level replica that serves the log to any peer (for
    tools and tests of the replication protocol). ``forward(group, entry)`` adds the
    application's own policy on top (True, False, or an entry to send instead).
    ``keepalive``: seconds without sending after which an idle connection sends a
    keepalive (an empty DATA frame, spec/05-channel.md 5.5.7); ``liveness_timeout``:
    seconds without receiving anything (a keepalive counts, a partial frame does not)
    after which a connection is closed with ``timeout`` (spec/06-sync.md 6.17), and
    the peer is not refused: a frozen peer or a cut link is a fault, not misbehaviour.
    ``discovery`` turns mDNS on (:mod:`p2pcomm.net.discovery`) on the interfaces it
    names: the node advertises its port for its groups, and dials the nodes whose
    adverts name a group it holds (:class:`PeerDiscovered`, :class:`PeerGone`).
    ``gossip`` (the default; with ``membership``) spreads new entries by gossip (spec/07-gossip.md)
    in every group this node is a member of: a bounded set of neighbours per group,
    kept by peer exchange, and a broadcast tree over them; ``peers`` and discovered
    nodes are then contacts to join through (dialled again only while some group has
    no neighbour). Without it every new entry is pushed to every live session.
    ``anti_entropy`` (with gossip): about every this many seconds, the node syncs
    with one random member it knows of but holds no channel to, then lets it go
    (spec/07-gossip.md 7.12 N10), so that what gossip missed arrives anyway; None
    turns it off.
    ``cpu_share``: the share of one core the work for one peer's messages may use
    over time, after a burst of ``cpu_burst`` seconds of CPU; past it the node reads from that peer
    only as fast as the share allows (spec/06-sync.md H14), and the other peers and
    the node's own posts keep the rest.
    ``max_connections``: connections accepted at most (dials past it are refused with
    ``too many connections``; gossip dials no more than that either).
    ``admission``: what strangers may make the listener spend before any handshake
    (:mod:`p2pcomm.net.admission`, spec/05-channel.md 5.6.1); by default the
    transport's limits, with room for ``max_connections`` plus four connections
    handshaking. A connection stuck in the middle of a frame ends with ``timeout`` after
    ``liveness_timeout`` (and the transport's own frame deadline is twice that).
    """
    group_ids = list(groups) if groups is not None else await trio.to_thread.run_sync(store.groups)
    async with trio.open_nursery() as nursery:
        node = Node(
            store=store,
            identity=identity,
            groups=group_ids,
            nursery=nursery,
            stall_timeout=stall_timeout,
            ban_seconds=ban_seconds,
            forward=forward,
            event_buffer=event_buffer,
            membership=membership,
            keepalive=keepalive,
            liveness_timeout=liveness_timeout,
            gossip=gossip,
            max_connections=max_connections,
            cpu_share=cpu_share,
            cpu_burst=cpu_burst,
        )
        for g in list(node.content):
            async with node._lock:
                await node._load(g)
        limits = admission or AdmissionLimits(max_connections=max_connections + 4)
        if listen:
            listeners = await nursery.start(
                functools.partial(
                    serve_secure,
                    node._accept,
                    port,
                    identity=node._signer,
                    host=host,
                    handler_nursery=nursery,
                    frame_timeout=2 * liveness_timeout,  # the liveness check comes first
                    max_connections=limits.max_connections,
                    max_connections_per_address=limits.max_connections_per_address,
                    max_handshakes=limits.max_handshakes,
                    max_handshakes_per_address=limits.max_handshakes_per_address,
                    handshake_rate=limits.handshake_rate,
                    handshake_burst=limits.handshake_burst,
                    on_refused=node._refused_at_accept,
                )
            )
            sockname = listeners[0].socket.getsockname()
            node.address = (str(sockname[0]), int(sockname[1]))
        node._running = True
        if node.keys is not None:
            nursery.start_soon(node._run_key_duties)
        if node.overlay is not None:
            nursery.start_soon(node.overlay.run_timers)
            if anti_entropy is not None:
                nursery.start_soon(node.overlay.run_anti_entropy, anti_entropy)
            for g in list(node.content):
                node._gossip_membership(g)
        for h, p in peers:
            node.add_peer(h, p)
        if discovery is not None:
            await nursery.start(functools.partial(node._run_discovery, discovery))
        try:
            yield node
        finally:
            nursery.cancel_scope.cancel()
            for ch in node._subscribers:
                ch.close()


class _Policy:
    """The node's :class:`~p2pcomm.replication.AccessPolicy` for one peer."""

    def __init__(self, node: Node, peer: bytes) -> None:
        self.node = node
        self.peer = peer
        #: Per group: members learned from this session's earlier batches.
        self.known: dict[bytes, set[bytes]] = {}

    def grant(self, group: bytes, proofs: tuple[bytes, ...], session_hash: bytes) -> Grant:
        return self.node._grant(group, self.peer, proofs, session_hash)

    def refuse(self, group: bytes, entries: list[Entry]) -> list[Entry]:
        return self.node._refuse(group, entries, self.peer, self.known.setdefault(group, set()))


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of ``group`` that is not a cancellation (the group itself
    when there is none)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_failure(exc)
            if inner is not exc:
                return inner
        elif not isinstance(exc, trio.Cancelled):
            return exc
    return group


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, P2PCommError):
        return f"{exc.code.value}: {exc.message}"
    return str(exc) or type(exc).__name__


def _all_entries(store: Store, group: bytes) -> list[Entry]:
    return [e for _, e in store.iter_entries(group)]


@dataclass(frozen=True, slots=True)
class _Applied:
    """What applying a batch of stored entries changed (computed off the event loop)."""

    roles: dict[bytes, Role]
    drop: set[bytes]
    #: Items now (None: announced from a batch, not decoded).
    items: dict[bytes, Item | None]
    names: dict[bytes, str]
    banned: frozenset[bytes]
    expelled: frozenset[bytes]
    leavers: frozenset[bytes]
    #: Entries of the posts and replies a batch added, when the whole view was not
    #: diffed (a catch-up).
    added: tuple[Entry, ...] | None = None


def _apply(
    machine: ContentMachine,
    entries: list[Entry],
    dropped: set[bytes],
    before_roles: Mapping[bytes, Role],
    before_items: dict[bytes, Item | None],
    sealed: set[bytes] | None = None,
) -> _Applied:
    """Apply stored entries to a group's state: its roles and items now, and the bodies
    that an effective delete targets and that are not dropped yet."""
    held = len(machine.keys.secrets) if machine.keys is not None else 0
    machine.apply_many(entries)
    learned = machine.keys is not None and len(machine.keys.secrets) > held
    membership = machine.membership
    roles = membership.roles()
    drop: set[bytes] = set()
    if membership.group is None or membership.kind(membership.group) is None:
        return _Applied(roles, drop, {}, {}, frozenset(), frozenset(), frozenset())
    leavers = frozenset(
        e.header.author
        for e in entries
        if e.header.kind == Kind.LEAVE and membership.authorized(e.id)
    )
    # The snapshot costs time in proportion to the whole group: taken only when the
    # member table changed (names, bans and expulsions are for the member events).
    names: dict[bytes, str] = {}
    banned: frozenset[bytes] = frozenset()
    expelled: frozenset[bytes] = frozenset()
    if roles != before_roles:
        state = machine.state
        names = {m: member.name for m, member in state.members.items()}
        banned, expelled = state.banned, frozenset(state.equivocators)
    # KEYS entries change no verdict of what is held (an entry's epoch is judged by its
    # own past) and no role: a batch of posts and key entries that taught this member no
    # new key takes the posts' path too (a catch-up meets others' key publications).
    only_posts = all(
        e.header.kind in _ITEM_KINDS or (e.header.kind == Kind.KEYS and not learned)
        for e in entries
    )
    if only_posts:
        # Posts and replies only (a catch-up, or live posts): rebuilding the whole view
        # for each batch would cost time in proportion to the group per batch (it was
        # half of a node's time per live post in a group of 200 posts). Their items
        # are announced from the batch itself; a batch with anything else
        # (moderation, reactions, operations) diffs the whole view and drops what a
        # delete targets.
        items = before_items  # updated in place: copying it per batch is what costs
        added: list[Entry] = []
        enc = machine.encryptor if machine.encryptor is not None else None
        encrypted = enc is not None and enc.encrypted
        for e in entries:
            if e.id not in items and _is_item(machine, e):
                items[e.id] = None  # decoded only if a subscriber reads the event
                added.append(e)
                if encrypted and sealed is not None and not machine.can_open(e.id):
                    sealed.add(e.id)  # its key's arrival will be an update
        return _Applied(roles, drop, items, names, banned, expelled, leavers, tuple(added))
    view = machine.view()
    # A delete removes a target only once the target is held (04 V2), so a body to
    # drop can come with a delete, a changed verdict, or the target's own arrival.
    drop = set(view.drop_bodies) - dropped
    return _Applied(
        roles=roles,
        drop=drop,
        items=dict[bytes, Item | None]((i.id, i) for i in view.items),
        names=names,
        banned=banned,
        expelled=expelled,
        leavers=leavers,
    )


#: Seconds a holder of a group's key waits per rank before it forwards the key to a
#: member who lacks it (12.11 W4): the first holder by id goes at once.
KEY_STAGGER: Final = 2.0
#: Seconds ``join`` waits, once a member holds the JOIN, for a member's node to hand the
#: newcomer the group's key (usually milliseconds; the key also comes later).
WELCOME_WAIT: Final = 2 * KEY_STAGGER + 1
#: Batches of up to this many new posts are announced one ItemAdded each; larger ones
#: (a catch-up) as one ItemsAdded.
ONE_BY_ONE = 16
#: Posts a peer sent are applied to the group's state this many at a time, the node
#: lock released in between (about 2 ms of work each).
TRACK_SLICE = 256
_ITEM_KINDS: Final = frozenset({Kind.POST, Kind.REPLY})


def _is_item(machine: ContentMachine, e: Entry) -> bool:
    """Whether ``e`` is an effective post or reply whose body is held."""
    return (
        e.header.kind in _ITEM_KINDS and e.body is not None and machine.membership.authorized(e.id)
    )


def _held_state(machine: ContentMachine | None, group: bytes) -> GroupState | None:
    """The group's state, or None while its genesis is not here."""
    if machine is None or machine.membership.group is None:
        return None
    if machine.membership.kind(group) is None:
        return None
    return machine.state


def _state_of(machine: ContentMachine, group: bytes) -> GroupState:
    if machine.membership.group is None or machine.membership.kind(group) is None:
        raise NotFoundError(
            ErrorCode.NOT_FOUND,
            f"group {group.hex()[:16]} is not here yet (its first entry has not arrived)",
        )
    return machine.state


def _opener(machine: ContentMachine) -> Callable[[Entry], bytes | None] | None:
    """The plaintext of an entry's body in an encrypted group (None: plaintext group)."""
    enc = machine.encryptor
    if enc is None or not enc.encrypted:
        return None

    def open_entry(e: Entry) -> bytes | None:
        h = e.header
        if e.body is None:
            return None
        return enc.open(e.id, h.author, h.seq, h.kind, e.body)

    return open_entry


def _catch_up(machine: ContentMachine, log: GroupLog) -> None:
    """Apply whatever the store holds and the machine does not (a large batch from a
    peer is tracked in slices): an encrypted body is bound to the exact causal past of
    the entry, so every parent must be resolved before one is sealed."""
    enc = machine.encryptor
    if enc is None or not enc.encrypted:
        return
    me = enc.me
    _, parents = log.next_position(me)
    try:
        enc.cut(parents)
    except ValidationError:
        machine.apply_many(e for _, e in log.entries())


def _drop_bodies(log: GroupLog, ids: list[bytes]) -> None:
    for i in ids:
        log.drop_body(i)
