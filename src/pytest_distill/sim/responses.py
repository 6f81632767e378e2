"""The Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`) as the simulator speaks it.

A request is read into the chat messages and parameters the simulated models already answer
(`instructions` is the system message, `input` the others, `text.format` the response format,
`max_output_tokens` the token limit, `reasoning.effort` the effort), and the answer is written back
as the real `response` object: an output message whose content is an `output_text` or a `refusal`,
and usage in input and output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import bad_request

RESPONSE_PARAMS = frozenset({
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "text", "reasoning", "metadata",
    "store", "user", "stream", "truncation", "parallel_tool_calls", "service_tier", "previous_response_id", "include",
    "tools", "tool_choice", "top_logprobs", "safety_identifier", "prompt_cache_key", "background", "max_tool_calls",
})
"""The top-level properties of the spec's CreateResponse the simulator knows; tests/sim checks them."""
TEXT_PARTS = ("input_text", "output_text")


def chat_of(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The chat messages and the chat body that a Responses request asks the same as."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad_request("Invalid type for 'instructions': expected a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages += _input(body.get("input"))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for name in ("temperature", "top_p", "metadata", "store", "user"):
        if name in body:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    text = body.get("text")
    found = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(found, Mapping) and found.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            name: found[name] for name in ("name", "schema", "strict", "description") if name in found}}
    elif isinstance(found, Mapping) and found.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return messages, chat


def _input(value: object) -> list[dict[str, Any]]:
    """`input`: a text (one user message) or a list of messages whose content is a text or text parts."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad_request("Invalid 'input': expected a string or a non-empty array of input items.", param="input")
    messages = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, Mapping) or item.get("type", "message") != "message":
            raise bad_request(f"Invalid '{where}': the simulator reads message items only.", param=where)
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant", "system", "developer"):
            raise bad_request(f"Invalid value for '{where}.role'.", param=f"{where}.role")
        if isinstance(content, list):
            parts = [part for part in content if isinstance(part, Mapping) and part.get("type") in TEXT_PARTS]
            if len(parts) != len(content) or not all(isinstance(part.get("text"), str) for part in parts):
                raise bad_request(f"Invalid '{where}.content': the simulator reads text parts only.", param=f"{where}.content")
            content = "".join(part["text"] for part in parts)
        if not isinstance(content, str):
            raise bad_request(f"Invalid type for '{where}.content': expected a string or an array of parts.",
                              param=f"{where}.content")
        messages.append({"role": role, "content": content})
    return messages


def response_object(*, response_id: str, message_id: str, created: int, model: str, body: Mapping[str, Any],
                    completion: Mapping[str, Any]) -> dict[str, Any]:
    """The `response` object of an answer, made from the chat completion the simulated model gave."""
    choice = completion["choices"][0]
    message, usage = choice["message"], completion["usage"]
    part: dict[str, Any] = ({"type": "refusal", "refusal": message["refusal"]} if message.get("refusal") is not None
                            else {"type": "output_text", "text": message.get("content") or "", "annotations": [], "logprobs": []})
    cut = choice.get("finish_reason") == "length"
    text = body.get("text") if isinstance(body.get("text"), Mapping) else {}
    reasoning = body.get("reasoning")
    return {
        "id": response_id, "object": "response", "created_at": created, "status": "incomplete" if cut else "completed",
        "completed_at": None if cut else created, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"), "model": model,
        "output": [{"id": message_id, "type": "message", "status": "incomplete" if cut else "completed", "role": "assistant",
                    "content": [part]}],
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort") if isinstance(reasoning, Mapping) else None, "summary": None},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format", {"type": "text"}) if isinstance(text, Mapping) else {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        "usage": {"input_tokens": usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": usage["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": usage["total_tokens"]},
        "metadata": body.get("metadata") or {}, **({"user": body["user"]} if isinstance(body.get("user"), str) else {}),
    }
