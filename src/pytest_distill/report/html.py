"""The pytest-html report: the summary table above the results, and per test its case, model, input,
output and grades. Every text that came from a model, a dataset or a user is escaped: it is untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from pytest_html import extras

from ..grades import Grade
from ..ledger import Entry
from .baseline import Comparison
from .table import SummaryTable

STYLE = """<style>
.distill-summary, .distill-entry, .distill-summary h3 { color: #222; }
.distill-summary { margin-bottom: 14px; }
.distill-summary pre { font-size: 12px; margin: 4px 0; }
.distill-summary table, .distill-entry table { border-collapse: collapse; margin: 6px 0 10px; }
.distill-summary th, .distill-summary td, .distill-entry th, .distill-entry td {
  border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; vertical-align: top; }
.distill-summary td:first-child, .distill-summary th:first-child, .distill-entry td, .distill-entry th { text-align: left; }
.distill-summary th, .distill-entry th { background: #f2f2f2; }
.distill-summary p { margin: 2px 0; }
.distill-summary .regression { color: #b00020; font-weight: bold; }
.distill-summary .steady { color: #1b7f3b; font-weight: bold; }
.distill-entry { padding: 4px 0 8px; }
.distill-entry h4 { margin: 8px 0 4px; }
.distill-entry pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0 6px; padding: 6px;
  background: #fafafa; border: 1px solid #e4e4e4; font-size: 12px; }
.distill-entry .role { font-weight: bold; font-size: 12px; color: #555; }
.distill-pass { color: #1b7f3b; font-weight: bold; }
.distill-fail, .distill-entry .error { color: #b00020; font-weight: bold; }
</style>"""
COLUMNS = (("case", "Case"), ("model", "Model"), ("grades", "Grades"))
AFTER = 2
"""Our columns follow pytest-html's Result and Test columns."""


def summary_html(table: SummaryTable, lines: Sequence[str], comparison: Comparison | None,
                 run: Sequence[str] = ()) -> str:
    """How the run was made, the summary table and its notes, the results file, and the comparison with the baseline."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    parts = [STYLE, '<div class="distill-summary"><h2>Distill summary</h2>',
             *(f'<p class="distill-run">{escape(line)}</p>' for line in run),
             f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
             *(f"<p>{escape(line)}</p>" for line in [*table.notes, *lines])]
    if comparison is not None:
        parts.append(f"<h3>Baseline {escape(str(comparison.path))}</h3>")
        listing = "\n".join(comparison.lines())
        parts.append(f"<pre>{escape(listing)}</pre>")
        css = "regression" if comparison.regressions else "steady"
        parts.append(f'<p class="{css}">{escape(comparison.verdict())}</p>')
    parts.append("</div>")
    return "".join(parts)


def add_header_cells(cells: list[str]) -> None:
    for offset, (key, title) in enumerate(COLUMNS):
        sortable = ' class="sortable"' if key != "grades" else ""
        cells.insert(AFTER + offset, f'<th{sortable} data-column-type="{key}">{title}</th>')


def add_row_cells(cells: list[str], entry: Entry | None) -> None:
    """Every row gets the cells, empty for reports without an entry, so the columns stay aligned."""
    values = ("", "", "") if entry is None else (
        escape(entry.case_id or ""), escape(entry.model or ""),
        ", ".join(f'{escape(g.name)} {_verdict(g)}' for g in entry.grades))
    for offset, ((key, _), value) in enumerate(zip(COLUMNS, values)):
        cells.insert(AFTER + offset, f'<td class="col-{key}">{value}</td>')


def _verdict(grade: Grade) -> str:
    return '<span class="distill-pass">pass</span>' if grade.passed else '<span class="distill-fail">FAIL</span>'


def entry_extra(entry: Entry) -> dict[str, Any]:
    """The details of one test as a pytest-html `extras.html`: input messages, output, reference, grades, error."""
    parts = ['<div class="distill-entry">']
    if entry.input:
        parts.append("<h4>Input</h4>")
        parts += [f'<div class="role">{escape(str(message.get("role", "")))}</div><pre>{escape(_content(message))}</pre>'
                  for message in entry.input]
    if entry.output is not None:
        parts.append(f"<h4>Output of {escape(entry.model or '')}</h4><pre>{escape(entry.output)}</pre>")
    if entry.expected is not None:
        parts.append(f"<h4>Reference</h4><pre>{escape(entry.expected)}</pre>")
    if entry.grades:
        rows = "".join(
            f'<tr><td>{escape(g.name)}</td><td>{g.score:g}</td>'
            f"<td>{_verdict(g)}</td>"
            f"<td>{escape(g.threshold)}</td><td>{escape(g.reason)}</td></tr>" for g in entry.grades)
        parts.append("<h4>Grades</h4><table><thead><tr><th>grader</th><th>score</th><th>result</th>"
                     f"<th>passes when</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")
    if entry.error:
        parts.append(f'<h4 class="error">Error</h4><pre>{escape(entry.error)}</pre>')
    parts.append("</div>")
    return extras.html("".join(parts))


def _content(message: dict[str, Any]) -> str:
    """A message's text; structured content (parts, tool calls) as indented JSON."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    rest = {key: value for key, value in message.items() if key != "role" and value is not None}
    return json.dumps(rest, ensure_ascii=False, indent=2)
