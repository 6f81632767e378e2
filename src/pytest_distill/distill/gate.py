"""The distillation gate: a pure decision over three measured values and their three thresholds.

Teacher pass rate >= teacher-min (the teacher is worth copying), teacher minus student >= gap-min
(copying it would change something), valid training examples >= min-examples (there is enough to
copy). Every value is kept, met or not, so the summary can always say why.

With `--distill-gate-test mcnemar` the second check is McNemar's exact test instead of gap-min: on
the cases both models ran, the teacher must pass significantly more of those they disagree on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..ledger import ModelStats, Repeats
from ..significance import mcnemar_drop


@dataclass(frozen=True)
class Thresholds:
    teacher_min: float
    gap_min: float
    min_examples: int
    alpha: float | None = None
    """With --distill-gate-test mcnemar: the teacher must beat the student significantly at this level."""


@dataclass(frozen=True)
class Measure:
    """One of the three checks: what was measured, against what, and whether it holds."""

    name: str
    value: float | int | None
    threshold: float | int
    met: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "threshold": self.threshold, "met": self.met, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: met when all three measures hold; `errors` are the cases counted in no rate."""

    teacher: str
    student: str
    measures: tuple[Measure, Measure, Measure]
    errors: Mapping[str, int]

    @property
    def met(self) -> bool:
        return all(measure.met for measure in self.measures)

    @property
    def reasons(self) -> list[str]:
        """Why the gate is not met (empty when it is)."""
        return [measure.reason for measure in self.measures if not measure.met]

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "teacher": self.teacher, "student": self.student,
                **{measure.name: measure.to_dict() for measure in self.measures},
                "errors": dict(self.errors), "reasons": self.reasons}

    def lines(self) -> list[str]:
        """The gate block of the terminal summary: the three values against the three thresholds."""
        rows = [f"distillation gate: {'MET' if self.met else 'NOT MET'}"]
        for measure in self.measures:
            rows.append(f"  [{'x' if measure.met else ' '}] {measure.reason}")
        errored = {model: count for model, count in self.errors.items() if count}
        if errored:
            rows.append("  errored cases, counted in no rate: " + ", ".join(f"{m} {n}" for m, n in errored.items()))
        return rows


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def decide(stats: Mapping[str, ModelStats], teacher: str, student: str, examples: int,
           thresholds: Thresholds, examples_note: str = "", repeats: Mapping[str, Repeats] | None = None,
           flips: tuple[int, int] = (0, 0)) -> Decision:
    """Apply the gate to the run's per-model stats and the number of valid training examples.

    With `repeats` (--distill-gate-metric pass^k) a model's rate is its pass^N, so one lucky repeat passes nothing.
    `flips`: the shared cases only the teacher passed, and only the student (McNemar's test, with `thresholds.alpha`)."""
    teacher_rate, metric = _model_rate(stats, repeats, teacher)
    student_rate, _ = _model_rate(stats, repeats, student)
    gap = None if teacher_rate is None or student_rate is None else round(teacher_rate - student_rate, 10)

    teacher_ok = teacher_rate is not None and teacher_rate >= thresholds.teacher_min
    teacher_reason = (f"teacher {teacher} {metric} {_rate(teacher_rate)} >= {_rate(thresholds.teacher_min)}" if teacher_ok
                      else f"teacher {teacher} {metric} {_rate(teacher_rate)} is below {_rate(thresholds.teacher_min)}"
                      if teacher_rate is not None else f"teacher {teacher} has no graded case in this run")
    gap_ok = gap is not None and gap >= thresholds.gap_min
    gap_reason = (f"gap teacher - student {student} {gap:+.0%} >= {_rate(thresholds.gap_min)}" if gap_ok
                  else f"gap teacher - student {student} {gap:+.0%} is below {_rate(thresholds.gap_min)}"
                  if gap is not None else f"no gap: student {student} has no graded case in this run"
                  if teacher_rate is not None else "no gap: the teacher has no graded case in this run")
    if thresholds.alpha is not None and gap is not None:
        gap_ok, gap_reason = _significant(student, flips, thresholds.alpha)
    examples_ok = examples >= thresholds.min_examples
    note = f" ({examples_note})" if examples_note else ""
    examples_reason = (f"{examples} valid training examples >= {thresholds.min_examples}{note}" if examples_ok
                       else f"{examples} valid training examples, {thresholds.min_examples - examples} short of "
                            f"{thresholds.min_examples}{note}")
    errors = {model: s.errors for model, s in stats.items() if model in (teacher, student)}
    return Decision(teacher, student, (
        Measure("teacher_pass_rate", teacher_rate, thresholds.teacher_min, teacher_ok, teacher_reason),
        Measure("gap", gap, thresholds.gap_min if thresholds.alpha is None else thresholds.alpha, gap_ok, gap_reason),
        Measure("examples", examples, thresholds.min_examples, examples_ok, examples_reason),
    ), errors)


def _significant(student: str, flips: tuple[int, int], alpha: float) -> tuple[bool, str]:
    """Whether the teacher beats the student by McNemar's exact test on the cases they disagree on."""
    teacher_only, student_only = flips
    p_value = mcnemar_drop(teacher_only, student_only)
    said = (f"teacher better than student {student} on the cases they disagree on ({teacher_only} only the teacher "
            f"passed, {student_only} only the student): p={p_value:.3g}")
    if p_value < alpha:
        return True, f"{said} < {alpha:g}"
    return False, f"{said}, not significant at {alpha:g}"


def _model_rate(stats: Mapping[str, ModelStats], repeats: Mapping[str, Repeats] | None, model: str) -> tuple[float | None, str]:
    """A model's rate for the gate and its name: pass^N where asked for and repeated, else the pass rate."""
    repeated = (repeats or {}).get(model)
    if repeated is not None:
        return repeated.pass_all, f"pass^{repeated.n}"
    model_stats = stats.get(model)
    return (model_stats.pass_rate if model_stats else None), "pass rate"
