"""Several accepted answers: a helper given a list of references, and `any_of`, record one grade.

A check against several references passes when one of them passes. Counting every attempt would
show a case that passed as failed in the table (two of three references did not match), so the
attempts are graded unrecorded and one grade is recorded whose reason names the reference that
matched, or, when none did, the closest one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeGuard

from ..grades import Grade, forget, record, unrecorded

CLIP = 60


def several(reference: Any) -> TypeGuard[Sequence[Any]]:
    """Whether a reference argument is a list of accepted answers rather than one."""
    return isinstance(reference, (list, tuple))


def first_passing(helper: str, references: Sequence[Any], grade_one: Callable[[Any], Grade], param: str = "reference") -> Grade:
    """Grade against each reference in turn until one passes; record one grade for them all.

    `grade_one` grades against one reference; the grades it makes are not recorded. `param` names
    the helper's reference argument in `Grade.args`, which then holds the whole list.
    """
    if not references:
        raise ValueError(f"{helper}: the list of references is empty (the case has no accepted answer)")
    tried: list[Grade] = []
    with unrecorded():
        for reference in references:
            tried.append(grade_one(reference))
            if tried[-1].passed:
                break
    chosen = len(tried) - 1 if tried[-1].passed else max(range(len(tried)), key=lambda index: tried[index].score)
    grade = tried[chosen]
    which = f"reference {chosen + 1} of {len(references)} ({_clip(references[chosen])!r})"
    reason = f"{which} matched: {grade.reason}" if grade.passed else \
        f"none of {len(references)} references matched; the closest, {which}: {grade.reason}"
    args = None if grade.args is None else {**grade.args, param: list(references)}
    return record(dataclasses.replace(grade, reason=reason, args=args))


def any_of(*grades: Grade | Iterable[Grade], name: str | None = None) -> Grade:
    """Passes when any of the grades passes, and stands in for them in the reports: one grade.

    Give grades, or one generator of them (`any_of(string_check(out, ref) for ref in refs)`), which
    is consumed only up to the first grade that passes, so later checks (judge calls) are not made.
    The grades given are taken out of the test's record; the one returned is recorded instead,
    named `name`, else their name when they share one (`any_of(...)` of the names otherwise).
    """
    one = grades[0] if len(grades) == 1 else None
    source: Iterable[Any] = one if isinstance(one, Iterable) else grades
    tried: list[Grade] = []
    for grade in source:
        if not isinstance(grade, Grade):
            raise TypeError(f"any_of takes grades (what the helpers return), not {type(grade).__name__}")
        tried.append(grade)
        if grade.passed:
            break
    if not tried:
        raise ValueError("any_of needs at least one grade")
    forget(tried)
    names = list(dict.fromkeys(grade.name for grade in tried))
    if name is None:
        name = names[0] if len(names) == 1 else f"any_of({', '.join(names)})"
    best = tried[-1] if tried[-1].passed else max(tried, key=lambda grade: grade.score)
    which = f"{best.name} (check {tried.index(best) + 1} of {len(tried)} made)"
    reason = f"{which} passed: {best.reason}" if best.passed else \
        f"none of {len(tried)} checks passed; the best, {which}: {best.reason}"
    rule = best.threshold and f"any check passes ({best.threshold})"
    return record(Grade(name, best.score, best.passed, reason, rule, args=None))


def _clip(reference: Any) -> str:
    text = str(reference)
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"
