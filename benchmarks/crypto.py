"""Content encryption (spec/12-encryption.md), measured on this machine: the building
blocks of chapter 12, the operations that carry rekeys, and who can read what over
random histories.

    python -m benchmarks crypto --json bench-crypto.json

Figures:

* ``removed_member_readable``: over ``histories`` random histories (below), the number
  of (entry, member) pairs where a member whose effective removal (REMOVE, BAN or
  LEAVE) is in the entry's past, and who was not added again after it, can derive the
  entry's key from the log and every receive key and secret it ever had (every slot
  tried with every key, every pointer walked). Entries that break X1 are left out
  (their writer broke W3 on purpose; they are void).
* ``member_unreadable``: in the same histories, after one round of forwarding
  (everyone syncs everything, each member writes the forward W4 asks for, everyone
  syncs; a forward hands over the current epoch, W4, or a named past one or part of
  one, W5), the number of (entry, member) pairs where a current member with a receive
  key cannot read an effective encrypted entry whose past it was a member in;
  ``member_unreadable_histories`` how many histories have one. They are split into
  ``_no_holder_left`` (no current member holds every secret of the entry's epoch: the
  rekey reached only members who are gone, so no forward can mend it),
  ``_pointer_gap`` (of the rest, those the member would read if every rekey carried
  pointers), ``_no_forwarder`` (no member holds every secret of the last epoch) and
  ``_other`` (anything else: a bug).
* ``histories``, ``history_steps``: how many histories, of how many steps. Each is
  :func:`p2pcomm.testing.cryptsim.simulate` of ``random_script(Random(seed), steps)``
  for seed 0, 1, ...: six devices; the founder adds an admin, a moderator and a
  member, who publish receive keys and get the first epoch by a forward; two more
  devices start outside. Each step one device (after syncing from another, two times
  in three) posts or replies, adds, removes, bans, leaves, publishes a new receive
  key, rekeys, forwards, invites, joins, or posts without the rekey W3 asks for.
  ``history_entries_mean``, ``history_encrypted_mean`` (encrypted content entries),
  ``history_forwards_mean`` (forwards written by the final round) and
  ``histories_s`` (wall time of the whole run, checks included) describe them.
* ``extra_entries_concurrent_removals``: entries beyond the removals and the posts
  when three admins each remove a member concurrently and, in a second group, two
  admins remove the same member; then every remaining member syncs and posts, and a
  forwarding round runs (a W3 rekey or a W4 forward would count).
* ``rekey_bytes_n50`` / ``_n300``: the body of a REMOVE entry (its key block included)
  in a group of 50 / 300 members who all published a receive key;
  ``rekey_entry_bytes_nN`` the whole encoded entry (header, signature, body);
  ``rekey_block_bytes_nN`` its key block alone.
* ``rekey_build_ms_n50`` / ``_n300``: median time for the remover to make that
  REMOVE's body with its key block (``Encryptor.op_body``: the implicit recipients and
  their receive keys from the resolution, a new secret sealed to each, the pointers);
  ``open_remove_ms_n300``: median time for one member to learn that secret from the
  log (``GroupKeys.learn``: its slot, then the pointers).
* ``envelope_overhead_bytes``: ``len(envelope) - len(padded plaintext)`` for a 200-byte
  post (the envelope's framing, epoch id, nonce and tag; padding excluded);
  ``envelope_overhead_small_bytes`` the same for a 20-byte post (a shorter length
  header).
* ``padding_overhead_max_pct``: the largest ``len(pad(m)) / n - 1`` over every
  plaintext length ``n`` from 100 to ``MAX_PLAINTEXT_SIZE`` (47,104) bytes, ``m`` a
  plaintext of ``n`` bytes (one msgpack value, as every plaintext is: 12.3 PD1), in
  percent, and the length where it is (``padding_overhead_max_at_bytes``: one past a
  size class's bound); ``_from_256`` the same from 256 bytes;
  ``padding_overhead_100_bytes`` / ``_1000_bytes`` / ``_47000_bytes``: bytes added to a
  plaintext of that length.
* ``rekey_body_bytes_n50`` / ``_n300``: ``eph_pub`` + the slots for the n - 1 remaining
  members + pointers to one previous secret: the key material alone.
* ``rekey_seal_ms_n50`` / ``_n300``: median time to seal a fresh secret to n - 1
  given receive keys and seal the pointers (with ``verify_ms_n300``: one holder
  rechecking every slot); ``open_slot_ms``: one recipient opening its slot by index
  (median of 2,000), ``open_slot_trial_ms_n300``: opening without knowing its index,
  the last slot of 299.
* ``seal_body_us`` / ``open_body_us``: one 200-byte post sealed and opened (median of
  20,000 each); ``sign_us`` the same machine's Ed25519 signature of an entry header's
  size, for scale (the append cost an envelope would add to).

* ``append_encrypted_vs_plain``, ``sync_encrypted_vs_plain``: see
  :mod:`benchmarks.crypto_ratios`.

``--quick`` runs 6 histories and fewer repetitions.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable

from p2pcomm.core import crypto
from p2pcomm.core.encoding import encode
from p2pcomm.core.epochs import GroupKeys, KeyBlock
from p2pcomm.core.log import encode_entry
from p2pcomm.core.membership import Kind, MembershipMachine, RemoveMember, Role
from p2pcomm.core.membership.ops import KeysOp
from p2pcomm.core.seal import (
    MAX_PLAINTEXT_SIZE,
    AadContext,
    open_body,
    open_slot,
    pad,
    seal_body,
    seal_pointers,
    seal_slots,
    verify_slots,
)
from p2pcomm.testing import cryptsim
from p2pcomm.testing.crypted import CryptReplica
from p2pcomm.testing.history import Replica, keypair

from . import crypto_ratios

TARGETS = {
    "removed_member_readable": "0",
    "member_unreadable": "0",
    "member_unreadable_other": "0",
    "extra_entries_concurrent_removals": "0",
    "rekey_bytes_n50": "<= 2,800",
    "rekey_bytes_n300": "<= 15,000",
    "rekey_build_ms_n300": "<= 50",
    "open_slot_ms": "<= 1",
    "envelope_overhead_bytes": "<= 48",
    "padding_overhead_max_pct": "<= 12",
    "append_encrypted_vs_plain": ">= 0.9",
    "sync_encrypted_vs_plain": ">= 0.95",
}

HISTORIES = 1000
HISTORIES_QUICK = 6
HISTORY_STEPS = 60

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


def _histories(count: int, steps: int) -> dict[str, object]:
    """The two invariants over ``count`` random histories (see the module's docstring)."""
    started = time.perf_counter()
    readable = unreadable = gap = no_forwarder = affected = gone = 0
    entries = encrypted = forwards = 0
    for seed in range(count):
        world = cryptsim.simulate(cryptsim.random_script(random.Random(seed), steps))
        readable += len(cryptsim.removed_readable(world))
        forwards += len(cryptsim.forward_round(world))
        failures = cryptsim.member_unreadable(world)
        unreadable += len(failures)
        lost = cryptsim.no_holder_left(world, failures)
        gone += len(lost)
        failures = [f for f in failures if f not in lost]
        gaps = cryptsim.behind_pointer_gap(world, failures)
        gap += len(gaps)
        affected += bool(failures) or bool(lost)
        if len(gaps) < len(failures) and cryptsim.nobody_can_forward(world):
            no_forwarder += len(failures) - len(gaps)
        entries += len(world.entries)
        encrypted += len(world.content)
    return {
        "removed_member_readable": readable,
        "member_unreadable": unreadable,
        "member_unreadable_no_holder_left": gone,
        "member_unreadable_pointer_gap": gap,
        "member_unreadable_no_forwarder": no_forwarder,
        "member_unreadable_other": unreadable - gone - gap - no_forwarder,
        "member_unreadable_histories": affected,
        "histories": count,
        "history_steps": steps,
        "history_entries_mean": round(entries / count, 1),
        "history_encrypted_mean": round(encrypted / count, 1),
        "history_forwards_mean": round(forwards / count, 2),
        "histories_s": round(time.perf_counter() - started, 1),
    }


def _concurrent_removals() -> int:
    """Entries beyond the removals and the posts when removals are concurrent: three
    admins remove three members; two admins remove the same member."""
    extra = 0
    for removals in (((1, 4), (2, 5), (3, 6)), ((1, 4), (2, 4))):
        history, founder = CryptReplica.found(keypair(0))
        reps = [founder] + [CryptReplica(history, keypair(i)) for i in range(1, 8)]
        for i, r in enumerate(reps[1:], 1):
            founder.add(r, Role.ADMIN if i <= 3 else Role.MEMBER)
        for r in reps[1:]:
            r.sync(founder)
            r.publish()
            founder.sync(r)
        founder.forward()
        cryptsim.sync_all(reps)
        for remover, target in removals:
            reps[remover].remove(reps[target])
        before = len(history)
        cryptsim.sync_all(reps)
        writers = [r for r in reps if r.id in r.resolve().roles()]
        for r in writers:
            r.post("after the removals")
        cryptsim.sync_all(reps)
        for r in writers:
            r.forward()
        extra += len(history) - before - len(writers)
    return extra


def _removal(n: int, repeat: int) -> dict[str, object]:
    """A REMOVE in a group of ``n`` members who all published a receive key: its sizes,
    the time to make its body, and the time for a member to learn its secret."""
    history, founder = CryptReplica.found(keypair(0))
    members = [Replica(history, keypair(i)) for i in range(1, n)]
    for m in members:
        founder.add(m)
    privates: dict[bytes, bytes] = {}
    for i, m in enumerate(members):
        m.learn(history.entries)
        private = crypto.blake2b_256(b"bench receive key %d" % i)
        public = crypto.x25519_public(private)
        privates[m.id] = private
        m.append(Kind.KEYS, KeysOp(keys=KeyBlock(receive=public).encode()).encode())
    founder.sync(*members)
    K = founder.next_cut()
    body = RemoveMember(member=members[-1].id, cut=members[-1].seq).encode()
    enc = founder.enc

    def build() -> None:
        enc.op_body(Kind.REMOVE, body, seq=founder.seq + 1, K=K)

    build_ms = _median_ms(build, repeat)
    entry = founder.remove(members[-1])
    op = RemoveMember.decode(entry.body or b"")
    reader = members[0]
    machine = MembershipMachine()
    machine.apply_many(history.entries)
    view = machine._core.epochs
    public = crypto.x25519_public(privates[reader.id])

    def learn() -> None:
        GroupKeys(view, reader.id, {public: privates[reader.id]}, {}).learn()

    keys = GroupKeys(view, reader.id, {public: privates[reader.id]}, {})
    assert entry.id in keys.learn(), "the member did not learn the removal's secret"
    return {
        f"rekey_bytes_n{n}": len(entry.body or b""),
        f"rekey_entry_bytes_n{n}": len(encode_entry(entry)),
        f"rekey_block_bytes_n{n}": len(op.keys),
        f"rekey_build_ms_n{n}": round(build_ms, 2),
        **({f"open_remove_ms_n{n}": round(_median_ms(learn, repeat), 3)} if n >= 300 else {}),
    }


def _plaintext(n: int, fill: Callable[[int], bytes] = os.urandom) -> bytes:
    """A plaintext of ``n`` bytes (``n >= 2``), ``fill`` but for its msgpack framing: a
    ``bin`` of ``n - 2`` or ``n - 3`` bytes, or at 258 bytes (between the two) an array
    of such a ``bin`` and a nil."""
    if n == 258:
        return b"\x92" + encode(fill(255)) + b"\xc0"
    return encode(fill(n - 2 if n <= 257 else n - 3))


def run(quick: bool) -> dict[str, object]:
    figures: dict[str, object] = {}
    figures.update(_histories(HISTORIES_QUICK if quick else HISTORIES, HISTORY_STEPS))
    figures["extra_entries_concurrent_removals"] = _concurrent_removals()
    for n in (50, 300):
        figures.update(_removal(n, 5 if quick else 21))
    key, epoch, nonce = os.urandom(32), os.urandom(8), os.urandom(12)
    ctx = AadContext(GROUP, AUTHOR, 7, 32)
    for label, size in (("", 200), ("_small", 20)):
        text = _plaintext(size)
        body = seal_body(key, epoch, nonce, ctx, text)
        figures[f"envelope_overhead{label}_bytes"] = len(body) - len(pad(text))
    added = {n: len(pad(_plaintext(n, bytes))) - n for n in range(100, MAX_PLAINTEXT_SIZE + 1)}
    ratios = {n: (n + extra) / n - 1 for n, extra in added.items()}
    worst = max(ratios, key=lambda n: ratios[n])
    figures["padding_overhead_max_pct"] = round(ratios[worst] * 100, 2)
    figures["padding_overhead_max_at_bytes"] = worst
    figures["padding_overhead_max_pct_from_256"] = round(
        max(r for n, r in ratios.items() if n >= 256) * 100, 2
    )
    for n in (100, 1000, 47000):
        figures[f"padding_overhead_{n}_bytes"] = added[n]

    for n in (50, 300):
        _, _, size, build_ms = _rekey(n)
        figures[f"rekey_body_bytes_n{n}"] = size
        figures[f"rekey_seal_ms_n{n}"] = round(build_ms, 2)
    figures.update(_opening(300))

    repeat = 2000 if quick else 20000
    post = _plaintext(200)
    body = seal_body(key, epoch, nonce, ctx, post)
    figures["seal_body_us"] = round(
        _median_ms(lambda: seal_body(key, epoch, nonce, ctx, post), repeat) * 1000, 1
    )
    figures["open_body_us"] = round(_median_ms(lambda: open_body(key, body, ctx), repeat) * 1000, 1)
    seed, header = os.urandom(32), os.urandom(180)
    figures["sign_us"] = round(
        _median_ms(lambda: crypto.ed25519_sign(seed, header), repeat // 4) * 1000, 1
    )
    figures.update(crypto_ratios.append_ratio(4 if quick else 8, 50 if quick else 400))
    figures.update(crypto_ratios.sync_ratio(2 if quick else 6, 2 if quick else 20))
    return figures
