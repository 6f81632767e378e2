"""The pytest hooks of pytest-distill, and the one place where its plugin objects are registered.

A session that uses the plugin (an option or ini setting of it, a test that asks for its fixtures, or a
test module that imports its helpers)
gets, per process, the session (`config.stash[SESSION]`: settings, runtime, datasets, fixtures), the
`Recorder` (each test's grades and outcome) and the `Prefetcher` (calls started ahead); on the
controller only, like pytest's junitxml, the `Reporter` (summary, results file, baseline, HTML) and,
with `--distill`/`--distill-dry-run`, the `DistillStep` (the gate and the training). A session that
uses none of it gets none of them, and imports none of their modules: `activate` makes them at the
first sign of use (see `Watcher` for the xdist controller, which collects nothing).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast

import pytest

from . import asked
from .errors import DistillError
from .settings import DIST, SIM_SEED, SIM_URL, add_model_flags, add_options, is_worker, resolve

if TYPE_CHECKING:
    from .datasets import Case
    from .models.handle import Model
    from .recording import Recorder
    from .session import DistillSession

SESSION = pytest.StashKey["DistillSession"]()
RECORDER, PREFETCHER, REPORTER, ANSWERS, TRAINING, PASS_RATE, WATCHER = (
    "distill-recorder", "distill-prefetch", "distill-reporter", "distill-answer-record", "distill-training", "distill-pass-rate",
    "distill-watcher")
PLUGINS = (RECORDER, PREFETCHER, REPORTER, ANSWERS, TRAINING, PASS_RATE, WATCHER)
"""The names the plugin objects are registered under: `-p no:distill-prefetch` turns prefetching off."""


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    add_options(parser)
    if getattr(pluginmanager, "_confcutdir", None) is not None:
        # Registered while the initial conftests load (a conftest's `pytest_plugins`): no later chance.
        add_model_flags(parser, pluginmanager.get_plugin("pytestconfig"))  # type: ignore[arg-type]


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> Generator[None, None, None]:
    """`--model` is declared after the project's conftests have declared theirs: theirs wins."""
    try:
        return (yield)
    finally:
        add_model_flags(parser, early_config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distill_dataset(spec): the cases of this test: 'stored[:KEY=VALUE,...]' or a .jsonl path")
    config.addinivalue_line("markers", "distill_grade(helper, **arguments): the test grades its model's answer with this "
                            "model-graded helper (expected= is the case's reference); its judge call starts ahead")
    # Added before other plugins configure (ours is called first), so it runs after their cleanups.
    config.add_cleanup(lambda: thaw(config))
    try:
        settings = resolve(config)
        if settings.configured:
            activate(config).start()
        elif not is_worker(config):
            config.pluginmanager.register(Watcher(config), WATCHER)
    except DistillError as exc:
        raise pytest.UsageError(str(exc)) from None


def activate(config: pytest.Config) -> DistillSession:
    """The session of a run that uses the plugin, and its plugin objects, made and registered once."""
    session = config.stash.get(SESSION, None)
    if session is not None:
        return session
    from . import prefetch
    from .recording import Recorder
    from .report.reporter import Reporter
    from .report.threshold import PassRateCheck
    from .session import DistillSession

    session = config.stash[SESSION] = DistillSession(config, resolve(config))
    settings, plugins = session.settings, config.pluginmanager
    watcher = plugins.get_plugin(WATCHER)
    if watcher is not None:
        plugins.unregister(watcher)
    # pytest's default traceback style (and no --showlocals): a failed graded assert shows its verdict alone.
    compact = config.getoption("tbstyle") == "auto" and not config.getoption("showlocals")
    # pytest-html's --html: only then does each test carry its details for the HTML report.
    html_extra = None
    if config.getoption("htmlpath", None):
        from .report import html

        html_extra = html.entry_extra
    recorder = Recorder(collects=not is_worker(config), scope_for=session.call_scope, compact=compact, html_extra=html_extra)
    plugins.register(recorder, RECORDER)
    plugins.register(prefetch.Prefetcher(session.model, session.call_scope, prefetch.GRADED_AHEAD, settings.concurrency,
                                         batch=settings.batch), PREFETCHER)
    if not is_worker(config):
        pass_rate = PassRateCheck(settings, recorder) if settings.pass_rate else None
        reporter = Reporter(settings, recorder, session.endpoints, pass_rate, session.cases.for_option)
        plugins.register(reporter, REPORTER)
        if pass_rate is not None:
            plugins.register(pass_rate, PASS_RATE)
        if settings.record is not None:
            from .report.answers import AnswerRecord

            plugins.register(AnswerRecord(settings.record, recorder), ANSWERS)
        if settings.distill or settings.dry_run:
            from .distill.plugin import DistillStep

            plugins.register(DistillStep(config, settings, recorder.entries, lambda: session.runtime,
                                         session.cases.for_option, reporter.add_training), TRAINING)
    return session


class Watcher:
    """On the xdist controller of a run that configures nothing of the plugin: it collects no tests, so
    the first entry a worker sends (a test used the plugin's fixtures) is its first sign of use."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or not report.user_properties:
            return
        from .ledger import PROPERTY

        if any(name == PROPERTY for name, _ in report.user_properties):
            activate(self.config)
            recorder = cast("Recorder", self.config.pluginmanager.get_plugin(RECORDER))
            recorder.pytest_runtest_logreport(report)  # registered during this hook call, which it misses


def thaw(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.thaw()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.stop()
    for name in PLUGINS:
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand each worker the controller's simulator address and the digest of its seeds, and xdist's
    scheduling mode."""
    session = node.config.stash.get(SESSION, None)
    if session is not None and session.sim_url:
        node.workerinput[SIM_URL], node.workerinput[SIM_SEED] = session.sim_url, session.sim_seed
    node.workerinput[DIST] = node.config.getoption("dist", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ours = session.config.stash.get(SESSION, None)
    if ours is not None:
        ours.finish(exitstatus)


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION, None)
    return session.header() if session is not None else []


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """A test module that imported a helper uses the plugin though it asks for none of its fixtures: its
    model-graded checks need the session's judge, and its grades belong in the reports."""
    if SESSION not in config.stash and asked():
        activate(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ours = {name for name in metafunc.fixturenames if _plugin_fixture(metafunc, name)}
    if ours:
        activate(metafunc.config).parametrize(metafunc, ours)


def _plugin_fixture(metafunc: pytest.Metafunc, name: str) -> bool:
    """Whether the test gets this module's fixture of that name: a project's own `case` or `model` wins, as
    pytest's rules say (the last definition is the one in effect), and is left alone."""
    definitions = metafunc._arg2fixturedefs.get(name)
    return definitions is not None and len(definitions) > 0 and definitions[-1].func.__module__ == __name__


@pytest.fixture
def distill_sample(request: pytest.FixtureRequest) -> int:
    """Which repeat of a case this is (0 unless --distill-repeat is above 1)."""
    return getattr(request, "param", 0)


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    """One case of the test's dataset (the `distill_dataset` marker or --distill-dataset)."""
    return activate(request.config).case(request)


@pytest.fixture
def model(request: pytest.FixtureRequest, distill_sample: int) -> Model:
    """The model under test (one per --model)."""
    return activate(request.config).model_under_test(request, distill_sample)


@pytest.fixture
def teacher(request: pytest.FixtureRequest) -> Model:
    """The teacher; a case stored from the teacher replays its stored answer without a call."""
    session = activate(request.config)
    return session.model(session.settings.teacher, role="teacher")


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Model:
    """The student base model."""
    session = activate(request.config)
    return session.model(session.settings.student, role="student")


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Model:
    """The grader model used by the model-graded helpers."""
    session = activate(request.config)
    return session.model(session.settings.judge, role="judge")
