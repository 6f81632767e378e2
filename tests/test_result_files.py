"""The files a run leaves (results, training file): where they may go, and who may read them."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl

SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("stored:split=test")
def test_reply(case, model):
    string_check(model.complete(case), case.expected)
"""


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_and_training_files_get_the_usual_permissions(
        pytester: pytest.Pytester, make_sim, umask_022: None) -> None:
    seed = write_jsonl(pytester.path / "seed.jsonl", qa_rows(10, "test") + qa_rows(12, "train", "t"))
    make_sim(seed=[seed])
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--distill-dry-run", "--distill-results", "out/results.json")
    result.stdout.fnmatch_lines(["dry run: training file written to out/distill-train.jsonl; nothing uploaded"])
    assert mode(pytester.path / "out" / "results.json") == 0o644
    assert mode(pytester.path / "out" / "distill-train.jsonl") == 0o644
    assert sorted(p.name for p in (pytester.path / "out").iterdir()) == ["distill-train.jsonl", "results.json"]


@pytest.mark.parametrize("where, problem", [
    ("results", "--distill-results results is a folder: name a file in it, e.g. results/results.json"),
    ("taken.txt/results.json", "--distill-results taken.txt/results.json cannot be written: taken.txt is not a folder"),
    ("/proc/distill/results.json", "--distill-results /proc/distill/results.json cannot be written: /proc: *"),
], ids=["a-folder", "under-a-file", "unwritable"])
def test_a_results_path_that_cannot_be_written_stops_the_run_before_any_call(
        pytester: pytest.Pytester, sim: SimServer, where: str, problem: str) -> None:
    if where.startswith("/proc") and not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    (pytester.path / "results").mkdir()
    (pytester.path / "taken.txt").write_text("mine\n", encoding="utf-8")
    pytester.makepyfile(SUITE)
    sim.clear_requests()
    result = pytester.runpytest("--distill-results", where)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {problem}"])
    assert sim.requests == []
    assert list((pytester.path / "results").iterdir()) == []
    assert (pytester.path / "taken.txt").read_text(encoding="utf-8") == "mine\n"
