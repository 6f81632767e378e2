"""`python benchmarks/strict_json_scan.py`: the cost of `strict_json.nesting`, the scan that runs before
every parse of outside text (dataset lines, `valid_json`/`matches_schema` outputs, judge replies).

For each hostile shape it prints seconds per MB at 256 KB and at 4 MB and their ratio: a linear scan
costs the same per MB at both sizes (ratio near 1; the old pattern's would be 16: it took 0.16 s for
4 KB, 1.6 s for 16 KB, 46 s for 64 KB of open quotes). The baseline figure is `json.loads` of a valid
1 MB document: the scan should cost about as much as the parse it guards. Not a test: CI never runs
it (no timing thresholds in tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from pytest_distill.strict_json import nesting

KB = 1 << 10
SHAPES: dict[str, Callable[[int], str]] = {
    "open quotes with escaped quotes": lambda size: '"' + 'a\\"' * (size // 3),
    "escaped quotes outside strings": lambda size: '\\"' * (size // 2),
    "quote-backslash pairs": lambda size: '"\\' * (size // 2),
    "many backslashes": lambda size: '"' + "\\" * size,
    "deep brackets": lambda size: "[" * size,
    "deep brackets between strings": lambda size: '["' * (size // 2),
    "valid document": lambda size: json.dumps([{"k": "v [x] \\ \"q\"", "n": [1, 2]}] * (size // 40)),
}
RATIO_LIMIT = 3.0
"""Seconds per MB at 4 MB over those at 256 KB above this means the scan is not linear (a busy machine
makes the figures noisy: best of `--runs`)."""


def per_mb(function: Callable[[str], object], text: str, runs: int) -> float:
    """The best of `runs` timings, in seconds per MB of text."""
    best = min(timed(function, text) for _ in range(runs))
    return best / (len(text) / (KB * KB))


def timed(function: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    function(text)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    baseline = per_mb(json.loads, SHAPES["valid document"](KB * KB), args.runs)
    print(f"baseline: json.loads of a valid 1 MB document, {baseline:.3f} s/MB")
    linear = True
    for shape, make in SHAPES.items():
        small, large = per_mb(nesting, make(256 * KB), args.runs), per_mb(nesting, make(4 * KB * KB), args.runs)
        ratio = large / small if small else 1.0
        linear &= ratio <= RATIO_LIMIT
        print(f"{shape:34} 256 KB {small:.3f} s/MB   4 MB {large:.3f} s/MB   ratio {ratio:4.1f}   "
              f"{large / baseline:4.1f}x the baseline")
    print(f"linear (ratio <= {RATIO_LIMIT} for every shape): {'yes' if linear else 'NO'}")
    return 0 if linear else 1


if __name__ == "__main__":
    sys.exit(main())
