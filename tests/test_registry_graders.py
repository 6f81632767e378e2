"""The registry helpers against hand-written verdicts of openai/evals' classes (its code read, not run)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_distill import (
    Model,
    registry_classify,
    registry_fuzzy_match,
    registry_includes,
    registry_json_match,
    registry_match,
    text_similarity,
)
from pytest_distill.graders.registry import INVALID, chat_text, fill, normalize, read_choice


@pytest.mark.parametrize("output, ideal, passed", [
    ("Paris is the capital.", "Paris", True),
    ("The capital is Paris.", "Paris", False),  # Match is "starts with", not "contains"
    ("  Paris\n", "Paris ", True),  # both stripped
    ("paris", "Paris", False),  # case counts
    ("서울입니다.", ["부산", "서울"], True),  # the second accepted answer
    ("首都是北京。", "北京", False),
    ("ירושלים היא הבירה", "ירושלים", True),
    ("", "Paris", False),
])
def test_registry_match_is_starts_with(output: str, ideal: Any, passed: bool) -> None:
    assert bool(registry_match(output, ideal)) is passed


@pytest.mark.parametrize("output, ideal, ignore_case, passed", [
    ("The answer is B.", "B", False, True),
    ("hello WORLD", "world", False, False),
    ("hello WORLD", "world", True, True),
    ("答案是北京", "北京", False, True),
    ("תל אביב", "אביב", True, True),
    ("서울", ["부산", "대구"], False, False),
])
def test_registry_includes_is_inside(output: str, ideal: Any, ignore_case: bool, passed: bool) -> None:
    assert bool(registry_includes(output, ideal, ignore_case=ignore_case)) is passed


@pytest.mark.parametrize("output, ideal, passed", [
    ("The city councilmen feared violence.", "city councilmen", True),  # the case
    ("Paris", "The capital is Paris.", True),  # either way round
    ("London", "Paris", False),
    ("An apple", "apple", True),
    ("theater", "the ater", True),  # "the" is dropped from the ideal only, as a whole word: "ater" is inside
    ("U.S.A.", "usa", True),  # ASCII punctuation goes
    ("정답은 서울입니다.", "서울", True),
    ("北京。", "北京", True),
    ("上海", "北京", False),
    ("ירושלים היא הבירה", "ירושלים", True),
    ("חיפה", "תל אביב", False),
    ("", "", True),  # two empty texts match
    ("...", "Paris", False),  # an empty one matches nothing else
])
def test_registry_fuzzy_match_is_containment_of_normalised_texts(output: str, ideal: str, passed: bool) -> None:
    assert bool(registry_fuzzy_match(output, ideal)) is passed


def test_registry_fuzzy_match_differs_from_the_grader_apis_fuzzy_match() -> None:
    pytest.importorskip("rapidfuzz")
    output = "The city councilmen feared violence."
    assert registry_fuzzy_match(output, "city councilmen")
    assert not text_similarity(output, "city councilmen", "fuzzy_match")


def test_normalize_keeps_non_ascii_punctuation() -> None:
    assert normalize("  The  Tower, of LONDON! ") == "tower of london"
    assert normalize("北京。") == "北京。"


@pytest.mark.parametrize("output, ideal, passed", [
    ('{"a": 1, "b": [1, 2]}', '{"b": [1, 2], "a": 1}', True),
    ('{"a": 1}', '{"a": 1, "b": null}', False),  # a missing key is a missing value
    ('{"a": null}', '{"a": null}', False),  # a null never matches
    ("[1, 2]", "[1, 2, 3]", False),
    ("1", "1.0", True),  # Python's ==
    ("not json", "{}", False),
    ('{"도시": "서울"}', ['{"도시": "부산"}', '{"도시": "서울"}'], True),
    ('{"城市": "北京"}', '{"城市": "上海"}', False),
])
def test_registry_json_match(output: str, ideal: Any, passed: bool) -> None:
    assert bool(registry_json_match(output, ideal)) is passed


def test_registry_json_match_ideal_that_is_no_json_is_an_error() -> None:
    with pytest.raises(ValueError, match="ideal 1 is no JSON"):
        registry_json_match("{}", "{oops")


def test_every_registry_helper_takes_a_name_and_says_which_ideal_matched() -> None:
    grade = registry_match("서울입니다", ["부산", "서울"], name="수도 \"'")
    assert grade.name == "수도 \"'"
    assert "ideal 2 of 2" in grade.reason
    assert registry_includes("x", "x", name="a").name == "a"
    assert registry_fuzzy_match("x", "x", name="b").name == "b"
    assert registry_json_match("1", "1", name="c").name == "c"
    with pytest.raises(ValueError, match="empty"):
        registry_match("x", [])


@pytest.mark.parametrize("answer, eval_type, choice", [
    ("Reasoning first.\nY\nY", "cot_classify", "Y"),
    ("Y\nbecause it is right", "classify_cot", "Y"),
    ("N", "classify", "N"),
    ("The judge thinks so. Therefore: N.", "cot_classify", "N"),  # a line that ends with a choice
    ("Yes", "classify", "Y"),  # a line that starts with one
    ("maybe", "classify", INVALID),
    ("(C) The submitted answer contains all the same details.", "classify", "C"),
])
def test_read_choice_as_the_registry_does(answer: str, eval_type: str, choice: str) -> None:
    choices = ["A", "B", "C", "D", "E"] if choice == "C" else ["Y", "N"]
    assert read_choice(answer, choices, eval_type) == choice


def test_the_match_fns_read_a_line_as_the_registry_does() -> None:
    assert read_choice("Yes", ["Yes fully", "No"], "classify", "include") == "Yes fully"  # the line inside the choice
    assert read_choice("Yes, fully", ["Yes"], "classify", "include") == INVALID
    assert read_choice("Y", ["Y", "N"], "classify", "exact") == "Y"
    assert read_choice("so N", ["N"], "classify", "endswith") == "N"


def test_fill_puts_the_samples_fields_into_the_prompt_and_refuses_more_than_names() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "수도는?"}]
    assert chat_text(messages) == "Be brief.\nUser: 수도는?\n"
    assert fill("Q: {input} {{x}} A: {completion}", {"input": [messages[1]], "completion": "서울"}) == "Q: 수도는? {x} A: 서울"
    with pytest.raises(KeyError, match="criteria"):
        fill("{criteria}", {"input": "x"})
    with pytest.raises(ValueError, match="no plain name"):
        fill("{input.__class__}", {"input": "x"})


FACT = "[Question]: {input}\n***\n[Expert]: {ideal}\n***\n[Submission]: {completion}\n***\nReasoning:"


@pytest.fixture
def judge(make_sim: Any) -> Model:
    make_sim(seed=[])
    return Model("gpt-4o")


def test_registry_classify_scores_the_judges_choice(judge: Model) -> None:
    fields = {"input": "대한민국의 수도는?", "ideal": "서울"}
    passed = registry_classify("서울", fields, FACT, "ABCDE", eval_type="cot_classify", passing="ABCE", judge=judge)
    assert passed and passed.reason.startswith("the judge chose 'C'")
    failed = registry_classify("부산", fields, FACT, "ABCDE", eval_type="cot_classify", passing="ABCE", judge=judge)
    assert not failed and "'D'" in failed.reason
    scored = registry_classify("서울", fields, FACT, "ABCDE", eval_type="cot_classify",
                               choice_scores={"A": 0.5, "B": 0.5, "C": 1, "D": 0, "E": 0.5}, judge=judge, name="사실")
    assert (scored.name, scored.score, scored.passed) == ("사실", 1.0, True)


def test_an_unreadable_judge_answer_is_the_registrys_invalid_choice_with_the_lowest_score(judge: Model) -> None:
    grade = registry_classify("x", {}, "Say something about {completion}.", "YN", eval_type="classify",
                              choice_scores={"Y": 1.0, "N": 0.25}, judge=judge)
    assert (grade.passed, grade.score) == (False, 0.25)
    assert "__invalid__" in grade.reason


def test_registry_classify_takes_several_judges_and_keeps_each_verdict(judge: Model) -> None:
    fields = {"input": "대한민국의 수도는?", "ideal": "서울"}
    both = registry_classify("서울", fields, FACT, "ABCDE", eval_type="cot_classify", passing="ABCE",
                             judge=[judge, Model("gpt-4o-mini")])
    assert both.passed and both.votes == {"gpt-4o": True, "gpt-4o-mini": True}
    assert both.reason.startswith("2 of 2 judges passed it. gpt-4o pass: the judge chose 'C'")
    with pytest.raises(ValueError, match="names each judge once"):
        registry_classify("서울", fields, FACT, "ABCDE", eval_type="cot_classify", judge=[judge, judge])
