"""Files the user names that no run can use (nested 100,000 deep, holding a lone surrogate, a name too
long, a device or a pipe where a results file goes) stop the session at start-up with a clean error
that names the file and the problem: never an INTERNALERROR, never an empty HTML report, never a
device node replaced by a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_distill.atomic import write_atomic

from .support import qa_rows, write_jsonl

SUITE = """
import pytest

@pytest.mark.distill_dataset("cases.jsonl")
def test_answer(case, model):
    assert model.complete(case).text
"""
DEEP = "[" * 100_000 + "]" * 100_000
LABEL = {"case_id": "q0", "grader": "string_check", "passed": True}


def project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    write_jsonl(pytester.path / "cases.jsonl", qa_rows(2))


@pytest.mark.parametrize("option, content, said", [
    ("--distill-baseline", DEEP, "baseline base.json: not JSON: nested 100000 levels deep"),
    ("--distill-baseline", json.dumps({"version": 1, "cases": [{"nodeid": "t\ud800"}], "summary": {}}),
     "baseline base.json: not JSON: a lone surrogate in the string at $.cases[0].nodeid"),
    ("--distill-judge-labels", json.dumps(LABEL) + "\n" + DEEP + "\n", "judge labels base.json:2: not JSON: nested 100000 levels deep"),
    ("--distill-judge-labels", json.dumps({**LABEL, "grader": "g\ud800"}) + "\n",
     "judge labels base.json:1: not JSON: a lone surrogate in the string at $.grader"),
    ("--distill-sim-seed", json.dumps(qa_rows(1)[0]) + "\n" + DEEP + "\n", "base.json:2: not JSON: nested 100000 levels deep"),
    ("--distill-sim-seed", json.dumps({"messages": [{"role": "user", "content": "q\ud800"}, {"role": "assistant", "content": "a"}]}),
     "base.json:1: not JSON: a lone surrogate in the string at $.messages[0].content"),
])
def test_a_file_no_run_can_read_is_a_clean_start_up_error(
        pytester: pytest.Pytester, option: str, content: str, said: str) -> None:
    project(pytester)
    (pytester.path / "base.json").write_text(content, encoding="utf-8", errors="surrogatepass")
    result = pytester.runpytest("--distill-sim", option, "base.json", "--html", "report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "report.html").exists()


def test_a_results_file_name_too_long_is_a_clean_start_up_error(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest("--distill-sim", "--distill-results", "r" * 300 + ".json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --distill-results rrr*.json cannot be written: File name too long"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("option", ["--distill-results", "--distill-record"])
@pytest.mark.parametrize("link", [False, True], ids=["pipe", "link-to-a-pipe"])
def test_a_path_that_is_no_regular_file_is_refused_and_left_alone(pytester: pytest.Pytester, option: str, link: bool) -> None:
    """`--distill-results /dev/full` as root replaced the device node with a file; a pipe stands in for
    the device here (a test must never touch /dev)."""
    project(pytester)
    os.mkfifo(pytester.path / "pipe")
    if link:
        (pytester.path / "out").symlink_to(pytester.path / "pipe")
    name = "out" if link else "pipe"
    result = pytester.runpytest("--distill-sim", option, name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {option} {name} is not a regular file (a device, a pipe or a socket)*"])
    assert (pytester.path / "pipe").is_fifo()


def test_a_whole_file_write_never_replaces_what_is_no_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file, refused to replace it"):
        write_atomic(tmp_path / "pipe", "{}")
    assert (tmp_path / "pipe").is_fifo() and [path.name for path in tmp_path.iterdir()] == ["pipe"]
    write_atomic(tmp_path / "file.json", "{}")
    write_atomic(tmp_path / "file.json", "[]")
    assert (tmp_path / "file.json").read_text(encoding="utf-8") == "[]"


@pytest.mark.parametrize("flag", ["--distill-filter", "--distill-cache"])
def test_a_path_after_a_bare_optional_flag_is_refused_with_the_way_out(pytester: pytest.Pytester, flag: str) -> None:
    """`pytest --distill-filter tests/`: argparse gives the flag the path as its value; the error says so."""
    pytester.makepyfile(test_plain="def test_a():\n    assert True\n")
    result = pytester.runpytest(flag, "test_plain.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{flag}: 'test_plain.py' is not one of *"
                                 f"(a bare {flag} takes the word after it as its value: put paths first, or write {flag}=on)"])
    assert pytester.runpytest("test_plain.py", flag).ret == pytest.ExitCode.OK
