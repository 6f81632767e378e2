"""Everything from outside is hostile: real pytest sessions (pytester) where one bad thing from a dataset,
an id, a judge or a cache costs only its own case (test_xdist_one_truth checks the same truth crosses xdist)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.datasets import BrokenCase, Case, StoredCompletions, param_ids, parse_spec
from pytest_distill.models.cache import CompletionCache
from pytest_distill.models.client import ModelRuntime
from pytest_distill.models.types import Completion, Usage
from pytest_distill.sealed import seal
from pytest_distill.sim import Fault, SimServer

from . import test_cache as cache_tests
from .support import TEST_KEY, qa_rows, qa_suite, requests_to, write_jsonl
from .test_datasets import hostile_lines

WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
ANSWER_SUITE = """
import pytest

@pytest.mark.distill_dataset("cases.jsonl")
def test_answer(case, model):
    model.complete(case)
    assert case.expected == "hello"
"""


def judge_requests(server: SimServer) -> list[Any]:
    return [r for r in requests_to(server, "POST", "/chat/completions") if "response_format" in (r.body or {})]


def strict_results(path: Path) -> dict[str, Any]:
    """The results file, read by a parser as strict as any other language's: no NaN, no Infinity."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in the results file")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    return data


def test_each_hostile_dataset_line_errors_its_own_case_and_the_rest_run(pytester: pytest.Pytester) -> None:
    (pytester.path / "cases.jsonl").write_bytes(b"\n".join(hostile_lines()) + b"\n")
    pytester.makepyfile(ANSWER_SUITE)
    result = pytester.runpytest("--distill-sim", "--distill-results", "results.json")
    result.assert_outcomes(passed=2, errors=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    for problem in ("cases.jsonl:2: not UTF-8", "cases.jsonl:3: not JSON: nested 100000 levels deep",
                    "cases.jsonl:4: not JSON: a lone surrogate", "cases.jsonl:6: message 0 (user) has no content"):
        result.stdout.fnmatch_lines([f"*{problem}*"])
    cases = strict_results(pytester.path / "results.json")["cases"]
    errors = sorted(case["error"].split(": ", 1)[0].rsplit(":", 1)[1] for case in cases if case["error"])
    assert errors == ["2", "3", "4", "5", "6"]
    assert sorted(case["case_id"] for case in cases if not case["error"]) == ["good-1", "good-2"]


STORED_SUITE = """
import pytest

@pytest.mark.distill_dataset("stored")
def test_answer(case, model):
    assert model.complete(case).text
"""


@pytest.mark.parametrize("kind", ["500", "malformed"])
def test_a_stored_completion_whose_messages_call_fails_errors_only_its_own_case(
        pytester: pytest.Pytester, make_sim: Any, tmp_path: Path, kind: str) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "few.jsonl", qa_rows(3))])
    server.inject(Fault(kind, count=50, path="/chat/completions/chatcmpl-q001/messages"))
    pytester.makepyfile(STORED_SUITE)
    result = pytester.runpytest("--model", "gpt-4o", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*stored completion chatcmpl-q001: GET /chat/completions/chatcmpl-q001/messages*"])


def test_a_stored_completion_whose_messages_call_times_out_is_a_broken_case(make_sim: Any, tmp_path: Path) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "few.jsonl", qa_rows(3))])
    server.inject(Fault("stall", count=10, seconds=3, path="/chat/completions/chatcmpl-q001/messages"))
    runtime = ModelRuntime(base_url=server.url, api_key=TEST_KEY, request_timeout=0.3)
    try:
        cases = StoredCompletions(runtime, None).load(parse_spec("stored", []))
    finally:
        runtime.close()
    broken = {case.id: case.problem for case in cases if isinstance(case, BrokenCase)}
    assert [case.id for case in cases] == ["chatcmpl-q000", "chatcmpl-q001", "chatcmpl-q002"]
    assert list(broken) == ["chatcmpl-q001"] and "timed out" in broken["chatcmpl-q001"].lower()


DAMAGE = {
    "usage-list": lambda entry: {**entry, "usage": [1]},
    "messages-numbers": lambda entry: {**entry, "messages": [1, 2]},
    "usage-text": lambda entry: {**entry, "usage": {"prompt_tokens": "many", "completion_tokens": 1}},
    "answer-edited-away": lambda entry: {**entry, "messages": entry["messages"][:-1]},
    "not-an-object": lambda entry: [entry],
    "answer-edited": lambda entry: {**entry, "messages": [*entry["messages"][:-1], {"role": "assistant", "content": "edited"}]},
    "question-edited": lambda entry: {**entry, "messages": [{"role": "user", "content": "edited"}, *entry["messages"][1:]]},
    "usage-edited": lambda entry: {**entry, "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    "unsealed": lambda entry: {key: value for key, value in entry.items() if key not in ("claim", "sha256")},
    "sealed-for-another-id": lambda entry: json.loads(seal("chatcmpl-hb-other", {
        key: value for key, value in entry.items() if key not in ("claim", "sha256")})),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_stored_content_entry_is_a_miss_that_is_fetched_again(
        pytester: pytest.Pytester, sim: SimServer, damage: str) -> None:
    pytester.makepyfile(STORED_SUITE.replace('"stored"', '"stored:split=test"'))
    pytester.runpytest("--collect-only", "-q")
    entries = sorted((pytester.path / ".pytest_cache").rglob("chatcmpl-hb-*.json"))
    assert len(entries) == 12
    good = json.loads(entries[0].read_text(encoding="utf-8"))
    entries[0].write_text(json.dumps(DAMAGE[damage](good)), encoding="utf-8")
    sim.clear_requests()
    pytester.runpytest("--model", "gpt-4o").assert_outcomes(passed=12)
    assert len([r for r in sim.requests if r.path.endswith("/messages")]) == 1
    assert json.loads(entries[0].read_text(encoding="utf-8")) == good


CACHE_DAMAGE: list[Callable[[str], str]] = [
    lambda text: json.dumps({**json.loads(text), "usage": [1]}),
    lambda text: json.dumps({**json.loads(text), "text": None}),
    lambda text: json.dumps({**json.loads(text), "text": ["Item", "q1"]}),
    lambda text: json.dumps({**json.loads(text), "latency_s": float("nan")}),
    lambda text: json.dumps({**json.loads(text), "usage": {"prompt_tokens": "7", "completion_tokens": 5}}),
    lambda text: json.dumps({**json.loads(text), "latency_s": -1}),
    lambda text: json.dumps({**json.loads(text), "served_model": 4}),
]


def test_each_damaged_completion_cache_entry_is_a_unit_miss(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "ns")
    cache.put("k", Completion(text="a", model="m", usage=Usage(1, 2), latency_s=0.5))
    [entry] = tmp_path.rglob("*.json")
    good = entry.read_text(encoding="utf-8")
    for damage in CACHE_DAMAGE:
        entry.write_text(damage(good), encoding="utf-8")
        assert cache.get("k") is None, entry.read_text(encoding="utf-8")
    entry.write_text(good, encoding="utf-8")
    assert cache.get("k") == Completion(text="a", model="m", usage=Usage(1, 2), latency_s=0.5, cached=True)


def test_an_answer_no_utf_8_file_can_hold_is_not_cached_and_costs_nothing_else(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "ns")
    cache.put("k", Completion(text="a \ud800 b", model="m", usage=Usage(1, 2), latency_s=0.5))
    assert cache.get("k") is None and list(tmp_path.rglob("*.tmp")) == []


@WORKERS
def test_damaged_completion_cache_entries_are_asked_again_and_grade_as_before(
        pytester: pytest.Pytester, make_sim: Any, tmp_path: Path, workers: list[str]) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(cache_tests.CASES))])
    suite = qa_suite(pytester, tmp_path, cache_tests.SUITE, cache_tests.CASES)
    first = cache_tests.results(suite, "--distill-cache")
    damaged = cache_tests.entries(suite.path)
    for index, entry in enumerate(damaged):
        entry.write_text(CACHE_DAMAGE[index % len(CACHE_DAMAGE)](entry.read_text(encoding="utf-8")), encoding="utf-8")
    server.clear_requests()
    assert cache_tests.results(suite, "--distill-cache", *workers) == first
    assert cache_tests.chat_posts(server) == len(damaged) == 2 * cache_tests.CASES
    strict_results(suite.path / "results.json")


JUDGED_SUITE = """
import pytest
from pytest_distill import semantic_similarity

@pytest.mark.distill_dataset("cases.jsonl")
def test_meaning(case, model):
    assert semantic_similarity(model.complete(case), case.expected)
"""


@pytest.mark.parametrize("kind", ["judge_nan", "judge_infinity", "judge_off_scale"])
def test_a_nan_infinite_or_off_scale_verdict_is_an_unusable_answer_and_a_test_error(
        pytester: pytest.Pytester, sim: SimServer, tmp_path: Path, kind: str) -> None:
    write_jsonl(pytester.path / "cases.jsonl", qa_rows(2))
    pytester.makepyfile(JUDGED_SUITE)
    sim.inject(Fault(kind, count=100))
    result = pytester.runpytest("--model", "gpt-4o", "--distill-results", "results.json")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*JudgeError: semantic_similarity: the judge 'gpt-4o' gave no usable answer in 2 attempts*"])
    assert len(judge_requests(sim)) == 4  # each case asked once more
    document = strict_results(pytester.path / "results.json")
    assert [case["outcome"] if "outcome" in case else case["error"] is not None for case in document["cases"]] in (
        [True, True], ["error", "error"])
    assert all(case["grades"] == [] for case in document["cases"])


def test_a_nan_verdict_once_is_asked_again_and_the_second_answer_grades(pytester: pytest.Pytester, make_sim: Any) -> None:
    sim = make_sim(seed=[write_jsonl(pytester.path / "cases.jsonl", qa_rows(1))])
    pytester.makepyfile(JUDGED_SUITE)
    sim.inject(Fault("judge_nan", count=1))
    pytester.runpytest("--model", "gpt-4o", "--distill-results", "results.json").assert_outcomes(passed=1)
    assert strict_results(pytester.path / "results.json")["cases"][0]["grades"][0]["score"] == 5


XSS_ID = "x<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_IDS = [XSS_ID, "a/b\\c::d", "tab\there\nnewline\x1b[31m", "a<b", "a>b", "a_b", "質問-1"]
ID_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("cases.jsonl")
def test_answer(case, model):
    assert string_check(model.complete(case), "a")
"""


def test_hostile_ids_become_safe_readable_unique_test_ids() -> None:
    cases = [Case(case_id, [{"role": "user", "content": "q"}], "a") for case_id in HOSTILE_IDS]
    assert param_ids(cases) == ["x_img_src=x_onerror=_document.title=_pwned", "a_b_c_d", "tab_here_newline_31m",
                                "a_b", "a_b-2", "a_b-3", "質問-1"]


def chromium_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (skipped where it is not installed)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_an_id_with_markup_does_not_run_in_the_html_report_and_stays_whole_in_the_reports(
        pytester: pytest.Pytester, sim: SimServer, tmp_path: Path) -> None:
    write_jsonl(pytester.path / "cases.jsonl", [
        {"id": case_id, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}
        for case_id in HOSTILE_IDS])
    pytester.makepyfile(ID_SUITE)
    result = pytester.runpytest("-v", "--html", "report.html", "--junitxml", "junit.xml", "--distill-results", "results.json")
    assert sum(result.parseoutcomes().get(key, 0) for key in ("passed", "failed")) == len(HOSTILE_IDS)
    nodeids = [case["nodeid"] for case in strict_results(pytester.path / "results.json")["cases"]]
    assert len(set(nodeids)) == len(HOSTILE_IDS)
    for nodeid in nodeids:
        params = nodeid.split("[", 1)[1]
        assert not set(params) & set("<>\"' /:\t\n\x1b"), nodeid
    assert sorted(case["case_id"] for case in strict_results(pytester.path / "results.json")["cases"]) == sorted(HOSTILE_IDS)
    dom = chromium_dom(pytester.path / "report.html", tmp_path)
    title = re.search(r"<title[^>]*>([^<]*)</title>", dom)
    assert title is not None and title.group(1) != "pwned"
    assert re.search(r"<img[^>]*onerror", dom) is None
    assert html.escape(XSS_ID, quote=False) in dom  # the original id, shown as text in the Case column


XSS_MODEL = "gpt-4o-mini<img src=x onerror=\"document.title='pwned'\">"


def test_a_model_name_with_markup_is_no_markup_in_the_html_report_and_stays_whole_in_the_reports(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    """pytest-html puts each test id into its page as HTML: the model part of the id (from --model) is
    made safe like the case part, and every cell we add is escaped; the name itself is kept as given."""
    write_jsonl(pytester.path / "cases.jsonl", qa_rows(2))
    pytester.makepyfile(ID_SUITE)
    result = pytester.runpytest("--model", "gpt-4o", "--model", XSS_MODEL, "--html", "report.html",
                                "--distill-results", "results.json")
    assert sum(result.parseoutcomes().get(key, 0) for key in ("passed", "failed", "error", "errors")) == 4
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    rows = [row for tests in json.loads(html.unescape(blob.group(1)))["tests"].values() for row in tests]
    cells = [cell for row in rows for cell in row["resultsTableRow"]]
    assert len(rows) >= 4 and not any("<img" in cell for cell in cells)
    assert any(html.escape(XSS_MODEL) in cell for cell in cells)  # our Model column, as text
    cases = strict_results(pytester.path / "results.json")["cases"]
    assert {case["model"] for case in cases} == {"gpt-4o", XSS_MODEL}
    for case in cases:
        assert not set(case["nodeid"].split("[", 1)[1].rstrip("]")) & set("<>\"' \t\n"), case["nodeid"]
