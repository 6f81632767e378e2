"""Prefetch: make the model and judge calls of the tests about to run ahead of them, so that pytest's
one-at-a-time tests find their answers ready.

pytest runs one test after another, and each waits for its model and then for its judge. The tests of
one function differ only in their case, so the first test of a function shows what the others will
ask: while it runs, every call it makes is noted (the model under test's `complete`, and each
model-graded helper, see `calls.replayable`) as a plan in terms of the case: "complete the case with
these parameters; then `factuality` of that answer against the case's reference". The plan is replayed
for a window of `lookahead` tests ahead of the running one: their completions start at once, and each
helper runs, in a worker thread and in the scope the test will have, as soon as the answers it grades
are there; its grade is thrown away, its judge's answer stays in the runtime, where the test's own
identical call finds it. Running the helper itself, not a copy of its request, keeps the two requests
identical by construction.

Nothing is made ahead before a test has made that call itself, so a prefetched request is always the
test's request. Every later test is checked against the plan as it runs: at the first call that differs
(other parameters, other messages, a branch that skips the judge), the function gets no more prefetches
and its queued calls are withdrawn. What was made ahead and not used is counted (the runtime's
`unused`), and said in the summary. When the run stops (-x, Ctrl-C) nothing queued is started.

`@pytest.mark.distill_grade("factuality")` declares a helper call: it is made ahead for every test of
the function once the first test's completion is known, whether the test then calls it or not.

Under xdist a worker only learns its items as the controller hands them out, so its window runs over
what it holds: the running item, the next one, and the indices waiting in its queue. Never the whole
suite: every worker would make every call.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import grades
from .calls import COMPLETE, Call
from .graders import embedding, judged
from .models.batches import InBatch
from .models.client import SETTLE_S, ModelRuntime
from .models.handle import Model
from .models.types import Completion
from .plan import CaseField, Constant, NamedModel, Observed, Output, Plan, Role, Step, WholeCase, answered, grade_markers, to_step
from .settings import DIST, is_worker, item_params

LOOKAHEAD_PER_SLOT = 4
GRADED_AHEAD: Mapping[str, Callable[..., Any]] = {helper.__name__: helper for helper in (
    judged.factuality, judged.semantic_similarity, judged.sentiment, judged.criteria_match, judged.text_quality,
    judged.custom_prompt, embedding.embedding_similarity)}
"""The helpers a `distill_grade` marker may name: their model calls can start ahead of the test."""
UNUSED = "distill_prefetch_unused"
"""workeroutput key: how many calls a worker made ahead that no test used."""


@dataclass
class Ahead:
    """What was started for one item ahead of it: its answers, in plan order, and the steps started."""

    item: pytest.Item
    function: str
    case: Any
    model: Model
    outputs: list[concurrent.futures.Future[Completion]] = field(default_factory=list)
    started: set[int] = field(default_factory=set)


class Prefetcher:
    """A plugin object: sees the collected items, each item as it runs and each report."""

    def __init__(self, model_for: Callable[[str, int], Model], scope_for: Callable[[pytest.Item], AbstractContextManager[Any]],
                 helpers: Mapping[str, Callable[..., Any]], concurrency: int, batch: bool = False) -> None:
        self.model_for, self.scope_for, self.helpers = model_for, scope_for, helpers
        self.lookahead = concurrency * LOOKAHEAD_PER_SLOT
        self.batch = batch
        """--distill-batch: the window is every test of this process, its calls queued for a batch."""
        self.reached = 0
        """With batches, serial: the items up to here were started ahead."""
        self.running = 0
        """Helpers submitted to the pool and not finished (`settled` waits for none)."""
        self.idle = threading.Condition()
        self.worker_queue: Callable[[], list[int]] | None = None
        self.items: Sequence[pytest.Item] = ()
        self.position: dict[str, int] = {}
        self.plans: dict[str, Plan] = {}
        self.ahead: dict[str, Ahead] = {}
        self.lock = threading.RLock()
        self.halted = False
        self.runtime: ModelRuntime | None = None
        self.unused_elsewhere = 0
        """Unused calls reported by xdist workers."""
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="distill-grade")

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = session.items
        self.worker_queue = worker_queue(session.config)
        self.position = {item.nodeid: index for index, item in enumerate(self.items)}
        for item in self.items:
            grade_markers(item, self.helpers)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        for upcoming in self.upcoming(item, nextitem):
            if upcoming.nodeid not in self.ahead:
                self.start(upcoming)
        try:
            return (yield)
        except BaseException:
            self.halt()
            raise
        finally:
            if item.session.shouldfail or item.session.shouldstop:
                self.halt()

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Innermost around the test body, inside its grading scope: listen to the calls it makes."""
        scope = grades.current()
        params = item_params(item)
        observed = Observed(item, function_of(item), params.get("case"))
        if scope is not None and "model" in getattr(item, "fixturenames", ()):
            scope.listener = lambda call: self.observe(observed, call)
        try:
            return (yield)
        except (KeyboardInterrupt, pytest.exit.Exception):
            self.halt()
            raise
        except BaseException as exc:
            if ending(item, exc):
                self.halt()
            raise
        finally:
            self.finish(observed)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.ahead.pop(report.nodeid, None)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.unused_elsewhere += getattr(node, "workeroutput", {}).get(UNUSED, 0)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After a whole run the helpers ahead are done or nearly (the tests waited for the same calls):
        let them end. After -x, --maxfail or Ctrl-C, nothing queued starts; those under way end when
        the runtime closes."""
        stopped = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        if stopped:
            self.halt()
        self.pool.shutdown(wait=not stopped, cancel_futures=stopped)
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[UNUSED] = self.unused()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        unused = self.unused() + self.unused_elsewhere
        if unused:
            terminalreporter.write_line(f"prefetch: {unused} call{'s' if unused != 1 else ''} not used")

    def unused(self) -> int:
        return self.runtime.unused if self.runtime is not None else 0

    # -- learning and checking the plan --------------------------------------------------------

    def plan(self, function: str, item: pytest.Item) -> Plan:
        plan = self.plans.get(function)
        if plan is None:
            plan = self.plans[function] = Plan(grade_markers(item, self.helpers))
        return plan

    def observe(self, observed: Observed, call: Call) -> None:
        """A call of the running test: learn it as the next step of the plan, or check it against it."""
        with self.lock:
            plan = self.plan(observed.function, observed.item)
            declared = any(call.target is step.target for step in plan.declared)
            step = None if declared else to_step(call, observed.case, observed.outputs)
            if call.target == COMPLETE:
                observed.outputs.append(call.result)
            if plan.stopped or declared:
                return
            if step is None:
                if call.target == COMPLETE:  # the model asked in the test's own way: nothing to repeat
                    self.stop(plan, observed.function)
                return  # a helper on something only this test has (another model's answer): not planned
            if not plan.learned and plan.learner in (None, observed.item.nodeid):
                plan.learner = observed.item.nodeid
                plan.steps.append(step)
                observed.steps += 1
                self.extend(observed.function)
                return
            index, observed.steps = observed.steps, observed.steps + 1
            if index >= len(plan.steps) or not plan.steps[index].same(step):
                self.stop(plan, observed.function)
            elif not plan.ready(plan.steps[index]):
                plan.confirmed.add(id(plan.steps[index]))
                self.extend(observed.function)

    def extend(self, function: str) -> None:
        """The plan grew: follow it for the items ahead."""
        for ahead in list(self.ahead.values()):
            if ahead.function == function:
                self.advance(ahead)

    def finish(self, observed: Observed) -> None:
        """The test ended: the plan is learnt, or the test made fewer calls than planned."""
        with self.lock:
            plan = self.plans.get(observed.function)
            if plan is None or plan.stopped:
                return
            if not plan.learned and plan.learner == observed.item.nodeid:
                plan.learned = bool(plan.steps)
                plan.learner = observed.item.nodeid if plan.steps else None
            elif plan.learned and observed.steps != len(plan.steps):
                self.stop(plan, observed.function)

    def stop(self, plan: Plan, function: str) -> None:
        """The tests of `function` do not follow the plan: no more calls ahead, the queued ones withdrawn."""
        plan.stopped = True
        for ahead in self.ahead.values():
            if ahead.function == function:
                for future in ahead.outputs:
                    ahead.model.runtime.withdraw(future)

    def halt(self) -> None:
        """The run stops: nothing more is started ahead, and nothing queued ahead is sent."""
        with self.lock:
            if self.halted:
                return
            self.halted = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.runtime is not None:
            self.runtime.halt()

    # -- making calls ahead --------------------------------------------------------------------

    def upcoming(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.Item]:
        """The running item and the ones after it that this process will run, up to the window."""
        if self.worker_queue is None:
            start = self.position.get(item.nodeid)
            if start is not None and self.batch:  # every item at the first: later ones have nothing new to see
                start, self.reached = max(start, self.reached), len(self.items)
                return list(self.items[start:])
            if start is not None:
                return list(self.items[start:start + self.lookahead])
        held = [item, *([nextitem] if nextitem is not None else [])]
        window = len(self.items) if self.batch else self.lookahead
        if self.worker_queue is not None:
            held += [self.items[index] for index in self.worker_queue()[:window] if index < len(self.items)]
        return held[:window]

    def start(self, item: pytest.Item) -> None:
        """Follow the item's plan as far as it is known (the rest as it is learnt or as answers arrive)."""
        params = item_params(item)
        case, name = params.get("case"), params.get("model")
        if ("model" not in getattr(item, "fixturenames", ()) or not isinstance(name, str) or not hasattr(case, "messages")
                or any(item.iter_markers("skip")) or any(item.iter_markers("skipif"))):
            return
        function = function_of(item)
        if self.plan(function, item).stopped or self.halted:
            return
        model = self.model_for(name, params.get("distill_sample", 0))
        self.runtime = model.runtime
        if self.batch:
            self.runtime.on_settle = self.settled
        ahead = self.ahead[item.nodeid] = Ahead(item, function, case, model)
        self.advance(ahead)

    def advance(self, ahead: Ahead) -> None:
        """Start each planned call of an item ahead whose inputs are there. Also runs where an answer
        arrived (the runtime's loop): it queues the helpers, never waits."""
        with self.lock:
            plan = self.plans.get(ahead.function)
            if plan is None or plan.stopped or self.halted or plan.learner == ahead.item.nodeid:
                return
            for step in (*plan.steps, *plan.declared):
                if id(step) in ahead.started or not plan.ready(step):
                    continue
                if step.target == COMPLETE:
                    ahead.started.add(id(step))
                    with ModelRuntime.ahead():
                        future = ahead.model.submit(ahead.case, **dict(self.arguments(step, ahead)[1]))
                    ahead.outputs.append(future)
                    future.add_done_callback(lambda _: self.advance(ahead))
                    continue
                needed = step.outputs()
                if any(index >= len(ahead.outputs) or not ahead.outputs[index].done() for index in needed):
                    continue
                ahead.started.add(id(step))
                if all(answered(ahead.outputs[index]) for index in needed):
                    self.submit_helper(ahead, step)

    def arguments(self, step: Step, ahead: Ahead) -> tuple[list[Any], dict[str, Any]]:
        """The step's arguments for this item."""
        return [self.value(role, ahead) for role in step.args], {name: self.value(role, ahead) for name, role in step.kwargs}

    def value(self, role: Role, ahead: Ahead) -> Any:
        match role:
            case WholeCase():
                return ahead.case
            case CaseField(name):
                return getattr(ahead.case, name)
            case Output(index, as_text):
                answer = ahead.outputs[index].result()
                return answer.text if as_text else answer
            case NamedModel(name):
                return self.model_for(name, 0)
            case Constant(value):
                return value

    def submit_helper(self, ahead: Ahead, step: Step) -> None:
        with self.idle:
            self.running += 1
        try:
            self.pool.submit(self.run_helper, ahead, step)
        except RuntimeError:  # the pool is shut down: the session is over
            self.helper_done()

    def helper_done(self) -> None:
        with self.idle:
            self.running -= 1
            self.idle.notify_all()

    def settled(self) -> None:
        """Wait until no helper runs ahead: with batches, each has queued its judge's call by then."""
        with self.idle:
            self.idle.wait_for(lambda: self.running == 0 or self.halted, timeout=SETTLE_S)

    def run_helper(self, ahead: Ahead, step: Step) -> None:
        """The helper as the test will call it, in the test's grading scope; its grade is dropped.

        A failure here is not reported: the test makes the same call and reports its own outcome. With
        batches, a call of the helper that waits in a batch stops it; it runs again once that call is
        answered (its next call, if it makes one, goes in the next batch)."""
        try:
            plan = self.plans.get(ahead.function)
            if plan is None or plan.stopped or self.halted:
                return
            with self.scope_for(ahead.item), ModelRuntime.ahead():
                try:
                    args, kwargs = self.arguments(step, ahead)
                    step.target(*args, **kwargs)
                except InBatch as waiting:
                    waiting.future.add_done_callback(lambda _: self.submit_helper(ahead, step))
                except Exception:  # the test repeats this call and reports what it raises
                    return
        finally:
            self.helper_done()


def ending(item: pytest.Item, exc: BaseException) -> bool:
    """Whether this failure is the one that stops the run (-x, --maxfail): then nothing queued ahead
    should start while pytest formats its report."""
    maxfail = item.config.option.maxfail
    skipped = isinstance(exc, pytest.skip.Exception) or item.get_closest_marker("xfail") is not None
    return bool(maxfail) and not skipped and item.session.testsfailed + 1 >= maxfail


def function_of(item: pytest.Item) -> str:
    return item.nodeid.partition("[")[0]


def worker_queue(config: pytest.Config) -> Callable[[], list[int]] | None:
    """On an xdist worker, the item indices it has been handed and will run: None when not a worker.

    xdist keeps them in its worker loop's queue (`WorkerInteractor.torun`, a locked deque since
    xdist 3.6); without it (other versions) the list is empty, and a worker looks only at the item
    after the running one, which pytest passes to each item's protocol. Under `--dist worksteal` an
    idle worker takes the back half of another's queue: only the front half is sure to stay here.
    """
    if not is_worker(config):
        return None
    stealing = getattr(config, "workerinput", {}).get(DIST) == "worksteal"
    for plugin in config.pluginmanager.get_plugins():
        queue = getattr(plugin, "torun", None)
        if hasattr(plugin, "nextitem_index") and callable(getattr(queue, "lock", None)):
            def pending(queue: Any = queue) -> list[int]:
                with queue.lock() as held:
                    indices = [index for index in held if isinstance(index, int)]
                return indices[:(len(indices) + 1) // 2] if stealing else indices
            return pending
    return list
