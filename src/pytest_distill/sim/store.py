"""In-memory stored chat completions and uploaded files, in creation order, safe across threads."""

from __future__ import annotations

import base64
import builtins
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .chatformat import message_text
from .errors import not_found


def store_messages(completion_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input messages as `GET /chat/completions/{id}/messages` lists them, with ids `<id>-<n>`."""
    stored = []
    for index, message in enumerate(messages):
        content = message.get("content")
        item = {
            "id": f"{completion_id}-{index}",
            "role": message["role"],
            "content": message_text(message) if content is not None else None,
            "refusal": None,
            "name": message.get("name"),
            "content_parts": content if isinstance(content, list) else None,
        }
        stored.append(item)
    return stored


class CompletionStore:
    """Stored chat completions with their input messages; list order is creation order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._completions: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}

    def add(self, completion: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        """Store a completion object (with `metadata`) and the input messages it answered."""
        with self._lock:
            self._completions[completion["id"]] = completion
            self._messages[completion["id"]] = store_messages(completion["id"], messages)

    def get(self, completion_id: str) -> dict[str, Any]:
        """The stored completion, or a 404."""
        with self._lock:
            return self._find(completion_id)

    def list(self, *, models: set[str] | None, metadata: Mapping[str, str]) -> list[dict[str, Any]]:
        """Stored completions of one of `models` (None: any) whose metadata has every pair given."""
        with self._lock:
            return [
                c
                for c in self._completions.values()
                if (models is None or c["model"] in models)
                and all(c["metadata"].get(key) == value for key, value in metadata.items())
            ]

    def update(self, completion_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Replace a stored completion's metadata (the only field the real API lets you change)."""
        with self._lock:
            completion = {**self._find(completion_id), "metadata": metadata}
            self._completions[completion_id] = completion
            return completion

    def delete(self, completion_id: str) -> None:
        """Forget a stored completion and its messages."""
        with self._lock:
            self._find(completion_id)
            del self._completions[completion_id]
            del self._messages[completion_id]

    def messages(self, completion_id: str) -> builtins.list[dict[str, Any]]:
        """The input messages of a stored completion."""
        with self._lock:
            self._find(completion_id)
            return self._messages[completion_id]

    def _find(self, completion_id: str) -> dict[str, Any]:
        try:
            return self._completions[completion_id]
        except KeyError:
            raise not_found(f"No chat completion found with id '{completion_id}'.") from None


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file: the `file` object the API shows, and the bytes behind it."""

    info: dict[str, Any]
    data: bytes


class FileStore:
    """Uploaded files, in upload order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, stored: StoredFile) -> None:
        """Keep an uploaded file."""
        with self._lock:
            self._files[stored.info["id"]] = stored

    def get(self, file_id: str) -> StoredFile:
        """The file, or a 404 with the real message."""
        with self._lock:
            try:
                return self._files[file_id]
            except KeyError:
                raise not_found(f"No such File object: {file_id}", param="id") from None

    def find(self, file_id: str) -> StoredFile | None:
        """The file, or None."""
        with self._lock:
            return self._files.get(file_id)

    def list(self, purpose: str | None) -> list[dict[str, Any]]:
        """The `file` objects, oldest first, of one purpose or all."""
        with self._lock:
            return [f.info for f in self._files.values() if purpose is None or f.info["purpose"] == purpose]

    def state(self) -> builtins.list[dict[str, Any]]:
        """Every file as JSON (its bytes in base64), oldest first."""
        with self._lock:
            return [{"info": f.info, "data": base64.b64encode(f.data).decode()} for f in self._files.values()]

    def delete(self, file_id: str) -> None:
        """Forget a file."""
        with self._lock:
            if self._files.pop(file_id, None) is None:
                raise not_found(f"No such File object: {file_id}", param="id")
