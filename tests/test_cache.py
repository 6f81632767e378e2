"""The on-disk cache of completions: hits counted by the simulator's request log, several writers at once."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_distill.models.cache import CompletionCache
from pytest_distill.models.client import ModelRuntime
from pytest_distill.models.types import Completion, Usage
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, qa_suite, requests_to

CASES = 8
QUESTION = [{"role": "user", "content": "What is item q1?"}]
SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset({spec!r})
@pytest.mark.distill_grade("factuality")
def test_answer(case, model):
    assert factuality(model.complete(case), case.expected)
"""


def completion(text: str = "Item q1 is number 1.") -> Completion:
    return Completion(text=text, model="gpt-4o-mini", usage=Usage(7, 5), latency_s=0.25, served_model="gpt-4o-mini-2024-07-18")


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("distill-calls/**/*.json"))


def chat_posts(server: SimServer) -> int:
    return len(requests_to(server, "POST", "/chat/completions"))


@pytest.fixture
def server(make_qa_sim: Callable[[int], SimServer]) -> SimServer:
    return make_qa_sim(CASES)


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path) -> pytest.Pytester:
    return qa_suite(pytester, tmp_path, SUITE, CASES)


def results(pytester: pytest.Pytester, *args: str) -> list[tuple[str, str, bool]]:
    """(node id, output, passed) of every case, from the results file."""
    path = pytester.path / "results.json"
    pytester.runpytest("--distill-results", str(path), *args)
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return sorted((case["nodeid"], case["output"], case["grades"][0]["passed"]) for case in cases)


# -- the cache itself ------------------------------------------------------------------------------


def test_an_entry_gives_back_the_answer_marked_cached(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "http://server/v1")
    cache.put("k1", completion())
    hit = cache.get("k1")
    assert hit is not None and hit.cached
    assert (hit.text, hit.usage, hit.served_model, hit.latency_s) == ("Item q1 is number 1.", Usage(7, 5), "gpt-4o-mini-2024-07-18", 0.25)
    assert cache.get("k2") is None


def test_another_server_refresh_and_a_damaged_entry_are_misses(tmp_path: Path) -> None:
    CompletionCache(tmp_path, "http://server/v1").put("k1", completion())
    assert CompletionCache(tmp_path, "http://elsewhere/v1").get("k1") is None
    assert CompletionCache(tmp_path, "http://server/v1", "refresh").get("k1") is None
    [entry] = sorted(tmp_path.rglob("*.json"))
    entry.write_text('{"version": 1, "text": ', encoding="utf-8")
    assert CompletionCache(tmp_path, "http://server/v1").get("k1") is None


def _write_many(directory: str, rounds: int) -> None:
    cache = CompletionCache(Path(directory), "ns")
    for round_ in range(rounds):
        for key in range(10):
            cache.put(f"k{key}", completion(f"answer {key} " + "x" * (round_ * 50)))


def test_processes_writing_the_same_entries_at_once_leave_whole_entries(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(tmp_path), 40)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    cache = CompletionCache(tmp_path, "ns")
    texts = [cache.get(f"k{key}") for key in range(10)]
    assert all(text is not None and text.text.startswith(f"answer {key} ") for key, text in enumerate(texts))
    assert len(list(tmp_path.rglob("*.json"))) == 10 and list(tmp_path.rglob("*.tmp")) == []


# -- the runtime with a cache ----------------------------------------------------------------------


@pytest.fixture
def runtimes(server: SimServer, tmp_path: Path) -> Iterator[list[ModelRuntime]]:
    """Two runtimes, as two sessions would have, sharing one cache folder."""
    made = [ModelRuntime(cache=CompletionCache(tmp_path / "calls", server.url)) for _ in range(2)]
    yield made
    for runtime in made:
        runtime.close()


def test_an_identical_request_is_answered_from_disk_and_another_parameter_is_not(
        runtimes: list[ModelRuntime], server: SimServer) -> None:
    first, second = runtimes
    answer = first.chat("gpt-4o-mini", QUESTION)
    again = second.chat("gpt-4o-mini", QUESTION)
    assert (again.text, again.usage, again.cached, answer.cached) == (answer.text, answer.usage, True, False)
    assert chat_posts(server) == 1 and second.cache_hits == 1
    second.chat("gpt-4o-mini", QUESTION, temperature=0.5)
    second.chat("gpt-4o-mini", QUESTION, sample=1)
    assert chat_posts(server) == 3


# -- sessions --------------------------------------------------------------------------------------


def test_a_second_run_makes_no_model_calls_and_gives_the_same_results(suite: pytest.Pytester, server: SimServer) -> None:
    first = results(suite, "--distill-cache")
    assert chat_posts(server) == 2 * CASES
    server.clear_requests()
    assert results(suite, "--distill-cache") == first
    assert chat_posts(server) == 0
    assert {passed for _, _, passed in first} == {True, False}


def test_refresh_calls_again_and_rewrites_every_entry(suite: pytest.Pytester, server: SimServer) -> None:
    first = results(suite, "--distill-cache")
    for entry in entries(suite.path):
        data = json.loads(entry.read_text(encoding="utf-8"))
        entry.write_text(json.dumps({**data, "text": "stale"}), encoding="utf-8")
    server.clear_requests()
    assert results(suite, "--distill-cache=refresh") == first
    assert chat_posts(server) == 2 * CASES
    assert all("stale" not in entry.read_text(encoding="utf-8") for entry in entries(suite.path))


def test_an_unusable_judge_answer_is_not_kept_so_the_next_run_asks_again(suite: pytest.Pytester, server: SimServer) -> None:
    server.inject(Fault("judge_garbage", count=2 * CASES))
    first = suite.runpytest("--distill-cache")
    first.assert_outcomes(errors=CASES)
    assert len(entries(suite.path)) == CASES
    server.clear_requests()
    assert {passed for _, _, passed in results(suite, "--distill-cache")} == {True, False}
    assert chat_posts(server) == CASES
    assert len(entries(suite.path)) == 2 * CASES


def test_the_cache_holds_answers_only_never_the_key(suite: pytest.Pytester, server: SimServer) -> None:
    results(suite, "--distill-cache")
    stored = [entry.read_text(encoding="utf-8") for entry in entries(suite.path)]
    assert len(stored) == 2 * CASES
    for text in stored:
        assert set(json.loads(text)) == {"version", "model", "text", "served_model", "refusal", "usage", "latency_s", "cached",
                                      "claim", "sha256"}
        assert TEST_KEY not in text and "Bearer" not in text


def test_xdist_workers_write_one_cache_that_a_later_run_reads(suite: pytest.Pytester, server: SimServer) -> None:
    first = results(suite, "--distill-cache", "-n", "2")
    assert chat_posts(server) == 2 * CASES
    assert len(entries(suite.path)) == 2 * CASES and list(suite.path.rglob("distill-calls/**/*.tmp")) == []
    server.clear_requests()
    assert results(suite, "--distill-cache") == first
    assert chat_posts(server) == 0


def test_the_cache_without_pytests_cache_provider_is_a_usage_error(suite: pytest.Pytester, server: SimServer) -> None:
    result = suite.runpytest("--distill-cache", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*--distill-cache keeps its answers in pytest's cache: drop -p no:cacheprovider*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
