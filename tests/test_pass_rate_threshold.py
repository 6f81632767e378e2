"""--distill-pass-rate: the session's exit status follows the pass rates, while each failed case stays a
failure in every report (terminal, JUnit, HTML, results file)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.settings import RateRule
from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl
from .test_report_outputs import html_data, read_results

SUITE = """
import pytest
from pytest_distill import string_check, valid_json

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model):
    answer = model.complete(case)
    # q002 is answered wrongly: 9 of 10 pass
    assert string_check(answer, "nothing like it" if case.id == "q002" else case.expected)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> pytest.Pytester:
    """Ten cases that gpt-4o answers as stored; the test fails one of them."""
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    make_sim(seed=[cases])
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    return pytester


def test_a_met_threshold_passes_the_session_and_the_failed_case_stays_a_failure_everywhere(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "0.9", "--junitxml", "junit.xml",
                             "--html", "report.html", "--distill-results", "r.json")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=9, failed=1)
    # 9/10: Wilson [0.5958, 0.9821], shown rounded outwards
    assert result.stdout.lines[-1] == "distill: pass rate threshold MET (each pass rate): gpt-4o 90% [59–99] >= 90%"
    failures = [case for case in ET.parse(suite.path / "junit.xml").getroot().iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failures] == ["test_reply[q002-gpt-4o]"]
    assert "<p>distill: pass rate threshold MET (each pass rate): gpt-4o 90% [59–99] &gt;= 90%</p>" in (
        suite.path / "report.html").read_text(encoding="utf-8")
    tests = html_data(suite.path / "report.html")["tests"]
    assert sorted(t["result"] for runs in tests.values() for t in runs) == ["Failed"] + ["Passed"] * 9
    results = read_results(suite.path / "r.json")
    assert [r["case_id"] for r in results["cases"] if r["outcome"] == "failed"] == ["q002"]
    assert results["threshold"]["met"] is True and results["threshold"]["checks"] == [
        {"model": "gpt-4o", "grader": None, "pass_rate": 0.9, "ci95": [0.5958, 0.9821], "n": 10, "threshold": 0.9, "met": True}]


def test_a_missed_threshold_fails_the_session_and_says_which_model_missed_it(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "0.95")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.lines[-1] == "distill: pass rate threshold MISSED (each pass rate): gpt-4o 90% [59–99] < 95%"


def test_a_grader_rule_from_the_ini_file_judges_that_graders_rate(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\ndistill_pass_rate =\n    0.5\n    string_check=0.95\n")
    result = suite.runpytest("--model", "gpt-4o")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.lines[-1] == ("distill: pass rate threshold MISSED (each pass rate): gpt-4o string_check 90% [59–99] "
                                       "< 95% (met: gpt-4o 90% [59–99] >= 50%)")


def test_with_ci_the_lower_bound_must_meet_the_rate(suite: pytest.Pytester) -> None:
    missed = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "0.9", "--distill-pass-rate-ci")
    assert missed.ret == pytest.ExitCode.TESTS_FAILED
    assert missed.stdout.lines[-1] == ("distill: pass rate threshold MISSED (the lower bound of the 95% interval of each "
                                       "pass rate): gpt-4o 90% [59–99] (lower bound 60%) < 90%")
    met = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "0.59", "--distill-pass-rate-ci")
    assert met.ret == pytest.ExitCode.OK


def test_an_error_or_a_plain_failed_test_still_fails_a_session_whose_rates_are_met(
        suite: pytest.Pytester, tmp_path: Path) -> None:
    suite.makepyfile(test_plain="def test_plain():\n    assert False\n")
    result = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.lines[-1].startswith("distill: pass rate threshold MET (each pass rate): gpt-4o 90% [59–99] >= 50%; "
                                              "but 1 test failed or errored outside any pass rate (e.g. test_plain.py::test_plain)")


def test_a_grader_rule_that_nothing_graded_misses_and_a_bad_rule_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", "factuality=0.8")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.lines[-1] == "distill: pass rate threshold MISSED (each pass rate): no case was graded by factuality"
    for bad in ("1.5", "=0.9", "ninety"):
        usage = suite.runpytest("--model", "gpt-4o", "--distill-pass-rate", bad)
        assert usage.ret == pytest.ExitCode.USAGE_ERROR, bad
    assert str(RateRule("factuality", 0.8)) == "factuality=0.8"
