"""The end of the terminal output: the summary table, then the notes, the results file and the baseline."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from ..untrusted import printable
from .baseline import Comparison
from .table import SummaryTable

GAP = "  "
MIN_NAME = 12
"""A model name is never cut shorter than this to make a block fit."""


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """Left-aligned first column, right-aligned numbers, two spaces apart.

    A table wider than `width` is cut into blocks of columns that each fit, one blank line apart, every
    block led by the first column (the model), so that no line wraps in the terminal."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if width is None or _width(widths) <= width:
        return _block(header, rows, list(range(len(header))), widths)
    rest = max(widths[1:], default=0)
    if widths[0] + len(GAP) + rest > width:
        widths[0] = max(width - len(GAP) - rest, MIN_NAME)
    lines: list[str] = []
    for columns in _blocks(widths, width):
        lines += [*([""] if lines else []), *_block(header, rows, [0, *columns], widths)]
    return lines


def _width(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _blocks(widths: Sequence[int], width: int) -> list[list[int]]:
    """The columns after the first, in order, grouped so that each group beside the first column fits."""
    blocks: list[list[int]] = []
    for column in range(1, len(widths)):
        if blocks and _width([widths[0], *(widths[c] for c in blocks[-1]), widths[column]]) <= width:
            blocks[-1].append(column)
        else:
            blocks.append([column])
    return blocks


def _block(header: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[int], widths: Sequence[int]) -> list[str]:
    def line(row: Sequence[str]) -> str:
        cells = [_cut(row[0], widths[0]).ljust(widths[0]), *(row[c].rjust(widths[c]) for c in columns[1:])]
        return GAP.join(cells).rstrip()
    return [line(header), *(line(row) for row in rows)]


def _cut(text: str, width: int) -> str:
    """A model name too long for its column keeps its start and its end (`ft:gpt-4o-mi…::mjFTTajP`)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head):]}"


def write_summary(reporter: Any, table: SummaryTable) -> None:
    """The table and its notes within the terminal's width (`COLUMNS`; 80 when not a terminal)."""
    width = getattr(getattr(reporter, "_tw", None), "fullwidth", 80)
    reporter.write_sep("=", "distill summary")
    write_lines(reporter, summary_lines(table, width))


def summary_lines(table: SummaryTable, width: int) -> list[str]:
    """The table, then its notes wrapped to `width`, control characters escaped before the columns are laid out."""
    lines = render_table([printable(cell) for cell in table.header], [[printable(cell) for cell in row] for row in table.rows],
                         width)
    for note in table.notes:
        lines += textwrap.wrap(printable(note), width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return lines


def write_lines(reporter: Any, lines: Iterable[str], **markup: bool) -> None:
    """Lines on the terminal, with what a model, a judge, a server or a dataset wrote into them (an
    escape sequence that clears the screen or fakes a PASSED line) shown escaped, never obeyed."""
    for line in lines:
        reporter.write_line(printable(line), **markup)


def write_comparison(reporter: Any, comparison: Comparison) -> None:
    """Every change against the baseline, then one line that says whether the run regressed."""
    reporter.write_sep("-", printable(f"distill baseline {comparison.path}"))
    write_lines(reporter, comparison.lines())
    write_lines(reporter, [comparison.verdict()], red=comparison.failed, green=not comparison.failed, bold=True)
