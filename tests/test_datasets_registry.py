"""The OpenAI Evals registry format (`{"input": ..., "ideal": ...}` a line) as dataset files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.datasets import BrokenCase, Case, DatasetError, load_jsonl

# Lines in the shapes the public openai/evals registry uses: few-shot examples as system messages
# named example_user / example_assistant, earlier assistant turns, JSON answers, several accepted
# answers, non-Latin scripts, and extra keys beside input and ideal.
FEW_SHOT = {
    "input": [
        {"role": "system", "content": "Answer with the country's capital only."},
        {"role": "system", "content": "France", "name": "example_user"},
        {"role": "system", "content": "Paris", "name": "example_assistant"},
        {"role": "user", "content": "Japan"},
    ],
    "ideal": "Tokyo",
}
EARLIER_TURNS = {
    "input": [
        {"role": "user", "content": "Remember the number 7."},
        {"role": "assistant", "content": "I will remember 7."},
        {"role": "user", "content": "What number did I ask you to remember?"},
    ],
    "ideal": ["7", "seven"],
}
JSON_ANSWER = {"input": "Give {\"name\": ...} for Ada Lovelace as JSON.", "ideal": {"name": "Ada Lovelace"}, "category": "json"}
JAPANESE = {"input": [{"role": "user", "content": "日本の首都はどこですか？"}], "ideal": ["東京", "東京都"], "lang": "ja"}
ARABIC = {"input": "ما هي عاصمة مصر؟", "ideal": "القاهرة"}
MODEL_GRADED = {"input": [{"role": "user", "content": "Write a haiku about rain."}]}


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def cases_of(tmp_path: Path, rows: list[Any]) -> list[Case | BrokenCase]:
    return load_jsonl(write(tmp_path / "samples.jsonl", rows), "samples.jsonl")


def test_registry_lines_become_cases_with_input_messages_and_every_accepted_answer(tmp_path: Path) -> None:
    few_shot, earlier, as_json, japanese, arabic, graded = cases_of(
        tmp_path, [FEW_SHOT, EARLIER_TURNS, JSON_ANSWER, JAPANESE, ARABIC, MODEL_GRADED])
    assert isinstance(few_shot, Case) and few_shot.messages == FEW_SHOT["input"]
    assert few_shot.messages[1]["name"] == "example_user" and few_shot.question == "Japan"
    assert few_shot.expected == "Tokyo" and few_shot.references == ["Tokyo"]
    assert isinstance(earlier, Case) and [m["role"] for m in earlier.messages] == ["user", "assistant", "user"]
    assert earlier.expected == "7" and earlier.references == ["7", "seven"]
    assert isinstance(as_json, Case) and as_json.messages == [{"role": "user", "content": JSON_ANSWER["input"]}]
    assert json.loads(as_json.expected or "") == {"name": "Ada Lovelace"} and as_json.metadata == {"category": "json"}
    assert isinstance(japanese, Case) and japanese.references == ["東京", "東京都"] and japanese.metadata == {"lang": "ja"}
    assert isinstance(arabic, Case) and arabic.question == "ما هي عاصمة مصر؟" and arabic.expected == "القاهرة"
    assert isinstance(graded, Case) and graded.expected is None and graded.references == []
    assert [case.id for case in (few_shot, earlier, as_json, japanese, arabic, graded)] == [f"line{n}" for n in range(1, 7)]


def test_chat_format_and_registry_lines_mix_in_one_file(tmp_path: Path) -> None:
    chat = {"id": "c1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    first, second = cases_of(tmp_path, [chat, {**ARABIC, "id": "r1"}])
    assert isinstance(first, Case) and first.references == ["hello"]
    assert isinstance(second, Case) and second.id == "r1" and "id" not in second.metadata


@pytest.mark.parametrize("row, problem", [
    ({"input": [], "ideal": "x"}, "no messages: expected a non-empty list under 'input'"),
    ({"input": "   ", "ideal": "x"}, "'input' is an empty text"),
    ({"input": [{"role": "narrator", "content": "x"}], "ideal": "x"}, "message 0 has unknown role 'narrator'"),
    ({"input": [{"role": "system", "content": "x"}], "ideal": "x"}, "no user message in 'input'"),
    ({"input": "q", "ideal": []}, "'ideal' is an empty list"),
    ({"input": "q", "ideal": ["a", None]}, "'ideal' holds a null answer"),
    ({"prompt": "q", "completion": "a"}, "neither the chat format"),
])
def test_a_broken_registry_line_is_its_own_broken_case_naming_the_line(tmp_path: Path, row: dict[str, Any], problem: str) -> None:
    good, broken = cases_of(tmp_path, [ARABIC, row])
    assert isinstance(good, Case)
    assert isinstance(broken, BrokenCase) and broken.problem.startswith(f"{tmp_path / 'samples.jsonl'}:2: ")
    assert problem in broken.problem


@pytest.mark.parametrize("rows", [
    [{"prompt": "q1", "completion": "a1"}, {"prompt": "q2", "completion": "a2"}],
    ["question,answer", "q1,a1"],
])
def test_a_file_in_neither_format_is_one_error_for_the_file(tmp_path: Path, rows: list[Any]) -> None:
    with pytest.raises(DatasetError) as raised:
        cases_of(tmp_path, rows)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'samples.jsonl'}: no line is a case in either format")
    assert '{"messages": [...]}' in message and '"ideal"' in message
    assert ":1:" not in message and ":2:" not in message
    if isinstance(rows[0], str):  # no line is JSON: the first line's problem, in the JSON parser's words
        assert message.endswith("(line 1: not JSON: Expecting value at line 1 column 1)")
