"""`DistillSession`: the one state object of a pytest session, kept in `config.stash[SESSION]`.

The hook module only forwards to it. Controller-only duties (the simulator, the ledger, the summary,
the results file, the gate) are guarded here by `is_worker`, so they happen once under xdist.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import grades, prefetch, progress
from .datasets import BrokenCase, Case, DatasetError, StoredCompletions, load_jsonl, parse_spec
from .distill import backends, loop
from .distill.record import TrainingRecord
from .graders import embedding, judged
from .ledger import Entry, judging, summarize, verdict_changes
from .models import hf
from .models.cache import CompletionCache
from .models.client import ModelRuntime
from .models.types import ModelError
from .models.handle import Model
from .report import baseline, html, results, table, terminal
from .recording import Recorder
from .report.cost import PriceTable
from .settings import Settings, resolve

SESSION = pytest.StashKey["DistillSession"]()
SIM_URL = "distill_sim_url"
SIM_KEY = "distill-sim"
GRADED_AHEAD = {helper.__name__: helper for helper in (
    judged.factuality, judged.semantic_similarity, judged.sentiment, judged.criteria_match, judged.text_quality,
    judged.custom_prompt, embedding.embedding_similarity)}
"""The helpers a `distill_grade` marker may name: their model calls can start ahead of the test."""


class DistillSession:
    """Registered as a plugin too, for pytest-html's table hooks, which get no `config`."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = resolve(config)
        self.is_worker = hasattr(config, "workerinput")
        self.recorder = Recorder(collects=not self.is_worker)
        self.prices = PriceTable.with_defaults(self.settings.prices)
        self.baseline: baseline.Baseline | None = None
        self.comparison: baseline.Comparison | None = None
        self.report_lines: list[str] = []
        """Lines for the end of the terminal and the HTML summary: the results file, the baseline."""
        self.distill_record: dict[str, Any] = {}
        """What the distillation step reports; written under "distill" in the results file."""
        self.distill_outcome: loop.Outcome | None = None
        self._said = False
        """Whether a progress line was written yet (the first one ends pytest's line of dots)."""
        self.sim: Any = None
        self._runtime: ModelRuntime | None = None
        self._datasets: dict[tuple[str, tuple[Path, ...]], list[Case | BrokenCase]] = {}

    # -- start and stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Check the baseline, then start the simulator, on the controller; workers reach it through workerinput."""
        if not self.is_worker:
            self._load_baseline()
            self._check_backend()
            self._check_local_models()
        if self.settings.sim and not self.is_worker:
            from .sim import SimServer

            # Its files and jobs live in pytest's cache, so a model distilled in one session exists in the next.
            cache = getattr(self.config, "cache", None)
            state_dir = cache.mkdir("distill-sim") if cache else None
            self.sim = SimServer(seed=list(self.settings.sim_seed), state_dir=state_dir).start()
        if self.settings.cache != "off" and getattr(self.config, "cache", None) is None:
            raise pytest.UsageError("--distill-cache keeps its answers in pytest's cache: drop -p no:cacheprovider")
        self.config.pluginmanager.register(self.recorder, "distill-recorder")
        self.config.pluginmanager.register(
            prefetch.Prefetcher(self.model, self.call_scope, GRADED_AHEAD, self.settings.concurrency), prefetch.PLUGIN_NAME)

    def _load_baseline(self) -> None:
        """A bad baseline file or model mapping stops the run here, before any model is called."""
        if self.settings.baseline is None:
            if self.settings.baseline_models:
                raise pytest.UsageError("--distill-baseline-model needs --distill-baseline")
            return
        self.baseline = baseline.load(self.settings.baseline)
        baseline.pair_models(self.baseline.models, self.settings.models_under_test, self.settings.baseline_map())

    def _check_backend(self) -> None:
        """A backend that cannot run stops the session before any model is called, not after all of them."""
        if self.settings.distill or self.settings.dry_run:
            try:
                backends.check_backend(self.settings)
            except backends.TrainingError as exc:
                raise pytest.UsageError(str(exc)) from None

    def _check_local_models(self) -> None:
        """An `hf:` model without the [trl] extra stops the session here, with the command that installs it."""
        s = self.settings
        problem = hf.unavailable((*s.models_under_test, s.teacher, s.student, s.judge))
        if problem:
            raise pytest.UsageError(problem)

    def stop(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        if self.sim is not None:
            self.sim.stop()

    @property
    def sim_url(self) -> str | None:
        if self.sim is not None:
            return self.sim.url
        return getattr(self.config, "workerinput", {}).get(SIM_URL)

    @property
    def runtime(self) -> ModelRuntime:
        """The process's model runtime, made on first use so that collection-only runs start nothing."""
        if self._runtime is None:
            url = self.sim_url
            key = (os.environ.get("OPENAI_API_KEY") or SIM_KEY) if url else None
            self._runtime = ModelRuntime(base_url=url, api_key=key, concurrency=self.settings.concurrency,
                                         cache=self._completion_cache(url))
            progress.attach(self._runtime, self.config)
        return self._runtime

    def _completion_cache(self, url: str | None) -> CompletionCache | None:
        """`--distill-cache`: answers under pytest's cache directory, kept apart per server."""
        folder = None if self.settings.cache == "off" else self.cache_dir("distill-calls")
        if folder is None:
            return None
        server = "simulator" if self.settings.sim else url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return CompletionCache(folder, server, self.settings.cache)

    def cache_dir(self, name: str) -> Path | None:
        """A folder under pytest's cache directory, or None when the cache provider is off (-p no:cacheprovider)."""
        cache = getattr(self.config, "cache", None)
        return cache.mkdir(name) if cache is not None else None

    def header(self) -> list[str]:
        s = self.settings
        lines = [f"distill: models {', '.join(s.models_under_test)}; teacher {s.teacher}; judge {s.judge}"]
        if self.sim is not None:
            lines.append(f"distill: offline simulator at {self.sim.url} (its scores measure wiring, not model quality)")
        return lines

    # -- collection ----------------------------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        """Give `case` one parameter per case of the test's dataset, and `model` one per model under test."""
        names = metafunc.fixturenames
        if "case" in names:
            cases = self._cases_for(metafunc)
            metafunc.parametrize("case", cases, ids=[case.id for case in cases], indirect=True)
        if "model" in names:
            models = self.settings.models_under_test
            metafunc.parametrize("model", models, ids=list(models), indirect=True)
        if "distill_sample" in names and self.settings.repeat > 1:
            samples = range(self.settings.repeat)
            metafunc.parametrize("distill_sample", samples, ids=[f"rep{i}" for i in samples], indirect=True)

    def _cases_for(self, metafunc: pytest.Metafunc) -> list[Case | BrokenCase]:
        marker = metafunc.definition.get_closest_marker("distill_dataset")
        where = f"{metafunc.definition.nodeid} asks for `case`"
        if marker is not None:
            if len(marker.args) != 1 or not isinstance(marker.args[0], str):
                raise pytest.Collector.CollectError(f"{where}: distill_dataset takes one dataset spec string")
            text, dirs = marker.args[0], (metafunc.definition.path.parent, self.config.rootpath)
        elif self.settings.dataset:
            text, dirs = self.settings.dataset, (self.config.invocation_params.dir, self.config.rootpath)
        else:
            raise pytest.Collector.CollectError(
                f"{where} but has no dataset: add @pytest.mark.distill_dataset(\"stored:split=test\") "
                "(or a .jsonl path), or pass --distill-dataset")
        try:
            return self.cases(text, dirs)
        except (DatasetError, ModelError) as exc:
            raise pytest.Collector.CollectError(f"{where}: {exc}") from None

    def cases(self, text: str, dirs: tuple[Path, ...]) -> list[Case | BrokenCase]:
        """The cases of a dataset spec, loaded once per session."""
        key = (text, dirs)
        if key not in self._datasets:
            spec = parse_spec(text, dirs)
            if spec.stored:
                cases = StoredCompletions(self.runtime, self.cache_dir("distill-stored")).load(spec)
            else:
                cases = load_jsonl(spec.path, text)
            if not cases:
                raise DatasetError(f"dataset {text!r} has no cases" +
                                   (": no stored completion matches its filters" if spec.stored else ""))
            self._datasets[key] = cases
        return self._datasets[key]

    # -- fixtures ------------------------------------------------------------------------------

    def case(self, request: pytest.FixtureRequest) -> Case:
        param = getattr(request, "param", None)
        if isinstance(param, BrokenCase):
            raise DatasetError(param.problem)
        assert isinstance(param, Case), "the `case` fixture is parametrized at collection"
        return param

    def model_under_test(self, request: pytest.FixtureRequest, sample: int) -> Model:
        """The `model` fixture: its answers are recorded as the test's output."""
        entry = self.recorder.entry(request.node)
        entry.sample = sample
        return Model(request.param, self.runtime, system=self._system_for(request.param), sample=sample,
                     on_complete=entry.add_completion)

    def model(self, name: str, sample: int = 0) -> Model:
        """A model that a test uses but does not test (teacher, student, judge), or one that prefetch asks."""
        return Model(name, self.runtime, system=self._system_for(name), sample=sample)

    def _system_for(self, name: str) -> str | None:
        """The shorter student system prompt applies to every model but the teacher and the judge."""
        return None if name in (self.settings.teacher, self.settings.judge) else self.settings.student_system

    # -- running -------------------------------------------------------------------------------

    def call_scope(self, item: pytest.Item) -> Iterator[grades.Scope]:
        """The grading scope of one test call: the session's judge, and the case's question."""
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        scope = grades.Scope(judge=self.model(self.settings.judge), question=getattr(case, "question", None),
                             embedding_model=Model(self.settings.embedding_model, self.runtime))
        return grades.scoped(scope)

    # -- the end of the session (controller only) --------------------------------------------------

    def ledger(self) -> list[Entry]:
        """The entries in one order (models as given, then node ids), the same under xdist as serial."""
        order = {model: index for index, model in enumerate(self.settings.models_under_test)}
        return sorted(self.recorder.entries, key=lambda entry: (order.get(entry.model or "", len(order)), entry.nodeid))

    def summary(self) -> table.SummaryTable:
        entries = self.ledger()
        return table.build(summarize(entries), verdict_changes(entries), self.prices, self.settings.teacher,
                           shorter_prompt=self.settings.student_system is not None, judging=judging(entries))

    def distill_after_run(self, session: pytest.Session) -> None:
        """With --distill or --distill-dry-run: the gate, the training file and the training, once.

        Runs before the results file is written, which carries its outcome under "distill". A run that
        was interrupted or could not start decides nothing; one that collected no test says why not."""
        s = self.settings
        ran = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.is_worker or not (s.distill or s.dry_run) or session.exitstatus not in ran:
            return
        cache = getattr(self.config, "cache", None)
        dirs = (self.config.invocation_params.dir, self.config.rootpath)
        out_dir = s.results.parent if s.results else cache.mkdir("distill") if cache else self.config.rootpath / ".distill"
        self.distill_outcome = outcome = loop.run_loop(loop.LoopInputs(
            settings=s, entries=self.recorder.entries, load=lambda spec: self.cases(spec, dirs), out_dir=out_dir,
            record=TrainingRecord(cache), args=self.config.invocation_params.args, say=self._say,
            trainer=lambda: backends.make_trainer(s.backend, backends.TrainerContext(s, self.runtime, self._say))))
        self.distill_record.update(outcome.to_dict())
        if outcome.interrupted:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        elif outcome.failed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _say(self, line: str) -> None:
        """A line on the terminal now (progress while following a training), not at the summary."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            if not self._said:
                reporter.write_line("")
                self._said = True
            reporter.write_line(f"distill: {line}")

    def session_finish(self, session: pytest.Session) -> None:
        """Write the results file and compare with the baseline; a regression fails the session.

        An interrupted run writes nothing: its partial results would make a misleading baseline. Ctrl-C
        while starting or following a training interrupts no test, so that run's results are whole and written."""
        if self.is_worker or not self.recorder.entries:
            return
        only_training = self.distill_outcome is not None and self.distill_outcome.interrupted
        if session.exitstatus == pytest.ExitCode.INTERRUPTED and not only_training:
            if self.settings.results or self.baseline:
                self.report_lines.append("distill: the run was interrupted: no results file written, no baseline comparison")
            return
        document = results.document(self.ledger(), self.distill_record)
        if self.settings.results:
            results.write(self.settings.results, document)
            self.report_lines.append(f"distill: results written to {self.settings.results}")
        if self.baseline is not None:
            self.comparison = baseline.compare(self.baseline, document, self.settings.baseline_map(), self.settings.tolerance)
            if self.comparison.regressions:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def terminal_summary(self, reporter: Any) -> None:
        if self.is_worker:
            return
        if self.recorder.entries:
            terminal.write_summary(reporter, self.summary())
        if self.distill_outcome is not None:
            reporter.write_sep("-", "distillation")
            for line in self.distill_outcome.lines():
                reporter.write_line(line)
        for line in self.report_lines:
            reporter.write_line(line)
        if self.comparison is not None:
            terminal.write_comparison(reporter, self.comparison)

    # -- pytest-html (hooks of this plugin object: the table hooks get no `config`) -------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, summary: list[str]) -> None:
        if self.recorder.entries:
            summary.append(html.summary_html(self.summary(), self.report_lines, self.comparison))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        html.add_header_cells(cells)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        html.add_row_cells(cells, self.recorder.entry_of_node(report.nodeid))
