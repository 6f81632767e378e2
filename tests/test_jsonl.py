"""One JSONL reader (`jsonl.py`) for every file the project reads a line at a time: the same hostile line
is the same error, naming its line, in datasets, recorded answers, judge labels, the split tool, eval
items, training files (the trl backend's and the simulator's), seed files and batch files; a BOM, CRLF,
blank lines and a U+2028 inside a string are read alike everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.datasets import BrokenCase, Case, load_jsonl
from pytest_distill.distill.backends import TrainingError
from pytest_distill.distill.trl_backend import read_examples
from pytest_distill.errors import ConfigError
from pytest_distill.evals.convert import EvalsError, read_items
from pytest_distill.jsonl import DEFAULT_MAX_LINE_BYTES, BadLine, Line, parse_jsonl
from pytest_distill.models.batches import _answers
from pytest_distill.models.recorded import Recording
from pytest_distill.report.agreement import load_labels
from pytest_distill.sim.batches import _problems
from pytest_distill.sim.jobs import check_training_file
from pytest_distill.sim.seed import SeedError, load_seeds
from pytest_distill.split import read_lines

ENDPOINT = "/v1/chat/completions"


def good(number: int, question: str = "q") -> dict[str, Any]:
    """A line every reader takes: a chat-format case, a judge label, a batch request and its answer."""
    messages = [{"role": "user", "content": f"{question}{number}"}, {"role": "assistant", "content": f"a{number}"}]
    return {"id": f"c{number}", "messages": messages, "case_id": f"c{number}", "grader": "g", "passed": True,
            "custom_id": f"c{number}", "method": "POST", "url": ENDPOINT,
            "body": {"model": "gpt-4o", "messages": messages[:1]}, "response": {"status_code": 200, "body": {}}}


def line(number: int, question: str = "q") -> bytes:
    return json.dumps(good(number, question), ensure_ascii=False).encode("utf-8")


def problems_of(path: Path) -> dict[str, list[str]]:
    """What each reader says of the file: a per-line problem each, or the one error that stopped it."""
    said: dict[str, list[str]] = {}
    readers: dict[str, Callable[[], list[str]]] = {
        "dataset": lambda: [case.problem for case in load_jsonl(path, "t") if isinstance(case, BrokenCase)],
        "recorded": lambda: Recording.read(path).problems,
        "split": lambda: read_lines(path)[1],
        "labels": lambda: [str(len(load_labels(path)))],
        "evals items": lambda: [str(len(list(read_items(path))))],
        "trl training file": lambda: [str(len(read_examples(path)))],
        "sim seed": lambda: [str(len(load_seeds([path])))],
        "sim training file": lambda: [str((check_training_file(path.read_bytes(), param="training_file", minimum=1).error
                                           or {}).get("message"))],
        "sim batch file": lambda: [f"{p['code']} at {p['line']}" for p in _problems(path.read_bytes(), ENDPOINT)],
        "batch output": lambda: sorted(_answers(path.read_bytes(), ["c1", "c2", "c3"])),
    }
    for name, read in readers.items():
        try:
            said[name] = read()
        except (ConfigError, EvalsError, TrainingError, SeedError) as exc:
            said[name] = [str(exc)]
    return said


HUGE = b'{"x": "' + b"a" * DEFAULT_MAX_LINE_BYTES + b'"}'
HOSTILE = {
    "huge": (HUGE, f"the line is {len(HUGE):,} bytes, more than "),
    "no object": (b"[1, 2]", "not a JSON object (a list)"),
    "NaN": (b'{"x": NaN}', "not JSON: NaN is not JSON (RFC 8259 has no NaN or Infinity)"),
    "Infinity": (b'{"x": -Infinity}', "not JSON: -Infinity is not JSON (RFC 8259 has no NaN or Infinity)"),
    "lone surrogate": (b'{"x": "\\ud800"}', "not JSON: a lone surrogate in the string at $.x: not Unicode text"),
    "not UTF-8": (b'{"x": "\xff"}', "not UTF-8: byte 0xff at column 8"),
    "deep": (b"[" * 100_000, "not JSON: nested 100000 levels deep (at most 200 are read)"),
    "BOM after line 1": (b"\xef\xbb\xbf" + line(9), "not JSON: a byte order mark (U+FEFF) at line 1 column 1"),
}


@pytest.mark.parametrize("hostile", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_line_is_the_same_error_of_its_line_in_every_reader(tmp_path: Path, hostile: str) -> None:
    content, problem = HOSTILE[hostile]
    path = tmp_path / "file.jsonl"
    path.write_bytes(line(1) + b"\n" + content + b"\n" + line(3) + b"\n")
    said = problems_of(path)
    per_line = {  # the readers that leave the line out (or break its case) and read on
        "dataset": f"{path}:2: {problem}", "recorded": f"line 2: {problem}", "split": f"line 2: {problem}"}
    whole_file = {  # the readers for which one bad line stops the file, as before
        "labels": f"judge labels {path}:2: {problem}", "evals items": f"{path}:2: {problem}",
        "trl training file": f"{path}:2: {problem}", "sim seed": f"{path}:2: {problem}",
        "sim training file": f"Invalid file format. Line 2: {problem}"}
    for name, expected in {**per_line, **whole_file}.items():
        assert len(said[name]) == 1 and said[name][0].startswith(expected), (name, said[name])
        if hostile != "huge":  # whose message says where its cap is set
            assert said[name][0].removeprefix(expected) in ("", "."), (name, said[name])
    code = "invalid_request" if hostile == "no object" else "invalid_json_line"
    assert said["sim batch file"] == [f"{code} at 2"]
    assert said["batch output"] == ["c1", "c3"], "a server's bad line is left out; its call errors as unanswered"
    cases = load_jsonl(path, "t")
    assert [case.id for case in cases if isinstance(case, Case)] == ["c1", "c3"], "the other lines still run"


def test_a_bom_crlf_blank_lines_and_a_line_separator_in_a_string_read_alike_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "file.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line(1, "x\u2028y") + b"\r\n \t\r\n\r\n" + line(2) + b"\r\n")
    assert problems_of(path) == {
        "dataset": [], "recorded": [], "split": [], "labels": ["2"], "evals items": ["2"], "trl training file": ["2"],
        "sim seed": ["2"], "sim training file": ["None"], "sim batch file": [], "batch output": ["c1", "c2"]}
    first = next(iter(parse_jsonl(path.read_bytes())))
    assert isinstance(first, Line) and first.data["messages"][0]["content"] == "x\u2028y1"
    assert first.text == line(1, "x\u2028y").decode("utf-8"), "the line as written, less its BOM and CRLF"


def test_a_line_of_exactly_the_cap_is_read_and_one_byte_more_is_not() -> None:
    text = b'{"x": "' + b"a" * 20 + b'"}'
    assert [type(read) for read in parse_jsonl(text + b"\n" + text, cap=len(text))] == [Line, Line]
    assert [type(read) for read in parse_jsonl(text + b"\n" + text, cap=len(text) - 1)] == [BadLine, BadLine]
    (bad, *_) = parse_jsonl(text + b"\n", cap=len(text) - 1)
    assert isinstance(bad, BadLine) and (bad.number, bad.problem) == (
        1, f"the line is {len(text)} bytes, more than the {len(text) - 1} bytes a line may hold")


def test_the_simulator_imports_no_plugin_module_for_its_files() -> None:
    """The simulator shares the reader: it and `strict_json` import nothing of the plugin."""
    script = ("import sys, pytest_distill.sim, pytest_distill.sim.seed, pytest_distill.sim.jobs, pytest_distill.sim.batches;"
              "print(sorted(m for m in sys.modules if m.startswith('pytest_distill') and not m.startswith('pytest_distill.sim')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["['pytest_distill',", "'pytest_distill.jsonl',", "'pytest_distill.strict_json']"]
