"""The Batch API: a file of requests run later, its answers in an output file and an error file.

A batch moves one step each time it is retrieved (`GET /batches/{id}`), never on its own: validating
-> in_progress (its lines run in two halves, one a retrieval) -> finalizing -> completed. So a test
counts polls instead of waiting for a clock, and a client that stops polling finds the batch where it
left it, as it would find a real one within its 24 hours. Faults: `batch_failed` (the batch fails
validation), `batch_expired` (its window ends after the first half: `expired`, the unfinished lines
in the error file); a line's own faults are those of its endpoint (`500`, `429`, judge kinds...),
taken as each line runs.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jsonl import BadLine, Line, parse_jsonl
from .errors import bad_request, not_found
from .ids import random_id
from .store import FileStore, StoredFile

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
"""What a batch's lines may call here (the real API takes a few more: completions, moderations, images)."""
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
CUSTOM_ID_LIMIT = 512
WINDOW_S = 24 * 3600
HALVES = 2
"""Retrievals that an in-progress batch takes to run all its lines."""
LineRunner = Callable[[str, dict[str, Any]], tuple[int, Any, str]]
"""Runs one line: (endpoint path like "/v1/chat/completions", body) -> (status, answer body, request id)."""


@dataclass
class Batch:
    """One batch: its object as the API shows it, the answers of the lines run so far, and its fault."""

    view: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None

    def state(self) -> dict[str, Any]:
        return {"view": self.view, "results": self.results, "fault": self.fault}


class BatchBoard:
    """The batches, in creation order, over the file store that holds their input and output files."""

    def __init__(self, files: FileStore, run_line: LineRunner, clock: Callable[[], float]) -> None:
        self.files, self.run_line, self.clock = files, run_line, clock
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}

    def create(self, input_file_id: str, endpoint: str, metadata: dict[str, str] | None, fault: str | None) -> dict[str, Any]:
        """A new batch in `validating`; its input file must exist and be for purpose batch."""
        stored = self.files.find(input_file_id)
        if stored is None:
            raise bad_request(f"Invalid 'input_file_id': '{input_file_id}'. No such file.", param="input_file_id")
        if stored.info["purpose"] != "batch":
            raise bad_request(f"Invalid 'input_file_id': '{input_file_id}' was uploaded with purpose "
                              f"'{stored.info['purpose']}', not 'batch'.", param="input_file_id")
        now = int(self.clock())
        view: dict[str, Any] = {
            "id": random_id("batch_", 32), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": input_file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + WINDOW_S, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": metadata,
        }
        with self._lock:
            self._batches[view["id"]] = Batch(view, fault=fault)
        return dict(view)

    def get(self, batch_id: str) -> dict[str, Any]:
        """The batch after one more step of its life."""
        with self._lock:
            batch = self._find(batch_id)
            self._advance(batch)
            return dict(batch.view)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """`cancelling` now, `cancelled` at its next retrieval (lines run so far keep their answers)."""
        with self._lock:
            batch = self._find(batch_id)
            view = batch.view
            if view["status"] in ("validating", "in_progress"):
                view.update(status="cancelling", cancelling_at=int(self.clock()))
            elif view["status"] != "cancelling":
                raise bad_request(f"Cannot cancel a batch with status '{view['status']}'.")
            return dict(view)

    def views(self) -> list[dict[str, Any]]:
        """The batches, oldest first (the listing shows them newest first)."""
        with self._lock:
            return [dict(batch.view) for batch in self._batches.values()]

    def state(self) -> list[dict[str, Any]]:
        with self._lock:
            return [batch.state() for batch in self._batches.values()]

    def restore(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            for item in items:
                self._batches[item["view"]["id"]] = Batch(item["view"], item["results"], item["fault"])

    def _find(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise not_found(f"No batch found with id '{batch_id}'.")
        return batch

    def _advance(self, batch: Batch) -> None:
        view, now = batch.view, int(self.clock())
        status = view["status"]
        if status == "validating":
            self._validate(batch, now)
        elif status == "in_progress":
            lines = self._lines(batch)
            step = math.ceil(len(lines) / HALVES)
            for custom_id, body in lines[len(batch.results):len(batch.results) + step]:
                batch.results.append(self._run(view["endpoint"], custom_id, body))
            self._count(batch)
            if len(batch.results) == len(lines):
                view.update(status="finalizing", finalizing_at=now)
            elif batch.fault == "batch_expired":
                self._close(batch, lines, "expired", "batch_expired",
                            "This request could not be executed before the completion window expired.")
        elif status == "finalizing":
            self._close(batch, [], "completed", "", "")
        elif status == "cancelling":
            self._close(batch, self._lines(batch), "cancelled", "batch_cancelled", "This request was cancelled.")

    def _validate(self, batch: Batch, now: int) -> None:
        """Read the input file as the real API does: one request a line, each custom_id once, the
        batch's endpoint and one model throughout; any mistake fails the whole batch."""
        view = batch.view
        errors = [{"code": "batch_failed", "message": "The batch failed (a fault injected into the simulator).",
                   "param": None, "line": None}] if batch.fault == "batch_failed" else _problems(self._data(view), view["endpoint"])
        if errors:
            view.update(status="failed", failed_at=now, errors={"object": "list", "data": errors[:10]})
            return
        total = len(_requests(self._data(view)))
        view.update(status="in_progress", in_progress_at=now, request_counts={"total": total, "completed": 0, "failed": 0})

    def _data(self, view: Mapping[str, Any]) -> bytes:
        stored = self.files.find(view["input_file_id"])
        return stored.data if stored is not None else b""

    def _lines(self, batch: Batch) -> list[tuple[str, dict[str, Any]]]:
        return [(line["custom_id"], line["body"]) for line in _requests(self._data(batch.view))]

    def _run(self, endpoint: str, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer, request_id = self.run_line(endpoint, body)
        return {"id": random_id("batch_req_", 32), "custom_id": custom_id,
                "response": {"status_code": status, "request_id": request_id, "body": answer}, "error": None}

    def _count(self, batch: Batch) -> None:
        ok = sum(result["response"]["status_code"] == 200 for result in batch.results)
        batch.view["request_counts"] = {"total": batch.view["request_counts"]["total"], "completed": ok,
                                        "failed": len(batch.results) - ok}
        bodies = [result["response"]["body"] for result in batch.results if result["response"]["status_code"] == 200]
        usages: list[dict[str, Any]] = [body["usage"] for body in bodies
                                        if isinstance(body, dict) and isinstance(body.get("usage"), dict)]
        prompt = sum(_count(usage, "prompt_tokens", "input_tokens") for usage in usages)
        answer = sum(_count(usage, "completion_tokens", "output_tokens") for usage in usages)
        batch.view["usage"] = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                               "output_tokens": answer, "output_tokens_details": {"reasoning_tokens": 0},
                               "total_tokens": prompt + answer}

    def _close(self, batch: Batch, lines: list[tuple[str, dict[str, Any]]], status: str, code: str, message: str) -> None:
        """The end of a batch: its output file (answers with status 200), its error file (the others, and
        the lines never run, with `code`), and the time it reached `status`."""
        view, now = batch.view, int(self.clock())
        unfinished = [{"id": random_id("batch_req_", 32), "custom_id": custom_id, "response": None,
                       "error": {"code": code, "message": message}} for custom_id, _ in lines[len(batch.results):]]
        good = [result for result in batch.results if result["response"]["status_code"] == 200]
        bad = [result for result in batch.results if result["response"]["status_code"] != 200] + unfinished
        view.update(status=status, **{f"{status}_at": now})
        if good:
            view["output_file_id"] = self._file(view["id"], "output", good)
        if bad:
            view["error_file_id"] = self._file(view["id"], "error", bad)
        batch.results = []  # the answers live in the files from now on

    def _file(self, batch_id: str, kind: str, lines: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8", "backslashreplace")
        info = {"object": "file", "id": random_id("file-", 22), "purpose": "batch_output",
                "filename": f"{batch_id}_{kind}.jsonl", "bytes": len(data), "created_at": int(self.clock()),
                "status": "processed"}
        self.files.add(StoredFile(info, data))
        return str(info["id"])


def _count(usage: Mapping[str, Any], *names: str) -> int:
    """A token count of a chat (`prompt_tokens`) or a Responses (`input_tokens`) usage; 0 when none is a number."""
    counts = [usage.get(name) for name in names]
    return next((count for count in counts if isinstance(count, int) and not isinstance(count, bool)), 0)


def _requests(data: bytes) -> list[dict[str, Any]]:
    """The input file's request lines, read leniently (validation said already what is wrong)."""
    return [line.data for line in parse_jsonl(data) if isinstance(line, Line) and isinstance(line.data.get("custom_id"), str)
            and isinstance(line.data.get("body"), dict)]


def _problems(data: bytes, endpoint: str) -> list[dict[str, Any]]:
    """What makes an input file no batch, as the batch's `errors.data`: each with its line."""
    def error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
        return {"code": code, "message": message, "param": param, "line": line}

    if len(data) > MAX_BYTES:
        return [error("file_too_large", f"The input file is larger than the {MAX_BYTES // 2**20} MB a batch takes.")]
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    first_model: str | None = None
    count = 0
    for parsed in parse_jsonl(data):
        count += 1
        number = parsed.number
        if isinstance(parsed, BadLine) and not parsed.is_json:
            problems.append(error("invalid_json_line", "This line is not parseable as valid JSON.", number))
            continue
        line = parsed.data if isinstance(parsed, Line) else {}
        if not isinstance(line.get("body"), dict):
            problems.append(error("invalid_request", "Each line must be an object with a 'body' object.", number, "body"))
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= CUSTOM_ID_LIMIT:
            problems.append(error("missing_required_parameter", "Each line needs a 'custom_id' string.", number, "custom_id"))
        elif custom_id in seen:
            problems.append(error("duplicate_custom_id", f"The custom_id '{custom_id}' is used more than once.", number,
                                  "custom_id"))
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            problems.append(error("invalid_method", "Only the POST method is supported in a batch.", number, "method"))
        if line.get("url") != endpoint:
            problems.append(error("mismatched_endpoint", f"The line's URL {line.get('url')!r} is not the batch's "
                                  f"endpoint {endpoint}.", number, "url"))
        model = line["body"].get("model")
        first_model = first_model or (model if isinstance(model, str) else None)
        if model != first_model:
            problems.append(error("mismatched_model", f"All requests of a batch must use the same model: this line asks "
                                  f"{model!r}, the first {first_model!r}.", number, "body.model"))
    if count > MAX_LINES:
        problems.append(error("too_many_requests", f"The input file has {count} requests; a batch takes at most {MAX_LINES}."))
    if not count:
        problems.append(error("empty_file", "The input file has no requests."))
    return problems
