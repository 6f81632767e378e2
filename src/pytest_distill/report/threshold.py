"""`--distill-pass-rate`: the session's exit status follows the pass rates, not single cases.

An eval suite is a measurement: one case out of two hundred failing says little, and a CI that turns red
for it teaches a team to ignore it. With a threshold the session passes when every model's pass rate
(and every grader's named in a `GRADER=RATE` rule) meets it, though cases failed; those cases stay
failures in every report (terminal, JUnit, HTML, results, Markdown). What the rates cannot judge still
fails the session: an error (the suite could not measure), a failed test that graded nothing of the
distill kind, a run stopped early (-x). The baseline and the distillation step may fail it afterwards.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..ledger import EntrySource, ModelStats, summarize
from ..settings import RateRule, Settings
from ..significance import Interval, rate_with_interval, wilson


@dataclass(frozen=True)
class RateCheck:
    """One model (and grader, or None for the model's own pass rate) against one rule."""

    model: str
    grader: str | None
    passed: int
    n: int
    interval: Interval | None
    rule: RateRule
    met: bool

    def describe(self, lower_bound: bool) -> str:
        """`gpt-4o-mini string_check 83% [74–90] < 90%` (the lower bound's `74%` compared with --distill-pass-rate-ci)."""
        what = f"{self.model} {self.grader}" if self.grader else self.model
        if not self.n:
            return f"{what}: no graded case"
        shown = rate_with_interval(self.passed, self.n)
        if lower_bound and self.interval is not None:
            shown += f" (lower bound {self.interval.low:.0%})"
        return f"{what} {shown} {'>=' if self.met else '<'} {self.rule.rate:.0%}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "grader": self.grader, "pass_rate": self.passed / self.n if self.n else None,
                "ci95": self.interval.to_list() if self.interval else None, "n": self.n, "threshold": self.rule.rate,
                "met": self.met}


@dataclass(frozen=True)
class RateVerdict:
    """Every check of the rules, and the failures the rates do not judge (errors, plain failed tests)."""

    checks: tuple[RateCheck, ...]
    lower_bound: bool
    unjudged: tuple[str, ...] = ()
    """Node ids that failed or errored outside any pass rate: they fail the session whatever the rates."""
    missing: tuple[str, ...] = field(default_factory=tuple)
    """Graders named in a rule that graded no case in this run (a typo, or a check that never ran)."""

    @property
    def met(self) -> bool:
        return all(check.met for check in self.checks) and not self.missing and bool(self.checks)

    @property
    def passes(self) -> bool:
        """Whether the session passes on this verdict: the rates met, and nothing failed beside them."""
        return self.met and not self.unjudged

    def line(self) -> str:
        """The session's last line: which model and grader met or missed the threshold, with the interval."""
        basis = "the lower bound of the 95% interval of " if self.lower_bound else ""
        missed = [check.describe(self.lower_bound) for check in self.checks if not check.met]
        missed += [f"no case was graded by {grader}" for grader in self.missing]
        if not self.checks and not self.missing:
            missed.append("no case was graded in this run")
        met = [check.describe(self.lower_bound) for check in self.checks if check.met]
        if missed:
            head = f"distill: pass rate threshold MISSED ({basis}each pass rate): " + "; ".join(missed)
            return head + (f" (met: {'; '.join(met)})" if met else "")
        line = f"distill: pass rate threshold MET ({basis}each pass rate): " + "; ".join(met)
        if self.unjudged:
            count = len(self.unjudged)
            line += (f"; but {count} test{'s' if count > 1 else ''} failed or errored outside any pass rate "
                     f"(e.g. {self.unjudged[0]}): the session fails")
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "passes": self.passes, "lower_bound": self.lower_bound,
                "checks": [check.to_dict() for check in self.checks], "missing": list(self.missing),
                "unjudged": list(self.unjudged)}


def decide(stats: Mapping[str, ModelStats], rules: Sequence[RateRule], lower_bound: bool,
           unjudged: Sequence[str] = ()) -> RateVerdict:
    """Each rule against each model (a grader's rule against each model that graded with it)."""
    checks: list[RateCheck] = []
    missing: list[str] = []
    for rule in rules:
        if rule.grader is None:
            checks += [_check(name, None, model.passed, model.counted, rule, lower_bound) for name, model in stats.items()]
            continue
        graded = [(name, model.graders[rule.grader]) for name, model in stats.items() if rule.grader in model.graders]
        if not graded:
            missing.append(rule.grader)
        checks += [_check(name, rule.grader, grader.passed, grader.n, rule, lower_bound) for name, grader in graded]
    return RateVerdict(tuple(checks), lower_bound, tuple(unjudged), tuple(missing))


def _check(model: str, grader: str | None, passed: int, n: int, rule: RateRule, lower_bound: bool) -> RateCheck:
    interval = wilson(passed, n)
    value = (interval.low if lower_bound else passed / n) if interval is not None else None
    # a rate is a ratio of small counts: 9/10 meets 0.9 though 9/10 is 0.8999... in floating point
    return RateCheck(model, grader, passed, n, interval, rule, value is not None and value >= rule.rate - 1e-9)


class PassRateCheck:
    """On the controller, with --distill-pass-rate: sets the exit status before the other end-of-run
    work (the distillation step and the baseline may still fail the session) and says why last."""

    def __init__(self, settings: Settings, recorder: EntrySource) -> None:
        self.settings, self.recorder = settings, recorder
        self.failures: dict[str, None] = {}
        """Node ids of every failed report (any phase), in order."""
        self.verdict: RateVerdict | None = None
        self.stopped = False
        """The run stopped early (-x, --maxfail): its rates are of the cases that ran, and judge nothing."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failures[report.nodeid] = None

    def unjudged(self) -> list[str]:
        """The failed tests that no pass rate counts as a failure: errors, and failures without an entry."""
        judged = {entry.nodeid for entry in self.recorder.entries if entry.outcome == "failed"}
        return [nodeid for nodeid in self.failures if nodeid not in judged]

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Decided before every other end-of-run step, so each can only fail the session further."""
        self.stopped = bool(session.shouldfail or session.shouldstop)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not self.stopped:
            self.verdict = decide(summarize([e for e in self.recorder.entries if e.outcome != "skipped"]),
                                  self.settings.pass_rate, self.settings.pass_rate_ci, self.unjudged())
            session.exitstatus = pytest.ExitCode.OK if self.verdict.passes else pytest.ExitCode.TESTS_FAILED
        return (yield)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The verdict after pytest's own last line (whose counts still show each failed case)."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if self.verdict is not None:
            reporter.write_line(self.verdict.line(), bold=True, red=not self.verdict.passes, green=self.verdict.passes)
        elif self.stopped:
            reporter.write_line("distill: pass rate threshold not judged: the run stopped early, so its rates are of "
                                "the cases that ran", bold=True, red=True)
