"""A baseline is an earlier results file: read and checked at start-up, compared with this run at the end.

Pass rates are compared per model and grader on the cases both runs share, so a case added or
removed since the baseline is listed but moves no rate. A model that changed its name is matched
by role (each run has one model) or by the user's `OLD=NEW` mapping.

A drop is a regression by one of two tests (`--distill-baseline-test`): `tolerance`, any drop of the
rate past `--distill-tolerance` (large suites, where a point or two is real); or `mcnemar`, McNemar's
exact test on the shared cases that flipped, one-sided for a drop, significant below `--distill-alpha`
(small suites, where three flipped cases of forty may be chance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..json_stream import NotObject, read_object
from ..jsonl import DEFAULT_MAX_LINE_BYTES
from ..ledger import NO_MODEL, without_param, without_repeat
from ..significance import mcnemar_drop
from ..strict_json import NotJSON
from .results import check_head, check_record, check_version
from .results import load as load_results
from .table import percent

EPSILON = 1e-9
"""Pass rates are ratios of small counts: a drop equal to the tolerance is not a regression."""
LISTED = 10
"""How many case ids a line names before it says how many more there are."""
NAMED = 3
"""How many flipped cases the verdict line names each way."""
MCNEMAR = "mcnemar"
ERROR_KEPT = 200
"""How much of a baseline record's error is kept: only whether there is one counts."""


@dataclass(frozen=True)
class Baseline:
    path: Path
    results: dict[str, Any]

    @property
    def models(self) -> list[str]:
        return models_of(self.results)


def models_of(results: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(record["model"] or NO_MODEL for record in results["cases"]))


def load(path: Path, cap: int = DEFAULT_MAX_LINE_BYTES) -> Baseline:
    """The baseline file, or a usage error that says what is wrong with it before any model is called.

    Read a record at a time (`json_stream`), each checked as it comes and cut to what the comparison
    uses: a 109 MB baseline took 540 MB read whole. `cap` (ini `distill_max_line_bytes`) bounds one
    record; a document that is no JSON object is read whole, if no larger, to say what it is instead."""
    where, missing = f"baseline {path}", f"no such file (write one with --distill-results {path})"
    cases: list[dict[str, Any]] = []
    shared: dict[Any, Any] = {}

    def keep(index: int, record: Any) -> None:
        check_record(record, index, where)
        cases.append(_kept(record, shared))

    try:
        members = read_object(path, "cases", keep, cap, start=lambda head: check_version(head, where) if "version" in head else None)
    except FileNotFoundError:
        raise ConfigError(f"{where}: {missing}") from None
    except NotObject:
        if path.stat().st_size > cap:
            raise ConfigError(f"{where}: not a pytest-distill results file (not a JSON object)") from None
        return Baseline(path, load_results(path, where, missing))
    except NotJSON as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc}") from None
    check_head(members, where)
    return Baseline(path, {"version": members["version"], "run": members.get("run"), "cases": cases})


def _kept(record: Mapping[str, Any], shared: dict[Any, Any]) -> dict[str, Any]:
    """What the comparison reads of a record (its node id, model, whether it errored, each grade's name and
    verdict); names and grades met before are shared, not held once per record."""
    error = record["error"]
    return {"nodeid": record["nodeid"], "model": shared.setdefault(record["model"], record["model"]),
            "error": None if error is None else error[:ERROR_KEPT],
            "grades": [shared.setdefault((grade["name"], grade["passed"]), {"name": grade["name"], "passed": grade["passed"]})
                       for grade in record["grades"]]}


def pair_models(baseline_models: Sequence[str], run_models: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """{model of this run: baseline model it is compared with}: the user's OLD=NEW pairs, then equal
    names, then, when each run has a single model, the two of them."""
    for old, new in mapping.items():
        if old not in baseline_models:
            raise ConfigError(f"--distill-baseline-model {old}={new}: the baseline has no model {old!r} "
                                    f"(it has {', '.join(baseline_models)})")
        if new not in run_models:
            raise ConfigError(f"--distill-baseline-model {old}={new}: {new!r} is not a model under test "
                                    f"(they are {', '.join(run_models)})")
    pairs = {new: old for old, new in mapping.items()}
    for model in run_models:  # OLD of OLD=NEW that runs too is still compared with itself
        if model not in pairs and model in baseline_models:
            pairs[model] = model
    named = [[model for model in models if model != NO_MODEL] for models in (baseline_models, run_models)]
    if not mapping and all(len(models) == 1 for models in named) and named[1][0] not in pairs:
        pairs[named[1][0]] = named[0][0]
    return {model: pairs[model] for model in run_models if model in pairs}


@dataclass(frozen=True)
class GraderChange:
    """One grader of one model: its pass rate on the shared cases, before and now."""

    model: str
    baseline_model: str
    grader: str
    cases: int
    before: float
    after: float
    went_failing: list[str]
    """Tests (this run's node ids) that passed this grader in the baseline and fail it now."""
    regressed: bool
    went_passing: list[str] = field(default_factory=list)
    """Tests that failed this grader in the baseline and pass it now."""
    p_value: float | None = None
    """With --distill-baseline-test mcnemar: the one-sided exact p-value of the drop."""

    @property
    def label(self) -> str:
        renamed = f" (baseline: {self.baseline_model})" if self.baseline_model != self.model else ""
        return f"{self.model}{renamed} {self.grader}"


@dataclass(frozen=True)
class Comparison:
    path: Path
    tolerance: float
    changes: list[GraderChange]
    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    paired: int = 0
    shared: int = 0
    repeats_differ: bool = False
    """How many models were paired with a baseline model, and how many cases both runs ran."""
    new_models: list[str] = field(default_factory=list)
    gone_models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What makes the two runs unlike (a simulator against a real API, other datasets): said above the comparison."""
    every_repeat: bool = False
    """Verdicts are pass^N: a case passes only if it passed in every repeat (--distill-gate-metric pass^k)."""
    test: str = "tolerance"
    alpha: float = 0.05

    @property
    def regressions(self) -> list[GraderChange]:
        return [change for change in self.changes if change.regressed]

    @property
    def nothing(self) -> str | None:
        """Why the comparison compares nothing (then it fails the session), or None."""
        if self.changes:
            return None
        if not self.paired:
            return (f"no model of this run is in the baseline (the baseline has {', '.join(self.gone_models) or 'none'}; "
                    f"this run {', '.join(self.new_models) or 'none'}): pair them with --distill-baseline-model OLD=NEW")
        if not self.shared and self.repeats_differ:
            return ("one run repeats its cases (--distill-repeat) and the other does not, so no node id is in both: "
                    "compare with --distill-gate-metric pass^k, which counts the repeats of a case as one")
        if not self.shared:
            return "no case of this run is in the baseline: every case was added or removed since (their node ids differ)"
        return "no grader graded a case in both runs"

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or self.nothing is not None

    def lines(self) -> list[str]:
        """Each grader before and now, the cases that went from pass to fail, and what changed in the cases."""
        lines = list(self.notes)
        if self.every_repeat:
            lines.append("verdicts are pass^N: a case passes when it passed in every repeat (--distill-gate-metric pass^k)")
        for change in self.changes:
            flag = "  REGRESSION" if change.regressed else ""
            p_value = f", p={change.p_value:.3g}" if change.p_value is not None else ""
            lines.append(f"{change.label}: {percent(change.before)} -> {percent(change.after)} "
                         f"on {change.cases} shared cases{p_value}{flag}")
            if change.went_failing:
                lines += _listing(f"  went from pass to fail ({len(change.went_failing)}):", change.went_failing)
            if change.went_passing and self.test == MCNEMAR:
                lines += _listing(f"  went from fail to pass ({len(change.went_passing)}):", change.went_passing)
        for model, keys in self.added.items():
            lines += _listing(f"{model}: {_cases_count(keys)} added since the baseline (not compared):", keys)
        for model, keys in self.removed.items():
            lines += _listing(f"{model}: {_cases_count(keys)} of the baseline did not run (not compared):", keys)
        if self.new_models:
            lines.append(f"not in the baseline: {', '.join(self.new_models)} (use --distill-baseline-model OLD=NEW "
                         "to compare a renamed model)")
        if self.gone_models:
            lines.append(f"in the baseline but not in this run: {', '.join(self.gone_models)}")
        return lines

    def verdict(self) -> str:
        """The one line that says whether the session fails because of the baseline."""
        if self.nothing is not None:
            return f"distill: ERROR: the comparison with the baseline {self.path} compares nothing: {self.nothing}"
        if self.test == MCNEMAR:
            return self._significance_verdict()
        if not self.regressions:
            return (f"distill: no regression against the baseline {self.path} "
                    f"({len(self.changes)} model/grader pairs compared, tolerance {percent(self.tolerance)})")
        worst = ", ".join(f"{change.label} {percent(change.before)} -> {percent(change.after)}"
                          for change in self.regressions)
        return f"distill: REGRESSION against the baseline {self.path} (tolerance {percent(self.tolerance)}): {worst}"

    def _significance_verdict(self) -> str:
        """With McNemar's test: each pair that regressed (or, with none, each that moved) with its p-value and
        the cases that flipped each way, the first few named."""
        test = f"McNemar exact, one-sided, alpha {self.alpha:g}"
        moved = self.regressions or [change for change in self.changes if change.went_failing or change.went_passing]
        told = "; ".join(f"{change.label} {percent(change.before)} -> {percent(change.after)}, p={change.p_value:.3g}, "
                         f"{_named(change.went_failing)} went failing, {_named(change.went_passing)} went passing"
                         for change in moved)
        if self.regressions:
            return f"distill: REGRESSION against the baseline {self.path} ({test}): {told}"
        return (f"distill: no significant regression against the baseline {self.path} ({test}; "
                f"{len(self.changes)} model/grader pairs compared){': ' + told if told else ', no case flipped'}")


def _named(nodeids: Sequence[str]) -> str:
    """`2 (q003, q007)`: how many, and the first few by their parameters (`q003-gpt-4o`), not their whole node id."""
    if not nodeids:
        return "0"
    names = [nodeid.partition("[")[2].removesuffix("]") or nodeid for nodeid in nodeids[:NAMED]]
    more = ", ..." if len(nodeids) > NAMED else ""
    return f"{len(nodeids)} ({', '.join(names)}{more})"


def _cases_count(items: Sequence[str]) -> str:
    return f"{len(items)} case" if len(items) == 1 else f"{len(items)} cases"


def _listing(title: str, items: Sequence[str]) -> list[str]:
    """A title, then one node id a line, indented under it; past LISTED, how many more."""
    indent = " " * (len(title) - len(title.lstrip()) + 4)
    more = [f"{indent}... and {len(items) - LISTED} more"] if len(items) > LISTED else []
    return [title, *(f"{indent}{item}" for item in items[:LISTED]), *more]


def compare(baseline: Baseline, results: Mapping[str, Any], mapping: Mapping[str, str], tolerance: float,
            every_repeat: bool = False, test: str = "tolerance", alpha: float = 0.05) -> Comparison:
    """This run's results against the baseline's, per paired model and grader, on the cases both ran.

    With `every_repeat` the repeats of a case are one case that passes only when every repeat passed.
    With `test` mcnemar a drop regresses only when McNemar's exact test finds it significant at `alpha`."""
    run_models = list(dict.fromkeys([*models_of(results), *mapping.values()]))
    pairs = pair_models(baseline.models, run_models, mapping)
    changes: list[GraderChange] = []
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    shared_count = 0
    for model, old_model in pairs.items():
        before, now = _cases(baseline.results, old_model, every_repeat), _cases(results, model, every_repeat)
        if extra := [_shown(now[key], every_repeat) for key in now if key not in before]:
            added[model] = extra
        if missing := [_shown(before[key], every_repeat) for key in before if key not in now]:
            removed[old_model] = missing
        shared = [(before[key], now[key]) for key in now if key in before]
        shared_count += len(shared)
        for grader in dict.fromkeys(grade["name"] for old, _ in shared for record in old for grade in record["grades"]):
            change = _grader_change(model, old_model, grader, shared, tolerance, every_repeat,
                                    alpha if test == MCNEMAR else None)
            if change is not None:
                changes.append(change)
    return Comparison(
        path=baseline.path, tolerance=tolerance, changes=changes, added=added, removed=removed,
        paired=len(pairs), shared=shared_count, repeats_differ=_repeated(baseline.results) != _repeated(results),
        new_models=[model for model in run_models if model not in pairs],
        gone_models=[model for model in baseline.models if model not in pairs.values()],
        notes=unlike_runs(baseline.results, results), every_repeat=every_repeat, test=test, alpha=alpha)


def unlike_runs(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line for each way the two runs differ that moves every rate: who served them, what they ran on.
    Read from each file's "run" block; a file without one says nothing."""
    was, is_ = _run_block(before), _run_block(now)
    notes = []
    if isinstance(was.get("simulator"), bool) and isinstance(is_.get("simulator"), bool) and was["simulator"] != is_["simulator"]:
        served = {True: "the offline simulator", False: "a real API"}
        notes.append(f"note: the baseline was served by {served[was['simulator']]} and this run by {served[is_['simulator']]}: "
                     "the simulator's scores measure wiring, not model quality")
    if "datasets" in was and "datasets" in is_ and was["datasets"] != is_["datasets"]:
        notes.append(f"note: the dataset specs differ: the baseline ran {_specs(was['datasets'])}, "
                     f"this run {_specs(is_['datasets'])}")
    return notes


def _repeated(results: Mapping[str, Any]) -> bool:
    return any(without_repeat(record["nodeid"]) != record["nodeid"] for record in results["cases"])


def _run_block(results: Mapping[str, Any]) -> Mapping[str, Any]:
    run = results.get("run")
    return run if isinstance(run, Mapping) else {}


def _specs(datasets: Any) -> str:
    if isinstance(datasets, (list, tuple)) and all(isinstance(spec, str) for spec in datasets):
        return ", ".join(datasets) or "none"
    return json.dumps(datasets, ensure_ascii=False)


def _shown(records: Sequence[dict[str, Any]], every_repeat: bool) -> str:
    """How a case is named in a listing: its node id (less the repeat's id when repeats are one case)."""
    nodeid: str = records[0]["nodeid"]
    return without_repeat(nodeid) if every_repeat else nodeid


def _grader_change(model: str, old_model: str, grader: str,
                   shared: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
                   tolerance: float, every_repeat: bool, alpha: float | None) -> GraderChange | None:
    """One grader's pass rate before and now, on the shared cases that it graded in both runs; with `alpha`,
    a regression only when McNemar's exact test on the flipped cases finds the drop significant."""
    verdicts = [(_shown(new, every_repeat), _verdict(old, grader), _verdict(new, grader)) for old, new in shared]
    graded = [(nodeid, was, now) for nodeid, was, now in verdicts if was is not None and now is not None]
    if not graded:
        return None
    before = sum(was for _, was, _ in graded) / len(graded)
    after = sum(now for _, _, now in graded) / len(graded)
    went_failing = [nodeid for nodeid, was, now in graded if was and not now]
    went_passing = [nodeid for nodeid, was, now in graded if now and not was]
    if alpha is None:
        p_value, regressed = None, after < before - tolerance - EPSILON
    else:
        p_value = mcnemar_drop(len(went_failing), len(went_passing))
        regressed = p_value < alpha
    return GraderChange(model=model, baseline_model=old_model, grader=grader, cases=len(graded), before=before, after=after,
                        went_failing=went_failing, went_passing=went_passing, p_value=p_value, regressed=regressed)


def _cases(results: Mapping[str, Any], model: str, every_repeat: bool) -> dict[str, list[dict[str, Any]]]:
    """A model's records by their node id less the model (the same key for a renamed model), and less
    the repeat's id when the repeats of a case count as one."""
    cases: dict[str, list[dict[str, Any]]] = {}
    for record in results["cases"]:
        if (record["model"] or NO_MODEL) == model:
            key = without_param(record["nodeid"], model)
            cases.setdefault(without_repeat(key) if every_repeat else key, []).append(record)
    return cases


def _verdict(records: Sequence[Mapping[str, Any]], grader: str) -> bool | None:
    """Whether every grade of this grader passed in the records (the repeats of one case); None when
    all of them errored or none was graded by it."""
    grades = [grade["passed"] for record in records if record["error"] is None
              for grade in record["grades"] if grade["name"] == grader]
    return all(grades) if grades else None
