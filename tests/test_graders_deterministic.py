"""The graders that need no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_distill import Grade, matches_schema, string_check, valid_json, valid_xml
from pytest_distill.grades import Scope, scoped

ORDER_SCHEMA = Path(__file__).resolve().parents[1] / "examples" / "json_extraction" / "data" / "order.schema.json"


@pytest.mark.parametrize("operation, output, reference, passed", [
    ("eq", "Paris", "Paris", True), ("eq", "Paris.", "Paris", False),
    ("ne", "Paris", "Rome", True), ("ne", "Paris", "Paris", False),
    ("like", "It is Paris.", "Paris", True), ("like", "It is paris.", "Paris", False),
    ("ilike", "It is paris.", "PARIS", True), ("ilike", "Rome", "Paris", False),
])
def test_string_check_operations(operation: str, output: str, reference: str, passed: bool) -> None:
    grade = string_check(output, reference, operation)
    assert (bool(grade), grade.score) == (passed, 1.0 if passed else 0.0)


def test_string_check_rejects_an_unknown_operation() -> None:
    with pytest.raises(ValueError, match="unknown operation 'regex'"):
        string_check("a", "a", "regex")


def test_valid_json_says_where_it_broke() -> None:
    assert valid_json('{"a": [1, 2]}')
    grade = valid_json('{"a": [1, 2}')
    assert not grade and "line 1 column 12" in grade.reason


def test_valid_xml_parses_and_refuses_entity_expansion_and_external_entities() -> None:
    assert valid_xml("<a><b>x</b></a>")
    assert not valid_xml("<a><b></a>")
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 or "")) * 10}">' for i in range(1, 9))
              + ']><lolz>&lol8;</lolz>')
    grade = valid_xml(laughs)
    assert not grade and "refused" in grade.reason
    external = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:9/secret">]><x>&e;</x>'
    assert not valid_xml(external)


def test_matches_schema_names_the_failing_json_path() -> None:
    good = {"customer": "Ann", "order_id": "A1", "items": [{"name": "mug", "quantity": 2}], "intent": "refund"}
    assert matches_schema(json.dumps(good), ORDER_SCHEMA)
    bad = dict(good, items=[{"name": "mug", "quantity": 0}])
    grade = matches_schema(json.dumps(bad), ORDER_SCHEMA)
    assert not grade and grade.reason.startswith("at $.items[0].quantity:")
    assert "not JSON" in matches_schema("{", {"type": "object"}).reason


def test_grades_made_inside_a_scope_are_recorded_and_outside_are_not() -> None:
    with scoped(Scope()) as scope:
        inside = valid_json("1")
    valid_json("2")
    assert len(scope.grades) == 1 and scope.grades[0] is inside


def test_a_failing_grade_reads_as_grader_verdict_score_rule_and_reason() -> None:
    grade = Grade("semantic_similarity", 2.0, False, "different meaning", ">= 4 of 1-5")
    assert repr(grade) == "<semantic_similarity FAIL score=2>"
    assert grade.explain() == ["semantic_similarity: FAILED, score 2, passes when >= 4 of 1-5", "  reason: different meaning"]
    assert Grade.from_dict(grade.to_dict()) == grade
