"""The case x model matrix of the HTML report: rendered by a real browser (headless Chromium), and its pure parts."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.grades import Grade
from pytest_distill.ledger import Entry
from pytest_distill.report.html import matrix_html
from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl

HOSTILE = 'Item <b>q2</b> is "number" 2 & <script>document.title="pwned"</script><img src=x onerror="document.title=1">'


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The page as headless Chromium renders it, after its scripts ran."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def matrix_rows(dom: str) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(row class, case id, [(cell verdict, cell label, cell title)]) per row of the rendered matrix."""
    table = re.search(r'<div class="distill-matrix">.*?</table>', dom, re.S)
    assert table is not None, "the report has no case x model matrix"
    rows = []
    for row_class, body in re.findall(r'<tr class="(\w+)">(.*?)</tr>', table.group(0), re.S):
        case = re.search(r"<td><b>(.*?)</b>", body)
        cells = re.findall(r'<td class="(\w+)" data-verdict="\w+" title="(.*?)"><details><summary>(.*?)</summary>', body, re.S)
        rows.append((row_class, html.unescape(case.group(1)) if case else "",
                     [(verdict, html.unescape(label), html.unescape(title)) for verdict, title, label in cells]))
    return rows


def test_the_matrix_shows_each_case_by_model_disagreements_first_outputs_escaped(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    rows = qa_rows(4)
    rows[2]["messages"][-1]["content"] = HOSTILE
    cases = write_jsonl(tmp_path / "cases.jsonl", rows)
    make_sim(seed=[cases])
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset({str(cases)!r})
        def test_reply(case, model):
            # the student fails q001 and q003 only: the models disagree on those two cases
            wrong = model.name == "gpt-4o-mini" and case.id in ("q001", "q003")
            output = model.complete(case)
            assert string_check(output, "nothing like it" if wrong else output.text)
    """)
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "--html", "report.html")
    result.assert_outcomes(passed=6, failed=2)
    dom = dump_dom(pytester.path / "report.html", tmp_path)
    assert "<title>pwned</title>" not in dom and "<title>1</title>" not in dom
    header = re.search(r'<div class="distill-matrix">.*?<thead><tr>(.*?)</tr>', dom, re.S)
    assert header is not None and re.findall(r"<th>(.*?)</th>", header.group(1)) == ["case", "gpt-4o", "gpt-4o-mini"]
    matrix = matrix_rows(dom)
    assert [(row_class, case) for row_class, case, _ in matrix] == [
        ("disagree", "q001"), ("disagree", "q003"), ("agree", "q000"), ("agree", "q002")]
    assert [[(verdict, label) for verdict, label, _ in cells] for _, _, cells in matrix[:2]] == [
        [("pass", "pass"), ("fail", "FAIL")]] * 2
    hostile_cell = matrix[3][2][0]
    assert hostile_cell == ("pass", "pass", HOSTILE)
    # expanded, the cell shows the output as text: no element of it became part of the page
    row = re.search(r'<tr class="agree"><td><b>q002</b>.*?</tr>', dom, re.S)
    assert row is not None and "<img" not in row.group(0) and "<b>q2</b>" not in row.group(0)
    assert html.escape(HOSTILE, quote=False) in row.group(0)


def _entry(case: str, model: str, passed: bool, sample: int = 0, outcome: str = "passed", output: str = "x") -> Entry:
    return Entry(nodeid=f"t.py::t[{case}-{model}-rep{sample}]", case_id=case, model=model, output=output, sample=sample,
                 grades=[Grade("string_check", float(passed), passed, "why")], outcome=outcome)


def test_a_cell_of_repeats_that_passed_and_failed_is_flaky_and_shows_each_repeat() -> None:
    entries = [_entry("a", "m1", True, 0, output="first"), _entry("a", "m1", False, 1, output="second <i>"),
               _entry("a", "m2", True, 0), _entry("a", "m2", True, 1),
               _entry("b", "m1", True, 0), _entry("b", "m1", True, 1),
               _entry("b", "m2", False, 0, outcome="error"), _entry("b", "m2", False, 1, outcome="error")]
    page = matrix_html(entries, ["m1", "m2"])
    assert '<td class="flaky" data-verdict="flaky"' in page and "<summary>flaky 1/2</summary>" in page
    assert "<pre>rep1 fail: second &lt;i&gt;</pre>" in page and '<td class="error" data-verdict="error"' in page
    assert page.count('<tr class="disagree">') == 2
    # each model's pass rate under its column with its Wilson interval: m1 3 of 4, m2 2 of 2 (its errors count in none)
    assert "<tfoot><tr><th>pass rate [95% interval]</th><th>75% [30–96]</th><th>100% [34–100]</th></tr></tfoot>" in page
    assert matrix_html([], ["m1"]) == "" and matrix_html([Entry(nodeid="t.py::t", grades=[])], ["m1"]) == ""
