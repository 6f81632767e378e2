"""Injected faults, for testing how a client behaves when the API misbehaves."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

JUDGE_VERDICTS = {"judge_nan": float("nan"), "judge_infinity": float("inf"), "judge_off_scale": 1e6}
"""What the verdict field says in a judge answer of these kinds (JSON text `NaN`, `Infinity`, `1000000.0`)."""
JUDGE_KINDS = ("judge_garbage", "judge_refusal", *JUDGE_VERDICTS)
SHAPE_KINDS = ("list_content", "no_message", "null_usage", "lone_surrogate")
"""Faults that answer a chat completion with a 200 off the API's shape: the answer is made, then bent."""
BATCH_KINDS = ("batch_failed", "batch_expired")
"""Faults of a whole batch, matched by its creation (`POST /v1/batches`)."""
KINDS = ("404", "429", "500", "stall", "malformed", *JUDGE_KINDS, *SHAPE_KINDS, *BATCH_KINDS)


@dataclass(frozen=True)
class Fault:
    """A fault for the next `count` matching requests to /v1.

    kinds: "404" (not found, as for an object deleted between a listing and its retrieval),
    "429" (rate limit, with `Retry-After: retry_after` when given), "500" (server
    error), "stall" (wait `seconds`, then answer normally), "malformed" (200 with a body that
    is not JSON), "judge_garbage" (a judge answer whose content is not JSON),
    "judge_refusal" (a judge answer with null content and a refusal), "judge_nan",
    "judge_infinity", "judge_off_scale" (a judge answer whose verdict is NaN, Infinity or a
    million, as a careless server or model may write it); shapes other servers send:
    "list_content" (the message content as a list of parts), "no_message" (a choice without a
    message), "null_usage" (usage numbers null), "lone_surrogate" (the content ends in the JSON
    escape of a lone surrogate, `\\ud800`: valid JSON, but no Unicode text); of a batch (matched by its
    `POST /v1/batches`): "batch_failed" (it fails validation), "batch_expired" (its window ends with
    half its lines run). The lines of a batch take the faults of their endpoint, as each runs (a
    "500" on path "/chat/completions" fails one line). A request matches when
    its path starts with `path` (with or without the leading "/v1") and its body's model is
    `model`, each when given; the judge kinds match judge requests only (chat completions
    with a `json_schema` response format), since they mean to break the judge, not the models.
    """

    kind: str
    count: int = 1
    path: str | None = None
    model: str | None = None
    retry_after: float | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.count < 1:
            raise ValueError("a fault's count must be at least 1")
        if self.kind == "stall" and (self.seconds is None or self.seconds < 0):
            raise ValueError("a stall fault needs seconds >= 0")

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """A fault from its JSON form (what `POST /_sim/faults` receives)."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    def matches(self, path: str, model: str | None, *, judge: bool) -> bool:
        """Whether a request to `path` (e.g. "/v1/chat/completions") for `model` is hit."""
        if self.kind in JUDGE_KINDS and not judge:
            return False
        if self.kind in BATCH_KINDS and not path.removeprefix("/v1").startswith("/batches"):
            return False
        if self.path is not None and not (path.startswith(self.path) or path.removeprefix("/v1").startswith(self.path)):
            return False
        return self.model is None or self.model == model


class FaultQueue:
    """Faults waiting for requests; the first matching one is spent one use at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, int]] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind the ones already waiting."""
        with self._lock:
            self._pending.append((fault, fault.count))

    def take(self, path: str, model: str | None, *, judge: bool) -> Fault | None:
        """Use up one application of the first fault this request matches, if any."""
        with self._lock:
            for index, (fault, left) in enumerate(self._pending):
                if fault.matches(path, model, judge=judge):
                    if left == 1:
                        del self._pending[index]
                    else:
                        self._pending[index] = (fault, left - 1)
                    return fault
        return None


def reshape(completion: dict[str, Any], kind: str) -> dict[str, Any]:
    """A chat completion bent into the shape a `SHAPE_KINDS` fault names."""
    choice = dict(completion["choices"][0])
    message = dict(choice["message"])
    if kind == "list_content":
        text = message.get("content") or ""
        half = len(text) // 2
        message["content"] = [{"type": "text", "text": text[:half]}, {"type": "text", "text": text[half:]}]
    if kind == "lone_surrogate":
        message["content"] = (message.get("content") or "") + "\ud800"
    if kind == "no_message":
        del choice["message"]
    else:
        choice["message"] = message
    usage = completion.get("usage")
    if kind == "null_usage" and isinstance(usage, dict):
        usage = {name: None for name in usage}
    return {**completion, "choices": [choice], "usage": usage}
