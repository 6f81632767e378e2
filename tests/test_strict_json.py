"""`strict_json`: the nesting scan that guards every parse of outside text reads any input in one pass."""

from __future__ import annotations

import pytest

from pytest_distill.strict_json import MAX_DEPTH, NotJSON, loads, nesting

MB = 1 << 20


@pytest.mark.parametrize("text, depth", [
    ("", 0), ("1", 0), ("[]", 1), ('[1, "]", {"a": [2]}]', 3), ('{"[": "{"}', 1), ('"\\\\" [ ]', 1), ('"\\" [ ]', 0),
    ('["\\"]"]', 1), ('["a\\\\", "["]', 1), ('"\\u005b" [', 1), ("]]]", 0), ('"open [[[', 0), ('[[ "open', 2),
])
def test_brackets_inside_strings_or_after_an_open_quote_do_not_count(text: str, depth: int) -> None:
    assert nesting(text) == depth


@pytest.mark.parametrize("shape, text, depth", [
    ("unterminated quotes with escaped quotes", '"' + 'a\\"' * (MB // 3), 0),
    ("escaped quotes outside strings", '\\"' * (MB // 2), 0),
    ("quote-backslash pairs", '"\\' * (MB // 2), 0),
    ("only quotes", '"' * MB, 0),
    ("only backslashes", "\\" * MB, 0),
    ("deep brackets", "[" * MB, MB),
    ("deep brackets between strings", '["' * (MB // 2), MB // 4),
    ("deep objects with escapes in keys", '{"k\\\\": [' * (MB // 8), MB // 4),
])
def test_a_megabyte_of_hostile_text_is_scanned_and_refused_clearly(shape: str, text: str, depth: int) -> None:
    """These shapes took quadratic time (46 s for 64 KB of open quotes); the scan is now linear. The
    benchmark `benchmarks/strict_json_scan.py` measures it; a test asserts results, never a time."""
    assert nesting(text) == depth
    with pytest.raises(NotJSON, match="nested" if depth > MAX_DEPTH else "at line 1"):
        loads(text)


def test_strict_json_still_reads_what_it_read() -> None:
    assert loads('{"a": ["x\\"]", 1.5, {"b": null}]}') == {"a": ['x"]', 1.5, {"b": None}]}
    with pytest.raises(NotJSON, match="NaN"):
        loads("[NaN]")
