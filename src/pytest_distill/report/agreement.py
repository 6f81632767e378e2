"""How far to trust a judge (`--distill-judge-labels`): its verdicts against people's on the same cases.

Per grader: the share of verdicts both gave alike, and Cohen's kappa, which discounts the agreement two
raters reach by chance (a judge that passes everything agrees with people who pass 90% of the cases
90% of the time, with a kappa of 0). The labels file is read at start-up, so a bad line stops the run
before any model is called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..jsonl import DEFAULT_MAX_LINE_BYTES, SETTING, BadLine, read_jsonl
from ..ledger import Entry
from .inputs import reading
from .table import percent, some


@dataclass(frozen=True)
class Label:
    """One human verdict: this grader should (not) pass this case, on one model's output or on any."""

    case_id: str
    grader: str
    passed: bool
    model: str | None = None


def load_labels(path: Path, cap: int = DEFAULT_MAX_LINE_BYTES) -> list[Label]:
    """The labels of a JSONL file, or a usage error naming the file and the line that is wrong."""
    labels: list[Label] = []
    first: dict[tuple[str, str, str | None], int] = {}
    with reading(f"judge labels {path}"):
        for line in read_jsonl(path, cap, SETTING):
            if isinstance(line, BadLine):  # incl. nesting too deep to read and lone surrogates no report can hold
                raise ConfigError(f"judge labels {line.at(path)}")
            try:
                label = _label(line.data)
            except ValueError as exc:
                raise ConfigError(f"judge labels {path}:{line.number}: {exc}") from None
            key = (label.case_id, label.grader, label.model)
            if key in first:
                raise ConfigError(f"judge labels {path}:{line.number}: a second label for case {label.case_id!r} and "
                                  f"grader {label.grader!r} (the first is on line {first[key]})")
            first[key] = line.number
            labels.append(label)
    if not labels:
        raise ConfigError(f'judge labels {path}: no labels (one a line: {{"case_id": ..., "grader": ..., "passed": true}})')
    return labels


def _label(data: dict[str, Any]) -> Label:
    for name in ("case_id", "grader"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f'"{name}" must be a non-empty string, got {data.get(name)!r}')
    if not isinstance(data.get("passed"), bool):
        raise ValueError(f'"passed" must be true or false, got {data.get("passed")!r}')
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError(f'"model" must be a string when given, got {model!r}')
    return Label(data["case_id"], data["grader"], data["passed"], model)


@dataclass(frozen=True)
class Agreement:
    """One grader against the labels: `n` verdicts compared, how many alike, kappa, the cases apart."""

    n: int
    agreed: int
    kappa: float | None
    """None where it is undefined: nothing compared, or both sides gave one and the same verdict throughout."""
    disagreements: tuple[str, ...]

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "agreement": self.agreement, "kappa": self.kappa, "disagreements": list(self.disagreements)}


def cohen_kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' pass/fail verdicts: (observed - chance agreement) / (1 - chance)."""
    if not pairs:
        return None
    observed = sum(a == b for a, b in pairs) / len(pairs)
    first = sum(a for a, _ in pairs) / len(pairs)
    second = sum(b for _, b in pairs) / len(pairs)
    chance = first * second + (1 - first) * (1 - second)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def agreement(labels: Sequence[Label], entries: Sequence[Entry]) -> dict[str, Agreement]:
    """Per grader named in the labels: each grade it gave on a labelled case, against the label for that
    case, grader and model, else the label for the case and grader on any model: one verdict is compared
    with one label, never counted twice. Errored tests gave no verdict and are left out."""
    pairs: dict[str, list[tuple[bool, bool, str]]] = {label.grader: [] for label in labels}
    by_key = {(label.case_id, label.grader, label.model): label for label in labels}
    for entry in entries:
        if not entry.counted or entry.case_id is None:
            continue
        for grade in entry.grades:
            label = by_key.get((entry.case_id, grade.name, entry.model)) or by_key.get((entry.case_id, grade.name, None))
            if label is not None:
                pairs[grade.name].append((label.passed, grade.passed, entry.case_id))
    return {grader: Agreement(n=len(seen), agreed=sum(human == judge for human, judge, _ in seen),
                              kappa=cohen_kappa([(human, judge) for human, judge, _ in seen]),
                              disagreements=tuple(dict.fromkeys(case for human, judge, case in seen if human != judge)))
            for grader, seen in pairs.items()}


def lines(judges: Mapping[str, Agreement], path: Path) -> list[str]:
    """The summary's block: per grader, agreement, kappa and the cases where judge and people differ."""
    rows = [f"judges against people ({path}):"]
    for grader, stats in judges.items():
        if not stats.n:
            rows.append(f"  {grader}: no labelled case was graded by it in this run")
            continue
        kappa = "-" if stats.kappa is None else f"{stats.kappa:.2f}"
        rows.append(f"  {grader}: agreed on {stats.agreed} of {stats.n} ({percent(stats.agreement)}), kappa {kappa}"
                    + (f"; disagreed on {some(stats.disagreements)}" if stats.disagreements else ""))
    return rows


@dataclass(frozen=True)
class Panel:
    """Several judges of one grader (`judge=[...]`) among themselves: how often all agreed, Cohen's kappa
    of each pair, and how often each judge gave the majority's verdict."""

    n: int
    unanimous: int
    kappas: Mapping[tuple[str, str], float | None]
    with_majority: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "unanimous": self.unanimous,
                "kappa": {f"{a} / {b}": kappa for (a, b), kappa in self.kappas.items()},
                "with_majority": dict(self.with_majority)}


def panels(entries: Sequence[Entry]) -> dict[str, Panel]:
    """Per grader graded by several judges: their agreement over the grades of the counted tests."""
    votes: dict[str, list[tuple[dict[str, bool], bool]]] = {}
    for entry in entries:
        if entry.counted:
            for grade in entry.grades:
                if grade.votes:
                    votes.setdefault(grade.name, []).append((grade.votes, grade.passed))
    result = {}
    for grader, seen in votes.items():
        judges = list(dict.fromkeys(judge for cast, _ in seen for judge in cast))
        kappas = {(a, b): cohen_kappa([(cast[a], cast[b]) for cast, _ in seen if a in cast and b in cast])
                  for i, a in enumerate(judges) for b in judges[i + 1:]}
        with_majority = {judge: sum(cast[judge] == passed for cast, passed in seen if judge in cast)
                         / sum(judge in cast for cast, _ in seen) for judge in judges}
        result[grader] = Panel(len(seen), sum(len(set(cast.values())) == 1 for cast, _ in seen), kappas, with_majority)
    return result


def panel_lines(panels: Mapping[str, Panel]) -> list[str]:
    """The summary's block, beside the judges against people: per grader, how far its judges agreed."""
    rows = ["judges among themselves (judge=[...]):"] if panels else []
    for grader, panel in panels.items():
        pairs = ", ".join(f"{a} / {b} {'-' if kappa is None else f'{kappa:.2f}'}" for (a, b), kappa in panel.kappas.items())
        majority = ", ".join(f"{judge} {percent(share)}" for judge, share in panel.with_majority.items())
        rows.append(f"  {grader}: all agreed on {panel.unanimous} of {panel.n} ({percent(panel.unanimous / panel.n)}); "
                    f"kappa {pairs}; with the majority: {majority}")
    return rows
