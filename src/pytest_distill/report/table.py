"""What the summary says: one row per model, the same cells for the terminal and the HTML report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..ledger import Entry, JudgingStats, ModelStats, Repeats, error_counts, judging, summarize, verdict_changes
from ..models.types import shorten
from ..significance import rate_with_interval
from .cost import PriceTable


@dataclass(frozen=True)
class SummaryTable:
    header: list[str]
    rows: list[list[str]]
    notes: list[str]
    """Lines below the table: what the models cost against each other, how stable repeats were."""


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _dollars(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}"


def build(stats: Mapping[str, ModelStats], repeats: Mapping[str, Repeats], prices: PriceTable,
          teacher: str, shorter_prompt: bool = False,
          judging: Mapping[str, JudgingStats] | None = None, errors: Mapping[str, int] | None = None) -> SummaryTable:
    """Rows are models; per grader the pass rate, mean score and count; then errors, tokens, latency, cost.
    Every pass rate carries its 95% Wilson interval (`83% [71–91]`): how sure the rate is, at this many cases."""
    graders = list(dict.fromkeys(name for model in stats.values() for name in model.graders))
    header = ["model", "pass rate", "cases", "errors", *(f"{name} rate/mean/n" for name in graders)]
    n = max((r.n for r in repeats.values()), default=0)
    if repeats:
        header += [f"pass^{n}", f"pass@{n}", "verdict changed"]
    header += ["tokens in/out", "latency p50/p95", "cost/1k cases"]
    costs = {name: prices.per_1000_cases(name, model.prompt_tokens, model.completion_tokens, model.answered)
             for name, model in stats.items()}
    rows = []
    for name, model in stats.items():
        row = [name, rate_with_interval(model.passed, model.counted), str(model.counted), str(model.errors)]
        for grader in graders:
            g = model.graders.get(grader)
            row.append("-" if g is None else f"{rate_with_interval(g.passed, g.n)} / {g.mean_score:.2f} / {g.n}")
        if repeats:
            r = repeats.get(name)
            row += ["-", "-", "-"] if r is None else [rate_with_interval(r.every, r.cases), rate_with_interval(r.some, r.cases),
                                                      f"{percent(r.share)} of {r.cases}"]
        row += [f"{model.prompt_tokens:,} / {model.completion_tokens:,}",
                f"{_seconds(model.latency(0.5))} / {_seconds(model.latency(0.95))}", _dollars(costs[name])]
        rows.append(row)
    notes = error_notes(errors or {}) + cost_notes(costs, teacher) + judging_notes(judging or {}, prices)
    if prices.batch:
        notes.append("cost: at the Batch API's price (--distill-batch), half the list price")
    if shorter_prompt:
        notes += prompt_notes(stats, teacher)
    if repeats:
        notes.append(f"pass^{n}: the share of repeated cases (--distill-repeat) that passed in every repeat; "
                     f"pass@{n}: in at least one; verdict changed: passed in one repeat and failed in another")
        notes += flaky_notes(repeats)
    notes.append("[low–high]: the 95% Wilson interval of each pass rate (what the rate could be, at this many cases)")
    return SummaryTable(header, rows, notes)


def of_entries(entries: Sequence[Entry], prices: PriceTable, teacher: str, shorter_prompt: bool = False) -> SummaryTable:
    """The table of a run's entries, or of a results file's records read back (`results show`)."""
    return build(summarize(entries), verdict_changes(entries), prices, teacher, shorter_prompt=shorter_prompt,
                 judging=judging(entries), errors=error_counts(entries))


ERRORS_SHOWN = 5
"""How many distinct errors the summary spells out before it counts the rest."""


def error_notes(errors: Mapping[str, int]) -> list[str]:
    """`errors: 20 tests: POST /chat/completions ... failed (HTTP 401): ...`, once per distinct error."""
    notes = [f"errors: {count} test{'s' if count > 1 else ''}: {shorten(error, 400)}"
             for error, count in list(errors.items())[:ERRORS_SHOWN]]
    rest = list(errors.values())[ERRORS_SHOWN:]
    if rest:
        notes.append(f"errors: {len(rest)} other distinct errors in {sum(rest)} tests (each test's report has its own)")
    return notes


def flaky_notes(repeats: Mapping[str, Repeats]) -> list[str]:
    """`flaky: gpt-4o 2 cases: q003, q007`: the cases a team should look at before it trusts a verdict."""
    return [f"flaky: {name} {len(r.flaky)} case{'s' if len(r.flaky) != 1 else ''}: {some(r.flaky)}"
            for name, r in repeats.items() if r.flaky]


def some(items: Sequence[str], shown: int = 10) -> str:
    """The first items, then how many more."""
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def judging_notes(judging: Mapping[str, JudgingStats], prices: PriceTable) -> list[str]:
    """What the model-graded checks cost: they are calls too, often more tokens than the answers."""
    notes = []
    for name, judge in judging.items():
        price = prices.price(name)
        cost = f", {_dollars(price.cost(judge.prompt_tokens, judge.completion_tokens))}" if price else ""
        notes.append(f"judging: {name} took {judge.calls:,} calls, {judge.prompt_tokens:,} / "
                     f"{judge.completion_tokens:,} tokens in/out{cost}")
    return notes


def prompt_notes(stats: Mapping[str, ModelStats], teacher: str) -> list[str]:
    """With --distill-student-system: the input tokens per case of each model against the teacher's,
    whose calls keep the long system prompt (each count is by the model's own tokenizer)."""
    def per_case(model: ModelStats | None) -> float | None:
        """Over the cases the model answered: an errored case read no prompt, so it counts in no average."""
        return model.prompt_tokens / model.answered if model and model.answered and model.prompt_tokens else None

    reference = per_case(stats.get(teacher))
    if reference is None:
        return []
    notes = []
    for name, model in stats.items():
        mine = per_case(model)
        if name != teacher and mine is not None:
            notes.append(f"prompt: {name} reads {mine:,.0f} input tokens per case, the teacher {teacher} "
                         f"{reference:,.0f}: --distill-student-system saves {reference - mine:,.0f} per call")
    return notes


def cost_notes(costs: Mapping[str, float | None], teacher: str) -> list[str]:
    """`gpt-4o-mini costs 1/17 of the teacher gpt-4o per case`: each priced model against the teacher
    (or, without the teacher in the run, against the most expensive model)."""
    priced = {name: cost for name, cost in costs.items() if cost is not None}
    if len(priced) < 2:
        return []
    reference = teacher if priced.get(teacher) else max(priced, key=lambda name: priced[name])
    if not priced[reference]:
        return []
    role = "the teacher " if reference == teacher else ""
    notes = []
    for name, cost in priced.items():
        if name == reference:
            continue
        if not cost:  # a model priced at 0 in distill_prices (self-hosted): its cost is the server's, not per token
            notes.append(f"cost: {name} costs nothing per token against {role}{reference} "
                         f"({_dollars(priced[reference])} per 1,000 cases)")
            continue
        ratio = priced[reference] / cost
        share = f"{1 / ratio:.1f} times" if ratio < 1 else f"1/{ratio:.0f} of" if ratio >= 10 else f"1/{ratio:.1f} of"
        notes.append(f"cost: {name} costs {share} {role}{reference} per case "
                     f"({_dollars(cost)} vs {_dollars(priced[reference])} per 1,000 cases)")
    return notes
