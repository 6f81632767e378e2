"""The pytest hooks of pytest-distill, and the one place where its plugin objects are registered.

Per process: the session (`config.stash[SESSION]`: settings, runtime, datasets, fixtures), the
`Recorder` (each test's grades and outcome) and the `Prefetcher` (calls started ahead). On the
controller only, like pytest's junitxml: the `Reporter` (summary, results file, baseline, HTML) and,
with `--distill`/`--distill-dry-run`, the `DistillStep` (the gate and the training).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import prefetch
from .datasets import Case
from .distill.plugin import PLUGIN_NAME as TRAINING
from .distill.plugin import DistillStep
from .errors import DistillError
from .models.handle import Model
from .recording import Recorder
from .report.answers import PLUGIN_NAME as ANSWERS
from .report.answers import AnswerRecord
from .report.reporter import PLUGIN_NAME as REPORTER
from .report.reporter import Reporter
from .report.threshold import PLUGIN_NAME as PASS_RATE
from .report.threshold import PassRateCheck
from .session import SESSION, SIM_URL, DistillSession
from .settings import add_model_flags, add_options, is_worker

RECORDER = "distill-recorder"
PLUGINS = (RECORDER, prefetch.PLUGIN_NAME, REPORTER, ANSWERS, TRAINING, PASS_RATE)


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
    session = config.stash[SESSION] = DistillSession(config)
    # Registered before other plugins configure (ours is called first), so it runs after their cleanups.
    config.add_cleanup(session.thaw)
    settings, plugins = session.settings, config.pluginmanager
    # pytest's default traceback style (and no --showlocals): a failed graded assert shows its verdict alone.
    compact = config.getoption("tbstyle") == "auto" and not config.getoption("showlocals")
    # pytest-html's --html: only then does each test carry its details for the HTML report.
    html_extras = bool(config.getoption("htmlpath", None))
    recorder = Recorder(collects=not is_worker(config), scope_for=session.call_scope, compact=compact, html_extras=html_extras)
    plugins.register(recorder, RECORDER)
    plugins.register(prefetch.Prefetcher(session.model, session.call_scope, prefetch.GRADED_AHEAD, settings.concurrency,
                                         batch=settings.batch), prefetch.PLUGIN_NAME)
    try:
        if not is_worker(config):
            pass_rate = PassRateCheck(settings, recorder) if settings.pass_rate else None
            reporter = Reporter(settings, recorder, session.endpoints, pass_rate)
            plugins.register(reporter, REPORTER)
            if pass_rate is not None:
                plugins.register(pass_rate, PASS_RATE)
            if settings.record is not None:
                plugins.register(AnswerRecord(settings.record, recorder), ANSWERS)
            if settings.distill or settings.dry_run:
                plugins.register(DistillStep(config, settings, recorder.entries, lambda: session.runtime,
                                             session.cases.for_option, reporter.add_training), TRAINING)
        session.start()
    except DistillError as exc:
        raise pytest.UsageError(str(exc)) from None


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
    """xdist: hand the controller's simulator address to each worker."""
    url = node.config.stash[SESSION].sim_url
    if url:
        node.workerinput[SIM_URL] = url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION].finish(exitstatus)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[SESSION].header()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ours = {name for name in metafunc.fixturenames if _plugin_fixture(metafunc, name)}
    if ours:
        metafunc.config.stash[SESSION].parametrize(metafunc, ours)


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
    return request.config.stash[SESSION].case(request)


@pytest.fixture
def model(request: pytest.FixtureRequest, distill_sample: int) -> Model:
    """The model under test (one per --model)."""
    return request.config.stash[SESSION].model_under_test(request, distill_sample)


@pytest.fixture
def teacher(request: pytest.FixtureRequest) -> Model:
    """The teacher; a case stored from the teacher replays its stored answer without a call."""
    session = request.config.stash[SESSION]
    return session.model(session.settings.teacher, role="teacher")


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Model:
    """The student base model."""
    session = request.config.stash[SESSION]
    return session.model(session.settings.student, role="student")


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Model:
    """The grader model used by the model-graded helpers."""
    session = request.config.stash[SESSION]
    return session.model(session.settings.judge, role="judge")
