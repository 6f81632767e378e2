"""examples/judged_data as a user runs it against --distill-sim: the judged filter leaves out exactly the
teacher's wrong training answers (a known quarter), the deterministic filter alone keeps them; and the loop
of docs/distillation.md, run command by command, distils a student from the judged data that beats its
teacher on the test split, and one from all of the teacher's answers that falls below it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from .support import REPO
from .toy_model import build_toy_model, texts_of

EXAMPLE = REPO / "examples" / "judged_data"
PAGE = REPO / "docs" / "distillation.md"
SHRUG = "I have no idea, sorry."
WRONG = ["chatcmpl-train-00", "chatcmpl-train-04", "chatcmpl-train-08", "chatcmpl-train-12"]


def copy_example(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))


def documented_loop(heading: str) -> list[list[str]]:
    """The pytest commands of the first bash block under the page's `heading`, as argument lists."""
    text = PAGE.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text[text.index(heading):], re.S)
    assert block is not None
    return [shlex.split(line)[1:] for line in block.group(1).splitlines() if line.startswith("pytest ")]


def distilled_model(result: pytest.RunResult) -> str:
    found = re.search(r"^distill: distilled model (ft:\S+)$", result.stdout.str(), re.M)
    assert found is not None, result.stdout.str()
    return found.group(1)


def pass_rates(results: Path) -> dict[str, float]:
    """Each model's share of cases in which every grade passed (the gate's pass rate), from the results file."""
    verdicts: defaultdict[str, list[bool]] = defaultdict(list)
    for case in json.loads(results.read_text(encoding="utf-8"))["cases"]:
        verdicts[case["model"]].append(all(grade["passed"] for grade in case["grades"]))
    return {model: sum(passed) / len(passed) for model, passed in verdicts.items()}


def test_the_judged_filter_removes_the_simulated_teachers_wrong_answers(pytester: pytest.Pytester) -> None:
    copy_example(pytester)
    args = ("--distill-sim", "--distill-dry-run", "--distill-teacher-min", "0.7", "--distill-results", "out.json")
    judged = pytester.runpytest(*args, "--distill-filter", "judged")
    judged.stdout.fnmatch_lines(["distillation gate: MET", "training data stored:app=judged_data,split=train: 12 valid examples*",
                                 f"  4 failed * dropped: {', '.join(f'{one} (criteria_match: *' for one in WRONG)}",
                                 "  kept per check: criteria_match 12 of 16"])
    written = (pytester.path / "distill-train.jsonl").read_text(encoding="utf-8")
    assert len(written.splitlines()) == 12 and SHRUG not in written
    plain = pytester.runpytest(*args, "--distill-filter")
    plain.stdout.fnmatch_lines(["training data stored:app=judged_data,split=train: 16 valid examples*"])
    assert (pytester.path / "distill-train.jsonl").read_text(encoding="utf-8").count(SHRUG) == 4


def test_the_documented_loop_distils_a_student_of_the_judged_data_that_beats_its_teacher(pytester: pytest.Pytester) -> None:
    copy_example(pytester)
    evaluate, judged, unfiltered, compare = documented_loop("## Evaluate, filter by judge")
    pytester.runpytest(*evaluate).assert_outcomes(passed=32)
    first = pytester.runpytest(*judged)
    first.stdout.fnmatch_lines(["*distill balance by topic*", "distillation gate: MET", "  kept per check: criteria_match 12 of 16",
                                "*started openai training * on 12 examples*"])
    second = pytester.runpytest(*unfiltered)
    second.stdout.fnmatch_lines(["distillation gate: MET", "*started openai training * on 16 examples*"])
    good, plain = distilled_model(first), distilled_model(second)
    assert good != plain
    named = dict(zip([arg for arg in compare if arg.startswith("ft:")], (good, plain), strict=True))
    pytester.runpytest(*(named.get(arg, arg) for arg in compare)).assert_outcomes(passed=64)
    rates = pass_rates(pytester.path / "compare.json")
    assert rates[good] >= rates["gpt-4o"] > rates[plain]
    # the figures the page and the README state: 94%, 81%, 75% (and the base student 31%)
    assert (rates[good], rates["gpt-4o"], rates[plain], rates["gpt-4o-mini"]) == (15 / 16, 13 / 16, 12 / 16, 5 / 16)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # three sessions and two trainings on the CPU; a busy 2-core machine is slow
def test_the_documented_loop_with_the_trl_toy_states_facts_where_the_unfiltered_student_shrugs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, training_stack: Any) -> None:
    """The trl variant of the loop on the tiny random Llama. It learns its training answers, and repeats
    them for the test split's rewordings of its training questions; it cannot know a fact it was never
    shown. So the student of the judged data states a fact on every test question (the judged check's
    rate: at least the teacher's), but is right only where it was trained on the fact; the student of
    every answer shrugs where its data shrugged (below the teacher on that check)."""
    torch = training_stack  # imported for the session, before this test's in-process sessions (see conftest)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the training runs in this process: one thread, as the hf: model's process gets
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    copy_example(pytester)
    build_toy_model(pytester.path / "toy", texts_of(EXAMPLE / "data" / "teacher.jsonl"))
    judged, unfiltered, compare = documented_loop("### The same loop with a student trained here")
    try:
        pytester.runpytest(*judged).stdout.fnmatch_lines(
            ["*trl: training hf:* on 12 examples*", "*kept per check: criteria_match 12 of 16*", "*distilled model hf:filtered*"])
        pytester.runpytest(*unfiltered).stdout.fnmatch_lines(
            ["*trl: training hf:* on 16 examples*", "*distilled model hf:unfiltered*"])
        pytester.runpytest(*compare).assert_outcomes(passed=48)
    finally:
        torch.set_num_threads(threads)
    results = pytester.path / "compare.json"
    written = json.loads(results.read_text(encoding="utf-8"))
    facts = {model: checks["criteria_match"]["pass_rate"] for model, checks in written["summary"].items()}
    assert facts["hf:filtered"] >= facts["gpt-4o"] > facts["hf:unfiltered"], facts
    rates = pass_rates(results)
    assert rates["hf:filtered"] >= rates["hf:unfiltered"], rates
    outputs = {(case["model"], case["case_id"]): case["output"] for case in written["cases"]}
    shrugged = {case for model, case in outputs if model == "hf:unfiltered" and outputs[model, case] == SHRUG}
    assert {"test-00", "test-04", "test-08", "test-12"} <= shrugged  # where its training data shrugged
    assert not any(outputs[model, case] == SHRUG for model, case in outputs if model == "hf:filtered")
