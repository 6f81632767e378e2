"""Hostile input crosses the xdist channel whole: one project holds many hostile scenarios at once and is run
serial and with `-n 2`, and both runs must say the same in every report.

Each `-n 2` run starts two workers (seconds of CPU each). The serial tests (test_hostile_input,
test_hostile_server, test_dataset_line_shapes, test_dataset_errors, test_big_inputs, test_model_faults,
test_report_errors) check what each hostile thing means; this module checks, with one xdist start per
project, that the same truth reaches the controller: the same errors with the same reasons, the same
per-case outcome in the terminal, JUnit, pytest-html and the results file, nothing run from markup, no
INTERNALERROR. Faults are injected by the server and kept apart by path and model name, so they coexist.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import Fault, SimServer

from .support import HostileServer, qa_rows, requests_to, write_jsonl
from .test_big_inputs import chat_line
from .test_dataset_errors import missing_and_broken_datasets
from .test_dataset_line_shapes import LINES, write_lines
from .test_datasets import hostile_lines
from .test_hostile_input import HOSTILE_IDS, XSS_ID, XSS_MODEL, strict_results
from .test_hostile_server import escaping

HTML_RESULT = {"pass": "Passed", "failure": "Failed", "error": "Error"}
RESULTS_OUTCOME = {"pass": "passed", "failure": "failed", "error": "error"}
WORKERS = {"serial": (), "xdist": ("-n", "2")}
REPORTS = ("-p", "no:cacheprovider", "--junitxml", "junit.xml", "--html", "report.html",
           "--distill-results", "results.json")
CAP = 250_000
"""distill_max_line_bytes of the dataset project: above the 200,000-byte nested line, below the long one."""
SURROGATE_MODEL, NAN_JUDGE, GARBAGE_JUDGE, GONE_MODEL = ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-11-20",
                                                         "gpt-4o-2024-08-06", "gpt-4o-mini")
"""Each fault's own model, so that each hits its own scenario only."""

LINE_TESTS = "".join(f"""
@pytest.mark.distill_dataset("{name}.jsonl")
def test_{name}_line(case, model):
    model.complete(case)
    assert case.expected == "hello"
""" for name in ("hostile", "shaped", "long"))
"""The hostile, wrongly shaped and over-long dataset lines: each bad line errors its own case."""
DATASET_TESTS = f"""
import pytest
from pytest_distill import factuality, semantic_similarity, string_check
{LINE_TESTS}
@pytest.mark.distill_dataset("ids.jsonl")
def test_marked_up_id(case, model):
    assert string_check(model.complete(case), "a")

@pytest.mark.distill_dataset("stored:split=stored")
def test_stored(case, model):
    assert model.complete(case).text

@pytest.mark.distill_dataset("surrogate.jsonl")
def test_surrogate(case, model, teacher):
    # only u001 asks the model whose answer holds a lone surrogate: the same case errors in every run
    assert (teacher if case.id == "u001" else model).complete(case).text

@pytest.mark.distill_dataset("nan.jsonl")
def test_nan_verdict(case, model):
    assert semantic_similarity(model.complete(case), case.expected, judge={NAN_JUDGE!r})

@pytest.mark.distill_dataset("mixed.jsonl")
def test_mixed(case, model):
    answer = model.complete(case)
    if case.id == "q002":
        assert factuality(answer, case.expected, judge={GARBAGE_JUDGE!r})
    # the last case's reference is wrong on purpose: the model's answer fails it
    assert string_check(answer, "not the answer" if case.id == "q003" else case.expected)

@pytest.mark.distill_dataset("mixed.jsonl")
def test_outside_the_model(case, student):
    student.complete(case)
"""
def outcomes(pytester: pytest.Pytester, result: pytest.RunResult) -> dict[str, dict[str, str]]:
    """Each report's outcome of each test, keyed by node id (JUnit's by classname and name), and the terminal's counts."""
    cases = strict_results(pytester.path / "results.json")["cases"]
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    junit = {f"{case.get('classname')}::{case.get('name')}":
             next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "pass")
             for case in suite.iter("testcase")}
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    rows = json.loads(html.unescape(blob.group(1)))["tests"]
    return {"results": {case["nodeid"]: case["outcome"] for case in cases}, "junit": junit,
            "html": {nodeid: ",".join(sorted(row["result"] for row in tests)) for nodeid, tests in rows.items()},
            "terminal": {key: str(value) for key, value in result.parseoutcomes().items()}}


def html_cells(pytester: pytest.Pytester) -> list[str]:
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    return [cell for tests in json.loads(html.unescape(blob.group(1)))["tests"].values()
            for row in tests for cell in row["resultsTableRow"]]


def run_both(pytester: pytest.Pytester, before_each: Callable[[], None], *args: str
             ) -> dict[str, tuple[pytest.RunResult, dict[str, dict[str, str]]]]:
    """The project run serial and under xdist (`before_each` puts the server's faults back first): each
    run's result and its outcomes in every report; the outcomes must be the same in both."""
    runs: dict[str, tuple[pytest.RunResult, dict[str, dict[str, str]]]] = {}
    for name, workers in WORKERS.items():
        before_each()
        result = pytester.runpytest(*REPORTS, *args, *workers)
        result.stdout.no_fnmatch_line("*INTERNALERROR*")
        runs[name] = (result, outcomes(pytester, result))
        seen = runs[name][1]
        assert Counter(seen["html"].values()) == Counter(HTML_RESULT[kind] for kind in seen["junit"].values()), name
        for nodeid, outcome in seen["results"].items():  # the tests that called a model
            assert RESULTS_OUTCOME[seen["junit"][nodeid.replace(".py::", "::")]] == outcome, nodeid
    assert runs["serial"][1] == runs["xdist"][1]
    return runs


def dataset_project(pytester: pytest.Pytester, tmp_path: Path) -> list[Path]:
    """Hostile datasets, ids, stored completions and model faults side by side; the sim's seed files."""
    (pytester.path / "hostile.jsonl").write_bytes(b"\n".join(hostile_lines()) + b"\n")
    write_lines(pytester.path / "shaped.jsonl")
    (pytester.path / "long.jsonl").write_text(chat_line("good-1") + "\n" + chat_line("long", 300_000) + "\n", encoding="utf-8")
    write_jsonl(pytester.path / "ids.jsonl", [
        {"id": case_id, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}
        for case_id in HOSTILE_IDS])
    write_jsonl(pytester.path / "surrogate.jsonl", qa_rows(5, prefix="u"))
    write_jsonl(pytester.path / "nan.jsonl", qa_rows(2, prefix="n"))
    write_jsonl(pytester.path / "mixed.jsonl", qa_rows(4))
    missing_and_broken_datasets(pytester)
    pytester.makepyfile(test_datasets=DATASET_TESTS)
    pytester.makeini(f"[pytest]\ndistill_max_line_bytes = {CAP}\n")
    return [pytester.path / "mixed.jsonl", write_jsonl(tmp_path / "stored.jsonl", qa_rows(3, split="stored", prefix="s"))]


def dataset_faults(server: SimServer) -> Callable[[], None]:
    def inject() -> None:
        server.clear_requests()
        server.inject(Fault("malformed", count=50, path="/chat/completions/chatcmpl-s001/messages"))
        server.inject(Fault("lone_surrogate", path="/chat/completions", model=SURROGATE_MODEL))
        server.inject(Fault("judge_nan", count=100, model=NAN_JUDGE))
        server.inject(Fault("404", count=100, path="/chat/completions", model=GONE_MODEL))
        server.inject(Fault("judge_garbage", count=2, model=GARBAGE_JUDGE))
    return inject


def test_hostile_datasets_and_model_faults_say_the_same_serial_and_under_xdist(
        pytester: pytest.Pytester, make_sim: Any, tmp_path: Path) -> None:
    server = make_sim(seed=dataset_project(pytester, tmp_path))
    runs = run_both(pytester, dataset_faults(server), "--model", "gpt-4o", "--teacher", SURROGATE_MODEL,
                    "--student", GONE_MODEL)
    for name, (result, seen) in runs.items():
        by_test = Counter((nodeid.split("::")[1].split("[")[0], outcome) for nodeid, outcome in seen["junit"].items())
        marked_up = {outcome: by_test.pop(("test_marked_up_id", outcome), 0) for outcome in ("pass", "failure")}
        assert sum(marked_up.values()) == len(HOSTILE_IDS), name
        assert by_test == Counter({
            ("test_hostile_line", "pass"): 2, ("test_hostile_line", "error"): 5,
            ("test_shaped_line", "pass"): 2, ("test_shaped_line", "error"): len(LINES) - 2,
            ("test_long_line", "pass"): 1, ("test_long_line", "error"): 1,
            ("test_good", "pass"): 3, ("test_plain", "pass"): 1,
            ("test_missing", "error"): 1, ("test_broken", "error"): 1, ("test_bad", "error"): 1,
            ("test_stored", "pass"): 2, ("test_stored", "error"): 1,
            ("test_surrogate", "pass"): 4, ("test_surrogate", "error"): 1,
            ("test_nan_verdict", "error"): 2,
            ("test_mixed", "pass"): 2, ("test_mixed", "failure"): 1, ("test_mixed", "error"): 1,
            ("test_outside_the_model", "error"): 4}), name
        assert seen["junit"]["test_datasets::test_surrogate[u001-gpt-4o]"] == "error", name
        kinds = Counter(kind for (_, kind) in by_test.elements()) + Counter(marked_up)
        assert seen["terminal"] == {"passed": str(kinds["pass"]), "failed": str(kinds["failure"]),
                                    "errors": str(kinds["error"])}, name
        terminal = result.stdout.str()
        for line in (
                # hostile dataset lines: each names its line
                "*hostile.jsonl:2: not UTF-8*", "*hostile.jsonl:3: not JSON: nested 100000 levels deep*",
                "*hostile.jsonl:4: not JSON: a lone surrogate*", "*hostile.jsonl:6: message 0 (user) has no content*",
                "*shaped.jsonl:4: message 0 (user): content part 0 (text): 'text' must be text, not int*",
                f"*long.jsonl:2: the line is 300,1?? bytes, more than distill_max_line_bytes ({CAP:,})*",
                # missing and unreadable datasets
                "*dataset 'missing.jsonl': no such file (looked for *missing.jsonl*",
                "*broken.jsonl: no line is a case in either format*line 1 column 28*", "*not UTF-8: byte 0xff at column 1*",
                # the server's faults
                "*stored completion chatcmpl-s001: GET /chat/completions/chatcmpl-s001/messages*",
                "*POST /chat/completions failed: the server's answer is off the API's shape: "
                "its message content is not Unicode text (it holds a lone surrogate)*",
                f"*JudgeError: semantic_similarity: the judge '{NAN_JUDGE}' gave no usable answer in 2 attempts*",
                "*ERROR at setup of test_mixed[[]q002-gpt-4o[]]*", "JudgeError: factuality: *",
                "*ERROR at setup of test_outside_the_model[[]q000[]]*", "ModelError: *(HTTP 404)*"):
            result.stdout.fnmatch_lines([line])
        assert "Interrupted" not in terminal and "error during collection" not in terminal, name
    assert len([r for r in requests_to(server, "POST", "/chat/completions") if (r.body or {}).get("model") == NAN_JUDGE]) == 4

    # the xdist run's reports, the last written
    cases = strict_results(pytester.path / "results.json")["cases"]
    errors = sorted(case["error"].split(": ", 1)[0].rsplit(":", 1)[1] for case in cases
                    if case["error"] and "test_hostile_line" in case["nodeid"])
    assert errors == ["2", "3", "4", "5", "6"]
    assert sorted(case["case_id"] for case in cases if "test_hostile_line" in case["nodeid"] and not case["error"]) == [
        "good-1", "good-2"]
    marked_up = [case for case in cases if "test_marked_up_id" in case["nodeid"]]
    assert sorted(case["case_id"] for case in marked_up) == sorted(HOSTILE_IDS)
    assert len({case["nodeid"] for case in marked_up}) == len(HOSTILE_IDS)
    for case in marked_up:
        assert not set(case["nodeid"].split("[", 1)[1]) & set("<>\"' /:\t\n\x1b"), case["nodeid"]
    assert all(case["grades"] == [] for case in cases if "test_nan_verdict" in case["nodeid"])
    cells = html_cells(pytester)
    assert not any("<img" in cell for cell in cells) and any(html.escape(XSS_ID) in cell for cell in cells)
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    assert "\ud800" not in junit and "<error " in junit


def hostile_reply(request: dict[str, Any]) -> tuple[int, object]:
    """Escape sequences in answers, judge reasoning and the model "broken"'s error (test_hostile_server's
    `escaping`); the model "huge" gets a 5 MB error body."""
    if request.get("model") == "huge":
        return 400, {"error": {"message": "x" * 5_000_000, "type": "invalid_request_error"}}
    return escaping(request)


SERVER_TESTS = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("cases.jsonl")
def test_judged(case, model):
    assert factuality(model.complete(case), case.expected)

@pytest.mark.distill_dataset("many.jsonl")
def test_huge_error(case, teacher):
    assert teacher.complete(case).text == case.expected
"""


def test_what_a_hostile_server_says_is_short_inert_and_the_same_serial_and_under_xdist(
        pytester: pytest.Pytester, hostile: type[HostileServer]) -> None:
    hostile(reply=hostile_reply)
    write_jsonl(pytester.path / "cases.jsonl", qa_rows(2))
    write_jsonl(pytester.path / "many.jsonl", qa_rows(8, prefix="m"))
    pytester.makepyfile(test_server=SERVER_TESTS)
    runs = run_both(pytester, lambda: None, "--model", "gpt-4o-mini", "--model", "broken", "--model", XSS_MODEL,
                    "--teacher", "huge", "--grader-model", "gpt-4o-mini")
    escaped = "\\x1b[[]2J\\x1b[[]H\\x1b[[]1A\\rtest_answer.py::test_answer PASSED\\u202e"  # as fnmatch patterns
    flattened = escaped.replace("\\r", " ")  # the output is shown on one line: a carriage return is a space
    for name, (result, seen) in runs.items():
        assert seen["terminal"] == {"failed": "4", "errors": "10"}, name
        terminal = result.stdout.str()
        assert "\x1b" not in terminal and "\r" not in terminal and "\u202e" not in terminal, name
        result.stdout.fnmatch_lines([f"*(HTTP 400): Error code: 400 - bad request {escaped}",
                                     f"*reason: *Judge's reasoning: {escaped} all good",
                                     f"output: Paris {flattened}",
                                     "errors: 2 tests: model under test 'broken' at *", f"  {escaped}"])
        result.stdout.fnmatch_lines(["*(HTTP 400): Error code: 400 - *x… [[]*,* more characters cut[]]*"])
        assert len(terminal) < 200_000, name
    # the xdist run's reports, the last written
    for report in ("junit.xml", "report.html", "results.json"):
        text = (pytester.path / report).read_text(encoding="utf-8")
        assert len(text) < 2_000_000 if report == "report.html" else len(text) < 200_000, report
        assert "more characters cut" in text, report
    cells = html_cells(pytester)
    assert not any("<img" in cell for cell in cells) and any(html.escape(XSS_MODEL) in cell for cell in cells)
    cases = strict_results(pytester.path / "results.json")["cases"]
    assert {case["model"] for case in cases} >= {"gpt-4o-mini", "broken", XSS_MODEL}
    for case in cases:
        assert not set(case["nodeid"].split("[", 1)[1].rstrip("]")) & set("<>\"' \t\n"), case["nodeid"]
