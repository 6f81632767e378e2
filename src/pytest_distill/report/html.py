"""The pytest-html report: the summary table above the results, and per test its case, model, input,
output and grades. Every text that came from a model, a dataset or a user is escaped: it is untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from ..grades import Grade
from ..ledger import Entry, by_case, summarize
from ..significance import rate_with_interval
from .balance import Balance
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
.distill-matrix { color: #222; margin-bottom: 14px; }
.distill-matrix table { border-collapse: collapse; margin: 6px 0 10px; }
.distill-matrix th, .distill-matrix td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
.distill-matrix th { background: #f2f2f2; }
.distill-matrix td.pass { background: #e3f4e8; }
.distill-matrix td.fail { background: #fbe3e6; }
.distill-matrix td.flaky { background: #fff3d6; }
.distill-matrix td.error { background: #ececec; }
.distill-matrix tr.disagree td:first-child { border-left: 4px solid #b00020; }
.distill-matrix .test { color: #777; font-size: 11px; }
.distill-balance { color: #222; margin-bottom: 14px; }
.distill-balance table { border-collapse: collapse; margin: 6px 0 10px; }
.distill-balance th, .distill-balance td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; }
.distill-balance td:first-child, .distill-balance th:first-child { text-align: left; }
.distill-balance th { background: #f2f2f2; }
.distill-balance .bar { display: inline-block; height: 8px; background: #5b8dd9; margin-right: 4px; }
.distill-balance .rate .bar { background: #1b7f3b; }
.distill-balance .flag { color: #b00020; font-weight: bold; text-align: left; }
.distill-matrix pre { white-space: pre-wrap; word-break: break-word; max-width: 40em; font-size: 12px; margin: 4px 0; }
</style>"""
HOVER = 500
"""How many characters of an output the hover shows; the cell expands to the whole of it."""
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
        css = "regression" if comparison.failed else "steady"
        parts.append(f'<p class="{css}">{escape(comparison.verdict())}</p>')
    parts.append("</div>")
    return "".join(parts)


def balance_html(balance: Balance) -> str:
    """--distill-balance as a table: each side's count with a bar of its share, each model's pass rate
    with a bar, the rare and unseen flags; every value escaped (it comes from the data)."""
    sides = [balance.train, balance.test, *([balance.against] if balance.against is not None else [])]
    totals = [sum(side.values()) or 1 for side in sides]
    head = "".join(f"<th>{escape(cell)}</th>" for cell in balance.header())
    rows = []
    for value in balance.values():
        cells = [f"<td>{escape(value)}</td>"]
        cells += [f"<td>{_bar(side[value] / total)}{side[value]}</td>" for side, total in zip(sides, totals, strict=True)]
        for model in balance.models:
            rate = balance.rate(value, model)
            cells.append('<td class="rate">-</td>' if rate is None else f'<td class="rate">{_bar(rate)}{rate:.0%}</td>')
        cells.append(f'<td class="flag">{escape(", ".join(balance.flags(value)))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    notes = "".join(f"<p>{escape(line)}</p>" for line in balance.lines())
    return (f'<div class="distill-balance"><h3>Balance by {escape(balance.key)}</h3>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{notes}</div>")


def _bar(share: float) -> str:
    return f'<span class="bar" style="width: {round(share * 60)}px"></span>'


def add_header_cells(cells: list[str]) -> None:
    for offset, (key, title) in enumerate(COLUMNS):
        sortable = ' class="sortable"' if key != "grades" else ""
        cells.insert(AFTER + offset, f'<th{sortable} data-column-type="{key}">{title}</th>')


def add_row_cells(cells: list[str], entry: Entry | None) -> None:
    """Every row gets the cells, empty for reports without an entry, so the columns stay aligned."""
    values = ("", "", "") if entry is None else (
        escape(entry.case_id or ""), escape(entry.model or ""),
        ", ".join(f'{escape(g.name)} {_verdict(g)}' for g in entry.grades))
    for offset, ((key, _), value) in enumerate(zip(COLUMNS, values, strict=False)):
        cells.insert(AFTER + offset, f'<td class="col-{key}">{value}</td>')


def _verdict(grade: Grade) -> str:
    return '<span class="distill-pass">pass</span>' if grade.passed else '<span class="distill-fail">FAIL</span>'


def entry_extra(entry: Entry) -> dict[str, Any]:
    """The details of one test as a pytest-html `extras.html`: input messages, output, reference, grades, error."""
    from pytest_html import extras  # only a run that writes an HTML report gets here

    parts = ['<div class="distill-entry">']
    if entry.input:
        parts.append("<h4>Input</h4>")
        parts += [f'<div class="role">{escape(str(message.get("role", "")))}</div><pre>{escape(_content(message))}</pre>'
                  for message in entry.input]
    if entry.output is not None:
        parts.append(f"<h4>Output of {escape(entry.model or '')}</h4><pre>{escape(entry.output)}</pre>")
    if entry.expected is not None:
        parts.append(f"<h4>Reference</h4><pre>{escape(entry.expected)}</pre>")
    # A failed test's failed grades, with their reasons, are already in its log (pytest's report of the
    # failure): the table shows the rest, so that no verdict is said twice in one row.
    grades = [g for g in entry.grades if g.passed or entry.outcome != "failed"]
    if grades:
        rows = "".join(
            f'<tr><td>{escape(g.name)}</td><td>{g.score:g}</td>'
            f"<td>{_verdict(g)}</td>"
            f"<td>{escape(g.threshold)}</td><td>{escape(g.reason)}</td></tr>" for g in grades)
        parts.append("<h4>Grades</h4><table><thead><tr><th>grader</th><th>score</th><th>result</th>"
                     f"<th>passes when</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")
    if entry.error:
        parts.append(f'<h4 class="error">Error</h4><pre>{escape(entry.error)}</pre>')
    parts.append("</div>")
    entry_html: dict[str, Any] = extras.html("".join(parts))
    return entry_html


def _content(message: dict[str, Any]) -> str:
    """A message's text; structured content (parts, tool calls) as indented JSON."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    rest = {key: value for key, value in message.items() if key != "role" and value is not None}
    return json.dumps(rest, ensure_ascii=False, indent=2)


def matrix_html(entries: Sequence[Entry], models: Sequence[str]) -> str:
    """The case x model matrix: one row per case, one column per model under test, each cell the verdict
    (its colour) with the output on hover and on expand; the cases where the models disagree come first."""
    cases = by_case(entry for entry in entries if entry.model and entry.outcome != "skipped")
    if not cases:
        return ""
    columns = list(dict.fromkeys([*(m for m in models if any(m in cells for cells in cases.values())),
                                  *(m for cells in cases.values() for m in cells)]))
    rows = []
    for key, cells in cases.items():
        verdicts = {model: _cell_verdict(group) for model, group in cells.items()}
        disagree = len(set(verdicts.values())) > 1
        first = next(iter(cells.values()))[0]
        name = key.rpartition("::")[2].partition("[")[0]
        row = [f'<td><b>{escape(first.case_id or key)}</b> <span class="test">{escape(name)}</span></td>']
        row += [_cell(cells[model], verdicts[model]) if model in cells else '<td class="none">-</td>' for model in columns]
        rows.append((not disagree, f'<tr class="{"disagree" if disagree else "agree"}">{"".join(row)}</tr>'))
    rows.sort(key=lambda pair: pair[0])
    disagreeing = sum(not agree for agree, _ in rows)
    head = "<th>case</th>" + "".join(f"<th>{escape(model)}</th>" for model in columns)
    stats = summarize([entry for group in cases.values() for entries in group.values() for entry in entries])
    foot = "<th>pass rate [95% interval]</th>" + "".join(
        f"<th>{escape(rate_with_interval(stats[model].passed, stats[model].counted))}</th>" for model in columns)
    return (f'<div class="distill-matrix"><h2>Cases by model</h2><p>{len(rows)} cases, {disagreeing} where the models '
            f"disagree (listed first); hover a cell for its output, click it for the whole output.</p>"
            f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(row for _, row in rows)}</tbody>'
            f"<tfoot><tr>{foot}</tr></tfoot></table></div>")


def _cell_verdict(group: Sequence[Entry]) -> str:
    """pass, fail or error; flaky when the repeats of the case passed in some and failed in others."""
    seen = {entry.passed for entry in group if entry.counted}
    return "error" if not seen else "flaky" if len(seen) > 1 else "pass" if seen == {True} else "fail"


def _cell(group: Sequence[Entry], verdict: str) -> str:
    """One model's cell: the verdict, each repeat's output (or error) on hover and inside <details>."""
    texts = [entry.output if entry.output is not None else entry.error or "(no output)" for entry in group]
    if len(group) > 1:
        texts = [f"rep{entry.sample} {_entry_verdict(entry)}: {text}" for entry, text in zip(group, texts, strict=True)]
        passed = sum(entry.passed for entry in group if entry.counted)
        label = f"{verdict} {passed}/{sum(entry.counted for entry in group)}"
    else:
        label = verdict if verdict != "fail" else "FAIL"
    hover = "\n\n".join(texts)
    hover = hover if len(hover) <= HOVER else hover[:HOVER] + "..."
    body = "".join(f"<pre>{escape(text)}</pre>" for text in texts)
    return (f'<td class="{verdict}" data-verdict="{verdict}" title="{escape(hover, quote=True)}">'
            f"<details><summary>{escape(label)}</summary>{body}</details></td>")


def _entry_verdict(entry: Entry) -> str:
    return "error" if not entry.counted else "pass" if entry.passed else "fail"
