"""One endpoint's way to the wire: its clients and bound (`line.py`), the attempts of a call, the
shared pause when the server says 429, the outage state, and errors in words that never hold a key.

Everything a server sends back is read as hostile: an answer off the API's shape, an outage or a key
the SDK cannot send becomes a `ModelError` that names the model, the base URL and the problem. Which
calls to make, and which were made already, is the call table's business (`call_table.py`): a
transport only asks it whether a test waits for a call (`wanted`), whether a call asked ahead must be
dropped (`dropped`), and tells it when one goes on the wire (`sending`).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..untrusted import capped, printable
from .line import Gate, Line
from .retirements import gone_hint
from .types import Completion, Endpoint, ModelError
from .wire import OffShape, explained, read_chat, read_response, request_of, responses_request_of

if TYPE_CHECKING:
    import openai

    from .batches import Batches

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429}
MAX_RETRY_AFTER_S = 120.0
FIRST_BACKOFF_S = 0.5
"""The wait before the second attempt; each later one doubles it (with jitter), up to MAX_BACKOFF_S."""
MAX_BACKOFF_S = 30.0
KNOWN_SHOWN = 10
"""An unknown model's error lists the server's models when there are at most this many, else the closest."""
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


def redact(text: str, secret: str | None) -> str:
    """Remove an API key, and anything shaped like one, from text meant for people."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)


def redactor(endpoints: list[Endpoint]) -> Callable[[str], str]:
    """Text without the key of any of `endpoints`, nor OPENAI_API_KEY, nor anything shaped like a key."""

    def redacted(text: str) -> str:
        for endpoint in endpoints:
            text = redact(text, endpoint.key or os.environ.get(endpoint.key_env or ""))
        return redact(text, os.environ.get("OPENAI_API_KEY"))

    return redacted


class Asking(Protocol):
    """What a transport asks of the calls it makes (the call table answers)."""

    wanted: Callable[[str], bool]
    """Whether a test waits for the call of a key (else it was asked ahead)."""

    def dropped(self, key: str) -> bool:
        """Whether a call asked ahead must not be sent (the run stopped)."""

    def sending(self, key: str) -> None:
        """The call of a key goes on the wire now."""


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


class Transport:
    """The calls to one endpoint: bounded, retried with a back-off, paused together on a 429, failed
    together once the endpoint is down, and a model the server answered 404 fails at once afterwards (but a
    fine-tune, which a job under way may yet make).
    Counters: `retries`, `in_flight` (on the wire now), `unsent` (calls of a model known to be gone)."""

    def __init__(self, endpoint: Endpoint, asking: Asking, *, concurrency: int = 8, request_timeout: float = 120.0,
                 max_attempts: int = 6, redacted: Callable[[str], str] | None = None, batches: Batches | None = None) -> None:
        self.line = Line(endpoint)
        self.asking = asking
        self.concurrency, self.request_timeout, self.max_attempts = concurrency, request_timeout, max_attempts
        self.redacted = redacted or redactor([endpoint])
        self.batches = batches
        """--distill-batch: chat calls go through the Batch API."""
        self.retries = self.in_flight = self.unsent = 0
        self.gone: dict[tuple[str, str], asyncio.Future[_Failure]] = {}
        """By (request label, model): the 404 a model got, which its later calls get at once, unsent."""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL as reports may show it."""
        return self.line.url

    @property
    def paused_s(self) -> float:
        """How long calls still wait because the server said 429."""
        return self.line.paused_s

    def queued(self) -> list[str]:
        """The keys of the calls waiting for a place on the wire (loop thread only)."""
        return self.line.gate.queued() if self.line.gate is not None else []

    # -- the calls -------------------------------------------------------------------------------------

    async def chat(self, key: str, model: str, served_as: str, messages: list[dict[str, Any]],
                   params: dict[str, Any]) -> Completion:
        """A chat completion of `served_as` (what the server calls `model`)."""
        line = self.line
        responses = line.endpoint.api == "responses"
        path = "/responses" if responses else "/chat/completions"
        label = f"POST {path}"
        client = self.client(model, label)

        import httpx2  # the SDK's HTTP library, loaded with it

        body, options = (responses_request_of if responses else request_of)(served_as, messages, params, line.options)

        async def send() -> Any:
            """The answer's JSON as the server sent it: read here, not by the SDK's models, so that an
            answer off the API's shape is told apart from a good one (a body that is no JSON is retried).
            Sent with the SDK's documented `post`: the typed `create` would walk the request against its
            TypedDicts on every call (a millisecond a call) to change nothing in a body that is JSON already."""
            response = await client.post(path, cast_to=httpx2.Response, body=body, options=options)
            return response.json()

        if self.batches is not None:
            started = time.perf_counter()
            data = await self.batches.answer(key, client, line.url, model, body, "/v1/responses" if responses else "/v1/chat/completions")
            latency = time.perf_counter() - started
        else:
            data, latency = await self._attempts(key, label, model, send)
        try:
            text, refusal, usage, served = (read_response if responses else read_chat)(data)
        except OffShape as exc:
            problem = str(exc)
        else:
            return Completion(text=text, model=model, latency_s=latency, served_model=served, refusal=refusal, usage=usage)
        raise ModelError(model, label, f"the server's answer is off the API's shape: {problem}", base_url=line.url)

    async def embed(self, key: str, model: str, served_as: str, texts: list[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        line, label = self.line, "POST /embeddings"
        client = self.client(model, label)
        response, _ = await self._attempts(
            key, label, model, lambda: client.embeddings.create(model=served_as, input=texts, **line.params))
        try:
            vectors = [list(item.embedding) for item in sorted(response.data, key=lambda item: item.index)]
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelError(model, label, f"the server's answer is off the API's shape: {exc}", base_url=line.url) from None
        if len(vectors) != len(texts):
            raise ModelError(model, label, f"{len(vectors)} embeddings came back for {len(texts)} texts", base_url=line.url)
        return vectors

    def client(self, model: str, label: str) -> openai.AsyncOpenAI:
        """The endpoint's async client and its bound, made on the loop thread at first use; a client
        that cannot be made is an error of the call that needed it."""
        import openai

        line = self.line
        if line.async_client is None:
            try:
                client = line.make(openai.AsyncOpenAI, self.request_timeout, max_retries=0)
            except ModelError as exc:
                problem = exc.message
            else:
                line.async_client = client
            if line.async_client is None:
                raise ModelError(model, label, problem, base_url=line.url)
            line.gate = Gate(self.concurrency, self.asking.wanted)
            line.went_down = asyncio.Event()
        return line.async_client

    async def _attempts(self, key: str, endpoint: str, model: str, send: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """Send with retries: 429 pauses every call to the endpoint (honouring Retry-After), 5xx and
        connection faults back off this call alone; anything else fails at once. A ladder that ends
        without the server ever answering marks the endpoint down: the calls still waiting for it
        error at once instead of each climbing the same ladder. No rest after the last attempt."""
        line = self.line
        gate = line.gate
        assert gate is not None
        began, heard = time.monotonic(), False
        failure = _Failure("")
        for attempt in range(self.max_attempts):
            await gate.acquire(key)
            try:
                if self.asking.dropped(key):
                    raise asyncio.CancelledError  # asked ahead of a run that has stopped: never sent
                if line.down:
                    break
                gone = self.gone.get((endpoint, model))
                outcome: tuple[T, float] | _Failure
                if gone is not None:
                    self.unsent += 1
                    outcome = await asyncio.shield(gone)
                else:
                    await asyncio.sleep(line.paused_s)
                    self.asking.sending(key)
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
                if failure.status == 404 and failure.answered and not model.startswith("ft:"):  # a fine-tune may yet be made
                    if (endpoint, model) not in self.gone:
                        self.gone[(endpoint, model)] = asyncio.ensure_future(self._gone(model, failure))
                    failure = await asyncio.shield(self.gone[(endpoint, model)])
                raise ModelError(model, endpoint, failure.message, failure.status, failure.param, base_url=line.url)
            if attempt + 1 < self.max_attempts:
                self.retries += 1
                await self._rest(failure.delay)
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
            failure = _Failure(self.message(exc), delay=_backoff(attempt), answered=False)
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            failure = _Failure(self.message(exc), delay=_backoff(attempt))
        except openai.OpenAIError as exc:
            failure = _Failure(self.message(exc))
        except Exception as exc:  # what the SDK or httpx let through (a header it cannot encode)
            failure = _Failure(f"the request could not be sent: {type(exc).__name__}", answered=False)
        finally:
            self.in_flight -= 1
        return failure

    def _status_failure(self, exc: openai.APIStatusError, model: str, attempt: int) -> _Failure:
        """An HTTP error: 408, 409, 429 and 5xx are worth another attempt, after Retry-After if given."""
        message, status = self.message(exc), exc.status_code
        if status not in RETRYABLE_STATUS and status < 500:
            gone = gone_hint(model) if status == 404 else ""
            if gone:
                message += f" ({gone})"
            unknown = status == 404 and getattr(exc, "code", None) == "model_not_found" and not gone
            return _Failure(message, status, getattr(exc, "param", None), unknown_model=unknown)
        return _Failure(f"HTTP {status}: {message}", status, delay=_retry_after(exc) or _backoff(attempt))

    async def _gone(self, model: str, failure: _Failure) -> _Failure:
        """A 404: the model (or the path) is not on this server, and will not be for the rest of the run.
        Its error, with the models the server knows when it said `model_not_found`, is kept in `gone`:
        every later call of the model fails at once with the same words (one line in the summary), unsent."""
        hint = f" ({await self._known_models_hint(model)})" if failure.unknown_model else ""
        return _Failure(failure.message + hint, failure.status, failure.param, answered=False)

    async def _known_models_hint(self, model: str) -> str:
        """What to try instead of a model the server does not know: the models it lists (the closest
        few when it lists many), or where to look when it lists none."""
        line = self.line
        if line.known_models is None:
            line.known_models = asyncio.ensure_future(self._list_models(model))
        known = await asyncio.shield(line.known_models)
        if not known:
            return f"GET {line.url}/models lists the models this server serves"
        if len(known) <= KNOWN_SHOWN:
            return f"this server knows: {', '.join(known)}"
        close = difflib.get_close_matches(model, known, n=KNOWN_SHOWN, cutoff=0.4)
        return (f"this server knows {len(known)} models" + (f"; the closest: {', '.join(close)}" if close else "")
                + f"; GET {line.url}/models lists them all")

    async def _list_models(self, model: str) -> list[str]:
        import openai

        try:
            return sorted([card.id async for card in self.client(model, "GET /models").models.list(**self.line.params)])
        except (openai.OpenAIError, ModelError):
            return []

    async def _rest(self, delay: float) -> None:
        """Wait `delay` seconds before the next attempt, or less if the endpoint goes down meanwhile."""
        assert self.line.went_down is not None
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.line.went_down.wait(), delay)

    def message(self, exc: BaseException) -> str:
        """What went wrong, in the server's words where it gave some, without any key."""
        import openai

        if isinstance(exc, json.JSONDecodeError):
            return f"the server's answer is not JSON ({exc.msg} at character {exc.pos})"
        if isinstance(exc, openai.APIStatusError):
            message = explained(exc.status_code, exc.body)
        else:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return capped(printable(self.redacted(message)))

    # -- the synchronous client ------------------------------------------------------------------------

    def sdk(self) -> openai.OpenAI:
        """The endpoint's synchronous SDK client, for the listing, file and job endpoints (its own
        retries on)."""
        import openai

        with self._lock:
            if self.line.sync_client is None:
                self.line.sync_client = self.line.make(openai.OpenAI, self.request_timeout, max_retries=3)
            return self.line.sync_client

    @contextmanager
    def api_errors(self, endpoint: str, model: str = "") -> Iterator[None]:
        """Turn any SDK failure inside the block into a `ModelError` that names the endpoint, the base URL
        and the server's explanation."""
        import openai

        try:
            yield
            return
        except ModelError:
            raise
        except openai.APIStatusError as exc:
            message, status = self.message(exc), exc.status_code
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            message, status = self.message(exc), None
        raise ModelError(model, endpoint, message, status, base_url=self.line.url)

    def close_sync(self) -> None:
        """Close the synchronous client, if one was made."""
        if self.line.sync_client is not None:
            self.line.sync_client.close()

    async def aclose(self) -> None:
        """Close the async client, if one was made (on the loop thread)."""
        if self.line.async_client is not None:
            await self.line.async_client.close()


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
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0**attempt) * (0.75 + random.random() / 2)
