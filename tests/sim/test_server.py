"""HTTP behaviour: auth, unknown paths, headers, injected faults, the request log and admin endpoints."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx2
import openai
import pytest

from pytest_distill.sim import Fault, RequestRecord, SimServer

from ..openapi_check import validate_error
from .conftest import CLIENT_KEY
from .data import ask, capital_answer, capital_question, user

JUDGE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "grade",
        "schema": {
            "type": "object",
            "properties": {"reasoning": {"type": "string"}, "score": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["reasoning", "score"],
        },
    },
}


def judge_call(client: openai.OpenAI) -> openai.types.chat.ChatCompletion:
    messages = [user("<output>Paris</output><expected>Paris</expected>")]
    return client.chat.completions.create(model="gpt-4o", messages=messages, response_format=JUDGE_FORMAT)  # type: ignore[arg-type]


def test_a_wrong_key_is_a_401_with_the_real_message(seed_file: Path) -> None:
    with SimServer(seed=[seed_file], api_key="sk-right-key-000000000") as server:
        with openai.OpenAI(base_url=server.url, api_key="sk-abcdefghijklmnopyz", max_retries=0) as wrong, \
                pytest.raises(openai.AuthenticationError) as raised:
            wrong.models.list()
        with openai.OpenAI(base_url=server.url, api_key="sk-right-key-000000000", max_retries=0) as right:
            assert right.models.list().data
    body = raised.value.response.json()
    validate_error(body)
    assert body["error"] == {
        "message": "Incorrect API key provided: sk-ab**************yz. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_no_bearer_token_is_a_401(server: SimServer) -> None:
    response = httpx2.get(f"{server.url}/models")
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("You didn't provide an API key.")


@pytest.mark.parametrize("method, path", [("GET", "/v1/nope"), ("DELETE", "/v1/embeddings"), ("GET", "/elsewhere")])
def test_an_unknown_path_or_method_is_the_real_404(server: SimServer, method: str, path: str) -> None:
    base = server.url.removesuffix("/v1")
    response = httpx2.request(method, base + path, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Invalid URL ({method} {path})"


def test_every_answer_has_the_real_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[user("hi")])
    headers = raw.http_response.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_") and len(headers["x-request-id"]) == 36
    assert int(headers["openai-processing-ms"]) >= 0
    assert raw.request_id == headers["x-request-id"]


def test_the_request_log_records_method_path_query_and_body(client: openai.OpenAI, server: SimServer) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[user("hi")], temperature=0)
    client.chat.completions.list(metadata={"split": "test"}, limit=5)
    client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    chat, listing, upload = server.requests
    body = {"model": "gpt-4o", "messages": [user("hi")], "temperature": 0}
    assert chat == RequestRecord("POST", "/v1/chat/completions", {}, body)
    query = {"metadata[split]": ["test"], "limit": ["5"]}
    assert (listing.method, listing.path, listing.query) == ("GET", "/v1/chat/completions", query)
    assert upload.body == {"purpose": "fine-tune", "file": {"filename": "a.jsonl", "bytes": 3}}
    server.clear_requests()
    assert server.requests == []


def test_the_admin_endpoints_drive_the_server_from_another_process(client: openai.OpenAI, server: SimServer) -> None:
    admin = httpx2.Client(base_url=server.url.removesuffix("/v1") + "/_sim",
                          headers={"Authorization": f"Bearer {server.admin_key}"})
    ask(client, "gpt-4o", "hi")
    assert [r["path"] for r in admin.get("/requests").json()] == ["/v1/chat/completions"]
    assert admin.delete("/requests").json() == {"deleted": 1}
    assert admin.get("/requests").json() == []
    queued = admin.post("/faults", json={"kind": "500", "path": "/chat/completions"})
    assert queued.status_code == 200
    with pytest.raises(openai.InternalServerError):
        ask(client, "gpt-4o", "hi")
    assert admin.post("/faults", json={"kind": "boom"}).status_code == 400
    assert admin.post("/faults", content=b"{").status_code == 400
    admin.close()


@pytest.mark.parametrize("token", [None, CLIENT_KEY, "sk-sim-admin-guess"], ids=["no-key", "a-client-key", "a-wrong-key"])
def test_the_admin_endpoints_refuse_anyone_without_the_simulators_key(
        client: openai.OpenAI, server: SimServer, token: str | None) -> None:
    """A web page open in a browser can POST to a loopback port, but cannot add an Authorization header."""
    admin = server.url.removesuffix("/v1") + "/_sim"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ask(client, "gpt-4o", "hi")
    refused = [httpx2.get(f"{admin}/requests", headers=headers), httpx2.delete(f"{admin}/requests", headers=headers),
               httpx2.post(f"{admin}/faults", headers={**headers, "content-type": "text/plain"},
                           content=json.dumps({"kind": "500"}))]
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert all("take its key" in r.json()["error"]["message"] for r in refused)
    assert len(server.requests) == 1
    ask(client, "gpt-4o", "hi")


def test_with_an_api_key_the_admin_endpoints_take_that_key(seed_file: Path) -> None:
    with SimServer(seed=[seed_file], api_key="sk-right-key-000000000") as server:
        assert server.admin_key == "sk-right-key-000000000"
        admin = server.url.removesuffix("/v1") + "/_sim/requests"
        assert httpx2.get(admin, headers={"Authorization": "Bearer sk-right-key-000000000"}).json() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])
def test_the_simulator_refuses_to_listen_beyond_loopback_unless_asked(seed_file: Path, host: str) -> None:
    with pytest.raises(ValueError, match=r"refusing to listen on .*: the simulator has no real authentication"):
        SimServer(seed=[seed_file], host=host)


def test_asked_explicitly_the_simulator_listens_on_every_interface(seed_file: Path) -> None:
    with (SimServer(seed=[seed_file], host="0.0.0.0", allow_remote=True) as server,
          openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=CLIENT_KEY, max_retries=0) as sdk):
        assert ask(sdk, "gpt-4o", "hi")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2"])
def test_loopback_names_and_addresses_need_no_permission(seed_file: Path, host: str) -> None:
    SimServer(seed=[seed_file], host=host)


def test_on_ipv6_loopback_the_simulator_serves_at_a_bracketed_url(seed_file: Path) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("this machine has no IPv6")
    with (SimServer(seed=[seed_file], host="::1") as server,
          openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0) as sdk):
        assert server.url == f"http://[::1]:{server.port}/v1"
        assert ask(sdk, "gpt-4o", "hi")


def test_a_429_fault_carries_retry_after_and_the_rate_limit_body(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("429", retry_after=0.01, model="gpt-4o"))
    with pytest.raises(openai.RateLimitError) as raised:
        ask(client, "gpt-4o", "hi")
    assert raised.value.response.headers["retry-after"] == "0.01"
    body = raised.value.response.json()
    validate_error(body)
    assert (body["error"]["type"], body["error"]["code"]) == ("requests", "rate_limit_exceeded")
    assert "Rate limit reached for gpt-4o" in body["error"]["message"]


def test_the_sdk_retries_a_429_and_then_succeeds(server: SimServer) -> None:
    server.inject(Fault("429", count=2, retry_after=0.01))
    with openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=2) as sdk:
        assert ask(sdk, "gpt-4o", capital_question("Peru")) == capital_answer("Peru")
    assert len(server.requests) == 3


def test_a_500_fault_hits_count_requests_then_is_spent(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("500", count=2))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as raised:
            ask(client, "gpt-4o", "hi")
        assert raised.value.response.json()["error"]["type"] == "server_error"
    assert ask(client, "gpt-4o", capital_question("Peru")) == capital_answer("Peru")


def test_faults_match_by_path_and_model(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("500", path="/embeddings"))
    server.inject(Fault("500", model="gpt-4o-mini"))
    assert ask(client, "gpt-4o", "hi")
    with pytest.raises(openai.InternalServerError):
        ask(client, "gpt-4o-mini", "hi")
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert ask(client, "gpt-4o-mini", "hi")


def test_a_stall_answers_normally_after_the_wait(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("stall", seconds=0.05))
    assert ask(client, "gpt-4o", capital_question("Peru")) == capital_answer("Peru")


def test_ending_the_stalls_lets_stalled_requests_answer_at_once(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("stall", seconds=600, count=2))
    answered: list[str] = []
    waiting = threading.Thread(target=lambda: answered.append(ask(client, "gpt-4o", "hi")))
    waiting.start()
    server.end_stalls()
    waiting.join()
    assert ask(client, "gpt-4o", "hi") == answered[0]
    server.inject(Fault("stall", seconds=600))
    with (openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0, timeout=0.5) as impatient,
          pytest.raises(openai.APITimeoutError)):
        ask(impatient, "gpt-4o", "hi")
    server.end_stalls()


def test_a_stall_longer_than_the_client_timeout_is_a_timeout(server: SimServer) -> None:
    server.inject(Fault("stall", seconds=5))
    with openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0, timeout=0.3) as sdk, \
            pytest.raises(openai.APITimeoutError):
        ask(sdk, "gpt-4o", "hi")


def test_a_malformed_answer_is_a_200_that_is_not_json(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("malformed"))
    raw = httpx2.post(f"{server.url}/chat/completions", json={"model": "gpt-4o", "messages": [user("hi")]},
                      headers={"Authorization": f"Bearer {CLIENT_KEY}"})  # fmt: skip
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    server.inject(Fault("malformed"))
    with pytest.raises(json.JSONDecodeError):  # what the SDK raises for a broken JSON body
        ask(client, "gpt-4o", "hi")


def test_judge_garbage_breaks_only_judge_answers(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("judge_garbage"))
    assert ask(client, "gpt-4o", capital_question("Peru")) == capital_answer("Peru")
    garbage = judge_call(client).choices[0]
    assert garbage.finish_reason == "stop" and garbage.message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbage.message.content)
    assert json.loads(judge_call(client).choices[0].message.content or "")["score"] == 5


def test_judge_refusal_has_null_content_and_a_refusal(client: openai.OpenAI, server: SimServer) -> None:
    server.inject(Fault("judge_refusal"))
    message = judge_call(client).choices[0].message
    assert message.content is None and message.refusal


@pytest.mark.parametrize(
    "fields, match",
    [({"kind": "418"}, "unknown fault kind"), ({"kind": "stall"}, "seconds"), ({"kind": "500", "count": 0}, "count")],
)
def test_an_invalid_fault_is_refused(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Fault(**fields)


def test_negative_latency_or_job_time_is_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        SimServer(latency_s=-1)


def status_for_host(server: SimServer, host: str) -> int:
    """The status of `GET /v1/models` sent to the simulator's socket with this Host header."""
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
                           "Connection: close\r\n\r\n".encode())
        head = connection.recv(64).decode()
    return int(head.split()[1])


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("LOCALHOST", 200), ("127.8.9.10:{port}", 200), ("[::1]:{port}", 200),
    ("evil.example:{port}", 421), ("evil.example", 421), ("127.0.0.1.evil.example", 421), ("localhost.evil.example", 421),
    ("[::1]x", 421), ("0.0.0.0:{port}", 421), ("", 421),
], ids=lambda value: str(value))
def test_only_requests_addressed_to_loopback_are_answered(server: SimServer, host: str, status: int) -> None:
    """DNS rebinding: a page at evil.example whose name resolves to 127.0.0.1 sends `Host: evil.example`;
    without --allow-remote the simulator answers no such request (its stored completions stay unread)."""
    assert status_for_host(server, host.format(port=server.port)) == status


def test_allow_remote_answers_any_host_name(seed_file: Path) -> None:
    with SimServer(seed=[seed_file], allow_remote=True) as server:
        assert status_for_host(server, "evil.example") == 200
