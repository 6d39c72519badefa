"""What encryption costs an application, measured side by side with plaintext
(spec/12-encryption.md): part of ``python -m benchmarks crypto``.

* ``append_encrypted_vs_plain``: posts a second through ``Group.post`` (planning,
  sealing, signing, storing in a SQLite file without fsync, re-reading the state) in an
  encrypted group, over the same in a plaintext group; median of the ratios of
  ``pairs`` back-to-back runs, alternating which side goes first (A B B A ...).
* ``sync_encrypted_vs_plain``: the full initial sync of ``benchmarks sync``'s
  membership history (50 authors, 128-byte post bodies; two OS processes over loopback
  TCP, both tracking membership and content) of an encrypted group, over the same of a
  plaintext group; the receiver holds the group's key (its keyring in its store), so it
  opens every post as it ingests it, as a member's node does. Median of the pairwise
  ratios, alternating. ``sync_encrypted_readable`` checks afterwards that the receiver
  reads every post.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from p2pcomm.community import Group
from p2pcomm.core import crypto
from p2pcomm.core.encryptor import genesis_body
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.keyring import Keyring
from p2pcomm.core.membership import AddMember, Kind, Role
from p2pcomm.core.seal import AadContext, epoch_id, epoch_key, seal_body
from p2pcomm.group import GroupLog, ThreadedSignatures
from p2pcomm.store import SqliteStore
from p2pcomm.store.keyrings import KeyringStore

from . import sync as bench_sync

__all__ = ["append_ratio", "sync_ratio"]


def _posts_per_s(folder: Path, encrypted: bool, posts: int) -> float:
    founder = KeyPair(crypto.blake2b_256(b"bench-append-founder"))
    path = folder / f"append-{'enc' if encrypted else 'plain'}-{time.monotonic_ns()}.db"
    with SqliteStore(path, durable=False) as store:
        club = Group.create(store, founder, "bench", encrypted=encrypted)
        club.post("warm up")
        started = time.perf_counter()
        for i in range(posts):
            club.post(f"post number {i} " + "x" * 100)
        elapsed = time.perf_counter() - started
        if encrypted:
            assert club.encrypted and club.items()[-1].text is not None
    return posts / elapsed


def append_ratio(pairs: int, posts: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="p2pcomm-bench-append-"))
    try:
        ratios, enc_rates, plain_rates = [], [], []
        for i in range(pairs):
            order = (True, False) if i % 2 == 0 else (False, True)
            got = {side: _posts_per_s(folder, side, posts) for side in order}
            enc_rates.append(got[True])
            plain_rates.append(got[False])
            ratios.append(got[True] / got[False])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "append_encrypted_vs_plain": round(statistics.median(ratios), 3),
        "append_encrypted_posts_per_s": round(statistics.median(enc_rates), 1),
        "append_plain_posts_per_s": round(statistics.median(plain_rates), 1),
    }


def _build_encrypted(path: Path, authors: int, rounds: int, run: int) -> tuple[bytes, bytes]:
    """``benchmarks sync``'s membership history in an encrypted group: the same authors,
    ADDs and runs of posts, each post's 128-byte body sealed under the group's first
    epoch. Returns the group id and that epoch's secret."""
    keys = [KeyPair(crypto.blake2b_256(b"bench-author-%d" % i)) for i in range(authors)]
    t0 = 1_700_000_000_000
    nodes = [KeyPair(bench_sync.SERVER_SEED).public_key, KeyPair(bench_sync.CLIENT_SEED).public_key]
    receive: dict[bytes, bytes] = {}
    body, secret = genesis_body(
        "bench", founder=keys[0].public_key, receive=receive, random_bytes=os.urandom
    )
    with SqliteStore(path, durable=False) as store, ThreadedSignatures() as sigs:
        log = GroupLog.create(store, keys[0], body=body, timestamp=t0, signatures=sigs)
        group = log.group
        add = [
            (Kind.ADD, AddMember(member=m, role=Role.MEMBER, cut=0, name="m").encode())
            for m in [k.public_key for k in keys[1:]] + nodes
        ]
        log.append_many(keys[0], add, timestamp=t0)
        key = epoch_key(group, [(group, secret)])
        eid = epoch_id(group, [group])
        plain = bench_sync.POST_BODY
        seq = {k.public_key: store.max_seq(group, k.public_key) for k in keys}
        for r in range(rounds):
            for k in keys:
                me = k.public_key
                items = []
                for _ in range(run):
                    seq[me] += 1
                    ctx = AadContext(group, me, seq[me], Kind.POST)
                    items.append((Kind.POST, seal_body(key, eid, os.urandom(12), ctx, plain)))
                log.append_many(k, items, timestamp=t0 + 1 + r)
    return group, secret


def _synced_per_s(built: Path, client_db: Path, group: bytes) -> float:
    """One full sync from a fresh copy of ``built``: the receiver's node writes a key
    entry of its own (its receive key, W1) that reaches the sender, and the same member
    with a fresh store would write another at the same position next time (a fork)."""
    server_db = client_db.with_name(client_db.stem + "-server.db")
    shutil.copyfile(built, server_db)
    with SqliteStore(server_db) as store:
        total = store.count(group)
    got = bench_sync.run_sync(server_db, client_db, group, membership=True)
    # The receiver's node may add a key entry of its own (its receive key, W1).
    if got["entries"] < total:
        raise RuntimeError(f"receiver holds {got['entries']} of {total} entries")
    return total / got["elapsed"]


def sync_ratio(pairs: int, rounds: int) -> dict[str, float | int]:
    folder = Path(tempfile.mkdtemp(prefix="p2pcomm-bench-encsync-"))
    try:
        plain_db, enc_db = folder / "plain.db", folder / "enc.db"
        plain_group = bench_sync.build(plain_db, 50, rounds, 100, members=True)
        enc_group, secret = _build_encrypted(enc_db, 50, rounds, 100)
        client = KeyPair(bench_sync.CLIENT_SEED)
        ratios, enc_rates, plain_rates = [], [], []
        readable = 0
        for i in range(pairs):
            got: dict[bool, float] = {}
            for encrypted in (True, False) if i % 2 == 0 else (False, True):
                client_db = folder / f"client-{i}-{int(encrypted)}.db"
                if encrypted:
                    # The receiver is a member who holds the group's key.
                    with SqliteStore(client_db) as store, KeyringStore(store) as rings:
                        ring = Keyring(epoch_secrets={enc_group: secret})
                        rings.save(client.public_key, client.seed(), ring, os.urandom(12))
                    got[True] = _synced_per_s(enc_db, client_db, enc_group)
                    with SqliteStore(client_db) as store:
                        items = Group(store, client, enc_group).items()
                        readable = sum(it.text is not None for it in items) == len(items) > 0
                else:
                    got[False] = _synced_per_s(plain_db, client_db, plain_group)
                for f in client_db.parent.glob(client_db.stem + "*"):
                    f.unlink()
            enc_rates.append(got[True])
            plain_rates.append(got[False])
            ratios.append(got[True] / got[False])
        with SqliteStore(enc_db) as store:
            entries = store.count(enc_group)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "sync_encrypted_vs_plain": round(statistics.median(ratios), 3),
        "sync_encrypted_entries_per_s": round(statistics.median(enc_rates)),
        "sync_plain_entries_per_s": round(statistics.median(plain_rates)),
        "sync_ratio_entries": entries,
        "sync_encrypted_readable": int(readable),
    }
