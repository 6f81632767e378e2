"""The calls a test makes that prefetch may make ahead for the tests after it, told as they happen.

A model-graded helper marked `@replayable` and the model under test's `complete` each tell the running
test's listener (its grading scope's `listener`, set by prefetch) the call they made, with its
arguments: the first test of a function shows what the others will ask. A replayable helper's grade
also keeps its arguments, so that the same check can be replayed on another output (the distillation
filter grades the teacher's training answers with it).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from .grades import Grade, current, replace_recorded

F = TypeVar("F", bound=Callable[..., Any])
COMPLETE = "complete"
"""The `target` of a `Call` that is the model under test's `complete` (or `acomplete`)."""

_inside: ContextVar[bool] = ContextVar("pytest_distill_inside_helper", default=False)


@dataclass(frozen=True)
class Call:
    """A call made inside a test that prefetch may make ahead for the tests after it: a model-graded
    helper with its arguments, or the model under test's `complete` (`target` COMPLETE, `result` the
    future of its answer)."""

    target: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    result: Any = None


def record_call(call: Call) -> None:
    """Tell the running test's listener (if any) about a call it makes."""
    scope = current()
    if scope is not None and scope.listener is not None:
        scope.listener(call)


def replayable(helper: F) -> F:
    """Mark a model-graded helper: each call inside a test is told to the scope's listener, so that
    prefetch can make the same call ahead for the next tests. Told once it is over, so that what it
    taught the runtime (a judge that refuses `temperature`, an answer to ask again) serves the calls
    made ahead. Its grade keeps the helper's name and arguments (`Grade.args`) where they are JSON."""

    @functools.wraps(helper)
    def told(*args: Any, **kwargs: Any) -> Any:
        if _inside.get():  # a helper calling a helper (one call per reference): only the outer one is the test's
            return helper(*args, **kwargs)
        token = _inside.set(True)
        try:
            result = helper(*args, **kwargs)
        finally:
            _inside.reset(token)
            record_call(Call(told, args, kwargs))
        if isinstance(result, Grade) and result.args is None:
            replay = _replay_args(helper, args, kwargs)
            if replay is not None:
                result = replace_recorded(result, dataclasses.replace(result, args=replay))
        return result

    return told  # type: ignore[return-value]


@functools.cache
def _signature(helper: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(helper)


def _replay_args(helper: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The helper's name and its arguments after the output, judges by name; None when they are no JSON."""
    try:
        bound = dict(_signature(helper).bind(*args, **kwargs).arguments)
    except TypeError:
        return None
    bound.pop(next(iter(_signature(helper).parameters)), None)
    judge = bound.get("judge")
    if judge is not None:
        bound["judge"] = [getattr(one, "name", one) for one in judge] if isinstance(judge, (list, tuple)) \
            else getattr(judge, "name", judge)
    replay = {"helper": helper.__name__, **bound}
    try:
        json.dumps(replay, ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    return replay
