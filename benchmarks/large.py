"""`python benchmarks/large.py`: the plugin at 100,000 cases, and a 10,000-case run through the Batch API.

Against the simulator with no latency, from one JSONL file of `--cases` cases (default 100,000):
collection time and peak memory; the plugin's cost per case over plain pytest parametrized over the same
rows (goal: at most 1 ms a case); peak memory against the dataset's size on disk (goal: it grows no
faster); the results file's size and the time to write it. Then one run of `--batch-cases` cases
(default 10,000) whose model calls go through the simulator's Batch API (`--distill-batch`).

Prints the figures against `benchmarks/baseline.json`'s "large" block; `--save-baseline` keeps them
there (the other figures stay). Every run is a whole process, start-up included. Not a test: CI never
runs it, and nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_distill.sim import SimServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Run, cases, environment, measure  # noqa: E402
from scale import BARE_SUITE, CALLING_SUITE, PLAIN_SUITE, per_case_ms, suite  # noqa: E402

BASELINE = HERE / "baseline.json"
CASES = 100_000
BATCH_CASES = 10_000
GRADED_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("cases.jsonl")
def test_case(case):
    assert string_check(case.expected, case.expected)
"""
"""A graded test with no model: each case one record of the results file."""
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider")


def measure_large(scratch: Path, count: int, batch_count: int) -> dict[str, Any]:
    rows = cases(count)
    scratch.mkdir()
    env = environment(scratch)
    plain = suite(scratch / "plain", PLAIN_SUITE, rows)
    bare = suite(scratch / "bare", BARE_SUITE, rows)
    on_disk = (bare / "cases.jsonl").stat().st_size
    print(f"· {count:,} cases, {on_disk / 2**20:.1f} MB on disk: plain pytest, collection, the plugin's run ...", flush=True)
    measure([*PYTEST, "--collect-only"], suite(scratch / "warm", BARE_SUITE, rows[:10]), env)  # compiled files in place
    plain_run = checked(measure([*PYTEST, "-p", "no:distill"], plain, env), "plain pytest")
    collected = checked(measure([*PYTEST, "--collect-only"], bare, env), "collection")
    ours = checked(measure(PYTEST, bare, env), "the plugin's run")
    graded = suite(scratch / "graded", GRADED_SUITE, rows)
    graded_run = checked(measure([*PYTEST, "--distill-results", "results.json"], graded, env), "the graded run")
    small = suite(scratch / "small", BARE_SUITE, rows[:count // 10])
    small_run = checked(measure([*PYTEST, "--collect-only"], small, env), "collection of a tenth")
    results = graded / "results.json"
    figures: dict[str, Any] = {
        "cases": count, "dataset_mb": round(on_disk / 2**20, 1),
        "plain_run_s": round(plain_run.wall_s, 2), "plain_mb": round(plain_run.max_rss_mb),
        "collect_s": round(collected.wall_s, 2), "collect_mb": round(collected.max_rss_mb),
        "collect_tenth_mb": round(small_run.max_rss_mb),
        "run_s": round(ours.wall_s, 2), "run_mb": round(ours.max_rss_mb),
        "per_case_ms": round(per_case_ms(ours, plain_run, count), 3),
        "graded_run_s": round(graded_run.wall_s, 2), "graded_mb": round(graded_run.max_rss_mb),
        "results_mb": round(results.stat().st_size / 2**20, 1), "results_write_s": round(write_time(results), 2),
    }
    figures.update(batch_run(scratch / "batch", rows[:batch_count], env))
    return figures


def write_time(path: Path) -> float:
    """The time to make and write a results file of these records (median of 3), as the run's end does:
    records read back, the document (summary, repeats) made from them, written atomically."""
    from pytest_distill.report import results

    document = results.load(path, str(path))
    entries = [results.entry(record) for record in document["cases"]]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        results.write(path.with_name("again.json"), results.document(entries, {}, document.get("run")))
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def batch_run(folder: Path, rows: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    """One run whose model calls go through the simulator's Batch API: its time, its batches, and that no
    call was made one by one."""
    print(f"· {len(rows):,} cases through the Batch API ...", flush=True)
    project = suite(folder, CALLING_SUITE, rows)
    with SimServer() as sim:
        run = measure([*PYTEST, "--model", "gpt-4o-mini", "--distill-batch", "--distill-batch-poll", "0.05"], project,
                      {**env, "OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sk-bench-0000"}, sim)
        requests = sim.requests
    checked(run, "the batch run")
    return {"batch_cases": len(rows), "batch_run_s": round(run.wall_s, 2), "batch_mb": round(run.max_rss_mb),
            "batches": sum(r.method == "POST" and r.path == "/v1/batches" for r in requests),
            "batch_direct_calls": sum(r.method == "POST" and r.path == "/v1/chat/completions" for r in requests),
            "batch_polls": sum(r.method == "GET" and r.path.startswith("/v1/batches/") for r in requests)}


def checked(run: Run, what: str) -> Run:
    if run.returncode != 0:
        tail = "\n".join(run.output.splitlines()[-15:])
        print(f"  {what} did not pass (exit {run.returncode}):\n{tail}")
    return run


def lines(f: dict[str, Any]) -> list[str]:
    growth = (f["collect_mb"] - f["collect_tenth_mb"]) / (f["dataset_mb"] * 0.9) if f["dataset_mb"] else 0.0
    return [
        f"{f['cases']:,} cases ({f['dataset_mb']} MB of JSONL): collection {f['collect_s']:.2f} s, {f['collect_mb']} MB peak "
        f"(a tenth of them: {f['collect_tenth_mb']} MB; {growth:.1f} MB of memory per MB of data)",
        f"run: plain parametrized pytest {f['plain_run_s']:.2f} s ({f['plain_mb']} MB); pytest-distill with `case` "
        f"{f['run_s']:.2f} s ({f['run_mb']} MB): {f['per_case_ms']:.3f} ms a case over plain (goal <= 1 ms)",
        f"graded (string_check) with --distill-results: {f['graded_run_s']:.2f} s ({f['graded_mb']} MB); results file "
        f"{f['results_mb']} MB, made and written in {f['results_write_s']:.2f} s",
        f"batch: {f['batch_cases']:,} cases with model.complete through the Batch API in {f['batch_run_s']:.2f} s "
        f"({f['batch_mb']} MB), {f['batches']} batch(es), {f['batch_polls']} polls, {f['batch_direct_calls']} direct calls",
    ]


def against_baseline(figures: dict[str, Any]) -> list[str]:
    old = json.loads(BASELINE.read_text(encoding="utf-8")).get("large", {}) if BASELINE.exists() else {}
    if not old:
        return ["no baseline for these figures yet: run with --save-baseline to keep them"]
    out = [f"against the baseline ({old.get('machine', '?')}, {old.get('when', '?')}):"]
    for key, value in figures.items():
        before = old.get(key)
        if isinstance(value, (int, float)) and isinstance(before, (int, float)) and before:
            out.append(f"  {key:<24} {before:>10} → {value:>10} ({value / before - 1:+.0%})")
    return out


def save_baseline(figures: dict[str, Any]) -> None:
    kept = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.exists() else {}
    kept["large"] = {"when": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} CPUs", **figures}
    BASELINE.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved in {BASELINE} (\"large\")")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=CASES, help=f"cases of the large run (default {CASES:,})")
    parser.add_argument("--batch-cases", type=int, default=BATCH_CASES, help=f"cases of the batch run (default {BATCH_CASES:,})")
    parser.add_argument("--save-baseline", action="store_true", help="keep these figures in benchmarks/baseline.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="distill-large-"))
    try:
        figures = measure_large(scratch / "work", args.cases, args.batch_cases)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(lines(figures)))
    print("\n".join(against_baseline(figures)))
    if args.save_baseline:
        save_baseline(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
