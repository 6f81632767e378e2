"""json_stream.read_object: a large object read a value at a time, each value parsed a bounded number of times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill import json_stream
from pytest_distill.strict_json import NotJSON


class CountingDecoder:
    """A decoder that counts the parses it is asked for, and has `decoder` make them."""

    def __init__(self, decoder: Any) -> None:
        self.decoder, self.parses = decoder, 0

    def raw_decode(self, text: str, pos: int) -> tuple[Any, int]:
        self.parses += 1
        return self.decoder.raw_decode(text, pos)


@pytest.mark.parametrize("indent", [None, 2])
def test_every_element_is_handed_on_whatever_the_layout(tmp_path: Path, indent: int | None) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"run": {"x": 1}, "cases": [{"n": i} for i in range(50)], "end": True}, indent=indent))
    seen: list[tuple[int, Any]] = []
    members = json_stream.read_object(path, "cases", lambda index, value: seen.append((index, value)), cap=10_000)
    assert members == {"run": {"x": 1}, "cases": [], "end": True}
    assert seen == [(i, {"n": i}) for i in range(50)]


def test_a_value_many_windows_long_is_parsed_a_few_times_not_once_a_window(tmp_path: Path, monkeypatch) -> None:
    """A 200-window value: the window doubles on each retry, so about log2(200) parses, not 200."""
    monkeypatch.setattr(json_stream, "CHUNK", 1024)
    counting = CountingDecoder(json_stream.DECODER)
    monkeypatch.setattr(json_stream, "DECODER", counting)
    path = tmp_path / "long.json"
    long = "x" * (200 * 1024)
    path.write_text(json.dumps({"cases": [long]}))
    seen: list[Any] = []
    json_stream.read_object(path, "cases", lambda index, value: seen.append(value), cap=1 << 20)
    assert seen == [long]
    assert counting.parses <= 12


def test_a_value_over_the_cap_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"cases": ["x" * 5000]}))
    with pytest.raises(NotJSON, match="longer than distill_max_line_bytes"):
        json_stream.read_object(path, "cases", lambda index, value: None, cap=1000)



def test_an_error_early_in_a_long_file_is_said_where_it_is_not_read_on_to_the_cap(tmp_path: Path, monkeypatch: Any) -> None:
    """A broken record at the start of a file many windows long is a syntax error at its line, at once."""
    monkeypatch.setattr(json_stream, "CHUNK", 1024)
    counting = CountingDecoder(json_stream.DECODER)
    monkeypatch.setattr(json_stream, "DECODER", counting)
    path = tmp_path / "broken.json"
    path.write_text('{"cases": [\n{"n": 1 "m": 2},\n' + ",\n".join(json.dumps({"n": i, "pad": "x" * 100}) for i in range(2000)) + "]}")
    with pytest.raises(NotJSON, match="Expecting ',' delimiter at line 2 column 9"):
        json_stream.read_object(path, "cases", lambda index, value: None, cap=1 << 20)
    assert counting.parses == 2  # the member name "cases", then the broken record, once


@pytest.mark.parametrize("tail", ["true", "false", "null", "-1.5e-7", '"\\u00fc\\ud83d\\ude00"', "[]", "{}"])
def test_a_value_cut_at_any_place_by_the_window_is_read_whole(tmp_path: Path, monkeypatch: Any, tail: str) -> None:
    """Every cut of a record's last value by the window's end reads on (a literal, a number, an escape)."""
    monkeypatch.setattr(json_stream, "CHUNK", 64)
    for shift in range(70):
        path = tmp_path / "cut.json"
        path.write_text('{"cases": [' + json.dumps({"pad": "y" * shift})[:-1] + ', "v": ' + tail + "}]}")
        seen: list[Any] = []
        json_stream.read_object(path, "cases", lambda index, value, seen=seen: seen.append(value), cap=1 << 20)
        assert seen == [{"pad": "y" * shift, "v": json.loads(tail)}]
