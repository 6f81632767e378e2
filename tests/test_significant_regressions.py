"""--distill-baseline-test mcnemar and --distill-gate-test mcnemar: a drop (or a teacher's lead) counts
only when McNemar's exact test on the flipped cases finds it significant. p-values computed by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.distill.gate import Thresholds, decide
from pytest_distill.grades import Grade
from pytest_distill.ledger import Entry, ModelStats, disagreements
from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl

SUITE = """
import pathlib
import pytest
from pytest_distill import string_check

FAIL = set(pathlib.Path("fail.txt").read_text().split())

@pytest.mark.distill_dataset({spec!r})
def test_reply(case, model):
    # graded, not asserted: only the baseline can fail the session
    string_check(model.complete(case), "nothing like it" if case.id in FAIL else case.expected)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> pytest.Pytester:
    """Ten cases; fail.txt names those the test fails. The baseline failed q009 alone."""
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    make_sim(seed=[cases])
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    (pytester.path / "fail.txt").write_text("q009", encoding="utf-8")
    assert pytester.runpytest("--model", "gpt-4o", "--distill-results", "baseline.json").ret == pytest.ExitCode.OK
    return pytester


def run(suite: pytest.Pytester, failing: str, *args: str) -> pytest.RunResult:
    (suite.path / "fail.txt").write_text(failing, encoding="utf-8")
    return suite.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json", "--distill-baseline-test", "mcnemar", *args)


def test_six_flips_down_and_one_up_is_no_significant_regression_at_5_percent_but_is_at_10(suite: pytest.Pytester) -> None:
    # 6 went failing, 1 went passing: P(X >= 6 | 7, 1/2) = (7 + 1) / 128 = 0.0625
    result = run(suite, "q000 q001 q002 q003 q004 q005")
    assert result.ret == pytest.ExitCode.OK
    flips = ("gpt-4o string_check 90% -> 40%, p=0.0625, 6 (q000-gpt-4o, q001-gpt-4o, q002-gpt-4o, ...) went failing, "
             "1 (q009-gpt-4o) went passing")
    result.stdout.fnmatch_lines([
        "gpt-4o string_check: 90% -> 40% on 10 shared cases, p=0.0625", "  went from pass to fail (6):",
        "*", "*", "*", "*", "*", "*", "  went from fail to pass (1):", "      test_*.py::test_reply?q009-gpt-4o?",
        "distill: no significant regression against the baseline baseline.json (McNemar exact, one-sided, alpha 0.05; "
        f"1 model/grader pairs compared): {flips}"])
    loose = run(suite, "q000 q001 q002 q003 q004 q005", "--distill-alpha", "0.1")  # the same flips
    assert loose.ret == pytest.ExitCode.TESTS_FAILED
    loose.stdout.fnmatch_lines(["distill: REGRESSION against the baseline baseline.json (McNemar exact, one-sided, "
                                f"alpha 0.1): {flips}"])


def test_five_flips_down_and_none_up_is_a_significant_regression(suite: pytest.Pytester) -> None:
    # 5 went failing, none went passing (q009 failed both times): 1 / 2^5 = 0.03125
    result = run(suite, "q000 q001 q002 q003 q004 q009")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["distill: REGRESSION against the baseline baseline.json (McNemar exact, one-sided, alpha 0.05): "
                                 "gpt-4o string_check 90% -> 40%, p=0.0312, 5 (q000-gpt-4o, q001-gpt-4o, q002-gpt-4o, ...) "
                                 "went failing, 0 went passing"])


def test_one_flipped_case_fails_by_tolerance_but_is_no_significant_regression(suite: pytest.Pytester) -> None:
    # 1 went failing: p = 1/2
    exact = run(suite, "q000 q009")
    assert exact.ret == pytest.ExitCode.OK
    exact.stdout.fnmatch_lines(["*: gpt-4o string_check 90% -> 80%, p=0.5, 1 (q000-gpt-4o) went failing, 0 went passing"])
    unchanged = run(suite, "q009")
    unchanged.stdout.fnmatch_lines(["distill: no significant regression against the baseline baseline.json (*), no case flipped"])
    (suite.path / "fail.txt").write_text("q000 q009", encoding="utf-8")
    by_tolerance = suite.runpytest("--model", "gpt-4o", "--distill-baseline", "baseline.json")
    assert by_tolerance.ret == pytest.ExitCode.TESTS_FAILED


def _entry(case: str, model: str, passed: bool) -> Entry:
    return Entry(nodeid=f"t.py::t[{case}-{model}]", case_id=case, model=model,
                 grades=[Grade("string_check", float(passed), passed, "why")])


def test_teacher_and_student_disagreements_are_counted_on_the_cases_both_ran() -> None:
    verdicts = {"a": (True, False), "b": (True, False), "c": (True, True), "d": (False, True), "e": (False, False)}
    entries = [_entry(case, model, passed) for case, pair in verdicts.items() for model, passed in zip(("t", "s"), pair, strict=True)]
    entries.append(_entry("f", "t", True))  # the student never ran f: no pair
    assert disagreements(entries, "t", "s") == (2, 1)


@pytest.mark.parametrize("flips, met, p", [((9, 1), True, "0.0107"), ((6, 1), False, "0.0625")])
def test_the_gate_by_mcnemar_needs_the_teacher_significantly_better(flips: tuple[int, int], met: bool, p: str) -> None:
    # (10 + 1) / 1024 = 0.0107; (7 + 1) / 128 = 0.0625
    stats = {"t": ModelStats("t", 20, 20, 0, {}, 0, 0, ()), "s": ModelStats("s", 20, 12, 0, {}, 0, 0, ())}
    decision = decide(stats, "t", "s", 20, Thresholds(0.9, 0.05, 10, alpha=0.05), flips=flips)
    gap = decision.measures[1]
    assert gap.met is met and decision.met is met
    assert f"p={p}" in gap.reason and gap.threshold == 0.05


def test_the_gate_by_mcnemar_in_a_session_is_met_only_when_the_teacher_is_significantly_better(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    tests = write_jsonl(tmp_path / "cases.jsonl", qa_rows(10))
    train = write_jsonl(tmp_path / "train.jsonl", qa_rows(10, split="train", prefix="t"))
    make_sim(seed=[tests, train])
    pytester.makepyfile(f"""
        import pathlib
        import pytest
        from pytest_distill import string_check

        WRONG = int(pathlib.Path("wrong.txt").read_text())

        @pytest.mark.distill_dataset({str(tests)!r})
        def test_reply(case, model):
            # the student gets the first WRONG cases wrong, the teacher none
            wrong = model.name == "gpt-4o-mini" and int(case.id[1:]) < WRONG
            model.complete(case)
            string_check("right", "wrong" if wrong else "right")  # the verdict is the test's, not the simulator's
    """)
    args = ("--distill-dry-run", "--distill-train", str(train), "--distill-min-examples", "1", "--distill-gate-test", "mcnemar")
    (pytester.path / "wrong.txt").write_text("5", encoding="utf-8")
    # 5 cases only the teacher passed, none only the student: 1/2^5 = 0.03125 < 0.05
    met = pytester.runpytest(*args)
    met.stdout.fnmatch_lines(["distillation gate: MET", "  [[]x[]] teacher better than student gpt-4o-mini on the cases they "
                              "disagree on (5 only the teacher passed, 0 only the student): p=0.0312 < 0.05"])
    (pytester.path / "wrong.txt").write_text("4", encoding="utf-8")
    # 4 and 0: 1/16 = 0.0625, though the gap (40%) is far above --distill-gap-min
    missed = pytester.runpytest(*args)
    missed.stdout.fnmatch_lines(["distillation gate: NOT MET", "  [[] []] teacher better than student gpt-4o-mini on the cases "
                                 "they disagree on (4 only the teacher passed, 0 only the student): p=0.0625, "
                                 "not significant at 0.05"])
