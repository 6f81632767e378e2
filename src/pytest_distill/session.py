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

from . import grades
from .datasets import BrokenCase, Case, DatasetError, StoredCompletions, load_jsonl, parse_spec
from .graders.judged import JudgeError
from .ledger import PROPERTY, Entry, entry_of, summarize
from .models.client import ModelError, ModelRuntime
from .models.handle import Model
from .report import terminal
from .settings import Settings, resolve

SESSION = pytest.StashKey["DistillSession"]()
ENTRY = pytest.StashKey[Entry]()
SIM_URL = "distill_sim_url"
SIM_KEY = "distill-sim"
ERROR_PROPERTY = "distill_error"
TEST_ERRORS = (ModelError, DatasetError, JudgeError)
"""Exceptions that are the environment's fault, not the model's: reported as errors, never failures."""


class DistillSession:
    """Registered as a plugin too, for the one hook that gets no `config`: `pytest_runtest_logreport`."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = resolve(config)
        self.is_worker = hasattr(config, "workerinput")
        self.entries: list[Entry] = []
        self.sim: Any = None
        self._runtime: ModelRuntime | None = None
        self._datasets: dict[tuple[str, tuple[Path, ...]], list[Case | BrokenCase]] = {}

    # -- start and stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the simulator on the controller when asked; workers reach it through workerinput."""
        if self.settings.sim and not self.is_worker:
            from .sim import SimServer

            self.sim = SimServer(seed=list(self.settings.sim_seed)).start()

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
            self._runtime = ModelRuntime(base_url=url, api_key=key, concurrency=self.settings.concurrency)
        return self._runtime

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
                cache_dir = self.config.cache.mkdir("distill-stored") if self.config.cache else None
                cases = StoredCompletions(self.runtime, cache_dir).load(spec)
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
        entry = self.entry(request.node)
        entry.sample = sample
        return Model(request.param, self.runtime, system=self._system_for(request.param), sample=sample,
                     on_complete=entry.add_completion)

    def model(self, name: str) -> Model:
        """A model that a test uses but does not test (teacher, student, judge)."""
        return Model(name, self.runtime, system=self._system_for(name))

    def _system_for(self, name: str) -> str | None:
        """The shorter student system prompt applies to every model but the teacher and the judge."""
        return None if name in (self.settings.teacher, self.settings.judge) else self.settings.student_system

    # -- running -------------------------------------------------------------------------------

    def entry(self, item: pytest.Item) -> Entry:
        """The item's entry, made on first use from its parameters."""
        if ENTRY not in item.stash:
            params = getattr(getattr(item, "callspec", None), "params", {})
            case = params.get("case")
            item.stash[ENTRY] = Entry(
                nodeid=item.nodeid, case_id=getattr(case, "id", None), model=params.get("model"),
                input=getattr(case, "messages", None))
        return item.stash[ENTRY]

    def call_scope(self, item: pytest.Item) -> Iterator[grades.Scope]:
        """The grading scope of one test call: the session's judge, and the case's question."""
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        scope = grades.Scope(judge=self.model(self.settings.judge), question=getattr(case, "question", None),
                             embedding_model=Model(self.settings.embedding_model, self.runtime))
        return grades.scoped(scope)

    def finish_call(self, item: pytest.Item, scope: grades.Scope) -> None:
        """Keep the grades made in the test, on the entry and as JUnit properties."""
        if not scope.grades and ENTRY not in item.stash:
            return
        entry = self.entry(item)
        entry.grades.extend(scope.grades)
        for grade in scope.grades:
            item.user_properties.append((f"grade:{grade.name}", f"{'pass' if grade.passed else 'fail'} score={grade.score:g}: {grade.reason}"))

    def annotate(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
        """Mark environment failures as errors and attach the entry to the teardown report."""
        if ENTRY not in item.stash and not (call.excinfo and call.excinfo.errisinstance(TEST_ERRORS)):
            return
        entry = self.entry(item)
        if call.excinfo is not None and call.excinfo.errisinstance(TEST_ERRORS):
            entry.error = str(call.excinfo.value)
            entry.outcome = "error"
            report.longrepr = f"{call.excinfo.typename}: {entry.error}"
            if report.when == "call":
                report.user_properties.append((ERROR_PROPERTY, entry.error))
        elif report.when == "setup" and report.failed:
            entry.outcome = "error"
        elif report.when == "call":
            entry.outcome = report.outcome
            if report.failed and entry.grades:
                report.sections.append(("distill grades", "\n\n".join("\n".join(g.explain()) for g in entry.grades)))
        elif report.when == "setup" and report.skipped:
            entry.outcome = "skipped"
        if report.when == "teardown":
            report.user_properties.append((PROPERTY, entry.to_json()))

    @staticmethod
    def test_status(report: pytest.TestReport) -> tuple[str, str, str] | None:
        """A call that failed for an environment reason reads as ERROR, apart from failures."""
        if report.when == "call" and report.failed and any(name == ERROR_PROPERTY for name, _ in report.user_properties):
            return "error", "E", "ERROR"
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller, keep every entry that a (local or worker) teardown report carries."""
        if not self.is_worker and report.when == "teardown":
            entry = entry_of(report.user_properties)
            if entry is not None:
                self.entries.append(entry)

    def terminal_summary(self, reporter: Any) -> None:
        if not self.is_worker and self.entries:
            terminal.write_summary(reporter, summarize(self.entries))
