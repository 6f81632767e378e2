"""One truth in every report: a model's wrong answer is a failure, a call that could not be made is an error,
and the terminal, JUnit, pytest-html and the results file say the same."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import Fault

from .support import qa_rows, write_jsonl

MIXED_SUITE = """
import pytest
from pytest_distill import factuality, string_check

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model):
    answer = model.complete(case)
    if case.id == "q002":
        assert factuality(answer, case.expected)
    # the last case's reference is wrong on purpose: the model's answer fails it
    assert string_check(answer, "not the answer" if case.id == "q003" else case.expected)
"""


def html_report(path: Path) -> tuple[Counter[str], dict[str, int]]:
    """pytest-html's report: the result of each row of its data blob, and the counts its filters show."""
    text = path.read_text(encoding="utf-8")
    blob = re.search(r'data-jsonblob="([^"]*)"', text)
    assert blob is not None
    rows = json.loads(html.unescape(blob.group(1)))["tests"].values()
    results = Counter(row["result"] for tests in rows for row in tests)
    counts = {name: int(value) for name, value in re.findall(r'<span class="(\w+)">(\d+) ', text)}
    return results, counts


def junit_counts(path: Path) -> tuple[dict[str, str], Counter[str]]:
    """The testsuite's counters, and the kind of verdict element each testcase holds."""
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    kinds = Counter(next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "pass")
                    for case in suite.iter("testcase"))
    return dict(suite.attrib), kinds


def outcomes_in_results(path: Path) -> Counter[str]:
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return Counter("error" if r["error"] else "failed" if not all(g["passed"] for g in r["grades"]) else "passed"
                   for r in records)


def test_an_error_outside_the_model_is_an_error_in_every_report_and_a_wrong_answer_a_failure(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(4))
    server = make_sim(seed=[cases])
    server.inject(Fault("404", path="/chat/completions", model="gpt-4o-mini", count=100))
    server.inject(Fault("judge_garbage", count=2))
    pytester.makepyfile(MIXED_SUITE.format(spec=str(cases)))
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "-p", "no:cacheprovider",
                                "--junitxml", "junit.xml", "--html", "report.html", "--distill-results", "results.json")
    # gpt-4o: q000 and q001 pass, q002's judge answers garbage twice (error), q003 fails; gpt-4o-mini: 4 errors
    result.assert_outcomes(passed=2, failed=1, errors=5)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_reply[[]q000-gpt-4o-mini[]]*", "ModelError: *(HTTP 404)*"])
    result.stdout.fnmatch_lines(["*ERROR at setup of test_reply[[]q002-gpt-4o[]]*", "JudgeError: factuality: *"])
    counters, kinds = junit_counts(pytester.path / "junit.xml")
    assert (counters["tests"], counters["errors"], counters["failures"]) == ("8", "5", "1")
    assert kinds == Counter({"pass": 2, "failure": 1, "error": 5})
    results, counts = html_report(pytester.path / "report.html")
    assert results == Counter({"Passed": 2, "Failed": 1, "Error": 5})
    assert (counts["passed"], counts["failed"], counts["error"]) == (2, 1, 5)
    assert outcomes_in_results(pytester.path / "results.json") == Counter({"passed": 2, "failed": 1, "error": 5})
