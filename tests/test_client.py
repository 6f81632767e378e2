"""The model runtime over real HTTP: faults come from the server, as they do in production."""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from pytest_distill import Model, ModelError, Usage
from pytest_distill.models.client import ModelRuntime, redact
from pytest_distill.models.transport import _retry_after
from pytest_distill.models.types import Endpoint
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, requests_to, wait_until

QUESTION = [{"role": "user", "content": "ホバンヌは何人制ですか?"}]


@pytest.fixture
def runtime(sim: SimServer) -> Iterator[ModelRuntime]:
    runtime = ModelRuntime(concurrency=4, request_timeout=5.0)
    yield runtime
    runtime.close()


def test_a_completion_carries_text_usage_latency_and_the_snapshot_name(runtime: ModelRuntime) -> None:
    completion = runtime.chat("gpt-4o", QUESTION)
    assert completion.text and str(completion) == completion.text
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    assert completion.latency_s > 0
    assert (completion.model, completion.served_model) == ("gpt-4o", "gpt-4o-2024-08-06")


def test_identical_requests_in_flight_are_sent_once(runtime: ModelRuntime, sim: SimServer) -> None:
    futures = [runtime.submit_chat("gpt-4o-mini", QUESTION) for _ in range(5)]
    texts = {future.result().text for future in futures}
    assert len(texts) == 1
    assert len(requests_to(sim, "POST", "/chat/completions")) == 1


def test_deliberate_samples_of_one_request_are_separate_calls(runtime: ModelRuntime, sim: SimServer) -> None:
    for sample in range(3):
        runtime.chat("gpt-4o-mini", QUESTION, sample=sample)
    assert len(requests_to(sim, "POST", "/chat/completions")) == 3


def test_a_429_with_retry_after_pauses_then_recovers(runtime: ModelRuntime, sim: SimServer) -> None:
    sim.inject(Fault("429", count=2, retry_after=1))
    assert runtime.chat("gpt-4o", QUESTION).text
    assert runtime.retries == 2
    assert len(requests_to(sim, "POST", "/chat/completions")) == 3


@pytest.mark.parametrize("fault", [Fault("500"), Fault("malformed"), Fault("stall", seconds=6)], ids=["500", "malformed", "stall"])
def test_transient_faults_are_retried(sim: SimServer, fault: Fault) -> None:
    runtime = ModelRuntime(request_timeout=2.0)
    try:
        sim.inject(fault)
        assert runtime.chat("gpt-4o", QUESTION).text
        assert runtime.retries >= 1
        assert len(requests_to(sim, "POST", "/chat/completions")) == runtime.retries + 1
    finally:
        runtime.close()


def test_retries_are_bounded_and_the_error_names_model_endpoint_and_status(sim: SimServer) -> None:
    runtime = ModelRuntime(max_attempts=2)
    try:
        sim.inject(Fault("500", count=5))
        with pytest.raises(ModelError, match=r"model 'gpt-4o' at http://127\.0\.0\.1:\d+/v1: POST /chat/completions failed: "
                                             r"gave up after 2 attempts; last: HTTP 500"):
            runtime.chat("gpt-4o", QUESTION)
        assert len(requests_to(sim, "POST", "/chat/completions")) == 2
    finally:
        runtime.close()


@pytest.mark.parametrize(("header", "seconds"), [(0.5, 0.5), (1e9, 120.0), (math.nan, None), (-1e9, None),
                                                 (math.inf, None), (0, None)],
                         ids=["usable", "capped", "nan", "negative", "inf", "zero"])
def test_an_unusable_retry_after_counts_as_absent(sim: SimServer, header: float, seconds: float | None) -> None:
    """A Retry-After of `nan`, `-1e9` or `inf` gave six attempts in a second: it is now absent (the
    back-off applies), read from the error a real 429 raises in the SDK."""
    sim.inject(Fault("429", retry_after=header))
    client = openai.OpenAI(base_url=sim.url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)  # type: ignore[arg-type]
    assert _retry_after(raised.value) == seconds


def test_the_sdks_own_keywords_keep_their_meaning(runtime: ModelRuntime, sim: SimServer) -> None:
    """As with the SDK's `create`: `extra_body` joins the body (and wins), `extra_query` is the query,
    `extra_headers` and `timeout` are request options; none is sent as an API parameter."""
    runtime.chat("gpt-4o", QUESTION, max_tokens=20, extra_body={"seed": 7, "max_tokens": 30}, extra_query={"trace": "1"},
                 extra_headers={"X-Team": "evals"}, timeout=5.0)
    [sent] = requests_to(sim, "POST", "/chat/completions")
    assert sent.body == {"model": "gpt-4o", "messages": QUESTION, "max_tokens": 30, "seed": 7}
    assert sent.query == {"trace": ["1"]}


def test_a_rejected_request_fails_at_once_with_its_status(runtime: ModelRuntime, sim: SimServer) -> None:
    with pytest.raises(ModelError, match=r"\(HTTP 400\): .*frobnicate") as raised:
        runtime.chat("gpt-4o", QUESTION, extra_body={"frobnicate": True})
    assert raised.value.status == 400
    assert len(requests_to(sim, "POST", "/chat/completions")) == 1


def test_an_optional_parameter_the_model_refuses_is_dropped_and_a_needed_one_is_not(
        runtime: ModelRuntime, sim: SimServer) -> None:
    first = runtime.chat("o4-mini", QUESTION, optional={"temperature": 0})
    again = runtime.chat("o4-mini", QUESTION, sample=1, optional={"temperature": 0})
    assert first.text == again.text and first.served_model == "o4-mini-2025-04-16"
    sent = [r.body.get("temperature") for r in requests_to(sim, "POST", "/chat/completions")]
    assert sent == [0, None, None]
    with pytest.raises(ModelError, match=r"\(HTTP 400\): .*Unsupported parameter: 'max_tokens'") as raised:
        runtime.chat("o4-mini", QUESTION, max_tokens=5, optional={"temperature": 0})
    assert (raised.value.status, raised.value.param) == (400, "max_tokens")
    assert len(requests_to(sim, "POST", "/chat/completions")) == 4


def test_an_unknown_model_is_a_404_model_error(runtime: ModelRuntime) -> None:
    with pytest.raises(ModelError, match=r"model 'gpt-9' at http://127\.0\.0\.1:\d+/v1: POST /chat/completions failed \(HTTP 404\)"):
        runtime.chat("gpt-9", QUESTION)


def test_a_model_the_server_does_not_know_is_asked_once_and_its_other_calls_fail_at_once_alike(sim: SimServer) -> None:
    runtime = ModelRuntime(concurrency=1)
    try:
        futures = [runtime.submit_chat("gpt-9", [{"role": "user", "content": f"question {i}"}]) for i in range(5)]
        errors = [future.exception(timeout=30) for future in futures]
        assert runtime.chat("gpt-4o", QUESTION).text, "another model of the server is still asked"
    finally:
        runtime.close()
    assert all(isinstance(error, ModelError) and error.status == 404 for error in errors)
    assert len({str(error) for error in errors}) == 1 and "(this server knows: gpt-4o, " in str(errors[0])
    assert [r.body["model"] for r in requests_to(sim, "POST", "/chat/completions")] == ["gpt-9", "gpt-4o"]
    assert (runtime.unsent, len(requests_to(sim, "GET", "/models"))) == (4, 1)


def test_an_auth_failure_never_shows_the_key(make_sim) -> None:
    make_sim(api_key="sk-the-right-key-0000000000000000")
    runtime = ModelRuntime()
    try:
        with pytest.raises(ModelError) as raised:
            runtime.chat("gpt-4o", QUESTION)
    finally:
        runtime.close()
    message = str(raised.value)
    assert raised.value.status == 401
    assert TEST_KEY not in message and TEST_KEY[:7] not in message and TEST_KEY[-4:] not in message


def test_no_key_at_all_says_what_to_do(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    runtime = ModelRuntime()
    try:
        with pytest.raises(ModelError, match="OPENAI_API_KEY is not set: set it, or run offline with --distill-sim"):
            runtime.chat("gpt-4o", QUESTION)
    finally:
        runtime.close()


def test_redact_removes_the_key_and_anything_shaped_like_one() -> None:
    text = f"Incorrect API key provided: sk-te***********8f; header Bearer {TEST_KEY}; {TEST_KEY}"
    cleaned = redact(text, TEST_KEY)
    assert "sk-te" not in cleaned and TEST_KEY not in cleaned and "8f;" not in cleaned


def test_model_outside_pytest_makes_its_own_runtime(sim: SimServer) -> None:
    model = Model("gpt-4o")
    try:
        assert model.complete("ホバンヌは何人制ですか?").text
    finally:
        model.runtime.close()


@pytest.mark.parametrize("sample", [0, 1])
def test_an_answer_whose_content_is_a_list_of_parts_gives_its_text(runtime: ModelRuntime, sim: SimServer, sample: int) -> None:
    plain = runtime.chat("gpt-4o", QUESTION, sample=10)
    sim.inject(Fault("list_content"))
    assert runtime.chat("gpt-4o", QUESTION, sample=sample).text == plain.text != ""


def test_null_usage_numbers_count_as_none_used(runtime: ModelRuntime, sim: SimServer) -> None:
    sim.inject(Fault("null_usage"))
    completion = runtime.chat("gpt-4o", QUESTION)
    assert completion.text and completion.usage == Usage(0, 0)


def test_an_answer_without_a_message_is_a_model_error_asked_once(runtime: ModelRuntime, sim: SimServer) -> None:
    sim.inject(Fault("no_message"))
    with pytest.raises(ModelError, match=r"at http://127\.0\.0\.1:\d+/v1: POST /chat/completions failed: the server's "
                                         r"answer is off the API's shape: its first choice has no message"):
        runtime.chat("gpt-4o", QUESTION)
    assert len(requests_to(sim, "POST", "/chat/completions")) == 1


def test_no_rest_follows_the_last_attempt(sim: SimServer) -> None:
    runtime = ModelRuntime(max_attempts=2)
    try:
        sim.inject(Fault("500", count=2))
        with pytest.raises(ModelError, match="gave up after 2 attempts"):
            runtime.chat("gpt-4o", QUESTION)
        assert runtime.retries == 1
    finally:
        runtime.close()


class ExplainingServer(ThreadingHTTPServer):
    """A server that refuses every request with a 400 in a shape other than OpenAI's (as Ollama,
    FastAPI-based servers and proxies do)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.heard: list[dict[str, str]] = []
        """The headers of each request, lower-cased names."""
        super().__init__(("127.0.0.1", 0), _Refuse)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Refuse(BaseHTTPRequestHandler):
    server: ExplainingServer

    def do_POST(self) -> None:
        self.server.heard.append({name.lower(): value for name, value in self.headers.items()})
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("body, said", [
    (b'{"error": "model \\"gpt-4o\\" not found, try pulling it first"}', 'model "gpt-4o" not found, try pulling it first'),
    (b'{"detail": "Model gpt-4o is not served here"}', "Model gpt-4o is not served here"),
    (b'{"object": "error", "message": "The model `gpt-4o` does not exist.", "code": 404}', "The model `gpt-4o` does not exist."),
], ids=["ollama", "fastapi", "vllm"])
def test_a_refusal_quotes_the_server_s_own_explanation(body: bytes, said: str) -> None:
    server = ExplainingServer(body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    runtime = ModelRuntime(base_url=server.url, api_key=TEST_KEY)
    try:
        with pytest.raises(ModelError) as raised:
            runtime.chat("gpt-4o", QUESTION)
    finally:
        runtime.close()
        server.shutdown()
        server.server_close()
    assert raised.value.status == 400
    assert str(raised.value) == f"model 'gpt-4o' at {server.url}: POST /chat/completions failed (HTTP 400): Error code: 400 - {said}"


def test_the_openai_organization_and_project_go_to_openai_s_endpoint_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_ORG_ID and OPENAI_PROJECT_ID name the user's OpenAI account: the default endpoint sends
    them, as the SDK does; a declared endpoint on another server (a local vLLM) does not hear them."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-distill-test")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_distill_test")
    server = ExplainingServer(b'{"error": "no"}')
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    runtime = ModelRuntime(base_url=server.url, api_key=TEST_KEY, endpoints=[Endpoint("local", server.url, key=TEST_KEY)])
    try:
        for model in ("gpt-4o", "local:llama3"):
            with pytest.raises(ModelError):
                runtime.chat(model, QUESTION)
    finally:
        runtime.close()
        server.shutdown()
        server.server_close()
    default, declared = server.heard
    assert (default["openai-organization"], default["openai-project"]) == ("org-distill-test", "proj_distill_test")
    assert "openai-organization" not in declared and "openai-project" not in declared
    assert declared["authorization"] == f"Bearer {TEST_KEY}"


def ask_ahead(runtime: ModelRuntime, count: int) -> list[Any]:
    """`count` distinct chat calls asked ahead (as prefetch asks), not waited for."""
    with runtime.ahead():
        return [runtime.submit_chat("gpt-4o-mini", [{"role": "user", "content": f"question {i}"}]) for i in range(count)]


def test_calls_asked_ahead_that_no_test_asks_for_are_counted_unused(runtime: ModelRuntime, sim: SimServer) -> None:
    futures = ask_ahead(runtime, 3)
    for future in futures:
        future.result()
    assert runtime.unused == 3
    runtime.chat("gpt-4o-mini", [{"role": "user", "content": "question 0"}])
    assert runtime.unused == 2
    assert len(requests_to(sim, "POST", "/chat/completions")) == 3


def chat_contents(sim: SimServer) -> list[str]:
    return [r.body["messages"][0]["content"] for r in requests_to(sim, "POST", "/chat/completions")]


def test_a_halt_sends_none_of_the_calls_asked_ahead_still_queued(sim: SimServer) -> None:
    sim.inject(Fault("stall", seconds=600))  # the first call asked ahead is held inside the server
    runtime = ModelRuntime(concurrency=1)
    try:
        futures = ask_ahead(runtime, 5)
        wait_until(lambda: len(chat_contents(sim)) == 1, "the first call asked ahead to reach the server")
        runtime.halt()
        with runtime.ahead():
            refused = runtime.submit_chat("gpt-4o-mini", [{"role": "user", "content": "after the halt"}])
        sim.end_stalls()
        concurrent.futures.wait(futures)
        assert refused.cancelled()
        assert chat_contents(sim) == ["question 0"] and [future.cancelled() for future in futures] == [False] + [True] * 4
        assert runtime.chat("gpt-4o-mini", QUESTION).text, "a test's own call still goes out after a halt"
    finally:
        runtime.close()


def test_a_call_a_test_waits_for_goes_before_calls_asked_ahead(sim: SimServer) -> None:
    sim.inject(Fault("stall", seconds=600))  # the first call asked ahead is held inside the server
    runtime = ModelRuntime(concurrency=1)
    try:
        ask_ahead(runtime, 4)
        wait_until(lambda: len(chat_contents(sim)) == 1, "the first call asked ahead to reach the server")
        own = runtime.submit_chat("gpt-4o-mini", QUESTION)  # queued behind the held call, with 3 asked ahead
        sim.end_stalls()
        runtime.wait(own)
        assert chat_contents(sim)[:2] == ["question 0", QUESTION[0]["content"]]
    finally:
        runtime.close()


def test_the_error_of_a_call_asked_ahead_is_the_tests_answer_not_a_second_call(sim: SimServer) -> None:
    runtime = ModelRuntime(max_attempts=1)
    try:
        sim.inject(Fault("500"))
        with runtime.ahead():
            ahead = runtime.submit_chat("gpt-4o-mini", QUESTION)
        assert isinstance(ahead.exception(), ModelError)
        with pytest.raises(ModelError, match="HTTP 500"):
            runtime.chat("gpt-4o-mini", QUESTION)
        assert len(requests_to(sim, "POST", "/chat/completions")) == 1
        assert runtime.chat("gpt-4o-mini", QUESTION).text, "asked again, the call is tried again"
        assert len(requests_to(sim, "POST", "/chat/completions")) == 2
    finally:
        runtime.close()
