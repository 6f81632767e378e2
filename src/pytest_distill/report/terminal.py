"""The table printed at the end of a session: per model and grader, pass rate, mean score and count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..ledger import ModelStats


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
    return [line(header), *(line(row) for row in rows)]


def summary_lines(stats: Mapping[str, ModelStats]) -> list[str]:
    graders = list(dict.fromkeys(name for model in stats.values() for name in model.graders))
    header = ["model", "pass rate", "cases", "errors", *(f"{name} (rate/mean/n)" for name in graders)]
    rows = []
    for model in stats.values():
        cells = [model.model, _percent(model.pass_rate), str(model.counted), str(model.errors)]
        for name in graders:
            g = model.graders.get(name)
            cells.append("-" if g is None else f"{_percent(g.pass_rate)} / {g.mean_score:.2f} / {g.n}")
        rows.append(cells)
    return render_table(header, rows)


def write_summary(reporter: Any, stats: Mapping[str, ModelStats]) -> None:
    reporter.write_sep("=", "distill summary")
    for line in summary_lines(stats):
        reporter.write_line(line)
