"""A hostile server: what it says (error bodies, answers) reaches every report short and inert,
in real pytest sessions against a small server the test starts (test_xdist_one_truth: the same under xdist)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill import Grade

from .support import HostileServer, qa_rows, write_jsonl

SUITE = """
import pytest

@pytest.mark.distill_dataset({spec!r})
def test_answer(case, model):
    assert model.complete(case).text == case.expected
"""
REPORTS = ("--junitxml", "junit.xml", "--html", "report.html", "--distill-results", "results.json")


def written(pytester: pytest.Pytester) -> dict[str, str]:
    """Every report the session wrote, by name."""
    return {name: (pytester.path / name).read_text(encoding="utf-8") for name in ("junit.xml", "report.html", "results.json")}


def test_a_huge_error_body_is_capped_in_every_report_saying_how_much_was_cut(
        pytester: pytest.Pytester, hostile: type[HostileServer], tmp_path: Path) -> None:
    """A 5 MB error body over 8 tests made 40 MB of terminal, results and JUnit and 120 MB of HTML:
    each message now keeps its first 2,000 characters and says how many more were cut."""
    server = hostile(400, {"error": {"message": "x" * 5_000_000, "type": "invalid_request_error"}})
    pytester.makepyfile(SUITE.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(8)))))
    result = pytester.runpytest("-p", "no:cacheprovider", *REPORTS)
    result.assert_outcomes(errors=8)
    assert server.posts >= 8
    result.stdout.fnmatch_lines(["*(HTTP 400): Error code: 400 - *x… [[]*,* more characters cut[]]*"])
    terminal = result.stdout.str()
    assert len(terminal) < 200_000
    for name, text in written(pytester).items():
        assert len(text) < 2_000_000 if name == "report.html" else len(text) < 200_000, name
        assert "more characters cut" in text, name


FAKE = "\x1b[2J\x1b[H\x1b[1A\rtest_answer.py::test_answer PASSED\u202e"
"""Clears the screen, moves the cursor up and writes a PASSED line over the last one."""


def chat_answer(request: dict[str, Any], content: str) -> tuple[int, object]:
    return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": request.get("model", ""),
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content, "refusal": None}}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}


def escaping(request: dict[str, Any]) -> tuple[int, object]:
    """Escape sequences in everything: the answer, the judge's reasoning, and one model's error."""
    if request.get("model") == "broken":
        return 400, {"error": {"message": f"bad request {FAKE}", "type": "invalid_request_error"}}
    if "response_format" in request:
        return chat_answer(request, json.dumps({"reasoning": f"{FAKE} all good", "choice": "D"}))
    return chat_answer(request, f"Paris {FAKE}")


JUDGED = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset({spec!r})
def test_answer(case, model):
    assert factuality(model.complete(case), case.expected)
"""


def test_escape_sequences_from_answers_judges_and_servers_are_shown_escaped_in_the_terminal(
        pytester: pytest.Pytester, hostile: type[HostileServer], tmp_path: Path) -> None:
    """`\\x1b[2J` and cursor moves in a model's answer, a judge's reasoning or a server's error were
    printed raw: they cleared the screen and faked PASSED lines. The terminal now shows them escaped:
    the failure (Grade and reason, output), the error, the summary table's notes."""
    hostile(reply=escaping)
    pytester.makepyfile(JUDGED.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(2)))))
    result = pytester.runpytest("-p", "no:cacheprovider", "--model", "gpt-4o-mini", "--model", "broken")
    result.assert_outcomes(failed=2, errors=2)
    terminal = result.stdout.str()
    assert "\x1b" not in terminal and "\r" not in terminal and "\u202e" not in terminal
    escaped = "\\x1b[[]2J\\x1b[[]H\\x1b[[]1A\\rtest_answer.py::test_answer PASSED\\u202e"  # as fnmatch patterns
    flattened = escaped.replace("\\r", " ")  # the output is shown on one line: a carriage return is a space
    result.stdout.fnmatch_lines([f"*(HTTP 400): Error code: 400 - bad request {escaped}",
                                 f"*reason: *Judge's reasoning: {escaped} all good",
                                 f"output: Paris {flattened}",
                                 "errors: 2 tests: model under test 'broken' at *", f"  {escaped}"])


def test_a_grade_named_or_reasoned_with_escape_sequences_is_shown_escaped() -> None:
    """A grade's name can come from data (an imported eval's criterion, `custom_prompt(name=...)`)."""
    grade = Grade("crit\x1b[2J", 0.0, False, "fine\x1b[1A\r", threshold="score >= 1")
    shown = repr(grade) + "\n".join(grade.explain())
    assert "\x1b" not in shown and "\r" not in shown
    assert repr(grade) == "<crit\\x1b[2J FAIL score=0>"
    assert grade.explain()[1] == "  reason: fine\\x1b[1A\\r"
