"""Baseline comparison in real sessions: regressions fail the run, renamed models are matched, bad files stop it early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

from .support import requests_to

RECORDING_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("stored:split=test")
def test_reply(case, model):
    # graded but not asserted: only the baseline comparison can fail this run
    string_check(model.complete(case), case.expected)
"""


def run_results(pytester: pytest.Pytester, name: str, *args: str) -> dict[str, Any]:
    pytester.runpytest(*args, "--distill-results", name).assert_outcomes(passed=12 * args.count("--model"))
    return json.loads((pytester.path / name).read_text(encoding="utf-8"))


def save(pytester: pytest.Pytester, name: str, results: dict[str, Any]) -> Path:
    path = pytester.path / name
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def failing(results: dict[str, Any], model: str) -> list[str]:
    return [r["nodeid"] for r in results["cases"] if r["model"] == model and not r["grades"][0]["passed"]]


def test_a_pass_rate_below_the_baseline_fails_the_session_and_names_the_cases(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "now.json", "--model", "gpt-4o-mini")
    for record in results["cases"]:
        record["grades"][0]["passed"] = True
    save(pytester, "baseline.json", results)
    result = pytester.runpytest("--model", "gpt-4o-mini", "--distill-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=12)
    went = failing(json.loads((pytester.path / "now.json").read_text(encoding="utf-8")), "gpt-4o-mini")
    rate = f"{1 - len(went) / 12:.0%}"
    result.stdout.fnmatch_lines([
        f"gpt-4o-mini string_check: 100% -> {rate} on 12 shared cases  REGRESSION",
        f"  went from pass to fail ({len(went)}):", *(f"      {nodeid}" for nodeid in went),
        f"distill: REGRESSION against the baseline baseline.json (tolerance 0%): gpt-4o-mini string_check 100% -> {rate}",
    ])


def test_the_same_results_are_no_regression_and_a_drop_within_tolerance_is_tolerated(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "baseline.json", "--model", "gpt-4o-mini")
    same = pytester.runpytest("--model", "gpt-4o-mini", "--distill-baseline", "baseline.json")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["distill: no regression against the baseline baseline.json (1 model/grader pairs compared, tolerance 0%)"])
    drop = len(failing(results, "gpt-4o-mini")) / 12
    for record in results["cases"]:
        record["grades"][0]["passed"] = True
    save(pytester, "better.json", results)
    within = pytester.runpytest("--model", "gpt-4o-mini", "--distill-baseline", "better.json", "--distill-tolerance", f"{drop + 0.01:.2f}")
    assert within.ret == pytest.ExitCode.OK
    within.stdout.fnmatch_lines(["gpt-4o-mini string_check: 100% -> * on 12 shared cases", "distill: no regression*"])
    beyond = pytester.runpytest("--model", "gpt-4o-mini", "--distill-baseline", "better.json", "--distill-tolerance", f"{drop - 0.01:.2f}")
    assert beyond.ret == pytest.ExitCode.TESTS_FAILED


def test_a_renamed_single_model_is_compared_by_role(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    run_results(pytester, "teacher.json", "--model", "gpt-4o")
    result = pytester.runpytest("--model", "gpt-4o-mini", "--distill-baseline", "teacher.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gpt-4o-mini (baseline: gpt-4o) string_check: 100% -> * on 12 shared cases  REGRESSION"])


def test_old_equals_new_maps_a_baseline_model_among_several(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    run_results(pytester, "baseline.json", "--model", "gpt-4o", "--model", "gpt-4o-mini")
    now = ("--model", "gpt-4o", "--model", "gpt-4o-mini-2024-07-18", "--distill-baseline", "baseline.json")
    unmapped = pytester.runpytest(*now)
    unmapped.stdout.fnmatch_lines(["not in the baseline: gpt-4o-mini-2024-07-18 (use --distill-baseline-model OLD=NEW*",
                                   "in the baseline but not in this run: gpt-4o-mini"])
    mapped = pytester.runpytest(*now, "--distill-baseline-model", "gpt-4o-mini=gpt-4o-mini-2024-07-18")
    assert mapped.ret == pytest.ExitCode.OK
    mapped.stdout.fnmatch_lines(["gpt-4o string_check: 100% -> 100% on 12 shared cases",
                                 "gpt-4o-mini-2024-07-18 (baseline: gpt-4o-mini) string_check: * on 12 shared cases",
                                 "distill: no regression*(2 model/grader pairs compared*"])
    both = pytester.runpytest(*now, "--model", "gpt-4o-mini", "--distill-baseline-model", "gpt-4o-mini=gpt-4o-mini-2024-07-18")
    both.stdout.fnmatch_lines(["gpt-4o string_check: 100% -> 100% on 12 shared cases",
                               "gpt-4o-mini-2024-07-18 (baseline: gpt-4o-mini) string_check: * on 12 shared cases",
                               "gpt-4o-mini string_check: * on 12 shared cases",
                               "distill: no regression*(3 model/grader pairs compared*"])


def test_cases_added_or_removed_are_listed_and_not_counted(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "baseline.json", "--model", "gpt-4o")
    dropped = [record["nodeid"] for record in results["cases"][:2]]
    gone = dict(results["cases"][0], nodeid="test_old.py::test_reply[chatcmpl-gone-gpt-4o]", grades=[
        {"name": "string_check", "score": 1.0, "passed": True, "reason": "was fine"}])
    results["cases"] = [*results["cases"][2:], gone]
    save(pytester, "baseline.json", results)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "gpt-4o string_check: 100% -> 100% on 10 shared cases",
        "gpt-4o: 2 cases added since the baseline (not compared):", *(f"    {nodeid}" for nodeid in dropped),
        "gpt-4o: 1 case of the baseline did not run (not compared):", "    test_old.py::test_reply[chatcmpl-gone-gpt-4o]",
    ])


@pytest.mark.parametrize("content, message", [
    (None, "baseline missing.json: no such file (write one with --distill-results missing.json)"),
    ("{not json", "baseline bad.json: not JSON: * at line 1 column 2"),
    ('{"version": 2, "cases": []}', "baseline bad.json: results schema version 2; this pytest-distill reads version 1*"),
    ('[1, 2]', "baseline bad.json: results schema version None*"),
    ('{"version": 1, "cases": {}, "summary": {}}',
     "baseline bad.json: not a pytest-distill results file: at $.cases: * is not of type 'array'"),
    ('{"version": 1, "cases": [{"nodeid": "t", "model": "m"}], "summary": {}}',
     "baseline bad.json: not a pytest-distill results file: at $.cases[[]0[]]: 'case_id' is a required property"),
])
def test_a_bad_baseline_stops_the_run_before_any_model_is_called(
        pytester: pytest.Pytester, sim: SimServer, content: str | None, message: str) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (pytester.path / name).write_text(content, encoding="utf-8")
    sim.clear_requests()
    result = pytester.runpytest("--distill-baseline", name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert requests_to(sim, "GET", "/") == [] and requests_to(sim, "POST", "/") == []


@pytest.mark.parametrize("mapping, message", [
    ("gpt-4o-mini", "--distill-baseline-model expects OLD=NEW, got 'gpt-4o-mini'"),
    ("gpt-3.5=gpt-4o-mini", "--distill-baseline-model gpt-3.5=gpt-4o-mini: the baseline has no model 'gpt-3.5' (it has gpt-4o)"),
    ("gpt-4o=gpt-4.1", "--distill-baseline-model gpt-4o=gpt-4.1: 'gpt-4.1' is not a model under test (they are gpt-4o-mini)"),
])
def test_a_bad_model_mapping_is_a_usage_error(pytester: pytest.Pytester, sim: SimServer, mapping: str, message: str) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    run_results(pytester, "teacher.json", "--model", "gpt-4o")
    result = pytester.runpytest("--distill-baseline", "teacher.json", "--distill-baseline-model", mapping)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])



def test_a_baseline_that_shares_no_case_is_an_error_of_the_session(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "baseline.json", "--model", "gpt-4o")
    for record in results["cases"]:
        record["nodeid"] = record["nodeid"].replace("test_reply", "test_old_reply")
    save(pytester, "baseline.json", results)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["distill: ERROR: the comparison with the baseline baseline.json compares nothing: "
                                 "no case of this run is in the baseline*"])
    assert "no regression" not in result.stdout.str()


def test_a_baseline_whose_models_pair_with_none_of_this_run_is_an_error_of_the_session(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "baseline.json", "--model", "gpt-4o", "--model", "gpt-4o-mini")
    for record in results["cases"]:
        record["model"] = "old-" + record["model"]
    save(pytester, "baseline.json", results)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "distill: ERROR: the comparison with the baseline baseline.json compares nothing: no model of this run is in "
        "the baseline (the baseline has old-gpt-4o, old-gpt-4o-mini; this run gpt-4o): "
        "pair them with --distill-baseline-model OLD=NEW"])


def test_on_pass_every_time_one_lucky_repeat_hides_no_regression(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    baseline = run_results(pytester, "baseline.json", "--model", "gpt-4o")
    first = sorted(record["case_id"] for record in baseline["cases"])[0]
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset("stored:split=test")
        def test_reply(case, model, distill_sample):
            # one case passes only in its first repeat: a lucky run
            wrong = case.id == {first!r} and distill_sample > 0
            string_check(model.complete(case), "nothing like it" if wrong else case.expected)
    """)
    repeated = ("--model", "gpt-4o", "--distill-repeat", "3", "--distill-baseline", "baseline.json")
    per_repeat = pytester.runpytest(*repeated)
    assert per_repeat.ret == pytest.ExitCode.TESTS_FAILED
    per_repeat.stdout.fnmatch_lines(["distill: ERROR: * compares nothing: one run repeats its cases (--distill-repeat) "
                                     "and the other does not*--distill-gate-metric pass^k*"])
    every = pytester.runpytest(*repeated, "--distill-gate-metric", "pass^k")
    assert every.ret == pytest.ExitCode.TESTS_FAILED
    every.stdout.fnmatch_lines([
        "verdicts are pass^N: a case passes when it passed in every repeat (--distill-gate-metric pass^k)",
        f"gpt-4o string_check: 100% -> {11 / 12:.0%} on 12 shared cases  REGRESSION",
        "  went from pass to fail (1):", f"      test_*.py::test_reply[[]{first}-gpt-4o[]]"])
    steady = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json", "--distill-gate-metric", "pass^k")
    assert steady.ret == pytest.ExitCode.OK


def test_a_baseline_from_the_simulator_or_other_datasets_is_said_above_the_comparison(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(RECORDING_SUITE)
    results = run_results(pytester, "baseline.json", "--model", "gpt-4o")
    assert results["run"]["simulator"] is False and results["run"]["datasets"] == ["stored:split=test"]
    results["run"].update(simulator=True, datasets=["stored:split=test,limit=5"])
    save(pytester, "baseline.json", results)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "*distill baseline baseline.json*",
        "note: the baseline was served by the offline simulator and this run by a real API: the simulator's "
        "scores measure wiring, not model quality",
        "note: the dataset specs differ: the baseline ran stored:split=test,limit=5, this run stored:split=test",
        "gpt-4o string_check: 100% -> 100% on 12 shared cases"])
