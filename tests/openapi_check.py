"""Validate requests and responses against OpenAI's own OpenAPI spec (a copy in tests/openai-openapi, MIT).

The spec is OpenAPI 3.1 but still carries a few OpenAPI 3.0 spellings that JSON Schema 2020-12
reads differently; `_normalise` rewrites those before validating, and `_apply_errata` corrects
the places where the spec contradicts the API it describes (each with the evidence), so that
the simulator is held to the real shapes without copying the spec's mistakes.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent / "openai-openapi" / "openapi.json"
SPEC_URI = "urn:openai-openapi"

@cache
def spec() -> dict[str, Any]:
    """The spec, normalised and with the errata applied; loaded once per process (it is 3.4 MB)."""
    document = _normalise(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
    _apply_errata(document["components"]["schemas"])
    return document


def _apply_errata(schemas: dict[str, Any]) -> None:
    """Correct the places where the spec contradicts the API it describes.

    1. The messages of a stored completion are its input messages, so their role is any input
       role: the spec's own example lists a "user" message, yet its allOf inherits the
       response message's role enum ["assistant"].
    2. An empty page has no first or last item: the real API sends null for first_id and
       last_id there, where the spec says string.
    3. A batch's fields that have no value yet are null: the spec's own example of the batch object
       has `"errors": null`, `"failed_at": null`, `"cancelled_at": null`, where its schema says
       object or integer. The batch list's first_id and last_id as in 2.
    """
    stored_message = copy.deepcopy(schemas["ChatCompletionResponseMessage"])
    roles = ["developer", "system", "user", "assistant", "tool", "function"]
    stored_message["properties"]["role"] = {"type": "string", "enum": roles}
    schemas["ErrataStoredInputMessage"] = stored_message
    items = schemas["ChatCompletionMessageList"]["properties"]["data"]["items"]
    items["allOf"][0] = {"$ref": "#/components/schemas/ErrataStoredInputMessage"}
    batch = schemas["Batch"]
    for name, schema in batch["properties"].items():
        if name not in batch["required"] and "$ref" not in schema:
            batch["properties"][name] = {"anyOf": [schema, {"type": "null"}]}
    for name in ("ChatCompletionList", "ChatCompletionMessageList", "ListFilesResponse", "ListBatchesResponse"):
        for field in ("first_id", "last_id"):
            schemas[name]["properties"][field] = {"type": ["string", "null"]}


@cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource(contents=spec(), specification=DRAFT202012))


@cache
def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry())


def operation_pointer(method: str, path_template: str) -> str:
    """The JSON pointer of an operation, e.g. ("post", "/chat/completions")."""
    escaped = path_template.replace("~", "~0").replace("/", "~1")
    pointer = f"/paths/{escaped}/{method.lower()}"
    _resolve(spec(), pointer)
    return pointer


def validate_response(method: str, path_template: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is what the spec says this operation answers.

    An error status the operation does not describe is checked against the shared ErrorResponse,
    the shape of every error the API sends.
    """
    operation = _resolve(spec(), operation_pointer(method, path_template))
    content = operation.get("responses", {}).get(str(status), {}).get("content", {})
    if "application/json" in content:
        pointer = f"{operation_pointer(method, path_template)}/responses/{status}/content/application~1json/schema"
    elif status >= 400:
        return validate_error(body)
    else:
        raise LookupError(f"the spec has no JSON response {status} for {method.upper()} {path_template}")
    _validator(pointer).validate(body)


def validate_error(body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` has the spec's ErrorResponse shape."""
    _validator("/components/schemas/ErrorResponse").validate(body)


def validate_request(method: str, path_template: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is a request body the spec allows."""
    pointer = operation_pointer(method, path_template)
    content = _resolve(spec(), pointer)["requestBody"]["content"]
    media = "application/json" if "application/json" in content else next(iter(content))
    _validator(f"{pointer}/requestBody/content/{media.replace('/', '~1')}/schema").validate(body)


def schema_properties(name: str) -> set[str]:
    """The property names of a component schema, through its allOf and $ref parts."""
    return _properties(spec()["components"]["schemas"][name])


def _properties(schema: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        return _properties(_resolve(spec(), schema["$ref"].removeprefix("#")))
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= _properties(part)
    return names


def _resolve(document: Any, pointer: str) -> Any:
    """Follow a JSON pointer such as /components/schemas/Error."""
    node = document
    for key in pointer.strip("/").split("/"):
        key = key.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _normalise(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 spellings: `nullable: true` and boolean exclusiveMinimum/Maximum."""
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _normalise(value) for key, value in node.items()}
    if result.get("nullable") is True:
        del result["nullable"]
        if isinstance(result.get("type"), str):
            result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
        if "type" not in result and "enum" not in result:
            result = {"anyOf": [result, {"type": "null"}]}
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(result.get(exclusive), bool) and result.pop(exclusive) and bound in result:
            result[exclusive] = result.pop(bound)
    return result
