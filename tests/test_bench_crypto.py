"""The crypto benchmark (benchmarks/crypto.py), quick: every figure is there, those that
follow from the formats of spec 12 alone are exactly what the formats say, and the
invariants hold on the few random histories it runs."""

from __future__ import annotations

from benchmarks import crypto as bench


def test_crypto_benchmark_figures_follow_the_formats() -> None:
    figures = bench.run(quick=True)
    assert set(bench.TARGETS) <= set(figures)
    # 12.4: array, version, epoch id (bin8 of 8), nonce (bin8 of 12), the ciphertext's
    # bin header (2 bytes under 256, 3 above) and the 16-byte tag.
    assert figures["envelope_overhead_small_bytes"] == 1 + 1 + 10 + 14 + 2 + 16
    assert figures["envelope_overhead_bytes"] == 1 + 1 + 10 + 14 + 2 + 16
    for n in (50, 300):
        # 12.5/12.6: eph_pub, 48 bytes per remaining member, one pointer (secret + tag).
        material = 32 + 48 * (n - 1) + 32 + 16
        assert figures[f"rekey_body_bytes_n{n}"] == material
        # The key block: array, version, five empty or short bins' headers (receive,
        # exclude, to, epoch: 2 each; eph_pub: 2), the slots' bin16 header, the
        # pointers' bin8.
        assert figures[f"rekey_block_bytes_n{n}"] == material + 1 + 1 + 2 * 5 + 3 + 2
        # The REMOVE body: array, version, member (bin8 of 32), cut (a fixint), an empty
        # reason, and the key block in a bin16.
        block, body = figures[f"rekey_block_bytes_n{n}"], figures[f"rekey_bytes_n{n}"]
        assert isinstance(block, int) and body == block + 41
        entry = figures[f"rekey_entry_bytes_n{n}"]
        assert isinstance(entry, int) and isinstance(body, int) and entry > body
    # Padmé without a terminator (12.3): the worst case is one past a power of two, the
    # first length of a class, padded to the class's next bound; below 12 %.
    at = figures["padding_overhead_max_at_bytes"]
    assert isinstance(at, int) and (at - 1) & (at - 2) == 0
    assert figures["padding_overhead_max_pct"] == 11.63
    assert figures["padding_overhead_100_bytes"] == 4
    for key in (
        "rekey_build_ms_n300",
        "rekey_seal_ms_n300",
        "open_remove_ms_n300",
        "open_slot_ms",
        "seal_body_us",
        "sign_us",
    ):
        value = figures[key]
        assert isinstance(value, float) and value > 0, key


def test_crypto_benchmark_invariants_hold_on_a_few_histories() -> None:
    figures = bench._histories(4, 40)
    assert figures["histories"] == 4
    assert figures["removed_member_readable"] == 0
    # What a forward cannot deliver (a pointer gap, nobody holding the last epoch) is
    # counted apart; nothing else may be unreadable.
    assert figures["member_unreadable_other"] == 0
    parts = (
        figures["member_unreadable_no_holder_left"],
        figures["member_unreadable_pointer_gap"],
        figures["member_unreadable_no_forwarder"],
    )
    assert figures["member_unreadable"] == sum(p for p in parts if isinstance(p, int))
    mean = figures["history_encrypted_mean"]
    assert isinstance(mean, float) and mean > 0
    assert bench._concurrent_removals() == 0
