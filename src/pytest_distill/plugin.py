"""The pytest hooks of pytest-distill: each one forwards to the session object in `config.stash`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .datasets import Case
from .models.handle import Model
from .recording import Recorder
from .session import SESSION, SIM_URL, DistillSession
from .settings import add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distill_dataset(spec): the cases of this test: 'stored[:KEY=VALUE,...]' or a .jsonl path")
    config.addinivalue_line("markers", "distill_grade(helper, **arguments): the test grades its model's answer with this "
                            "model-graded helper (expected= is the case's reference); its judge call starts ahead")
    session = DistillSession(config)
    config.stash[SESSION] = session
    config.pluginmanager.register(session, "distill-session")
    session.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.stop()
        config.pluginmanager.unregister(session)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's simulator address to each worker."""
    url = node.config.stash[SESSION].sim_url
    if url:
        node.workerinput[SIM_URL] = url


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[SESSION].header()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    metafunc.config.stash[SESSION].parametrize(metafunc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    session = item.config.stash[SESSION]
    with session.call_scope(item) as scope:
        try:
            return (yield)
        finally:
            session.recorder.finish_call(item, scope)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.config.stash[SESSION].recorder.annotate(item, call, report)
    return report


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    return Recorder.test_status(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    distill = session.config.stash[SESSION]
    distill.distill_after_run(session)
    distill.session_finish(session)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.config.stash[SESSION].terminal_summary(terminalreporter)


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
    return session.model(session.settings.teacher)


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Model:
    """The student base model."""
    session = request.config.stash[SESSION]
    return session.model(session.settings.student)


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Model:
    """The grader model used by the model-graded helpers."""
    session = request.config.stash[SESSION]
    return session.model(session.settings.judge)
