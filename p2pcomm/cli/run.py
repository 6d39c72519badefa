"""``p2pcomm run``: the long-running node of one home.

It takes the home's lock (one node per home), opens the store, listens, dials the
peers it knows (``--peer``, ``--bootstrap``, the ``bootstrap`` list of the home's
config.json and those remembered from invitations), finds members' nodes on the local
network with mDNS (``--interface``, ``--no-mdns``) and dials them, serves the control
socket for the other commands, and prints what happens, one line per event, until
Ctrl-C (exit 130; the store is intact: every write is a finished transaction).
"""

from __future__ import annotations

import errno
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ..core.identity import KeyPair, MemberId
from ..errors import ControlError, P2PCommError, StoreError
from ..paths import Home, NodeLock
from ..store import SqliteStore
from ..store.addresses import AddressBook
from . import ops

if TYPE_CHECKING:
    from .main import Out

__all__ = ["run_node"]


class _AddressInUse(Exception):
    pass


def _short(member: bytes) -> str:
    return MemberId(member).short()


def run_node(
    home: Home,
    identity: KeyPair,
    *,
    host: str,
    port: int,
    fallback: bool,
    peers: Sequence[tuple[str, int]],
    display_name: str,
    out: Out,
    mdns: Sequence[str] | None = None,
    sources: Mapping[tuple[str, int], str] | None = None,
    carry: Sequence[bytes] = (),
) -> int:
    """Run until interrupted; returns the exit status. ``mdns``: the IPv4 addresses
    to speak mDNS on (None: off). ``sources``: where each of ``peers`` came from, for
    the address book (``command-line`` when not said); the node also dials what the
    book remembers from earlier runs."""
    from .main import CliError, Exit, busy_error

    if not home.store_path.exists():
        raise CliError(
            f"no store in {home.root} (create one with: p2pcomm init --name YOUR_NAME)",
            Exit.NOT_FOUND,
            "no-home",
        )
    try:
        lock = NodeLock(home)
        lock.acquire()
    except StoreError as exc:
        busy = busy_error(home)
        if busy is not None and busy.status is Exit.BUSY:  # a command at work
            raise busy from None
        raise CliError(
            f"{exc.message}: one node per home; stop that one first, or use another --home",
            Exit.BUSY,
            "busy",
        ) from None
    try:
        with SqliteStore(home.store_path) as store:
            peers = _remembered(store, peers, sources or {})
            try:
                try:
                    serving = _Serving(
                        home=home,
                        store=store,
                        identity=identity,
                        peers=tuple(peers),
                        display_name=display_name,
                        out=out,
                        mdns=tuple(mdns) if mdns else None,
                        carry=tuple(carry),
                    )
                    interrupted = trio.run(_main, serving, host, port, fallback)
                except BaseExceptionGroup as group:
                    raise _unwrap(group) from None
            except _AddressInUse:
                raise CliError(
                    f"cannot listen on {host}:{port}: the address is in use "
                    "(another node? choose another with --listen HOST:PORT)",
                    Exit.BUSY,
                    "address-in-use",
                ) from None
            except OSError as exc:
                raise _listen_error(host, port, exc) from None
            if interrupted:
                out.note("interrupted: node stopped, store intact")
                return int(Exit.INTERRUPTED)
    finally:
        lock.release()
    return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Serving:
    """What the node serves with, whatever address it ends up listening on."""

    home: Home
    store: SqliteStore
    identity: KeyPair
    peers: tuple[tuple[str, int], ...]
    display_name: str
    out: Out
    #: IPv4 addresses to speak mDNS on (None: off).
    mdns: tuple[str, ...] | None
    #: Groups carried as a relay (``run --relay``), held or not yet.
    carry: tuple[bytes, ...] = ()


async def _main(serving: _Serving, host: str, port: int, fallback: bool) -> bool:
    """Serve until SIGINT or SIGTERM (then return True: interrupted)."""
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            try:
                await _serve(serving, host, port)
            except BaseException as exc:
                if not _in_use(exc):
                    raise _unwrap(exc) from None
                if not fallback:
                    raise _AddressInUse() from None
                serving.out.note(f"{host}:{port} is in use; listening on another port")
                await _serve(serving, host, 0)
            nursery.cancel_scope.cancel()
    return interrupted


async def _serve(serving: _Serving, host: str, port: int) -> None:
    from ..net.control import Method, serve_control
    from ..net.discovery import DiscoveryConfig
    from ..net.node import open_node

    home, store, identity, out = serving.home, serving.store, serving.identity, serving.out
    peers, display_name, mdns = serving.peers, serving.display_name, serving.mdns

    discovery = DiscoveryConfig(interfaces=mdns) if mdns else None
    groups = sorted({*store.groups(), *serving.carry})
    async with open_node(
        store,
        identity,
        host=host,
        port=port,
        peers=list(peers),
        discovery=discovery,
        groups=groups,
    ) as node:
        backend = ops.NodeBackend(node, display_name=display_name)
        methods: dict[str, Method] = {}
        for name, (kind, _where) in ops.METHODS.items():
            if kind == "call":
                methods[name] = Method.call(_caller(backend, name))
            else:
                methods[name] = Method.stream(_streamer(backend, name))
        events = node.subscribe()
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(
                    lambda task_status=trio.TASK_STATUS_IGNORED: serve_control(
                        home, methods, node_id=identity.id.text(), task_status=task_status
                    )
                )
            except ControlError as exc:
                raise P2PCommError(exc.code, exc.message) from None
            h, p = node.address
            if out.json:
                out.doc(
                    {
                        "event": "started",
                        "id": identity.id.text(),
                        "listening": f"{h}:{p}",
                        "mdns": list(mdns) if mdns else None,
                    }
                )
            else:
                out.line(f"node {identity.id.text()} listening on {h}:{p}")
                if mdns:
                    out.line(f"mdns       on {', '.join(mdns)} (finds members' nodes nearby)")
                for g in sorted(node.logs):
                    what = "relay for" if g in serving.carry else "group     "
                    out.line(f"{what} {g.hex()[:16]}")
            book = AddressBook(store)
            try:
                async for ev in events:
                    _note_address(book, ev)
                    _print_event(ev, out)
            finally:
                book.close()


def _remembered(
    store: SqliteStore,
    given: Sequence[tuple[str, int]],
    sources: Mapping[tuple[str, int], str],
) -> list[tuple[str, int]]:
    """Note the addresses given for this run in the store's address book (08 AB1) and
    return them with those the book remembers from earlier runs (mDNS finds, earlier
    successes), best first: a restarted node finds its peers without flags."""
    now = int(time.time() * 1000)
    with AddressBook(store) as book:
        for host, port in given:
            source = sources.get((host, port), "command-line")
            book.note(host, port, source=source, now_ms=now)  # type: ignore[arg-type]
        remembered = [(a.host, a.port) for a in book.to_dial(now_ms=now)]
    out = list(given)
    out.extend(a for a in remembered if a not in out)
    return out


def _note_address(book: AddressBook, event: object) -> None:
    """Keep the address book up to date from what the node reports."""
    from ..net import events as e

    now = int(time.time() * 1000)
    if isinstance(event, e.PeerUp) and event.outbound:
        book.note_success(*event.address, now_ms=now)
    elif isinstance(event, e.PeerUnreachable):
        book.note_failure(*event.address, now_ms=now)
    elif isinstance(event, e.PeerDiscovered):
        book.note(*event.address, source="mdns", now_ms=now)


def _caller(backend: ops.NodeBackend, name: str) -> Any:
    async def fn(params: dict[str, Any]) -> dict[str, Any]:
        return await ops.call(backend, name, params)

    return fn


def _streamer(backend: ops.NodeBackend, name: str) -> Any:
    def fn(params: dict[str, Any]) -> Any:
        return ops.stream(backend, name, params)

    return fn


def _listen_error(host: str, port: int, exc: OSError) -> Exception:
    """What a person is told when the node cannot listen where asked."""
    from .main import CliError, Exit

    why = exc.strerror or str(exc)
    why = why[:1].lower() + why[1:]
    where = f"cannot listen on {host}:{port}: {why}"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return CliError(
            f"{where} (give an address of this machine, e.g. --listen 0.0.0.0:7447)",
            Exit.USAGE,
            "bad-address",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CliError(
            f"{where} (ports below 1024 need privileges: choose a higher one)",
            Exit.REFUSED,
            "listen",
        )
    return CliError(where, Exit.FAILURE, "listen")


def _in_use(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_in_use(e) for e in exc.exceptions)
    return False


def _unwrap(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups (trio wraps what leaves a nursery)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _print_event(ev: object, out: Out) -> None:
    from ..net import events as e

    if out.json:
        doc = _event_doc(ev)
        if doc is not None:
            out.doc(doc)
        return
    line: str | None = None
    if isinstance(ev, e.PeerUp):
        line = f"peer up    {_short(ev.peer_id)} {ev.address[0]}:{ev.address[1]}"
    elif isinstance(ev, e.PeerDown):
        line = f"peer down  {_short(ev.peer_id)} ({ev.reason})"
    elif isinstance(ev, e.PeerMisbehaved):
        line = f"MISBEHAVED {_short(ev.peer_id)} {ev.address[0]}:{ev.address[1]}: {ev.reason}"
    elif isinstance(ev, e.PeerUnreachable):
        line = (
            f"unreachable {ev.address[0]}:{ev.address[1]} ({ev.reason}); "
            f"retrying with backoff (first in {ev.retry_in:.1f} s)"
        )
    elif isinstance(ev, e.PeerDiscovered):
        shared = ", ".join(g.hex()[:16] for g in ev.groups)
        which = "group" if len(ev.groups) == 1 else "groups"
        line = f"discovered {ev.address[0]}:{ev.address[1]} (mDNS; {which} {shared})"
    elif isinstance(ev, e.PeerGone):
        line = f"gone       {ev.address[0]}:{ev.address[1]} (its mDNS advert ended)"
    elif isinstance(ev, e.GroupSynced):
        line = f"synced     group {ev.group.hex()[:16]} with {_short(ev.peer_id)}"
    elif isinstance(ev, e.ItemAdded | e.ItemUpdated):
        if ev.item.text is not None:
            text = ev.item.text
        elif ev.item.sealed:
            text = "(sealed: no key for it here)"
        else:
            text = "(text not here yet)"
        what = "item      " if isinstance(ev, e.ItemAdded) else "updated   "
        line = f"{what} {ev.item.id.hex()[:8]} by {_short(ev.item.author)}: {text}"
    elif isinstance(ev, e.ItemsAdded):
        line = f"items      {len(ev.entries)} new in group {ev.group.hex()[:16]}"
    elif isinstance(ev, e.ItemDeleted):
        line = f"deleted    {ev.item_id.hex()[:8]}"
    elif isinstance(ev, e.ItemHidden):
        line = f"{'hidden' if ev.hidden else 'unhidden':<10} {ev.item.id.hex()[:8]}"
    elif isinstance(ev, e.MemberJoined):
        line = f"joined     {_short(ev.member)} {ev.name!r} as {ev.role.name.lower()}"
    elif isinstance(ev, e.MemberLeft):
        line = f"{ev.how:<10} {_short(ev.member)}"
    elif isinstance(ev, e.MemberRoleChanged):
        line = f"role       {_short(ev.member)} {ev.old.name.lower()} -> {ev.new.name.lower()}"
    if line is not None:
        print(line, flush=True)


def _event_doc(ev: object) -> dict[str, Any] | None:
    from ..net import events as e

    if isinstance(ev, e.PeerUp):
        return {"event": "peer-up", "peer": MemberId(ev.peer_id).text()}
    if isinstance(ev, e.PeerDown):
        return {"event": "peer-down", "peer": MemberId(ev.peer_id).text(), "reason": ev.reason}
    if isinstance(ev, e.PeerMisbehaved):
        return {
            "event": "peer-misbehaved",
            "peer": MemberId(ev.peer_id).text(),
            "reason": ev.reason,
        }
    if isinstance(ev, e.PeerUnreachable):
        return {
            "event": "peer-unreachable",
            "address": f"{ev.address[0]}:{ev.address[1]}",
            "reason": ev.reason,
        }
    if isinstance(ev, e.PeerDiscovered):
        return {
            "event": "peer-discovered",
            "address": f"{ev.address[0]}:{ev.address[1]}",
            "groups": [g.hex() for g in ev.groups],
        }
    if isinstance(ev, e.PeerGone):
        return {"event": "peer-gone", "address": f"{ev.address[0]}:{ev.address[1]}"}
    if isinstance(ev, e.GroupSynced):
        return {"event": "synced", "group": ev.group.hex(), "peer": MemberId(ev.peer_id).text()}
    if isinstance(ev, e.ItemAdded):
        return {"event": "item-added", "group": ev.group.hex(), "item": ops.item_json(ev.item, {})}
    if isinstance(ev, e.ItemUpdated):
        return {
            "event": "item-updated",
            "group": ev.group.hex(),
            "item": ops.item_json(ev.item, {}),
        }
    if isinstance(ev, e.ItemsAdded):
        return {
            "event": "items-added",
            "group": ev.group.hex(),
            "items": [ops.item_json(i, {}) for i in ev.items],
        }
    if isinstance(ev, e.MemberJoined):
        return {
            "event": "member-joined",
            "group": ev.group.hex(),
            "member": MemberId(ev.member).text(),
        }
    if isinstance(ev, e.MemberLeft):
        return {
            "event": "member-left",
            "group": ev.group.hex(),
            "member": MemberId(ev.member).text(),
            "how": ev.how,
        }
    return None
