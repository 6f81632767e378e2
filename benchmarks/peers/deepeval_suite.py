"""DeepEval's pytest way (`deepeval test run`): one test per case, `assert_test` with GEval."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from deepeval import assert_test
from deepeval_common import ROWS, make_case, metric

client = openai.OpenAI(max_retries=0)
METRIC = metric()


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_answer(row: dict[str, Any]) -> None:
    output = client.chat.completions.create(model="gpt-4o-mini", messages=row["messages"][:-1]).choices[0].message.content
    assert_test(make_case(row, output or ""), [METRIC])
