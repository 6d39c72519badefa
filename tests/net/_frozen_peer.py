"""A node in its own OS process, for the SIGSTOP test of tests/net/test_failures.py.

    python _frozen_peer.py STORE KEY_SEED PORT

Opens the SQLite store STORE, runs a log-level node (keepalive 0.1 s) as identity
``KeyPair(BLAKE2b-256(b"k%d" % KEY_SEED))``, connects to 127.0.0.1:PORT, prints
``LIVE`` once the group is in sync, then serves until stdin closes (or 30 s pass).
"""

from __future__ import annotations

import hashlib
import sys

import trio

from p2pcomm.core.identity import KeyPair
from p2pcomm.net.node import open_node
from p2pcomm.store import SqliteStore


async def main(path: str, seed: int, port: int) -> None:
    me = KeyPair(hashlib.blake2b(b"k%d" % seed, digest_size=32).digest())
    with SqliteStore(path, durable=False) as store, trio.move_on_after(30.0):
        async with open_node(
            store, me, membership=False, listen=False, keepalive=0.1, liveness_timeout=30.0
        ) as node:
            peer = await node.connect("127.0.0.1", port)
            (group,) = node.logs
            await node.wait_synced(group, peer)
            print("LIVE", flush=True)
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
