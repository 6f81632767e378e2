"""The chat API's shapes: the request a call sends, and the answer and error bodies read back as hostile."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from .. import strict_json
from ..untrusted import capped
from .types import Usage

if TYPE_CHECKING:
    import openai

EXPLANATION_CHARS = 500
"""How much of a server's own explanation of an error an error message quotes."""


class OffShape(ValueError):
    """A 200 answer that is not what the API's schema says it is."""


def request_of(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any],
               options: openai.RequestOptions) -> tuple[dict[str, Any], openai.RequestOptions]:
    """The body and request options of a chat call. The SDK's own keywords keep their meaning, as in
    `create`: `extra_body` joins the body (a vLLM or Ollama parameter), `extra_headers`, `extra_query`
    and `timeout` are options; every other parameter is the API's."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    chosen: dict[str, Any] = dict(options)
    for name, value in params.items():
        if name == "extra_headers":
            chosen["headers"] = {**chosen.get("headers", {}), **(value or {})}
        elif name == "extra_query":
            chosen["params"] = dict(value or {})
        elif name == "timeout":
            chosen["timeout"] = value
        elif name != "extra_body":
            body[name] = value
    return {**body, **(params.get("extra_body") or {})}, cast("openai.RequestOptions", chosen)


def read_chat(data: object) -> tuple[str, str | None, Usage, str]:
    """Text, refusal, usage and served model of a chat completion's JSON, read as hostile.

    `content` as a list of parts gives its text parts joined; null or missing usage numbers count 0.
    Anything else off the API's shape (no choices, no message, a content that is neither, a string that
    is no Unicode text: no report, UTF-8 file or xdist worker could carry it) raises `OffShape`, which
    the caller makes an error of the case."""
    if not isinstance(data, dict):
        raise OffShape("it is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise OffShape("it has no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise OffShape("its first choice has no message")
    refusal = message.get("refusal")
    return _answer(data, "message content", _content_text(message.get("content")),
                   refusal if isinstance(refusal, str) else None, ("prompt_tokens", "completion_tokens"))


def _answer(data: Mapping[str, Any], text_name: str, text: str, refusal: str | None,
            counts: tuple[str, str]) -> tuple[str, str | None, Usage, str]:
    """The answer as the runtime keeps it, from either API's reply: its texts must be Unicode text, its
    usage is read under that API's two names (absent or odd counts are 0)."""
    served = data.get("model")
    served = served if isinstance(served, str) else ""
    where = strict_json.lone_surrogate({text_name: text, "refusal": refusal, "model": served})
    if where is not None:
        raise OffShape(f"its {where.removeprefix('$.')} is not Unicode text (it holds a lone surrogate)")
    usage = data.get("usage")
    return text, refusal, Usage(_count(usage, counts[0]), _count(usage, counts[1])), served


def _content_text(content: object) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        if texts or not content:
            return "".join(texts)
        raise OffShape("its message content is a list with no text part")
    raise OffShape(f"its message content is a {type(content).__name__}, not text")


def _count(usage: object, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def explained(status: int, body: object) -> str:
    """`Error code: 400 - the server's explanation`, made here from the status and the body, not taken from
    the SDK, whose wording changed in openai 3.38 (before, it quoted the whole body as a dict). OpenAI says
    it in `{"error": {"message": ...}}`, other servers elsewhere (`{"message": ...}`, `{"detail": ...}`,
    `{"error": "..."}`, plain text)."""
    message = f"Error code: {status}"
    found: object = body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        said = error.get("message") if isinstance(error, Mapping) else None
        if isinstance(said, str) and said:
            return f"{message} - {said}"  # word for word, as the SDK says it since 3.38
        found = next((body[name] for name in ("detail", "error", "msg") if body.get(name)), None)
    if isinstance(found, (Mapping, list)):
        found = json.dumps(found, ensure_ascii=False, default=str)
    if not isinstance(found, str) or not found.strip():
        return message
    text = " ".join(found.split())
    return f"{message} - {capped(text, EXPLANATION_CHARS)}"


def responses_request_of(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any],
                         options: openai.RequestOptions) -> tuple[dict[str, Any], openai.RequestOptions]:
    """The body and request options of the same call through the Responses API: system and developer
    messages are its `instructions`, the others its `input`; the token limit is `max_output_tokens`,
    `reasoning_effort` is `reasoning.effort` and a `response_format` is `text.format`."""
    body, chosen = request_of(model, messages, params, options)
    body.pop("messages")
    instructions = [_content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    body["input"] = [{"role": m.get("role"), "content": _input_content(m.get("content"))}
                     for m in messages if m.get("role") not in ("system", "developer")]
    for name in ("max_tokens", "max_completion_tokens"):
        if name in body:
            body["max_output_tokens"] = body.pop(name)
    if "reasoning_effort" in body:
        body["reasoning"] = {"effort": body.pop("reasoning_effort")}
    found = body.pop("response_format", None)
    if isinstance(found, Mapping) and found.get("type") == "json_schema":
        schema = found.get("json_schema") or {}
        body["text"] = {"format": {"type": "json_schema", **{name: schema[name] for name in
                                                             ("name", "schema", "strict", "description") if name in schema}}}
    elif isinstance(found, Mapping):
        body["text"] = {"format": dict(found)}
    return body, chosen


def _input_content(content: object) -> object:
    """A chat message's content as Responses input: text stays text, text parts become `input_text`."""
    if not isinstance(content, list):
        return content if content is not None else ""
    return [{"type": "input_text", "text": part.get("text")} if isinstance(part, dict) and part.get("type") == "text" else part
            for part in content]


def read_response(data: object) -> tuple[str, str | None, Usage, str]:
    """Text, refusal, usage and served model of a Responses API `response`, read as hostile like `read_chat`:
    the text is every `output_text` of the output messages, joined; a refusal part is the refusal; a
    response that failed, or has no output list, raises `OffShape`."""
    if not isinstance(data, dict):
        raise OffShape("it is not a JSON object")
    if data.get("status") == "failed":
        error = data.get("error")
        said = error.get("message") if isinstance(error, dict) else None
        raise OffShape(f"the response failed: {capped(said) if isinstance(said, str) else 'no reason given'}")
    output = data.get("output")
    if not isinstance(output, list):
        raise OffShape("it has no output list")
    contents = [item.get("content") for item in output if isinstance(item, dict) and item.get("type") == "message"]
    parts = [part for content in contents if isinstance(content, list) for part in content if isinstance(part, dict)]
    texts = [part.get("text") for part in parts if part.get("type") == "output_text"]
    refusals = [part.get("refusal") for part in parts if part.get("type") == "refusal"]
    if not all(isinstance(found, str) for found in (*texts, *refusals)):
        raise OffShape("an output text or refusal is not text")
    if not texts and not refusals:
        raise OffShape("its output holds no message with text")
    return _answer(data, "output text", "".join(map(str, texts)), "".join(map(str, refusals)) or None,
                   ("input_tokens", "output_tokens"))
