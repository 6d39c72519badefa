"""Smoke run of the flood benchmark (benchmarks/floods.py): two attacks and the honest
catch-up, briefly.

The figures are wall-clock and this machine may be busy, so only what does not
depend on timing is checked: every figure is there, and the target's transport
refused both attackers (its admission limits, spec/05-channel.md 5.6.1)."""

from __future__ import annotations

import math

import pytest

from benchmarks import floods


@pytest.mark.slow
def test_flood_benchmark_runs_and_the_target_refuses_the_floods() -> None:
    figures = floods.run(
        quick=True,
        attacks=("handshakes", "partial", "catch-up"),
        duration=1.5,
        rest=0.5,
        pause=0.5,
    )
    for attack in ("handshakes", "partial"):
        for figure in ("honest_p50_ms", "honest_p99_ms", "rss_growth_mb"):
            assert math.isfinite(figures[f"{attack}_{figure}"]), (attack, figure, figures)
        assert figures[f"{attack}_refused"] == 1, figures
        assert figures[f"{attack}_attacker_closed_by_target"] > 0, figures
    assert figures["flood_honest_p99_ms"] == max(
        figures["handshakes_honest_p99_ms"], figures["partial_honest_p99_ms"]
    )
    assert set(floods.TARGETS) <= set(figures)
    # An honest member with much to give is served, not refused, and all it gave is
    # stored.
    assert figures["catch-up_refused"] == 0, figures
    assert figures["catch-up_stored"] == figures["catch-up_posts"], figures
    assert math.isfinite(figures["catch-up_append_p99_ms"]), figures
