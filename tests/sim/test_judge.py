"""The simulated judge: a `json_schema` request gets a valid, deterministic verdict on the tagged output."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from pytest_distill.sim.judge import factuality, quality, sections

FACTUALITY = {"type": "string", "enum": ["A", "B", "C", "D", "E"]}
SCALE = {"type": "integer", "minimum": 1, "maximum": 5}
SENTIMENT = {"type": "string", "enum": ["positive", "neutral", "negative"]}
EXPECTED = "The capital of France is Paris."
RIGHT = "Paris is the capital of France."
WRONG = "The tallest mountain on Earth is Everest."


def grade(shared_client: openai.OpenAI, verdict: dict[str, Any], output: str, **tags: str) -> Any:
    """Ask the judge with the grader-template contract; check its answer against the schema."""
    schema = {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "verdict": verdict},
        "required": ["reasoning", "verdict"],
        "additionalProperties": False,
    }
    prompt = "\n".join([f"<output>{output}</output>", *(f"<{tag}>{text}</{tag}>" for tag, text in tags.items())])
    completion = shared_client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Grade the text in <output>like this</output> against the reference."},
            {"role": "user", "content": prompt},
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "grade", "schema": schema, "strict": True}},
    )
    answer = json.loads(completion.choices[0].message.content or "")
    jsonschema.validate(answer, schema)
    assert list(answer) == ["reasoning", "verdict"] and answer["reasoning"]
    return answer["verdict"]


@pytest.mark.parametrize(
    "output, letter",
    [
        ("The capital of France is Paris!", "C"),
        ("The capital of France is Paris, on the Seine, with two million people.", "B"),
        ("Paris", "A"),
        (WRONG, "D"),
        ("", "D"),
    ],
)
def test_factuality_letters(shared_client: openai.OpenAI, output: str, letter: str) -> None:
    assert grade(shared_client, FACTUALITY, output, expected=EXPECTED, question="What is the capital of France?") == letter


def test_factuality_in_japanese(shared_client: openai.OpenAI) -> None:
    expected = "1チームは3人の選手で構成されます。"
    assert grade(shared_client, FACTUALITY, "１チームは３人の選手で構成されます", expected=expected) == "C"
    assert grade(shared_client, FACTUALITY, "試合時間は前後半各20分です。", expected=expected) == "D"


@pytest.mark.parametrize(
    "verdict",
    [SCALE, {"type": "integer", "enum": [1, 2, 3, 4, 5]}, {"type": "number", "minimum": 0, "maximum": 10}],
    ids=["range", "integer-enum", "number"],
)
def test_a_right_answer_scores_above_a_wrong_one(shared_client: openai.OpenAI, verdict: dict[str, Any]) -> None:
    right, wrong = (grade(shared_client, verdict, output, expected=EXPECTED) for output in (RIGHT, WRONG))
    assert right > wrong
    assert grade(shared_client, verdict, EXPECTED, expected=EXPECTED) == max(verdict.get("enum", [verdict.get("maximum")]))


def test_japanese_similarity_is_by_character_bigrams(shared_client: openai.OpenAI) -> None:
    expected = "試合時間は前後半各20分です。"
    close = grade(shared_client, SCALE, "試合時間は前半と後半がそれぞれ20分です。", expected=expected)
    far = grade(shared_client, SCALE, "1チームは3人の選手で構成されます。", expected=expected)
    assert close > far


def test_without_expected_the_scale_measures_text_quality(shared_client: openai.OpenAI) -> None:
    good = grade(shared_client, SCALE, "The capital of France is Paris, a city on the Seine.")
    truncated = grade(shared_client, SCALE, "The capital of France is Paris, a city on the")
    assert good == 5 and truncated < 4
    assert grade(shared_client, SCALE, "") == 1


@pytest.mark.parametrize(
    "output, feeling",
    [
        ("I love it, the support team was great!", "positive"),
        ("This is terrible and the app is broken.", "negative"),
        ("The parcel arrived on Tuesday.", "neutral"),
        ("The update is not good.", "negative"),
        ("とても満足しています。ありがとう！", "positive"),
        ("最悪です。また壊れました。", "negative"),
    ],
)
def test_sentiment(shared_client: openai.OpenAI, output: str, feeling: str) -> None:
    assert grade(shared_client, SENTIMENT, output) == feeling


@pytest.mark.parametrize(
    "output, tags, met",
    [
        (RIGHT, {"criteria": "The answer mentions Paris."}, True),
        ("Berlin is a big city.", {"criteria": "The answer mentions Paris."}, False),
        (RIGHT, {"expected": EXPECTED, "criteria": "Same meaning as the reference."}, True),
        (WRONG, {"expected": EXPECTED, "criteria": "Same meaning as the reference."}, False),
    ],
)
def test_criteria_match(shared_client: openai.OpenAI, output: str, tags: dict[str, str], met: bool) -> None:
    assert grade(shared_client, {"type": "boolean"}, output, **tags) is met


def test_another_string_enum_runs_from_worst_to_best(shared_client: openai.OpenAI) -> None:
    labels = {"type": "string", "enum": ["poor", "fair", "good"]}
    assert grade(shared_client, labels, RIGHT, expected=EXPECTED) == "good"
    assert grade(shared_client, labels, WRONG, expected=EXPECTED) == "poor"


def test_the_judge_is_deterministic_for_any_model(shared_client: openai.OpenAI) -> None:
    assert {grade(shared_client, SCALE, RIGHT, expected=EXPECTED) for _ in range(3)} == {5}


def test_extra_required_fields_get_valid_defaults(shared_client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "score": SCALE, "tags": {"type": "array"}, "note": {"type": "string"}},
        "required": ["reasoning", "score", "tags", "note"],
    }
    completion = shared_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"<output>{RIGHT}</output><expected>{EXPECTED}</expected>"}],
        response_format={"type": "json_schema", "json_schema": {"name": "g", "schema": schema}},
    )
    answer = json.loads(completion.choices[0].message.content or "")
    jsonschema.validate(answer, schema)
    assert answer["score"] == 5


def test_sections_take_the_first_of_each_tag() -> None:
    text = "<question> Q? </question>\n<output>\nline one\nline two\n</output><expected>E</expected><output>x</output>"
    assert sections(text) == {"question": "Q?", "output": "line one\nline two", "expected": "E"}


def test_factuality_without_a_reference_is_a_disagreement() -> None:
    letter, reasoning = factuality("Paris", None)
    assert letter == "D" and "no <expected>" in reasoning


def test_quality_names_what_failed() -> None:
    assert quality("Fine, thanks for asking.") == (1.0, [])
    score, failed = quality("the the the the")
    assert score < 0.5 and "repetitive" in failed
