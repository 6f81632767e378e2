"""The Batch API: files of requests that run as the batch is polled, answered in output and error files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_distill.sim import SimServer
from pytest_distill.sim.faults import Fault

from ..openapi_check import validate_request, validate_response
from .conftest import CLIENT_KEY
from .data import capital_question, user

ENDPOINT = "/v1/chat/completions"


def line(custom_id: str, question: str, model: str = "gpt-4o-mini", **body: Any) -> dict[str, Any]:
    """One request line of a batch input file, as the Batch API documents it."""
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT,
            "body": {"model": model, "messages": [user(question)], **body}}


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in lines).encode()
    return client.files.create(file=("batch.jsonl", data), purpose="batch").id


def checked(raw: Any) -> dict[str, Any]:
    """A batch answer of `with_raw_response`, validated against the spec's Batch."""
    body: dict[str, Any] = raw.http_response.json()
    path = raw.http_request.url.path.removeprefix("/v1")
    template = "/batches" if path == "/batches" else "/batches/{batch_id}/cancel" if path.endswith("/cancel") else "/batches/{batch_id}"
    validate_response(raw.http_request.method, template, raw.http_response.status_code, body)
    return body


def poll(client: openai.OpenAI, batch_id: str) -> list[str]:
    """Retrieve the batch until it ends; the statuses it showed, one per retrieval."""
    seen = []
    for _ in range(20):
        seen.append(checked(client.batches.with_raw_response.retrieve(batch_id))["status"])
        if seen[-1] in ("completed", "failed", "expired", "cancelled"):
            return seen
    raise AssertionError(f"the batch never ended: {seen}")


def jsonl(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    rows = [json.loads(text) for text in client.files.content(file_id).text.splitlines()]
    return {row["custom_id"]: row for row in rows}


def test_a_batch_runs_as_it_is_polled_and_answers_in_the_apis_shapes(client: openai.OpenAI, server: SimServer) -> None:
    lines = [line(f"call-{index}", capital_question(country)) for index, country in enumerate(("France", "Japan", "Peru"))]
    for item in lines:
        validate_request("post", "/chat/completions", item["body"])
    input_id = upload(client, lines)
    created = checked(client.batches.with_raw_response.create(input_file_id=input_id, endpoint=ENDPOINT,
                                                              completion_window="24h", metadata={"run": "1"}))
    validate_request("post", "/batches", server.requests[-1].body)
    assert created["status"] == "validating" and created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert poll(client, created["id"]) == ["in_progress", "in_progress", "finalizing", "completed"]
    batch = client.batches.retrieve(created["id"])
    assert batch.request_counts is not None and (batch.request_counts.total, batch.request_counts.completed) == (3, 3)
    assert batch.usage is not None and batch.usage.input_tokens > 0 and batch.error_file_id is None
    assert [r.path for r in server.requests if r.path.startswith("/v1/chat")] == [], "lines are not requests of their own"
    output = jsonl(client, batch.output_file_id)
    assert set(output) == {"call-0", "call-1", "call-2"}
    direct = client.chat.completions.create(**lines[0]["body"]).choices[0].message.content
    assert output["call-0"]["response"]["body"]["choices"][0]["message"]["content"] == direct, "a line is answered as a call"
    for row in output.values():
        assert set(row) == {"id", "custom_id", "response", "error"} and row["error"] is None
        assert row["response"]["status_code"] == 200 and row["response"]["request_id"].startswith("req_")
        validate_response("post", "/chat/completions", 200, row["response"]["body"])
    listing = checked(client.batches.with_raw_response.list(limit=5))
    assert [item["id"] for item in listing["data"]] == [created["id"]]
    assert client.files.retrieve(batch.output_file_id or "").purpose == "batch_output"


def test_a_line_that_fails_goes_to_the_error_file_with_its_answer(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("500", path="/chat/completions"))
    lines = [line("a", capital_question("France")), line("b", capital_question("Japan"), n=2)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=ENDPOINT, completion_window="24h")
    assert poll(client, batch.id)[-1] == "completed"
    batch = client.batches.retrieve(batch.id)
    assert batch.request_counts is not None and (batch.request_counts.completed, batch.request_counts.failed) == (0, 2)
    errors = jsonl(client, batch.error_file_id)
    assert errors["a"]["response"]["status_code"] == 500 and errors["a"]["error"] is None
    assert errors["a"]["response"]["body"]["error"]["type"] == "server_error"
    assert errors["b"]["response"]["status_code"] == 400, "the line's own mistake is answered as the endpoint answers it"
    assert batch.output_file_id is None


def test_an_expired_batch_puts_its_unfinished_lines_in_the_error_file(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("batch_expired"))
    lines = [line(f"c{index}", capital_question(country)) for index, country in enumerate(("France", "Japan", "Peru", "Chile"))]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=ENDPOINT, completion_window="24h")
    assert poll(client, batch.id) == ["in_progress", "expired"]
    batch = client.batches.retrieve(batch.id)
    assert batch.expired_at is not None
    assert set(jsonl(client, batch.output_file_id)) == {"c0", "c1"}
    errors = jsonl(client, batch.error_file_id)
    assert set(errors) == {"c2", "c3"} and errors["c2"]["response"] is None
    assert errors["c2"]["error"]["code"] == "batch_expired"


def test_a_failed_batch_says_why_with_the_line(client: openai.OpenAI, server: SimServer) -> None:
    lines = [line("x", "one"), line("x", "two"), line("y", "three", model="gpt-4o"), {**line("z", "four"), "url": "/v1/embeddings"}]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=ENDPOINT, completion_window="24h")
    assert poll(client, batch.id) == ["failed"]
    failed = checked(client.batches.with_raw_response.retrieve(batch.id))
    assert [(error["code"], error["line"]) for error in failed["errors"]["data"]] == [
        ("duplicate_custom_id", 2), ("mismatched_model", 3), ("mismatched_endpoint", 4)]
    server.inject(Fault("batch_failed"))
    injected = client.batches.create(input_file_id=upload(client, [line("a", "one")]), endpoint=ENDPOINT, completion_window="24h")
    assert poll(client, injected.id) == ["failed"]


def test_a_cancelled_batch_keeps_what_ran(client: openai.OpenAI) -> None:
    lines = [line(f"c{index}", capital_question(country)) for index, country in enumerate(("France", "Japan", "Peru", "Chile"))]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=ENDPOINT, completion_window="24h")
    assert [client.batches.retrieve(batch.id).status for _ in range(2)] == ["in_progress", "in_progress"]
    cancelling = checked(client.batches.with_raw_response.cancel(batch.id))
    assert cancelling["status"] == "cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelled"
    done = client.batches.retrieve(batch.id)
    assert set(jsonl(client, done.output_file_id)) | set(jsonl(client, done.error_file_id)) == {"c0", "c1", "c2", "c3"}
    assert {row["error"]["code"] for row in jsonl(client, done.error_file_id).values()} == {"batch_cancelled"}
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)


@pytest.mark.parametrize(("params", "message"), [
    ({"endpoint": "/v1/images/generations"}, "Invalid value: '/v1/images/generations'"),
    ({"completion_window": "1h"}, "Invalid value: '1h'"),
    ({"input_file_id": "file-nothing"}, "No such file"),
])
def test_a_batch_request_the_api_refuses_is_refused(client: openai.OpenAI, params: dict[str, Any], message: str) -> None:
    request = {"input_file_id": upload(client, [line("a", "one")]), "endpoint": ENDPOINT, "completion_window": "24h", **params}
    with pytest.raises(openai.BadRequestError, match=message):
        client.batches.create(**request)


def test_a_batch_outlives_a_restart_mid_way(seed_file: Path, tmp_path: Path) -> None:
    lines = [line(f"c{index}", capital_question(country)) for index, country in enumerate(("France", "Japan", "Peru", "Chile"))]
    with SimServer(seed=[seed_file], state_dir=tmp_path) as first, \
            openai.OpenAI(base_url=first.url, api_key=CLIENT_KEY, max_retries=0) as sdk:  # fmt: skip
        batch = sdk.batches.create(input_file_id=upload(sdk, lines), endpoint=ENDPOINT, completion_window="24h")
        assert [sdk.batches.retrieve(batch.id).status for _ in range(2)] == ["in_progress", "in_progress"]
    with SimServer(seed=[seed_file], state_dir=tmp_path) as second, \
            openai.OpenAI(base_url=second.url, api_key=CLIENT_KEY, max_retries=0) as sdk:  # fmt: skip
        assert poll(sdk, batch.id) == ["finalizing", "completed"], "the half run before the restart is not run again"
        assert set(jsonl(sdk, sdk.batches.retrieve(batch.id).output_file_id)) == {"c0", "c1", "c2", "c3"}
