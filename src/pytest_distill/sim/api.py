"""The OpenAI endpoints the simulator speaks, as plain functions of a parsed request.

HTTP lives in `server.py`; here every endpoint takes an `ApiRequest` and returns the real JSON
shape, or raises `ApiError` with the real error shape, so the rules can be read in one place.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .batches import ENDPOINTS, BatchBoard, LineRunner
from .chatformat import Example, message_problem, message_text, metadata_problem
from .errors import ApiError, bad_request, not_found
from .faults import BATCH_KINDS, JUDGE_VERDICTS, SHAPE_KINDS, Fault, reshape
from .ids import random_id, request_id, stable_id
from .jobs import JobBoard, check_job_files, hyperparameters_problem
from .judge import judge
from .models import FINE_TUNABLE, Knowledge, ModelCard, ModelZoo, embed, encode_base64, seeded_fine_tunes, snapshot
from .registry import registry_answer
from .responses import RESPONSE_PARAMS, chat_of, response_object
from .store import CompletionStore, FileStore, StoredFile
from .text import count_tokens, truncate_tokens

# The top-level properties of the spec's CreateChatCompletionRequest (OpenAPI 2.3.0); any other
# key is rejected as the real API rejects it. tests/sim checks this set against the spec.
CHAT_PARAMS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
        "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
        "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
EMBEDDING_PARAMS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})
JOB_PARAMS = frozenset(
    {"model", "training_file", "hyperparameters", "suffix", "validation_file", "integrations", "seed", "method", "metadata"}
)
BATCH_PARAMS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"})
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
Answerer = Callable[[Sequence[Mapping[str, Any]]], str | None]
"""A free-text answer to a chat request's messages, or None to leave it to the next (see `SimServer`)."""
REFUSAL = "I'm sorry, but I can't help with that request."
GARBAGE = "Sure! The output looks fine to me, I would give it a good grade."


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ApiRequest:
    """A request to /v1, parsed: `path` is the part after /v1, `body` the JSON or the form fields."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    body: Any = None
    uploads: Mapping[str, Upload] = field(default_factory=dict)
    request_id: str = ""
    fault: Fault | None = None


@dataclass(frozen=True)
class ApiResponse:
    """What to send back: status, body bytes, content type and any further headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> ApiResponse:
        """A JSON response (UTF-8, non-ASCII kept as is). A lone surrogate, which only the `lone_surrogate`
        fault puts in, goes out as its JSON escape `\\ud800`, as a careless server writes it."""
        return cls(status, json.dumps(payload, ensure_ascii=False).encode("utf-8", "backslashreplace"), headers=dict(headers or {}))

    @classmethod
    def error(cls, error: ApiError) -> ApiResponse:
        """The real error shape and status, with the error's headers (e.g. Retry-After)."""
        return cls.json(error.body(), error.status, error.headers)


Handler = Callable[..., "dict[str, Any] | ApiResponse"]


class SimApi:
    """The endpoints, over the stores, the fine-tuning jobs and the simulated models."""

    def __init__(
        self, seeded: Sequence[tuple[str, Example]], *, job_seconds: float, clock: Callable[[], float] = time.time,
        run_line: LineRunner | None = None, fine_tunes: Sequence[str] = (), answerers: Sequence[Answerer] = (),
    ) -> None:
        self.clock = clock
        self.answerers = (*answerers, registry_answer)
        """Tried in order on a free-text chat request before the simulated model answers it."""
        self.on_change: Callable[[], None] | None = None
        """Called after a request changed the files or the fine-tuning jobs (to keep them on disk)."""
        self.completions = CompletionStore()
        self.responses: dict[str, dict[str, Any]] = {}
        """Responses made with `store` (the API's default), by id, for GET /responses/{id}."""
        self.files = FileStore()
        self.jobs = JobBoard(job_seconds, clock)
        self.batches = BatchBoard(self.files, run_line or self.run_line, clock)
        old = seeded_fine_tunes(fine_tunes, (example for _, example in seeded), int(clock()) - 86400 * 365)
        self.zoo = ModelZoo(Knowledge(example for _, example in seeded), lambda: {**old, **self.jobs.fine_tunes()})
        start = int(clock()) - len(seeded)
        for offset, (completion_id, example) in enumerate(seeded):
            self._seed(completion_id, example, created=start + offset)
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/chat/completions", self.create_chat_completion),
            ("GET", "/chat/completions", self.list_chat_completions),
            ("GET", "/chat/completions/{id}", self.get_chat_completion),
            ("POST", "/chat/completions/{id}", self.update_chat_completion),
            ("DELETE", "/chat/completions/{id}", self.delete_chat_completion),
            ("GET", "/chat/completions/{id}/messages", self.list_chat_messages),
            ("POST", "/responses", self.create_response),
            ("GET", "/responses/{id}", self.get_response),
            ("POST", "/embeddings", self.create_embeddings),
            ("GET", "/models", self.list_models),
            ("GET", "/models/{id}", self.get_model),
            ("POST", "/files", self.create_file),
            ("GET", "/files", self.list_files),
            ("GET", "/files/{id}", self.get_file),
            ("DELETE", "/files/{id}", self.delete_file),
            ("GET", "/files/{id}/content", self.get_file_content),
            ("POST", "/fine_tuning/jobs", self.create_job),
            ("GET", "/fine_tuning/jobs", self.list_jobs),
            ("GET", "/fine_tuning/jobs/{id}", self.get_job),
            ("GET", "/fine_tuning/jobs/{id}/events", self.list_job_events),
            ("POST", "/fine_tuning/jobs/{id}/cancel", self.cancel_job),
            ("POST", "/batches", self.create_batch),
            ("GET", "/batches", self.list_batches),
            ("GET", "/batches/{id}", self.get_batch),
            ("POST", "/batches/{id}/cancel", self.cancel_batch),
        ]
        self._routes = [
            (method, re.compile(re.escape(path).replace(r"\{id\}", "([^/]+)") + "$"), handler)
            for method, path, handler in routes
        ]

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Route a request; an unknown method or path is the real API's 404 "Invalid URL"."""
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                result = handler(request, *match.groups())
                # A batch moves on when it is retrieved: a GET changes it too.
                kept = request.path.startswith(("/files", "/fine_tuning", "/batches"))
                if self.on_change and kept and (method != "GET" or request.path.startswith("/batches/")):
                    self.on_change()
                return result if isinstance(result, ApiResponse) else ApiResponse.json(result)
        raise not_found(f"Invalid URL ({request.method} /v1{request.path})")

    # Chat completions

    def create_chat_completion(self, request: ApiRequest) -> dict[str, Any]:
        """POST /chat/completions: answer with a simulated model, the judge, or an injected fault."""
        body = _json_object(request.body)
        _reject_unknown(body, CHAT_PARAMS)
        model = _model_unstreamed(body)
        messages = _messages(body)
        if body.get("n") not in (None, 1):
            raise bad_request("The simulator answers with n=1 only.", param="n")
        card = self._chat_model(model)
        if card.kind == "reasoning":
            _check_reasoning_params(body)
        store = bool(body.get("store"))
        metadata = body.get("metadata")
        if metadata is not None:
            _check_metadata(metadata)
            if not store:
                raise bad_request("The 'metadata' parameter is only allowed when 'store' is enabled.", param="metadata")
        content, refusal, finish_reason = self._reply(card, messages, body, request.fault)
        completion = chat_completion(
            completion_id=random_id("chatcmpl-", 29),
            created=int(self.clock()),
            model=snapshot(card.id),
            messages=messages,
            content=content,
            refusal=refusal,
            finish_reason=finish_reason,
        )
        if store:
            self.completions.add(stored_completion(completion, body, request.request_id), messages)
        if request.fault is not None and request.fault.kind in SHAPE_KINDS:
            return reshape(completion, request.fault.kind)
        return completion

    def create_response(self, request: ApiRequest) -> dict[str, Any]:
        """POST /responses: the same answer as the chat request it amounts to, as a `response` object."""
        body = _json_object(request.body)
        _reject_unknown(body, RESPONSE_PARAMS)
        model = _model_unstreamed(body)
        messages, chat = chat_of(body)
        card = self._chat_model(model)
        if card.kind == "reasoning":
            _check_reasoning_params(chat)
        if body.get("metadata") is not None:
            _check_metadata(body["metadata"])
        content, refusal, finish_reason = self._reply(card, messages, chat, request.fault)
        created = int(self.clock())
        completion = chat_completion(completion_id="", created=created, model=snapshot(card.id), messages=messages,
                                     content=content, refusal=refusal, finish_reason=finish_reason)
        response = response_object(response_id=random_id("resp_", 48), message_id=random_id("msg_", 48),
                                   created=created, model=snapshot(card.id), body=body, completion=completion)
        if body.get("store", True):
            self.responses[response["id"]] = response
        return response

    def get_response(self, request: ApiRequest, response_id: str) -> dict[str, Any]:
        """GET /responses/{id}: a stored response."""
        if response_id not in self.responses:
            raise not_found(f"Response with id '{response_id}' not found.")
        return self.responses[response_id]

    def list_chat_completions(self, request: ApiRequest) -> dict[str, Any]:
        """GET /chat/completions: stored ones, filtered by model (alias or snapshot) and metadata."""
        model = _one(request.query, "model")
        models = {model, snapshot(model)} if model else None
        items = self.completions.list(models=models, metadata=_metadata_filter(request.query))
        return page(items, request.query, default_order="asc", max_limit=100)

    def get_chat_completion(self, request: ApiRequest, completion_id: str) -> dict[str, Any]:
        """GET /chat/completions/{id}."""
        return self.completions.get(completion_id)

    def update_chat_completion(self, request: ApiRequest, completion_id: str) -> dict[str, Any]:
        """POST /chat/completions/{id}: only `metadata` can change, as on the real API."""
        body = _json_object(request.body)
        _reject_unknown(body, {"metadata"})
        if "metadata" not in body:
            raise _missing("metadata")
        metadata = body["metadata"] or {}
        _check_metadata(metadata)
        return self.completions.update(completion_id, metadata)

    def delete_chat_completion(self, request: ApiRequest, completion_id: str) -> dict[str, Any]:
        """DELETE /chat/completions/{id}."""
        self.completions.delete(completion_id)
        return {"object": "chat.completion.deleted", "id": completion_id, "deleted": True}

    def list_chat_messages(self, request: ApiRequest, completion_id: str) -> dict[str, Any]:
        """GET /chat/completions/{id}/messages: the stored input messages, paged."""
        return page(self.completions.messages(completion_id), request.query, default_order="asc", max_limit=100)

    # Embeddings and models

    def create_embeddings(self, request: ApiRequest) -> dict[str, Any]:
        """POST /embeddings: hashed character n-gram vectors, as floats or base64 float32."""
        body = _json_object(request.body)
        _reject_unknown(body, EMBEDDING_PARAMS)
        model = body.get("model")
        if not model or not isinstance(model, str):
            raise bad_request("you must provide a model parameter")
        card = self._model(model)
        if card.kind != "embedding":
            raise bad_request(f"The model `{model}` does not support embeddings.", param="model")
        texts = _embedding_input(body.get("input"))
        dimensions = body.get("dimensions", card.dimensions)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= card.dimensions:
            raise bad_request(f"Invalid 'dimensions': expected an integer from 1 to {card.dimensions}.", param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _invalid_value("encoding_format", encoding, ("float", "base64"))
        data = []
        for index, text in enumerate(texts):
            vector = embed(text, card.dimensions, dimensions)
            embedding = encode_base64(vector) if encoding == "base64" else vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(text) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": card.id, "usage": usage}

    def list_models(self, request: ApiRequest) -> dict[str, Any]:
        """GET /models: the base models and the fine-tuned models that exist now."""
        return {"object": "list", "data": [card.as_json() for card in self.zoo.cards()]}

    def get_model(self, request: ApiRequest, model: str) -> dict[str, Any]:
        """GET /models/{model}."""
        return self._model(model).as_json()

    # Files

    def create_file(self, request: ApiRequest) -> dict[str, Any]:
        """POST /files (multipart): keep the bytes; fine-tune files must be .jsonl, as on the real API."""
        form = request.body if isinstance(request.body, dict) else {}
        upload = request.uploads.get("file")
        if upload is None:
            raise _missing("file")
        _reject_unknown({k: v for k, v in form.items() if not k.startswith("expires_after")}, {"purpose", "file"})
        purpose = form.get("purpose")
        if purpose is None:
            raise _missing("purpose")
        if purpose not in FILE_PURPOSES:
            raise _invalid_value("purpose", purpose, FILE_PURPOSES)
        if purpose == "fine-tune" and not upload.filename.endswith(".jsonl"):
            raise bad_request("Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        info = {
            "object": "file",
            "id": random_id("file-", 22),
            "purpose": purpose,
            "filename": upload.filename,
            "bytes": len(upload.data),
            "created_at": int(self.clock()),
            "status": "processed",
        }
        self.files.add(StoredFile(info, upload.data))
        return info

    def list_files(self, request: ApiRequest) -> dict[str, Any]:
        """GET /files: newest first unless order=asc, optionally of one purpose."""
        items = self.files.list(_one(request.query, "purpose"))
        return page(items, request.query, default_order="desc", max_limit=10000, default_limit=10000)

    def get_file(self, request: ApiRequest, file_id: str) -> dict[str, Any]:
        """GET /files/{id}."""
        return self.files.get(file_id).info

    def delete_file(self, request: ApiRequest, file_id: str) -> dict[str, Any]:
        """DELETE /files/{id}."""
        self.files.delete(file_id)
        return {"object": "file", "id": file_id, "deleted": True}

    def get_file_content(self, request: ApiRequest, file_id: str) -> ApiResponse:
        """GET /files/{id}/content: the bytes as uploaded."""
        return ApiResponse(200, self.files.get(file_id).data, "application/octet-stream")

    # Fine-tuning jobs

    def create_job(self, request: ApiRequest) -> dict[str, Any]:
        """POST /fine_tuning/jobs: check the request now; the file is checked as the job runs."""
        body = _json_object(request.body)
        _reject_unknown(body, JOB_PARAMS)
        for name in ("model", "training_file"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _missing(name)
        model = self._fine_tunable(body["model"])
        training = self._training_file(body["training_file"], "training_file")
        validation_id = body.get("validation_file")
        validation = self._training_file(validation_id, "validation_file") if validation_id is not None else None
        suffix = body.get("suffix")
        if suffix is not None and not (isinstance(suffix, str) and 1 <= len(suffix) <= 64):
            raise bad_request("Invalid 'suffix': expected a string of 1 to 64 characters.", param="suffix")
        seed = body.get("seed")
        if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 2147483647):
            raise bad_request("Invalid 'seed': expected an integer from 0 to 2147483647.", param="seed")
        metadata = body.get("metadata")
        if metadata is not None:
            _check_metadata(metadata)
        integrations = body.get("integrations")
        if integrations is not None and not isinstance(integrations, list):
            raise bad_request("Invalid 'integrations': expected an array.", param="integrations")
        check = check_job_files(training.data, validation.data if validation is not None else None)
        return self.jobs.create(
            model=model,
            training_file=body["training_file"],
            check=check,
            validation_file=validation_id,
            suffix=suffix,
            seed=seed,
            metadata=metadata,
            integrations=integrations,
            hyperparameters=_hyperparameters(body),
        )

    def list_jobs(self, request: ApiRequest) -> dict[str, Any]:
        """GET /fine_tuning/jobs: newest first, optionally filtered by metadata."""
        return page(self.jobs.list(_metadata_filter(request.query)), request.query, ids=False)

    def get_job(self, request: ApiRequest, job_id: str) -> dict[str, Any]:
        """GET /fine_tuning/jobs/{id}: its state at this moment."""
        return self.jobs.get(job_id)

    def list_job_events(self, request: ApiRequest, job_id: str) -> dict[str, Any]:
        """GET /fine_tuning/jobs/{id}/events: newest first."""
        return page(self.jobs.events(job_id), request.query, ids=False)

    def cancel_job(self, request: ApiRequest, job_id: str) -> dict[str, Any]:
        """POST /fine_tuning/jobs/{id}/cancel."""
        return self.jobs.cancel(job_id)

    # Batches

    def create_batch(self, request: ApiRequest) -> dict[str, Any]:
        """POST /batches: the request is checked now, its input file when the batch is first retrieved."""
        body = _json_object(request.body)
        _reject_unknown(body, BATCH_PARAMS)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _missing(name)
        if body["endpoint"] not in ENDPOINTS:
            raise _invalid_value("endpoint", body["endpoint"], ENDPOINTS)
        if body["completion_window"] != "24h":
            raise _invalid_value("completion_window", body["completion_window"], ("24h",))
        metadata = body.get("metadata")
        if metadata is not None:
            _check_metadata(metadata)
        fault = request.fault.kind if request.fault is not None and request.fault.kind in BATCH_KINDS else None
        return self.batches.create(body["input_file_id"], body["endpoint"], metadata, fault)

    def list_batches(self, request: ApiRequest) -> dict[str, Any]:
        """GET /batches: newest first."""
        return page(self.batches.views()[::-1], request.query, max_limit=100)

    def get_batch(self, request: ApiRequest, batch_id: str) -> dict[str, Any]:
        """GET /batches/{id}: the batch, one step further on."""
        return self.batches.get(batch_id)

    def cancel_batch(self, request: ApiRequest, batch_id: str) -> dict[str, Any]:
        """POST /batches/{id}/cancel."""
        return self.batches.cancel(batch_id)

    def run_line(self, endpoint: str, body: dict[str, Any], fault: Fault | None = None) -> tuple[int, Any, str]:
        """One line of a batch, answered as its endpoint answers a request: (status, body, request id).
        `SimServer` runs each line with the fault it takes for it."""
        rid = request_id()
        try:
            response = self.handle(ApiRequest("POST", endpoint.removeprefix("/v1"), body=body, request_id=rid, fault=fault))
        except ApiError as error:
            return error.status, error.body(), rid
        return response.status, json.loads(response.body), rid

    # State kept across restarts

    def state(self) -> dict[str, Any]:
        """The uploaded files, the fine-tuning jobs and the batches, as JSON."""
        return {"files": self.files.state(), "jobs": self.jobs.state(), "batches": self.batches.state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back files and jobs kept by `state()`; each job's file check is made again (a job
        whose training file was deleted meanwhile is forgotten)."""
        for item in state.get("files", []):
            self.files.add(StoredFile(item["info"], base64.b64decode(item["data"])))
        for job in state.get("jobs", []):
            training = self.files.find(job["training_file"])
            validation = self.files.find(job["validation_file"]) if job["validation_file"] else None
            if training is not None:
                self.jobs.restore(job, check_job_files(training.data, validation.data if validation else None))
        self.batches.restore(state.get("batches", []))

    # Helpers that need the API's state

    def _seed(self, completion_id: str, example: Example, *, created: int) -> None:
        completion = chat_completion(
            completion_id=completion_id,
            created=created,
            model=snapshot("gpt-4o"),
            messages=example.input,
            content=example.answer,
            refusal=None,
            finish_reason="stop",
        )
        body = {"metadata": example.metadata, "temperature": 1.0, "top_p": 1.0}
        request_id = stable_id("req_", completion_id, length=32)
        self.completions.add(stored_completion(completion, body, request_id), example.input)

    def _model(self, name: str) -> ModelCard:
        card = self.zoo.find(name)
        if card is None:
            raise ApiError(
                404, f"The model `{name}` does not exist or you do not have access to it.", code="model_not_found"
            )
        return card

    def _chat_model(self, name: str) -> ModelCard:
        card = self._model(name)
        if card.kind == "embedding":
            raise not_found(
                "This is not a chat model and thus not supported in the v1/chat/completions endpoint.", param="model"
            )
        return card

    def _fine_tunable(self, name: str) -> str:
        base = snapshot(name)
        if base in FINE_TUNABLE or (self.zoo.find(base) is not None and base.startswith("ft:")):
            return base
        raise bad_request(
            f"Model {name} is not available for fine-tuning or does not exist.", param="model", code="model_not_available"
        )

    def _training_file(self, file_id: object, param: str) -> StoredFile:
        stored = self.files.find(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise bad_request(f"invalid {param}: {file_id}", param=param)
        if stored.info["purpose"] != "fine-tune":
            purpose = stored.info["purpose"]
            raise bad_request(f"invalid {param}: {file_id} was uploaded with purpose '{purpose}', not 'fine-tune'.", param=param)
        return stored

    def _reply(
        self, card: ModelCard, messages: list[dict[str, Any]], body: Mapping[str, Any], fault: Fault | None
    ) -> tuple[str | None, str | None, str]:
        """The message content, refusal and finish reason: the judge for a json_schema request."""
        response_format = body.get("response_format") or {}
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        if kind == "json_schema":
            schema = response_format.get("json_schema")
            if not isinstance(schema, Mapping):
                raise _missing("response_format.json_schema")
            if fault is not None and fault.kind == "judge_refusal":
                return None, REFUSAL, "stop"
            answer = judge(messages, schema)
            if fault is not None and fault.kind in JUDGE_VERDICTS:
                answer[next(name for name in answer if name != "reasoning")] = JUDGE_VERDICTS[fault.kind]
            garbage = fault is not None and fault.kind == "judge_garbage"
            text = GARBAGE if garbage else json.dumps(answer, ensure_ascii=False)
        elif kind == "json_object":
            text = json.dumps({"answer": self.zoo.answer(card.id, messages)}, ensure_ascii=False)
        else:
            text = next(filter(None, (answer(messages) for answer in self.answerers)), None) or self.zoo.answer(card.id, messages)
        text = _cut_at_stop(text, body.get("stop"))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and count_tokens(text) > limit:
            return truncate_tokens(text, limit), None, "length"
        return text, None, "stop"


def _check_reasoning_params(body: Mapping[str, Any]) -> None:
    """What a reasoning model refuses, in the real API's words: a sampling temperature but its
    default, and `max_tokens` (it counts reasoning in `max_completion_tokens`)."""
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise bad_request(f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                          "Only the default (1) value is supported.", param="temperature", code="unsupported_value")
    if body.get("max_tokens") is not None:
        raise bad_request("Unsupported parameter: 'max_tokens' is not supported with this model. "
                          "Use 'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")


def chat_completion(
    *,
    completion_id: str,
    created: int,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    content: str | None,
    refusal: str | None,
    finish_reason: str,
) -> dict[str, Any]:
    """The real `chat.completion` object, with a usage count from `count_tokens`."""
    prompt_tokens = sum(count_tokens(message_text(m)) + 3 for m in messages) + 3
    completion_tokens = count_tokens(content or refusal or "")
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_" + stable_id("", model, length=10).lower(),
    }


def stored_completion(completion: Mapping[str, Any], body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """A completion as the stored-completions endpoints return it: with the request's settings."""
    return {
        **completion,
        "metadata": dict(body.get("metadata") or {}),
        "request_id": request_id,
        "seed": body.get("seed"),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "presence_penalty": body.get("presence_penalty", 0.0),
        "frequency_penalty": body.get("frequency_penalty", 0.0),
        "input_user": body.get("user"),
        "tool_choice": body.get("tool_choice"),
        "tools": body.get("tools"),
        "response_format": body.get("response_format"),
    }


def page(
    items: list[dict[str, Any]],
    query: Mapping[str, list[str]],
    *,
    default_order: str | None = None,
    max_limit: int = 100,
    default_limit: int = 20,
    ids: bool = True,
) -> dict[str, Any]:
    """One page of a cursor-paged list: `after` an item id, `limit`, and `order` when it applies.

    `items` come oldest first when the list has an `order` parameter (`default_order` given),
    else already in the listing's fixed order (newest first for jobs and events). `ids` adds
    `first_id`/`last_id`, which the real API sends on the lists whose schema has them (null on
    an empty page).
    """
    limit = _limit(_one(query, "limit"), default_limit, max_limit)
    if default_order is not None:
        order = _one(query, "order") or default_order
        if order not in ("asc", "desc"):
            raise _invalid_value("order", order, ("asc", "desc"))
        items = items if order == "asc" else items[::-1]
    after = _one(query, "after")
    if after is not None:
        positions = [i for i, item in enumerate(items) if item["id"] == after]
        if not positions:
            raise bad_request(f"Invalid 'after': no item with id '{after}' in this list.", param="after")
        items = items[positions[0] + 1 :]
    data = items[:limit]
    result: dict[str, Any] = {"object": "list", "data": data}
    if ids:
        result["first_id"] = data[0]["id"] if data else None
        result["last_id"] = data[-1]["id"] if data else None
    result["has_more"] = len(items) > limit
    return result


def _json_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("We could not parse the JSON body of your request: the OpenAI API expects a JSON object.")
    return body


def _reject_unknown(body: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if len(unknown) == 1:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}")
    if unknown:
        raise bad_request(f"Unrecognized request arguments supplied: {', '.join(unknown)}")


def _missing(name: str) -> ApiError:
    return bad_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def _invalid_value(param: str, value: object, supported: Sequence[str]) -> ApiError:
    names = ", ".join(f"'{s}'" for s in supported[:-1]) + f" and '{supported[-1]}'"
    return bad_request(f"Invalid value: '{value}'. Supported values are: {names}.", param=param, code="invalid_value")


def _check_metadata(metadata: object) -> None:
    problem = metadata_problem(metadata)
    if problem:
        raise bad_request(f"Invalid 'metadata': {problem}.", param="metadata")


def _model_unstreamed(body: dict[str, Any]) -> str:
    """The model a chat or responses request names; the simulator answers whole replies only."""
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise bad_request("you must provide a model parameter")
    if body.get("stream"):
        raise bad_request("The simulator does not stream: leave out stream or send stream=false.", param="stream")
    return model


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list) or not messages:
        message = "Invalid 'messages': expected a non-empty array of messages."
        raise bad_request(message, param="messages", code="empty_array")
    for index, message in enumerate(messages):
        problem = message_problem(message, f"messages[{index}]")
        if problem:
            raise bad_request(f"Invalid '{problem}'.", param=f"messages[{index}]", code="invalid_value")
    return messages


def _embedding_input(value: object) -> list[str]:
    if value is None:
        raise _missing("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise bad_request("Invalid 'input': expected a string or a non-empty array of strings.", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise bad_request("The simulator embeds text only: send strings, not token arrays.", param="input")
    if not all(texts):
        raise bad_request("'$.input' is invalid: the input cannot be an empty string.", param="input")
    return texts


def _hyperparameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """The supervised hyperparameters, from `method` or from the deprecated top-level field."""
    legacy = body.get("hyperparameters")
    method = body.get("method")
    from_method = None
    if method is not None:
        kind = method.get("type") if isinstance(method, Mapping) else None
        if kind != "supervised":
            raise bad_request(f"The simulator trains with method type 'supervised' only, not {kind!r}.", param="method.type")
        supervised = method.get("supervised") or {}
        from_method = supervised.get("hyperparameters") if isinstance(supervised, Mapping) else None
    if legacy and from_method:
        raise bad_request("Give the hyperparameters in 'method' or in 'hyperparameters', not both.", param="hyperparameters")
    chosen = from_method or legacy or {}
    problem = hyperparameters_problem(chosen)
    if problem:
        raise bad_request(f"Invalid hyperparameters: {problem}.", param="hyperparameters")
    return dict(chosen)


def _cut_at_stop(text: str, stop: object) -> str:
    """The text up to the first stop sequence, which the real API leaves out too."""
    sequences = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cuts = [text.find(s) for s in sequences if isinstance(s, str) and s and s in text]
    return text[: min(cuts)] if cuts else text


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _metadata_filter(query: Mapping[str, list[str]]) -> dict[str, str]:
    return {
        key[len("metadata[") : -1]: values[-1]
        for key, values in query.items()
        if key.startswith("metadata[") and key.endswith("]")
    }


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        message = f"Invalid 'limit': expected an integer, but got '{raw}' instead."
        raise bad_request(message, param="limit", code="invalid_type") from None
    if limit < 1:
        raise bad_request(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if limit > maximum:
        raise bad_request(
            f"Invalid 'limit': integer above maximum value. Expected a value <= {maximum}, but got {limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    return limit
