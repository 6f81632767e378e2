"""The on-disk cache of chat completions (`--distill-cache`): an identical request is answered from disk.

One file per request key, written atomically, so that several xdist processes writing at once can only
replace a whole entry with an equal one: nothing is lost, nothing is half-written. An entry holds the
answer only (text, usage, served model, refusal, latency): never the request's headers or the API key.
The key digests the request (model, messages, every parameter, the sample index) and a namespace that
names the server, so that answers of one server are never served for another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .types import Completion, Usage

VERSION = 1
MODES = ("off", "on", "refresh")


class CompletionCache:
    """Completions by request key under `directory`; `refresh` writes every answer but reads none."""

    def __init__(self, directory: Path, namespace: str, mode: str = "on") -> None:
        if mode not in MODES[1:]:
            raise ValueError(f"cache mode {mode!r} is not one of {', '.join(MODES[1:])}")
        self.directory, self.namespace, self.mode = directory, namespace, mode

    def get(self, key: str) -> Completion | None:
        """The stored answer to the request `key`, or None (also for an unreadable or foreign entry)."""
        if self.mode == "refresh":
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data.get("version") != VERSION:
                return None
            usage = data["usage"]
            return Completion(text=data["text"], model=data["model"], latency_s=float(data["latency_s"]),
                              served_model=data["served_model"], refusal=data["refusal"],
                              usage=Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer; the entry replaces an older one whole. A cache that cannot be written
        (a full or read-only disk) costs speed on the next run, never a result of this one."""
        entry: dict[str, Any] = {
            "version": VERSION, "model": completion.model, "text": completion.text,
            "served_model": completion.served_model, "refusal": completion.refusal,
            "usage": {"prompt_tokens": completion.usage.prompt_tokens, "completion_tokens": completion.usage.completion_tokens},
            "latency_s": completion.latency_s, "cached": True}
        with contextlib.suppress(OSError):
            write_atomic(self._path(key), json.dumps(entry, ensure_ascii=False))

    def drop(self, key: str) -> None:
        """Remove the entry of `key`, if any."""
        with contextlib.suppress(OSError):
            self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.namespace}\n{key}".encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.json"
