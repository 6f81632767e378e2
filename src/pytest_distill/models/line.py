"""One endpoint as the runtime uses it: its SDK clients, its concurrency bound (`Gate`), its 429 pause
and whether it is down. The runtime keeps one `Line` per endpoint, all served by its one loop."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .types import Endpoint, ModelError, shown_url, url_problem

if TYPE_CHECKING:
    import ssl

    import openai

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Gate:
    """At most `size` calls on the wire. A free place goes first to a call that a test waits for, then to
    calls asked ahead (prefetch), each kind in the order asked: speculation never delays the running test."""

    def __init__(self, size: int, wanted: Callable[[str], bool]) -> None:
        self.free, self.wanted = size, wanted
        self.waiting: list[tuple[str, asyncio.Future[None]]] = []

    async def acquire(self, key: str) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (key, place)
        self.waiting.append(entry)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.release()  # handed a place in the same moment as cancelled: pass it on
            elif entry in self.waiting:
                self.waiting.remove(entry)
            raise

    def release(self) -> None:
        # A waiter cancelled in this same turn of the loop is still listed until its task runs: handing it
        # the place would raise in the releasing call and lose the place for good (calls then wait forever).
        self.waiting = [entry for entry in self.waiting if not entry[1].done()]
        chosen = next((entry for entry in self.waiting if self.wanted(entry[0])), None) or next(iter(self.waiting), None)
        if chosen is None:
            self.free += 1
            return
        self.waiting.remove(chosen)
        chosen[1].set_result(None)

    def queued(self) -> list[str]:
        """The keys of the calls waiting for a place."""
        return [key for key, _ in self.waiting]


class Line:
    """One endpoint as the runtime uses it: its clients, its concurrency bound, its 429 pause, and
    whether it is down (its whole retry ladder failed without the server ever answering)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.url = shown_url(endpoint.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        self.async_client: openai.AsyncOpenAI | None = None
        self.sync_client: openai.OpenAI | None = None
        self.gate: Gate | None = None
        self.resume_at = 0.0
        self.heard_at = 0.0
        """When the server last answered anything (an error status too): proof it is not down."""
        self.down: str | None = None
        """Why every call to this endpoint now errors at once."""
        self.went_down: asyncio.Event | None = None
        """Set when `down` is; wakes the calls resting between attempts (loop thread only)."""
        self.known_models: asyncio.Future[list[str]] | None = None
        """The server's GET /models, asked once, when a model first turns out unknown (loop thread only)."""
        self.keyless = endpoint.key is None and endpoint.key_env is None

    @property
    def params(self) -> dict[str, Any]:
        """Sent with every request: an endpoint declared without a key gets no Authorization header at all."""
        import openai

        return {"extra_headers": {"Authorization": openai.Omit()}} if self.keyless else {}

    @property
    def options(self) -> openai.RequestOptions:
        """`params` as request options of the SDK's `post`, with the bearer auth its typed methods ask for."""
        headers = self.params.get("extra_headers")
        return {"security": {"bearer_auth": True}, **({"headers": headers} if headers else {})}

    @property
    def paused_s(self) -> float:
        return max(0.0, self.resume_at - time.monotonic())

    def problem(self) -> str | None:
        """What keeps a client from being made (a base URL that is no URL, a key HTTP cannot carry), in
        words that never quote the key."""
        url = self.endpoint.base_url or os.environ.get("OPENAI_BASE_URL")
        source = "the endpoint's base URL" if self.endpoint.base_url else "OPENAI_BASE_URL"
        if url is not None and url_problem(url):
            return f"{source} is not a usable URL: {url_problem(url)}"
        env = self.endpoint.key_env
        if self.endpoint.key is None and env is not None and not os.environ.get(env):
            return f"{env} is not set: set it, or run offline with --distill-sim"
        return _key_problem(self.endpoint.key if self.endpoint.key is not None else os.environ.get(env or "", ""),
                            "the key" if self.endpoint.key is not None else str(env))

    @property
    def openai_account(self) -> bool:
        """Whether this endpoint may hear the user's OpenAI organization and project (OPENAI_ORG_ID,
        OPENAI_PROJECT_ID, which the SDK sends with every request): the default endpoint, as the SDK
        itself would, and a declared one on api.openai.com; not another company's server."""
        url = self.endpoint.base_url
        return not self.endpoint.name or url is None or urlsplit(url).hostname == "api.openai.com"

    def make(self, cls: Callable[..., T], timeout: float, **options: Any) -> T:
        """An SDK client for this endpoint. The key goes straight from where it is kept into the SDK,
        never into a local variable, and a constructor that fails says why without its frame."""
        problem = self.problem()
        if problem is not None:
            raise ModelError("", "client", problem, base_url=self.url)
        endpoint = self.endpoint
        import openai

        if not self.openai_account:
            options = {**options, "default_headers": {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}}
        http = openai.DefaultAsyncHttpxClient if cls is openai.AsyncOpenAI else openai.DefaultHttpxClient
        try:
            return cls(base_url=endpoint.base_url, timeout=timeout, http_client=http(verify=_tls()), **options,
                       api_key=endpoint.key if endpoint.key is not None else os.environ.get(endpoint.key_env or "", "no-key"))
        except Exception as exc:  # whatever the SDK or httpx raise here: its frame holds the key
            failure = type(exc).__name__
        # Raised here, outside the handler: the error carries no trace of the constructor's frame.
        raise ModelError("", "client", f"the client could not be made: {failure}", base_url=self.url)


@functools.cache
def _tls() -> ssl.SSLContext:
    """The process's one TLS context, made as the SDK would make its own (SSL_CERT_FILE and SSL_CERT_DIR
    honoured): loading the CA store took 25 ms for each client, two or more in every xdist worker."""
    import httpx2

    return httpx2.create_ssl_context()


def _key_problem(key: str, source: str) -> str | None:
    """A key that no HTTP header can carry (a pasted curly quote, a space): say where, never what."""
    for position, char in enumerate(key):
        if not ("!" <= char <= "~"):
            kind = "a space" if char.isspace() else "a character that is not ASCII" if ord(char) > 127 else "a control character"
            return f"{source} holds {kind} at position {position + 1}: an API key is plain ASCII (check for a copy-paste error)"
    return None
