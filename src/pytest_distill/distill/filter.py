"""`--distill-filter`: grade the teacher's training answers with the suite's own checks.

The suite's tests record each deterministic grade with the arguments that made it (`Grade.args`, which
name the helper when the grade has a name of its own).
A check whose arguments are the same for every case of a test (`valid_json`, `matches_schema` with
one schema, `string_check` against a fixed string) judges any answer, so it is replayed on each
training answer. A check against the case's own reference cannot judge a training answer (it would
compare the answer with itself): it is skipped and the summary says so. `--distill-filter judged` replays
the suite's model-graded checks the same way (the same helper, prompt, threshold and judge; the question
is the training example's own), through the session's runtime, so `--distill-cache` makes a re-run free.
`--distill-repair N` re-asks the teacher, at most N times, with its failing answer and the reasons, and
keeps the first answer that passes every check.

With --distill-repeat, a test over the training spec itself (its dataset spec written as in
--distill-train) evaluates the training data: the examples whose teacher answer passed in some repeats
and failed in others are dropped too, since a verdict that flips says the answer is borderline.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets import content_text
from ..errors import DistillError
from ..graders.deterministic import matches_schema, string_check, valid_json, valid_xml
from ..graders.judged import criteria_match, custom_prompt, factuality, semantic_similarity, sentiment, text_quality
from ..grades import Grade, Scope, scoped
from ..ledger import NO_MODEL, Entry, verdict_changes
from ..models.handle import Model
from ..models.types import ModelError
from .training import Example

REPLAY: dict[str, Callable[[str, dict[str, Any]], Grade]] = {
    "string_check": lambda output, args: string_check(output, args["reference"], args["operation"]),
    "valid_json": lambda output, args: valid_json(output),
    "valid_xml": lambda output, args: valid_xml(output),
    "matches_schema": lambda output, args: matches_schema(output, args["schema"]),
}
JUDGED: dict[str, Callable[..., Grade]] = {helper.__name__: helper for helper in (
    factuality, semantic_similarity, sentiment, criteria_match, text_quality, custom_prompt)}
"""The model-graded helpers `--distill-filter judged` replays, called with their recorded arguments."""
CASE_BOUND = frozenset({"reference", "expected", "question"})
"""Arguments that usually come from the case: a check with one is general only when it stays fixed."""
REPAIR = ("Your answer above did not pass this check:\n{reasons}\nWrite your answer to the previous message again so "
          "that it passes. Reply with the new answer only.")


@dataclass(frozen=True)
class Check:
    name: str
    args: dict[str, Any]

    @property
    def judged(self) -> bool:
        return self.name in JUDGED

    def problem(self, answer: str, scope: Scope | None = None) -> str | None:
        """Why the answer fails this check, or None; in a scope of its own (the judge's and the example's
        question, for a judged check), so no test records it. A judge that gives no verdict fails it."""
        with scoped(scope or Scope()):
            try:
                grade = REPLAY[self.name](answer, self.args) if self.name in REPLAY else JUDGED[self.name](
                    answer, **{key: value for key, value in self.args.items() if key != "helper"})
            except (DistillError, ModelError) as exc:
                return f"{self.name}: no verdict: {exc}"
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
        judged = any(check.judged for check in self.checks)
        text = f"the suite's {'deterministic and model-graded' if judged else 'deterministic'} checks: {used}"
        if self.skipped:
            text += f"; not replayable (their arguments follow the case): {', '.join(self.skipped)}"
        return text


def suite_checks(entries: Iterable[Entry], judged: bool = False) -> SuiteChecks:
    """The deterministic checks the suite made (and, `judged`, its model-graded ones), grouped by test
    function, general ones kept."""
    replayed: set[str | None] = {*REPLAY, *(JUDGED if judged else ())}
    seen: dict[tuple[str, str], tuple[set[str], set[str | None]]] = {}
    for entry in entries:
        function = entry.nodeid.split("[", 1)[0]
        for grade in entry.grades:
            helper = None if grade.args is None else grade.args.get("helper", grade.name)
            if helper not in replayed or not isinstance(helper, str):
                continue
            args, cases = seen.setdefault((function, helper), (set(), set()))
            args.add(json.dumps(grade.args, sort_keys=True, ensure_ascii=False))
            cases.add(entry.case_id)
    checks: dict[tuple[str, str], Check] = {}
    skipped: list[str] = []
    for (function, name), (args, cases) in seen.items():
        first = next(iter(args))
        if len(args) == 1 and (not CASE_BOUND & json.loads(first).keys() or len(cases) > 1):
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


@dataclass
class Vetting:
    """The filter at work on one training set: each example's answer checked (and, with repairs, asked
    again of the teacher), with what it cost and how many each check let through."""

    checks: SuiteChecks
    judge: Model | None = None
    """The session's judge, for the model-graded checks."""
    teacher: Model | None = None
    repairs: int = 0
    passed: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    judging: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    asked: list[tuple[int, int]] = field(default_factory=list)
    """Each repair call's input and output tokens."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """repaired, kept (as they were), dropped."""

    def problems(self, messages: Sequence[dict[str, Any]], answer: str, first: bool) -> list[str]:
        question = next((content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), None)
        problems = []
        for check in self.checks.checks:
            problem = check.problem(answer, Scope(judge=self.judge, question=question, judging=self.judging))
            if first:
                self.seen[check.name] += 1
                self.passed[check.name] += problem is None
            if problem:
                problems.append(problem)
        return problems

    def vet(self, example: Example) -> Example | str:
        """The example to train on (its answer repaired if need be), or why it is left out."""
        asked, answer = example.messages[:-1], example.answer
        for attempt in range(self.repairs + 1):
            problems = self.problems(asked, answer, first=not attempt)
            if not problems:
                self.outcomes["repaired" if attempt else "kept"] += 1
                return example if not attempt else Example(example.id, [*asked, {"role": "assistant", "content": answer}])
            if attempt == self.repairs or self.teacher is None:
                break
            try:
                completion = self.teacher.complete([*asked, {"role": "assistant", "content": answer},
                                                    {"role": "user", "content": REPAIR.format(reasons="\n".join(problems))}])
            except ModelError as exc:
                problems.append(f"the teacher could not be asked again: {exc}")
                break
            self.asked.append((completion.usage.prompt_tokens, completion.usage.completion_tokens))
            answer = completion.text
        self.outcomes["dropped"] += 1
        tried = f" (after {self.repairs} repairs)" if self.repairs and self.teacher is not None else ""
        return problems[0] + tried

    def lines(self) -> list[str]:
        """Per check, how many answers it let through; the judge's and the repairs' cost."""
        if not self.seen:
            return []
        rows = ["  kept per check: " + ", ".join(f"{name} {self.passed[name]} of {self.seen[name]}" for name in self.seen)]
        if self.judging:
            tokens = sum(i + o for _, i, o in self.judging.values())
            rows.append(f"  judging the training answers: {len(self.judging)} judge calls, {tokens:,} tokens")
        if self.repairs:
            tokens = sum(i + o for i, o in self.asked)
            rows.append(f"  repair (up to {self.repairs} tries): {self.outcomes['repaired']} repaired, "
                        f"{self.outcomes['kept']} kept as they were, {self.outcomes['dropped']} dropped; "
                        f"{len(self.asked)} teacher calls, {tokens:,} tokens")
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"checks": {name: {"kept": self.passed[name], "of": self.seen[name]} for name in self.seen},
                "judge_calls": len(self.judging), "judge_tokens": sum(i + o for _, i, o in self.judging.values()),
                "repairs": self.repairs, "repaired": self.outcomes["repaired"], "kept": self.outcomes["kept"],
                "dropped": self.outcomes["dropped"], "repair_calls": len(self.asked),
                "repair_tokens": sum(i + o for i, o in self.asked)}
