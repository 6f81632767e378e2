"""`evals import` writes a file in which no text of the eval definition can become code.

A hostile definition's name, id, item field names, criterion names, roles, labels, models and grader
sources reach the generated file only as literals and escaped comments; the file is parsed back and
must hold exactly what was built, else nothing is written. What cannot be a test file (a NUL, NaN or
an infinite threshold) is an import error that says so.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.evals.module import GeneratedCode, TestModule, escaped, identifier, text_literal

from .support import write_jsonl
from .test_evals_import import items, run_import, seed_rows


def payload(mark: str) -> str:
    """Code that leaves a file named `pwned_MARK` behind if it ever runs."""
    return f'open("pwned_{mark}", "w").close()'


def hostile(mark: str) -> str:
    """A text that ends every kind of literal or comment it could be pasted into, then runs the payload."""
    return f'{mark}""";{payload(mark)};"""\'\'\';{payload(mark)};\'\'\'\n{payload(mark)}\r{payload(mark)}\u2028#\\'


PYTHON_SOURCE = ('def grade(sample, item) -> float:\n    text = "\\\\ \\"\\"\\" \\x00 \'\'\'"\n'
                 '    return 1.0 if text == "\\\\ \\"\\"\\" \\x00 \'\'\'" else 0.0\n')
"""A grader whose source holds a backslash, escaped triple quotes and an escape: it passes only when
the file holds it exactly."""


def hostile_definition() -> dict[str, Any]:
    return {
        "name": hostile("name"),
        "id": hostile("id"),
        "data_source_config": {"type": "custom", "item_schema": {"type": "object", "properties": {
            hostile("field"): {"type": "string"}, "input": {"type": "array"}, "ideal": {"type": "string"}}}},
        "testing_criteria": [
            {"type": "string_check", "name": hostile("label"), "input": "{{sample.output_text}}", "reference": "{{item.ideal}}",
             "operation": "eq"},
            {"type": "string_check", "name": hostile("label"), "input": "{{sample.output_text}}", "reference": hostile("reference"),
             "operation": "ne"},
            {"type": "python", "name": hostile("grader"), "source": PYTHON_SOURCE},
            {"type": "score_model", "name": hostile("judged"), "model": "gpt-4o", "range": [0, 1], "pass_threshold": 0.5,
             "input": [{"role": hostile("role"), "content": f"Reference: {{{{item.ideal}}}} {hostile('prompt')}"},
                       {"role": "user", "content": "{{sample.output_text}}"}]},
            {"type": hostile("type"), "name": hostile("placeholder")},
        ],
    }


def test_a_hostile_definition_becomes_a_file_that_runs_none_of_its_text(
        pytester: pytest.Pytester, make_sim: Any, tmp_path: Path) -> None:
    definition = hostile_definition()
    (pytester.path / "eval.json").write_text(json.dumps(definition), encoding="utf-8")
    write_jsonl(pytester.path / "capitals.jsonl", items())
    done = run_import("eval.json", "--data", "capitals.jsonl", "-o", "tests/test_hostile.py", cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    assert "4 criteria converted, 1 not" in done.stdout
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", seed_rows())])
    result = pytester.runpytest("tests", "--model", "gpt-4o", "-p", "no:cacheprovider")
    assert sorted(path.name for path in pytester.path.glob("pwned_*")) == []
    result.assert_outcomes(passed=3, failed=1)  # the three cases; the placeholder fails, saying why
    result.stdout.fnmatch_lines(["*was not converted: grader type*has no counterpart here*"])

    tree = ast.parse((pytester.path / "tests" / "test_hostile.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree, clean=False) or ""
    assert f"The OpenAI eval {definition['name']!r} ({definition['id']}) as a pytest suite." in docstring
    assert hostile("field") in docstring
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(functions) == 2 and functions[1].endswith("_not_converted")
    constants = {node.targets[0].id: node.value for node in tree.body if isinstance(node, ast.Assign)}  # type: ignore[attr-defined]
    prompt = next(value for name, value in constants.items() if name.endswith("_PROMPT"))
    assert isinstance(prompt, ast.Constant) and f"{hostile('role')}:\nReference: {{{{item.ideal}}}} {hostile('prompt')}" in prompt.value


def test_criteria_with_the_same_name_each_keep_their_own_grader(pytester: pytest.Pytester, make_sim: Any, tmp_path: Path) -> None:
    """Two python graders named alike were one variable: the second replaced the first unseen."""
    failing = {"type": "python", "name": "Same", "source": "def grade(sample, item):\n    return 0.0\n"}
    passing = {"type": "python", "name": "Same", "source": "def grade(sample, item):\n    return 1.0\n"}
    (pytester.path / "eval.json").write_text(json.dumps({"name": "Twins", "testing_criteria": [failing, passing]}), encoding="utf-8")
    write_jsonl(pytester.path / "capitals.jsonl", items()[:1])
    done = run_import("eval.json", "--data", "capitals.jsonl", "-o", "test_twins.py", cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    source = (pytester.path / "test_twins.py").read_text(encoding="utf-8")
    assert "same_grader = python_grader(" in source and "same_grader_2 = python_grader(" in source
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", seed_rows())])
    pytester.runpytest("test_twins.py", "--model", "gpt-4o", "-p", "no:cacheprovider").assert_outcomes(failed=1)


@pytest.mark.parametrize("text, said", [
    ('{"name": "a\\u0000b", "testing_criteria": [{"type": "string_check"}]}', "a NUL character in the text at $.name"),
    ('{"name": "x", "testing_criteria": [{"type": "python", "source": "def grade(s, i):\\n    return 1\\u0000"}]}',
     "a NUL character in the text at $.testing_criteria[0].source"),
    ('{"name": "x", "testing_criteria": [{"type": "text_similarity", "pass_threshold": NaN}]}', "NaN is not JSON"),
    ('{"name": "x", "testing_criteria": [{"type": "text_similarity", "pass_threshold": Infinity}]}', "Infinity is not JSON"),
    ('{"name": "x", "testing_criteria": [{"type": "text_similarity", "pass_threshold": -Infinity}]}', "-Infinity is not JSON"),
    ('{"name": "x", "testing_criteria": [{"type": "score_model", "pass_threshold": 1e999}]}', "the number 1e999 is out of range"),
    ('{"name": "x", "testing_criteria": [{"type": "string_check", "name": "\\ud800"}]}', "a lone surrogate"),
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
])
def test_what_no_test_file_can_hold_is_an_import_error_that_says_so(tmp_path: Path, text: str, said: str) -> None:
    (tmp_path / "eval.json").write_text(text, encoding="utf-8")
    done = run_import("eval.json", "-o", "test_x.py", cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "test_x.py").exists()


@pytest.mark.parametrize("criterion", [
    {"type": "score_model", "name": "range of text", "range": ["0", 1], "input": [{"role": "user", "content": "x"}]},
    {"type": "score_model", "name": "range of three", "range": [0, 1, 2], "input": [{"role": "user", "content": "x"}]},
    {"type": "score_model", "name": "range as object", "range": {"low": 0}, "input": [{"role": "user", "content": "x"}]},
    {"type": "label_model", "name": "labels as objects", "labels": [{"a": 1}], "passing_labels": [{"a": 1}],
     "input": [{"role": "user", "content": "x"}]},
    {"type": "label_model", "name": "model as object", "labels": ["a", "b"], "passing_labels": ["b"], "model": {"x": 1},
     "input": [{"role": "user", "content": "x"}]},
    {"type": "multi", "name": "parts not objects", "graders": {"a": 1}, "calculate_output": "a"},
    {"type": "text_similarity", "name": "threshold as text", "evaluation_metric": "bleu", "pass_threshold": "0.5",
     "input": "{{sample.output_text}}", "reference": "x"},
])
def test_a_criterion_of_the_wrong_shape_is_a_placeholder_not_a_crash(tmp_path: Path, criterion: dict[str, Any]) -> None:
    (tmp_path / "eval.json").write_text(json.dumps({"name": "Shapes", "testing_criteria": [criterion]}), encoding="utf-8")
    done = run_import("eval.json", "-o", "test_shapes.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"NOT converted: {criterion['name']} ({criterion['type']})" in done.stdout
    ast.parse((tmp_path / "test_shapes.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", [
    "", '"', '""', '"""', '""""', 'a"', 'a\\', '\\"""', "\\", "\x00\r\n\t\x0c\x85\u2028\ud800", "'''", "line\nline\n", 'x"\n"',
])
def test_escaped_text_reads_back_exactly(text: str) -> None:
    assert ast.literal_eval('"""' + escaped(text) + '"""') == text
    assert ast.literal_eval(text_literal(text)) == text


@pytest.mark.parametrize("value, problem", [
    ("__import__('os')", "uses the name '__import__'"),
    ("exec('1')", "uses the name 'exec'"),
    ("pytest.__dict__", "reads the attribute '__dict__'"),
    ("[x for x in ()]", "holds a ListComp"),
    ("1\nimport os", "holds [('import', 'pytest', ()), ('assign', 'x', ()), ('import', 'os', ())]"),
    ("(lambda open: open)", "'open' is not a plain Python identifier"),
])
def test_the_built_file_is_refused_when_it_holds_anything_else(value: str, problem: str) -> None:
    """The last guard: even a literal that escaped its quoting could only call the file's own names."""
    module = TestModule("A suite.\n")
    module.import_("pytest")
    module.assign("x", value)
    with pytest.raises(GeneratedCode, match=re.escape(problem)):
        module.source()


@pytest.mark.parametrize("name", ["open", "__class__", "class", "a-b", "ünï", ""])
def test_names_in_the_file_are_plain_identifiers_of_its_own(name: str) -> None:
    with pytest.raises(GeneratedCode, match="not a plain Python identifier"):
        identifier(name)
