"""The end of the terminal output: the summary table, then the notes, the results file and the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .baseline import Comparison
from .table import SummaryTable


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
    return [line(header), *(line(row) for row in rows)]


def write_summary(reporter: Any, table: SummaryTable) -> None:
    reporter.write_sep("=", "distill summary")
    for line in [*render_table(table.header, table.rows), *table.notes]:
        reporter.write_line(line)


def write_comparison(reporter: Any, comparison: Comparison) -> None:
    """Every change against the baseline, then one line that says whether the run regressed."""
    reporter.write_sep("-", f"distill baseline {comparison.path}")
    for line in comparison.lines():
        reporter.write_line(line)
    reporter.write_line(comparison.verdict(), red=bool(comparison.regressions), green=not comparison.regressions,
                        bold=True)
