"""`--distill-balance KEY`: how the values of KEY spread over the training and the test data, and where
each model passes.

Skewed production traffic under-represents rare cases, and a student trained on it fails exactly there.
So the summary puts the training split's counts beside the test split's (or, with
`--distill-balance-against SPEC`, another dataset's), flags the values under 1% of the training data
(rare) and those the test side has but training never saw (unseen), and gives every model's pass rate
per value. Values come from untrusted data: they are only counted and shown escaped, never obeyed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets import BrokenCase, Case
from ..ledger import Entry
from ..split import value_of

RARE = 0.01
"""A value under this share of the training data is rare."""
TRAIN, TEST, AGAINST = "train", "test", "against"


def key_of(messages: Any, metadata: Any, key: str) -> str:
    """A case's value for KEY (a metadata key, or `length`), as the split command reads a line."""
    return value_of({"messages": messages if isinstance(messages, list) else [],
                     "metadata": metadata if isinstance(metadata, dict) else {}}, key)


def case_values(cases: Iterable[Case | BrokenCase], key: str) -> Counter[str]:
    """How many cases have each value (a broken case has none to count)."""
    return Counter(key_of(case.messages, case.metadata, key) for case in cases if isinstance(case, Case))


@dataclass
class Balance:
    """The distribution of one key: counts per side and pass rates per value and model."""

    key: str
    train: Counter[str]
    test: Counter[str]
    against: Counter[str] | None = None
    """Another dataset's counts (--distill-balance-against), compared with train instead of the test split."""
    against_spec: str | None = None
    rates: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    """{value: {model: (passed, counted)}}."""
    models: tuple[str, ...] = ()

    @property
    def other(self) -> Counter[str]:
        """The side train is compared with: the other dataset, or the test split."""
        return self.against if self.against is not None else self.test

    def values(self) -> list[str]:
        """Every value seen on any side: the most common in training first, then by name."""
        seen = set(self.train) | set(self.test) | set(self.other)
        return sorted(seen, key=lambda value: (-self.train[value], -self.other[value], value))

    def rare(self, value: str) -> bool:
        total = sum(self.train.values())
        return bool(total) and 0 < self.train[value] < RARE * total

    def unseen(self, value: str) -> bool:
        return self.other[value] > 0 and self.train[value] == 0

    def rate(self, value: str, model: str) -> float | None:
        passed, counted = self.rates.get(value, {}).get(model, (0, 0))
        return passed / counted if counted else None

    def flags(self, value: str) -> list[str]:
        return [name for name, on in (("rare", self.rare(value)), ("unseen", self.unseen(value))) if on]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """`{VALUE: {"train": n, "test": n, ["against": n,] MODEL: rate, ["rare": true,] ["unseen": true]}}`."""
        out: dict[str, dict[str, Any]] = {}
        for value in self.values():
            row: dict[str, Any] = {TRAIN: self.train[value], TEST: self.test[value]}
            if self.against is not None:
                row[AGAINST] = self.against[value]
            row.update({model: rate for model in self.models if (rate := self.rate(value, model)) is not None})
            row.update({flag: True for flag in self.flags(value)})
            out[value] = row
        return out

    def header(self) -> list[str]:
        other = [f"against {self.against_spec}"] if self.against is not None else []
        return [self.key, TRAIN, TEST, *other, *self.models, ""]

    def rows(self) -> list[list[str]]:
        """The table's rows: counts with their share of the side, a rate per model, the flags."""
        rows = []
        for value in self.values():
            counts = [self.train, self.test, *([self.against] if self.against is not None else [])]
            rates = [self.rate(value, model) for model in self.models]
            rows.append([value, *(_count(side, value) for side in counts),
                         *("-" if rate is None else f"{rate:.0%}" for rate in rates), ", ".join(self.flags(value))])
        return rows

    def lines(self) -> list[str]:
        """What the summary says below the table: the rare and unseen values, and each model's weakest."""
        rare = [value for value in self.values() if self.rare(value)]
        unseen = [value for value in self.values() if self.unseen(value)]
        side = f"{self.against_spec}" if self.against is not None else "the test split"
        said = []
        if rare:
            said.append(f"rare in training (< {RARE:.0%} of it): {', '.join(rare)}")
        if unseen:
            said.append(f"in {side} but never in training (unseen): {', '.join(unseen)}")
        for model in self.models:
            known = [(rate, value) for value in self.values() if (rate := self.rate(value, model)) is not None]
            if len(known) > 1:
                rate, value = min(known)
                said.append(f"{model} is weakest on {self.key}={value} ({rate:.0%})")
        return said


def _count(side: Counter[str], value: str) -> str:
    total = sum(side.values())
    return f"{side[value]} ({side[value] / total:.0%})" if total else "0"


def measure(key: str, train: Iterable[Case | BrokenCase], entries: Sequence[Entry], models: Sequence[str],
            train_spec: str, against: Iterable[Case | BrokenCase] | None = None, against_spec: str | None = None) -> Balance:
    """The balance of KEY: the training cases, and the cases the run tested (each case once, whatever
    the models and repeats) with every model's pass rate per value. A test of the training data itself
    (no model under test, on the training spec) is no test case."""
    tested = [entry for entry in entries if entry.model is not None and entry.dataset != train_spec]
    cases: dict[tuple[str | None, str], str] = {}
    rates: dict[str, dict[str, tuple[int, int]]] = {}
    for entry in tested:
        value = key_of(entry.input, entry.metadata, key)
        cases[(entry.dataset, entry.case_id or entry.nodeid)] = value
        if entry.counted and entry.model is not None:
            passed, counted = rates.setdefault(value, {}).get(entry.model, (0, 0))
            rates[value][entry.model] = (passed + entry.passed, counted + 1)
    seen = [model for model in models if any(model in by_model for by_model in rates.values())]
    return Balance(key, case_values(train, key), Counter(cases.values()),
                   case_values(against, key) if against is not None else None, against_spec, rates, tuple(seen))
