"""What the benchmark measures a run with: wall time, client CPU and peak memory of the whole process
tree (start-up included), and the most calls the server had in flight at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distill.sim import SimServer


def environment(scratch: Path) -> dict[str, str]:
    """This environment with bytecode caching on, as on a user's machine (compiled files go to scratch):
    without it every run would compile the openai SDK and pytest's rewritten modules from source."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    peak_in_flight: int
    returncode: int
    output: str


def measure(command: Sequence[str], cwd: Path, env: Mapping[str, str], sim: SimServer | None = None,
            timeout_s: float = 1800.0) -> Run:
    """Run a command to its end; CPU and memory are its own and its children's (wait4)."""
    if sim is not None:
        sim.clear_requests()
    with tempfile.TemporaryFile() as sink:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        sink.seek(0)
        output = sink.read().decode(errors="replace")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, sim.peak_in_flight if sim else 0,
               process.returncode, output)


def median(runs: Sequence[Run]) -> Run:
    """The run of median wall time."""
    return sorted(runs, key=lambda run: run.wall_s)[len(runs) // 2]


def passed_of_pytest(output: str) -> str:
    """`passed/total` from pytest's last line."""
    last = output.splitlines()[-1] if output.strip() else ""
    counts = {kind: int(number) for number, kind in re.findall(r"(\d+) (passed|failed|errors?)", last)}
    total = sum(counts.values())
    return f"{counts.get('passed', 0)}/{total}" if total else "?"


def spread(runs: Sequence[Run]) -> str:
    walls = [run.wall_s for run in runs]
    return f"{min(walls):.2f}-{max(walls):.2f}" if len(walls) > 1 else "-"


def cases(count: int) -> list[dict[str, Any]]:
    """Short factual questions with reference answers; the simulated student gets about half wrong."""
    return [{"id": f"c{i:04d}", "metadata": {"split": "test"},
             "messages": [{"role": "user", "content": f"In which year did expedition {i} reach station {i % 17}?"},
                          {"role": "assistant", "content": f"Expedition {i} reached station {i % 17} in {1900 + i % 97}."}]}
            for i in range(count)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
