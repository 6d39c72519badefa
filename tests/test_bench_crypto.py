"""The crypto benchmark (benchmarks/crypto.py), quick: every figure is there, and those
that follow from the formats of spec 12 alone are exactly what the formats say."""

from __future__ import annotations

from benchmarks import crypto as bench


def test_crypto_benchmark_figures_follow_the_formats() -> None:
    figures = bench.run(quick=True)
    assert set(bench.TARGETS) <= set(figures)
    # 12.4: array, version, epoch id (bin8 of 8), nonce (bin8 of 12), the ciphertext's
    # bin header (2 bytes under 256, 3 above) and the 16-byte tag.
    assert figures["envelope_overhead_small_bytes"] == 1 + 1 + 10 + 14 + 2 + 16
    assert figures["envelope_overhead_bytes"] == 1 + 1 + 10 + 14 + 2 + 16
    # 12.5/12.6: eph_pub, 48 bytes per remaining member, one pointer (secret + tag).
    for n in (50, 300):
        assert figures[f"rekey_body_bytes_n{n}"] == 32 + 48 * (n - 1) + 32 + 16
    # Padmé: the worst case is a power of two, whose terminator starts a new class.
    at = figures["padding_overhead_max_at_bytes"]
    assert isinstance(at, int) and at & (at - 1) == 0
    for key in ("rekey_build_ms_n300", "open_slot_ms", "seal_body_us", "sign_us"):
        value = figures[key]
        assert isinstance(value, float) and value > 0, key
