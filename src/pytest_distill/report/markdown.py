"""`--distill-markdown FILE`: the run as GitHub-flavoured Markdown, for `$GITHUB_STEP_SUMMARY` or a PR comment.

The same numbers as the other reports (the test counts are the terminal's own), in the order a
reviewer reads them: the counts, the verdicts (pass-rate threshold, baseline), the summary table, the
cases that flipped against the baseline, then the worst failures. Every text that came from a model, a
dataset, a judge or a test is hostile: it is cut short and escaped so that it can neither break the
table (`|`, new lines) nor add markup, HTML, links, mentions or issue references to the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape

from ..ledger import Entry
from ..models.types import shorten
from .baseline import Comparison
from .table import SummaryTable
from .threshold import RateVerdict

WORST = 10
"""How many failed cases the Markdown lists."""
SHOWN = 200
"""How much of an output or a reason a cell shows."""
LISTED = 10
"""How many flipped cases each way a grader lists."""
COUNTED = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
"""pytest's own outcome words, in the order of its last line."""
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")
"""Markdown's punctuation (after HTML escaping, no `<` or `>` is left): each is backslash-escaped."""


def text(value: str, width: int = SHOWN) -> str:
    """Hostile text as inert Markdown: one line, cut, HTML-escaped (`&` too, so that no entity it holds is
    read), each markup character backslash-escaped, `@` as an entity (no mention)."""
    flat = shorten(value.encode("utf-8", "replace").decode("utf-8"), width)
    return _MARKUP.sub(r"\\\1", escape(flat, quote=False)).replace("@", "&#64;")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numbers: bool = True) -> list[str]:
    """Cells already escaped; the first column left, the others right when they are numbers (as the terminal aligns them)."""
    align = ["---", *(["---:" if numbers else "---"] * (len(header) - 1))]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |", *(f"| {' | '.join(row)} |" for row in rows)]


def counts_line(counts: Mapping[str, int]) -> str:
    """`**10 passed, 2 failed, 1 error**`: pytest's last line, in its words."""
    said = [f"{counts[word]} {word}{'s' if word == 'error' and counts[word] > 1 else ''}" for word in COUNTED if counts.get(word)]
    return f"**{', '.join(said) or 'no tests ran'}**"


def document(counts: Mapping[str, int], table: SummaryTable, entries: Sequence[Entry],
             threshold: RateVerdict | None = None, comparison: Comparison | None = None) -> str:
    """The whole Markdown page."""
    lines = ["## pytest-distill", "", counts_line(counts), ""]
    if threshold is not None:
        lines += [f"{'✅' if threshold.passes else '❌'} {text(threshold.line().removeprefix('distill: '), 2000)}", ""]
    if comparison is not None:
        lines += [f"{'❌' if comparison.failed else '✅'} {text(comparison.verdict().removeprefix('distill: '), 2000)}", ""]
    lines += ["### Summary", "", *_table([text(cell) for cell in table.header], [[text(cell) for cell in row] for row in table.rows]),
              "", *(f"- {text(note, 1000)}" for note in table.notes), ""]
    if comparison is not None:
        lines += _flipped(comparison)
    lines += _worst(entries)
    return "\n".join(lines).rstrip() + "\n"


def _flipped(comparison: Comparison) -> list[str]:
    """The cases that went from pass to fail and back, per model and grader."""
    lines: list[str] = []
    for change in comparison.changes:
        for title, nodeids in (("pass → fail", change.went_failing), ("fail → pass", change.went_passing)):
            if nodeids:
                more = f" and {len(nodeids) - LISTED} more" if len(nodeids) > LISTED else ""
                lines.append(f"- {text(change.label)}, {title} ({len(nodeids)}): "
                             f"{', '.join(f'`{text(nodeid)}`' for nodeid in nodeids[:LISTED])}{more}")
    return ["### Flipped against the baseline", "", *lines, ""] if lines else []


def _worst(entries: Sequence[Entry]) -> list[str]:
    """The failed cases with the lowest scores first: case, model, the failed graders, reason and output."""
    failed = [entry for entry in entries if entry.outcome == "failed"]
    if not failed:
        return []
    failed.sort(key=lambda entry: min((grade.score for grade in entry.grades if not grade.passed), default=0.0))
    rows = []
    for entry in failed[:WORST]:
        grades = [grade for grade in entry.grades if not grade.passed]
        rows.append([text(entry.case_id or entry.nodeid), text(entry.model or "-"),
                     text(", ".join(f"{grade.name} {grade.score:g}" for grade in grades) or "the test failed"),
                     text("; ".join(grade.reason for grade in grades)), text(entry.output or "")])
    title = f"### Worst failures ({min(len(failed), WORST)} of {len(failed)})"
    return [title, "", *_table(["case", "model", "failed", "reason", "output"], rows, numbers=False), ""]
