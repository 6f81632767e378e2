"""The router: where a model name is answered.

`gpt-4o` is the default endpoint's; `NAME:MODEL`, where NAME is a declared `Endpoint`, is MODEL on that
endpoint's server; `hf:...` runs in this process (`hf.py`), `recorded:PATH` answers from a file
(`recorded.py`). A name whose prefix is neither is the
default endpoint's (`ft:gpt-4o-mini:org::id` is a fine-tuned model there). Another way to answer a
model is a provider: a prefix and what makes the `Route` of a name that has it (`Router.providers`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..jsonl import DEFAULT_MAX_LINE_BYTES
from .types import LOCAL_PREFIX, RECORDED_PREFIX, Completion, ModelError

if TYPE_CHECKING:
    from .hf_process import ModelProcess
    from .recorded import RecordedModels
    from .transport import Transport


class Route(Protocol):
    """Where one model is answered."""

    @property
    def salt(self) -> Mapping[str, str]:
        """What a request's key adds to the request: the server of a declared endpoint, so that
        re-pointing it never serves the old server's cached answers; the API when it is not chat."""

    @property
    def cached(self) -> bool:
        """Whether its answers are kept in the disk cache."""

    def chat(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Awaitable[Completion]:
        """A chat completion (run on the call table's loop)."""

    def embed(self, key: str, texts: list[str]) -> Awaitable[list[list[float]]]:
        """Embedding vectors of texts, in order (run on the call table's loop)."""


@dataclass(frozen=True)
class Remote:
    """A model on an endpoint's server, called `served_as` there."""

    transport: Transport
    model: str
    served_as: str
    salt: Mapping[str, str] = field(default_factory=dict)
    cached: bool = True

    def chat(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Awaitable[Completion]:
        return self.transport.chat(key, self.model, self.served_as, messages, params)

    def embed(self, key: str, texts: list[str]) -> Awaitable[list[list[float]]]:
        return self.transport.embed(key, self.model, self.served_as, texts)


@dataclass(frozen=True)
class InProcess:
    """A model answered in this process (`hf:` weights, a `recorded:` file), in a worker thread so that
    the loop goes on serving the other calls. Not cached on disk: a retrained adapter keeps its folder's
    name, and a file answers as fast as the cache would."""

    answer: Callable[[str, list[dict[str, Any]], dict[str, Any]], Completion]
    model: str
    salt: Mapping[str, str] = field(default_factory=dict)
    cached: bool = False

    async def chat(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        return await asyncio.to_thread(self.answer, self.model, messages, params)

    async def embed(self, key: str, texts: list[str]) -> list[list[float]]:
        raise ModelError(self.model, "embeddings", "this model gives no embeddings: name an embedding model of an API")


class Router:
    """Model names to routes. `transports` by endpoint name ("" is the default endpoint); `providers` by
    prefix (without its colon): what makes the route of a name with that prefix. `max_line_bytes` bounds
    a line of a `recorded:` model's file."""

    def __init__(self, transports: Mapping[str, Transport], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.transports = dict(transports)
        self.max_line_bytes = max_line_bytes
        self.providers: dict[str, Callable[[str], Route]] = {
            LOCAL_PREFIX.rstrip(":"): lambda model: InProcess(self._local_chat, model),
            RECORDED_PREFIX.rstrip(":"): lambda model: InProcess(self._recorded_chat, model)}
        self._routes: dict[str, Route] = {}
        self._local: ModelProcess | None = None
        self._recorded: RecordedModels | None = None
        self._lock = threading.Lock()

    def route(self, model: str) -> Route:
        """Where `model` is answered (found once per name)."""
        route = self._routes.get(model)
        if route is None:
            route = self._routes.setdefault(model, self._find(model))
        return route

    def _find(self, model: str) -> Route:
        prefix, sep, rest = model.partition(":")
        provider = self.providers.get(prefix) if sep else None
        if provider is not None:
            return provider(model)
        transport = self.transports.get(prefix) if sep and rest and prefix else None
        if transport is not None:
            return Remote(transport, model, rest, _salt(transport, _server=transport.url))
        return Remote(self.transports[""], model, model, _salt(self.transports[""]))

    def _local_chat(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """An `hf:` model answers from a process of its own (models/hf_process.py): its torch never holds
        up the loop and the other calls."""
        from .hf_process import ModelProcess

        with self._lock:
            if self._local is None:
                self._local = ModelProcess()
        return self._local.chat(model, messages, params)

    def _recorded_chat(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        """A `recorded:` model answers from its file, read once (in the worker thread: it may be large)."""
        from .recorded import RecordedModels

        with self._lock:
            if self._recorded is None:
                self._recorded = RecordedModels(self.max_line_bytes)
        return self._recorded.chat(model, messages)

    def queued(self) -> list[str]:
        """The keys of the calls waiting for a place on any endpoint's wire (loop thread only)."""
        return [key for transport in self.transports.values() for key in transport.queued()]

    def close(self) -> None:
        """Stop the `hf:` models' process and close the synchronous clients."""
        if self._local is not None:
            self._local.close()
        for transport in self.transports.values():
            transport.close_sync()

    async def aclose(self) -> None:
        """Close every endpoint's async client (on the loop thread)."""
        for transport in self.transports.values():
            await transport.aclose()


def _salt(transport: Transport, **salt: str) -> dict[str, str]:
    """`salt`, and the API when it is not chat (a chat answer's key stays what it always was)."""
    api = transport.line.endpoint.api
    return {**salt, "_api": api} if api != "chat" else salt
