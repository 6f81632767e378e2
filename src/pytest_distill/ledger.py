"""What each test did with a model, and the sums of it per model and grader.

A test's `Entry` is built on whichever process ran it and travels to the controller as one JSON
`user_properties` item of its teardown report (xdist ships those), so the controller sees the same
entries whether the run was serial or spread over workers.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .grades import Grade
from .models.types import Completion
from .significance import Interval, wilson

PROPERTY = "distill"
NO_MODEL = "-"
"""The row of tests that graded something without a model under test (checks of the data itself)."""


@dataclass
class Entry:
    """One test on one case and one model: its output, grades, usage and outcome."""

    nodeid: str
    case_id: str | None = None
    model: str | None = None
    input: list[dict[str, Any]] | None = None
    expected: str | None = None
    """The case's reference answer, shown beside the output in the HTML report."""
    dataset: str | None = None
    """The dataset spec the case came from (the results file's "run" lists them)."""
    metadata: dict[str, Any] | None = None
    """The case's metadata (what `--distill-record` writes beside the answer)."""
    output: str | None = None
    grades: list[Grade] = field(default_factory=list)
    usage: dict[str, int] | None = None
    latency_s: float | None = None
    error: str | None = None
    judging: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """The judge calls of this test's grading, by request: model, input and output tokens."""
    outcome: str = "passed"
    """passed, failed, error or skipped: the test's own outcome."""
    sample: int = 0
    """Which repeat of the case this is (--distill-repeat)."""
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    """Each judge call's messages and raw reply, with --distill-keep-transcripts."""

    @property
    def counted(self) -> bool:
        """Errored and skipped cases count in no pass rate."""
        return self.outcome in ("passed", "failed")

    @property
    def passed(self) -> bool:
        return self.outcome == "passed" and all(grade.passed for grade in self.grades)

    def add_completion(self, completion: Completion) -> None:
        """Keep the model's latest answer; add up the tokens of all its calls in this test."""
        self.output = completion.text
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for key, value in completion.usage.to_dict().items():
            usage[key] = usage.get(key, 0) + value
        self.usage = usage
        self.latency_s = (self.latency_s or 0.0) + completion.latency_s

    def to_json(self) -> str:
        data = asdict(self)
        data["grades"] = [grade.to_dict() for grade in self.grades]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        data["grades"] = [Grade.from_dict(grade) for grade in data.get("grades", [])]
        return cls(**data)


class EntrySource(Protocol):
    """Where a run's entries are collected (the `Recorder`): what the reports read."""

    entries: list[Entry]

    def entry_of_node(self, nodeid: str) -> Entry | None: ...


def entry_of(user_properties: Iterable[tuple[str, Any]]) -> Entry | None:
    """The entry carried by a report's user_properties, if it has one."""
    for name, value in user_properties:
        if name == PROPERTY:
            return Entry.from_json(value)
    return None


@dataclass(frozen=True)
class GraderStats:
    passed: int
    mean_score: float
    n: int

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n

    @property
    def interval(self) -> Interval | None:
        return wilson(self.passed, self.n)


@dataclass(frozen=True)
class ModelStats:
    """One model's sums: cases that ran, passed and errored, its grader stats, tokens and latency."""

    model: str
    counted: int
    passed: int
    errors: int
    graders: dict[str, GraderStats]
    prompt_tokens: int
    completion_tokens: int
    latencies: tuple[float, ...]
    answered: int = 0
    """Tests in which the model gave an answer (a completion, replays included): what its cost is averaged over."""

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.counted if self.counted else None

    @property
    def interval(self) -> Interval | None:
        return wilson(self.passed, self.counted)

    def latency(self, quantile: float) -> float | None:
        """The latency at a quantile (0.5 for p50), of the calls that were made (replays excluded)."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(quantile * 100) - 1]


def in_order(entries: Iterable[Entry], models: Sequence[str]) -> list[Entry]:
    """The entries in one order (models as given, then node ids): the same under xdist as serial, and
    for a results file merged from shards as for the one run they split."""
    order = {model: index for index, model in enumerate(models)}
    return sorted(entries, key=lambda entry: (order.get(entry.model or "", len(order)), entry.nodeid))


def summarize(entries: Sequence[Entry]) -> dict[str, ModelStats]:
    """Per model, in order of first appearance: pass rates, grader stats, tokens and latencies."""
    by_model: dict[str, list[Entry]] = {}
    for entry in entries:
        by_model.setdefault(entry.model or NO_MODEL, []).append(entry)
    return {model: _model_stats(model, group) for model, group in by_model.items()}


def _model_stats(model: str, entries: list[Entry]) -> ModelStats:
    counted = [entry for entry in entries if entry.counted]
    grades: dict[str, list[Grade]] = {}
    for entry in counted:
        for grade in entry.grades:
            grades.setdefault(grade.name, []).append(grade)
    return ModelStats(
        model=model,
        counted=len(counted),
        passed=sum(entry.passed for entry in counted),
        errors=sum(entry.outcome == "error" for entry in entries),
        graders={name: GraderStats(sum(g.passed for g in group),
                                   statistics.fmean(g.score for g in group), len(group))
                 for name, group in grades.items()},
        prompt_tokens=sum((entry.usage or {}).get("prompt_tokens", 0) for entry in entries),
        completion_tokens=sum((entry.usage or {}).get("completion_tokens", 0) for entry in entries),
        latencies=tuple(entry.latency_s for entry in entries if entry.latency_s),
        answered=sum(entry.usage is not None for entry in entries),
    )


@dataclass(frozen=True)
class JudgingStats:
    """What one judge model was asked over the run: calls and tokens."""

    calls: int
    prompt_tokens: int
    completion_tokens: int


def judging(entries: Sequence[Entry]) -> dict[str, JudgingStats]:
    """Per judge model, the calls and tokens of all grading in the run, each distinct request once
    (answers from --distill-cache cost nothing and are not noted)."""
    calls = {request: call for entry in entries for request, call in entry.judging.items()}
    by_model: dict[str, list[tuple[str, int, int]]] = {}
    for call in calls.values():
        by_model.setdefault(call[0], []).append(call)
    return {model: JudgingStats(len(group), sum(c[1] for c in group), sum(c[2] for c in group))
            for model, group in by_model.items()}


def without_param(nodeid: str, param_id: str) -> str:
    """`nodeid` less one parameter id: `t.py::test[c1-gpt-4o-rep0]` less `gpt-4o` is `t.py::test[c1-rep0]`.

    Runs on a renamed model, and repeats of one case, are matched by what remains. The model's id
    follows the case's and precedes the repeat's, so the last match wins over the first.
    """
    path, colons, name = nodeid.partition("::")
    head, sep, params = name.partition("[")
    head = f"{path}{colons}{head}"
    if not sep or not params.endswith("]"):
        return nodeid
    params = params[:-1]
    if params == param_id:
        return head
    if params.endswith(f"-{param_id}"):
        rest = params[:-len(param_id) - 1]
    elif f"-{param_id}-" in params:
        before, _, after = params.rpartition(f"-{param_id}-")
        rest = f"{before}-{after}"
    elif params.startswith(f"{param_id}-"):
        rest = params[len(param_id) + 1:]
    else:
        return nodeid
    return f"{head}[{rest}]"


def without_repeat(nodeid: str) -> str:
    """`nodeid` less its repeat's id (`rep2`), read from the id itself: results files do not keep the sample."""
    params = nodeid.partition("::")[2].partition("[")[2]
    match = _REPEAT_ID.search(params[:-1]) if params.endswith("]") else None
    return without_param(nodeid, match.group(1)) if match else nodeid


_REPEAT_ID = re.compile(r"(?:^|-)(rep\d+)$")


def case_key(entry: Entry) -> str:
    """What one case is across models and repeats: the node id less the model's and the repeat's ids."""
    key = without_param(entry.nodeid, entry.model) if entry.model else entry.nodeid
    return without_param(key, f"rep{entry.sample}")


def by_case(entries: Iterable[Entry]) -> dict[str, dict[str, list[Entry]]]:
    """{case key: {model: its entries, one per repeat}}, cases and models in order of first appearance."""
    cases: dict[str, dict[str, list[Entry]]] = {}
    for entry in entries:
        cases.setdefault(case_key(entry), {}).setdefault(entry.model or NO_MODEL, []).append(entry)
    return cases


@dataclass(frozen=True)
class Repeats:
    """One model's repeated cases (--distill-repeat N): passed every time (pass^N), at least once
    (pass@N), and the flaky ones, which passed in some repeats and failed in others."""

    n: int
    """How many times a case ran (the most repeats of any case)."""
    cases: int
    """Cases with at least two repeats that ran to a verdict (errored repeats count in none)."""
    every: int
    some: int
    flaky: tuple[str, ...]
    """The flaky cases' ids, each once."""
    changed: int
    """How many repeated cases (per test) got different verdicts."""

    @property
    def share(self) -> float | None:
        return self.changed / self.cases if self.cases else None

    @property
    def pass_all(self) -> float | None:
        """pass^N: the share of repeated cases that passed in every repeat."""
        return self.every / self.cases if self.cases else None

    @property
    def pass_any(self) -> float | None:
        """pass@N: the share of repeated cases that passed in at least one repeat."""
        return self.some / self.cases if self.cases else None

    @property
    def every_interval(self) -> Interval | None:
        return wilson(self.every, self.cases)

    @property
    def some_interval(self) -> Interval | None:
        return wilson(self.some, self.cases)

    def to_dict(self) -> dict[str, Any]:
        """The results file's entry, keyed with the number: `{"n": 3, "pass^3": 0.75, "pass@3": 1.0, "flaky": [...],
        "ci95": {"pass^3": [LOW, HIGH], "pass@3": [LOW, HIGH]}}`."""
        intervals = {f"pass^{self.n}": self.every_interval, f"pass@{self.n}": self.some_interval}
        return {"n": self.n, f"pass^{self.n}": self.pass_all, f"pass@{self.n}": self.pass_any, "flaky": list(self.flaky),
                "ci95": {name: interval.to_list() for name, interval in intervals.items() if interval is not None}}


def verdict_changes(entries: Sequence[Entry]) -> dict[str, Repeats]:
    """Per model with repeated cases: pass^N, pass@N and the cases whose verdict changed between repeats."""
    seen: dict[str, list[tuple[str, list[Entry]]]] = {}
    for key, models in by_case(entries).items():
        for model, group in models.items():
            seen.setdefault(model, []).append((key, group))
    repeats = {model: _repeats(cases) for model, cases in seen.items()}
    return {model: stats for model, stats in repeats.items() if stats.cases}


def disagreements(entries: Sequence[Entry], first: str, second: str, every_repeat: bool = False) -> tuple[int, int]:
    """On the cases both models ran to a verdict: how many only `first` passed, and how many only `second`
    (the discordant pairs of McNemar's test). Repeats pair by their number, or, with `every_repeat`, a
    case passes when it passed every repeat."""
    only = [0, 0]
    for models in by_case(entries).values():
        runs: list[dict[int, list[bool]]] = [{}, {}]
        for side, model in enumerate((first, second)):
            for entry in models.get(model, []):
                if entry.counted:
                    runs[side].setdefault(0 if every_repeat else entry.sample, []).append(entry.passed)
        for sample in runs[0].keys() & runs[1].keys():
            passed = all(runs[0][sample])
            if passed != all(runs[1][sample]):
                only[0 if passed else 1] += 1
    return only[0], only[1]


def error_counts(entries: Sequence[Entry]) -> dict[str, int]:
    """Each distinct error of the run (a bad key, an unknown model, an outage) and how many tests it
    errored, the most frequent first: said once in the summary, not once a test."""
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.outcome == "error" and entry.error:
            counts[entry.error] = counts.get(entry.error, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _repeats(cases: list[tuple[str, list[Entry]]]) -> Repeats:
    verdicts = [(group[0].case_id or key, [entry.passed for entry in group if entry.counted]) for key, group in cases]
    repeated = [(case_id, seen) for case_id, seen in verdicts if len(seen) > 1]
    flaky = [case_id for case_id, seen in repeated if len(set(seen)) > 1]
    return Repeats(n=max(len({entry.sample for entry in group}) for _, group in cases), cases=len(repeated),
                   every=sum(all(seen) for _, seen in repeated), some=sum(any(seen) for _, seen in repeated),
                   flaky=tuple(dict.fromkeys(flaky)), changed=len(flaky))
