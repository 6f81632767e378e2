"""Verdicts to trust, in real sessions: pass^N, pass@N and flaky cases over repeats, the gate on pass^N,
flipping training answers filtered out, and each judge measured against people's labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, requests_to, write_jsonl
from .test_report_outputs import read_results, table_rows

FLIPPING_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model, distill_sample):
    # q002 always fails; q003 fails on its second repeat only, as a real model's answer may
    wrong = case.id == "q002" or (case.id == "q003" and distill_sample == 1)
    assert string_check(model.complete(case), "nothing like it" if wrong else case.expected)
"""


@pytest.fixture
def cases(tmp_path: Path, make_sim: Callable[..., SimServer]) -> Path:
    """Four qa cases, seeded into a simulator whose gpt-4o answers them as stored."""
    path = write_jsonl(tmp_path / "cases.jsonl", qa_rows(4))
    make_sim(seed=[path])
    return path


def test_a_case_that_flips_on_one_repeat_is_flaky_and_fails_pass_every_time(pytester: pytest.Pytester, cases: Path) -> None:
    pytester.makepyfile(FLIPPING_SUITE.format(spec=str(cases)))
    result = pytester.runpytest("--model", "gpt-4o", "--distill-repeat", "3", "--distill-results", "r.json",
                                "--html", "report.html")
    result.assert_outcomes(passed=8, failed=4)
    row = table_rows(result.stdout.str())["gpt-4o"]
    assert (row["pass^3"], row["pass@3"], row["verdict changed"]) == ("50% [15–85]", "75% [30–96]", "25% of 4")
    result.stdout.fnmatch_lines(["pass^3: the share of repeated cases*", "flaky: gpt-4o 1 case: q003"])
    results = read_results(pytester.path / "r.json")
    assert results["repeats"] == {"gpt-4o": {"n": 3, "pass^3": 0.5, "pass@3": 0.75, "flaky": ["q003"],
                                             "ci95": {"pass^3": [0.15, 0.85], "pass@3": [0.3006, 0.9544]}}}
    report = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<th>pass^3</th>" in report and "<td>50% [15–85]</td>" in report and "<p>flaky: gpt-4o 1 case: q003</p>" in report


def test_without_repeats_there_is_no_repeat_column_and_no_repeats_block(pytester: pytest.Pytester, cases: Path) -> None:
    pytester.makepyfile(FLIPPING_SUITE.format(spec=str(cases)))
    result = pytester.runpytest("--model", "gpt-4o", "--distill-results", "r.json")
    result.assert_outcomes(passed=3, failed=1)
    assert "pass^1" not in result.stdout.str() and "flaky" not in result.stdout.str()
    assert "repeats" not in read_results(pytester.path / "r.json")


def seeded_cases(tmp_path: Path, make_sim: Callable[..., SimServer], count: int) -> tuple[Path, Path]:
    """`count` test cases and as many training examples (ids t000...), both seeded into a simulator."""
    tests = write_jsonl(tmp_path / "cases.jsonl", qa_rows(count))
    train = write_jsonl(tmp_path / "train.jsonl", qa_rows(count, split="train", prefix="t"))
    make_sim(seed=[tests, train])
    return tests, train


def test_the_gate_on_pass_every_time_is_not_met_by_a_teacher_that_passed_most_repeats(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    tests, train = seeded_cases(tmp_path, make_sim, 10)
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset({str(tests)!r})
        def test_reply(case, model, distill_sample):
            wrong = model.name == "gpt-4o-mini" or (case.id in ("q003", "q004") and distill_sample == 1)
            assert string_check(model.complete(case), "nothing like it" if wrong else case.expected)
    """)
    args = ("--distill-dry-run", "--distill-train", str(train), "--distill-min-examples", "1", "--distill-repeat", "3")
    rate = pytester.runpytest(*args)
    rate.stdout.fnmatch_lines(["distillation gate: MET", "  [[]x[]] teacher gpt-4o pass rate 93% >= 90%"])
    every = pytester.runpytest(*args, "--distill-gate-metric", "pass^k", "--distill-results", "r.json")
    every.stdout.fnmatch_lines(["distillation gate: NOT MET", "  [[] []] teacher gpt-4o pass^3 80% is below 90%",
                                "  [[]x[]] gap teacher - student gpt-4o-mini +80% >= 5%"])
    gate = read_results(pytester.path / "r.json")["distill"]["gate"]
    assert gate["teacher_pass_rate"]["value"] == pytest.approx(0.8) and gate["gap"]["value"] == pytest.approx(0.8)


def test_a_bad_gate_metric_is_a_usage_error(pytester: pytest.Pytester, cases: Path) -> None:
    pytester.makepyfile(FLIPPING_SUITE.format(spec=str(cases)))
    result = pytester.runpytest("--distill-gate-metric", "mean")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --distill-gate-metric: 'mean' is not one of pass-rate, pass^k"])


def test_the_filter_drops_training_answers_whose_verdict_flips_between_repeats(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    tests, train = seeded_cases(tmp_path, make_sim, 4)
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset({str(tests)!r})
        def test_reply(case, model):
            assert string_check(model.complete(case), case.expected)

        @pytest.mark.distill_dataset({str(train)!r})
        def test_training_answer(case, teacher, distill_sample):
            # the teacher's answer to t001 is borderline: its check passes in one repeat only
            answer = teacher.complete(case).text
            assert string_check(answer, "nothing like it" if case.id == "t001" and distill_sample else case.expected)
    """)
    result = pytester.runpytest("--distill-dry-run", "--distill-filter", "--distill-train", str(train),
                                "--distill-min-examples", "1", "--distill-repeat", "2", "--distill-results", "r.json")
    result.stdout.fnmatch_lines([f"training data {train}: 3 valid examples*",
                                 "  1 whose teacher answer's verdict flipped between repeats, dropped: t001"])
    assert "leakage" not in result.stdout.str()
    training = read_results(pytester.path / "r.json")["distill"]["training"]
    assert training["flipped"] == ["t001"] and training["leaked"] == []
    written = (pytester.path / "distill-train.jsonl").read_text(encoding="utf-8")
    assert "item t1?" not in written and "item t2?" in written


LABELLED_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model):
    # the grader passes q000..q006 and fails q007..q009
    wrong = case.id in ("q007", "q008", "q009")
    assert string_check(model.complete(case), "nothing like it" if wrong else case.expected)
"""


def labels(path: Path, rows: list[dict[str, Any]]) -> Path:
    return write_jsonl(path, rows)


def test_judge_labels_give_agreement_kappa_and_the_cases_of_disagreement(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    make_sim(seed=[cases])
    pytester.makepyfile(LABELLED_SUITE.format(spec=str(cases)))
    # people pass q000..q005 and q007: they disagree with the grader on q006 and q007, so 8 of 10 alike
    people = {f"q{i:03d}": i <= 5 or i == 7 for i in range(10)}
    labels(pytester.path / "labels.jsonl", [
        *({"case_id": case, "grader": "string_check", "passed": passed} for case, passed in people.items()),
        {"case_id": "q000", "grader": "factuality", "passed": True},
        {"case_id": "elsewhere", "grader": "string_check", "passed": True, "note": "not in this run"}])
    result = pytester.runpytest("--model", "gpt-4o", "--distill-judge-labels", "labels.jsonl",
                                "--distill-results", "r.json", "--html", "report.html")
    result.assert_outcomes(passed=7, failed=3)
    # by hand: observed .8; people and grader each pass 7 of 10, chance .7*.7 + .3*.3 = .58; (.8 - .58) / .42
    kappa = (0.8 - 0.58) / (1 - 0.58)
    result.stdout.fnmatch_lines([
        "judges against people (labels.jsonl):",
        f"  string_check: agreed on 8 of 10 (80%), kappa {kappa:.2f}; disagreed on q006, q007",
        "  factuality: no labelled case was graded by it in this run"])
    judges = read_results(pytester.path / "r.json")["judges"]
    assert judges["string_check"]["n"] == 10 and judges["string_check"]["agreement"] == pytest.approx(0.8)
    assert judges["string_check"]["kappa"] == pytest.approx(kappa)
    assert judges["string_check"]["disagreements"] == ["q006", "q007"]
    assert judges["factuality"] == {"n": 0, "agreement": None, "kappa": None, "disagreements": []}
    assert f"string_check: agreed on 8 of 10 (80%), kappa {kappa:.2f}" in (pytester.path / "report.html").read_text(encoding="utf-8")


def test_a_label_naming_a_model_counts_only_that_models_verdict(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    make_sim(seed=[cases])
    pytester.makepyfile(LABELLED_SUITE.format(spec=str(cases)))
    labels(pytester.path / "labels.jsonl", [{"case_id": "q008", "grader": "string_check", "passed": False, "model": "gpt-4o"}])
    pytester.makeini("[pytest]\ndistill_judge_labels = labels.jsonl\n")
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini")
    result.stdout.fnmatch_lines(["  string_check: agreed on 1 of 1 (100%), kappa -"])


@pytest.mark.parametrize("content, message", [
    (None, "judge labels labels.jsonl: no such file"),
    ("\n\n", "judge labels labels.jsonl: no labels*"),
    ('{"case_id": "q1", "grader": "factuality", "passed": true}\n{"case_id": "q2", "grader": "factuality"',
     "judge labels labels.jsonl:2: not JSON: *"),
    ('{"case_id": "q1", "grader": "factuality", "passed": "yes"}',
     "judge labels labels.jsonl:1: \"passed\" must be true or false, got 'yes'"),
    ('[1]', "judge labels labels.jsonl:1: not a JSON object*"),
    ('{"case_id": 3, "grader": "factuality", "passed": true}',
     "judge labels labels.jsonl:1: \"case_id\" must be a non-empty string, got 3"),
    ('{"case_id": "q1", "grader": "f", "passed": true}\n\n{"case_id": "q1", "grader": "f", "passed": false}',
     "judge labels labels.jsonl:3: a second label for case 'q1' and grader 'f' (the first is on line 1)"),
])
def test_a_bad_labels_file_stops_the_run_at_start_up_naming_the_line(
        pytester: pytest.Pytester, sim: SimServer, content: str | None, message: str) -> None:
    pytester.makepyfile(FLIPPING_SUITE.format(spec="stored:split=test"))
    sim.clear_requests()
    if content is not None:
        (pytester.path / "labels.jsonl").write_text(content, encoding="utf-8")
    result = pytester.runpytest("--model", "gpt-4o", "--distill-judge-labels", "labels.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert requests_to(sim, "POST", "/") == [] and requests_to(sim, "GET", "/") == []
