"""The one door to model APIs: every chat and embedding call of a process passes through `ModelRuntime`.

A thin facade over three parts, each testable alone: the router (`router.py`: a model name to where it
is answered), one transport per endpoint (`transport.py`: clients, bound, retries, 429 pauses, outage,
redaction) and the call table (`call_table.py`: one loop, in-flight dedupe, the memo and the disk
cache, prefetch's accounts). A synchronous `chat()` is a blocking wait on the table's loop;
prefetching is the same call without the wait.

The `openai` SDK is imported when the first call starts, not with this module: it takes about a second
to import, which a session that never calls a model should not pay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ..jsonl import DEFAULT_MAX_LINE_BYTES
from .batches import Batches, InBatch
from .call_table import CallTable, asked_ahead, chat_key, request_key
from .router import Route, Router
from .transport import Transport, redact, redactor
from .types import Completion, Endpoint, ModelError

if TYPE_CHECKING:
    import openai

    from .cache import CompletionCache

__all__ = ["ModelRuntime", "chat_key", "redact", "request_key"]

T = TypeVar("T")

SETTLE_S = 60.0
"""How long a test that waits for a call in a batch not sent yet gives prefetch to queue the calls ahead."""
WAIT_TICK_S = 1.0
"""While a caller waits longer than this for an answer, `on_wait(seconds waited)` is called once per tick."""


class ModelRuntime:
    """One process's model calls: bounded, deduplicated, retried with a back-off per endpoint.

    `endpoints` are the declared ones besides the default (`base_url`, `api_key`, else the OPENAI_*
    environment; `api`: chat or responses). Counters for progress, each counting distinct calls (a request joined while under
    way or after it finished counts once): `started`, `done`, `in_flight` (on the wire now),
    `retries`, `cache_hits`.

    Calls asked inside `ahead()` are speculation (prefetch, on a test's behalf): they wait behind the
    calls a test waits for, a failed one keeps its error for the test that asks next (so the test does
    not send it again), `halt()` drops those not yet sent, and `unused` counts the ones sent that no
    test asked for.
    """

    ahead: Callable[[], AbstractContextManager[None]] = staticmethod(CallTable.ahead)

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, api: str = "chat", concurrency: int = 8,
                 request_timeout: float = 120.0, max_attempts: int = 6, cache: CompletionCache | None = None,
                 endpoints: Sequence[Endpoint] = (), batches: Batches | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.base_url = base_url
        self.concurrency, self.request_timeout, self.max_attempts = concurrency, request_timeout, max_attempts
        self.on_wait: Callable[[float], None] | None = None
        self.on_start: Callable[[], None] | None = None
        """Called once, on the first call's thread, when the SDK is loaded and the loop runs."""
        self.batches = batches
        """--distill-batch: the default endpoint's chat calls go through the Batch API."""
        self.on_settle: Callable[[], None] | None = None
        """With batches: waits until prefetch has queued what it can (see `_flush`)."""
        self.table = CallTable(cache, on_start=self._started)
        everywhere = [Endpoint("", base_url, key=api_key, api=api), *endpoints]
        redacted = redactor(everywhere)
        self.router = Router({endpoint.name: Transport(endpoint, self.table, concurrency=concurrency,
                                                       request_timeout=request_timeout, max_attempts=max_attempts,
                                                       redacted=redacted, batches=None if endpoint.name else batches)
                              for endpoint in everywhere}, max_line_bytes)
        if batches is not None:
            batches.explain = self.router.transports[""].message
        self._lock = threading.Lock()
        self._refused: dict[str, set[str]] = {}
        """Optional parameters each model refused (see `chat`)."""

    @property
    def cache(self) -> CompletionCache | None:
        return self.table.cache

    @property
    def started(self) -> int:
        return self.table.started

    @property
    def done(self) -> int:
        return self.table.done

    @property
    def cache_hits(self) -> int:
        return self.table.cache_hits

    @property
    def retries(self) -> int:
        return sum(transport.retries for transport in self.router.transports.values())

    @property
    def in_flight(self) -> int:
        return sum(transport.in_flight for transport in self.router.transports.values())

    @property
    def unsent(self) -> int:
        """Calls that failed at once, unsent, because their model had answered 404 (see `Transport`)."""
        return sum(transport.unsent for transport in self.router.transports.values())

    @property
    def unused(self) -> int:
        """Calls asked ahead and sent that no test asked for: what speculation cost for nothing."""
        return self.table.unused

    @property
    def paused_s(self) -> float:
        """How long calls still wait because a server said 429 (0 when none is paused)."""
        return max(transport.paused_s for transport in self.router.transports.values())

    def endpoints(self) -> dict[str, str]:
        """Each endpoint's base URL as reports may show it (never a key), by name ("" is the default)."""
        return {name: transport.url for name, transport in self.router.transports.items()}

    # -- public, synchronous -------------------------------------------------------------------

    def chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
             optional: Mapping[str, Any] | None = None, **params: Any) -> Completion:
        """A chat completion; waits for it. `sample` tells apart deliberate repeats of one request.

        `optional` parameters are wished for, not needed: one the API refuses for this model (a 400 that
        names it, as reasoning models refuse `temperature=0`) is left out of this and every later call
        to the model."""
        while True:
            sent = self._sendable(model, params, optional)
            try:
                return self.wait(self.submit_chat(model, messages, sample=sample, **sent))
            except ModelError as exc:
                if exc.status != 400 or exc.param not in (optional or {}) or exc.param not in sent:
                    raise
                with self._lock:
                    self._refused.setdefault(model, set()).add(exc.param)

    def submit_chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
                    **params: Any) -> concurrent.futures.Future[Completion]:
        """Start a chat completion (or join the identical one under way) without waiting for it."""
        route = self.router.route(model)
        key = _chat_key(route, model, messages, sample, params)
        return self.table.submit(key, lambda: route.chat(key, list(messages), params), cached=route.cached)

    def uncache_chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
                     optional: Mapping[str, Any] | None = None, **params: Any) -> None:
        """Drop an answer from the disk cache: one found unusable (a judge's answer that is not the verdict
        asked for) is asked for again on the next run. This run keeps it, so its verdict stays one."""
        key = _chat_key(self.router.route(model), model, messages, sample, self._sendable(model, params, optional))
        self.table.uncache(key)

    def _sendable(self, model: str, params: Mapping[str, Any], optional: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters to send: `params`, and the optional ones this model has not refused."""
        with self._lock:
            refused = set(self._refused.get(model, ()))
        return {**{name: value for name, value in (optional or {}).items() if name not in refused}, **params}

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        route = self.router.route(model)
        key = request_key("embed", {"model": model, "input": list(texts)})
        return self.wait(self.table.submit(key, lambda: route.embed(key, list(texts))))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """The result of a submitted call; while it takes long, `on_wait` is called about once a second.

        With batches, a call not answered yet is in a batch: asked ahead, it raises `InBatch` (the helper
        runs again when the answer is in); asked by a test, it sends what is queued first."""
        if self.batches is not None and not future.done():
            if asked_ahead():
                raise InBatch(future)
            self._flush()
        started = time.monotonic()
        while self.on_wait is not None and not future.done():
            try:
                return future.result(timeout=WAIT_TICK_S)
            except concurrent.futures.TimeoutError:
                if future.done():
                    raise
                self.on_wait(time.monotonic() - started)
        return future.result()

    def _flush(self) -> None:
        """Send the queued calls in batches, once prefetch has queued what it can: its helpers are done,
        and every call under way waits in the queue (checked after a trip through the loop, so that a call
        whose answer just came has told prefetch, which may have asked the calls that follow from it)."""
        assert self.batches is not None
        loop = self.table.loop()
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
            if self.on_settle is not None:
                self.on_settle()
            if all(self.batches.queued(key) for key in self.table.pending()):
                break
            time.sleep(0.005)
        asyncio.run_coroutine_threadsafe(self.batches.flush(), loop)

    def halt(self) -> None:
        """The run stops (-x, Ctrl-C): drop the calls asked ahead that are not on the wire yet, and
        refuse new ones; calls that a test waits for go on."""
        self.table.halt(self.router.queued)

    def withdraw(self, future: concurrent.futures.Future[Any]) -> None:
        """A call asked ahead that will not be needed: drop it unless it is on the wire or a test asked."""
        self.table.withdraw(future, self.router.queued)

    def sdk(self) -> openai.OpenAI:
        """The default endpoint's synchronous SDK client, for the listing, file and job endpoints (its
        own retries on)."""
        return self.router.transports[""].sdk()

    def api_errors(self, endpoint: str, model: str = "") -> AbstractContextManager[None]:
        """Turn any SDK failure inside the block (a call on the default endpoint) into a `ModelError`
        that names the endpoint, the base URL and the server's explanation."""
        return self.router.transports[""].api_errors(endpoint, model)

    def close(self) -> None:
        """Cancel the calls still under way (prefetched answers nobody waits for any more, e.g. after
        `-x`), so that no waiter blocks forever; close the clients, the `hf:` models' process and the loop
        thread. Safe twice."""
        self.router.close()
        self.table.close(self.router.aclose)

    def _started(self) -> None:
        """The loop runs: the SDK is imported now, on the caller's thread, so that no timed wait for an
        answer (progress, the 429 pause) includes the time it takes to import."""
        import openai  # noqa: F401

        if self.on_start is not None:
            self.on_start()



def _chat_key(route: Route, model: str, messages: Sequence[dict[str, Any]], sample: int, params: Mapping[str, Any]) -> str:
    """`chat_key`, plus the route's salt (its server, its API) when it has one."""
    return chat_key(model, messages, sample=sample, **params, **route.salt)
