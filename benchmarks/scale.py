"""Scale: collection time and memory for many stored cases (first run, then with the content cache), and
what the plugin adds to each test at that size, against plain pytest parametrized over the same rows."""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path
from typing import Any

from harness import Run, cases, environment, measure, write_jsonl
from pytest_distill.sim import SimServer

REMOTE_CASES = 1_000
REMOTE_LATENCY_S = 0.1
STORED_SUITE = """
import pytest

@pytest.mark.distill_dataset("stored")
def test_case(case):
    pass
"""
BARE_SUITE = """
import pytest

@pytest.mark.distill_dataset("cases.jsonl")
def test_case(case):
    pass
"""
CALLING_SUITE = """
import pytest

@pytest.mark.distill_dataset("cases.jsonl")
def test_case(case, model):
    assert model.complete(case).text
"""
PLAIN_SUITE = """
import json
import pytest

ROWS = [json.loads(line) for line in open("cases.jsonl", encoding="utf-8")]

@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_case(row):
    pass
"""


def suite(folder: Path, text: str, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "test_suite.py").write_text(text, encoding="utf-8")
    write_jsonl(folder / "cases.jsonl", rows)
    return folder


def measure_scale(folder: Path, count: int) -> dict[str, Any]:
    """Collection of `count` stored cases twice, and four runs of `count` tests for the overhead."""
    rows = cases(count)
    folder.mkdir()
    print(f"· scale: {count} cases (collection twice, then the overhead runs) ...", flush=True)
    with SimServer(seed=[write_jsonl(folder / "seed.jsonl", rows)]) as sim:
        env = {**environment(folder), "OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sk-bench-0000"}
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
        stored = suite(folder / "stored", STORED_SUITE, rows)
        first = measure([*pytest, "--collect-only"], stored, env)
        cached = measure([*pytest, "--collect-only"], stored, env)
        plain = measure([*pytest, "-p", "no:distill"], suite(folder / "plain", PLAIN_SUITE, rows), env)
        bare = measure(pytest, suite(folder / "bare", BARE_SUITE, rows), env)
        calling = suite(folder / "calling", CALLING_SUITE, rows)
        measure([*pytest, "--distill-cache", "--distill-concurrency", "16"], calling, env)
        from_cache = measure([*pytest, "--distill-cache"], calling, env)
        remote = remote_collection(folder / "remote", rows[:REMOTE_CASES])
    shutil.rmtree(folder, ignore_errors=True)
    return {**remote,
        "cases": count,
        "collect_first_s": round(first.wall_s, 2), "collect_first_mb": round(first.max_rss_mb),
        "collect_cached_s": round(cached.wall_s, 2), "collect_cached_mb": round(cached.max_rss_mb),
        "plain_run_s": round(plain.wall_s, 2), "bare_run_s": round(bare.wall_s, 2), "cached_call_run_s": round(from_cache.wall_s, 2),
        "per_case_bare_ms": round(per_case_ms(bare, plain, count), 3), "per_case_ms": round(per_case_ms(from_cache, plain, count), 3),
        "ok": all(run.returncode == 0 for run in (first, cached, plain, bare, from_cache)),
    }


def remote_collection(folder: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A first collection where every call takes REMOTE_LATENCY_S, as against the API: one messages call
    per stored completion, run --distill-concurrency at once (one after another they would take
    len(rows) * REMOTE_LATENCY_S)."""
    folder.mkdir()
    with SimServer(seed=[write_jsonl(folder / "seed.jsonl", rows)], latency_s=REMOTE_LATENCY_S) as sim:
        env = {**environment(folder), "OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sk-bench-0000"}
        run = measure([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--collect-only"],
                      suite(folder / "stored", STORED_SUITE, rows), env, sim)
    return {"remote_cases": len(rows), "remote_latency_s": REMOTE_LATENCY_S, "remote_collect_first_s": round(run.wall_s, 2),
            "remote_peak_in_flight": run.peak_in_flight, "remote_ok": run.returncode == 0}


def per_case_ms(ours: Run, plain: Run, count: int) -> float:
    return (ours.wall_s - plain.wall_s) / count * 1000


def lines(sizes: dict[str, Any]) -> list[str]:
    n = sizes["cases"]
    return [
        f"collection of {n} stored cases: first run {sizes['collect_first_s']:.2f} s, {sizes['collect_first_mb']} MB; "
        f"with the content cache {sizes['collect_cached_s']:.2f} s, {sizes['collect_cached_mb']} MB",
        f"{n} tests: plain pytest {sizes['plain_run_s']:.2f} s; pytest-distill with `case` {sizes['bare_run_s']:.2f} s; "
        f"with `model.complete(case)` from --distill-cache {sizes['cached_call_run_s']:.2f} s"
        + ("" if sizes["ok"] else "  (a run did not pass: see above)"),
        f"first collection of {sizes['remote_cases']} stored cases at {sizes['remote_latency_s']:g} s a call: "
        f"{sizes['remote_collect_first_s']:.2f} s, {sizes['remote_peak_in_flight']} calls in flight at the most "
        f"(one after another: at least {sizes['remote_cases'] * sizes['remote_latency_s']:.0f} s)"
        + ("" if sizes["remote_ok"] else "  (the run did not pass)"),
    ]


def today() -> str:
    return datetime.date.today().isoformat()
