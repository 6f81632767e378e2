"""The loop of docs/distillation.md on the hobannu example, as a user runs it: separate pytest sessions against
`--distill-sim` (whose fine-tuned models live in pytest's cache between sessions)."""

from __future__ import annotations

import re
import shutil
from collections import Counter

import pytest

from .support import REPO

EXAMPLE = REPO / "examples" / "hobannu"


def passed_per_model(result: pytest.RunResult) -> Counter[str]:
    """Passed tests per model, read from the -v lines `...[chatcmpl-hb-002-MODEL] PASSED`."""
    return Counter(match.group(1) for match in re.finditer(r"\[chatcmpl-hb-\d+-(.+?)\] PASSED", result.stdout.str()))


def test_the_distilled_student_beats_the_base_student_on_the_test_split(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    distill = pytester.runpytest("--distill-sim", "--distill", "--distill-wait", "-v")
    distill.stdout.fnmatch_lines(["distillation gate: MET", "*succeeded*: distilled model ft:gpt-4o-mini-2024-07-18:sim::*"])
    model = re.search(r"distilled model (ft:\S+)", distill.stdout.str()).group(1)
    before = passed_per_model(distill)
    after = passed_per_model(pytester.runpytest("--distill-sim", "--model", "gpt-4o-mini", "--model", model, "-v"))
    assert before["gpt-4o"] == 12 and before["gpt-4o-mini"] == after["gpt-4o-mini"] < 12
    assert after[model] > after["gpt-4o-mini"] and after[model] >= 9
