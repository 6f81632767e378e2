"""Several accepted answers: helpers given a list of references, and `any_of`, record one grade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_distill import Grade, Model, any_of, embedding_similarity, factuality, string_check, valid_json
from pytest_distill.grades import Scope, scoped
from pytest_distill.sim import SimServer

from .support import write_jsonl


def test_a_list_of_references_passes_on_the_one_that_matches_and_records_one_grade() -> None:
    with scoped(Scope()) as scope:
        grade = string_check("I think it is seven.", ["7", "seven", "sept"], "ilike")
        assert grade.passed and scope.grades == [grade]
        assert grade.reason.startswith("reference 2 of 3 ('seven') matched: ")
        assert grade.args == {"reference": ["7", "seven", "sept"], "operation": "ilike"}


def test_a_list_where_no_reference_matches_fails_once_naming_the_closest() -> None:
    with scoped(Scope()) as scope:
        grade = string_check("東京です", ["大阪", "京都"], "like")
        assert not grade.passed and scope.grades == [grade]
        assert grade.reason.startswith("none of 2 references matched; the closest, reference 1 of 2 ('大阪'): ")


def test_an_empty_list_of_references_is_a_usage_error_not_a_failure() -> None:
    with scoped(Scope()) as scope:
        with pytest.raises(ValueError, match="the list of references is empty"):
            string_check("x", [])
        assert scope.grades == []


def test_any_of_stands_in_for_the_grades_it_was_given_and_stops_at_the_first_pass() -> None:
    with scoped(Scope()) as scope:
        made: list[str] = []

        def check(reference: str) -> Grade:
            made.append(reference)
            return string_check("Answer: B", reference, "like")

        before = valid_json("{}")
        grade = any_of(check(reference) for reference in ["X", "B", "C"])
        assert made == ["X", "B"]  # the generator is not consumed past the first pass
        assert grade.passed and grade.name == "string_check"
        assert grade.reason.startswith("string_check (check 2 of 2 made) passed: ")
        assert scope.grades == [before, grade]


def test_any_of_with_different_checks_is_named_for_them_and_fails_with_the_best() -> None:
    with scoped(Scope()) as scope:
        grade = any_of(string_check("x", "y"), valid_json("not json"))
        assert not grade.passed and grade.name == "any_of(string_check, valid_json)"
        assert grade.reason.startswith("none of 2 checks passed; the best, string_check (check 1 of 2 made): ")
        assert scope.grades == [grade]


def test_any_of_takes_grades_only() -> None:
    with pytest.raises(TypeError, match="any_of takes grades"):
        any_of(True)  # type: ignore[arg-type]


def test_judged_helpers_try_each_reference_with_the_judge(sim: SimServer) -> None:
    with scoped(Scope()) as scope:
        judge = Model("gpt-4o")
        grade = factuality("The capital of France is Paris.", ["Lyon", "Paris"], question="What is the capital of France?",
                           judge=judge)
        assert grade.passed and grade.reason.startswith("reference 2 of 2 ('Paris') matched: choice ")
        near = embedding_similarity("The capital of France is Paris.", ["Bananas are yellow.", "The capital of France is Paris."],
                                    model=Model("text-embedding-3-small"))
        assert near.passed and near.reason.startswith("reference 2 of 2 ")
        assert scope.grades == [grade, near]


REGISTRY_SUITE = """
import pytest
from pytest_distill import any_of, factuality, string_check

@pytest.mark.distill_dataset("samples.jsonl")
def test_list(case, model):
    answer = model.complete(case)
    assert string_check(answer, case.references, "ilike")
    assert factuality(answer, case.references)

@pytest.mark.distill_dataset("samples.jsonl")
def test_any_of(case, model):
    answer = model.complete(case)
    assert any_of(string_check(answer, reference, "ilike") for reference in case.references)
"""


def test_a_registry_dataset_with_accepted_answers_counts_one_grade_per_check_in_every_report(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    questions = {"What is six plus one?": ["7", "seven"], "Name the capital of Japan.": ["Tokyo", "東京"]}
    write_jsonl(pytester.path / "samples.jsonl", [{"input": q, "ideal": ideal} for q, ideal in questions.items()])
    # the teacher's stored answers match the second accepted answer of each case
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"It is {ideal[1]}."}]}
        for q, ideal in questions.items()])])
    pytester.makepyfile(REGISTRY_SUITE)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-results", "results.json")
    assert result.parseoutcomes() == {"passed": 4}
    result.stdout.fnmatch_lines(["*string_check rate/mean/n*", "gpt-4o *100% [[]51–100] *4 *0 *100% [[]51–100] / 1.00 / 4*",
                                 "*factuality rate/mean/n*", "gpt-4o *100% [[]34–100] / 1.00 / 2*"])
    cases = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]
    for entry in cases:
        assert len(entry["grades"]) == (2 if "test_list" in entry["nodeid"] else 1)
        assert entry["grades"][0]["passed"]
    reasons = [grade["reason"] for entry in cases for grade in entry["grades"] if grade["name"] == "string_check"]
    assert sum(reason.startswith("reference 2 of 2 ") for reason in reasons) == 2
    assert sum(reason.startswith("string_check (check 2 of 2 made) passed") for reason in reasons) == 2
