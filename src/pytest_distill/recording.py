"""What each test leaves behind: its entry (case, model, output, grades, judging, outcome).

An entry is made on the test's item, filled while the test runs, and travels on the teardown report's
user properties, so that under xdist it reaches the controller, which collects them. Environment
failures (network, dataset, judge) are marked as errors here, apart from the model's failures.

pytest's own reporters call a failed report an error only when it is not the call's: JUnit writes
`<error>` for `when != "call"` and pytest-html counts `when in ("setup", "teardown")` as Errors. So a
call that failed for an environment reason is reported as a failed setup (the test could not get
what it needed), on the worker that ran it: the terminal, JUnit, pytest-html and xdist's controller
then all see one error, and the results file records it as one.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import AbstractContextManager

import pytest

from . import grades
from .datasets import DatasetError
from .graders.judged import JudgeError
from .graders.similarity import MetricUnavailable
from .ledger import PROPERTY, Entry, entry_of
from .models.types import ModelError, shorten
from .settings import item_params

ENTRY = pytest.StashKey[Entry]()
TEST_ERRORS = (ModelError, DatasetError, JudgeError, MetricUnavailable)
"""Exceptions that are the environment's fault, not the model's: reported as errors, never failures."""


class Recorder:
    """The entries of a session, a plugin object in every process: each test's grades are recorded
    where it runs; only the controller (or a serial run) collects the entries."""

    def __init__(self, collects: bool, scope_for: Callable[[pytest.Item], AbstractContextManager[grades.Scope]],
                 compact: bool = False, html_extra: Callable[[Entry], object] | None = None) -> None:
        self.collects, self.scope_for = collects, scope_for
        self.compact = compact
        self.html_extra = html_extra
        """An HTML report is asked for (--html): each test's report carries its details for it, made by this."""
        """pytest's default traceback style: a failed graded assert is shown as its line and its verdict alone."""
        self.entries: list[Entry] = []
        self._by_node: dict[str, Entry] = {}

    def entry_of_node(self, nodeid: str) -> Entry | None:
        return self._by_node.get(nodeid)

    @staticmethod
    def entry(item: pytest.Item) -> Entry:
        """The item's entry, made on first use from its parameters."""
        if ENTRY not in item.stash:
            params = item_params(item)
            case = params.get("case")
            item.stash[ENTRY] = Entry(
                nodeid=item.nodeid, case_id=getattr(case, "id", None), model=params.get("model"),
                input=getattr(case, "messages", None), expected=getattr(case, "expected", None),
                dataset=getattr(case, "source", None), metadata=getattr(case, "metadata", None), sample=params.get("distill_sample", 0))
        return item.stash[ENTRY]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """The test runs in its grading scope; what it graded is kept whatever its outcome."""
        with self.scope_for(item) as scope, grades.running(scope):
            try:
                return (yield)
            finally:
                self.finish_call(item, scope)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self.annotate(item, call, report)
        return report

    def finish_call(self, item: pytest.Item, scope: grades.Scope) -> None:
        """Keep the grades made in the test (on the entry and as JUnit properties) and what judging took."""
        if not scope.grades and not scope.judging and ENTRY not in item.stash:
            return
        entry = self.entry(item)
        entry.grades.extend(scope.grades)
        entry.judging = scope.judging
        entry.transcripts = scope.transcripts or []
        for grade in scope.grades:
            verdict = "pass" if grade.passed else "fail"
            item.user_properties.append((f"grade:{grade.name}", f"{verdict} score={grade.score:g}: {grade.reason}"))

    def annotate(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
        """Mark environment failures as errors (a failed call becomes a failed setup, see the module's
        docstring) and attach the entry to the teardown report."""
        if ENTRY not in item.stash and "case" not in item_params(item) and not (
                call.excinfo and call.excinfo.errisinstance(TEST_ERRORS)):
            return  # a test of no case that graded nothing and met no model, dataset or judge error
        entry = self.entry(item)
        if call.excinfo is not None and call.excinfo.errisinstance(TEST_ERRORS):
            entry.error = str(call.excinfo.value)
            entry.outcome = "error"
            report.longrepr = f"{call.excinfo.typename}: {entry.error}"
            if report.when == "call" and report.failed:
                report.when = "setup"
        elif report.when == "setup" and report.failed:
            entry.outcome = "error"
        elif report.when == "call":
            entry.outcome = report.outcome
            if report.failed:
                self._explain_failure(item, call, report, entry)
        elif report.when == "setup" and report.skipped:
            entry.outcome = "skipped"
        if report.when == "teardown":
            report.user_properties.append((PROPERTY, entry.to_json()))

    def _explain_failure(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, entry: Entry) -> None:
        """Say each failed grade once: in place of the traceback when the failing assert was on a grade
        (pytest's default style), else as a "distill grades" section below pytest's own report."""
        lines = verdict_lines(entry)
        if not lines:
            return
        excinfo = call.excinfo
        asserted = excinfo is not None and excinfo.errisinstance(AssertionError) and any(
            repr(grade) in str(excinfo.value) for grade in entry.grades if not grade.passed)
        if self.compact and excinfo is not None and asserted:
            report.longrepr = "\n".join([failing_line(item, excinfo), *lines])
        else:
            report.sections.append(("distill grades", "\n".join(lines)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller, take the entry out of a (local or worker) teardown report, before JUnit
        would write it as a property, and hand its details to pytest-html as an extra when it writes a report."""
        if self.collects and report.when == "teardown":
            entry = entry_of(report.user_properties)
            if entry is not None:
                self.entries.append(entry)
                self._by_node[entry.nodeid] = entry
                report.user_properties = [(name, value) for name, value in report.user_properties if name != PROPERTY]
                if self.html_extra is not None:
                    report.extras = [*getattr(report, "extras", []), self.html_extra(entry)]  # type: ignore[attr-defined]


SHOWN = 300
"""How much of an output or a reference a failure shows."""


def verdict_lines(entry: Entry) -> list[str]:
    """Every failed grade of a test with its rule and reason, then the output and reference it judged, once."""
    failed = [grade for grade in entry.grades if not grade.passed]
    if not failed:
        return []
    lines = [line for grade in failed for line in grade.explain()]
    if entry.output is not None:
        lines.append(f"output: {shorten(entry.output, SHOWN)}")
    if entry.expected is not None:
        lines.append(f"reference: {shorten(entry.expected, SHOWN)}")
    return lines


def failing_line(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """`test_x.py:15: assert factuality(answer, case.expected)`: the test's line that failed."""
    for frame in reversed(excinfo.traceback):
        if frame.path == item.path:
            statement = " ".join(line.strip() for line in str(frame.statement).splitlines())
            return f"{item.location[0]}:{frame.lineno + 1}: {statement}"
    return item.location[0]
