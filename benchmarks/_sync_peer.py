"""One side of the sync benchmark, run as its own OS process by ``benchmarks/sync.py``.

python -m benchmarks._sync_peer serve STORE GROUP_HEX SEED_HEX [--membership]
    listens on 127.0.0.1 port 0, prints "PORT <n>", serves until stdin closes,
    then prints a JSON line of its statistics.
python -m benchmarks._sync_peer sync STORE GROUP_HEX SEED_HEX PORT [--membership]
    dials, waits until the group is reconciled, prints a JSON line with the
    elapsed time, the entry count, and byte counts.

With ``--membership`` the node tracks membership and content (``open_node``'s
default); without, it replicates the log alone.
python -m benchmarks._sync_peer handshakes SEED_HEX PORT N
    N sequential secure handshakes (connect, handshake, close); prints a JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import trio

from p2pcomm.core import crypto
from p2pcomm.core.identity import KeyPair
from p2pcomm.net.admission import AdmissionLimits
from p2pcomm.net.node import GroupSynced, open_node
from p2pcomm.net.transport import open_secure_stream
from p2pcomm.store import SqliteStore


async def serve(store_path: str, group: bytes, seed: bytes, membership: bool) -> None:
    with SqliteStore(store_path) as store:
        # The handshake figure measures the channel, not the listener's per-address
        # rate limit (spec/05-channel.md 5.6.1), which would refuse the 31st at once.
        async with open_node(
            store,
            KeyPair(seed),
            groups=[group],
            membership=membership,
            admission=AdmissionLimits(handshake_rate=None),
        ) as node:
            print(f"PORT {node.address[1]}", flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            st = node.statistics()
            print(
                json.dumps(
                    {
                        "wire_sent": st.wire_bytes_sent,
                        "wire_received": st.wire_bytes_received,
                        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                        "cpu_s": time.process_time(),
                    }
                ),
                flush=True,
            )


async def sync(store_path: str, group: bytes, seed: bytes, port: int, membership: bool) -> None:
    cpu_start = time.process_time()
    with SqliteStore(store_path) as store:
        async with open_node(
            store, KeyPair(seed), groups=[group], listen=False, membership=membership
        ) as node:
            events = node.subscribe()
            start = time.perf_counter()
            peer = await node.connect("127.0.0.1", port)
            with trio.fail_after(600):
                async for event in events:
                    if isinstance(event, GroupSynced) and event.peer_id == peer:
                        break
            elapsed = time.perf_counter() - start
            conn = node._conns[peer]
            st = node.statistics()
            count = store.count(group)
            cpu = time.process_time() - cpu_start
            doc = {
                "elapsed": elapsed,
                "entries": count,
                "sync_sent": conn.replicator.session.bytes_sent,
                "sync_received": conn.replicator.session.bytes_received,
                "wire_sent": st.wire_bytes_sent,
                "wire_received": st.wire_bytes_received,
                "accepted": st.entries_accepted,
                "rejected": conn.replicator.stats.entries_rejected,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "cpu_s": cpu,
            }
    # The store's writer process has ended with the store: its figures are a child's.
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc["writer_cpu_s"] = child.ru_utime + child.ru_stime
    doc["writer_peak_rss_mb"] = child.ru_maxrss / 1024
    print(json.dumps(doc), flush=True)


async def handshakes(seed: bytes, port: int, n: int) -> None:
    signer = crypto.Ed25519Signer(seed)
    start = time.perf_counter()
    for _ in range(n):
        stream = await open_secure_stream("127.0.0.1", port, identity=signer)
        await stream.aclose()
    elapsed = time.perf_counter() - start
    print(json.dumps({"handshakes": n, "elapsed": elapsed}), flush=True)


def main(argv: list[str]) -> None:
    membership = "--membership" in argv
    argv = [a for a in argv if a != "--membership"]
    mode = argv[0]
    if mode == "serve":
        trio.run(serve, argv[1], bytes.fromhex(argv[2]), bytes.fromhex(argv[3]), membership)
    elif mode == "sync":
        trio.run(
            sync, argv[1], bytes.fromhex(argv[2]), bytes.fromhex(argv[3]), int(argv[4]), membership
        )
    elif mode == "handshakes":
        trio.run(handshakes, bytes.fromhex(argv[1]), int(argv[2]), int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
