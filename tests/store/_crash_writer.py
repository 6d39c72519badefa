"""Child process of ``test_crash.py``: ingest pre-generated entries into a SqliteStore.

Usage: ``python _crash_writer.py DB BLOBS GROUP_HEX CHUNK``

``BLOBS`` holds encoded entries, each preceded by its length (4 bytes, big-endian), in
causal order. They are ingested ``CHUNK`` at a time through ``GroupLog.ingest_encoded``
(one store transaction per call, committed by the store's writer process, whose pid
the child prints first as ``writer PID``); after each call returns the child prints
``stored N`` (N = entries stored so far) and flushes, so the parent knows that at least
N entries are durable. The parent kills this process with SIGKILL at some point.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore


def read_blobs(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def main() -> int:
    db, blobs_path, group_hex, chunk_text = sys.argv[1:5]
    blobs = read_blobs(Path(blobs_path))
    chunk = int(chunk_text)
    store = SqliteStore(db)  # durable: each commit is fsynced before the call returns
    log = GroupLog(store, bytes.fromhex(group_hex))
    # Calls of CHUNK >= OFFLOAD_MIN entries are written by the store's writer process;
    # the parent waits for it to end before looking at the file.
    writer = store.writer()
    print(f"writer {writer.pid if writer else 0}", flush=True)
    stored = 0
    for i in range(0, len(blobs), chunk):
        batch = blobs[i : i + chunk]
        result = log.ingest_encoded(batch)
        if result.rejected or len(result.accepted) != len(batch):
            print(f"error at {i}: {result.rejected[:3]}", file=sys.stderr, flush=True)
            return 2
        stored += len(result.accepted)
        print(f"stored {stored}", flush=True)
    print("done", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
