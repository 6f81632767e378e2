"""`python benchmarks/startup.py`: what installing the plugin costs a suite that does not use it.

A one-test project is run as a whole process, with the plugin and with `-p no:distill`, `--runs` times
each after one warm-up; it prints the median wall time of both and their difference against the target
(at most 0.15 s: the heavy imports, `openai` first, wait until a model is needed). Not a test: CI never
runs it, and a timing threshold in a test would be flaky on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.15


def times(project: Path, extra: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `runs` whole pytest processes (after one that warms the file cache).
    CPU time is the steadier figure on a busy machine."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    walls, cpus = [], []
    for _ in range(runs + 1):
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, cwd=project, env=os.environ, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(time.perf_counter() - started)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls[1:]), statistics.median(cpus[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n", encoding="utf-8")
        without = times(project, ["-p", "no:distill"], args.runs)
        with_plugin = times(project, [], args.runs)
    cost = with_plugin[0] - without[0]
    print(f"one-test session, median of {args.runs}: without the plugin {without[0]:.2f} s wall ({without[1]:.2f} s CPU), "
          f"with it {with_plugin[0]:.2f} s wall ({with_plugin[1]:.2f} s CPU)")
    print(f"the plugin's start-up cost: {cost:.2f} s wall, {with_plugin[1] - without[1]:.2f} s CPU "
          f"(target <= {TARGET_S} s): {'met' if cost <= TARGET_S else 'NOT met'}")
    return 0 if cost <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
