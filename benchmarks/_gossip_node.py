"""One node of the real gossip benchmark, run as its own OS process by
``benchmarks/gossip_real.py``.

    python -m benchmarks._gossip_node STORE GROUP_HEX SEED_HEX [--node-options JSON]
        [--no-offload]

``STORE`` is a SQLite store that already holds the group. ``--node-options`` is a JSON
object of extra keyword arguments for ``open_node`` (``{"max_connections": 5}``, or
``{"gossip": null}`` to turn gossip off); the suite passes them unchanged to every node.
An object given as ``gossip`` becomes a ``GossipConfig`` (nested objects its
``hyparview`` and ``plumtree`` parts): ``{"gossip": {"hyparview": {"active_view": 4}}}``.
``--no-offload`` opens the store with ``offload=False`` (no writer process: the node's
ingests are written by its own connection); by default it is opened as ``p2pcomm run``
opens it.

The process imports everything, then reads commands on stdin, one a line, and writes
JSON lines on stdout, each with an ``"ev"`` key:

``start [HOST:PORT ...]``
    ``open_node(store, identity, host="127.0.0.1", port=0, peers=[bootstrap, ...],
    **options)``; replies ``{"ev": "up", "port": N, "bound": B}``, where ``B`` is the
    node's bound on connected peers (``max_connections`` from the options or
    ``open_node``'s default) or null when the node has none. Once started:
``post TEXT``
    posts ``TEXT`` to the group (in the background: the next command is read at once);
    replies ``{"ev": "posted", "id": HEX, "t": T0, "size": N}``, ``T0`` being
    ``time.monotonic()`` just before the post began (the author's own durable write
    is part of the latency) and ``N`` the length of the encoded entry.
``stats``
    replies ``{"ev": "stats", ...}``: ``Node.statistics()``'s counters, the peers
    connected now (hex ids), ``max_peers``, the most peers connected at once, ``cpu_s``,
    this process's CPU time so far (all threads), and when the node gossips
    (``node.overlay``), the group's gossip ``neighbours`` (hex ids) and
    ``gossip_payloads``, the GOSSIP messages with a full entry it received (duplicates
    included), else nulls.
``holds HEX ...``
    replies ``{"ev": "holds", "held": [HEX, ...]}``: those of the ids the store holds.
``quit``, or stdin closed
    leaves ``open_node`` (connections close) and exits.

Unprompted lines:

``{"ev": "status", "peers": N, "synced": K, "neighbours": G}``
    whenever the number of connected peers, of those in sync (``Node.is_synced``), or
    of the group's gossip neighbours (null without gossip) changes; sampled every
    50 ms together with ``max_peers``.
``{"ev": "added", "ids": [HEX, ...], "t": T, "origin": HEX | null}``
    for every ``EntriesAdded`` event (every entry the node stores, received or
    appended here), ``T`` being ``time.monotonic()`` when this process saw it.
    ``time.monotonic()`` is one clock for every process on Linux, so times of
    different nodes compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import time
import typing
from typing import Any

import trio

from p2pcomm.core.gossip import GossipConfig
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import encode_entry
from p2pcomm.net.node import EntriesAdded, Node, open_node
from p2pcomm.store import SqliteStore

#: Seconds between two samples of the peers connected.
SAMPLE_EVERY = 0.05


def say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def connections_bound(options: dict[str, Any]) -> int | None:
    """The node's bound on connected peers: the option given, else ``open_node``'s
    default for it, else None (no such option)."""
    if "max_connections" in options:
        return int(options["max_connections"])
    param = inspect.signature(open_node).parameters.get("max_connections")
    if param is None or param.default is inspect.Parameter.empty or param.default is None:
        return None
    return int(param.default)


def from_json(cls: type, value: dict[str, Any]) -> Any:
    """An instance of dataclass ``cls`` from a JSON object (nested objects make the
    fields' own dataclasses)."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        k: from_json(hints[k], v)
        if isinstance(v, dict) and dataclasses.is_dataclass(hints.get(k))
        else v
        for k, v in value.items()
    }
    return cls(**kwargs)


def node_options(value: dict[str, Any]) -> dict[str, Any]:
    """``open_node`` keyword arguments from their JSON form."""
    out = dict(value)
    if isinstance(out.get("gossip"), dict):
        out["gossip"] = from_json(GossipConfig, out["gossip"])
    return out


def overlay(node: Node) -> Any:
    """The node's gossip (``node.overlay``), or None when it does not gossip."""
    return getattr(node, "overlay", None)


class Lines:
    """stdin as lines, read without blocking the event loop."""

    def __init__(self) -> None:
        self.stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        self.buffer = b""

    async def next(self) -> str | None:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some()
            if not data:
                rest, self.buffer = self.buffer, b""
                return rest.decode() if rest else None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


class Runner:
    def __init__(self, store: SqliteStore, group: bytes, identity: KeyPair) -> None:
        self.store = store
        self.group = group
        self.identity = identity
        self.max_peers = 0

    async def watch(self, node: Node) -> None:
        """Say every stored entry, with the time it was seen."""
        async for event in node.subscribe():
            if isinstance(event, EntriesAdded) and event.group == self.group:
                t = time.monotonic()
                say(
                    {
                        "ev": "added",
                        "ids": [e.id.hex() for e in event.entries],
                        "t": t,
                        "origin": event.origin.hex() if event.origin is not None else None,
                    }
                )
            self.max_peers = max(self.max_peers, len(node.peers()))

    async def sample(self, node: Node) -> None:
        """Every 50 ms: the most peers connected at once, and a status line on change."""
        last: tuple[int, int, int | None] | None = None
        while True:
            peers = node.peers()
            self.max_peers = max(self.max_peers, len(peers))
            ov = overlay(node)
            neighbours = len(ov.neighbours(self.group)) if ov is not None else None
            now = (len(peers), sum(1 for p in peers if node.is_synced(p)), neighbours)
            if now != last:
                say({"ev": "status", "peers": now[0], "synced": now[1], "neighbours": now[2]})
                last = now
            await trio.sleep(SAMPLE_EVERY)

    async def post(self, node: Node, text: str) -> None:
        t0 = time.monotonic()
        entry = await node.group(self.group).post(text)
        say({"ev": "posted", "id": entry.id.hex(), "t": t0, "size": len(encode_entry(entry))})

    def stats(self, node: Node) -> dict[str, Any]:
        st = node.statistics()
        ov = overlay(node)
        return {
            "ev": "stats",
            "peers": [p.hex() for p in node.peers()],
            "max_peers": self.max_peers,
            "bytes_sent": st.bytes_sent,
            "bytes_received": st.bytes_received,
            "wire_bytes_sent": st.wire_bytes_sent,
            "wire_bytes_received": st.wire_bytes_received,
            "entries_received": st.entries_received,
            "entries_accepted": st.entries_accepted,
            "refused_peers": st.refused_peers,
            "cpu_s": time.process_time(),
            "neighbours": (
                sorted(p.hex() for p in ov.neighbours(self.group)) if ov is not None else None
            ),
            "gossip_payloads": ov.payloads_received if ov is not None else None,
        }

    def holds(self, ids: list[str]) -> list[str]:
        return [i for i in ids if self.store.get_entry(self.group, bytes.fromhex(i)) is not None]

    async def serve(self, node: Node, lines: Lines) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watch, node)
            nursery.start_soon(self.sample, node)
            while True:
                line = await lines.next()
                if line is None or line.strip() == "quit":
                    break
                command, _, rest = line.partition(" ")
                if command == "post":
                    nursery.start_soon(self.post, node, rest)
                elif command == "stats":
                    say(self.stats(node))
                elif command == "holds":
                    held = await trio.to_thread.run_sync(self.holds, rest.split())
                    say({"ev": "holds", "held": held})
                elif command:
                    raise SystemExit(f"unknown command {command!r}")
            nursery.cancel_scope.cancel()


async def main_async(
    store_path: str, group: bytes, seed: bytes, options: dict[str, Any], offload: bool
) -> None:
    lines = Lines()
    line = await lines.next()
    if line is None:
        return
    command, _, rest = line.partition(" ")
    if command != "start":
        raise SystemExit(f"expected 'start [HOST:PORT ...]', got {line!r}")
    peers: list[tuple[str, int]] = []
    for address in rest.split():
        host, _, port = address.rpartition(":")
        peers.append((host, int(port)))
    identity = KeyPair(seed)
    with SqliteStore(store_path, offload=offload) as store:
        runner = Runner(store, group, identity)
        async with open_node(
            store, identity, host="127.0.0.1", port=0, peers=peers, **node_options(options)
        ) as node:
            say({"ev": "up", "port": node.address[1], "bound": connections_bound(options)})
            await runner.serve(node, lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._gossip_node")
    parser.add_argument("store")
    parser.add_argument("group")
    parser.add_argument("seed")
    parser.add_argument("--node-options", default="{}", help="JSON: extra open_node arguments")
    parser.add_argument("--no-offload", action="store_true", help="no store writer process")
    args = parser.parse_args(argv)
    options = json.loads(args.node_options)
    if not isinstance(options, dict):
        raise SystemExit("--node-options must be a JSON object")
    trio.run(
        main_async,
        args.store,
        bytes.fromhex(args.group),
        bytes.fromhex(args.seed),
        options,
        not args.no_offload,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
