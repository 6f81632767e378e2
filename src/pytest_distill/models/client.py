"""The one door to model APIs: every chat and embedding call of a process passes through `ModelRuntime`.

Tests are synchronous and run one after another, but an eval suite spends its time waiting for the
model. So all calls run on one asyncio loop in a background thread: one concurrency bound, one shared
back-off when the server says 429, and identical requests made once. A synchronous `chat()` is a
blocking wait on that loop; prefetching is the same call without the wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import openai

from .types import LOCAL_PREFIX, Completion, ModelError, Usage

if TYPE_CHECKING:
    from .cache import CompletionCache
    from .hf import LocalModels

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429}
MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 30.0
WAIT_TICK_S = 1.0
"""While a caller waits longer than this for an answer, `on_wait(seconds waited)` is called once per tick."""
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


NOT_YET = ("a fine-tuned model exists once its job has succeeded: `pytest --distill --distill-wait` follows "
           "the job and prints the model's name")


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


class ModelRuntime:
    """One process's model calls: bounded, deduplicated, retried with a shared back-off.

    Counters for progress, each counting distinct calls (a request joined while under way or after it
    finished counts once): `started`, `done`, `in_flight` (on the wire now), `retries`, `cache_hits`.
    """

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 request_timeout: float = 120.0, max_attempts: int = 6, cache: CompletionCache | None = None) -> None:
        self.base_url, self._api_key = base_url, api_key
        self.concurrency, self.request_timeout, self.max_attempts = concurrency, request_timeout, max_attempts
        self.cache = cache
        self.on_wait: Callable[[float], None] | None = None
        self.retries = self.started = self.done = self.in_flight = self.cache_hits = 0
        self._demand: dict[str, int] = {}
        self._keys: weakref.WeakKeyDictionary[concurrent.futures.Future[Any], str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._async_client: openai.AsyncOpenAI | None = None
        self._sync_client: openai.OpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._resume_at = 0.0
        self._calls: dict[str, asyncio.Future[Any]] = {}
        """Calls under way, by request key (touched on the loop thread only)."""
        self._answers: dict[str, Any] = {}
        """Results of finished calls by request key, read from any thread without a trip through the loop."""
        self._local: LocalModels | None = None
        self._refused: dict[str, set[str]] = {}
        """Optional parameters each model refused (see `chat`)."""

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
        key = chat_key(model, messages, sample=sample, **params)
        if model.startswith(LOCAL_PREFIX):
            return self._known(key, None) or self._submit(key, lambda: self._local_chat(model, list(messages), params))
        return self._known(key, self.cache) or self._submit(key, lambda: self._answer(key, model, list(messages), params))

    def uncache_chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
                     optional: Mapping[str, Any] | None = None, **params: Any) -> None:
        """Drop an answer from the disk cache: one found unusable (a judge's answer that is not the verdict
        asked for) is asked for again on the next run. This run keeps it, so its verdict stays one."""
        if self.cache is not None:
            self.cache.drop(chat_key(model, messages, sample=sample, **self._sendable(model, params, optional)))

    def _sendable(self, model: str, params: Mapping[str, Any], optional: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters to send: `params`, and the optional ones this model has not refused."""
        with self._lock:
            refused = set(self._refused.get(model, ()))
        return {**{name: value for name, value in (optional or {}).items() if name not in refused}, **params}

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        key = request_key("embed", {"model": model, "input": list(texts)})
        return self.wait(self._known(key, None) or self._submit(key, lambda: self._embed(model, list(texts))))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """The result of a submitted call; while it takes long, `on_wait` is called about once a second."""
        started = time.monotonic()
        while self.on_wait is not None and not future.done():
            try:
                return future.result(timeout=WAIT_TICK_S)
            except concurrent.futures.TimeoutError:
                if future.done():
                    raise
                self.on_wait(time.monotonic() - started)
        return future.result()

    @property
    def paused_s(self) -> float:
        """How long every call still waits because the server said 429 (0 when not paused)."""
        return max(0.0, self._resume_at - time.monotonic())

    def demand(self, future: concurrent.futures.Future[Any]) -> int:
        """How many times the request behind a submitted `future` was asked for so far (started or joined):
        1 means nobody but its submitter asked; 0 that it is not a call of this runtime."""
        with self._lock:
            key = self._keys.get(future)
        return self._demand.get(key, 0) if key else 0

    def sdk(self) -> openai.OpenAI:
        """The synchronous SDK client, for the listing, file and job endpoints (its own retries on)."""
        with self._lock:
            if self._sync_client is None:
                self._sync_client = self._make_client(openai.OpenAI, max_retries=3)
            return self._sync_client

    @contextmanager
    def api_errors(self, endpoint: str, model: str = "") -> Iterator[None]:
        """Turn any SDK failure inside the block into a `ModelError` that names the endpoint."""
        try:
            yield
        except ModelError:
            raise
        except openai.APIStatusError as exc:
            raise ModelError(model, endpoint, self._message(exc), exc.status_code) from None
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise ModelError(model, endpoint, self._message(exc)) from None

    def close(self) -> None:
        """Cancel the calls still under way (prefetched answers nobody waits for any more, e.g. after
        `-x`), so that no waiter blocks forever; close the clients and stop the loop thread. Safe twice."""
        if self._sync_client is not None:
            self._sync_client.close()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result(timeout=10)
        if self._async_client is not None:
            asyncio.run_coroutine_threadsafe(self._async_client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    # -- the loop ------------------------------------------------------------------------------

    def _known(self, key: str, cache: CompletionCache | None) -> concurrent.futures.Future[Any] | None:
        """The finished answer to a request, from this process's memo or the disk cache, as a done future.

        Found here, in the caller's thread, an answer costs no trip through the loop thread: that trip,
        two thread hand-offs, is most of what a cached or prefetched answer would cost otherwise."""
        with self._lock:
            answer = self._answers.get(key)
        if answer is None and cache is not None:
            answer = cache.get(key)
            if answer is not None:
                with self._lock:
                    self.cache_hits, self.started, self.done = self.cache_hits + 1, self.started + 1, self.done + 1
                    answer = self._answers.setdefault(key, answer)
        if answer is None:
            return None
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(answer)
        self._asked(key, future)
        return future

    def _submit(self, key: str, start: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        loop = self._ensure_loop()

        async def shared() -> T:
            with self._lock:
                if key in self._answers:
                    return self._answers[key]
            call = self._calls.get(key)
            if call is None:
                with self._lock:
                    self.started += 1
                call = self._calls[key] = asyncio.ensure_future(start())
                call.add_done_callback(lambda done: self._settle(key, done))
            return await asyncio.shield(call)

        future = asyncio.run_coroutine_threadsafe(shared(), loop)
        self._asked(key, future)
        return future

    def _asked(self, key: str, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._demand[key] = self._demand.get(key, 0) + 1
            self._keys[future] = key

    def _settle(self, key: str, call: asyncio.Future[Any]) -> None:
        """A call ended: count it and keep its result; a failed one is forgotten, so asking again tries again."""
        with self._lock:
            self.done += 1
            if not call.cancelled() and call.exception() is None:
                self._answers[key] = call.result()
        self._calls.pop(key, None)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                loop.call_soon(ready.set)
                self._thread = threading.Thread(target=loop.run_forever, name="pytest-distill-models", daemon=True)
                self._thread.start()
                ready.wait(timeout=10)
                self._loop = loop
            return self._loop

    def _make_client(self, cls: type[T], **options: Any) -> T:
        try:
            return cls(base_url=self.base_url, api_key=self._api_key, timeout=self.request_timeout, **options)
        except openai.OpenAIError:
            raise ModelError("", "client", "OPENAI_API_KEY is not set: set it, or run offline with --distill-sim") from None

    def _client(self) -> openai.AsyncOpenAI:
        if self._async_client is None:
            self._async_client = self._make_client(openai.AsyncOpenAI, max_retries=0)
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._async_client

    async def _answer(self, key: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """A chat completion from the API, kept in the disk cache when there is one (`_known` reads it)."""
        completion = await self._chat(model, messages, params)
        if self.cache is not None:
            self.cache.put(key, completion)
        return completion

    async def _local_chat(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """An `hf:` model answers in a worker thread, so the loop goes on serving the other calls. Not
        cached on disk: a retrained adapter keeps its folder's name."""
        from .hf import LocalModels  # it imports this module; it imports torch only when a model loads

        with self._lock:
            if self._local is None:
                self._local = LocalModels()
        return await asyncio.to_thread(self._local.chat, model, messages, params)

    async def _chat(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        client = self._client()
        response, latency = await self._attempts(
            "POST /chat/completions", model, lambda: client.chat.completions.create(model=model, messages=messages, **params))
        if not response.choices:
            raise ModelError(model, "POST /chat/completions", "the answer has no choices")
        message = response.choices[0].message
        usage = response.usage
        return Completion(
            text=message.content or "", model=model, latency_s=latency, served_model=response.model,
            refusal=getattr(message, "refusal", None),
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage())

    async def _embed(self, model: str, texts: list[str]) -> list[list[float]]:
        client = self._client()
        response, _ = await self._attempts(
            "POST /embeddings", model, lambda: client.embeddings.create(model=model, input=texts))
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    async def _attempts(self, endpoint: str, model: str, send: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """Send with retries: 429 pauses every call of the process (honouring Retry-After), 5xx and
        connection faults back off this call alone; anything else fails at once."""
        assert self._semaphore is not None
        last = ""
        for attempt in range(self.max_attempts):
            async with self._semaphore:
                await asyncio.sleep(self.paused_s)
                started = time.perf_counter()
                self.in_flight += 1
                try:
                    return await send(), time.perf_counter() - started
                except openai.APIStatusError as exc:
                    last = self._message(exc)
                    if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                        if exc.status_code == 404 and model.startswith("ft:"):
                            last += f" ({NOT_YET})"
                        raise ModelError(model, endpoint, last, exc.status_code, getattr(exc, "param", None)) from None
                    delay = _retry_after(exc) or _backoff(attempt)
                    if exc.status_code == 429:
                        self._resume_at = max(self._resume_at, time.monotonic() + delay)
                    last = f"HTTP {exc.status_code}: {last}"
                except (openai.APIConnectionError, openai.APIResponseValidationError, json.JSONDecodeError) as exc:
                    last, delay = self._message(exc), _backoff(attempt)
                except openai.OpenAIError as exc:
                    raise ModelError(model, endpoint, self._message(exc)) from None
                finally:
                    self.in_flight -= 1
            self.retries += 1
            await asyncio.sleep(delay)
        raise ModelError(model, endpoint, f"gave up after {self.max_attempts} attempts; last: {last}")

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, json.JSONDecodeError):
            return f"the server's answer is not JSON ({exc.msg} at character {exc.pos})"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return redact(message, self._api_key or os.environ.get("OPENAI_API_KEY"))


async def _cancel_others() -> None:
    """Cancel every task of the running loop but this one, and let the cancellations land."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value else None
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
