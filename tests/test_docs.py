"""The docs site: its options tables are made from OPTIONS, and its examples run as written."""

from __future__ import annotations

import re

import pytest

from pytest_distill.settings import OPTIONS

from .support import REPO, module_of


def test_the_options_page_has_a_row_for_every_option_with_its_default() -> None:
    tables = module_of(REPO / "docs" / "hooks" / "options_table.py").tables()
    rows = [line for line in tables.splitlines() if line.startswith("| ") and not line.startswith("| option")]
    assert len(rows) == len(OPTIONS)
    for opt in OPTIONS:
        assert any((not opt.flag or f"`{opt.flag}" in row) and (not opt.ini or f"`{opt.ini}`" in row) for row in rows), opt.dest
    teacher = next(row for row in rows if "`--teacher NAME`" in row)
    assert teacher.split(" | ")[2] == "`gpt-4o`"


def test_the_simulator_pages_example_runs_as_written(pytester: pytest.Pytester) -> None:
    page = (REPO / "docs" / "simulator.md").read_text(encoding="utf-8")
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "def test_" in block]
    pytester.makepyfile(test_client_of_mine=example)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
