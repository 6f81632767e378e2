"""Big inputs cost what they must and no more: dataset files are read a line at a time with each line's
size capped (ini distill_max_line_bytes; a longer line is an error of its own case), and a large
baseline is checked against the schema in one plain pass (jsonschema only says what is wrong)."""

from __future__ import annotations

import copy
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_distill.datasets import BrokenCase, Case, load_jsonl
from pytest_distill.jsonl import DEFAULT_MAX_LINE_BYTES
from pytest_distill.models.recorded import Recording
from pytest_distill.report.results import SCHEMA
from pytest_distill.report.schema_check import matches

from .support import qa_rows, write_jsonl
from .test_hostile_input import ANSWER_SUITE, strict_results


def chat_line(case_id: str, size: int = 0) -> str:
    return json.dumps({"id": case_id, "messages": [{"role": "user", "content": "hi" + "x" * size},
                                                   {"role": "assistant", "content": "hello"}]})


def test_a_line_over_the_cap_is_an_error_of_its_case_and_the_next_lines_still_load(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join([chat_line("a"), chat_line("long", 5000), chat_line("b"), chat_line("last", 3000)]),
                    encoding="utf-8")  # the last line has no line break
    cases = load_jsonl(path, "cases.jsonl", max_line_bytes=1000)
    assert [case.id for case in cases if isinstance(case, Case)] == ["a", "b"]
    assert [case.problem for case in cases if isinstance(case, BrokenCase)] == [
        f"{path}:{number}: the line is {len(chat_line(case_id, size)):,} bytes, more than distill_max_line_bytes (1,000): a case "
        "this long cannot be sent to a model; raise the ini setting distill_max_line_bytes to read it anyway"
        for number, case_id, size in ((2, "long", 5000), (4, "last", 3000))]
    exact = len(chat_line("a").encode())
    assert [case.id for case in load_jsonl(path, "cases.jsonl", max_line_bytes=exact) if isinstance(case, Case)] == ["a", "b"]


def test_lines_over_the_cap_are_never_held_in_memory(tmp_path: Path) -> None:
    """20 lines of 2 MB over a 100 KB cap: read whole, the file alone was 40 MB in memory."""
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(chat_line("small") + "\n")
        for index in range(20):
            handle.write(chat_line(f"big{index}", 2_000_000) + "\n")
    tracemalloc.start()
    try:
        cases = load_jsonl(path, "big.jsonl", max_line_bytes=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [type(case).__name__ for case in cases] == ["Case"] + ["BrokenCase"] * 20
    assert peak < 5_000_000, f"{peak:,} bytes at the peak"


def test_the_cap_is_an_ini_setting_and_a_long_line_errors_only_its_case(pytester: pytest.Pytester) -> None:
    lines = [chat_line("good-1"), chat_line("long", 3000), chat_line("good-2")]
    (pytester.path / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pytester.makepyfile(ANSWER_SUITE)
    pytester.makeini("[pytest]\ndistill_max_line_bytes = 1000\n")
    result = pytester.runpytest("--distill-sim", "--distill-results", "results.json")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*cases.jsonl:2: the line is 3,1?? bytes, more than distill_max_line_bytes (1,000)*"])
    assert sorted(case["outcome"] for case in strict_results(pytester.path / "results.json")["cases"]) == ["error", "passed", "passed"]
    pytester.makeini("[pytest]\ndistill_max_line_bytes = 4000\n")
    pytester.runpytest("--distill-sim").assert_outcomes(passed=3)


def results_document() -> dict[str, Any]:
    case = {"nodeid": "t.py::test[q0-m]", "case_id": "q0", "model": "m", "output": "Item q0", "latency_s": 0.5, "error": None,
            "outcome": "passed", "sample": 0, "usage": {"prompt_tokens": 5, "completion_tokens": 7},
            "grades": [{"name": "string_check", "score": 1.0, "passed": True, "reason": "equal"}],
            "judging": {"factuality": ["gpt-4o", 10, 3]}}
    return {"version": 1, "cases": [case, {**case, "case_id": None, "model": None, "output": None}],
            "summary": {"m": {"string_check": {"pass_rate": 1.0, "mean_score": 1.0, "n": 2, "ci95": [0.34, 1.0]}}}}


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unchanged": lambda doc: None,
    "version-2": lambda doc: doc.update(version=2),
    "version-true": lambda doc: doc.update(version=True),
    "version-1.0": lambda doc: doc.update(version=1.0),
    "cases-object": lambda doc: doc.update(cases={}),
    "no-summary": lambda doc: doc.pop("summary"),
    "no-nodeid": lambda doc: doc["cases"][0].pop("nodeid"),
    "score-bool": lambda doc: doc["cases"][0]["grades"][0].update(score=True),
    "score-text": lambda doc: doc["cases"][0]["grades"][0].update(score="1"),
    "passed-number": lambda doc: doc["cases"][0]["grades"][0].update(passed=1),
    "outcome-other": lambda doc: doc["cases"][0].update(outcome="skipped"),
    "sample-negative": lambda doc: doc["cases"][0].update(sample=-1),
    "sample-float-whole": lambda doc: doc["cases"][0].update(sample=2.0),
    "sample-float": lambda doc: doc["cases"][0].update(sample=2.5),
    "usage-text": lambda doc: doc["cases"][0]["usage"].update(prompt_tokens="5"),
    "judging-short": lambda doc: doc["cases"][0]["judging"].update(factuality=["gpt-4o", 10]),
    "judging-long": lambda doc: doc["cases"][0]["judging"].update(factuality=["gpt-4o", 10, 3, 4]),
    "judging-types": lambda doc: doc["cases"][0]["judging"].update(factuality=[1, 10, 3]),
    "extra-key": lambda doc: doc["cases"][0].update(extra={"any": "thing"}),
    "n-float": lambda doc: doc["summary"]["m"]["string_check"].update(n=2.5),
    "pass-rate-null": lambda doc: doc["summary"]["m"]["string_check"].update(pass_rate=None),
    "document-list": lambda doc: (doc.clear(), doc.update({"cases": [1]})),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_plain_schema_pass_says_yes_only_where_jsonschema_does(mutation: str) -> None:
    document = copy.deepcopy(results_document())
    MUTATIONS[mutation](document)
    valid = jsonschema.Draft202012Validator(SCHEMA).is_valid(document)
    assert matches(SCHEMA, document) is valid
    assert valid is (mutation in ("unchanged", "version-1.0", "sample-float-whole", "extra-key"))


def test_a_large_baseline_is_read_and_compared(pytester: pytest.Pytester, tmp_path: Path, make_sim: Any) -> None:
    """A baseline of 20,000 cases (a plain pass where jsonschema took minutes at 100,000)."""
    make_sim(seed=[cases := write_jsonl(tmp_path / "cases.jsonl", qa_rows(2))])
    pytester.makepyfile(ANSWER_SUITE.replace('"cases.jsonl"', repr(str(cases))).replace('case.expected == "hello"', "True"))
    pytester.runpytest("--model", "gpt-4o", "--distill-results", "base.json").assert_outcomes(passed=2)
    base = json.loads((pytester.path / "base.json").read_text(encoding="utf-8"))
    first = base["cases"][0]
    base["cases"] += [{**first, "nodeid": f"old.py::test[{index}]", "case_id": f"old{index}"} for index in range(20_000)]
    (pytester.path / "base.json").write_text(json.dumps(base), encoding="utf-8")
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "base.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gpt-4o: 20000 cases of the baseline did not run (not compared):*"])


def test_a_recorded_answers_file_is_read_a_line_at_a_time_and_an_over_long_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join([chat_line("a"), chat_line("huge", DEFAULT_MAX_LINE_BYTES), chat_line("b", 10)]) + "\n",
                    encoding="utf-8")
    recording = Recording.read(path)
    assert len(recording.answers) == 2 and recording.unreadable is None
    assert recording.problems == [f"line 2: the line is {len(chat_line('huge', DEFAULT_MAX_LINE_BYTES)):,} bytes, more than "
                                  "distill_max_line_bytes (5,000,000): a case this long cannot be sent to a model; raise the ini setting "
                                  "distill_max_line_bytes to read it anyway"]


def baseline_records(count: int, output_size: int) -> list[dict[str, Any]]:
    """Records as a run writes them, each with a long answer; every third one failed its grade, one in ten errored."""
    return [{"nodeid": f"t.py::test[q{index}-gpt-4o]", "case_id": f"q{index}", "model": "gpt-4o",
             "output": f"answer {index} " + "ü" * output_size, "latency_s": 0.5, "outcome": "passed", "sample": 0,
             "error": "Error code: 500" if index % 10 == 9 else None, "usage": {"prompt_tokens": 5, "completion_tokens": 7},
             "grades": [{"name": "string_check", "score": 1.0, "passed": index % 3 != 0, "reason": "equal " + "r" * 200},
                        {"name": "factuality", "score": 0.5, "passed": True, "reason": "the judge said so"}],
             "judging": {"factuality": ["gpt-4o", 10, 3]}} for index in range(count)]


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "indented"])
def test_a_large_baseline_is_read_a_record_at_a_time_and_judged_the_same(tmp_path: Path, indent: int | None) -> None:
    """About 32 MB of records: read whole, the text and its objects were three times its size in memory;
    read a record at a time, what is held is what the comparison keeps of each record (and a chunk of the file)."""
    from pytest_distill.report import baseline, results

    records = baseline_records(4000, 4000)
    document = {"version": 1, "run": {"simulator": True}, "cases": records, "summary": {}}
    path = tmp_path / "base.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=indent), encoding="utf-8")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        streamed = baseline.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size // 4, f"{peak:,} bytes at the peak for {size:,} bytes of baseline"
    now = copy.deepcopy(document)
    for index, record in enumerate(now["cases"]):
        record["grades"][0]["passed"] = index % 2 != 0
        record["error"] = None
    whole = baseline.Baseline(path, results.load(path, "whole"))
    for test in ("tolerance", "mcnemar"):
        ours, theirs = (baseline.compare(base, now, {}, 0.01, test=test) for base in (streamed, whole))
        assert (ours.lines(), ours.verdict(), ours.failed) == (theirs.lines(), theirs.verdict(), theirs.failed)
    assert "REGRESSION" in ours.verdict() and len(streamed.results["cases"]) == 4000


def test_a_baseline_record_over_the_cap_is_a_clear_error(tmp_path: Path) -> None:
    from pytest_distill.errors import ConfigError
    from pytest_distill.report import baseline

    path = tmp_path / "base.json"
    path.write_text(json.dumps({"version": 1, "cases": baseline_records(3, 5000), "summary": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"baseline .*base.json: not JSON: the value at line 1 is longer than "
                                          r"distill_max_line_bytes \(4,000 bytes\): raise the ini setting distill_max_line_bytes"):
        baseline.load(path, cap=4000)
    assert len(baseline.load(path, cap=50_000).results["cases"]) == 3


def test_the_cap_bounds_a_recorded_models_lines_and_the_judge_labels_too(pytester: pytest.Pytester) -> None:
    """A recorded answer over the cap costs only its case; a label line over it stops the run at start-up."""
    pytester.makepyfile(ANSWER_SUITE)
    (pytester.path / "cases.jsonl").write_text("\n".join(chat_line(f"c{i}") for i in range(3)) + "\n", encoding="utf-8")
    recorded = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                 "metadata": {"model": "old", "note": "x" * size}} for size in (0, 3000)]
    (pytester.path / "answers.jsonl").write_text("".join(json.dumps(line) + "\n" for line in recorded), encoding="utf-8")
    pytester.makeini("[pytest]\ndistill_max_line_bytes = 1000\n")
    result = pytester.runpytest("--distill-sim", "--model", "recorded:answers.jsonl")
    result.assert_outcomes(passed=3)  # the later line, over the cap, is left out: the first answers every case
    (pytester.path / "answers.jsonl").write_text(json.dumps(recorded[1]) + "\n", encoding="utf-8")
    result = pytester.runpytest("--distill-sim", "--model", "recorded:answers.jsonl")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*no recorded answer to this input in answers.jsonl (it holds answers to 0 inputs; 1 lines "
                                 "could not be read: line 1: the line is 3,1?? bytes, more than distill_max_line_bytes (1,000)*"])
    label = {"case_id": "c0", "grader": "string_check", "passed": True, "note": "x" * 3000}
    (pytester.path / "labels.jsonl").write_text(json.dumps(label) + "\n", encoding="utf-8")
    result = pytester.runpytest("--distill-sim", "--distill-judge-labels", "labels.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*judge labels labels.jsonl:1: the line is 3,0?? bytes, more than distill_max_line_bytes (1,000)*"])
