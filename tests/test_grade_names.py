"""Every helper takes `name=`, so two criteria of one test are two graders in every report, not one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_distill import (
    Model,
    any_of,
    criteria_match,
    custom_prompt,
    embedding_similarity,
    factuality,
    matches_schema,
    registry_fuzzy_match,
    registry_includes,
    registry_json_match,
    registry_match,
    semantic_similarity,
    sentiment,
    string_check,
    text_quality,
    text_similarity,
    valid_json,
    valid_xml,
)
from pytest_distill.distill.filter import suite_checks
from pytest_distill.ledger import Entry

DETERMINISTIC: list[Callable[..., Any]] = [
    lambda name: string_check("Paris", "Paris", name=name),
    lambda name: string_check("Paris", ["Rome", "Paris"], "like", name=name),
    lambda name: valid_json("{}", name=name),
    lambda name: valid_xml("<a/>", name=name),
    lambda name: matches_schema("{}", {"type": "object"}, name=name),
    lambda name: text_similarity("Paris", "Paris", name=name),
    lambda name: any_of(string_check("a", "b"), string_check("a", "a"), name=name),
    lambda name: registry_match("Paris", "Paris", name=name),
    lambda name: registry_includes("Paris", "Paris", name=name),
    lambda name: registry_fuzzy_match("Paris", "Paris", name=name),
    lambda name: registry_json_match("{}", "{}", name=name),
]


@pytest.mark.parametrize("helper", DETERMINISTIC)
def test_every_deterministic_helper_names_its_grade(helper: Callable[..., Any]) -> None:
    grade = helper("수도 \"check\"")
    assert grade.name == "수도 \"check\"" and grade.passed


def test_every_model_graded_helper_names_its_grade(make_sim: Any) -> None:
    make_sim(seed=[])
    judge = Model("gpt-4o")
    grades = [factuality("Paris", "Paris", judge=judge, name="n1"),
              semantic_similarity("Paris", "Paris", judge=judge, name="n2"),
              sentiment("I love it, great!", judge=judge, name="n3"),
              criteria_match("Paris", "mentions Paris", judge=judge, name="n4"),
              text_quality("Paris is the capital of France.", threshold=1, judge=judge, name="n5"),
              custom_prompt("Paris", "Is it a city?", judge=judge, name="n6"),
              embedding_similarity("Paris", "Paris", model=Model("text-embedding-3-small"), name="n7")]
    assert [grade.name for grade in grades] == [f"n{i}" for i in range(1, 8)]


def test_a_named_string_check_is_still_replayed_by_the_filter() -> None:
    grades = [string_check("Hello", "Hi", "like", name="greets")]
    assert grades[0].args == {"reference": "Hi", "operation": "like", "helper": "string_check"}
    entries = [Entry(f"t.py::test_y[c{i}]", case_id=f"c{i}", grades=grades) for i in range(2)]
    assert suite_checks(entries).problems("Hello") == ["string_check: the output does not contain the reference"]


def test_text_similarity_scores_stay_within_zero_and_one() -> None:
    pytest.importorskip("sacrebleu")
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today."
    grade = text_similarity(sentence, sentence, "bleu")
    assert grade.score == 1.0 and grade.passed


def test_two_criteria_of_one_test_are_two_graders_in_the_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_distill import string_check

        def test_two_checks():
            assert string_check("Paris, France", "Paris", "like", name="names the city")
            assert string_check("Paris, France", "France", "like", name="names the country")
    """)
    result = pytester.runpytest("--distill-results", "results.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*names the city rate/mean/n*", "*names the country rate/mean/n*"])
    (entry,) = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]
    assert [grade["name"] for grade in entry["grades"]] == ["names the city", "names the country"]
