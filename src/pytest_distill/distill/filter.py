"""`--distill-filter`: grade the teacher's training answers with the suite's own deterministic checks.

The suite's tests record each deterministic grade with the arguments that made it (`Grade.args`, which
name the helper when the grade has a name of its own).
A check whose arguments are the same for every case of a test (`valid_json`, `matches_schema` with
one schema, `string_check` against a fixed string) judges any answer, so it is replayed on each
training answer. A check against the case's own reference cannot judge a training answer (it would
compare the answer with itself): it is skipped and the summary says so.

With --distill-repeat, a test over the training spec itself (its dataset spec written as in
--distill-train) evaluates the training data: the examples whose teacher answer passed in some repeats
and failed in others are dropped too, since a verdict that flips says the answer is borderline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..graders.deterministic import matches_schema, string_check, valid_json, valid_xml
from ..grades import Grade, Scope, scoped
from ..ledger import NO_MODEL, Entry, verdict_changes

REPLAY: dict[str, Callable[[str, dict[str, Any]], Grade]] = {
    "string_check": lambda output, args: string_check(output, args["reference"], args["operation"]),
    "valid_json": lambda output, args: valid_json(output),
    "valid_xml": lambda output, args: valid_xml(output),
    "matches_schema": lambda output, args: matches_schema(output, args["schema"]),
}
CASE_BOUND = "reference"
"""An argument that usually comes from the case: a check with it is general only when it stays fixed."""


@dataclass(frozen=True)
class Check:
    name: str
    args: dict[str, Any]

    def problem(self, answer: str) -> str | None:
        """Why the answer fails this check, or None; in a scope of its own, so no test records it."""
        with scoped(Scope()):
            grade = REPLAY[self.name](answer, self.args)
        return None if grade.passed else f"{self.name}: {grade.reason}"


@dataclass(frozen=True)
class SuiteChecks:
    """The replayable checks of the suite, and those left out because they follow the case."""

    checks: tuple[Check, ...]
    skipped: tuple[str, ...]

    def problems(self, answer: str) -> list[str]:
        return [problem for check in self.checks if (problem := check.problem(answer))]

    def describe(self) -> str:
        used = ", ".join(dict.fromkeys(check.name for check in self.checks)) or "none"
        text = f"the suite's deterministic checks: {used}"
        if self.skipped:
            text += f"; not replayable (their arguments follow the case): {', '.join(self.skipped)}"
        return text


def suite_checks(entries: Iterable[Entry]) -> SuiteChecks:
    """The deterministic checks the suite made, grouped by test function, general ones kept."""
    seen: dict[tuple[str, str], tuple[set[str], set[str | None]]] = {}
    for entry in entries:
        function = entry.nodeid.split("[", 1)[0]
        for grade in entry.grades:
            helper = None if grade.args is None else grade.args.get("helper", grade.name)
            if helper not in REPLAY:
                continue
            args, cases = seen.setdefault((function, helper), (set(), set()))
            args.add(json.dumps(grade.args, sort_keys=True, ensure_ascii=False))
            cases.add(entry.case_id)
    checks: dict[tuple[str, str], Check] = {}
    skipped: list[str] = []
    for (function, name), (args, cases) in seen.items():
        first = next(iter(args))
        if len(args) == 1 and (CASE_BOUND not in json.loads(first) or len(cases) > 1):
            checks.setdefault((name, first), Check(name, json.loads(first)))
        else:
            skipped.append(f"{name} in {function.rsplit('::', 1)[-1]}")
    return SuiteChecks(tuple(checks.values()), tuple(skipped))


def evaluates_training(entry: Entry, train_spec: str) -> bool:
    """Whether the test graded the training data itself: a case of the --distill-train spec, without a
    model under test (the teacher's answer, through the `teacher` fixture). Such a case is no test case:
    no model is measured on it, so training on it leaks nothing."""
    return entry.model is None and entry.dataset == train_spec


def flipped_answers(entries: Sequence[Entry], train_spec: str) -> tuple[str, ...]:
    """The training examples (by case id) whose teacher answer's verdict changed between repeats."""
    repeats = verdict_changes([entry for entry in entries if evaluates_training(entry, train_spec)]).get(NO_MODEL)
    return repeats.flaky if repeats else ()
