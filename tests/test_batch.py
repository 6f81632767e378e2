"""--distill-batch: the session's model and judge calls go through the Batch API, at the batch price."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import pytest

from pytest_distill.models.batches import MAX_LINES, _Call, _chunks, _line
from pytest_distill.sim import SimServer
from pytest_distill.sim.faults import Fault

from .support import requests_to
from .test_shards import summary_of

JUDGED_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("stored:split=test")
@pytest.mark.distill_grade("factuality")
def test_reply(case, model):
    assert factuality(model.complete(case), case.expected)
"""
RUN = ("--model", "gpt-4o-mini", "-p", "no:randomly")
BATCH = ("--distill-batch", "--distill-batch-poll", "0.01")
PRICED = re.compile(r"\$\d+\.\d+")


def test_a_batch_run_gives_the_table_of_an_ordinary_run_at_half_the_price(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    ordinary = pytester.runpytest(*RUN)
    sim.clear_requests()
    batched = pytester.runpytest(*RUN, *BATCH)
    batched.assert_outcomes(**ordinary.parseoutcomes())
    assert len(requests_to(sim, "POST", "/batches")) == 2, "the answers, then the judge's calls on them"
    assert requests_to(sim, "POST", "/chat/completions") == []
    lines = requests_to(sim, "POST", "/files")
    assert [r.body["purpose"] for r in lines] == ["batch", "batch"]
    table, batch_table = summary_of(ordinary.stdout.lines), summary_of(batched.stdout.lines)
    assert [PRICED.sub("$", line) for line in batch_table if not line.startswith("cost: at the Batch")] == \
        [PRICED.sub("$", line) for line in table]
    costs = [float(cost) for line in table for cost in re.findall(r"\$(\d+\.\d+)", line)]
    batch_costs = [float(cost) for line in batch_table for cost in re.findall(r"\$(\d+\.\d+)", line)]
    assert costs and batch_costs == pytest.approx([cost / 2 for cost in costs], abs=1e-4)
    assert "cost: at the Batch API's price (--distill-batch), half the list price" in batch_table
    sim.clear_requests()
    spread = pytester.runpytest(*RUN, *BATCH, "-n", "2")
    spread.assert_outcomes(**ordinary.parseoutcomes())
    assert summary_of(spread.stdout.lines) == batch_table
    assert requests_to(sim, "POST", "/chat/completions") == [] and len(requests_to(sim, "POST", "/batches")) >= 2


def test_with_the_responses_api_the_batches_call_it(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    ordinary = pytester.runpytest(*RUN, "-o", "distill_api=responses")
    sim.clear_requests()
    batched = pytester.runpytest(*RUN, *BATCH, "-o", "distill_api=responses")
    batched.assert_outcomes(**ordinary.parseoutcomes())
    assert [r.body["endpoint"] for r in requests_to(sim, "POST", "/batches")] == ["/v1/responses", "/v1/responses"]
    assert requests_to(sim, "POST", "/responses") == [] and requests_to(sim, "POST", "/chat/completions") == []


def test_a_killed_session_is_resumed_by_its_rerun_and_pays_for_no_call_twice(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    pytester.makeini("[pytest]\n")
    ordinary = pytester.runpytest(*RUN).parseoutcomes()
    sim.clear_requests()
    sim.inject(Fault("stall", path="/batches/", seconds=60))  # the first look at the batch hangs: the session is killed there
    with subprocess.Popen([sys.executable, "-m", "pytest", *RUN, *BATCH], cwd=pytester.path, env=os.environ,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 60
        while not requests_to(sim, "GET", "/batches/") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # poll interval, not synchronisation: the loop ends on the request seen
        process.kill()
    sim.end_stalls()
    created = requests_to(sim, "POST", "/batches")
    assert len(created) == 1, "the killed session had made its first batch"
    noted = list((pytester.path / ".pytest_cache" / "d" / "distill-batches").glob("batch_*.json"))
    assert len(noted) == 1
    rerun = pytester.runpytest(*RUN, *BATCH)
    rerun.assert_outcomes(**ordinary)
    assert len(requests_to(sim, "POST", "/batches")) == 2, "the re-run followed the first batch and made the judge's only"
    assert requests_to(sim, "POST", "/chat/completions") == []
    assert not list(noted[0].parent.glob("batch_*.json")), "a session that ran to its end forgets its batches"


def test_a_failed_or_expired_line_is_an_error_of_its_case(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    sim.inject(Fault("500", path="/chat/completions", model="gpt-4o-mini"))
    failed_line = pytester.runpytest(*RUN, *BATCH)
    failed_line.assert_outcomes(passed=4, failed=7, errors=1)
    failed_line.stdout.fnmatch_lines(["*model under test 'gpt-4o-mini'* batch batch_* failed (HTTP 500): The server had an error*"])
    sim.inject(Fault("batch_expired"))
    expired = pytester.runpytest(*RUN, *BATCH)
    assert expired.parseoutcomes()["errors"] == 6, "the half of the batch that never ran"
    expired.stdout.fnmatch_lines(["*batch batch_* failed: This request could not be executed before the completion window expired*"])
    expired.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_batch_files_are_cut_at_50000_lines_and_at_the_byte_limit() -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        calls = [_Call(f"k{index}", "", "/v1/chat/completions", "m", body, future) for index in range(MAX_LINES + 1)]
        assert [len(chunk) for chunk in _chunks(calls)] == [MAX_LINES, 1]
        size = len(_line(calls[0]))
        assert [len(chunk) for chunk in _chunks(calls[:5], max_bytes=2 * size)] == [2, 2, 1]
        assert [len(chunk) for chunk in _chunks(calls[:1], max_bytes=1)] == [1], "a line longer than a file goes alone"
    finally:
        loop.close()
