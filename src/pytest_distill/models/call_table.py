"""The call table: every model call of a process by its request key, whoever answers it.

Tests are synchronous and run one after another, but an eval suite spends its time waiting for the
model. So every call runs on one asyncio loop in a background thread, and the table makes sure an
identical request is made once: a call under way is joined, a finished answer is served from the memo
(or the disk cache, `cache.py`) without a trip through the loop. It also keeps the accounts of
speculation: calls asked inside `ahead()` (prefetch, on a test's behalf) wait behind the calls a test
waits for, a failed one keeps its error for the test that asks next, `halt()` drops those not sent,
and `unused` counts the ones sent that no test asked for. What a call does is not its business: it
runs the coroutine it is given (see `transport.py` and `router.py`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .cache import CompletionCache
    from .types import Completion

T = TypeVar("T")

_AHEAD: ContextVar[bool] = ContextVar("pytest_distill_ahead", default=False)
"""True while prefetch asks on a test's behalf (see `CallTable.ahead`)."""


def asked_ahead() -> bool:
    """Whether the current thread asks on a test's behalf (inside `CallTable.ahead()`)."""
    return _AHEAD.get()


def request_key(kind: str, payload: dict[str, Any]) -> str:
    """A stable digest of a request: the same request always gets the same key."""
    blob = json.dumps({"kind": kind, **payload}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def chat_key(model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0, **params: Any) -> str:
    """The key of a chat request: what in-flight dedupe, the memo and the disk cache know it by."""
    return request_key("chat", {"model": model, "messages": list(messages), "params": params, "sample": sample})


class CallTable:
    """Calls by request key: joined while under way, remembered once finished, counted.

    Counters, each counting distinct calls (a request joined while under way or after it finished
    counts once): `started`, `done`, `cache_hits`. `on_start` is called once, on the first call's
    thread, when the loop runs.
    """

    def __init__(self, cache: CompletionCache | None = None, on_start: Callable[[], None] | None = None) -> None:
        self.cache = cache
        self.on_start = on_start
        self.started = self.done = self.cache_hits = 0
        self._wanted: set[str] = set()
        """Keys a test (not prefetch) asked for."""
        self.wanted: Callable[[str], bool] = self._wanted.__contains__
        """Whether a test waits for the call of a key (the transports' gates serve those first)."""
        self._guessed: set[str] = set()
        """Keys asked ahead that no test asked for (yet)."""
        self._sent: set[str] = set()
        """Keys of calls put on the wire."""
        self._failures: dict[str, BaseException] = {}
        """Errors of calls asked ahead only, kept for the first test that asks."""
        self._halted = False
        self._keys: weakref.WeakKeyDictionary[concurrent.futures.Future[Any], str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: dict[str, asyncio.Future[Any]] = {}
        """Calls under way, by request key (touched on the loop thread only)."""
        self._pending: dict[str, concurrent.futures.Future[Any]] = {}
        """The outcome of each call under way, by request key, which its askers' futures follow."""
        self._answers: dict[str, Any] = {}
        """Results of finished calls by request key, read from any thread without a trip through the loop."""

    @staticmethod
    @contextmanager
    def ahead() -> Iterator[None]:
        """Calls asked inside the block (in this thread) are speculation on a test's behalf."""
        token = _AHEAD.set(True)
        try:
            yield
        finally:
            _AHEAD.reset(token)

    def submit(self, key: str, start: Callable[[], Awaitable[T]], *, cached: bool = False) -> concurrent.futures.Future[T]:
        """The answer of `key`: known already, joined while under way, or started with `start()` on the
        loop. `cached`: the answer is a `Completion` that the disk cache may give and keeps."""
        cache = self.cache if cached else None
        known = self._known(key, cache)
        if known is not None:
            return known
        if cache is not None:
            kept = cast("Callable[[], Awaitable[T]]", lambda: _kept(cache, key, cast("Callable[[], Awaitable[Completion]]", start)))
            return self._submit(key, kept)
        return self._submit(key, start)

    def pending(self) -> list[str]:
        """The keys of the calls under way."""
        with self._lock:
            return list(self._pending)

    def uncache(self, key: str) -> None:
        """Drop an answer from the disk cache (this process keeps it in the memo)."""
        if self.cache is not None:
            self.cache.drop(key)

    # -- what transports ask -----------------------------------------------------------------------

    def dropped(self, key: str) -> bool:
        """Whether the call is one asked ahead of a run that has stopped: it is never sent."""
        return self._halted and key not in self._wanted

    def sending(self, key: str) -> None:
        """The call goes on the wire now."""
        self._sent.add(key)

    # -- speculation ---------------------------------------------------------------------------------

    @property
    def unused(self) -> int:
        """Calls asked ahead and sent that no test asked for: what speculation cost for nothing."""
        with self._lock:
            return len(self._guessed & self._sent)

    def halt(self, queued: Callable[[], Iterable[str]]) -> None:
        """The run stops (-x, Ctrl-C): drop the calls asked ahead that are still `queued` (not on the
        wire), and refuse new ones; calls that a test waits for go on."""
        with self._lock:
            self._halted = True
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop(queued), self._loop).result(timeout=10)

    def withdraw(self, future: concurrent.futures.Future[Any], queued: Callable[[], Iterable[str]]) -> None:
        """A call asked ahead that will not be needed: drop it while it is `queued`, unless a test asked."""
        with self._lock:
            key = self._keys.get(future)
        if key is not None and self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop(queued, {key}), self._loop)

    async def _drop(self, queued: Callable[[], Iterable[str]], keys: set[str] | None = None) -> None:
        for key in queued():
            call = self._calls.get(key)
            if call is not None and key not in self._wanted and (keys is None or key in keys):
                call.cancel()

    # -- the loop ------------------------------------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop thread, started by the first call."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                loop.call_soon(ready.set)
                self._thread = threading.Thread(target=loop.run_forever, name="pytest-distill-models", daemon=True)
                self._thread.start()
                ready.wait(timeout=10)
                self._loop = loop
                if self.on_start is not None:
                    self.on_start()
            return self._loop

    def close(self, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Cancel the calls still under way (prefetched answers nobody waits for any more, e.g. after
        `-x`), so that no waiter blocks forever; run `closing()` on the loop and stop it. Safe twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def _known(self, key: str, cache: CompletionCache | None) -> concurrent.futures.Future[Any] | None:
        """The finished answer to a request, from this process's memo or the disk cache, as a done future.

        Found here, in the caller's thread, an answer costs no trip through the loop thread: that trip,
        two thread hand-offs, is most of what a cached or prefetched answer would cost otherwise."""
        ahead = _AHEAD.get()
        with self._lock:
            answer = self._answers.get(key)
            failure = None if ahead else self._failures.pop(key, None)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if failure is not None:
            future.set_exception(failure)
            self._asked(key, future, ahead)
            return future
        if answer is None and cache is not None:
            answer = cache.get(key)
            if answer is not None:
                with self._lock:
                    self.cache_hits, self.started, self.done = self.cache_hits + 1, self.started + 1, self.done + 1
                    answer = self._answers.setdefault(key, answer)
        if answer is None:
            return None
        future.set_result(answer)
        self._asked(key, future, ahead)
        return future

    def _submit(self, key: str, start: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start the call of `key`, or join the one under way: each asker gets a future of its own, fed
        from the call's, with no trip through the loop for a join (what a prefetched answer costs)."""
        ahead = _AHEAD.get()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if ahead and self._halted:
            _cancel(future)
            return future
        self._asked(key, future, ahead)  # before the call starts: a halt must see that a test wants it
        loop = self.loop()
        with self._lock:
            call = self._pending.get(key)
            answer = self._answers.get(key)
            if call is None and answer is None:
                call = self._pending[key] = concurrent.futures.Future()
                self.started += 1
                loop.call_soon_threadsafe(self._start, key, start, call)
        if call is None:
            future.set_result(cast(T, answer))
        else:
            call.add_done_callback(lambda done: _copy(done, future))
        return future

    def _start(self, key: str, start: Callable[[], Awaitable[Any]], shared: concurrent.futures.Future[Any]) -> None:
        """On the loop: the call's task, which settles the shared future when it ends."""
        call = self._calls[key] = asyncio.ensure_future(start())
        call.add_done_callback(lambda done: self._settle(key, done, shared))

    def _asked(self, key: str, future: concurrent.futures.Future[Any], ahead: bool) -> None:
        with self._lock:
            if ahead:
                if key not in self._wanted:
                    self._guessed.add(key)
            else:
                self._wanted.add(key)
                self._guessed.discard(key)
            self._keys[future] = key

    def _settle(self, key: str, call: asyncio.Future[Any], shared: concurrent.futures.Future[Any]) -> None:
        """A call ended: count it and keep its result. A failed one is forgotten, so asking again tries
        again; but when only prefetch asked, its error waits for the test's own ask, which is this call."""
        failure = None if call.cancelled() else call.exception()
        with self._lock:
            self.done += 1
            self._pending.pop(key, None)
            if not call.cancelled():
                if failure is None:
                    self._answers[key] = call.result()
                elif key not in self._wanted:
                    self._failures[key] = failure
        self._calls.pop(key, None)
        if call.cancelled():
            _cancel(shared)
        elif failure is not None:
            shared.set_exception(failure)
        else:
            shared.set_result(call.result())


async def _kept(cache: CompletionCache, key: str, start: Callable[[], Awaitable[Completion]]) -> Completion:
    """A completion from `start()`, kept in the disk cache (`_known` reads it)."""
    completion = await start()
    cache.put(key, completion)
    return completion


def _cancel(future: concurrent.futures.Future[Any]) -> None:
    """Cancel a future made outside an executor, telling `concurrent.futures.wait` too."""
    future.cancel()
    future.set_running_or_notify_cancel()


def _copy(done: concurrent.futures.Future[Any], future: concurrent.futures.Future[Any]) -> None:
    """Hand a call's outcome to one asker's future (unless that asker cancelled its own)."""
    with suppress(concurrent.futures.InvalidStateError):
        if done.cancelled():
            _cancel(future)
        elif done.exception() is not None:
            future.set_exception(done.exception())
        else:
            future.set_result(done.result())


async def _cancel_others() -> None:
    """Cancel every task of the running loop but this one, and let the cancellations land."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
