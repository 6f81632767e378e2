"""--distill-filter judged and --distill-repair in real sessions against the simulator: the teacher's
training answers graded by the suite's own model-graded checks, the failing ones left out with the
judge's reason, the cost said, re-asked before they are dropped; serial, under xdist, and from the cache."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, requests_to, write_jsonl

SUITE = """
import pytest
from pytest_distill import criteria_match, string_check

@pytest.mark.distill_dataset("cases.jsonl")
def test_reply(case, model):
    answer = model.complete(case)
    string_check(answer, case.expected)
    criteria_match(answer, "The answer mentions the number")
"""
WRONG = "I have no idea, sorry."
TRAINED = ".pytest_cache/d/distill/distill-train.jsonl"


def start(pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> SimServer:
    """12 stored teacher answers for training, 3 of them (t000, t004, t008) wrong: they name no number,
    which the suite's criteria ask for; 10 test questions the teacher knows."""
    train = qa_rows(12, "train", "t")
    for index in (0, 4, 8):
        train[index]["messages"][-1]["content"] = WRONG
    tests = qa_rows(10, "test", "q")
    write_jsonl(pytester.path / "cases.jsonl", tests)
    pytester.makepyfile(test_suite=SUITE)
    return make_sim(seed=[write_jsonl(pytester.path / "seed.jsonl", train + tests)])


def judge_calls(server: SimServer) -> int:
    return sum("response_format" in json.dumps(r.body) for r in requests_to(server, "POST", "/chat/completions"))


@pytest.mark.parametrize("spread", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_judged_filter_leaves_out_the_answers_the_suites_judge_fails_with_its_reason(
        pytester: pytest.Pytester, make_sim: Callable[..., SimServer], spread: tuple[str, ...]) -> None:
    start(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-filter", "judged", "--distill-min-examples", "5",
                                "--distill-results", "out.json", *spread)
    result.stdout.fnmatch_lines([
        "training data stored:split=train: 9 valid examples*",
        "  3 failed the suite's deterministic and model-graded checks: criteria_match; not replayable (their arguments "
        "follow the case): string_check in test_reply, dropped: chatcmpl-t000 (criteria_match: *not met*",
        "  kept per check: criteria_match 9 of 12",
        "  judging the training answers: 12 judge calls, * tokens",
    ])
    written = (pytester.path / "distill-train.jsonl").read_text(encoding="utf-8")
    assert len(written.splitlines()) == 9 and WRONG not in written
    record = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))["distill"]["training"]
    assert record["filter"]["checks"] == {"criteria_match": {"kept": 9, "of": 12}}
    assert record["filter"]["judge_calls"] == 12 and record["filter"]["judge_tokens"] > 0
    assert [item.split(" ")[0] for item in record["filtered"]] == ["chatcmpl-t000", "chatcmpl-t004", "chatcmpl-t008"]


def test_the_bare_filter_flag_still_replays_only_deterministic_checks(pytester: pytest.Pytester,
                                                                      make_sim: Callable[..., SimServer]) -> None:
    server = start(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-filter", "--distill-min-examples", "5")
    result.stdout.fnmatch_lines(["judging: gpt-4o took 16 calls*", "training data stored:split=train: 12 valid examples*",
                                 "  0 failed the suite's deterministic checks: none; *"])
    assert judge_calls(server) == 16  # the suite's own (20 gradings, identical requests one call); none for training
    assert WRONG in (pytester.path / TRAINED).read_text(encoding="utf-8")


def test_judged_filtering_again_from_the_cache_makes_no_call(pytester: pytest.Pytester,
                                                             make_sim: Callable[..., SimServer]) -> None:
    server = start(pytester, make_sim)
    args = ("--distill-dry-run", "--distill-filter", "judged", "--distill-min-examples", "5", "--distill-cache")
    pytester.runpytest(*args).stdout.fnmatch_lines(["  kept per check: criteria_match 9 of 12"])
    before = len(requests_to(server, "POST", "/chat/completions"))
    again = pytester.runpytest(*args)
    again.stdout.fnmatch_lines(["training data stored:split=train: 9 valid examples*",
                                "  kept per check: criteria_match 9 of 12"])
    assert len(requests_to(server, "POST", "/chat/completions")) == before


def test_repair_reasks_the_teacher_with_its_answer_and_the_reason_before_dropping(
        pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> None:
    server = start(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-filter", "judged", "--distill-repair", "2",
                                "--distill-min-examples", "5")
    result.stdout.fnmatch_lines([
        "training data stored:split=train: 9 valid examples*",
        "*dropped: chatcmpl-t000 (criteria_match: *not met* (after 2 repairs)*",
        "  repair (up to 2 tries): 0 repaired, 9 kept as they were, 3 dropped; 6 teacher calls, * tokens",
    ])
    repairs = [r.body for r in requests_to(server, "POST", "/chat/completions") if "did not pass this check" in json.dumps(r.body)]
    assert len(repairs) == 6
    first = repairs[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant", "user"] and first[1]["content"] == WRONG
    assert "criteria_match:" in first[2]["content"] and "not met" in first[2]["content"]
