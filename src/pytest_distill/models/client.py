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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429}
MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 30.0
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class Completion:
    """A model's answer: `str(completion)` is its text, so it can be passed to any helper."""

    text: str
    model: str
    usage: Usage
    latency_s: float
    served_model: str = ""
    refusal: str | None = None

    def __str__(self) -> str:
        return self.text


class ModelError(Exception):
    """A model call that failed for a reason outside the test (network, auth, limits, server).

    The plugin reports it as an error of the test, not a failure of the model under test.
    """

    def __init__(self, model: str, endpoint: str, message: str, status: int | None = None) -> None:
        self.model, self.endpoint, self.status = model, endpoint, status
        where = f"{endpoint} for model {model!r}" if model else endpoint
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"{where} failed{code}: {message}")


def redact(text: str, secret: str | None) -> str:
    """Remove an API key, and anything shaped like one, from text meant for people."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)


def request_key(kind: str, payload: dict[str, Any]) -> str:
    """A stable digest of a request: the same request always gets the same key."""
    blob = json.dumps({"kind": kind, **payload}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ModelRuntime:
    """One process's model calls: bounded, deduplicated, retried with a shared back-off."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 request_timeout: float = 120.0, max_attempts: int = 6) -> None:
        self.base_url, self._api_key = base_url, api_key
        self.concurrency, self.request_timeout, self.max_attempts = concurrency, request_timeout, max_attempts
        self.retries = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._async_client: openai.AsyncOpenAI | None = None
        self._sync_client: openai.OpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._resume_at = 0.0
        self._calls: dict[str, asyncio.Future[Any]] = {}

    # -- public, synchronous -------------------------------------------------------------------

    def chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0, **params: Any) -> Completion:
        """A chat completion; waits for it. `sample` tells apart deliberate repeats of one request."""
        return self.submit_chat(model, messages, sample=sample, **params).result()

    def submit_chat(self, model: str, messages: Sequence[dict[str, Any]], *, sample: int = 0,
                    **params: Any) -> concurrent.futures.Future[Completion]:
        """Start a chat completion (or join the identical one under way) without waiting for it."""
        payload = {"model": model, "messages": list(messages), "params": params, "sample": sample}
        key = request_key("chat", payload)
        return self._submit(key, lambda: self._chat(model, list(messages), params))

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        key = request_key("embed", {"model": model, "input": list(texts)})
        return self._submit(key, lambda: self._embed(model, list(texts))).result()

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
        except openai.OpenAIError as exc:
            raise ModelError(model, endpoint, self._message(exc)) from None

    def close(self) -> None:
        """Close the clients and stop the loop thread; safe to call twice."""
        if self._sync_client is not None:
            self._sync_client.close()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._async_client is not None:
            asyncio.run_coroutine_threadsafe(self._async_client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    # -- the loop ------------------------------------------------------------------------------

    def _submit(self, key: str, start: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        loop = self._ensure_loop()

        async def shared() -> T:
            call = self._calls.get(key)
            if call is None:
                call = self._calls[key] = asyncio.ensure_future(start())
                call.add_done_callback(lambda done: done.exception() and self._calls.pop(key, None))
            return await asyncio.shield(call)

        return asyncio.run_coroutine_threadsafe(shared(), loop)

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
            await asyncio.sleep(max(0.0, self._resume_at - time.monotonic()))
            async with self._semaphore:
                started = time.perf_counter()
                try:
                    return await send(), time.perf_counter() - started
                except openai.APIStatusError as exc:
                    last = self._message(exc)
                    if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                        raise ModelError(model, endpoint, last, exc.status_code) from None
                    delay = _retry_after(exc) or _backoff(attempt)
                    if exc.status_code == 429:
                        self._resume_at = max(self._resume_at, time.monotonic() + delay)
                    last = f"HTTP {exc.status_code}: {last}"
                except (openai.APIConnectionError, openai.APIResponseValidationError) as exc:
                    last, delay = self._message(exc), _backoff(attempt)
                except openai.OpenAIError as exc:
                    raise ModelError(model, endpoint, self._message(exc)) from None
            self.retries += 1
            await asyncio.sleep(delay)
        raise ModelError(model, endpoint, f"gave up after {self.max_attempts} attempts; last: {last}")

    def _message(self, exc: BaseException) -> str:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return redact(message, self._api_key or os.environ.get("OPENAI_API_KEY"))


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value else None
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
