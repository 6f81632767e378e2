"""How sure a pass rate is, and whether two runs of the same cases differ by more than chance.

Suites are small (tens to hundreds of cases), so both are exact or near-exact small-sample methods:
the Wilson score interval for one rate (it stays inside [0, 1] and is honest at 0/n and n/n, where
the normal approximation claims certainty), and McNemar's exact test for paired verdicts (the same
cases before and after): only the cases that flipped carry information, and under "nothing changed"
each flip is as likely to go one way as the other, a fair coin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""


@dataclass(frozen=True)
class Interval:
    """A 95% Wilson interval of a pass rate: `low` and `high` between 0 and 1."""

    low: float
    high: float

    def to_list(self) -> list[float]:
        """The results file's `"ci95": [LOW, HIGH]`, rounded to four places (a rate of hundreds of cases)."""
        return [round(self.low, 4), round(self.high, 4)]

    def shown(self) -> str:
        """`[71–91]`: whole percents, the bounds rounded outwards so the interval shown holds the true one."""
        return f"[{math.floor(self.low * 100 + 1e-9):.0f}–{math.ceil(self.high * 100 - 1e-9):.0f}]"


def wilson(passed: int, n: int) -> Interval | None:
    """The 95% Wilson score interval of `passed` out of `n`, or None for no case."""
    if n <= 0:
        return None
    rate, z2 = passed / n, Z95 * Z95
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def rate_with_interval(passed: int, n: int) -> str:
    """`83% [71–91]`, or `-` without a case: how every pass rate is shown."""
    interval = wilson(passed, n)
    return "-" if interval is None else f"{passed / n:.0%} {interval.shown()}"


def mcnemar_drop(worse: int, better: int) -> float:
    """The one-sided exact McNemar p-value that the later run is worse: the chance, were each flipped
    case a fair coin, that at least `worse` of the `worse + better` flips went from pass to fail.

    One-sided because only a drop fails a baseline (or only a better teacher opens the gate): a
    two-sided test would spend half of alpha on improvements nobody acts on. 1.0 when nothing flipped."""
    flips = worse + better
    if flips == 0:
        return 1.0
    # in logarithms: the terms of a suite with thousands of flips overflow a float, and stay linear in time
    log_total = math.lgamma(flips + 1) - flips * math.log(2)
    return min(1.0, math.fsum(math.exp(log_total - math.lgamma(k + 1) - math.lgamma(flips - k + 1))
                              for k in range(worse, flips + 1)))
