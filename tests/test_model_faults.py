"""Real pytest sessions whose model calls go wrong: a key or a base URL the SDK cannot use, a reply off
the API's shape, an outage, a stall. Each costs its cases an error with a clear reason, never a key."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_distill import ModelError
from pytest_distill.models import transport
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, qa_rows, requests_to, write_jsonl

SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("{spec}")
def test_reply(case, model):
    assert string_check(model.complete(case), case.expected, "ne")
"""
LOUD = ("--tb=long", "-l", "-rA", "--junitxml", "junit.xml", "--html", "report.html", "--distill-results", "results.json")
"""Every place a key could leak to: long tracebacks with locals, JUnit, pytest-html, the results file."""


def suite(pytester: pytest.Pytester, tmp_path: Path, count: int) -> None:
    pytester.makepyfile(SUITE.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(count)))))


def everything_written(pytester: pytest.Pytester, result: pytest.RunResult) -> str:
    files = [pytester.path / name for name in ("junit.xml", "report.html", "results.json")]
    return result.stdout.str() + result.stderr.str() + "".join(f.read_text(encoding="utf-8") for f in files if f.exists())


def test_a_key_with_a_character_http_cannot_carry_is_one_clear_error_that_never_shows_it(
        pytester: pytest.Pytester, sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-proj-Tést4f9c2b7e1d8a6c3b5e0f9a2d7c"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    suite(pytester, tmp_path, 3)
    result = pytester.runpytest(*LOUD)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*OPENAI_API_KEY holds a character that is not ASCII at position 10: an API key is plain ASCII*"])
    written = everything_written(pytester, result)
    assert key not in written and "Tést4f9c" not in written and "4f9c2b7e1d8a6c3b5e0f9a2d7c" not in written
    assert requests_to(sim, "POST", "/chat/completions") == []


def test_a_base_url_that_is_no_url_is_one_clear_error_that_never_shows_the_key(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1/v1")
    suite(pytester, tmp_path, 2)
    result = pytester.runpytest(*LOUD[:-2])  # a session naming no option of ours hears of it in each test
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*OPENAI_BASE_URL is not a usable URL: it cannot be read as a URL*"])
    written = everything_written(pytester, result)
    assert TEST_KEY not in written and TEST_KEY[8:] not in written


def test_a_refused_key_never_shows_in_long_tracebacks_with_locals(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    make_sim(api_key="sk-the-right-key-0000000000000000")
    suite(pytester, tmp_path, 2)
    result = pytester.runpytest(*LOUD)
    result.assert_outcomes(errors=2)
    written = everything_written(pytester, result)
    assert "(HTTP 401)" in written
    assert TEST_KEY not in written and TEST_KEY[:7] not in written and TEST_KEY[-6:] not in written


def test_the_simulator_never_receives_the_real_key(pytester: pytest.Pytester, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's simulator takes its own key only, as the real API takes only yours: a real key
    sent to it would be refused, so green cases prove it was not sent."""
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    suite(pytester, tmp_path, 3)
    result = pytester.runpytest("--distill-sim", "-p", "no:cacheprovider", *LOUD)
    result.assert_outcomes(passed=3)
    assert TEST_KEY not in everything_written(pytester, result)


def test_a_reply_without_a_message_errors_its_own_case_only(pytester: pytest.Pytester, sim: SimServer, tmp_path: Path) -> None:
    """Serial: a reply off the API's shape under xdist is in test_xdist_one_truth."""
    sim.inject(Fault("no_message"))
    sim.inject(Fault("list_content"))
    sim.inject(Fault("null_usage"))
    suite(pytester, tmp_path, 5)
    # Without prefetch: a failed call is forgotten, so a test that asks after a prefetched call failed asks again.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:distill-prefetch")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*model under test 'gpt-4o-mini' at http://127.0.0.1:*/v1: POST /chat/completions failed: "
                                 "the server's answer is off the API's shape: its first choice has no message*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_reply_that_is_no_unicode_text_errors_its_own_case_only(pytester: pytest.Pytester, sim: SimServer, tmp_path: Path) -> None:
    """A lone surrogate (valid JSON, no Unicode text) in one reply: no report, UTF-8 file or xdist worker
    could carry it, so it is an error of its case, and every report is written whole."""
    sim.inject(Fault("lone_surrogate"))
    suite(pytester, tmp_path, 5)
    result = pytester.runpytest("-p", "no:cacheprovider", *LOUD)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*POST /chat/completions failed: the server's answer is off the API's shape: "
                                 "its message content is not Unicode text (it holds a lone surrogate)*"])
    assert "INTERNALERROR" not in result.stdout.str()
    results = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))
    assert sorted(case["outcome"] for case in results["cases"]) == ["error", "passed", "passed", "passed", "passed"]
    assert 'errors="1"' in (pytester.path / "junit.xml").read_text(encoding="utf-8")
    assert "1 Error" in (pytester.path / "report.html").read_text(encoding="utf-8")


def test_a_server_message_that_is_no_unicode_text_is_quoted_with_replacement_characters() -> None:
    error = ModelError("gpt-4o", "POST /chat/completions", "the server said: bad \ud800 text", 500)
    assert "bad \ufffd text" in str(error) and error.message == "the server said: bad \ufffd text"
    str(error).encode("utf-8")


class ClosingPort:
    """A loopback port that accepts each connection and closes it at once: an endpoint that is down.
    Counts the connections, so a test sees how many attempts were made."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), which a close alone leaves waiting
        self.socket.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClosingPort]:
    port = ClosingPort()
    monkeypatch.setenv("OPENAI_BASE_URL", port.url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    yield port
    port.close()


def test_an_outage_costs_one_retry_ladder_then_every_waiting_case_errors_at_once_naming_the_url(
        pytester: pytest.Pytester, tmp_path: Path, down: ClosingPort, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "FIRST_BACKOFF_S", 0.01)  # the ladder's shape, not its 15 s of waiting
    suite(pytester, tmp_path, 6)
    result = pytester.runpytest("-p", "no:distill-prefetch", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=6)
    assert down.connections == 6  # one ladder of attempts, not one per case
    result.stdout.fnmatch_lines([f"*no answer from {down.url} in 6 attempts over * s (last: Connection error.)*"])
    assert result.stdout.str().count(f"no answer from {down.url}") >= 6


def test_the_request_timeout_bounds_one_request(pytester: pytest.Pytester, sim: SimServer, tmp_path: Path) -> None:
    sim.inject(Fault("stall", seconds=5))
    suite(pytester, tmp_path, 1)
    result = pytester.runpytest("--distill-request-timeout", "0.5", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert len(requests_to(sim, "POST", "/chat/completions")) == 2  # the stalled one, abandoned, then its retry


def test_a_request_timeout_that_is_no_number_of_seconds_stops_the_run(pytester: pytest.Pytester, sim: SimServer,
                                                                     tmp_path: Path) -> None:
    suite(pytester, tmp_path, 1)
    result = pytester.runpytest("--distill-request-timeout", "0")
    result.stderr.fnmatch_lines(["*--distill-request-timeout: 0 is not a number of seconds above 0*"])
    assert requests_to(sim, "POST", "/chat/completions") == []
