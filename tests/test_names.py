"""names.distinct: the one way equal names from data (case ids, model names, eval names) are told apart."""

from __future__ import annotations

from pytest_distill.names import distinct


def test_later_equal_names_are_numbered_from_two() -> None:
    assert distinct(["a", "b", "a", "a", "b"], "-") == ["a", "b", "a-2", "a-3", "b-2"]


def test_a_number_a_name_already_carries_is_skipped() -> None:
    assert distinct(["a", "a-2", "a", "a"], "-") == ["a", "a-2", "a-3", "a-4"]
    assert distinct(["test_x", "test_x", "test_x_2"], "_") == ["test_x", "test_x_2", "test_x_2_2"]


class CountingSet(set[str]):
    """A set that counts the membership tests made on it."""

    asked = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.asked += 1
        return super().__contains__(item)


def test_many_equal_names_take_one_look_each(monkeypatch) -> None:
    """10,000 equal names: one membership test each, not one per name told apart before (quadratic)."""
    import builtins

    import pytest_distill.names as names

    monkeypatch.setattr(names, "set", CountingSet, raising=False)
    assert builtins.set is not CountingSet
    CountingSet.asked = 0
    result = distinct(["same"] * 10_000, "-")
    assert result[0] == "same" and result[-1] == "same-10000" and len(set(result)) == 10_000
    assert CountingSet.asked == 10_000
