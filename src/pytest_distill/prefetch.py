"""Prefetch: start the model calls of the tests about to run, so that pytest's one-at-a-time tests
find their answers ready.

pytest runs one test after another, and each waits for its model. Once collection is done, an item
asking for `case` and `model` tells which call its `model.complete(case)` will make; `Model.submit`
starts exactly that call, and the test's own call joins it in the runtime (which bounds concurrency,
shares the 429 back-off and makes identical requests once). A window of `lookahead` items ahead of
the running one is kept started: enough to keep `--distill-concurrency` calls in flight, little to
waste when the run stops early (`-x`).

Judge calls: `@pytest.mark.distill_grade("factuality")` says that the test grades its model's answer
with that helper. When a prefetched answer arrives, the helper itself runs ahead in a worker thread,
in the scope the test will have (its judge, its question), and its grade is thrown away: the judge's
answer stays in the runtime, and the test's own `assert factuality(...)` finds it there. Running the
helper, not a copy of its request, is what keeps the two requests identical.

Under xdist a worker only learns its items as the controller hands them out, so its window runs over
what it holds: the running item, the next one, and the indices waiting in its queue. Never the whole
suite: every worker would make every call.

A test function whose first passing item did not use its prefetched answer (it calls the model
another way) gets no more prefetches; the waste is bounded by the window.
"""

from __future__ import annotations

import concurrent.futures
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from .graders import embedding, judged
from .models.handle import Model
from .models.types import Completion
from .settings import is_worker

PLUGIN_NAME = "distill-prefetch"
"""Registered under this name, so `-p no:distill-prefetch` turns prefetching off."""
MARKER = "distill_grade"
LOOKAHEAD_PER_SLOT = 4
GRADED_AHEAD: Mapping[str, Callable[..., Any]] = {helper.__name__: helper for helper in (
    judged.factuality, judged.semantic_similarity, judged.sentiment, judged.criteria_match, judged.text_quality,
    judged.custom_prompt, embedding.embedding_similarity)}
"""The helpers a `distill_grade` marker may name: their model calls can start ahead of the test."""
DIST = "distill_dist"
"""workerinput key: the controller's `--dist` mode (xdist sets a worker's own to "no")."""


@dataclass(frozen=True)
class AheadGrade:
    """One `distill_grade` marker: the helper and its arguments besides the output."""

    helper: Callable[..., Any]
    arguments: Mapping[str, Any]


@dataclass
class Ahead:
    """What was started for one item."""

    function: str
    model: Model | None = None
    completion: concurrent.futures.Future[Completion] | None = None


class Prefetcher:
    """A plugin object: sees the collected items, each item about to run, and each report."""

    def __init__(self, model_for: Callable[[str, int], Model], scope_for: Callable[[pytest.Item], AbstractContextManager[Any]],
                 helpers: Mapping[str, Callable[..., Any]], concurrency: int) -> None:
        self.model_for, self.scope_for, self.helpers = model_for, scope_for, helpers
        self.lookahead = concurrency * LOOKAHEAD_PER_SLOT
        self.worker_queue: Callable[[], list[int]] | None = None
        self.items: Sequence[pytest.Item] = ()
        self.position: dict[str, int] = {}
        self.ahead: dict[str, Ahead] = {}
        self.stopped: set[str] = set()
        """Test functions that call their model in their own way: no prefetch."""
        self.judged: set[str] = set()
        """Test functions whose first passing item decided whether prefetching serves them."""
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="distill-grade")

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = session.items
        self.worker_queue = worker_queue(session.config)
        self.position = {item.nodeid: index for index, item in enumerate(self.items)}
        for item in self.items:
            grade_markers(item, self.helpers)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        for upcoming in self.upcoming(item, nextitem):
            if upcoming.nodeid not in self.ahead:
                self.ahead[upcoming.nodeid] = self.start(upcoming)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ahead = self.ahead.get(report.nodeid)
        if ahead is None:
            return
        if report.when == "call" and report.passed and ahead.model and ahead.completion and ahead.function not in self.judged:
            self.judged.add(ahead.function)
            if ahead.model.runtime.demand(ahead.completion) == 1:
                self.stopped.add(ahead.function)
        if report.when == "teardown":
            del self.ahead[report.nodeid]

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[DIST] = node.config.getoption("dist", None)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After a whole run the helpers ahead are done or nearly (the tests waited for the same calls):
        let them end. After -x, --maxfail or Ctrl-C, drop the queued ones; those under way end when
        the runtime closes."""
        stopped = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        self.pool.shutdown(wait=not stopped, cancel_futures=stopped)

    # -- planning ------------------------------------------------------------------------------

    def upcoming(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.Item]:
        """The running item and the ones after it that this process will run, up to the window."""
        if self.worker_queue is None:
            start = self.position.get(item.nodeid)
            if start is not None:
                return list(self.items[start:start + self.lookahead])
        held = [item, *([nextitem] if nextitem is not None else [])]
        if self.worker_queue is not None:
            held += [self.items[index] for index in self.worker_queue()[:self.lookahead] if index < len(self.items)]
        return held[:self.lookahead]

    def start(self, item: pytest.Item) -> Ahead:
        """Start the item's completion (and, once it is there, its declared grades)."""
        function = item.nodeid.partition("[")[0]
        params = getattr(getattr(item, "callspec", None), "params", {})
        case, name = params.get("case"), params.get("model")
        if (function in self.stopped or "model" not in item.fixturenames or not isinstance(name, str)
                or not hasattr(case, "messages") or item.get_closest_marker("skip") is not None):
            return Ahead(function)
        model = self.model_for(name, params.get("distill_sample", 0))
        future = model.submit(case)
        declared = grade_markers(item, self.helpers)
        if declared:
            future.add_done_callback(lambda done: self.grade_ahead(item, case, declared, done))
        return Ahead(function, model, future)

    def grade_ahead(self, item: pytest.Item, case: Any, declared: list[AheadGrade],
                    done: concurrent.futures.Future[Completion]) -> None:
        """Runs where the answer arrived (the runtime's loop): queue the helpers, never wait here."""
        if done.cancelled() or done.exception() is not None:
            return
        for grade in declared:
            try:
                self.pool.submit(self.run_helper, item, grade, case, done.result())
            except RuntimeError:  # the pool is shut down: the session is over
                return

    def run_helper(self, item: pytest.Item, grade: AheadGrade, case: Any, output: Completion) -> None:
        """The helper as the test will call it, in the test's grading scope; its grade is dropped.

        A failure here is not reported: the test makes the same call and reports its own outcome."""
        with self.scope_for(item):
            try:
                grade.helper(output, **call_arguments(grade, case))
            except Exception:  # noqa: BLE001 - the test repeats this call and reports what it raises
                return


def grade_markers(item: pytest.Item, helpers: Mapping[str, Callable[..., Any]]) -> list[AheadGrade]:
    """The item's `distill_grade` markers, checked against the helpers' signatures."""
    declared = []
    for marker in item.iter_markers(MARKER):
        where = f"{item.nodeid}: @pytest.mark.{MARKER}"
        if len(marker.args) != 1 or marker.args[0] not in helpers:
            raise pytest.UsageError(f"{where} takes one helper name, one of {', '.join(sorted(helpers))}; "
                                    f"got {marker.args!r}")
        grade = AheadGrade(helpers[marker.args[0]], dict(marker.kwargs))
        try:
            inspect.signature(grade.helper).bind("output", **call_arguments(grade, None))
        except TypeError as exc:
            raise pytest.UsageError(f"{where}({marker.args[0]!r}): {exc}") from None
        declared.append(grade)
    return declared


def call_arguments(grade: AheadGrade, case: Any) -> dict[str, Any]:
    """The marker's arguments, with `expected` the case's reference where the helper requires one."""
    parameter = inspect.signature(grade.helper).parameters.get("expected")
    if parameter is None or parameter.default is not inspect.Parameter.empty or "expected" in grade.arguments:
        return dict(grade.arguments)
    return {**grade.arguments, "expected": getattr(case, "expected", None)}


def worker_queue(config: pytest.Config) -> Callable[[], list[int]] | None:
    """On an xdist worker, the item indices it has been handed and will run: None when not a worker.

    xdist keeps them in its worker loop's queue (`WorkerInteractor.torun`, a locked deque since
    xdist 3.6); without it (other versions) the list is empty, and a worker looks only at the item
    after the running one, which pytest passes to each item's protocol. Under `--dist worksteal` an
    idle worker takes the back half of another's queue: only the front half is sure to stay here.
    """
    if not is_worker(config):
        return None
    stealing = config.workerinput.get(DIST) == "worksteal"  # type: ignore[attr-defined]
    for plugin in config.pluginmanager.get_plugins():
        queue = getattr(plugin, "torun", None)
        if hasattr(plugin, "nextitem_index") and callable(getattr(queue, "lock", None)):
            def pending(queue: Any = queue) -> list[int]:
                with queue.lock() as held:
                    indices = [index for index in held if isinstance(index, int)]
                return indices[:(len(indices) + 1) // 2] if stealing else indices
            return pending
    return list
