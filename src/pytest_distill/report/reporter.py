"""`Reporter`: the end of the run, on the controller (or a serial run) only, like pytest's `LogXML`.

It is made in `pytest_configure` where it works, never on an xdist worker, so nothing in it asks
which process it is in. It reads the baseline at start-up (a bad one stops the run before any model
call), and at the end orders the ledger, writes the results file, compares with the baseline, and
writes the summary to the terminal and the pytest-html report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..atomic import write_atomic
from ..datasets import BrokenCase, Case, DatasetError
from ..ledger import Entry, EntrySource, in_order
from ..models.types import ModelError
from ..settings import Settings
from ..untrusted import printable
from . import agreement, baseline, html, markdown, results, run, table, terminal
from .balance import Balance, measure
from .baseline import Baseline, Comparison
from .cost import PriceTable
from .threshold import PassRateCheck


@dataclass
class TrainingReport:
    """What the distillation step hands over: its summary lines and its block of the results file."""

    lines: Sequence[str]
    record: dict[str, Any]
    interrupted: bool
    """Ctrl-C came while starting or following a training: the tests themselves all ran."""
    closing: Sequence[str] = ()
    """The trained model's name and the command that re-runs the suite on it: the terminal's last lines."""


@dataclass(eq=False)  # a plugin object: pytest keeps registered plugins in sets, so it must stay hashable
class Reporter:
    settings: Settings
    recorder: EntrySource
    endpoints: Callable[[], Mapping[str, str]] = dict
    """Each endpoint's name and base URL, asked at the end (the simulator starts after the reporter)."""
    pass_rate: PassRateCheck | None = None
    """The --distill-pass-rate verdict (decided before this reporter's end of run), when asked for."""
    load: Callable[[str], Sequence[Case | BrokenCase]] | None = None
    """The cases of a dataset spec (the session's), for --distill-balance's training and other datasets."""
    balance: Balance | None = field(init=False, default=None)
    prices: PriceTable = field(init=False)
    started: float = field(init=False, default_factory=time.time)
    run_record: dict[str, Any] | None = field(init=False, default=None)
    """How the run was made: the results file's "run", the HTML summary's first lines."""
    baseline: Baseline | None = field(init=False, default=None)
    comparison: Comparison | None = field(init=False, default=None)
    training: TrainingReport | None = field(init=False, default=None)
    labels: list[agreement.Label] = field(init=False, default_factory=list)
    """Human verdicts (--distill-judge-labels), read at start-up."""
    lines: list[str] = field(init=False, default_factory=list)
    """Lines for the end of the terminal and the HTML summary: the results file, the baseline."""

    def __post_init__(self) -> None:
        """Prices, the results file's place, judge labels and the baseline are checked now: a mistake in
        any stops the run before any call."""
        s = self.settings
        self.prices = PriceTable.with_defaults(s.prices)
        if s.batch:
            self.prices = self.prices.at_batch_rate()
        if s.results is not None:
            results.check_destination(s.results)
        if s.markdown is not None:
            results.check_destination(s.markdown, "--distill-markdown")
        if s.judge_labels is not None:
            self.labels = agreement.load_labels(s.judge_labels, s.max_line_bytes)
        if s.balance_against is not None and s.balance is None:
            raise pytest.UsageError("--distill-balance-against needs --distill-balance KEY")
        if s.baseline is None:
            if s.baseline_models:
                raise pytest.UsageError("--distill-baseline-model needs --distill-baseline")
            return
        self.baseline = baseline.load(s.baseline, s.max_line_bytes)
        baseline.pair_models(self.baseline.models, s.models_under_test, s.baseline_map())

    def ledger(self) -> list[Entry]:
        """The entries in one order (models as given, then node ids), the same under xdist as serial."""
        return in_order(self.recorder.entries, self.settings.models_under_test)

    def summary(self) -> table.SummaryTable:
        return table.of_entries(self.ledger(), self.prices, self.settings.teacher,
                                shorter_prompt=self.settings.student_system is not None)

    def judges(self) -> dict[str, agreement.Agreement] | None:
        """Each labelled grader against the people's verdicts, or None without --distill-judge-labels."""
        return agreement.agreement(self.labels, self.ledger()) if self.labels else None

    def judge_lines(self) -> list[str]:
        """Each judge against people's labels, then several judges of one grader among themselves."""
        judges = self.judges()
        labelled = agreement.lines(judges, self.settings.judge_labels) if judges is not None and self.settings.judge_labels else []
        return labelled + agreement.panel_lines(agreement.panels(self.ledger()))

    def add_training(self, lines: list[str], record: dict[str, Any], interrupted: bool, closing: Sequence[str] = ()) -> None:
        """The distillation step's outcome: printed under "distillation", written under "distill"."""
        self.training = TrainingReport(lines, record, interrupted, closing)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the results file and compare with the baseline; a regression fails the session.

        An interrupted run writes nothing: its partial results would make a misleading baseline. Ctrl-C
        while starting or following a training interrupts no test, so that run's results are whole and written."""
        if not self.recorder.entries:
            self.say_nothing_was_written()
            return
        only_training = self.training is not None and self.training.interrupted
        if session.exitstatus == pytest.ExitCode.INTERRUPTED and not only_training:
            if self.settings.results or self.baseline:
                self.lines.append("distill: the run was interrupted: no results file written, no baseline comparison")
            return
        entries = self.ledger()
        self.measure_balance(entries)
        self.run_record = run.describe(self.settings, entries, self.started, time.time(), self.endpoints())
        document = results.document(entries, self.training.record if self.training else {}, self.run_record, self.judges(),
                                    agreement.panels(entries))
        if self.balance is not None:
            document["balance"] = {self.balance.key: self.balance.to_dict()}
        if self.pass_rate is not None and self.pass_rate.verdict is not None:
            document["threshold"] = self.pass_rate.verdict.to_dict()
        if self.settings.results:
            results.write(self.settings.results, document)
            self.lines.append(f"distill: results written to {self.settings.results}")
        if self.baseline is not None:
            s = self.settings
            self.comparison = baseline.compare(self.baseline, document, s.baseline_map(), s.tolerance, s.every_repeat,
                                               s.baseline_test, s.alpha)
            if self.comparison.failed:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.settings.markdown:
            self.write_markdown(session.config, entries)

    def say_nothing_was_written(self) -> None:
        """No test ran a case or graded anything (every test was plain, or deselected): the files asked for
        are not written, and the reader is told so, not left to find an old file or none."""
        s = self.settings
        missed = [f"{option} {path} not written" for option, path in (("--distill-results", s.results),
                                                                       ("--distill-markdown", s.markdown)) if path]
        if self.baseline is not None:
            missed.append(f"no comparison with the baseline {s.baseline}")
        if missed:
            self.lines.append(f"distill: no test ran a case or recorded a grade: {'; '.join(missed)}")

    def measure_balance(self, entries: Sequence[Entry]) -> None:
        """--distill-balance: the training spec's cases (and the other dataset's) against the tested ones; a
        dataset that cannot be read is said, and the rest of the run's report stands."""
        s = self.settings
        if s.balance is None or self.load is None:
            return
        try:
            train = self.load(s.train)
            against = self.load(s.balance_against) if s.balance_against is not None else None
        except (DatasetError, ModelError) as exc:
            self.lines.append(f"distill: no balance by {s.balance!r}: {exc}")
            return
        self.balance = measure(s.balance, train, entries, s.models_under_test, s.train, against, s.balance_against)

    def balance_lines(self) -> list[str]:
        """The balance table and what it shows, for the terminal (the HTML draws it with bars)."""
        if self.balance is None:
            return []
        return [*terminal.render_table(self.balance.header(), self.balance.rows()), *self.balance.lines()]

    def write_markdown(self, config: pytest.Config, entries: list[Entry]) -> None:
        """The Markdown page, its test counts the terminal's own (pytest's categories, each report once)."""
        stats = getattr(config.pluginmanager.get_plugin("terminalreporter"), "stats", None)
        counts = ({word: len(reports) for word, reports in stats.items()} if stats is not None
                  else {word: sum(entry.outcome == word for entry in entries) for word in markdown.COUNTED})
        verdict = self.pass_rate.verdict if self.pass_rate is not None else None
        assert self.settings.markdown is not None
        write_atomic(self.settings.markdown, markdown.document(counts, self.summary(), entries, verdict, self.comparison))
        self.lines.append(f"distill: Markdown written to {self.settings.markdown}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.recorder.entries:
            terminal.write_summary(terminalreporter, self.summary())
            terminal.write_lines(terminalreporter, self.judge_lines())
        if self.balance is not None:
            terminalreporter.write_sep("-", printable(f"distill balance by {self.balance.key}"))
            terminal.write_lines(terminalreporter, self.balance_lines())
        if self.training is not None:
            terminalreporter.write_sep("-", "distillation")
            terminal.write_lines(terminalreporter, self.training.lines)
        terminal.write_lines(terminalreporter, self.lines)
        if self.comparison is not None:
            terminal.write_comparison(terminalreporter, self.comparison)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The trained model and the command that re-runs the suite on it, after pytest's own last line:
        what the reader copies next."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.training is not None:
            terminal.write_lines(reporter, [f"distill: {line}" for line in self.training.closing], bold=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, summary: list[str]) -> None:
        if self.recorder.entries:
            verdict = self.pass_rate.verdict if self.pass_rate is not None else None
            said = [verdict.line()] if verdict is not None else []
            summary.append(html.summary_html(self.summary(), [*self.judge_lines(), *self.lines, *said], self.comparison,
                                             run.lines(self.run_record) if self.run_record else []))
            if self.balance is not None:
                summary.append(html.balance_html(self.balance))
            summary.append(html.matrix_html(self.ledger(), self.settings.models_under_test))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        """The table's columns are laid out before collection: they show when the plugin is configured."""
        if self.settings.configured:
            html.add_header_cells(cells)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if self.settings.configured:
            html.add_row_cells(cells, self.recorder.entry_of_node(report.nodeid))
