"""What the trl backend trained is served as it is: `transformers serve` loads the merged model with no
LoRA flags, and the suite calls it through a declared endpoint, the served name being the folder's
path exactly as the server was given it (transformers' `parse_model_id`: an existing local path is the
model's name, and a server started with one model answers for that name alone)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import HOBANNU, serve_missing, transformers_serve, write_jsonl

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("{spec}")
def test_answer(case, model):
    assert string_check(model.complete(case, max_tokens=8), "", "ne")
"""


@pytest.mark.skipif(serve_missing() is not None, reason=str(serve_missing()))
def test_the_merged_model_served_by_transformers_serve_answers_the_suite_as_the_same_folder_does_in_process(
        pytester: pytest.Pytester, tmp_path: Path, trained_student: Path, make_sim: Callable[..., SimServer]) -> None:
    make_sim()
    rows = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()][:3]
    spec = write_jsonl(tmp_path / "cases.jsonl", rows)
    pytester.makepyfile(SUITE.format(spec=spec))
    merged = trained_student / "merged"
    with transformers_serve(merged) as url:
        pytester.makeini(f"[pytest]\ndistill_endpoints = served {url}\n")
        result = pytester.runpytest("--model", f"served:{merged}", "--model", f"hf:{merged}",
                                    "--distill-results", "results.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    cases = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]
    answers = {(case["model"].partition(":")[0], case["case_id"]): case["output"] for case in cases}
    assert len(answers) == 6
    for row in rows:
        assert answers[("served", row["id"])] == answers[("hf", row["id"])] != ""
