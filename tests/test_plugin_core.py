"""Real pytest sessions (pytester) on small test files, against the simulator over HTTP."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_distill.sim import Fault, SimServer

from .support import HOBANNU, TEST_KEY, held_until, qa_rows, requests_to, write_jsonl

STUDENT_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("{spec}")
def test_reply(case, model):
    assert string_check(model.complete(case), case.expected)
"""


def outcomes_total(result: pytest.RunResult) -> int:
    return sum(result.parseoutcomes().get(key, 0) for key in ("passed", "failed", "errors"))


def test_stored_test_split_becomes_one_readable_test_per_case(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("-v")
    assert outcomes_total(result) == 12
    result.stdout.fnmatch_lines(["*::test_reply[[]chatcmpl-hb-0*-gpt-4o-mini[]] *"])
    result.stdout.fnmatch_lines(["*distill summary*", "model*pass rate*cases*errors*string_check*", "gpt-4o-mini *12 *0*"])


def test_the_student_misses_some_answers_and_the_teacher_none(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    student = pytester.runpytest().parseoutcomes()
    teacher = pytester.runpytest("--model", "gpt-4o").parseoutcomes()
    assert student.get("failed", 0) > 0
    assert teacher == {"passed": 12}


def test_listing_follows_every_page(pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "many.jsonl", qa_rows(250))])
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored"))
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["250 tests collected*"])
    pages = requests_to(server, "GET", "/chat/completions")
    pages = [r for r in pages if r.path.rstrip("/").endswith("/chat/completions")]
    assert len(pages) == 3
    assert "after" not in pages[0].query and all("after" in page.query for page in pages[1:])


def test_a_long_conversation_is_read_across_message_pages(pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(130)]
    turns.append({"role": "assistant", "content": "the end"})
    turns[-2] = {"role": "user", "content": "last question"}
    server = make_sim(seed=[write_jsonl(tmp_path / "long.jsonl", [{"id": "long", "messages": turns}])])
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("stored")
        def test_input(case):
            assert len(case.messages) == 130
            assert case.messages[-1] == {"role": "user", "content": "last question"}
            assert case.expected == "the end"
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert len(requests_to(server, "GET", "/chat/completions/chatcmpl-long/messages")) == 2


@pytest.mark.parametrize("spec, count", [("stored:app=hobannu,split=test", 12), ("stored:split=train,limit=5", 5),
                                         ("stored:app=elsewhere", 0)])
def test_metadata_filters_and_limit_select_cases(pytester: pytest.Pytester, sim: SimServer, spec: str, count: int) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec=spec))
    result = pytester.runpytest("--collect-only", "-q") if count else pytester.runpytest()
    if count:
        result.stdout.fnmatch_lines([f"{count} tests collected*"])
    else:
        result.stdout.fnmatch_lines(["*has no cases: no stored completion matches its filters; among the latest 100 stored "
                                     "completions, app is one of 'hobannu'*"])
        result.assert_outcomes(errors=1)
    listing = [r for r in requests_to(sim, "GET", "/chat/completions") if r.path.endswith("/chat/completions")]
    first = listing[0].query
    assert first.get("metadata[app]", first.get("metadata[split]")) is not None


def test_stored_content_is_cached_so_a_second_collection_only_lists(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    pytester.runpytest("--collect-only", "-q")
    first = len([r for r in sim.requests if r.path.endswith("/messages")])
    sim.clear_requests()
    pytester.runpytest("--collect-only", "-q")
    assert first == 12
    assert [r for r in sim.requests if r.path.endswith("/messages")] == []
    assert len(requests_to(sim, "GET", "/chat/completions")) == 1


def test_a_filter_that_selects_nothing_names_the_values_the_latest_completions_have(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=tset,tier=gold"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no stored completion matches its filters; among the latest 100 stored completions, "
                                 "split is one of 'test', 'train'; none of them has tier*"])


def test_the_first_collection_fetches_messages_several_at_once_within_the_bound(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "many.jsonl", qa_rows(24))])
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored"))
    # The first messages call is held inside the server until a second one arrives beside it.
    server.inject(Fault("stall", seconds=60, path="/chat/completions/chatcmpl-q"))
    with held_until(server, lambda: server.peak_in_flight >= 2, "a second messages call in flight"):
        result = pytester.runpytest("--collect-only", "-q", "--distill-concurrency", "3")
    result.stdout.fnmatch_lines(["24 tests collected*"])
    assert len([r for r in server.requests if r.path.endswith("/messages")]) == 24
    assert 2 <= server.peak_in_flight <= 3  # one page lists all 24, so only messages calls overlap


def test_a_long_collection_of_stored_completions_shows_how_far_it_is_on_a_terminal(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    """A messages call held inside the server until the terminal has shown the collection's progress line."""
    server = make_sim(seed=[write_jsonl(tmp_path / "few.jsonl", qa_rows(4))])
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored"))
    server.inject(Fault("stall", seconds=120, path="/chat/completions/chatcmpl-q002/messages"))
    leader, follower = pty.openpty()
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(read_chunks(leader)), daemon=True)
    with held_until(server, lambda: b"distill: collecting" in b"".join(output), "the collection's progress line"), \
            subprocess.Popen([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                             cwd=pytester.path, env=os.environ, stdin=subprocess.DEVNULL, stdout=follower,
                             stderr=follower) as process:
        os.close(follower)
        reader.start()
        process.wait()
        reader.join()
    os.close(leader)
    shown = b"".join(output).decode(errors="replace")
    assert process.returncode == 0, shown
    assert "distill: collecting stored: 4 stored completions listed, 3/4 fetched" in shown
    assert "4 tests collected" in shown


def read_chunks(fd: int) -> Iterator[bytes]:
    """What a pseudo-terminal's other side writes, chunk by chunk, until it closes."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def test_a_completion_deleted_after_listing_errors_its_own_test_only(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "few.jsonl", qa_rows(3))])
    server.inject(Fault("404", path="/chat/completions/chatcmpl-q001/messages"))
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored"))
    result = pytester.runpytest("--model", "gpt-4o", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*stored completion chatcmpl-q001: GET /chat/completions/chatcmpl-q001/messages "
                                 "on http://127.0.0.1:*/v1 failed (HTTP 404)*"])


def test_a_damaged_cache_entry_is_fetched_again(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    pytester.runpytest("--collect-only", "-q")
    entries = sorted((pytester.path / ".pytest_cache").rglob("chatcmpl-hb-*.json"))
    assert len(entries) == 12
    entries[0].write_text("{", encoding="utf-8")
    sim.clear_requests()
    pytester.runpytest("--model", "gpt-4o").assert_outcomes(passed=12)
    assert len([r for r in sim.requests if r.path.endswith("/messages")]) == 1


def test_model_given_twice_runs_each_case_on_both(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["24 tests collected*"])
    result.stdout.fnmatch_lines(["*test_reply[[]chatcmpl-hb-0*-gpt-4o[]]", "*test_reply[[]chatcmpl-hb-0*-gpt-4o-mini[]]"])


def test_the_teacher_replays_its_stored_answer_without_a_call(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("stored:split=test")
        def test_teacher(case, teacher):
            answer = teacher.complete(case)
            assert answer.text == case.expected and str(answer) == case.expected
            assert answer.usage.total_tokens > 0
    """)
    sim.clear_requests()
    pytester.runpytest().assert_outcomes(passed=12)
    assert requests_to(sim, "POST", "/chat/completions") == []


def test_japanese_cases_from_a_jsonl_file_are_answered_and_graded(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec=str(HOBANNU)))
    result = pytester.runpytest("--model", "gpt-4o")
    result.assert_outcomes(passed=40)
    bodies = [r.body for r in requests_to(sim, "POST", "/chat/completions")]
    assert len(bodies) == 40 and any("ホバンヌ" in json.dumps(b, ensure_ascii=False) for b in bodies)


def test_an_auth_failure_is_an_error_that_names_the_call_but_never_the_key(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    sim = make_sim(api_key="sk-the-right-key-0000000000000000")
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(3))
    pytester.makepyfile(STUDENT_SUITE.format(spec=str(cases)))
    result = pytester.runpytest("-rA", "--junitxml", "junit.xml")
    result.assert_outcomes(errors=3)
    text = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    assert "model under test 'gpt-4o-mini' at " + sim.url + ": POST /chat/completions failed (HTTP 401)" in text
    assert TEST_KEY not in text and TEST_KEY[:12] not in text and TEST_KEY[-6:] not in text


def test_a_test_asking_for_case_without_a_dataset_is_told_how_to_give_one(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile("def test_x(case):\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*test_x asks for `case` but has no dataset: add @pytest.mark.distill_dataset*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_marker_on_a_module_and_dataset_option_both_select_cases(pytester: pytest.Pytester, sim: SimServer, tmp_path: Path) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(4))
    pytester.makepyfile(test_module=f"""
        import pytest
        pytestmark = pytest.mark.distill_dataset({str(cases)!r})

        def test_a(case):
            assert case.metadata == {{"split": "test"}}
    """, test_option="def test_b(case):\n    assert case.source == 'stored:split=test'\n")
    pytester.runpytest("--distill-dataset", "stored:split=test").assert_outcomes(passed=16)


def test_distill_sim_runs_offline_with_seeds_from_the_ini_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "cases.jsonl").write_text(HOBANNU.read_text(encoding="utf-8"), encoding="utf-8")
    pytester.makeini("[pytest]\ndistill_sim_seed = data/cases.jsonl\n")
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--distill-sim", "--model", "gpt-4o")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["distill: offline simulator at http://127.0.0.1:*(its scores measure wiring, not model quality)"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_summary_is_the_same_serial_and_under_xdist(pytester: pytest.Pytester, sim: SimServer, workers: list[str]) -> None:
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", *workers)
    assert outcomes_total(result) == 24
    result.stdout.fnmatch_lines(["gpt-4o  *100% [[]75–100]*12*0*100% [[]75–100] / 1.00 / 12*", "gpt-4o-mini *12*0*"])


def test_distill_sim_under_xdist_uses_the_controllers_simulator(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\ndistill_sim_seed = {HOBANNU}\n")
    pytester.makepyfile(STUDENT_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--distill-sim", "--model", "gpt-4o", "-n", "2")
    result.assert_outcomes(passed=12)
