"""Plain pytest without pytest-distill: one test per case, the SDK called directly, one call at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import openai
import pytest

import plain_judge

ROWS = [json.loads(line) for line in Path(os.environ["BENCH_CASES"]).read_text(encoding="utf-8").splitlines() if line]
client = openai.OpenAI(max_retries=0)


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_answer(row: dict[str, Any]) -> None:
    messages, expected = row["messages"][:-1], row["messages"][-1]["content"]
    output = client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content or ""
    verdict = client.chat.completions.create(model="gpt-4o", messages=plain_judge.messages(messages[-1]["content"], expected, output),
                                             temperature=0, response_format=plain_judge.FORMAT)
    assert plain_judge.passed(verdict.choices[0].message.content)
