"""The processes of the flood benchmark (``benchmarks/floods.py``), each its own OS process.

python -m benchmarks._flood_peer target STORE GROUP_HEX SEED_HEX PERIOD
    runs a node (``open_node`` on 127.0.0.1, port 0, members only) on STORE and prints
    "PORT <n>"; posts an entry every PERIOD seconds whose text is the
    ``time.monotonic()`` it was due at, and "APPEND <due> <s>" once it is stored; prints "MISBEHAVED <peer hex> <reason>" for each
    PeerMisbehaved and "REFUSED <what>" for each connection its transport refused; on
    the line "stats" prints "STATS <json>"; ends when stdin closes.
python -m benchmarks._flood_peer honest STORE GROUP_HEX SEED_HEX PORT
    a member's node that dials the target (and keeps dialling), prints "READY" once
    the group is in sync, then "LAT <due> <latency s>" for every timed post that
    arrives and "DOWN <reason>" when its connection ends; ends when stdin closes.
python -m benchmarks._flood_peer attack NAME PORT GROUP_HEX SEEDS_HEX DURATION IDS_FILE [STORE]
    runs the attack NAME (a function below) against the target for DURATION seconds
    and prints one JSON line of what it did. SEEDS_HEX: comma-separated member seeds
    the attack may use (attacks on fresh keys ignore them); IDS_FILE: hex ids of
    entries the target stores, one a line; STORE: the store of the ``catch-up``
    member (not an attack: an honest member with much to give).

Each attack speaks the secure channel (``open_secure_stream``) and writes sync messages
itself, with the encoders of ``p2pcomm/core/sync.py``: the target sees what a hostile
implementation could send, not what the library's node would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import cast

import msgpack
import trio

from p2pcomm.core import crypto
from p2pcomm.core.content import Post
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import (
    AuthenticatedRun,
    Entry,
    ForkProof,
    create_entry,
    encode_fork_proof,
    encode_header,
    make_header,
)
from p2pcomm.core.membership import Kind
from p2pcomm.core.sync import (
    MAX_MESSAGE_SIZE,
    MAX_WANT,
    GroupState,
    Msg,
    SharedGroups,
    SyncSession,
    group_token,
    tips_fingerprint,
)
from p2pcomm.errors import P2PCommError
from p2pcomm.group import now_ms
from p2pcomm.net.events import EntriesAdded, GroupSynced, PeerDown, PeerMisbehaved
from p2pcomm.net.node import open_node
from p2pcomm.net.transport import SecureStream, open_secure_stream
from p2pcomm.store import SqliteStore

LOCALHOST = "127.0.0.1"
#: What an attacker's connection may raise when the target refuses or closes it.
GONE = (OSError, P2PCommError, trio.BrokenResourceError, trio.ClosedResourceError)


def out(line: str) -> None:
    print(line, flush=True)


# -- the target ---------------------------------------------------------------------------


class _RefusalLog(logging.Handler):
    """Prints one line per connection the transport refused (its DEBUG records that
    start with "refused")."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("refused"):
            out(f"REFUSED {text.split(':', 1)[0]}")


async def target(store_path: str, group: bytes, seed: bytes, period: float) -> None:
    transport_log = logging.getLogger("p2pcomm.net.transport")
    transport_log.setLevel(logging.DEBUG)
    transport_log.addHandler(_RefusalLog())
    transport_log.propagate = False
    with SqliteStore(store_path) as store:
        async with open_node(store, KeyPair(seed), groups=[group]) as node:
            events = node.subscribe()
            out(f"PORT {node.address[1]}")

            async def watch() -> None:
                async for ev in events:
                    if isinstance(ev, PeerMisbehaved):
                        out(f"MISBEHAVED {ev.peer_id.hex()} {ev.reason[:120]!r}")
                    elif isinstance(ev, PeerDown):
                        out(f"DOWN {ev.peer_id.hex()[:8]} {ev.reason[:120]!r}")

            async def post(due: float) -> None:
                # The node's low-level append (no planning on the group's view): what is
                # timed is the node and the network, not the application's rules.
                await node.append(group, Kind.POST, Post(text=f"t={due!r}").encode())
                out(f"APPEND {due!r} {time.monotonic() - due:.6f}")

            async def appender(nursery: trio.Nursery) -> None:
                # One task per post, started when due: a post delayed by a busy node
                # does not delay the next one's start, so each measures what it met.
                due = time.monotonic()
                while True:
                    due += period
                    await trio.sleep(max(0.0, due - time.monotonic()))
                    nursery.start_soon(post, due)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                nursery.start_soon(appender, nursery)
                while True:
                    line = await trio.to_thread.run_sync(sys.stdin.readline)
                    if not line:
                        break
                    if line.strip() == "stats":
                        st = node.statistics()
                        doc = {"refused_peers": st.refused_peers, "peers": len(st.peers)}
                        out(f"STATS {json.dumps(doc)}")
                nursery.cancel_scope.cancel()


# -- the honest member ------------------------------------------------------------------


async def honest(store_path: str, group: bytes, seed: bytes, port: int) -> None:
    with SqliteStore(store_path) as store:
        async with open_node(
            store, KeyPair(seed), groups=[group], listen=False, peers=[(LOCALHOST, port)]
        ) as node:
            events = node.subscribe()

            async def watch() -> None:
                target: bytes | None = None
                async for ev in events:
                    if isinstance(ev, GroupSynced) and target is None:
                        target = ev.peer_id
                        out("READY")
                    elif isinstance(ev, PeerDown) and ev.peer_id == target:
                        # Only the target's channel: others (gossip neighbours, a
                        # scenario's peer that ends) come and go.
                        out(f"DOWN {ev.reason[:120]!r}")
                    elif isinstance(ev, EntriesAdded):
                        now = time.monotonic()
                        for e in ev.entries:
                            if e.header.kind != Kind.POST or e.body is None:
                                continue
                            text = Post.decode(e.body).text
                            if text.startswith("t="):
                                due = float(text[2:])
                                out(f"LAT {due!r} {now - due:.6f}")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await trio.to_thread.run_sync(sys.stdin.read)
                nursery.cancel_scope.cancel()


# -- attacks ------------------------------------------------------------------------------


class Tally:
    """What an attack did, printed as JSON at its end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def closed(self, stream: SecureStream | None, exc: BaseException | None = None) -> None:
        """The target ended a connection of ours (or refused to make one)."""
        self.counts["closed_by_target"] += 1
        got = stream.close_received if stream is not None else None
        cause = exc.__cause__ if exc is not None else None
        if got is not None:
            why = got.reason.split(":", 1)[0] or "closed"
        elif isinstance(exc, P2PCommError):
            why = exc.code.value
        elif isinstance(cause, P2PCommError):
            why = cause.code.value
        elif exc is not None:
            why = type(exc).__name__
        else:
            why = "ended"
        self.reasons[why[:60]] += 1


def fresh_signer() -> crypto.Ed25519Signer:
    return crypto.Ed25519Signer(os.urandom(32))


def message(*fields: object) -> bytes:
    payload = cast(bytes, msgpack.packb(fields, use_bin_type=True))
    return len(payload).to_bytes(4, "big") + payload


async def drain(stream: SecureStream, tally: Tally) -> None:
    """Read and discard until the target ends the connection."""
    try:
        while await stream.receive_some():
            pass
    except GONE as exc:
        tally.closed(stream, exc)
        return
    tally.closed(stream)


async def reconciling(stream: SecureStream, group: bytes) -> SyncSession:
    """Play a member holding nothing of ``group`` until both sides are reconciling:
    from then on RUN, WANT and FORKS are in order (and the target's catch-up bulk is on
    its way, for :func:`drain` to discard)."""
    session = SyncSession(initiator=True, session_hash=stream.handshake_hash, groups=[group])
    session.start()
    await stream.send_all(session.data_to_send())
    while session.state(group) is not GroupState.RECONCILING:
        data = await stream.receive_some()
        if not data:
            raise trio.BrokenResourceError("the target closed before reconciling")
        session.receive_data(data)
        for ev in session.events():
            if isinstance(ev, SharedGroups):
                session.offer_tips(group, [])
        if pending := session.data_to_send():
            await stream.send_all(pending)
    return session


async def as_member(
    port: int,
    seed: bytes,
    group: bytes,
    deadline: float,
    tally: Tally,
    flood: Callable[[SecureStream, SyncSession], Awaitable[None]],
) -> None:
    """Connect as the member ``seed``, reach reconciliation, run ``flood`` while a reader
    discards what comes back; when the target ends the connection, connect again (a
    tenth of a second later) until ``deadline``."""
    signer = crypto.Ed25519Signer(seed)
    with trio.move_on_at(deadline):
        while True:
            stream: SecureStream | None = None
            try:
                stream = await open_secure_stream(LOCALHOST, port, identity=signer)
                tally.counts["connections"] += 1
                session = await reconciling(stream, group)
                async with trio.open_nursery() as nursery:

                    async def reader(s: SecureStream = stream) -> None:
                        await drain(s, tally)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(reader)
                    with contextlib.suppress(*GONE):
                        await flood(stream, session)
                    await trio.sleep_forever()
            except GONE as exc:
                tally.closed(stream, exc)
            finally:
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
            await trio.sleep(0.1)


async def attack_handshakes(port: int, ctx: Context) -> None:
    """As many full Noise handshakes per second as it can, from fresh random keys, on
    several connections at once; each is closed as soon as it is made."""

    async def worker() -> None:
        while True:
            try:
                stream = await open_secure_stream(
                    LOCALHOST, port, identity=fresh_signer(), handshake_timeout=5.0
                )
            except GONE as exc:
                ctx.tally.closed(None, exc)
                await trio.sleep(0)
                continue
            ctx.tally.counts["handshakes"] += 1
            await trio.aclose_forcefully(stream)

    with trio.move_on_at(ctx.deadline):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(worker)


async def holding(
    port: int,
    signer: crypto.Ed25519Signer | None,
    tally: Tally,
    hold: Callable[[SecureStream], Awaitable[None]],
) -> None:
    """One connection slot of an attack, kept as long as the attack lasts: connect (a
    fresh key when ``signer`` is None), run ``hold``; when the target refuses or ends
    the connection, try again 50 ms later."""
    while True:
        stream: SecureStream | None = None
        try:
            stream = await open_secure_stream(LOCALHOST, port, identity=signer or fresh_signer())
            tally.counts["handshakes"] += 1
            await hold(stream)
        except GONE as exc:
            tally.closed(stream, exc)
        finally:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
        await trio.sleep(0.05)


async def attack_partial(port: int, ctx: Context) -> None:
    """150 connections from fresh keys; each completes the handshake, sends all but the
    last byte of a 1 MiB sync message and holds it (connecting again when refused or
    closed)."""
    held = MAX_MESSAGE_SIZE.to_bytes(4, "big") + bytes(MAX_MESSAGE_SIZE - 1)

    async def hold(stream: SecureStream) -> None:
        await stream.send_all(held)
        ctx.tally.counts["held"] += 1
        await drain(stream, ctx.tally)

    with trio.move_on_at(ctx.deadline):
        async with trio.open_nursery() as nursery:
            for _ in range(150):
                nursery.start_soon(holding, port, None, ctx.tally, hold)


async def attack_idle(port: int, ctx: Context) -> None:
    """40 member connections that start a reconciliation (HELLO, SUMMARY, empty TIPS:
    "send me everything") and then never read: the target's catch-up and live pushes
    pile up. Each uses its own member key (a node keeps one connection per member);
    refused or closed, it connects again."""

    async def hold(stream: SecureStream) -> None:
        token = group_token(ctx.group, stream.handshake_hash, True)
        await stream.send_all(
            message(Msg.HELLO, 1, [token])
            + message(Msg.SUMMARY, 0, tips_fingerprint(()))
            + message(Msg.TIPS, 0, [])
        )
        ctx.tally.counts["idle"] += 1
        # Not reading: only the end of the connection (a send fails) is noticed.
        while True:
            await trio.sleep(1.0)
            await stream.send_keepalive()

    with trio.move_on_at(ctx.deadline):
        async with trio.open_nursery() as nursery:
            for seed in ctx.seeds[:40]:
                nursery.start_soon(holding, port, crypto.Ed25519Signer(seed), ctx.tally, hold)


async def attack_empty_stream(port: int, ctx: Context) -> None:
    """One member streaming empty FORKS and WANT messages as fast as it can."""
    blob = (message(Msg.FORKS, 0, []) + message(Msg.WANT, 0, [])) * 2048

    async def flood(stream: SecureStream, session: SyncSession) -> None:
        while True:
            await stream.send_all(blob)
            ctx.tally.counts["messages"] += 4096

    await as_member(port, ctx.seeds[0], ctx.group, ctx.deadline, ctx.tally, flood)


async def attack_want_amplify(port: int, ctx: Context) -> None:
    """One member asking, again and again, for entries the target stores (up to 4,096
    a WANT): a few KB asked, hundreds of KB answered, each entry's signature checked."""
    ids = ctx.ids[:MAX_WANT]
    want = message(Msg.WANT, 0, ids)

    async def flood(stream: SecureStream, session: SyncSession) -> None:
        while True:
            await stream.send_all(want)
            ctx.tally.counts["wants"] += 1

    await as_member(port, ctx.seeds[0], ctx.group, ctx.deadline, ctx.tally, flood)


async def attack_bogus_forks(port: int, ctx: Context) -> None:
    """One member sending fork proofs whose signatures are not valid (64 a message,
    each costing the target two signature checks)."""
    me = KeyPair(ctx.seeds[0])
    proofs = []
    for i in range(64):
        heads = [
            encode_header(
                make_header(
                    group=ctx.group,
                    author=me.public_key,
                    seq=1000 + i,
                    prev=os.urandom(32),
                    links=(),
                    timestamp=now_ms(),
                    kind=Kind.POST,
                    body=Post(text=f"fork {side}").encode(),
                )
            )
            for side in "ab"
        ]
        runs = [AuthenticatedRun(headers=(h,), signature=os.urandom(64)) for h in heads]
        proofs.append(encode_fork_proof(ForkProof(a=runs[0], b=runs[1])))
    blob = message(Msg.FORKS, 0, proofs) * 16

    async def flood(stream: SecureStream, session: SyncSession) -> None:
        while True:
            await stream.send_all(blob)
            ctx.tally.counts["proofs"] += 64 * 16

    await as_member(port, ctx.seeds[0], ctx.group, ctx.deadline, ctx.tally, flood)


def orphan_chain(me: KeyPair, group: bytes, n: int) -> list[Entry]:
    """``n`` validly signed posts of ``me``: a chain starting at a sequence far ahead,
    after a ``prev`` nobody holds, so that they wait for a parent that never comes."""
    body = Post(text="p" * 100).encode()
    seq = random.randrange(10**6, 10**12)
    prev = os.urandom(32)
    ts = now_ms()
    run = []
    for i in range(n):
        e = create_entry(
            me,
            group=group,
            seq=seq + i,
            prev=prev,
            links=(),
            timestamp=ts,
            kind=Kind.POST,
            body=body,
        )
        run.append(e)
        prev = e.id
    return run


async def attack_pending_poison(port: int, ctx: Context) -> None:
    """One member that starts a reconciliation and sends validly signed entries of its
    own whose parents never come (:func:`orphan_chain`, a new one each time), and never
    sends DONE."""
    me = KeyPair(ctx.seeds[0])

    async def flood(stream: SecureStream, session: SyncSession) -> None:
        while True:
            run = await trio.to_thread.run_sync(orphan_chain, me, ctx.group, 500)
            session.send_entries(ctx.group, run)
            await stream.send_all(session.data_to_send())
            ctx.tally.counts["entries"] += len(run)

    await as_member(port, ctx.seeds[0], ctx.group, ctx.deadline, ctx.tally, flood)


async def catch_up(port: int, ctx: Context) -> None:
    """Not an attack: a member whose store holds many posts the target lacks (written
    while the two were apart) connects with the library's node, and the target
    catches up on all of them while it serves the honest member."""
    assert ctx.store is not None
    with SqliteStore(ctx.store) as store:
        async with open_node(
            store, KeyPair(ctx.seeds[0]), groups=[ctx.group], peers=[(LOCALHOST, port)]
        ) as node:
            events = node.subscribe()
            with trio.move_on_at(ctx.deadline):
                async for ev in events:
                    if isinstance(ev, GroupSynced):
                        ctx.tally.counts["synced"] += 1
                    elif isinstance(ev, PeerDown):
                        ctx.tally.counts["closed_by_target"] += 1
                        ctx.tally.reasons[ev.reason.split(":", 1)[0][:60]] += 1
            ctx.tally.counts["bytes_sent"] = node.statistics().bytes_sent


async def attack_repeat(port: int, ctx: Context) -> None:
    """One member that sends the same 500 validly signed entries of its own
    (:func:`orphan_chain`: they stay pending) again and again."""
    run = orphan_chain(KeyPair(ctx.seeds[0]), ctx.group, 500)

    async def flood(stream: SecureStream, session: SyncSession) -> None:
        while True:
            session.send_entries(ctx.group, run)
            await stream.send_all(session.data_to_send())
            ctx.tally.counts["entries"] += len(run)

    await as_member(port, ctx.seeds[0], ctx.group, ctx.deadline, ctx.tally, flood)


class Context:
    def __init__(
        self,
        group: bytes,
        seeds: list[bytes],
        ids: list[bytes],
        deadline: float,
        store: str | None = None,
    ):
        self.group = group
        self.seeds = seeds
        self.ids = ids
        self.deadline = deadline
        self.store = store
        self.tally = Tally()


ATTACKS: dict[str, Callable[[int, Context], Awaitable[None]]] = {
    "handshakes": attack_handshakes,
    "partial": attack_partial,
    "idle": attack_idle,
    "empty-stream": attack_empty_stream,
    "want-amplify": attack_want_amplify,
    "bogus-forks": attack_bogus_forks,
    "pending-poison": attack_pending_poison,
    "repeat": attack_repeat,
    "catch-up": catch_up,
}


async def attack(name: str, port: int, ctx: Context) -> None:
    started = time.monotonic()
    out("START")
    await ATTACKS[name](port, ctx)
    elapsed = time.monotonic() - started
    doc: dict[str, object] = dict(ctx.tally.counts)
    doc["elapsed"] = round(elapsed, 3)
    doc["reasons"] = dict(ctx.tally.reasons)
    out(json.dumps(doc))


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "target":
        trio.run(target, argv[1], bytes.fromhex(argv[2]), bytes.fromhex(argv[3]), float(argv[4]))
    elif mode == "honest":
        trio.run(honest, argv[1], bytes.fromhex(argv[2]), bytes.fromhex(argv[3]), int(argv[4]))
    elif mode == "attack":
        name, port, group = argv[1], int(argv[2]), bytes.fromhex(argv[3])
        seeds = [bytes.fromhex(s) for s in argv[4].split(",") if s]
        duration = float(argv[5])
        with open(argv[6]) as f:
            ids = [bytes.fromhex(line) for line in f.read().split()]

        store = argv[7] if len(argv) > 7 else None

        async def run() -> None:
            ctx = Context(group, seeds, ids, trio.current_time() + duration, store)
            await attack(name, port, ctx)

        trio.run(run)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
