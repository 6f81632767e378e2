"""The graders that need no model."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

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


@pytest.mark.parametrize("text, problem", [
    ("NaN", "NaN is not JSON"), ('{"score": Infinity}', "Infinity is not JSON"), ("[-Infinity]", "-Infinity is not JSON"),
    ("1e999", "out of range"), ('"\\ud800"', "lone surrogate"), ('{"a": ["x\ud800"]}', "lone surrogate in the string at $.a[0]"),
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
])
def test_valid_json_is_strict_rfc_8259(text: str, problem: str) -> None:
    grade = valid_json(text)
    assert not grade and problem in grade.reason


def test_valid_json_still_reads_escaped_surrogate_pairs_and_big_finite_numbers() -> None:
    assert valid_json('["\\ud83d\\ude00", 1e308, -0.0]')


class _SchemaServer(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SchemaServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SchemaServer.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_matches_schema_never_fetches_a_remote_ref(schema_server: str) -> None:
    schema = {"type": "object", "properties": {"name": {"$ref": f"{schema_server}/name.json"}}}
    grade = matches_schema('{"name": 1}', schema)
    assert not grade and "never fetched" in grade.reason and f"{schema_server}/name.json" in grade.reason
    assert _SchemaServer.hits == []


def test_matches_schema_never_reads_a_file_ref(tmp_path: Path) -> None:
    (tmp_path / "name.json").write_text('{"type": "string"}', encoding="utf-8")
    schema = {"type": "object", "properties": {"name": {"$ref": (tmp_path / "name.json").as_uri()}}}
    grade = matches_schema('{"name": 1}', schema)
    assert not grade and "never fetched" in grade.reason


def test_matches_schema_follows_refs_inside_the_schema() -> None:
    schema = {"$defs": {"name": {"type": "string"}}, "type": "object", "properties": {"name": {"$ref": "#/$defs/name"}}}
    assert matches_schema('{"name": "Ann"}', schema)
    assert not matches_schema('{"name": 1}', schema)


def test_self_referencing_and_deep_schemas_and_outputs_give_a_grade_or_a_clear_error() -> None:
    looping = matches_schema("{}", {"$ref": "#"})
    assert not looping and "refers to itself" in looping.reason
    tree = {"type": "array", "items": {"$ref": "#"}}
    assert matches_schema("[[[[]]]]", tree)
    assert matches_schema("[" * 199 + "]" * 199, tree)
    deep_output = matches_schema("[" * 100_000 + "]" * 100_000, tree)
    assert not deep_output and "nested 100000 levels deep" in deep_output.reason
    deep_schema: dict[str, Any] = {}
    for _ in range(5000):
        deep_schema = {"items": deep_schema}
    with pytest.raises(ValueError, match="the schema nests too deep to check"):
        matches_schema("[]", deep_schema)


def test_matches_schema_with_a_path_string_says_to_pass_a_path() -> None:
    with pytest.raises(TypeError, match=r"a string is not a schema: pass a dict, or Path\(\.\.\.\)"):
        matches_schema("{}", "schema.json")  # type: ignore[arg-type]


def test_an_invalid_schema_is_one_short_clear_error() -> None:
    with pytest.raises(ValueError, match=r"not a valid JSON Schema: at \$.type: ") as info:
        matches_schema("{}", {"type": "strin"})
    assert len(str(info.value)) < 300
