"""Distinct names for things whose own names may clash: test ids of cases and models, generated file names.

The names come from data (case ids, model names, eval names), so a file may hold any number of equal
ones: each base remembers the next number to try, and telling 10,000 equal names apart is linear, not
10,000 tries for the last one.
"""

from __future__ import annotations

from collections.abc import Iterable


def distinct(bases: Iterable[str], sep: str) -> list[str]:
    """The bases in order, each later equal one told apart by `{sep}2`, `{sep}3`, ..."""
    taken: set[str] = set()
    following: dict[str, int] = {}
    names = []
    for base in bases:
        count = following.get(base, 1)
        name = base if count == 1 else f"{base}{sep}{count}"
        while name in taken:
            count += 1
            name = f"{base}{sep}{count}"
        following[base] = count + 1
        taken.add(name)
        names.append(name)
    return names
