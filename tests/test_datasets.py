"""Dataset specs and JSONL cases, without pytest or a server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_distill.datasets import BrokenCase, Case, DatasetError, load_jsonl, parse_spec

from .support import HOBANNU, write_jsonl


def test_stored_spec_splits_list_filters_from_metadata_filters() -> None:
    spec = parse_spec("stored:split=test, app=support,model=gpt-4o,limit=200,order=desc", [])
    assert spec.stored
    assert spec.metadata == {"split": "test", "app": "support"}
    assert spec.list_params == {"model": "gpt-4o", "limit": 200, "order": "desc"}


@pytest.mark.parametrize("text, problem", [
    ("stored:split", "'split' is not KEY=VALUE"),
    ("stored:split=test;limit=5", "'split=test;limit=5' is not KEY=VALUE (filters are separated by commas"),
    ("stored:split=test&app=support", "'split=test&app=support' is not KEY=VALUE"),
    ("stored:split=a=b", "'split=a=b' is not KEY=VALUE"),
    ("stored:split=", "'split=' is not KEY=VALUE"),
    ('stored:split="test"', """'split="test"' is not KEY=VALUE"""),
    ("stored:limit=0", "limit must be a whole number"),
    ("stored:order=sideways", "order must be asc or desc"),
    ("cases.csv", "expected 'stored[:KEY=VALUE,...]' or a path to a .jsonl file"),
    ("missing.jsonl", "no such file"),
])
def test_bad_specs_say_what_is_wrong(text: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape(problem)):
        parse_spec(text, [tmp_path])


def test_jsonl_path_is_looked_up_in_each_folder_in_turn(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    target = write_jsonl(tmp_path / "b" / "cases.jsonl", [])
    assert parse_spec("cases.jsonl", [tmp_path / "a", tmp_path / "b"]).path == target.resolve()


def test_jsonl_lines_become_cases_with_reference_metadata_and_ids() -> None:
    cases = load_jsonl(HOBANNU, "hobannu.jsonl")
    assert len(cases) == 40 and all(isinstance(case, Case) for case in cases)
    first = cases[0]
    assert first.id == "hb-001"
    assert first.messages[-1]["role"] == "user" and first.messages[0]["role"] == "system"
    assert first.expected and first.metadata["app"] == "hobannu"
    assert first.question == first.messages[-1]["content"]


def test_each_broken_line_names_file_line_and_problem_and_the_rest_still_load(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join([
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}',
        'not json',
        '{"messages": []}',
        '{"messages": [{"role": "user", "content": "hi"}]}',
        '{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}',
        '',
        '{"id": "x", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
        '{"id": "x", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
    ]), encoding="utf-8")
    cases = load_jsonl(path, "cases.jsonl")
    problems = {case.id: case.problem for case in cases if isinstance(case, BrokenCase)}
    assert [case.id for case in cases if isinstance(case, Case)] == ["line1", "x"]
    assert problems["line2"].startswith(f"{path}:2: not JSON")
    assert "no messages" in problems["line3"]
    assert "no assistant answer" in problems["line4"]
    assert "unknown role 'robot'" in problems["line5"]
    assert "assistant answer is empty" in problems["line6"]
    assert problems["x"] == f"{path}:9: id 'x' is already used on line 8"


def test_a_stored_answer_of_a_model_replays_for_that_model_only() -> None:
    case = Case("c1", [{"role": "user", "content": "q"}], "a", origin_model="gpt-4o-2024-08-06")
    replay = case.replay("gpt-4o")
    assert (replay.text, replay.latency_s, replay.served_model) == ("a", 0.0, "gpt-4o-2024-08-06")


def hostile_lines() -> list[bytes]:
    """One good line, then one line for each way a line can be broken from outside, then another good line."""
    def line(case_id: str, user: object = "hi", **extra: object) -> bytes:
        row = {"id": case_id, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "hello"}], **extra}
        return json.dumps(row).encode()
    return [
        line("good-1"),
        line("bad-utf8").replace(b'"hi"', b'"h\xff\xfei"'),
        b"[" * 100_000 + b"]" * 100_000,
        line("lone-in-message", user="a \ud800 b"),
        line("lone-\ud800-id"),
        line("null-content", user=None),
        line("good-2"),
    ]


def test_hostile_lines_each_break_only_their_own_case_naming_file_line_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"\n".join(hostile_lines()) + b"\n")
    cases = load_jsonl(path, "cases.jsonl")
    assert [case.id for case in cases if isinstance(case, Case)] == ["good-1", "good-2"]
    problems = [case.problem for case in cases if isinstance(case, BrokenCase)]
    assert problems == [
        f"{path}:2: not UTF-8: byte 0xff at column 63",
        f"{path}:3: not JSON: nested 100000 levels deep (at most 200 are read)",
        f"{path}:4: not JSON: a lone surrogate in the string at $.messages[0].content: not Unicode text",
        f"{path}:5: not JSON: a lone surrogate in the string at $.id: not Unicode text",
        f"{path}:6: message 0 (user) has no content",
    ]


def test_a_line_separator_inside_a_string_does_not_split_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"messages": [{"role": "user", "content": "one\u2028two\x85three"}, {"role": "assistant", "content": "ok"}]}])
    (case,) = load_jsonl(path, "cases.jsonl")
    assert isinstance(case, Case) and case.question == "one\u2028two\x85three"
