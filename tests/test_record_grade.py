"""record_grade(Grade(...)): a user's own check counts like a helper's, also when graded in a thread or an
asyncio task the test started; outside any test it is an error that says so."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl
from .test_report_outputs import read_results, table_rows

SUITE = """
import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pytest_distill import Grade, record_grade, string_check


def short(answer):
    return Grade(name="short", score=float(len(answer)), passed=len(answer) < 40, reason=f"{{len(answer)}} characters")


@pytest.mark.distill_dataset({spec!r})
def test_own_check(case, model):
    answer = model.complete(case).text
    assert record_grade(Grade(name="mine", score=1.0 if case.id != "q001" else 0.0, passed=case.id != "q001",
                              reason="my own rule"))


@pytest.mark.distill_dataset({spec!r})
def test_in_a_plain_thread(case, model):
    answer = model.complete(case).text
    # a plain thread inherits no context variable: the running test's scope is reached all the same
    worker = threading.Thread(target=lambda: (record_grade(short(answer)), string_check(answer, case.expected)))
    worker.start()
    worker.join()


@pytest.mark.distill_dataset({spec!r})
def test_in_a_pool_with_the_context_copied(case, model):
    answer = model.complete(case).text
    with ThreadPoolExecutor(2) as pool:
        pool.submit(contextvars.copy_context().run, record_grade, short(answer)).result()


@pytest.mark.distill_dataset({spec!r})
def test_in_asyncio_tasks(case, model):
    answer = model.complete(case).text

    async def grade(n):
        await asyncio.sleep(0)
        record_grade(Grade(name=f"task{{n}}", score=1.0, passed=True, reason="from a task"))

    async def main():
        await asyncio.gather(*(asyncio.create_task(grade(n)) for n in range(2)))

    asyncio.run(main())
"""


def test_own_grades_count_in_the_table_and_the_results_also_from_threads_and_tasks(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(3))
    make_sim(seed=[cases])
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    result = pytester.runpytest("--model", "gpt-4o", "--distill-results", "r.json", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=11, failed=1)
    records = read_results(pytester.path / "r.json")["cases"]
    grades = {r["nodeid"].split("::")[1]: [g["name"] for g in r["grades"]] for r in records}
    assert grades["test_own_check[q000-gpt-4o]"] == ["mine"]
    assert grades["test_in_a_plain_thread[q000-gpt-4o]"] == ["short", "string_check"]
    assert grades["test_in_a_pool_with_the_context_copied[q002-gpt-4o]"] == ["short"]
    assert grades["test_in_asyncio_tasks[q001-gpt-4o]"] == ["task0", "task1"]
    summary = read_results(pytester.path / "r.json")["summary"]["gpt-4o"]
    assert (summary["mine"]["n"], summary["mine"]["pass_rate"]) == (3, 2 / 3)
    assert summary["short"]["n"] == 6 and summary["task0"]["n"] == 3
    row = table_rows(result.stdout.str())["gpt-4o"]
    assert row["mine rate/mean/n"] == "67% [20–94] / 0.67 / 3"
    assert 'name="grade:mine" value="fail score=0: my own rule"' in (pytester.path / "junit.xml").read_text(encoding="utf-8")


def test_an_own_grade_is_compared_with_the_baseline_like_a_helpers(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(3))
    make_sim(seed=[cases])
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    pytester.runpytest("--model", "gpt-4o", "--distill-results", "base.json", "-k", "own_check")
    base = read_results(pytester.path / "base.json")
    for record in base["cases"]:
        record["grades"][0]["passed"] = True
    (pytester.path / "base.json").write_text(json.dumps(base), encoding="utf-8")
    result = pytester.runpytest("--model", "gpt-4o", "--distill-baseline", "base.json", "-k", "own_check")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["distill: REGRESSION against the baseline base.json (tolerance 0%): gpt-4o mine 100% -> 67%"])


def test_a_grade_recorded_outside_any_test_is_an_error_that_says_so(pytester: pytest.Pytester) -> None:
    outside = subprocess.run([sys.executable, "-c", "from pytest_distill import Grade, record_grade\n"
                              "record_grade(Grade(name='mine', score=1.0, passed=True, reason='r'))"],
                             capture_output=True, text=True, check=False)
    assert outside.returncode == 1
    assert outside.stderr.strip().splitlines()[-1] == (
        "RuntimeError: record_grade('mine') was called outside any test: a grade counts in the test that makes it "
        "(call it in the test function, or in a thread or task it starts; the test uses the plugin: a `case`, `model` or "
        "`judge` fixture, or a distill option or ini setting)")
    pytester.makepyfile("""
        import pytest
        from pytest_distill import Grade, record_grade

        @pytest.fixture
        def graded():
            record_grade(Grade(name="mine", score=1.0, passed=True, reason="in setup"))

        def test_setup(graded):
            pass

        def test_bad_types():
            record_grade(Grade(name="mine", score=1.0, passed="yes", reason="r"))
    """)
    result = pytester.runpytest_subprocess()  # in-process, the outer session's running test would be found
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: record_grade('mine') was called outside any test*",
                                 "*TypeError: record_grade(): mine: passed='yes' is not True or False"])
