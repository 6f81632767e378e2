"""The plan of a test function: the calls its tests make, in terms of the case, so that they can be
made ahead for the tests about to run (`prefetch.py` does that).

A step is one call (the model under test's `complete`, or a model-graded helper) with each argument
given by where it comes from, a `Role`: the case, a field of it, one of the test's earlier answers, a
model, or a constant. Steps are learnt from the calls of the first test of a function that made one
(`to_step`), or declared by `@pytest.mark.distill_grade` markers (`grade_markers`).
"""

from __future__ import annotations

import concurrent.futures
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .calls import COMPLETE, Call
from .models.handle import Model
from .models.types import Completion

MARKER = "distill_grade"
FIELDS = ("expected", "references", "question", "messages", "metadata", "id")
"""Case attributes a planned call may take an argument from."""



@dataclass(frozen=True)
class WholeCase:
    """The argument is the case itself."""


@dataclass(frozen=True)
class CaseField:
    """The argument is a field of the case (one of FIELDS)."""

    name: str


@dataclass(frozen=True)
class Output:
    """The argument is the test's `index`-th answer, or its text when `as_text`."""

    index: int
    as_text: bool


@dataclass(frozen=True)
class NamedModel:
    """The argument is a model (a judge), by name."""

    name: str


@dataclass(frozen=True)
class Constant:
    """The argument is the same value for every test of the function."""

    value: Any


Role = WholeCase | CaseField | Output | NamedModel | Constant
"""Where a planned argument comes from, for any test of the function."""


@dataclass(frozen=True)
class Step:
    """One planned call: `target` is a helper or COMPLETE, its arguments as roles."""

    target: Any
    args: tuple[Role, ...]
    kwargs: tuple[tuple[str, Role], ...]

    def outputs(self) -> list[int]:
        """The answers (by index) this call needs before it can be made."""
        return [role.index for role in (*self.args, *(role for _, role in self.kwargs)) if isinstance(role, Output)]

    def literal(self) -> bool:
        """Whether a constant argument is other than a number, a flag or None: a string may be a literal
        of the test or something the test made of its answer (`answer.text.strip()`); a second test
        making the same call tells which."""
        return any(isinstance(role, Constant) and not isinstance(role.value, (int, float, bool, type(None)))
                   for role in (*self.args, *(role for _, role in self.kwargs)))

    def same(self, other: Step) -> bool:
        try:
            return bool(self == other)
        except Exception:  # an argument whose == misbehaves: not the same call
            return False


@dataclass
class Plan:
    """What the tests of one function call, learnt from the first one that made a call."""

    declared: list[Step]
    steps: list[Step] = field(default_factory=list)
    learner: str | None = None
    """The item the steps are being learnt from, while it runs."""
    learned: bool = False
    stopped: bool = False
    confirmed: set[int] = field(default_factory=set)
    """Steps (by id) with a constant that a second test made too (or a marker declared): only then are
    they made ahead."""

    def __post_init__(self) -> None:
        self.confirmed.update(id(step) for step in self.declared)

    def ready(self, step: Step) -> bool:
        return step.target == COMPLETE or not step.literal() or id(step) in self.confirmed


@dataclass
class Observed:
    """The calls of the running item so far."""

    item: pytest.Item
    function: str
    case: Any
    outputs: list[Any] = field(default_factory=list)
    steps: int = 0


def answered(future: concurrent.futures.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def to_step(call: Call, case: Any, outputs: Sequence[Any]) -> Step | None:
    """The call as a step any test of the function can make, or None when it depends on something only
    this test has (or, for the model, is not `complete(case, **constants)`)."""
    answers = [future.result() if answered(future) else None for future in outputs]
    args: list[Role] = []
    kwargs: list[tuple[str, Role]] = []
    for name, value in [*((None, value) for value in call.args), *call.kwargs.items()]:
        role = role_of(value, case, answers)
        if role is None:
            return None
        if name is None:
            args.append(role)
        else:
            kwargs.append((name, role))
    step = Step(call.target, tuple(args), tuple(sorted(kwargs)))
    if call.target == COMPLETE and (step.args != (WholeCase(),) or step.outputs()):
        return None
    return step


def role_of(value: Any, case: Any, answers: Sequence[Completion | None]) -> Role | None:
    """Where an argument of this test's call came from: the very objects first, then equal texts."""
    for index, answer in enumerate(answers):
        if answer is not None and (value is answer or (isinstance(value, str) and value is answer.text)):
            return Output(index, value is not answer)
    if value is case:
        return WholeCase()
    fields = [(name, getattr(case, name, None)) for name in FIELDS]
    for name, known in fields:
        if known is not None and value is known:
            return CaseField(name)
    if isinstance(value, str):
        for index, answer in enumerate(answers):
            if answer is not None and value == answer.text:
                return Output(index, True)
        for name, known in fields:
            if isinstance(known, str) and value == known:
                return CaseField(name)
    if isinstance(value, Completion):
        return None
    if isinstance(value, Model):
        return NamedModel(value.name)
    return Constant(value)


def grade_markers(item: pytest.Item, helpers: Mapping[str, Callable[..., Any]]) -> list[Step]:
    """The item's `distill_grade` markers as planned calls on the first answer, checked against the
    helpers' signatures; `expected` is the case's reference where the helper requires it and the marker
    does not give it."""
    declared = []
    for marker in item.iter_markers(MARKER):
        where = f"{item.nodeid}: @pytest.mark.{MARKER}"
        if len(marker.args) != 1 or marker.args[0] not in helpers:
            raise pytest.UsageError(f"{where} takes one helper name, one of {', '.join(sorted(helpers))}; "
                                    f"got {marker.args!r}")
        helper = helpers[marker.args[0]]
        kwargs: dict[str, Role] = {name: Constant(value) for name, value in marker.kwargs.items()}
        parameter = inspect.signature(helper).parameters.get("expected")
        if parameter is not None and parameter.default is inspect.Parameter.empty and "expected" not in kwargs:
            kwargs["expected"] = CaseField("expected")
        try:
            inspect.signature(helper).bind("output", **kwargs)
        except TypeError as exc:
            raise pytest.UsageError(f"{where}({marker.args[0]!r}): {exc}") from None
        declared.append(Step(helper, (Output(0, False),), tuple(sorted(kwargs.items()))))
    return declared
