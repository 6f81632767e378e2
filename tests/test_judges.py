"""Several judges (`judge=[...]`): each is asked, the majority decides (a tie fails, and says so), each
judge's verdict is kept and their agreement shown; --distill-keep-transcripts keeps each judge call."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

from .support import HostileServer, qa_rows, write_jsonl
from .test_hostile_server import chat_answer
from .test_report_outputs import read_results

SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset({spec!r})
def test_two(case, model):
    assert factuality(model.complete(case), case.expected, judge=["gpt-4o", "local:contrarian"])

@pytest.mark.distill_dataset({spec!r})
def test_three(case, model):
    assert factuality(model.complete(case), case.expected, judge=["gpt-4o", "gpt-4o-mini", "local:contrarian"])
"""


def contrary(request: dict[str, Any]) -> tuple[int, object]:
    """A judge that finds every answer in disagreement with its reference."""
    return chat_answer(request, json.dumps({"reasoning": "I disagree with everything.", "choice": "D"}))


@pytest.fixture
def contrarian(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    server = HostileServer(reply=contrary)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LOCAL_KEY", "sk-local-judge")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer],
          contrarian: HostileServer) -> pytest.Pytester:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(3))
    make_sim(seed=[cases])
    pytester.makeini(f"[pytest]\ndistill_endpoints =\n    local {contrarian.url} LOCAL_KEY\n")
    pytester.makepyfile(SUITE.format(spec=str(cases)))
    return pytester


def test_the_majority_decides_a_tie_fails_and_each_judges_verdict_and_call_is_kept(
        suite: pytest.Pytester, contrarian: HostileServer) -> None:
    result = suite.runpytest("--model", "gpt-4o", "--distill-results", "r.json", "--distill-keep-transcripts")
    result.assert_outcomes(passed=3, failed=3)
    assert contrarian.posts >= 3
    records = {r["nodeid"].split("::")[1]: r for r in read_results(suite.path / "r.json")["cases"]}
    tie = records["test_two[q000-gpt-4o]"]["grades"][0]
    assert tie["votes"] == {"gpt-4o": True, "local:contrarian": False} and tie["passed"] is False
    assert tie["reason"].startswith("1 of 2 judges passed it (a tie fails). gpt-4o pass: ")
    assert "local:contrarian FAIL: choice D: " in tie["reason"]
    most = records["test_three[q001-gpt-4o]"]["grades"][0]
    assert most["votes"] == {"gpt-4o": True, "gpt-4o-mini": True, "local:contrarian": False} and most["passed"] is True
    transcripts = records["test_three[q001-gpt-4o]"]["judge_transcripts"]
    assert [t["judge"] for t in transcripts] == ["gpt-4o", "gpt-4o-mini", "local:contrarian"]
    assert all([m["role"] for m in t["messages"]] == ["system", "user"] and "Item q1 is number 1." in t["messages"][1]["content"]
               for t in transcripts)
    assert json.loads(transcripts[2]["reply"]) == {"reasoning": "I disagree with everything.", "choice": "D"}
    panels = read_results(suite.path / "r.json")["panels"]["factuality"]
    # 6 grades; the contrarian never with the majority of three, always against gpt-4o: no grade is unanimous
    assert (panels["n"], panels["unanimous"]) == (6, 0)
    assert panels["with_majority"] == {"gpt-4o": 0.5, "local:contrarian": 0.5, "gpt-4o-mini": 1.0}
    result.stdout.fnmatch_lines(["judges among themselves (judge=[[]...[]]):",
                                 "  factuality: all agreed on 0 of 6 (0%); kappa gpt-4o / gpt-4o-mini -, gpt-4o / local:contrarian 0.00, "
                                 "gpt-4o-mini / local:contrarian 0.00; with the majority: gpt-4o 50%, gpt-4o-mini 100%, "
                                 "local:contrarian 50%"])


def test_without_the_option_no_transcript_is_kept(suite: pytest.Pytester) -> None:
    suite.runpytest("--model", "gpt-4o", "--distill-results", "r.json", "-k", "two")
    assert all("judge_transcripts" not in r for r in read_results(suite.path / "r.json")["cases"])
