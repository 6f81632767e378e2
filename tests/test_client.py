"""The model runtime over real HTTP: faults come from the server, as they do in production."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_distill import Model, ModelError
from pytest_distill.models.client import ModelRuntime, redact
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, requests_to

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
        with pytest.raises(ModelError, match=r"POST /chat/completions for model 'gpt-4o' failed: gave up after 2 attempts; last: HTTP 500"):
            runtime.chat("gpt-4o", QUESTION)
        assert len(requests_to(sim, "POST", "/chat/completions")) == 2
    finally:
        runtime.close()


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
    with pytest.raises(ModelError, match=r"for model 'gpt-9' failed \(HTTP 404\)"):
        runtime.chat("gpt-9", QUESTION)


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
