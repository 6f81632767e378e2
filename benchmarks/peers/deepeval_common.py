"""DeepEval's side of the benchmark: the cases, its GEval judge on the local server, fixed evaluation steps.

Runs only in DeepEval's own virtual environment (its pytest plugin must not load into our runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deepeval.metrics import GEval
from deepeval.models import OpenAIModel
from deepeval.test_case import LLMTestCase, SingleTurnParams

ROWS: list[dict[str, Any]] = [json.loads(line) for line in Path(os.environ["BENCH_CASES"]).read_text(encoding="utf-8").splitlines() if line]
STEPS = ["Check whether the facts in the actual output contradict any facts in the expected output.",
         "Penalise details of the expected output that the actual output leaves out or gets wrong."]


def metric() -> GEval:
    """GEval with fixed steps (with `criteria` alone it makes a third call per case to write them)."""
    judge = OpenAIModel(model="gpt-4o", base_url=os.environ["OPENAI_BASE_URL"])
    return GEval(name="Correctness", evaluation_steps=STEPS, model=judge, threshold=0.5,
                 evaluation_params=[SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT])


def make_case(row: dict[str, Any], output: str) -> LLMTestCase:
    return LLMTestCase(input=row["messages"][-2]["content"], actual_output=output, expected_output=row["messages"][-1]["content"])
