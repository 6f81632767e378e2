"""`python -m pytest_distill.evals import`: OpenAI Evals definitions in the API's shapes become pytest files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.evals.runtime import evaluate, fill, sample_of

from .openapi_check import _validator, validate_request
from .support import REPO, write_jsonl

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"}
SYSTEM = {"role": "system", "content": "Answer with the capital only."}
EXACT = {"type": "string_check", "name": "Exact capital", "input": "{{sample.output_text}}", "reference": "{{item.ideal}}",
         "operation": "eq"}
CLOSE = {"type": "text_similarity", "name": "Close to the capital", "input": "{{sample.output_text}}",
         "reference": "{{item.ideal}}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.9}
SCORED = {"type": "score_model", "name": "Judged correct", "model": "gpt-4o",
          "input": [{"role": "system", "content": "Score 1 if the answer names the reference city, else 0."},
                    {"role": "user", "content": "Reference: {{item.ideal}}\nAnswer: {{sample.output_text}}"}],
          "range": [0, 1], "pass_threshold": 0.5}
LABELLED = {"type": "label_model", "name": "Labelled correct", "model": "gpt-4o",
            "input": [{"type": "message", "role": "developer",
                       "content": {"type": "input_text", "text": "Label the answer correct or incorrect against {{item.ideal}}."}},
                      {"type": "message", "role": "user", "content": {"type": "input_text", "text": "{{sample.output_text}}"}}],
            "labels": ["incorrect", "correct"], "passing_labels": ["correct"]}
PYTHON = {"type": "python", "name": "Country in metadata", "pass_threshold": 1.0,
          "source": "def grade(sample, item) -> float:\n    return 1.0 if item['country'] and sample['output_text'] else 0.0\n"}
MULTI = {"type": "multi", "name": "Blend", "calculate_output": "0.5 * exact + 0.5 * close",
         "graders": {"exact": {k: v for k, v in EXACT.items()},
                     "close": {k: v for k, v in CLOSE.items() if k != "pass_threshold"}}}
TOOLS = {"type": "string_check", "name": "Called a tool", "input": "{{sample.output_tools}}", "reference": "lookup",
         "operation": "like"}
DEFINITION = {
    "name": "Capitals",
    "data_source_config": {"type": "custom", "item_schema": {
        "type": "object", "properties": {"input": {"type": "array"}, "ideal": {"type": "string"}, "country": {"type": "string"}},
        "required": ["input", "ideal"]}, "include_sample_schema": True},
    "testing_criteria": [EXACT, CLOSE, SCORED, LABELLED, PYTHON, TOOLS],
}


def items() -> list[dict[str, Any]]:
    return [{"item": {"input": [SYSTEM, {"role": "user", "content": f"What is the capital of {country}?"}],
                      "ideal": city, "country": country}} for country, city in CAPITALS.items()]


def seed_rows() -> list[dict[str, Any]]:
    """The teacher's stored answers to the same inputs: the right city."""
    return [{"messages": [*row["item"]["input"], {"role": "assistant", "content": row["item"]["ideal"]}]} for row in items()]


def run_import(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_distill.evals", "import", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, check=False)


def test_the_fixtures_are_in_the_api_shapes() -> None:
    validate_request("post", "/evals", {**DEFINITION, "testing_criteria": [EXACT, CLOSE, SCORED, LABELLED, PYTHON]})
    _validator("/components/schemas/CreateEvalCustomDataSourceConfig").validate(DEFINITION["data_source_config"])
    for criterion, schema in ((EXACT, "GraderStringCheck"), (CLOSE, "GraderTextSimilarity"), (SCORED, "GraderScoreModel"),
                              (LABELLED, "GraderLabelModel"), (PYTHON, "GraderPython"), (TOOLS, "GraderStringCheck")):
        _validator(f"/components/schemas/{schema}").validate(criterion)
    for part in MULTI["graders"].values():
        _validator(f"/components/schemas/{'GraderStringCheck' if part['type'] == 'string_check' else 'GraderTextSimilarity'}"
                   ).validate(part)
    retrieved = {"object": "eval", "id": "eval_67abd54d9b0081909a86353f6fb9317a", "created_at": 1739314509, "metadata": {},
                 "name": "Capitals", "testing_criteria": [EXACT, CLOSE, SCORED, LABELLED, PYTHON],
                 "data_source_config": {"type": "custom", "schema": {"type": "object", "properties": {
                     "item": DEFINITION["data_source_config"]["item_schema"]}, "required": ["item"]}}}
    _validator("/components/schemas/Eval").validate(retrieved)


def test_an_eval_and_its_data_become_a_readable_suite_that_runs_against_the_simulator(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    definition = {**DEFINITION, "testing_criteria": [*DEFINITION["testing_criteria"], MULTI]}
    (pytester.path / "capitals_eval.json").write_text(json.dumps(definition), encoding="utf-8")
    write_jsonl(pytester.path / "capitals.jsonl", items()[:2] + [row["item"] for row in items()[2:]])  # wrapped and bare items
    done = run_import("capitals_eval.json", "--data", "capitals.jsonl", "-o", "tests/test_capitals.py", cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    assert "6 criteria converted, 1 not" in done.stdout
    assert "NOT converted: Called a tool (string_check): {{sample.output_tools}} is not something a chat answer has" in done.stdout
    source = (pytester.path / "tests" / "test_capitals.py").read_text(encoding="utf-8")
    assert 'pytestmark = pytest.mark.distill_dataset(\'test_capitals.jsonl\')' in source
    assert "string_check(output, item['ideal'], 'eq', name='Exact capital')," in source
    assert "text_similarity(output, item['ideal'], 'fuzzy_match', 0.9, name='Close to the capital')," in source
    assert "scale=(0.0, 1.0), threshold=0.5, expected=item['ideal'], name='Judged correct', judge='gpt-4o')" in source
    assert "scale=('incorrect', 'correct'), threshold='correct'" in source
    assert PYTHON["source"] in source  # the grader's own code, verbatim
    assert "multi('Blend', '0.5 * exact + 0.5 * close'" in source
    assert "def test_called_a_tool_not_converted():" in source
    compile(source, "test_capitals.py", "exec")

    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", seed_rows())])
    result = pytester.runpytest("tests", "--model", "gpt-4o", "--distill-results", "results.json", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_capitals[[]item1-gpt-4o[]] PASSED*", "*test_called_a_tool_not_converted FAILED*",
                                 "*criterion 'Called a tool' (type 'string_check') was not converted*"])
    cases = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]
    graded = [entry for entry in cases if "test_capitals[" in entry["nodeid"]]
    names = [grade["name"] for grade in graded[0]["grades"]]
    assert names == ["Exact capital", "Close to the capital", "Judged correct", "Labelled correct", "Country in metadata", "Blend"]
    assert all(grade["passed"] for entry in graded for grade in entry["grades"])
    blend = graded[0]["grades"][-1]
    assert blend["score"] == 1.0 and blend["reason"] == "0.5 * exact + 0.5 * close = 1 with exact 1, close 1"

    student = pytester.runpytest("tests", "-k", "test_capitals and not tool")  # the simulated student misses some
    assert student.parseoutcomes().get("failed", 0) >= 1


def test_without_data_the_suite_takes_its_cases_from_the_dataset_option(tmp_path: Path) -> None:
    (tmp_path / "eval.json").write_text(json.dumps({**DEFINITION, "testing_criteria": [EXACT]}), encoding="utf-8")
    done = run_import("eval.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "test_capitals.py").read_text(encoding="utf-8")
    assert "distill_dataset(" not in source and "--distill-dataset" in source
    assert "The eval's item fields: country, ideal, input." in source


def test_data_without_the_input_field_says_which_fields_to_name(tmp_path: Path) -> None:
    (tmp_path / "eval.json").write_text(json.dumps(DEFINITION), encoding="utf-8")
    write_jsonl(tmp_path / "data.jsonl", [{"item": {"question": "q", "answer": "a"}}])
    done = run_import("eval.json", "--data", "data.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert "no item has the input field 'input'; its fields are answer, question: name the model's input with --input-field" \
        in done.stderr
    named = run_import("eval.json", "--data", "data.jsonl", "--input-field", "question", "--reference-field", "answer",
                       "-o", "test_q.py", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    line = json.loads((tmp_path / "test_q.jsonl").read_text(encoding="utf-8"))
    assert line == {"id": "item1", "item": {"question": "q", "answer": "a"}, "input": "q", "ideal": "a"}


def test_a_definition_without_criteria_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "eval.json").write_text(json.dumps({"name": "x", "data_source_config": {}}), encoding="utf-8")
    done = run_import("eval.json", cwd=tmp_path)
    assert done.returncode == 2 and "the definition has no testing_criteria" in done.stderr


def test_templates_fill_from_the_item_and_the_sample() -> None:
    sample = sample_of('{"city": "Paris"}')
    assert sample == {"output_text": '{"city": "Paris"}', "output_json": {"city": "Paris"}}
    item = {"ideal": "Paris", "tags": ["a", "b"], "nested": {"n": 2}}
    assert fill("{{ item.ideal }} / {{sample.output_json.city}} / {{item.tags}} / {{item.nested.n}} / {{item.tags.1}}",
                item, sample) == 'Paris / Paris / ["a", "b"] / 2 / b'
    with pytest.raises(KeyError, match="the data has no 'missing'"):
        fill("{{item.missing}}", item, sample)


@pytest.mark.parametrize("formula, expected", [
    ("0.5 * a + 0.5 * b", 0.75), ("min(a, b)", 0.5), ("a ^ 2", 1.0), ("(a + b) / 2", 0.75), ("-a + 1", 0.0),
])
def test_calculate_output_formulas_compute_over_the_scores(formula: str, expected: float) -> None:
    assert evaluate(formula, {"a": 1.0, "b": 0.5}) == pytest.approx(expected)


@pytest.mark.parametrize("formula", ["__import__('os').system('true')", "a.real", "c + 1", "a +"])
def test_calculate_output_runs_nothing_but_arithmetic(formula: str) -> None:
    with pytest.raises(ValueError, match="calculate_output"):
        evaluate(formula, {"a": 1.0, "b": 0.5})
