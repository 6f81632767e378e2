"""examples/judged_data as a user runs it against --distill-sim: the judged filter leaves out exactly the
teacher's wrong training answers (a known quarter), the deterministic filter alone keeps them."""

from __future__ import annotations

import shutil

import pytest

from .support import REPO

EXAMPLE = REPO / "examples" / "judged_data"
SHRUG = "I have no idea, sorry."
WRONG = ["chatcmpl-train-00", "chatcmpl-train-04", "chatcmpl-train-08", "chatcmpl-train-12"]


def test_the_judged_filter_removes_the_simulated_teachers_wrong_answers(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
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
