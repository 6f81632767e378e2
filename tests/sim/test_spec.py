"""Every endpoint answers the shapes of OpenAI's own OpenAPI spec, asked through the official SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from pytest_distill.sim import SimServer
from pytest_distill.sim.api import CHAT_PARAMS
from pytest_distill.sim.responses import RESPONSE_PARAMS

from ..openapi_check import schema_properties, validate_error, validate_request, validate_response
from .data import item_rows, user, wait_for_job

JUDGE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"reasoning": {"type": "string"}, "choice": {"type": "string", "enum": list("ABCDE")}},
            "required": ["reasoning", "choice"],
            "additionalProperties": False,
        },
    },
}


def check(path_template: str, raw: Any) -> Any:
    """Validate a `with_raw_response` result against the spec; return its JSON."""
    body = raw.http_response.json()
    validate_response(raw.http_request.method, path_template, raw.http_response.status_code, body)
    return body


def test_the_chat_parameters_are_exactly_the_specs() -> None:
    assert schema_properties("CreateChatCompletionRequest") == CHAT_PARAMS


@pytest.mark.parametrize(
    "params",
    [
        {"model": "gpt-4o"},
        {"model": "gpt-4o-mini", "store": True, "metadata": {"split": "test"}, "temperature": 0, "seed": 7},
        {"model": "gpt-4o", "response_format": JUDGE_FORMAT},
        {"model": "gpt-4o", "max_completion_tokens": 2},
    ],
    ids=["plain", "stored", "judge", "truncated"],
)
def test_chat_completions_match_the_spec(client: openai.OpenAI, server: SimServer, params: dict[str, Any]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        messages=[user("<output>Paris</output> <expected>Paris</expected> What is the capital of France?")], **params
    )
    check("/chat/completions", raw)
    validate_request("post", "/chat/completions", server.requests[-1].body)


def test_stored_completion_endpoints_match_the_spec(client: openai.OpenAI) -> None:
    listing = check("/chat/completions", client.chat.completions.with_raw_response.list(limit=3))
    completion_id = listing["data"][0]["id"]
    check("/chat/completions/{completion_id}", client.chat.completions.with_raw_response.retrieve(completion_id))
    check(
        "/chat/completions/{completion_id}",
        client.chat.completions.with_raw_response.update(completion_id, metadata={"reviewed": "yes"}),
    )
    check("/chat/completions/{completion_id}/messages", client.chat.completions.messages.with_raw_response.list(completion_id))
    check("/chat/completions/{completion_id}", client.chat.completions.with_raw_response.delete(completion_id))
    check("/chat/completions", client.chat.completions.with_raw_response.list(metadata={"app": "nowhere"}))


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_match_the_spec(client: openai.OpenAI, encoding: str) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format=encoding  # type: ignore[arg-type]
    )
    if encoding == "float":
        check("/embeddings", raw)
    else:  # the spec types the base64 form as an array of floats; everything else must match
        body = raw.http_response.json()
        assert all(isinstance(item["embedding"], str) for item in body["data"])
        validate_response("post", "/embeddings", 200, {**body, "data": [{**d, "embedding": []} for d in body["data"]]})


def test_models_match_the_spec(client: openai.OpenAI) -> None:
    check("/models", client.models.with_raw_response.list())
    check("/models/{model}", client.models.with_raw_response.retrieve("gpt-4o-mini"))


def test_files_and_jobs_match_the_spec(client: openai.OpenAI, server: SimServer) -> None:
    training = "".join(json.dumps(row) + "\n" for row in item_rows(12, prefix="t")).encode()
    uploaded = check("/files", client.files.with_raw_response.create(file=("train.jsonl", training), purpose="fine-tune"))
    check("/files", client.files.with_raw_response.list())
    check("/files/{file_id}", client.files.with_raw_response.retrieve(uploaded["id"]))
    created = check(
        "/fine_tuning/jobs",
        client.fine_tuning.jobs.with_raw_response.create(
            model="gpt-4o-mini", training_file=uploaded["id"], suffix="spec", seed=3, metadata={"run": "spec"},
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        ),
    )  # fmt: skip
    validate_request("post", "/fine_tuning/jobs", server.requests[-1].body)
    wait_for_job(client, created["id"])
    check("/fine_tuning/jobs/{fine_tuning_job_id}", client.fine_tuning.jobs.with_raw_response.retrieve(created["id"]))
    check("/fine_tuning/jobs", client.fine_tuning.jobs.with_raw_response.list())
    check("/fine_tuning/jobs/{fine_tuning_job_id}/events", client.fine_tuning.jobs.with_raw_response.list_events(created["id"]))
    second = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded["id"])
    check("/fine_tuning/jobs/{fine_tuning_job_id}/cancel", client.fine_tuning.jobs.with_raw_response.cancel(second.id))
    check("/files/{file_id}", client.files.with_raw_response.delete(uploaded["id"]))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.chat.completions.create(model="gpt-4o", messages=[user("hi")], extra_body={"foo": 1}),
        lambda c: c.chat.completions.create(model="gpt-9", messages=[user("hi")]),
        lambda c: c.chat.completions.retrieve("chatcmpl-missing"),
        lambda c: c.files.retrieve("file-missing"),
        lambda c: c.fine_tuning.jobs.retrieve("ftjob-missing"),
        lambda c: c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-missing"),
    ],
    ids=["unknown-param", "unknown-model", "missing-completion", "missing-file", "missing-job", "missing-training-file"],
)
def test_errors_have_the_real_error_shape(client: openai.OpenAI, call: Callable[[openai.OpenAI], Any]) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        call(client)
    body = raised.value.response.json()
    validate_error(body)
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_the_response_parameters_are_the_specs() -> None:
    assert schema_properties("CreateResponse") >= RESPONSE_PARAMS


@pytest.mark.parametrize(
    "params",
    [
        {"model": "gpt-4o", "instructions": "Answer in one sentence."},
        {"model": "gpt-4o-mini", "temperature": 0, "metadata": {"split": "test"}, "store": False},
        {"model": "gpt-4o", "text": {"format": {"type": "json_schema", **JUDGE_FORMAT["json_schema"]}}},
        {"model": "gpt-4o", "max_output_tokens": 16},
        {"model": "o4-mini", "reasoning": {"effort": "low"}},
    ],
    ids=["plain", "unstored", "judge", "truncated", "reasoning"],
)
def test_responses_match_the_spec(client: openai.OpenAI, server: SimServer, params: dict[str, Any]) -> None:
    question = "<output>Paris</output> <expected>Paris</expected> What is the capital of France?"
    raw = client.responses.with_raw_response.create(input=[{"role": "user", "content": question}], **params)
    body = check("/responses", raw)
    validate_request("post", "/responses", server.requests[-1].body)
    assert body["output"][0]["content"][0]["type"] == "output_text"
    if params.get("store", True):
        assert check("/responses/{response_id}", client.responses.with_raw_response.retrieve(body["id"])) == body
    else:
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(body["id"])
