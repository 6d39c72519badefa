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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from ..core import crypto
from ..core.channel import CloseCode
from ..core.content import ContentMachine
from ..core.identity import KeyPair
from ..core.log import Entry
from ..core.membership import Kind, Role
from ..errors import ErrorCode, P2PCommError, RemoteProtocolError
from ..group import GroupLog
from ..replication import Replicator
from ..store.base import Store
from .transport import SecureStream, open_secure_stream, serve_secure

__all__ = [
    "EntriesAdded",
    "GroupSynced",
    "MembershipChanged",
    "Node",
    "NodeEvent",
    "NodeStatistics",
    "PeerDown",
    "PeerUp",
    "open_node",
]

logger = logging.getLogger(__name__)

#: Seconds of quiet after which gathered catch-up entries are ingested.
FLUSH_AFTER = 0.01
#: Replies waiting for a peer that does not read, before it counts as flooding.
MAX_QUEUED_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class EntriesAdded:
    """Entries were stored: appended here (``origin is None``) or received from a peer."""

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


NodeEvent = EntriesAdded | PeerUp | PeerDown | GroupSynced | MembershipChanged


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
    ) -> None:
        self.store = store
        self.identity = identity
        self._signer = crypto.Ed25519Signer(identity.seed())
        self.logs: dict[bytes, GroupLog] = {g: GroupLog(store, g) for g in groups}
        self._nursery = nursery
        self._lock = trio.Lock()
        self._conns: dict[bytes, _Conn] = {}
        self._subscribers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._event_buffer = event_buffer
        self._banned: dict[bytes, float] = {}
        self._stall_timeout = stall_timeout
        self._ban_seconds = ban_seconds
        self._forward = forward
        #: Per group: membership and content state, fed with every stored entry.
        self.content: dict[bytes, ContentMachine] = (
            {g: ContentMachine() for g in self.logs} if membership else {}
        )
        self._track_membership = membership
        self._roles: dict[bytes, dict[bytes, Role]] = {}
        self._dropped: dict[bytes, set[bytes]] = {}
        self._bytes_sent = 0
        self._bytes_received = 0
        self._entries_received = 0
        self._entries_accepted = 0
        self._refused = 0
        self._wire_closed = [0, 0]
        self._conn_gone = trio.Event()
        self.address: tuple[str, int] = ("", 0)

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
        """Append an entry as this node's member (durably) and push it to live peers."""
        log = self._log(group)
        async with self._lock:
            entry = await trio.to_thread.run_sync(log.append, self.identity, kind, body)
            await self._track(group, [entry])
        self._stored(group, [entry], origin=None)
        return entry

    async def add_group(self, group: bytes) -> None:
        """Start replicating ``group`` (new connections include it)."""
        if group not in self.logs:
            async with self._lock:
                self.logs[group] = await trio.to_thread.run_sync(GroupLog, self.store, group)
                if self._track_membership:
                    self.content[group] = ContentMachine()
                    await self._load(group)

    async def connect(self, host: str, port: int) -> bytes:
        """Dial once and run the connection in the background; returns the peer id."""
        stream = await open_secure_stream(host, port, identity=self._signer)
        peer = stream.peer_id
        self._nursery.start_soon(self._run_connection, stream, True, (host, port))
        return peer

    def add_peer(self, host: str, port: int) -> None:
        """Keep a connection to ``host:port``, reconnecting with backoff."""
        self._nursery.start_soon(self._dial_loop, host, port)

    def statistics(self) -> NodeStatistics:
        live = list(self._conns.values())
        return NodeStatistics(
            peers=tuple(self._conns),
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            wire_bytes_sent=self._wire_closed[0] + sum(c.stream.wire_bytes_sent for c in live),
            wire_bytes_received=self._wire_closed[1]
            + sum(c.stream.wire_bytes_received for c in live),
            entries_received=self._entries_received,
            entries_accepted=self._entries_accepted,
            refused_peers=self._refused,
        )

    def is_synced(self, peer_id: bytes) -> bool:
        """Whether every shared group with ``peer_id`` finished reconciling."""
        conn = self._conns.get(peer_id)
        return (
            conn is not None and conn.replicator.session.all_live and not conn.replicator.has_bulk
        )

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
        if machine is not None and entry.body is not None and not machine.should_forward(entry.id):
            entry = entry.without_body()
        if self._forward is not None:
            return self._forward(group, entry)
        return entry

    def membership(self, group: bytes) -> ContentMachine:
        """Membership and content state of ``group`` (when the node tracks them)."""
        return self.content[group]

    async def _track(self, group: bytes, entries: Sequence[Entry]) -> None:
        """Feed stored entries to membership; announce changes; drop deleted bodies.
        Call with the node lock held."""
        machine = self.content.get(group)
        if machine is None or not entries:
            return
        # All of it on a worker thread: the event loop keeps serving connections.
        roles, drop = await trio.to_thread.run_sync(
            _apply, machine, list(entries), self._dropped.setdefault(group, set())
        )
        before = self._roles.get(group, {})
        if roles != before:
            self._roles[group] = roles
            self._emit(
                MembershipChanged(
                    group=group,
                    members=roles,
                    added=frozenset(roles.keys() - before.keys()),
                    removed=frozenset(before.keys() - roles.keys()),
                )
            )
        if drop:
            log = self.logs[group]
            await trio.to_thread.run_sync(_drop_bodies, log, sorted(drop))
            self._dropped[group] |= drop

    async def _load(self, group: bytes) -> None:
        """Feed what the store already holds of ``group`` to its membership state."""
        entries = await trio.to_thread.run_sync(_all_entries, self.store, group)
        await self._track(group, entries)

    def _stored(self, group: bytes, entries: Sequence[Entry], origin: bytes | None) -> None:
        if not entries:
            return
        self._emit(EntriesAdded(group=group, entries=tuple(entries), origin=origin))
        for peer, conn in list(self._conns.items()):
            if peer != origin:
                try:
                    conn.send_later(conn.replicator.push(group, list(entries)))
                except RemoteProtocolError as exc:  # that peer stopped reading
                    conn.closing_reason = f"{exc.code.value}: {exc.message}"
                    if conn.scope is not None:
                        conn.scope.cancel()

    async def _dial_loop(self, host: str, port: int) -> None:
        delay = 0.25
        while True:
            try:
                stream = await open_secure_stream(host, port, identity=self._signer)
            except (OSError, P2PCommError, trio.BrokenResourceError) as exc:
                logger.debug("dial %s:%d failed: %s", host, port, exc)
            else:
                delay = 0.25
                await self._run_connection(stream, True, (host, port))
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)

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
    ) -> None:
        peer = stream.peer_id
        reason = "closed"
        code: int = CloseCode.NORMAL
        try:
            if peer == self.peer_id:
                raise _Refused("connected to itself")
            if self._banned.get(peer, -math.inf) > trio.current_time():
                self._refused += 1
                raise _Refused("refused: misbehaved recently")
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
            rep = Replicator(
                self.logs,
                initiator=outbound,
                session_hash=stream.handshake_hash,
                forward=self._outgoing if (self.content or self._forward) else None,
            )
            conn = _Conn(peer, stream, rep, address, outbound)
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
                    ) as exc:
                        failure.append(exc)
                    except Exception as exc:  # a bug: end this connection, not the node
                        logger.exception("connection to %s failed", peer.hex()[:16])
                        failure.append(exc)
                    finally:
                        scope.cancel()

                async with trio.open_nursery() as nursery:
                    conn.scope = nursery.cancel_scope
                    nursery.start_soon(guarded, self._writer, nursery.cancel_scope)
                    nursery.start_soon(guarded, self._reader, nursery.cancel_scope)
                if failure:
                    raise failure[0]
                if conn.closing_reason is not None:
                    reason, code = conn.closing_reason, CloseCode.GOING_AWAY
            finally:
                if self._conns.get(peer) is conn:
                    del self._conns[peer]
                self._conn_gone.set()
                self._conn_gone = trio.Event()
        except _Refused as exc:
            reason, code = str(exc), CloseCode.GOING_AWAY
        except RemoteProtocolError as exc:
            reason = f"{exc.code.value}: {exc.message}"
            code = CloseCode.TIMEOUT if exc.code is ErrorCode.TIMEOUT else CloseCode.PROTOCOL_ERROR
            self._banned[peer] = trio.current_time() + self._ban_seconds
            logger.info("peer %s misbehaved: %s", peer.hex()[:16], reason)
        except P2PCommError as exc:  # our side could not go on (store, limits)
            reason = f"{exc.code.value}: {exc.message}"
            code = CloseCode.INTERNAL_ERROR
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = exc.__cause__
            reason = f"broken: {cause}" if cause else "broken"
            if isinstance(cause, RemoteProtocolError):
                self._banned[peer] = trio.current_time() + self._ban_seconds
        except Exception as exc:
            reason, code = f"internal error: {exc!r}", CloseCode.INTERNAL_ERROR
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await stream.aclose(code=code, reason=reason)
            self._wire_closed[0] += stream.wire_bytes_sent
            self._wire_closed[1] += stream.wire_bytes_received
        if reason != "already connected" and reason != "connected to itself":
            self._emit(PeerDown(peer_id=peer, reason=reason))

    async def _reader(self, conn: _Conn) -> None:
        rep = conn.replicator
        stream = conn.stream
        while True:
            if rep.has_deferred:
                # Entries are gathered for one big ingest; if the peer pauses, store
                # what we have rather than wait.
                with trio.move_on_after(FLUSH_AFTER) as scope:
                    data = await stream.receive_some()
                if scope.cancelled_caught:
                    await self._process(conn, None)
                    continue
            else:
                with trio.move_on_after(self._stall_timeout) as scope:
                    data = await stream.receive_some()
                if scope.cancelled_caught:
                    if rep.session.all_live and not rep.has_bulk:
                        continue  # an idle live connection is fine
                    raise RemoteProtocolError(
                        ErrorCode.TIMEOUT, f"no progress for {self._stall_timeout} s during sync"
                    )
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

    async def _process(self, conn: _Conn, data: bytes | None) -> None:
        """Feed ``data`` to the replicator (None: ingest what it gathered) and act on
        what it stored, refused or finished."""
        rep = conn.replicator
        stats = rep.stats
        rejected_before = stats.entries_rejected - stats.rejections.get("pending-full", 0)
        async with self._lock:
            if data is None:
                out = await trio.to_thread.run_sync(rep.flush)
            else:
                self._bytes_received += len(data)
                out = await trio.to_thread.run_sync(rep.receive, data)
            accepted = rep.take_accepted()
            for a in accepted:
                await self._track(a.group, a.entries)
        conn.send_later(out)
        rejected = stats.entries_rejected - stats.rejections.get("pending-full", 0)
        self._entries_received = sum(
            c.replicator.stats.entries_received for c in self._conns.values()
        )
        for a in accepted:
            self._entries_accepted += len(a.entries)
            self._stored(a.group, a.entries, origin=conn.peer_id)
        self._announce_synced(conn)
        if rejected > rejected_before:
            codes = ", ".join(sorted(k for k in stats.rejections if k != "pending-full"))
            raise RemoteProtocolError(
                ErrorCode.BAD_SIGNATURE if "bad-signature" in codes else ErrorCode.MALFORMED,
                f"peer sent invalid entries ({codes})",
            )
        if rep.has_bulk:
            conn.wake.set()

    def _announce_synced(self, conn: _Conn) -> None:
        """Emit GroupSynced once for each group whose reconciliation with ``conn`` ended
        (the reader or the writer may be the one that sees it end)."""
        for g in conn.replicator.synced - conn.synced_announced:
            conn.synced_announced.add(g)
            self._emit(GroupSynced(group=g, peer_id=conn.peer_id))

    async def _build_window(self, rep: Replicator, out: list[bytes | None]) -> None:
        async with self._lock:
            out.append(await trio.to_thread.run_sync(rep.next_bulk))

    async def _writer(self, conn: _Conn) -> None:
        rep = conn.replicator
        ready: bytes | None = None  # a bulk window built and not sent yet
        while True:
            while conn.queue:
                data = conn.queue.popleft()
                conn.queued_bytes -= len(data)
                await conn.stream.send_all(data)
                self._bytes_sent += len(data)
            if ready is not None or rep.has_bulk:
                # Build the next window in a worker thread while this one is sent.
                built: list[bytes | None] = []
                async with trio.open_nursery() as nursery:
                    if rep.has_bulk:
                        nursery.start_soon(self._build_window, rep, built)
                    if ready is not None:
                        await conn.stream.send_all(ready)
                        self._bytes_sent += len(ready)
                ready = built[0] if built and built[0] else None
                self._announce_synced(conn)
                continue
            conn.wake = trio.Event()
            if not conn.queue and not rep.has_bulk:
                await conn.wake.wait()


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
    forward: Callable[[bytes, Entry], bool | Entry | None] | None = None,
    event_buffer: int = 10_000,
    membership: bool = True,
) -> AsyncIterator[Node]:
    """Run a node until the block exits.

    ``groups`` defaults to every group in ``store``. ``host``/``port`` is where to
    listen (port 0 picks a free port; see ``node.address``). ``peers`` are dialled and
    kept connected with backoff. With ``membership`` (the default) the node keeps each
    group's membership and content state (:meth:`Node.membership`), emits
    :class:`MembershipChanged`, sends peers only the header of entries whose author
    could not write them, and drops bodies that an effective delete targets.
    ``forward(group, entry)`` adds the application's own policy on top (True, False,
    or an entry to send instead).
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
        )
        for g in list(node.content):
            async with node._lock:
                await node._load(g)
        if listen:
            listeners = await nursery.start(
                functools.partial(
                    serve_secure,
                    node._accept,
                    port,
                    identity=node._signer,
                    host=host,
                    handler_nursery=nursery,
                )
            )
            sockname = listeners[0].socket.getsockname()
            node.address = (str(sockname[0]), int(sockname[1]))
        for h, p in peers:
            node.add_peer(h, p)
        try:
            yield node
        finally:
            nursery.cancel_scope.cancel()
            for ch in node._subscribers:
                ch.close()


def _all_entries(store: Store, group: bytes) -> list[Entry]:
    return [e for _, e in store.iter_entries(group)]


def _apply(
    machine: ContentMachine, entries: list[Entry], dropped: set[bytes]
) -> tuple[dict[bytes, Role], set[bytes]]:
    """Apply stored entries to a group's state: its roles now, and the bodies that an
    effective delete targets and that are not dropped yet."""
    changed = machine.apply_many(entries)
    roles = machine.membership.roles()
    kind = machine.membership.kind
    drop: set[bytes] = set()
    if any(e.header.kind == Kind.DELETE for e in entries) or any(
        kind(i) == Kind.DELETE for i in changed
    ):
        drop = set(machine.view().drop_bodies) - dropped
    return roles, drop


def _drop_bodies(log: GroupLog, ids: list[bytes]) -> None:
    for i in ids:
        log.drop_body(i)
