"""Judge labels: one verdict is compared with one label. A label naming the model wins over the label
for the same case and grader on any model; the other models' verdicts take the general one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl
from .test_verdicts import LABELLED_SUITE, read_results


def test_a_model_label_wins_over_the_general_label_and_each_verdict_counts_once(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    make_sim(seed=[cases])
    pytester.makepyfile(LABELLED_SUITE.format(spec=str(cases)))  # string_check fails q008 for every model
    write_jsonl(pytester.path / "labels.jsonl", [
        {"case_id": "q008", "grader": "string_check", "passed": False, "model": "gpt-4o"},
        {"case_id": "q008", "grader": "string_check", "passed": True}])
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "--distill-judge-labels", "labels.jsonl",
                                "--distill-results", "r.json")
    # gpt-4o's failing verdict meets its own label (agree); gpt-4o-mini's meets the general one (disagree)
    result.stdout.fnmatch_lines(["  string_check: agreed on 1 of 2 (50%), kappa *; disagreed on q008"])
    judges = read_results(pytester.path / "r.json")["judges"]
    assert judges["string_check"]["n"] == 2 and judges["string_check"]["agreement"] == pytest.approx(0.5)
