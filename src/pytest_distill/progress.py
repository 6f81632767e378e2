"""A status line about the model calls, shown while a test has waited long for its answer, and one
about a stored dataset whose collection takes long.

With prefetch, tests mostly find their answers ready and pytest's own progress says enough. The
wait that needs words is the long one: a slow model, a window filling up, or a 429 that paused every
call. Then, on a terminal, a line says how far the calls are (done of started, in flight, retries,
the pause). Written from the main thread only (helpers running ahead in worker threads wait too),
through pytest's terminal reporter with output capture suspended, the way live logging does; never
on xdist workers, whose output no one sees, and never when the output is not a terminal (CI logs).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from .models.client import ModelRuntime
from .settings import is_worker

FIRST_AFTER_S = 2.0
EVERY_S = 5.0


def status_line(runtime: ModelRuntime) -> str:
    """`distill: 120/400 model calls done, 16 in flight, 3 retries, paused 25 s (rate limit)`, and with
    --distill-batch each batch under way: `batch batch_abc: in_progress 1,200/5,000`."""
    parts = [f"distill: {runtime.done}/{runtime.started} model calls done", f"{runtime.in_flight} in flight",
             f"{runtime.retries} retries"]
    if runtime.cache_hits:
        parts.append(f"{runtime.cache_hits} from the cache")
    if runtime.unsent:
        parts.append(f"{runtime.unsent} not sent (a model the server answered 404)")
    paused = runtime.paused_s
    if paused >= 0.5:
        parts.append(f"paused {paused:.0f} s (rate limit)")
    if runtime.batches is not None and runtime.batches.followed:
        parts.append(runtime.batches.status())
    return ", ".join(parts)


class Progress:
    """The runtime's `on_wait` hook: at most one line every few seconds, only during long waits."""

    def __init__(self, runtime: ModelRuntime, reporter: Any, capture: Any) -> None:
        self.runtime, self.reporter, self.capture = runtime, reporter, capture
        self.last = 0.0

    def __call__(self, waited_s: float) -> None:
        now = time.monotonic()
        if waited_s < FIRST_AFTER_S or now - self.last < EVERY_S or threading.current_thread() is not threading.main_thread():
            return
        self.last = now
        with self.capture.global_and_fixture_disabled():
            self.reporter.write_line(status_line(self.runtime))


class CollectionProgress:
    """`StoredCompletions`' progress hook: a line every few seconds once a dataset has taken long to
    collect (300 stored completions at half a second a messages call sat 20 s at "collecting ..."), e.g.
    `distill: collecting stored:split=test: 300 stored completions listed, 120/300 fetched`."""

    def __init__(self, reporter: Any, capture: Any) -> None:
        self.reporter, self.capture = reporter, capture
        self.spec, self.started, self.last = "", 0.0, 0.0

    def __call__(self, spec: str, listed: int, fetched: int, fetching: int) -> None:
        now = time.monotonic()
        if spec != self.spec:
            self.spec, self.started = spec, now
        if now - self.started < FIRST_AFTER_S or now - self.last < EVERY_S:
            return
        self.last = now
        with self.capture.global_and_fixture_disabled():
            self.reporter.write_line(f"distill: collecting {spec}: {listed} stored completions listed, "
                                     f"{fetched}/{fetching} fetched")


def attach(runtime: ModelRuntime, config: pytest.Config) -> None:
    """Show progress for this runtime when this process writes to a terminal."""
    shown = _terminal(config)
    if shown is not None:
        runtime.on_wait = Progress(runtime, *shown)


def collecting(config: pytest.Config) -> CollectionProgress | None:
    """Progress of a long collection when this process writes to a terminal."""
    shown = _terminal(config)
    return CollectionProgress(*shown) if shown is not None else None


def _terminal(config: pytest.Config) -> tuple[Any, Any] | None:
    """pytest's terminal reporter and capture manager, where this process's output is a terminal someone
    reads (never an xdist worker's, never a CI log)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or is_worker(config):
        return None
    tty = reporter.isatty  # a method since pytest 9, an attribute before
    return (reporter, capture) if (tty() if callable(tty) else tty) else None
