"""Run one benchmark suite, print a table of its figures and optionally write them as JSON.

    python -m benchmarks log --json bench-log.json
    python -m benchmarks membership --json bench-membership.json
    python -m benchmarks sync --json bench-sync.json
    python -m benchmarks gossip --json bench-gossip.json
    python -m benchmarks discovery --json bench-discovery.json
    python -m benchmarks gossip-real --json bench-gossip-real.json
    python -m benchmarks floods --json bench-floods.json
    python -m benchmarks crypto --json bench-crypto.json

Each suite is a module ``benchmarks/<name>.py`` (a ``-`` in the suite's name is a ``_``
in the module's: ``gossip-real`` is ``benchmarks/gossip_real.py``) with
``run(quick: bool) -> dict``; the dict maps figure names to numbers. ``targets``
(optional module attribute) maps figure names to a human description of the target,
shown beside the figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

SUITES = (
    "log",
    "membership",
    "sync",
    "discovery",
    "gossip",
    "gossip-real",
    "floods",
    "crypto",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(f"benchmarks.{args.suite.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        print(f"benchmark suite {args.suite!r} is not available: {exc}", file=sys.stderr)
        return 2
    started = time.time()
    figures: dict[str, object] = module.run(quick=args.quick)
    targets: dict[str, str] = getattr(module, "TARGETS", {})
    width = max(len(k) for k in figures)
    print(f"{'figure':<{width}}  {'value':>14}  target")
    print(f"{'-' * width}  {'-' * 14}  ------")
    for key, value in figures.items():
        shown = (
            f"{value:,.3f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value)
        )
        print(f"{key:<{width}}  {shown:>14}  {targets.get(key, '')}")
    if args.json:
        doc = {
            "suite": args.suite,
            "quick": args.quick,
            "started": started,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "figures": figures,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
