"""The one result type of every grader, and where the grades of the running test are collected.

Helpers are plain functions (`assert factuality(out, ref)`), so they cannot take the test item as an
argument. A context variable holds the running test's scope instead (its grades, the session's judge,
the case's question): the plugin opens it around each test call, and outside pytest it is simply
absent, so the helpers work in plain Python too.

A thread does not inherit context variables, so while a test runs its scope is also reachable from
any thread of the process (pytest runs one test at a time per process): a grade made in a thread the
test started counts in that test. An asyncio task copies the context when it is made, so its grades
count too. The context variable wins where both are set (prefetch grades ahead in a scope of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from .untrusted import printable


@dataclass(frozen=True)
class Grade:
    """A grader's verdict: `bool(grade)` is `passed`, so `assert grade` is the idiom."""

    name: str
    score: float
    passed: bool
    reason: str
    threshold: str = ""
    """How the score passes, in words (`>= 4 of 1-5`, `choice in A, B, C, E`); shown on failure."""
    args: dict[str, Any] | None = field(default=None, hash=False)
    """A helper's arguments besides the output (a model-graded one's with `helper`, its judges by name), so
    the check can be replayed on another output (the distillation filter grades the teacher's training
    answers with it); None for a grade made by hand or with arguments that are no JSON."""
    votes: dict[str, bool] | None = field(default=None, hash=False)
    """With several judges (`judge=[...]`): each judge's own verdict, by its name; the grade is the majority's."""

    def __post_init__(self) -> None:
        """A NaN or infinite score would pass or fail by accident and make the results file unreadable."""
        if not math.isfinite(self.score):
            raise ValueError(f"{self.name}: the score {self.score!r} is not a finite number")

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        """Short, because pytest's assertion rewriting prints it twice; `explain()` says the rest once."""
        return f"<{printable(self.name)} {'PASS' if self.passed else 'FAIL'} score={self.score:g}>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grade:
        return cls(**{key: data[key] for key in ("name", "score", "passed", "reason")},
                   threshold=data.get("threshold", ""), args=data.get("args"), votes=data.get("votes"))

    def explain(self) -> list[str]:
        """Lines for a failing test: grader, verdict, score and passing rule on one line, the reason below
        (control characters from a judge or a dataset escaped)."""
        rule = f", passes when {self.threshold}" if self.threshold else ""
        return [printable(f"{self.name}: {'passed' if self.passed else 'FAILED'}, score {self.score:g}{rule}"),
                f"  reason: {printable(self.reason)}"]


@dataclass
class Scope:
    """What helpers called inside one test may use: its grade list, the session's judge, the case's question."""

    grades: list[Grade] = field(default_factory=list)
    judge: Any = None
    question: str | None = None
    embedding_model: Any = None
    """The session's model for `embedding_similarity` (a `Model`, like `judge`)."""
    judging: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """The judge calls of the test's grading, by request: model, input and output tokens."""
    listener: Callable[[Any], None] | None = None
    """Told each `calls.Call` the test makes (prefetch learns from it); None where nobody listens."""
    transcripts: list[dict[str, Any]] | None = None
    """Each judge call's messages and raw reply (--distill-keep-transcripts); None where they are not kept."""


_scope: ContextVar[Scope | None] = ContextVar("pytest_distill_scope", default=None)


class _Running:
    """The scope of the test running in this process, for the threads it starts (see the module's docstring)."""

    scope: Scope | None = None


_RUNNING = _Running()
_muted: ContextVar[bool] = ContextVar("pytest_distill_muted", default=False)


def current() -> Scope | None:
    """The running test's scope (this context's, else the one running in this process), or None in plain Python."""
    scope = _scope.get()
    return scope if scope is not None else _RUNNING.scope


def record(grade: Grade) -> Grade:
    """Add a grade to the running test's log (if any) and hand it back."""
    scope = current()
    if scope is not None and not _muted.get():
        scope.grades.append(grade)
    return grade


def record_grade(grade: Grade) -> Grade:
    """Count the grade of your own check in the running test, like a helper's: in the summary table, the
    reports, the baseline, the gate and the training filter. Call it in the test (or a thread or task the
    test started, before the test returns); returns the grade, so `assert record_grade(...)` reads well.

    Args:
        grade: `Grade(name=..., score=..., passed=..., reason=...)`; `name` is the grader's column.

    Raises:
        TypeError: not a Grade, or a field of the wrong type.
        RuntimeError: no test is running (at import, in a fixture's setup, in plain Python).
    """
    if not isinstance(grade, Grade):
        raise TypeError(f"record_grade() takes a pytest_distill.Grade, not {type(grade).__name__}")
    problem = _field_problem(grade)
    if problem:
        raise TypeError(f"record_grade(): {problem}")
    scope = current()
    if scope is None:
        raise RuntimeError(f"record_grade({grade.name!r}) was called outside any test: a grade counts in the test "
                           "that makes it (call it in the test function, or in a thread or task it starts; the test "
                           "uses the plugin: a `case`, `model` or `judge` fixture, or a distill option or ini setting)")
    return record(grade)


def _field_problem(grade: Grade) -> str | None:
    """What is wrong with a grade made by user code, if anything: the reports read each field by its type."""
    if not isinstance(grade.name, str) or not grade.name.strip():
        return f"the name {grade.name!r} is not a grader's name (a non-empty text)"
    if not isinstance(grade.passed, bool):
        return f"{grade.name}: passed={grade.passed!r} is not True or False"
    if isinstance(grade.score, bool) or not isinstance(grade.score, (int, float)):
        return f"{grade.name}: score={grade.score!r} is not a number"
    if not isinstance(grade.reason, str):
        return f"{grade.name}: reason={grade.reason!r} is not a text"
    return None


def forget(grades: list[Grade]) -> None:
    """Take these grades (the very objects) out of the running test's log, if they are in it."""
    scope = current()
    if scope is not None:
        scope.grades[:] = [kept for kept in scope.grades if not any(kept is gone for gone in grades)]


@contextmanager
def unrecorded() -> Iterator[None]:
    """Grades made inside the block are not recorded: a helper that grades against several
    references records one grade of its own for them all."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def record_judging(request: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Note a judge call on the running test (if any), by its request: identical requests of several
    tests are one call, so the summary counts each request once."""
    scope = current()
    if scope is not None:
        scope.judging[request] = (model, prompt_tokens, completion_tokens)


def record_transcript(transcript: dict[str, Any]) -> None:
    """Keep one judge call's messages and raw reply on the running test, where transcripts are kept."""
    scope = current()
    if scope is not None and scope.transcripts is not None:
        scope.transcripts.append(transcript)


def replace_recorded(old: Grade, new: Grade) -> Grade:
    """`new` in place of `old` (the very object) in the running test's log, if `old` is there."""
    scope = current()
    if scope is not None:
        scope.grades[:] = [new if kept is old else kept for kept in scope.grades]
    return new


@contextmanager
def running(scope: Scope) -> Iterator[Scope]:
    """`scope` is the running test's for every thread of the process inside the block (the test's call)."""
    before, _RUNNING.scope = _RUNNING.scope, scope
    try:
        yield scope
    finally:
        _RUNNING.scope = before


@contextmanager
def scoped(scope: Scope) -> Iterator[Scope]:
    """Make `scope` the current one inside the block."""
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
