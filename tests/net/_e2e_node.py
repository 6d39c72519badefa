"""One node of the three-process end-to-end test (tests/net/test_e2e.py).

    python _e2e_node.py STORE KEY_SEED GROUP_HEX ENTRIES TOTAL

Talks to its parent over stdin/stdout, one line per message:

1. opens the SQLite store STORE (holding the group's genesis), appends ENTRIES entries
   as identity ``KeyPair(BLAKE2b-256(b"k%d" % KEY_SEED))``, starts a node on
   127.0.0.1 port 0 and prints ``LISTEN <port>``;
2. reads ``DIAL <port>`` lines (peers to keep a connection to) until ``GO``;
3. when its store holds TOTAL entries (checked on every node event, never by sleeping)
   prints ``DONE <count> <tips fingerprint hex>``;
4. keeps serving until it reads ``EXIT``, then closes the node and the store and exits 0.

Anything that goes wrong, a 30-second limit included, prints ``FAIL <reason>`` and
exits 1.
"""

from __future__ import annotations

import hashlib
import sys

import trio

from p2pcomm.core.content import Post
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.membership import Kind
from p2pcomm.core.sync import tips_fingerprint
from p2pcomm.group import GroupLog
from p2pcomm.net.node import EntriesAdded, open_node
from p2pcomm.store import SqliteStore

KIND_POST = int(Kind.POST)
LIMIT = 30.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def read_line() -> str:
    # abandon_on_cancel: the time limit must not wait for a blocked readline
    line: str = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if not line:
        raise RuntimeError("stdin closed")
    return line.strip()


async def run(path: str, seed: int, group: bytes, entries: int, total: int) -> None:
    me = KeyPair(hashlib.blake2b(b"k%d" % seed, digest_size=32).digest())
    store = SqliteStore(path)
    try:
        log = GroupLog(store, group)
        log.append_many(
            me, [(KIND_POST, Post(text=f"entry {i} of {seed}").encode()) for i in range(entries)]
        )
        async with open_node(store, me, groups=[group]) as node:
            events = node.subscribe()
            say(f"LISTEN {node.address[1]}")
            while (line := await read_line()) != "GO":
                word, port = line.split()
                if word != "DIAL":
                    raise RuntimeError(f"unexpected line {line!r}")
                node.add_peer("127.0.0.1", int(port))
            count = len(log)
            while count < total:
                ev = await events.receive()
                if isinstance(ev, EntriesAdded):
                    count = len(log)
            say(f"DONE {count} {tips_fingerprint(store.tips(group)).hex()}")
            while await read_line() != "EXIT":
                pass
    finally:
        store.close()


async def main() -> None:
    path, seed, group_hex, entries, total = sys.argv[1:6]
    with trio.fail_after(LIMIT):
        await run(path, int(seed), bytes.fromhex(group_hex), int(entries), int(total))


if __name__ == "__main__":
    try:
        trio.run(main)
    except BaseException as exc:
        say(f"FAIL {type(exc).__name__}: {exc}")
        sys.exit(1)
