"""Content encryption building blocks (spec/12-encryption.md), timed on this machine.

    python -m benchmarks crypto --json bench-crypto.json

Only what exists is measured: the envelope, padding, rekey slots and pointers of chapter
12. Nothing in the log uses them yet, so the figures of issue 13 that need the operations
carrying rekeys (the size of a REMOVE entry with its rekey, encrypted against plaintext
append and sync, who can read what over random histories) are not measured here; this
suite says so rather than estimate them.

Figures:

* ``envelope_overhead_bytes``: ``len(envelope) - len(padded plaintext)`` for a 200-byte
  post (the envelope's framing, epoch id, nonce and tag; padding excluded);
  ``envelope_overhead_small_bytes`` the same for a 20-byte post (a shorter length
  header).
* ``padding_overhead_max_pct``: the largest ``padme_length(n + 1) / n - 1`` over every
  plaintext length ``n`` from 100 to 47,103 bytes (the ``+ 1`` is the terminator byte),
  in percent, and the length where it is (``padding_overhead_max_at_bytes``: a power of
  two, whose terminator starts the next size class); ``_from_256`` the same from 256
  bytes; ``padding_overhead_100_bytes`` / ``_1000_bytes`` / ``_47000_bytes``: bytes
  added to a plaintext of that length.
* ``rekey_body_bytes_n50`` / ``_n300``: ``eph_pub`` + the slots for the n - 1 remaining
  members + pointers to one previous secret: the key material a removal's rekey adds to
  its entry (the entry's header, signature and framing come on top, and are not
  specified yet).
* ``rekey_build_ms_n50`` / ``_n300``: median time to seal a fresh secret to n - 1
  recipients and seal the pointers (with ``verify_ms_n300``: one holder rechecking every
  slot); ``open_slot_ms``: one recipient opening its slot by index (median of 2,000),
  ``open_slot_trial_ms_n300``: opening without knowing its index, the last slot of 299.
* ``seal_body_us`` / ``open_body_us``: one 200-byte post sealed and opened (median of
  20,000 each); ``sign_us`` the same machine's Ed25519 signature of an entry header's
  size, for scale (the append cost an envelope would add to).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from p2pcomm.core import crypto
from p2pcomm.core.seal import (
    MAX_PLAINTEXT_SIZE,
    AadContext,
    open_body,
    open_slot,
    pad,
    padme_length,
    seal_body,
    seal_pointers,
    seal_slots,
    verify_slots,
)

TARGETS = {
    "envelope_overhead_bytes": "<= 48",
    "padding_overhead_max_pct": "<= 12",
    "rekey_body_bytes_n50": "<= 2,800 (the whole entry)",
    "rekey_body_bytes_n300": "<= 15,000 (the whole entry)",
    "rekey_build_ms_n300": "<= 50",
    "open_slot_ms": "<= 1",
}

GROUP = crypto.blake2b_256(b"bench crypto group")
AUTHOR = crypto.blake2b_256(b"bench crypto author")


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _receive_keys(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        private = crypto.blake2b_256(b"bench receive key %d" % i)
        out.append((private, crypto.x25519_public(private)))
    return out


def _rekey(n: int) -> tuple[bytes, list[tuple[bytes, bytes]], int, float]:
    """A removal among n members: the secret, the n - 1 recipients, the rekey body's
    size and the median build time."""
    keys = _receive_keys(n - 1)
    recipients = [pub for _, pub in keys]
    previous = [os.urandom(32)]
    secret = os.urandom(32)
    rekey = seal_slots(secret, recipients, GROUP, b"remove")
    size = len(rekey.eph_pub) + len(rekey.slots) + len(seal_pointers(secret, previous))

    def build() -> None:
        s = os.urandom(32)
        seal_slots(s, recipients, GROUP, b"remove")
        seal_pointers(s, previous)

    return secret, keys, size, _median_ms(build, 21 if n > 100 else 101)


def _opening(n: int) -> dict[str, float]:
    """What one holder pays for a removal among n members: checking every slot, opening
    its own by index, and without knowing its index (the last slot)."""
    secret, keys, _, _ = _rekey(n)
    recipients = [pub for _, pub in keys]
    rekey = seal_slots(secret, recipients, GROUP, b"remove")
    first, last = keys[0][0], keys[-1][0]
    return {
        f"verify_ms_n{n}": round(
            _median_ms(lambda: verify_slots(secret, recipients, rekey, GROUP, b"remove"), 11), 2
        ),
        f"open_slot_trial_ms_n{n}": round(
            _median_ms(lambda: open_slot(last, None, rekey, GROUP, b"remove"), 21), 3
        ),
        "open_slot_ms": round(
            _median_ms(lambda: open_slot(first, 0, rekey, GROUP, b"remove"), 2000), 3
        ),
    }


def run(quick: bool) -> dict[str, object]:
    figures: dict[str, object] = {}
    key, epoch, nonce = os.urandom(32), os.urandom(8), os.urandom(12)
    ctx = AadContext(GROUP, AUTHOR, 7, 32)
    for label, size in (("", 200), ("_small", 20)):
        text = os.urandom(size)
        body = seal_body(key, epoch, nonce, ctx, text)
        figures[f"envelope_overhead{label}_bytes"] = len(body) - len(pad(text))
    ratios = {n: padme_length(n + 1) / n - 1 for n in range(100, MAX_PLAINTEXT_SIZE + 1)}
    worst = max(ratios, key=lambda n: ratios[n])
    figures["padding_overhead_max_pct"] = round(ratios[worst] * 100, 2)
    figures["padding_overhead_max_at_bytes"] = worst
    figures["padding_overhead_max_pct_from_256"] = round(
        max(r for n, r in ratios.items() if n >= 256) * 100, 2
    )
    for n in (100, 1000, 47000):
        figures[f"padding_overhead_{n}_bytes"] = padme_length(n + 1) - n

    for n in (50, 300):
        _, _, size, build_ms = _rekey(n)
        figures[f"rekey_body_bytes_n{n}"] = size
        figures[f"rekey_build_ms_n{n}"] = round(build_ms, 2)
    figures.update(_opening(300))

    repeat = 2000 if quick else 20000
    post = os.urandom(200)
    body = seal_body(key, epoch, nonce, ctx, post)
    figures["seal_body_us"] = round(
        _median_ms(lambda: seal_body(key, epoch, nonce, ctx, post), repeat) * 1000, 1
    )
    figures["open_body_us"] = round(_median_ms(lambda: open_body(key, body, ctx), repeat) * 1000, 1)
    seed, header = os.urandom(32), os.urandom(180)
    figures["sign_us"] = round(
        _median_ms(lambda: crypto.ed25519_sign(seed, header), repeat // 4) * 1000, 1
    )
    return figures
