"""The one result type of every grader, and where the grades of the running test are collected.

Helpers are plain functions (`assert factuality(out, ref)`), so they cannot take the test item as an
argument. A context variable holds the running test's scope instead (its grades, the session's judge,
the case's question): the plugin opens it around each test call, and outside pytest it is simply
absent, so the helpers work in plain Python too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from .untrusted import printable

F = TypeVar("F", bound=Callable[..., Any])
COMPLETE = "complete"
"""The `target` of a `Call` that is the model under test's `complete` (or `acomplete`)."""


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
    """A deterministic helper's arguments besides the output, so the check can be replayed on another
    output (the distillation filter grades the teacher's training answers with it); None for judges."""

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
                   threshold=data.get("threshold", ""), args=data.get("args"))

    def explain(self) -> list[str]:
        """Lines for a failing test: grader, verdict, score and passing rule on one line, the reason below
        (control characters from a judge or a dataset escaped)."""
        rule = f", passes when {self.threshold}" if self.threshold else ""
        return [printable(f"{self.name}: {'passed' if self.passed else 'FAILED'}, score {self.score:g}{rule}"),
                f"  reason: {printable(self.reason)}"]


@dataclass(frozen=True)
class Call:
    """A call made inside a test that prefetch may make ahead for the tests after it: a model-graded
    helper with its arguments, or the model under test's `complete` (`target` COMPLETE, `result` the
    future of its answer)."""

    target: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    result: Any = None


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
    listener: Callable[[Call], None] | None = None
    """Told each `Call` the test makes (prefetch learns from it); None where nobody listens."""


_scope: ContextVar[Scope | None] = ContextVar("pytest_distill_scope", default=None)
_inside: ContextVar[bool] = ContextVar("pytest_distill_inside_helper", default=False)
_muted: ContextVar[bool] = ContextVar("pytest_distill_muted", default=False)


def current() -> Scope | None:
    """The running test's scope, or None in plain Python."""
    return _scope.get()


def record(grade: Grade) -> Grade:
    """Add a grade to the running test's log (if any) and hand it back."""
    scope = _scope.get()
    if scope is not None and not _muted.get():
        scope.grades.append(grade)
    return grade


def forget(grades: list[Grade]) -> None:
    """Take these grades (the very objects) out of the running test's log, if they are in it."""
    scope = _scope.get()
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
    scope = _scope.get()
    if scope is not None:
        scope.judging[request] = (model, prompt_tokens, completion_tokens)


def record_call(call: Call) -> None:
    """Tell the running test's listener (if any) about a call it makes."""
    scope = _scope.get()
    if scope is not None and scope.listener is not None:
        scope.listener(call)


def replayable(helper: F) -> F:
    """Mark a model-graded helper: each call inside a test is told to the scope's listener, so that
    prefetch can make the same call ahead for the next tests. Told once it is over, so that what it
    taught the runtime (a judge that refuses `temperature`, an answer to ask again) serves the calls
    made ahead."""

    @functools.wraps(helper)
    def told(*args: Any, **kwargs: Any) -> Any:
        if _inside.get():  # a helper calling a helper (one call per reference): only the outer one is the test's
            return helper(*args, **kwargs)
        token = _inside.set(True)
        try:
            return helper(*args, **kwargs)
        finally:
            _inside.reset(token)
            record_call(Call(told, args, kwargs))

    return told  # type: ignore[return-value]


@contextmanager
def scoped(scope: Scope) -> Iterator[Scope]:
    """Make `scope` the current one inside the block."""
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
