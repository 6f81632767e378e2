"""Prefetch and judge calls ahead: real sessions (pytester) against the simulator, calls counted by its log."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.prefetch import LOOKAHEAD_PER_SLOT
from pytest_distill.sim import Fault, SimServer

from .support import held_until, qa_rows, qa_suite, requests_to, write_jsonl

CASES = 16
GRADED_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset({spec!r})
@pytest.mark.distill_grade("factuality")
def test_answer(case, model):
    assert factuality(model.complete(case), case.expected)
"""


@pytest.fixture
def server(make_qa_sim: Callable[[int], SimServer]) -> SimServer:
    return make_qa_sim(CASES)


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path) -> pytest.Pytester:
    return qa_suite(pytester, tmp_path, GRADED_SUITE, CASES)


def results(pytester: pytest.Pytester, *args: str) -> list[dict[str, Any]]:
    """Each case's output, grades and error from the results file, in node order (timings left out)."""
    path = pytester.path / "results.json"
    pytester.runpytest("-p", "no:cacheprovider", "--distill-results", str(path), *args)
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return sorted(({key: case[key] for key in ("nodeid", "output", "grades", "error")} for case in cases),
                  key=lambda case: case["nodeid"])


def chat_bodies(server: SimServer) -> list[str]:
    return [json.dumps(r.body, sort_keys=True) for r in requests_to(server, "POST", "/chat/completions")]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_results_are_the_same_with_and_without_prefetch(suite: pytest.Pytester, server: SimServer, workers: list[str]) -> None:
    without = results(suite, "-p", "no:distill-prefetch")
    server.clear_requests()
    with_prefetch = results(suite, "--distill-concurrency", "4", *workers)
    assert with_prefetch == without
    assert len(without) == CASES and {case["grades"][0]["passed"] for case in without} == {True, False}
    bodies = chat_bodies(server)
    assert len(bodies) == len(set(bodies)) == 2 * CASES


def test_every_completion_and_judge_call_is_made_once(suite: pytest.Pytester, server: SimServer) -> None:
    suite.runpytest("-p", "no:cacheprovider", "--distill-concurrency", "8")
    bodies = chat_bodies(server)
    judges = [body for body in bodies if "json_schema" in body]
    assert len(bodies) == len(set(bodies)) == 2 * CASES
    assert len(judges) == CASES


def test_a_graded_marker_with_arguments_asks_the_judge_what_the_test_asks(pytester: pytest.Pytester, server: SimServer,
                                                                          tmp_path: Path) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(CASES))
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import criteria_match, text_quality

        @pytest.mark.distill_dataset({str(cases)!r})
        @pytest.mark.distill_grade("criteria_match", criteria="names the item and its number")
        @pytest.mark.distill_grade("text_quality", threshold=2)
        def test_answer(case, model):
            answer = model.complete(case)
            if int(case.id[1:]) % 2 == 0:
                criteria_match(answer, "names the item and its number")
                text_quality(answer, threshold=2)
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=CASES)
    bodies = chat_bodies(server)
    # Every case's two judge calls were made ahead (the odd cases never ask), and the even cases'
    # own calls joined them: the requests are identical.
    assert len(bodies) == len(set(bodies)) == 3 * CASES


SUITES = {
    "parameters_failing": ("""
        grade = factuality(model.complete(case, max_tokens=50), case.expected)
        assert grade.score > 1, "fails every case"
    """, 1),
    "own_messages": ("""
        answer = model.complete([*case.messages, {"role": "user", "content": "Be brief."}])
        assert factuality(answer, case.expected)
    """, 1),
    "plain": ("""
        assert factuality(model.complete(case), case.expected)
    """, 1),
    "text_of_answer_and_constant": ("""
        answer = model.complete(case, temperature=0.5)
        assert criteria_match(answer.text, "names the item") and factuality(answer, case.expected)
    """, 2),
    "no_judge": ("""
        assert model.complete(case, temperature=0.5).text == "never"
    """, 0),
}
MODES = {"serial": [], "cache": ["--distill-cache"], "xdist": ["-n", "2"], "xdist_cache": ["-n", "2", "--distill-cache"]}


def suite_of(body: str, cases: Path, head: str = "") -> str:
    return (f"import pytest\nfrom pytest_distill import criteria_match, factuality\n{head}\n"
            f"@pytest.mark.distill_dataset({str(cases)!r})\ndef test_answer(case, model):\n"
            + textwrap.indent(textwrap.dedent(body).strip(), "    ") + "\n")


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_each_case_makes_exactly_the_calls_its_test_makes(pytester: pytest.Pytester, make_sim: Any, tmp_path: Path,
                                                          mode: list[str]) -> None:
    """Every suite of SUITES in one session (a test file and a dataset each, told apart by their questions):
    one session per mode, not one per suite and mode (an xdist start costs ten serial sessions)."""
    datasets = {name: write_jsonl(tmp_path / f"{name}.jsonl", qa_rows(CASES, prefix=f"{name}-")) for name in SUITES}
    server = make_sim(seed=list(datasets.values()))
    pytester.makepyfile(**{f"test_{name}": suite_of(body, datasets[name]) for name, (body, _) in SUITES.items()})
    result = pytester.runpytest("--distill-concurrency", "4", *mode)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == CASES * len(SUITES)
    bodies = chat_bodies(server)
    assert len(bodies) == len(set(bodies)) == sum(CASES * (1 + judges) for _, judges in SUITES.values())
    answers = [body for body in bodies if "json_schema" not in body]
    for name in SUITES:
        assert sum(f"item {name}-" in body for body in answers) == CASES, name
    result.stdout.no_fnmatch_line("*prefetch:*not used*")


def test_judges_of_a_plain_assert_are_asked_ahead(pytester: pytest.Pytester, make_sim: Any, tmp_path: Path) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(CASES))])
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(CASES))
    pytester.makepyfile(suite_of("assert model.complete(case).text", cases))
    pytester.runpytest("--distill-cache").assert_outcomes(passed=CASES)
    pytester.makepyfile(suite_of("assert factuality(model.complete(case), case.expected)", cases))
    server.clear_requests()
    # The first test's judge call shows what the tests make; the next judge call is then held inside the
    # server until another arrives: only judges asked ahead, while a test waits for its verdict, can get
    # there. Held past the request timeout, a call nobody asked ahead of is sent twice (counted below).
    server.inject(Fault("stall", seconds=0))
    server.inject(Fault("stall", seconds=600))
    with held_until(server, lambda: server.peak_in_flight >= 2, "a second judge call in flight"):
        pytester.runpytest("--distill-cache", "--distill-concurrency", "4")
    bodies = chat_bodies(server)
    assert len(bodies) == CASES, "each case judged once: answers from the cache, no call sent twice"
    assert all("json_schema" in body for body in bodies)
    assert server.peak_in_flight >= 2, "judge calls of several tests were in flight at once"


def unused_of(result: pytest.RunResult) -> int:
    found = [line for line in result.outlines if line.startswith("prefetch:")]
    return int(found[0].split()[1]) if found else 0


def test_a_declared_grade_the_test_does_not_make_is_counted_unused(pytester: pytest.Pytester, server: SimServer,
                                                                    tmp_path: Path) -> None:
    marker = '@pytest.mark.distill_grade("criteria_match", criteria="names the item")'
    pytester.makepyfile(suite_of("assert model.complete(case).text", write_jsonl(tmp_path / "cases.jsonl", qa_rows(CASES)))
                        .replace("def test_answer", f"{marker}\ndef test_answer"))
    result = pytester.runpytest("-p", "no:cacheprovider", "--distill-concurrency", "4")
    result.assert_outcomes(passed=CASES)
    # The first test shows the completion; the judge it declares is then made ahead for the tests after it
    # (for the last ones, whose answers arrive as the session ends, it may no longer be started). Every
    # judge call the server saw is one made ahead and counted unused, each for a case of its own.
    unused = unused_of(result)
    judged = [json.loads(body)["messages"][-1]["content"] for body in chat_bodies(server) if "json_schema" in body]
    assert len(chat_bodies(server)) == CASES + len(judged)
    assert 1 <= len(judged) == unused == len(set(judged)) <= CASES - 1


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_tests_that_leave_the_plan_stop_prefetch_and_the_waste_is_counted(pytester: pytest.Pytester, server: SimServer,
                                                                           tmp_path: Path, workers: list[str]) -> None:
    body = """
        answer = model.complete(case)
        if case.id in ("q000", "q008"):
            assert factuality(answer, case.expected)
    """
    pytester.makepyfile(suite_of(body, write_jsonl(tmp_path / "cases.jsonl", qa_rows(CASES))))
    result = pytester.runpytest("-p", "no:cacheprovider", "--distill-concurrency", "4", *workers)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == CASES
    made_by_tests = CASES + 2
    assert len(chat_bodies(server)) == made_by_tests + unused_of(result)
    assert unused_of(result) <= 2 * 4 * LOOKAHEAD_PER_SLOT, "at most one window per process is spent"


@pytest.mark.parametrize("stop", ["pytest.fail('stop')", "raise KeyboardInterrupt"], ids=["x", "ctrl_c"])
def test_when_the_run_stops_nothing_queued_ahead_is_sent(pytester: pytest.Pytester, make_sim: Any, tmp_path: Path,
                                                         stop: str) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(CASES))], latency_s=1.0)
    # The session lingers after the stop (a last call of its own), long enough for queued calls to go out.
    head = ("@pytest.fixture(scope='session', autouse=True)\ndef last_word():\n    yield\n"
            "    from pytest_distill import Model\n    Model('gpt-4o').complete('one last question')\n")
    pytester.makepyfile(suite_of(f"model.submit(case)\n{stop}", write_jsonl(tmp_path / "cases.jsonl", qa_rows(CASES)), head))
    # In a process of its own: an in-process run hands a KeyboardInterrupt on to the outer session.
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-x", "--distill-concurrency", "2")
    students = [r for r in requests_to(server, "POST", "/chat/completions") if r.body["model"] == "gpt-4o-mini"]
    assert 1 <= len(students) <= 2, "the test's own call and at most one call ahead went out"


def test_every_case_finishes_under_a_burst_of_429s(suite: pytest.Pytester, server: SimServer) -> None:
    server.inject(Fault("429", count=12, retry_after=0.2))
    result = suite.runpytest("-p", "no:cacheprovider", "--distill-concurrency", "8")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == CASES and "errors" not in outcomes
    assert len(chat_bodies(server)) == 2 * CASES + 12


def test_a_distill_grade_marker_naming_no_helper_is_a_usage_error(pytester: pytest.Pytester, server: SimServer,
                                                                   tmp_path: Path) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(2))
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.distill_dataset({str(cases)!r})
        @pytest.mark.distill_grade("factuallity")
        def test_answer(case, model):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*test_answer*distill_grade takes one helper name, one of *factuality*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert requests_to(server, "POST", "/chat/completions") == []


PROGRESS = "distill: */* model calls done, * in flight, * retries*"


def test_progress_stays_quiet_when_output_is_not_a_terminal(suite: pytest.Pytester, server: SimServer) -> None:
    server.inject(Fault("429", count=1, retry_after=3))
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.parseoutcomes().get("passed", 0) > 0
    result.stdout.no_fnmatch_line(PROGRESS)


def test_progress_shows_calls_and_the_pause_on_a_terminal(suite: pytest.Pytester, server: SimServer) -> None:
    server.inject(Fault("429", count=1, retry_after=3))
    leader, follower = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], cwd=suite.path, env=os.environ,
                          stdin=subprocess.DEVNULL, stdout=follower, stderr=follower) as process:
        os.close(follower)
        output = read_all(leader)
    os.close(leader)
    assert process.returncode in (0, 1)
    assert "model calls done" in output and "retries" in output and "paused" in output


def read_all(fd: int) -> str:
    """Everything a pseudo-terminal's other side wrote until it closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")




def test_the_sdk_is_frozen_out_of_the_collector_while_calls_run_and_thawed_at_the_end(
        suite: pytest.Pytester, server: SimServer) -> None:
    """Full collections during the run skip what was alive at the first call; pytest's own end-of-session
    collections (a real process: pytester's inner sessions skip them) still find it frozen, so they stay
    cheap; nothing is frozen once the session is over."""
    log = suite.path / "freeze.log"
    suite.makeconftest(f"""
        import atexit, gc

        def note(what):
            with open({str(log)!r}, "a") as out:
                out.write(f"{{what}} {{gc.get_freeze_count()}}\\n")

        def record(phase, info):
            if phase == "start" and info["generation"] == 2:
                note("collection")

        def pytest_runtest_teardown(item):
            note("test")

        def pytest_unconfigure(config):
            gc.callbacks.append(record)

        atexit.register(note, "exit")
    """)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == CASES and "errors" not in outcomes, outcomes
    notes = [(what, int(count)) for what, count in (line.split() for line in log.read_text(encoding="utf-8").splitlines())]
    tests = [count for what, count in notes if what == "test"]
    assert len(tests) == CASES and all(count > 0 for count in tests)
    assert ("exit", 0) in notes, notes
    ended = notes.index(("exit", 0))
    pytests_own = [count for what, count in notes[:ended] if what == "collection"]
    assert pytests_own and all(count > 0 for count in pytests_own), notes  # how many is pytest's (5 per plugin before 9.0.3, 1 since)
