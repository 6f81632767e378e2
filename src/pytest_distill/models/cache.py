"""The on-disk cache of chat completions (`--distill-cache`): an identical request is answered from disk.

One file per request key, written atomically, so that several xdist processes writing at once can only
replace a whole entry with an equal one: nothing is lost, nothing is half-written. Each entry is sealed
(`sealed.py`): one copied under another key or edited by hand is a miss. An entry holds the
answer only (text, usage, served model, refusal, latency): never the request's headers or the API key.
The key digests the request (model, messages, every parameter, the sample index) and a namespace that
names the server, so that answers of one server are never served for another.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..sealed import opened, seal
from .types import Completion, Usage

VERSION = 2
"""2: entries are sealed; a version 1 entry is a miss, answered again."""
MODES = ("off", "on", "refresh")


class CompletionCache:
    """Completions by request key under `directory`; `refresh` writes every answer but reads none."""

    def __init__(self, directory: Path, namespace: str, mode: str = "on") -> None:
        if mode not in MODES[1:]:
            raise ValueError(f"cache mode {mode!r} is not one of {', '.join(MODES[1:])}")
        self.directory, self.namespace, self.mode = directory, namespace, mode

    def get(self, key: str) -> Completion | None:
        """The stored answer to the request `key`, or None: also for an entry that is unreadable, foreign,
        damaged or edited by hand, so that the request is made again rather than graded on a wrong answer."""
        if self.mode == "refresh":
            return None
        path = self._path(key)
        try:
            data = opened(path.read_text(encoding="utf-8"), path.stem)
        except (OSError, ValueError):
            return None
        return _completion(data)

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer; the entry replaces an older one whole. A cache that cannot be written (a full
        or read-only disk, an answer with a lone surrogate that no UTF-8 file holds) costs speed on the
        next run, never a result of this one."""
        entry: dict[str, Any] = {
            "version": VERSION, "model": completion.model, "text": completion.text,
            "served_model": completion.served_model, "refusal": completion.refusal,
            "usage": {"prompt_tokens": completion.usage.prompt_tokens, "completion_tokens": completion.usage.completion_tokens},
            "latency_s": completion.latency_s, "cached": True}
        path = self._path(key)
        with contextlib.suppress(OSError, ValueError):
            write_atomic(path, seal(path.stem, entry))

    def drop(self, key: str) -> None:
        """Remove the entry of `key`, if any."""
        with contextlib.suppress(OSError):
            self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.namespace}\n{key}".encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.json"


def _completion(data: Any) -> Completion | None:
    """The completion an entry holds, when every field has the type and range `put` writes."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    text, model, served, refusal = (data.get(name) for name in ("text", "model", "served_model", "refusal"))
    usage, latency = data.get("usage"), data.get("latency_s")
    tokens = [usage.get(name) for name in ("prompt_tokens", "completion_tokens")] if isinstance(usage, dict) else []
    counts = [count for count in tokens if type(count) is int and count >= 0]
    if not (isinstance(text, str) and isinstance(model, str) and isinstance(served, str)
            and (refusal is None or isinstance(refusal, str)) and len(counts) == 2
            and isinstance(latency, (int, float)) and not isinstance(latency, bool) and math.isfinite(latency) and latency >= 0):
        return None
    return Completion(text=text, model=model, served_model=served, refusal=refusal, latency_s=float(latency),
                      usage=Usage(*counts), cached=True)
