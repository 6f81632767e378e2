"""--distill-markdown: the run as GitHub-flavoured Markdown, with the counts of every other report and
hostile outputs made inert."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.report.markdown import text
from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl
from .test_report_outputs import read_results

HOSTILE = "a | b <script>alert(1)</script> **bold** @octocat #12 [x](http://e.com)\n| new row |"
SUITE = """
import pytest
from pytest_distill import string_check
from pytest_distill.datasets import DatasetError

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model):
    if case.id == "q003":
        raise DatasetError("the data went away")
    answer = model.complete(case)
    assert string_check(answer, "nothing like it" if case.id in ("q000", "q001") else case.expected)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> pytest.Pytester:
    """Six cases; q000's answer is hostile Markdown; q000 and q001 fail, q003 errors."""
    rows = qa_rows(6)
    rows[0]["messages"][1]["content"] = HOSTILE
    cases = write_jsonl(tmp_path / "cases.jsonl", rows)
    make_sim(seed=[cases])
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    return pytester


def test_the_markdown_has_the_counts_of_the_other_reports_the_verdicts_and_the_worst_failures(suite: pytest.Pytester) -> None:
    first = suite.runpytest("--model", "gpt-4o", "--distill-results", "base.json")  # the baseline
    first.assert_outcomes(passed=3, failed=2, errors=1)
    result = suite.runpytest("--model", "gpt-4o", "--distill-markdown", "out/summary.md", "--junitxml", "junit.xml",
                             "--distill-results", "r.json", "--distill-baseline", "base.json", "--distill-pass-rate", "0.5")
    result.assert_outcomes(passed=3, failed=2, errors=1)
    page = (suite.path / "out" / "summary.md").read_text(encoding="utf-8")
    suites = ET.parse(suite.path / "junit.xml").getroot()
    junit = {key: sum(int(s.get(key, 0)) for s in suites.iter("testsuite")) for key in ("tests", "failures", "errors")}
    outcomes = [r["outcome"] for r in read_results(suite.path / "r.json")["cases"]]
    assert (junit["failures"], junit["errors"]) == (outcomes.count("failed"), outcomes.count("error")) == (2, 1)
    assert "**3 passed, 2 failed, 1 error**" in page
    # the rates meet the threshold, but an error fails the session: the mark says the session's verdict
    assert ("❌ pass rate threshold MET \\(each pass rate\\)\\: gpt\\-4o 60% \\[23–89\\] &gt;= 50%; "
            "but 1 test failed or errored outside any pass rate") in page
    assert "✅ no regression against the baseline base\\.json" in page
    assert "| model | pass rate | cases | errors |" in page and "| gpt\\-4o | 60% \\[23–89\\] | 5 | 1 |" in page
    worst = page[page.index("### Worst failures (2 of 2)"):]
    rows = [line for line in worst.splitlines() if line.startswith("| q00")]
    assert [row.split(" | ")[0] for row in rows] == ["| q000", "| q001"]
    # the hostile output: one row of five cells, no live HTML, mention, link or emphasis
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 6 for row in rows)
    assert "<script>" not in page and "@octocat" not in page and "](" not in page and "**bold" not in page
    assert "&lt;script&gt;" in page and "&#64;octocat" in page and "\\#12" in page


def test_markup_in_text_is_escaped_cut_and_kept_on_one_line() -> None:
    assert text("x|y\nz *w* `c` <b>&amp;") == "x\\|y z \\*w\\* \\`c\\` &lt;b&gt;&amp;amp;"
    assert text("a" * 300).endswith("a…") and len(text("a" * 300)) == 200
