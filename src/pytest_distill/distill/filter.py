"""`--distill-filter`: grade the teacher's training answers with the suite's own deterministic checks.

The suite's tests record each deterministic grade with the arguments that made it (`Grade.args`).
A check whose arguments are the same for every case of a test (`valid_json`, `matches_schema` with
one schema, `string_check` against a fixed string) judges any answer, so it is replayed on each
training answer. A check against the case's own reference cannot judge a training answer (it would
compare the answer with itself): it is skipped and the summary says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..grades import Grade, Scope, scoped
from ..graders.deterministic import matches_schema, string_check, valid_json, valid_xml
from ..ledger import Entry

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
            if grade.args is None or grade.name not in REPLAY:
                continue
            args, cases = seen.setdefault((function, grade.name), (set(), set()))
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
