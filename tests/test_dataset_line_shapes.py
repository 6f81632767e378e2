"""Dataset lines whose messages have the wrong shapes (a role that is a list, content parts whose text is
no text) cost only their own case: an error naming the line, never the whole file, never a failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.datasets import BrokenCase, Case, load_jsonl

from .test_hostile_input import ANSWER_SUITE, strict_results


def chat(user: Any = "hi", answer: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user, **extra}, {"role": "assistant", "content": answer}]}


LINES: list[tuple[dict[str, Any], str | None]] = [
    ({"id": "good-1", **chat()}, None),
    ({"messages": [{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "hello"}]},
     "message 0 has unknown role ['user']"),
    (chat(answer=[{"type": "text", "text": ["hello"]}]), "message 1 (assistant): content part 0 (text): 'text' must be text, not list"),
    (chat(user=[{"type": "text", "text": 7}]), "message 0 (user): content part 0 (text): 'text' must be text, not int"),
    (chat(user=[{"type": "text"}]), "message 0 (user): content part 0 (text): 'text' must be text, not NoneType"),
    (chat(user=["hi"]), "message 0 (user): content part 0 is not an object with a 'type'"),
    (chat(answer=[{"type": "refusal", "refusal": 1}]), "message 1 (assistant): content part 0 (refusal): 'refusal' must be text"),
    (chat(name=7), "message 0 (user): 'name' must be text, not int"),
    ({"input": [{"role": {"user": 1}, "content": "hi"}], "ideal": "hello"}, "message 0 has unknown role {'user': 1}"),
    ({"id": "good-2", **chat(user=[{"type": "text", "text": "hi"}])}, None),
]


def write_lines(path: Path) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line, _ in LINES), encoding="utf-8")
    return path


def test_each_wrongly_shaped_line_is_a_broken_case_that_names_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "cases.jsonl")
    cases = load_jsonl(path, "cases.jsonl")
    assert [case.id for case in cases if isinstance(case, Case)] == ["good-1", "good-2"]
    problems = [case.problem for case in cases if isinstance(case, BrokenCase)]
    expected = [f"{path}:{number}: {problem}" for number, (_, problem) in enumerate(LINES, start=1) if problem]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_wrongly_shaped_lines_are_errors_of_their_cases_in_every_report(pytester: pytest.Pytester) -> None:
    write_lines(pytester.path / "cases.jsonl")
    pytester.makepyfile(ANSWER_SUITE)
    result = pytester.runpytest("--distill-sim", "--distill-results", "results.json", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=2, errors=len(LINES) - 2)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(["*cases.jsonl:4: message 0 (user): content part 0 (text): 'text' must be text, not int*"])
    cases = strict_results(pytester.path / "results.json")["cases"]
    assert sorted(case["outcome"] for case in cases) == ["error"] * (len(LINES) - 2) + ["passed"] * 2
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    assert junit.count("<error ") == len(LINES) - 2 and "<failure " not in junit
