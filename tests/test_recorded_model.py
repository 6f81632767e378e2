"""Record a model while it exists (`--distill-record`), then let `recorded:FILE` answer in its place.

A fine-tune retires with its base: its recorded answers keep it in the suite (beside its successor)
and make it the teacher of `--distill` after it is gone. The simulator's request log proves that a
recorded model makes no call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, requests_to, write_jsonl

SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("{spec}")
def test_answer(case, model):
    assert string_check(model.complete(case), case.expected, "eq")
"""


def suite(pytester: pytest.Pytester, tmp_path: Path, count: int, name: str = "cases.jsonl") -> Path:
    spec = write_jsonl(tmp_path / name, qa_rows(count))
    pytester.makepyfile(SUITE.format(spec=spec))
    return spec


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_answer_is_one_chat_format_line_with_the_cases_metadata(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer], workers: list[str]) -> None:
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(6))])
    suite(pytester, tmp_path, 6)
    result = pytester.runpytest("--model", "gpt-4o,gpt-4o-mini", "--distill-record", "rec/answers.jsonl",
                                "-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=9, failed=3)
    result.stdout.fnmatch_lines(["distill: 12 answers recorded to rec/answers.jsonl*"])
    lines = lines_of(pytester.path / "rec" / "answers.jsonl")
    assert len(lines) == 12
    by = {(line["metadata"]["model"], line["metadata"]["case_id"]): line for line in lines}  # type: ignore[index]
    assert len(by) == 12
    line = by[("gpt-4o", "q003")]
    assert line["messages"] == [{"role": "user", "content": "What is item q3?"},
                                {"role": "assistant", "content": "Item q3 is number 3."}]
    assert line["metadata"] == {"split": "test", "model": "gpt-4o", "case_id": "q003"}


def test_a_recorded_model_answers_without_a_call_and_a_case_it_never_saw_is_an_error(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(5))])
    suite(pytester, tmp_path, 4)
    pytester.runpytest("--model", "gpt-4o", "--distill-record", "answers.jsonl", "-p", "no:cacheprovider").assert_outcomes(passed=4)
    calls = len(requests_to(server, "POST", "/chat/completions"))
    suite(pytester, tmp_path, 5)  # one case more than was recorded
    result = pytester.runpytest("--model", "recorded:answers.jsonl", "--distill-results", "results.json",
                                "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*recorded:answers.jsonl*no recorded answer to this input in answers.jsonl "
                                 "(it holds answers to 4 inputs)*"])
    assert len(requests_to(server, "POST", "/chat/completions")) == calls
    outcomes = {case["case_id"]: case["outcome"] for case in json.loads((pytester.path / "results.json").read_text())["cases"]}
    assert outcomes == {"q000": "passed", "q001": "passed", "q002": "passed", "q003": "passed", "q004": "error"}


def test_a_damaged_line_costs_only_its_case_and_answers_of_two_models_are_not_mixed(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(4))])
    suite(pytester, tmp_path, 4)
    pytester.runpytest("--model", "gpt-4o", "--distill-record", "answers.jsonl", "-p", "no:cacheprovider").assert_outcomes(passed=4)
    path = pytester.path / "answers.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'{"messages": [{"role": "user", "content": "What is item q1?"}, \xff'
    other = json.loads(lines[2])
    other["metadata"]["model"] = "ft:gpt-4o-mini:acme::x1"
    path.write_bytes(b"\n".join([*lines, json.dumps(other).encode()]))
    result = pytester.runpytest("--model", "recorded:answers.jsonl", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*no recorded answer*1 lines could not be read: line 2: not UTF-8*",
                                 "*holds answers of 2 models to this input (ft:gpt-4o-mini:acme::x1, gpt-4o): "
                                 "record one model per file*"])


def test_the_recorded_model_is_the_teacher_of_the_gate_and_its_answers_the_training_data(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    rows = qa_rows(4) + qa_rows(12, split="train", prefix="t")
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", rows)])
    everything = write_jsonl(tmp_path / "all.jsonl", rows)
    pytester.makepyfile(SUITE.format(spec=everything))
    pytester.runpytest("--model", "gpt-4o", "--distill-record", "ft.jsonl", "-p", "no:cacheprovider").assert_outcomes(passed=16)
    suite(pytester, tmp_path, 4)
    result = pytester.runpytest("--distill-dry-run", "--teacher", "recorded:ft.jsonl", "--distill-train", "ft.jsonl",
                                "--judge-model", "gpt-4o", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*distillation gate: MET*", "*teacher recorded:ft.jsonl pass rate 100%*",
                                 "*12 valid examples*", "*4 with the same input as a test case (leakage), dropped*"])
    training = lines_of(pytester.path / ".distill" / "distill-train.jsonl")
    assert sorted(str(line["messages"][-1]["content"]) for line in training) == sorted(  # type: ignore[index]
        row["messages"][-1]["content"] for row in rows[4:])


def test_the_judge_is_said_once_to_default_to_a_retiring_or_fine_tuned_teacher(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(2))])
    suite(pytester, tmp_path, 2)
    note = ("distill: model-graded checks are judged by the teacher gpt-4o by default, which retires on 2027-01-14 "
            "(OpenAI's deprecations page (platform.openai.com/docs/deprecations), announced 2026-10-14): "
            "name a lasting judge with --judge-model")
    result = pytester.runpytest("--model", "gpt-4o", "-p", "no:cacheprovider", "-n", "2")
    assert result.stdout.lines.count(note) == 1
    named = pytester.runpytest("--model", "gpt-4o", "--judge-model", "gpt-4o", "-p", "no:cacheprovider")
    assert "model-graded checks are judged" not in named.stdout.str()
    fine_tuned = pytester.runpytest("--model", "gpt-4o", "--teacher", "ft:gpt-4o-mini-2024-07-18:acme::x1", "-p", "no:cacheprovider")
    fine_tuned.stdout.fnmatch_lines(["distill: model-graded checks are judged by the teacher ft:gpt-4o-mini-2024-07-18:acme::x1 "
                                     "by default, which is a fine-tuned model, which goes when its base gpt-4o-mini-2024-07-18 "
                                     "retires on 2027-01-14 (*): name a lasting judge with --judge-model"])


def test_a_teacher_that_is_gone_gets_the_recorded_answers_as_its_way_on(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    import datetime

    from pytest_distill.models.retirements import gone_hint

    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(3))])
    suite(pytester, tmp_path, 3)
    gone = "ft:gpt-4o-mini-2024-07-18:acme::gone1"
    result = pytester.runpytest("--distill-dry-run", "--teacher", gone, "--judge-model", "gpt-4o", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([f"*{gone!r} at *(HTTP 404)*if it was deleted or has retired, answer from its recorded "
                                 "answers: a model named recorded:FILE.jsonl (also as --teacher) stands in for it*",
                                 f"*the teacher {gone} answered HTTP 404 to every case: it no longer exists (retired or "
                                 "deleted)*--teacher recorded:FILE.jsonl*"])
    retired = gone_hint(gone, datetime.date(2027, 1, 15))
    assert retired.startswith("its base gpt-4o-mini-2024-07-18 retired on 2027-01-14 (OpenAI's deprecations page")
    assert "recorded:FILE.jsonl" in retired and "--distill-wait" not in retired and "job" not in retired
    assert gone_hint("gpt-4.1", datetime.date(2027, 2, 1)).startswith("gpt-4.1 retired on 2027-01-14")
    assert gone_hint("gpt-4.1", datetime.date(2026, 12, 7)) == ""
