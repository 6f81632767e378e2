"""The one door to model APIs: every chat and embedding call of a process passes through `ModelRuntime`.

Tests are synchronous and run one after another, but an eval suite spends its time waiting for the
model. So all calls run on one asyncio loop in a background thread: one concurrency bound, one shared
back-off when the server says 429, and identical requests made once. A synchronous `chat()` is a
blocking wait on that loop; prefetching is the same call without the wait.

A model named `NAME:MODEL`, where NAME is a declared `Endpoint`, is MODEL on that endpoint's server:
each endpoint has its own client, key, concurrency bound, 429 pause and outage state, all on the one
loop. Everything a server sends back is read as hostile: an answer off the API's shape, an outage or
a key the SDK cannot send becomes a `ModelError` that names the model, the base URL and the problem,
never the key.

The `openai` SDK is imported when the first call starts, not with this module: it takes about a second
to import, which a session that never calls a model should not pay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import hashlib
import json
import math
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..untrusted import capped, printable
from .batches import Batches, InBatch
from .line import Gate, Line
from .retirements import gone_hint
from .types import LOCAL_PREFIX, RECORDED_PREFIX, Completion, Endpoint, ModelError
from .wire import OffShape, explained, read_chat, request_of

if TYPE_CHECKING:
    import openai

    from .cache import CompletionCache
    from .hf_process import ModelProcess
    from .recorded import RecordedModels

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429}
MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 30.0
SETTLE_S = 60.0
"""How long a test that waits for a call in a batch not sent yet gives prefetch to queue the calls ahead."""
WAIT_TICK_S = 1.0
"""While a caller waits longer than this for an answer, `on_wait(seconds waited)` is called once per tick."""
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")
_AHEAD: ContextVar[bool] = ContextVar("pytest_distill_ahead", default=False)
"""True while prefetch asks on a test's behalf (see `ModelRuntime.ahead`)."""


KNOWN_SHOWN = 10
"""An unknown model's error lists the server's models when there are at most this many, else the closest."""


def redact(text: str, secret: str | None) -> str:
    """Remove an API key, and anything shaped like one, from text meant for people."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)


def request_key(kind: str, payload: dict[str, Any]) -> str:
    """A stable digest of a request: the same request always gets the same key."""
    blob = json.dumps({"kind": kind, **payload}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def chat_key(model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0, **params: Any) -> str:
    """The key of a chat request: what in-flight dedupe, the memo and the disk cache know it by."""
    return request_key("chat", {"model": model, "messages": list(messages), "params": params, "sample": sample})


@dataclass(frozen=True)
class _Failure:
    """One attempt that failed: what to say (already redacted), the status, and the rest before the
    next attempt (None: another attempt would fail the same way). `answered`: the server said something."""

    message: str
    status: int | None = None
    param: str | None = None
    delay: float | None = None
    answered: bool = True
    unknown_model: bool = False
    """A 404 `model_not_found`: the error then lists the models the server knows."""


class ModelRuntime:
    """One process's model calls: bounded, deduplicated, retried with a back-off per endpoint.

    `endpoints` are the declared ones besides the default (`base_url`, `api_key`, else the OPENAI_*
    environment). Counters for progress, each counting distinct calls (a request joined while under
    way or after it finished counts once): `started`, `done`, `in_flight` (on the wire now),
    `retries`, `cache_hits`.

    Calls asked inside `ahead()` are speculation (prefetch, on a test's behalf): they wait behind the
    calls a test waits for, a failed one keeps its error for the test that asks next (so the test does
    not send it again), `halt()` drops those not yet sent, and `unused` counts the ones sent that no
    test asked for.
    """

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 request_timeout: float = 120.0, max_attempts: int = 6, cache: CompletionCache | None = None,
                 endpoints: Sequence[Endpoint] = (), batches: Batches | None = None) -> None:
        default = Line(Endpoint("", base_url, key=api_key))
        self._lines = {"": default, **{endpoint.name: Line(endpoint) for endpoint in endpoints}}
        self.base_url = base_url
        self.concurrency, self.request_timeout, self.max_attempts = concurrency, request_timeout, max_attempts
        self.cache = cache
        self.on_wait: Callable[[float], None] | None = None
        self.on_start: Callable[[], None] | None = None
        """Called once, on the first call's thread, when the SDK is loaded and the loop runs."""
        self.batches = batches
        """--distill-batch: the default endpoint's chat calls go through the Batch API."""
        if batches is not None:
            batches.explain = self._message
        self.on_settle: Callable[[], None] | None = None
        """With batches: waits until prefetch has queued what it can (see `_flush`)."""
        self.retries = self.started = self.done = self.in_flight = self.cache_hits = 0
        self._wanted: set[str] = set()
        """Keys a test (not prefetch) asked for."""
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
        self._local: ModelProcess | None = None
        self._recorded: RecordedModels | None = None
        self._refused: dict[str, set[str]] = {}
        """Optional parameters each model refused (see `chat`)."""

    def endpoints(self) -> dict[str, str]:
        """Each endpoint's base URL as reports may show it (never a key), by name ("" is the default)."""
        return {name: line.url for name, line in self._lines.items()}

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
        key = self._chat_key(model, messages, sample, params)
        if model.startswith(LOCAL_PREFIX):
            return self._known(key, None) or self._submit(key, lambda: self._local_chat(model, list(messages), params))
        if model.startswith(RECORDED_PREFIX):
            return self._known(key, None) or self._submit(key, lambda: self._recorded_chat(model, list(messages)))
        return self._known(key, self.cache) or self._submit(key, lambda: self._answer(key, model, list(messages), params))

    def uncache_chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
                     optional: Mapping[str, Any] | None = None, **params: Any) -> None:
        """Drop an answer from the disk cache: one found unusable (a judge's answer that is not the verdict
        asked for) is asked for again on the next run. This run keeps it, so its verdict stays one."""
        if self.cache is not None:
            self.cache.drop(self._chat_key(model, messages, sample, self._sendable(model, params, optional)))

    def _chat_key(self, model: str, messages: Sequence[dict[str, Any]], sample: int, params: Mapping[str, Any]) -> str:
        """`chat_key`, plus the server for a model on a declared endpoint: re-pointing an endpoint never
        serves the old server's cached answers."""
        line, _ = self._route(model)
        if line.endpoint.name:
            return chat_key(model, messages, sample=sample, **params, _server=line.url)
        return chat_key(model, messages, sample=sample, **params)

    def _sendable(self, model: str, params: Mapping[str, Any], optional: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters to send: `params`, and the optional ones this model has not refused."""
        with self._lock:
            refused = set(self._refused.get(model, ()))
        return {**{name: value for name, value in (optional or {}).items() if name not in refused}, **params}

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        key = request_key("embed", {"model": model, "input": list(texts)})
        return self.wait(self._known(key, None) or self._submit(key, lambda: self._embed(key, model, list(texts))))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """The result of a submitted call; while it takes long, `on_wait` is called about once a second.

        With batches, a call not answered yet is in a batch: asked ahead, it raises `InBatch` (the helper
        runs again when the answer is in); asked by a test, it sends what is queued first."""
        if self.batches is not None and not future.done():
            if _AHEAD.get():
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
        loop = self._ensure_loop()
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
            if self.on_settle is not None:
                self.on_settle()
            with self._lock:
                pending = list(self._pending)
            if all(self.batches.queued(key) for key in pending):
                break
            time.sleep(0.005)
        asyncio.run_coroutine_threadsafe(self.batches.flush(), loop)

    @property
    def paused_s(self) -> float:
        """How long calls still wait because a server said 429 (0 when none is paused)."""
        return max(line.paused_s for line in self._lines.values())

    @staticmethod
    @contextmanager
    def ahead() -> Iterator[None]:
        """Calls asked inside the block (in this thread) are speculation on a test's behalf."""
        token = _AHEAD.set(True)
        try:
            yield
        finally:
            _AHEAD.reset(token)

    @property
    def unused(self) -> int:
        """Calls asked ahead and sent that no test asked for: what speculation cost for nothing."""
        with self._lock:
            return len(self._guessed & self._sent)

    def halt(self) -> None:
        """The run stops (-x, Ctrl-C): drop the calls asked ahead that are not on the wire yet, and
        refuse new ones; calls that a test waits for go on."""
        with self._lock:
            self._halted = True
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop_queued(), self._loop).result(timeout=10)

    def withdraw(self, future: concurrent.futures.Future[Any]) -> None:
        """A call asked ahead that will not be needed: drop it unless it is on the wire or a test asked."""
        with self._lock:
            key = self._keys.get(future)
        if key is not None and self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._drop_queued({key}), self._loop)

    async def _drop_queued(self, keys: set[str] | None = None) -> None:
        for line in self._lines.values():
            for key in line.gate.queued() if line.gate is not None else ():
                call = self._calls.get(key)
                if call is not None and key not in self._wanted and (keys is None or key in keys):
                    call.cancel()

    def sdk(self) -> openai.OpenAI:
        """The default endpoint's synchronous SDK client, for the listing, file and job endpoints (its
        own retries on)."""
        import openai

        line = self._lines[""]
        with self._lock:
            if line.sync_client is None:
                line.sync_client = line.make(openai.OpenAI, self.request_timeout, max_retries=3)
            return line.sync_client

    @contextmanager
    def api_errors(self, endpoint: str, model: str = "") -> Iterator[None]:
        """Turn any SDK failure inside the block (a call on the default endpoint) into a `ModelError`
        that names the endpoint, the base URL and the server's explanation."""
        import openai

        line = self._lines[""]
        try:
            yield
            return
        except ModelError:
            raise
        except openai.APIStatusError as exc:
            failure = _Failure(self._message(exc), exc.status_code)
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            failure = _Failure(self._message(exc))
        raise ModelError(model, endpoint, failure.message, failure.status, base_url=line.url)

    def close(self) -> None:
        """Cancel the calls still under way (prefetched answers nobody waits for any more, e.g. after
        `-x`), so that no waiter blocks forever; close the clients, the `hf:` models' process and the loop
        thread. Safe twice."""
        if self._local is not None:
            self._local.close()
        for line in self._lines.values():
            if line.sync_client is not None:
                line.sync_client.close()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result(timeout=10)
        for line in self._lines.values():
            if line.async_client is not None:
                asyncio.run_coroutine_threadsafe(line.async_client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    # -- the loop ------------------------------------------------------------------------------

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
        loop = self._ensure_loop()
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

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop thread, started by the first call. The SDK is imported then too, on the caller's thread,
        so that no timed wait for an answer (progress, the 429 pause) includes the time it takes to import."""
        with self._lock:
            if self._loop is None:
                import openai  # noqa: F401

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

    def _route(self, model: str) -> tuple[Line, str]:
        """The endpoint a model name points at, and the model's name there: `local:llama3` is `llama3`
        on the endpoint `local`; a name whose prefix is no declared endpoint is the default's."""
        name, sep, rest = model.partition(":")
        line = self._lines.get(name) if sep and rest and name else None
        return (line, rest) if line is not None else (self._lines[""], model)

    def _client(self, line: Line, model: str, label: str) -> openai.AsyncOpenAI:
        """The endpoint's async client and its bound, made on the loop thread at first use; a client
        that cannot be made is an error of the call that needed it."""
        import openai

        if line.async_client is None:
            try:
                client = line.make(openai.AsyncOpenAI, self.request_timeout, max_retries=0)
            except ModelError as exc:
                problem = exc.message
            else:
                line.async_client = client
            if line.async_client is None:
                raise ModelError(model, label, problem, base_url=line.url)
            line.gate = Gate(self.concurrency, self._wanted.__contains__)
            line.went_down = asyncio.Event()
        return line.async_client

    async def _answer(self, key: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """A chat completion from the API, kept in the disk cache when there is one (`_known` reads it)."""
        completion = await self._chat(key, model, messages, params)
        if self.cache is not None:
            self.cache.put(key, completion)
        return completion

    async def _local_chat(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """An `hf:` model answers from a process of its own (models/hf_process.py), waited for in a worker
        thread: neither its torch nor its wait holds up the loop and the other calls. Not cached on disk:
        a retrained adapter keeps its folder's name."""
        from .hf_process import ModelProcess

        with self._lock:
            if self._local is None:
                self._local = ModelProcess()
        return await asyncio.to_thread(self._local.chat, model, messages, params)

    async def _recorded_chat(self, model: str, messages: list[dict[str, Any]]) -> Completion:
        """A `recorded:` model answers from its file, read once (in a worker thread: it may be large)."""
        from .recorded import RecordedModels

        with self._lock:
            if self._recorded is None:
                self._recorded = RecordedModels()
        return await asyncio.to_thread(self._recorded.chat, model, messages)

    async def _chat(self, key: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        line, served_as = self._route(model)
        label = "POST /chat/completions"
        client = self._client(line, model, label)

        import httpx2  # the SDK's HTTP library, loaded with it

        body, options = request_of(served_as, messages, params, line.options)

        async def send() -> Any:
            """The answer's JSON as the server sent it: read here, not by the SDK's models, so that an
            answer off the API's shape is told apart from a good one (a body that is no JSON is retried).
            Sent with the SDK's documented `post`: the typed `create` would walk the request against its
            TypedDicts on every call (a millisecond a call) to change nothing in a body that is JSON already."""
            response = await client.post("/chat/completions", cast_to=httpx2.Response, body=body, options=options)
            return response.json()

        if self.batches is not None and not line.endpoint.name:
            started = time.perf_counter()
            data = await self.batches.answer(key, client, line.url, model, body)
            latency = time.perf_counter() - started
        else:
            data, latency = await self._attempts(key, line, label, model, send)
        try:
            text, refusal, usage, served = read_chat(data)
        except OffShape as exc:
            problem = str(exc)
        else:
            return Completion(text=text, model=model, latency_s=latency, served_model=served, refusal=refusal, usage=usage)
        raise ModelError(model, label, f"the server's answer is off the API's shape: {problem}", base_url=line.url)

    async def _embed(self, key: str, model: str, texts: list[str]) -> list[list[float]]:
        line, served_as = self._route(model)
        label = "POST /embeddings"
        client = self._client(line, model, label)
        response, _ = await self._attempts(
            key, line, label, model, lambda: client.embeddings.create(model=served_as, input=texts, **line.params))
        try:
            vectors = [list(item.embedding) for item in sorted(response.data, key=lambda item: item.index)]
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelError(model, label, f"the server's answer is off the API's shape: {exc}", base_url=line.url) from None
        if len(vectors) != len(texts):
            raise ModelError(model, label, f"{len(vectors)} embeddings came back for {len(texts)} texts", base_url=line.url)
        return vectors

    async def _attempts(self, key: str, line: Line, endpoint: str, model: str,
                        send: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """Send with retries: 429 pauses every call to the endpoint (honouring Retry-After), 5xx and
        connection faults back off this call alone; anything else fails at once. A ladder that ends
        without the server ever answering marks the endpoint down: the calls still waiting for it
        error at once instead of each climbing the same ladder. No rest after the last attempt."""
        gate = line.gate
        assert gate is not None
        began, heard = time.monotonic(), False
        failure = _Failure("")
        for attempt in range(self.max_attempts):
            await gate.acquire(key)
            try:
                if self._halted and key not in self._wanted:
                    raise asyncio.CancelledError  # asked ahead of a run that has stopped: never sent
                if line.down:
                    break
                await asyncio.sleep(line.paused_s)
                self._sent.add(key)
                outcome = await self._try(send, model, attempt)
            finally:
                gate.release()
            if not isinstance(outcome, _Failure):
                return outcome
            failure = outcome
            if failure.answered:
                line.heard_at, heard = time.monotonic(), True
            if failure.status == 429 and failure.delay is not None:
                line.resume_at = max(line.resume_at, time.monotonic() + failure.delay)
            if failure.delay is None:
                hint = f" ({await self._known_models_hint(line, model)})" if failure.unknown_model else ""
                raise ModelError(model, endpoint, failure.message + hint, failure.status, failure.param, base_url=line.url)
            if attempt + 1 < self.max_attempts:
                self.retries += 1
                await self._rest(line, failure.delay)
        else:
            if not heard and line.heard_at < began and not line.down:
                line.down = (f"no answer from {line.url} in {self.max_attempts} attempts over "
                             f"{time.monotonic() - began:.0f} s (last: {failure.message}); the calls to it "
                             "still waiting error at once")
                assert line.went_down is not None
                line.went_down.set()
            if not line.down:
                raise ModelError(model, endpoint, f"gave up after {self.max_attempts} attempts; last: {failure.message}",
                                 base_url=line.url)
        raise ModelError(model, endpoint, line.down or failure.message, base_url=line.url)

    async def _try(self, send: Callable[[], Awaitable[T]], model: str, attempt: int) -> tuple[T, float] | _Failure:
        """One attempt: the answer and its latency, or what went wrong and whether to try again.

        Errors are turned into a `_Failure` here and raised by the caller, outside any handler, so no
        traceback reaches the SDK's frames (their locals hold the key and its headers)."""
        import openai

        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await send(), time.perf_counter() - started
        except openai.APIStatusError as exc:
            failure = self._status_failure(exc, model, attempt)
        except openai.APIConnectionError as exc:
            failure = _Failure(self._message(exc), delay=_backoff(attempt), answered=False)
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            failure = _Failure(self._message(exc), delay=_backoff(attempt))
        except openai.OpenAIError as exc:
            failure = _Failure(self._message(exc))
        except Exception as exc:  # what the SDK or httpx let through (a header it cannot encode)
            failure = _Failure(f"the request could not be sent: {type(exc).__name__}", answered=False)
        finally:
            self.in_flight -= 1
        return failure

    def _status_failure(self, exc: openai.APIStatusError, model: str, attempt: int) -> _Failure:
        """An HTTP error: 408, 409, 429 and 5xx are worth another attempt, after Retry-After if given."""
        message, status = self._message(exc), exc.status_code
        if status not in RETRYABLE_STATUS and status < 500:
            gone = gone_hint(model) if status == 404 else ""
            if gone:
                message += f" ({gone})"
            unknown = status == 404 and getattr(exc, "code", None) == "model_not_found" and not gone
            return _Failure(message, status, getattr(exc, "param", None), unknown_model=unknown)
        return _Failure(f"HTTP {status}: {message}", status, delay=_retry_after(exc) or _backoff(attempt))

    async def _known_models_hint(self, line: Line, model: str) -> str:
        """What to try instead of a model the server does not know: the models it lists (the closest
        few when it lists many), or where to look when it lists none."""
        if line.known_models is None:
            line.known_models = asyncio.ensure_future(self._list_models(line, model))
        known = await asyncio.shield(line.known_models)
        if not known:
            return f"GET {line.url}/models lists the models this server serves"
        if len(known) <= KNOWN_SHOWN:
            return f"this server knows: {', '.join(known)}"
        close = difflib.get_close_matches(model, known, n=KNOWN_SHOWN, cutoff=0.4)
        return (f"this server knows {len(known)} models" + (f"; the closest: {', '.join(close)}" if close else "")
                + f"; GET {line.url}/models lists them all")

    async def _list_models(self, line: Line, model: str) -> list[str]:
        import openai

        try:
            return sorted([card.id async for card in self._client(line, model, "GET /models").models.list(**line.params)])
        except (openai.OpenAIError, ModelError):
            return []

    @staticmethod
    async def _rest(line: Line, delay: float) -> None:
        """Wait `delay` seconds before the next attempt, or less if the endpoint goes down meanwhile."""
        assert line.went_down is not None
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(line.went_down.wait(), delay)

    def _message(self, exc: BaseException) -> str:
        import openai

        if isinstance(exc, json.JSONDecodeError):
            return f"the server's answer is not JSON ({exc.msg} at character {exc.pos})"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if isinstance(exc, openai.APIStatusError):
            message = explained(message, exc.body)
        secrets = [line.endpoint.key or os.environ.get(line.endpoint.key_env or "") for line in self._lines.values()]
        for secret in secrets:
            message = redact(message, secret)
        return capped(printable(redact(message, os.environ.get("OPENAI_API_KEY"))))


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


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """The server's Retry-After in seconds (at most `MAX_RETRY_AFTER_S`), or None when it is absent or
    unusable (not a number, `nan`, `inf`, zero or negative): then the back-off applies, never six
    attempts in a second."""
    value = exc.response.headers.get("retry-after")
    try:
        seconds = float(str(value)) if value else math.nan
    except ValueError:
        return None
    return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds > 0 else None


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2.0**attempt) * (0.75 + random.random() / 2)
