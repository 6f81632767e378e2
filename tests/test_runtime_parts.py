"""The runtime's three parts alone: the call table without a server, the router without a call, one
transport against the simulator (faults injected by the server) or a tiny local server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pytest_distill import ModelError
from pytest_distill.models.cache import CompletionCache
from pytest_distill.models.call_table import CallTable
from pytest_distill.models.router import InProcess, Remote, Router
from pytest_distill.models.transport import Transport
from pytest_distill.models.types import Completion, Endpoint, Usage
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, requests_to

T = TypeVar("T")
QUESTION = [{"role": "user", "content": "ホバンヌは何人制ですか?"}]
WAIT_S = 30
"""A guard against a hang, not a timing threshold."""


async def _nothing() -> None:
    pass


@pytest.fixture
def table() -> Iterator[CallTable]:
    table = CallTable()
    yield table
    table.close(_nothing)


class Calls:
    """Coroutines for the table to run: each counts its runs and ends when `gate` is set."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.gate: concurrent.futures.Future[None] = concurrent.futures.Future()

    def answer(self, key: str, value: T) -> Callable[[], Awaitable[T]]:
        async def run() -> T:
            self.runs.append(key)
            await asyncio.shield(asyncio.wrap_future(self.gate))  # a cancelled call leaves the gate alone
            return value
        return run

    def fail(self, key: str) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            self.runs.append(key)
            raise ModelError("gpt-4o", "POST /chat/completions", f"no answer to {key}")
        return run


def test_the_table_makes_identical_calls_once_and_remembers_the_answer(table: CallTable) -> None:
    calls = Calls()
    futures = [table.submit("k", calls.answer("k", "yes")) for _ in range(3)]
    calls.gate.set_result(None)
    assert [future.result(timeout=WAIT_S) for future in futures] == ["yes"] * 3
    again = table.submit("k", calls.answer("k", "other"))
    assert again.done() and again.result() == "yes"
    assert (calls.runs, table.started, table.done) == (["k"], 1, 1)


def test_a_failure_asked_ahead_waits_for_the_test_and_a_test_s_own_failure_is_forgotten(table: CallTable) -> None:
    calls = Calls()
    with table.ahead():
        ahead = table.submit("k", calls.fail("k"))
    failure = ahead.exception(timeout=WAIT_S)
    mine = table.submit("k", calls.fail("k"))
    assert mine.done() and mine.exception() is failure
    assert calls.runs == ["k"], "the test's ask took the error kept for it"
    assert isinstance(table.submit("k", calls.fail("k")).exception(timeout=WAIT_S), ModelError)
    assert calls.runs == ["k", "k"], "asked again, a failed call is tried again"


def test_a_halt_drops_the_queued_calls_asked_ahead_and_keeps_the_test_s(table: CallTable) -> None:
    calls = Calls()
    with table.ahead():
        guessed = table.submit("guessed", calls.answer("guessed", 1))
    wanted = table.submit("wanted", calls.answer("wanted", 2))
    table.halt(lambda: ["guessed", "wanted"])
    with table.ahead():
        late = table.submit("late", calls.answer("late", 3))
    assert late.cancelled() and table.dropped("guessed") and not table.dropped("wanted")
    calls.gate.set_result(None)
    assert wanted.result(timeout=WAIT_S) == 2
    concurrent.futures.wait([guessed], timeout=WAIT_S)
    assert guessed.cancelled()


def test_calls_asked_ahead_and_sent_count_unused_until_a_test_asks(table: CallTable) -> None:
    async def sent(key: str) -> str:
        table.sending(key)
        return key

    with table.ahead():
        futures = [table.submit(key, lambda key=key: sent(key)) for key in ("a", "b", "c")]  # type: ignore[misc]
    concurrent.futures.wait(futures, timeout=WAIT_S)
    assert table.unused == 3
    assert table.submit("a", lambda: sent("a")).result() == "a"
    assert table.unused == 2


def test_the_disk_cache_answers_a_cached_call_in_a_later_process_and_nothing_else(tmp_path: Path) -> None:
    answer = Completion("Seven.", "gpt-4o", Usage(3, 1), 0.5, served_model="gpt-4o-2024-08-06")
    first, later = CallTable(CompletionCache(tmp_path, "ns")), CallTable(CompletionCache(tmp_path, "ns"))
    calls = Calls()
    calls.gate.set_result(None)
    try:
        assert first.submit("k", calls.answer("k", answer), cached=True).result(timeout=WAIT_S) == answer
        hit = later.submit("k", calls.answer("k", answer), cached=True)
        assert hit.done() and hit.result().cached and hit.result().text == "Seven."
        assert (later.cache_hits, later.started, calls.runs) == (1, 1, ["k"])
        assert later.submit("u", calls.answer("u", "x"), cached=False).result(timeout=WAIT_S) == "x"
        later.uncache("k")
        assert CallTable(CompletionCache(tmp_path, "ns")).submit("k", calls.answer("k", answer), cached=True).result(
            timeout=WAIT_S).cached is False
    finally:
        first.close(_nothing)
        later.close(_nothing)


def router(*names: str) -> Router:
    table = CallTable()
    return Router({name: Transport(Endpoint(name, f"http://{name or 'default'}.test/v1", key=TEST_KEY), table)
                   for name in ("", *names)})


@pytest.mark.parametrize("model, endpoint, served_as", [
    ("gpt-4o", "", "gpt-4o"),
    ("local:llama3", "local", "llama3"),
    ("elsewhere:llama3", "", "elsewhere:llama3"),
    ("ft:gpt-4o-mini:org::abc123", "", "ft:gpt-4o-mini:org::abc123"),
    ("local:", "", "local:"),
])
def test_the_router_sends_a_name_to_its_endpoint_under_the_name_the_server_knows(model: str, endpoint: str,
                                                                                  served_as: str) -> None:
    routes = router("local")
    route = routes.route(model)
    assert isinstance(route, Remote) and route.cached
    assert (route.transport.line.endpoint.name, route.served_as) == (endpoint, served_as)
    assert route.salt == ({"_server": routes.transports["local"].url} if endpoint else {})
    assert routes.route(model) is route


def test_the_router_answers_hf_and_recorded_models_here_and_takes_new_providers() -> None:
    routes = router()
    for model in ("hf:Qwen/Qwen2.5-0.5B-Instruct", "recorded:answers.jsonl"):
        route = routes.route(model)
        assert isinstance(route, InProcess) and not route.cached and not route.salt and route.model == model
    made = InProcess(lambda model, messages, params: Completion("From a test.", model, Usage(), 0.0), "mine:x")
    routes.providers["mine"] = lambda model: made
    assert routes.route("mine:x") is made
    assert isinstance(routes.route("gpt-4o"), Remote)


class Asks:
    """What a transport asks of its calls, recorded: every call is wanted, none dropped."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.wanted = lambda key: True

    def dropped(self, key: str) -> bool:
        return False

    def sending(self, key: str) -> None:
        self.sent.append(key)


def run(transport: Transport, call: Callable[[], Awaitable[T]]) -> T:
    """One call on a loop of its own, the transport's client closed after it."""
    async def once() -> T:
        try:
            return await call()
        finally:
            await transport.aclose()
    return asyncio.run(once())


def test_a_transport_waits_out_a_429_and_counts_its_retries(sim: SimServer) -> None:
    asks = Asks()
    transport = Transport(Endpoint("", sim.url, key=TEST_KEY), asks)
    sim.inject(Fault("429", count=2, retry_after=1))
    answer = run(transport, lambda: transport.chat("k", "gpt-4o", "gpt-4o", QUESTION, {}))
    assert answer.text and answer.served_model == "gpt-4o-2024-08-06"
    assert (transport.retries, asks.sent, transport.in_flight) == (2, ["k"] * 3, 0)
    assert len(requests_to(sim, "POST", "/chat/completions")) == 3


def test_a_transport_fails_a_rejected_request_at_once(sim: SimServer) -> None:
    asks = Asks()
    transport = Transport(Endpoint("", sim.url, key=TEST_KEY), asks)
    with pytest.raises(ModelError, match=r"\(HTTP 400\): .*frobnicate") as raised:
        run(transport, lambda: transport.chat("k", "gpt-4o", "gpt-4o", QUESTION, {"frobnicate": True}))
    assert (raised.value.status, asks.sent, transport.retries) == (400, ["k"], 0)


def test_a_transport_whose_server_never_answers_goes_down_and_fails_later_calls_at_once() -> None:
    asks = Asks()
    transport = Transport(Endpoint("", "http://127.0.0.1:9/v1", key=TEST_KEY), asks, max_attempts=2)

    async def both() -> tuple[BaseException | None, BaseException | None]:
        first = await asyncio.gather(transport.chat("a", "gpt-4o", "gpt-4o", QUESTION, {}), return_exceptions=True)
        second = await asyncio.gather(transport.chat("b", "gpt-4o", "gpt-4o", QUESTION, {}), return_exceptions=True)
        return first[0], second[0]

    first, second = run(transport, both)
    assert isinstance(first, ModelError) and isinstance(second, ModelError)
    assert "no answer from http://127.0.0.1:9/v1 in 2 attempts" in first.message
    assert second.message == first.message and asks.sent == ["a", "a"], "the second call was never sent"


class Echo(ThreadingHTTPServer):
    """Refuses every request with a 400 that quotes the request's Authorization header."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = f'{{"error": {{"message": "bad request from {self.headers.get("authorization")}"}}}}'.encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_transport_never_repeats_a_key_the_server_echoes() -> None:
    server = Echo()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = "plainsecretwithoutprefix0123456789"
    transport = Transport(Endpoint("", server.url, key=key), Asks())
    try:
        with pytest.raises(ModelError) as raised:
            run(transport, lambda: transport.chat("k", "gpt-4o", "gpt-4o", QUESTION, {}))
    finally:
        server.shutdown()
        server.server_close()
    assert "bad request from ***" in str(raised.value) and key not in str(raised.value)


def test_a_transport_asks_for_a_model_the_server_does_not_know_once() -> None:
    with SimServer() as sim:
        asks = Asks()
        transport = Transport(Endpoint("", sim.url, key=TEST_KEY), asks, concurrency=1)

        async def twice() -> list[BaseException | Completion]:
            return [*await asyncio.gather(*(transport.chat(key, "gpt-9", "gpt-9", QUESTION, {}) for key in "ab"),
                                          return_exceptions=True)]

        first, second = run(transport, twice)
    assert isinstance(first, ModelError) and isinstance(second, ModelError) and str(first) == str(second)
    assert (asks.sent, transport.unsent, first.status) == (["a"], 1, 404)


def test_a_transport_asks_again_for_a_fine_tune_that_was_not_there_a_job_may_make_it(sim: SimServer) -> None:
    asks = Asks()
    transport = Transport(Endpoint("", sim.url, key=TEST_KEY), asks, concurrency=1)
    model = "ft:gpt-4o-mini-2024-07-18:org::notyet"

    async def twice() -> list[BaseException | Completion]:
        return [*await asyncio.gather(*(transport.chat(key, model, model, QUESTION, {}) for key in "ab"),
                                      return_exceptions=True)]

    first, second = run(transport, twice)
    assert isinstance(first, ModelError) and isinstance(second, ModelError) and first.status == 404
    assert (asks.sent, transport.unsent) == (["a", "b"], 0)
