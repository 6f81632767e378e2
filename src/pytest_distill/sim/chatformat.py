"""The fine-tuning chat format (`{"messages": [...]}` a line) and the message rules shared by
seed files, training files and chat requests, so all three reject the same mistakes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class FormatError(ValueError):
    """A message or example the real API would not accept; the text says what is wrong."""


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string, a list of parts, or null."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def input_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user message, whitespace-normalised: what an input is known by when no stored input
    is the whole of it (a changed system prompt, a reworded question)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(message_text(message).split())
    return ""


def whole_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """The whole input (every message's role, name and whitespace-normalised text, in order): what
    the simulated models find a stored answer by first, so that two cases asking the same question
    under different system prompts or earlier turns keep their own answers."""
    return json.dumps([[message.get("role"), message.get("name"), " ".join(message_text(message).split())]
                       for message in messages], ensure_ascii=False)


def message_problem(message: object, where: str) -> str | None:
    """Why `message` is not a valid chat message, or None when it is."""
    if not isinstance(message, Mapping):
        return f"{where} must be an object"
    role = message.get("role")
    if role not in ROLES:
        supported = ", ".join(f"'{name}'" for name in ROLES)
        return f"{where}.role: invalid value {role!r}; supported values are: {supported}"
    content = message.get("content")
    if content is None and role == "assistant" and ("tool_calls" in message or "function_call" in message):
        return None
    if not isinstance(content, (str, list)):
        return f"{where}.content must be a string or a list of content parts"
    return None


def metadata_problem(metadata: object) -> str | None:
    """Why `metadata` breaks the real limits (16 string pairs, keys <= 64, values <= 512 chars)."""
    if not isinstance(metadata, Mapping):
        return "metadata must be an object of string keys and string values"
    if len(metadata) > 16:
        return f"metadata has {len(metadata)} keys, but at most 16 are allowed"
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"metadata[{key!r}] must be a string"
        if len(key) > 64 or len(value) > 512:
            return f"metadata[{key!r}] is too long (keys up to 64, values up to 512 characters)"
    return None


@dataclass(frozen=True)
class Example:
    """One line of a chat-format file: the input, the reference answer, what came after it."""

    input: list[dict[str, Any]]
    answer: str
    trailing: list[dict[str, Any]]
    metadata: dict[str, str] = field(default_factory=dict)
    id: str | None = None

    @property
    def key(self) -> str:
        """The input's key for the simulated models (see `input_key`)."""
        return input_key(self.input)

    @property
    def whole(self) -> str:
        """The whole input's key (see `whole_key`)."""
        return whole_key(self.input)


def example_of(obj: Mapping[str, Any]) -> Example:
    """A chat-format line's object as an example; raise FormatError saying what is wrong with it."""
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FormatError('the key "messages" must be a non-empty list')
    for index, message in enumerate(messages):
        problem = message_problem(message, f"messages[{index}]")
        if problem:
            raise FormatError(problem)
    answers = [i for i, m in enumerate(messages) if m["role"] == "assistant" and isinstance(m.get("content"), str)]
    if not answers:
        raise FormatError("at least one message must be from the assistant, with text content")
    last = answers[-1]
    metadata = obj.get("metadata", {})
    problem = metadata_problem(metadata)
    if problem:
        raise FormatError(problem)
    example_id = obj.get("id")
    if example_id is not None and not isinstance(example_id, str):
        raise FormatError('"id" must be a string')
    return Example(
        input=[dict(m) for m in messages[:last]],
        answer=messages[last]["content"],
        trailing=[dict(m) for m in messages[last + 1 :]],
        metadata=dict(metadata),
        id=example_id,
    )
