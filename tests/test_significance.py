"""The numbers a CI verdict rests on, against values computed by hand (not by the code under test)."""

from __future__ import annotations

import pytest

from pytest_distill.significance import mcnemar_drop, rate_with_interval, wilson


# Wilson: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.96.
# 0/10: centre 0.19207/1.38415 = 0.13877, half 1.96·0.09800/1.38415 = 0.13877 -> [0, 0.2775]
# 10/10: the mirror image -> [0.7225, 1]
# 5/10: centre 0.5, half 1.96·sqrt(0.025 + 0.009604)/1.38415 = 0.2634 -> [0.2366, 0.7634]
# 83/100: centre 0.849207/1.038415 = 0.81779, half 1.96·sqrt(0.001411 + 0.000096)/1.038415 = 0.07327 -> [0.7445, 0.8911]
@pytest.mark.parametrize("passed, n, low, high, shown", [
    (0, 10, 0.0, 0.2775, "0% [0–28]"),
    (10, 10, 0.7225, 1.0, "100% [72–100]"),
    (5, 10, 0.2366, 0.7634, "50% [23–77]"),
    (83, 100, 0.7445, 0.8911, "83% [74–90]"),
])
def test_the_wilson_interval_is_the_hand_computed_one_and_is_shown_rounded_outwards(
        passed: int, n: int, low: float, high: float, shown: str) -> None:
    interval = wilson(passed, n)
    assert interval is not None
    assert interval.to_list() == [low, high]
    assert rate_with_interval(passed, n) == shown


def test_no_case_has_no_interval() -> None:
    assert wilson(0, 0) is None and rate_with_interval(0, 0) == "-"


# One-sided exact McNemar: P(X >= worse) for X ~ Binomial(worse + better, 1/2).
# 5 went failing, none passing: 1/2^5 = 0.03125. 6 and 1: (C(7,6) + C(7,7))/2^7 = 8/128 = 0.0625.
# 9 and 1: (10 + 1)/1024 = 0.0107421875. 3 and 0: 1/8. 2 and 2: (6 + 4 + 1)/16 = 0.6875.
@pytest.mark.parametrize("worse, better, p", [
    (5, 0, 0.03125), (6, 1, 0.0625), (9, 1, 0.0107421875), (3, 0, 0.125), (2, 2, 0.6875), (0, 4, 1.0), (0, 0, 1.0),
])
def test_the_exact_mcnemar_p_value_of_a_drop_is_the_hand_computed_binomial_tail(worse: int, better: int, p: float) -> None:
    assert mcnemar_drop(worse, better) == pytest.approx(p, rel=1e-12)


def test_thousands_of_flips_give_a_p_value_without_overflow() -> None:
    # 5,000 flips split evenly: the upper tail from the middle is a little over one half
    assert 0.5 < mcnemar_drop(2500, 2500) < 0.51
