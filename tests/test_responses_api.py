"""The Responses API: `distill_api = responses` (or `api=responses` on an endpoint line) asks the model under
test and the judge through POST /v1/responses, with the same answers, verdicts, usage and errors as chat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill import ModelError
from pytest_distill.models.client import ModelRuntime
from pytest_distill.models.types import Endpoint
from pytest_distill.models.wire import OffShape, read_response
from pytest_distill.settings import _endpoints
from pytest_distill.sim import Fault, SimServer

from .openapi_check import validate_request
from .support import TEST_KEY, qa_suite, requests_to

QUESTION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "ホバンヌは何人制ですか?"}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
    "type": "object", "properties": {"reasoning": {"type": "string"}, "choice": {"type": "string", "enum": ["Y", "N"]}},
    "required": ["reasoning", "choice"], "additionalProperties": False}}}
SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset({spec!r})
def test_answer(case, model):
    assert factuality(model.complete(case), case.expected)
"""


def runtimes(sim: SimServer) -> tuple[ModelRuntime, ModelRuntime]:
    return ModelRuntime(base_url=sim.url, api_key=TEST_KEY), ModelRuntime(base_url=sim.url, api_key=TEST_KEY, api="responses")


def test_a_responses_call_answers_as_the_chat_call_does_and_sends_what_the_spec_allows(sim: SimServer) -> None:
    chat, responses = runtimes(sim)
    try:
        asked = [(runtime.chat("gpt-4o", QUESTION, max_tokens=64), runtime.chat("gpt-4o-mini", QUESTION, response_format=SCHEMA,
                                                                                optional={"temperature": 0}))
                 for runtime in (chat, responses)]
        reasoning = responses.chat("o4-mini", QUESTION, max_completion_tokens=64, reasoning_effort="low", optional={"temperature": 0})
    finally:
        chat.close()
        responses.close()
    (answer, verdict), (same_answer, same_verdict) = asked
    assert (same_answer.text, same_answer.usage, same_answer.served_model) == (answer.text, answer.usage, answer.served_model)
    assert json.loads(same_verdict.text)["choice"] == json.loads(verdict.text)["choice"]
    assert reasoning.text and reasoning.served_model.startswith("o4-mini")
    sent = requests_to(sim, "POST", "/responses")
    for request in sent:
        validate_request("post", "/responses", request.body)
    first, judged = sent[0].body, sent[1].body
    assert (first["instructions"], first["input"], first["max_output_tokens"]) == (
        "Answer briefly.", [{"role": "user", "content": "ホバンヌは何人制ですか?"}], 64)
    assert judged["text"] == {"format": {"type": "json_schema", **SCHEMA["json_schema"]}} and judged["temperature"] == 0
    refused, kept = sent[2].body, sent[3].body
    assert refused["reasoning"] == {"effort": "low"} and refused["temperature"] == 0 and "temperature" not in kept
    assert len(requests_to(sim, "POST", "/chat/completions")) == 2


def test_a_responses_call_is_retried_and_errors_as_chat_does(sim: SimServer) -> None:
    runtime = ModelRuntime(base_url=sim.url, api_key=TEST_KEY, api="responses", max_attempts=2)
    try:
        sim.inject(Fault("500", path="/responses"))
        assert runtime.chat("gpt-4o", QUESTION).text and runtime.retries == 1
        with pytest.raises(ModelError, match=r"POST /responses failed \(HTTP 404\).*this server knows: gpt-4o, "):
            runtime.chat("gpt-9", QUESTION)
    finally:
        runtime.close()


@pytest.mark.parametrize("data, problem", [
    ({"status": "failed", "error": {"message": "x" * 5000}}, "the response failed: x"),
    ({"status": "completed"}, "no output list"),
    ({"output": [{"type": "reasoning", "summary": []}]}, "no message with text"),
    ({"output": [{"type": "message", "content": [{"type": "output_text", "text": 7}]}]}, "not text"),
    ({"output": [{"type": "message", "content": [{"type": "output_text", "text": "\ud800"}]}]}, "lone surrogate"),
    ([], "not a JSON object"),
])
def test_a_response_off_the_api_s_shape_is_said_so(data: Any, problem: str) -> None:
    with pytest.raises(OffShape, match=problem) as raised:
        read_response(data)
    assert len(str(raised.value)) < 2500


def test_a_response_s_texts_refusal_and_usage_are_read() -> None:
    data = {"model": "gpt-4o-2024-08-06", "usage": {"input_tokens": 12, "output_tokens": 3}, "output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "Seven"}, {"type": "output_text", "text": "."}]}]}
    text, refusal, usage, served = read_response(data)
    assert (text, refusal, usage.prompt_tokens, usage.completion_tokens, served) == ("Seven.", None, 12, 3, "gpt-4o-2024-08-06")
    refused = {"output": [{"type": "message", "content": [{"type": "refusal", "refusal": "I can't."}]}]}
    assert read_response(refused)[:2] == ("", "I can't.")


def test_an_endpoint_line_chooses_its_api() -> None:
    local, hosted = _endpoints(["local http://127.0.0.1:8000/v1", "hosted https://api.example.com/v1 HOSTED_KEY api=responses"])
    assert (local.api, hosted.api, hosted.key_env) == ("chat", "responses", "HOSTED_KEY")
    with pytest.raises(ValueError, match="api= is one of chat, responses"):
        _endpoints(["x http://127.0.0.1:8000/v1 api=assistants"])


def test_the_api_is_part_of_a_declared_or_default_endpoint_s_cache_key(sim: SimServer) -> None:
    chat, responses = runtimes(sim)
    keyed = [runtime.router.route("gpt-4o").salt for runtime in (chat, responses)]
    declared = ModelRuntime(endpoints=[Endpoint("r", sim.url, key=TEST_KEY, api="responses")]).router.route("r:gpt-4o").salt
    assert keyed == [{}, {"_api": "responses"}] and declared == {"_server": sim.url, "_api": "responses"}


def table_of(pytester: pytest.Pytester, *args: str) -> list[tuple[str, str, bool]]:
    path = pytester.path / "results.json"
    pytester.runpytest("--distill-results", str(path), *args)
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return sorted((case["nodeid"], case["output"], case["grades"][0]["passed"]) for case in cases)


def test_the_same_suite_on_chat_and_on_responses_gets_the_same_table(pytester: pytest.Pytester, tmp_path: Path,
                                                                      make_qa_sim: Any) -> None:
    sim = make_qa_sim(6)
    qa_suite(pytester, tmp_path, SUITE, 6)
    chat = table_of(pytester)
    posts = len(requests_to(sim, "POST", "/chat/completions"))
    responses = table_of(pytester, "-o", "distill_api=responses")
    assert responses == chat and {passed for _, _, passed in chat} == {True, False}
    assert len(requests_to(sim, "POST", "/chat/completions")) == posts
    sent = requests_to(sim, "POST", "/responses")
    assert len(sent) == posts and any("text" in request.body for request in sent), "the judge asked through it too"
    for request in sent:
        validate_request("post", "/responses", request.body)
