"""Cache entries are checked against what they claim: a completion cache entry moved to another
request's name or edited is a miss, and under --distill-sim the answers of one seed are never served
for another. (A stored completion's entry edited or sealed for another id: test_hostile_input.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_distill.models.cache import CompletionCache
from pytest_distill.models.types import Completion, Usage

from .support import qa_rows, write_jsonl
from .test_hostile_input import WORKERS


def test_a_completion_cache_entry_under_another_requests_name_is_a_miss(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "ns")
    cache.put("paris", Completion(text="Paris", model="m", usage=Usage(1, 2), latency_s=0.5))
    cache.put("rome", Completion(text="Rome", model="m", usage=Usage(1, 2), latency_s=0.5))
    paris, rome = (cache._path(key) for key in ("paris", "rome"))
    rome.write_text(paris.read_text(encoding="utf-8"), encoding="utf-8")
    assert cache.get("rome") is None
    entry = json.loads(paris.read_text(encoding="utf-8"))
    paris.write_text(json.dumps({**entry, "text": "Lyon"}), encoding="utf-8")
    assert cache.get("paris") is None


SEEDED_SUITE = """
import pytest

@pytest.mark.distill_dataset("cases.jsonl")
def test_answer(case, model):
    assert model.complete(case).text == case.expected
"""


def seed(path: Path, answer: str) -> Path:
    rows = qa_rows(4)
    for row in rows:
        row["messages"][-1]["content"] = f"{answer} {row['id']}"
    return write_jsonl(path, rows)


@WORKERS
def test_under_the_simulator_the_cache_never_serves_answers_of_another_seed(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makepyfile(SEEDED_SUITE)
    options = ("--distill-sim", "--distill-sim-seed", "cases.jsonl", "--distill-cache", "--model", "gpt-4o")
    seed(pytester.path / "cases.jsonl", "alpha")
    pytester.runpytest(*options, *workers).assert_outcomes(passed=4)
    entries = lambda: len(list(pytester.path.rglob("distill-calls/**/*.json")))  # noqa: E731
    assert entries() == 4
    seed(pytester.path / "cases.jsonl", "beta")  # the same questions, other answers
    pytester.runpytest(*options, *workers).assert_outcomes(passed=4)
    assert entries() == 8
    # The same seed again, serially: all from the cache its workers wrote (one key, serial or under xdist).
    pytester.runpytest(*options).assert_outcomes(passed=4)
    assert entries() == 8
