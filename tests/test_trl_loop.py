"""The proof that `--distill-backend trl` really trains: the whole loop on the tiny offline Llama.

Session 1 (under xdist) evaluates the teacher (the simulator's gpt-4o) and the random tiny student on
the test split, meets the gate, and trains a LoRA adapter on the CPU from the train split, once, on
the controller. Session 2 runs the
same suite on the train questions: the base student gets (almost) none, the distilled one nearly
all. At this size the model memorises its training answers; that is all this shows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

SUITE = """
from pytest_distill import string_check

def test_reply(case, model):
    assert string_check(model.complete(case, max_tokens=32), case.expected)
"""
SYSTEM = "ホバンヌの質問に答えてください。"
TRAIN = "stored:split=train,limit=20"
"""Every hobannu answer is at most 21 tokens of the toy's tokenizer: 32 new tokens cut no right answer short."""


def pass_rates(results: Path) -> dict[str, float]:
    summary = json.loads(results.read_text(encoding="utf-8"))["summary"]
    return {model: graders["string_check"]["pass_rate"] for model, graders in summary.items()}


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two sessions and a training on the CPU: 300 s is not enough on a busy 2-core machine
def test_the_trl_backend_distills_the_tiny_student_until_it_knows_its_training_answers(
        pytester: pytest.Pytester, sim: SimServer, toy_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("COLUMNS", "400")  # the summary's notes wrap at the terminal's width; the lines below are whole
    pytester.makepyfile(SUITE)
    student, adapter = f"hf:{toy_model}", pytester.path / "distilled"
    common = ["--student", student, "--distill-student-system", SYSTEM]
    trained = pytester.runpytest(
        *common, "-n", "2", "--distill-dataset", "stored:split=test", "--distill", "--distill-backend", "trl",
        "--distill-train", TRAIN, "--distill-epochs", "40", "--distill-lr", "3e-3", "--distill-lora-rank", "16",
        "--distill-results", "trained.json")
    trained.stdout.fnmatch_lines([
        "*trl: training hf:* on 20 examples (assistant turns in the loss)*",
        "*trl: step 200/200 | loss * | 0s left*",
        "*prompt: hf:* reads * input tokens per case, the teacher gpt-4o *: --distill-student-system saves * per call",
        "*distillation gate: MET*",
        f"*distilled model hf:{adapter.name}*",
        f"*re-run the suite on it: pytest * --model hf:{adapter.name}*",
    ])
    assert trained.stdout.str().count("trl: training hf:") == 1
    assert pass_rates(pytester.path / "trained.json") == {"gpt-4o": 1.0, student: 0.0}
    record = json.loads((adapter / "distill.json").read_text(encoding="utf-8"))
    assert record["examples"] == 20 and record["base_model"] == str(toy_model.resolve())

    after = pytester.runpytest(*common, "--distill-dataset", TRAIN, "--model", f"hf:{adapter.name}",
                               "--model", student, "--distill-results", "after.json")
    rates = pass_rates(pytester.path / "after.json")
    assert rates[f"hf:{adapter.name}"] >= 0.8, after.stdout.str()
    assert rates[student] <= 0.1
    assert after.ret == pytest.ExitCode.TESTS_FAILED


def test_without_the_extra_an_hf_model_or_the_trl_backend_stops_at_start_up(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    pytester.makepyfile(SUITE)
    for args in (["--model", "hf:some/model"], ["--distill", "--distill-backend", "trl", "--student", "hf:some/model"]):
        result = pytester.runpytest(*args, "--distill-dataset", "cases.jsonl")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(['*needs torch*: install the [[]trl[]] extra: '
                                     'pip install -e "./pytest-distill[[]trl[]]" from a checkout*'])


def test_the_trl_backend_refuses_a_student_it_cannot_train_at_start_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--distill", "--distill-backend", "trl", "--distill-dataset", "cases.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--student must be hf:PATH_OR_ID*not 'gpt-4o-mini'*"])
