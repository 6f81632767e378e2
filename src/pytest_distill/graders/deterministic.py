"""Graders that need no model: string checks, JSON, XML and JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree
import jsonschema
from defusedxml import DefusedXmlException

from ..grades import Grade, record
from .references import first_passing, several

OPERATIONS = {
    "eq": ("equals", "does not equal", lambda out, ref: out == ref),
    "ne": ("differs from", "equals", lambda out, ref: out != ref),
    "like": ("contains", "does not contain", lambda out, ref: ref in out),
    "ilike": ("contains (any case)", "does not contain (any case)", lambda out, ref: ref.casefold() in out.casefold()),
}


def _verdict(name: str, passed: bool, reason: str, threshold: str = "", args: dict[str, Any] | None = None) -> Grade:
    """The grade, recorded with the arguments that replay the check on another output."""
    return record(Grade(name, 1.0 if passed else 0.0, passed, reason, threshold, args=args or {}))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def string_check(output: Any, reference: str | Sequence[str], operation: str = "eq") -> Grade:
    """Compare the output with a reference string: eq, ne, like (contains), ilike (contains, any case).

    A list of references passes when the check passes for one of them (one grade is recorded).
    """
    if several(reference):
        return first_passing("string_check", reference, lambda one: string_check(output, one, operation))
    reference = cast(str, reference)
    if operation not in OPERATIONS:
        raise ValueError(f"string_check: unknown operation {operation!r} (use one of {', '.join(OPERATIONS)})")
    holds, fails, check = OPERATIONS[operation]
    text = str(output)
    passed = check(text, reference)
    reason = f"output {_clip(text)!r} {holds if passed else fails} {_clip(reference)!r}"
    return _verdict("string_check", passed, reason, f"output {holds} the reference",
                    {"reference": reference, "operation": operation})


def valid_json(output: Any) -> Grade:
    """The output parses as JSON."""
    try:
        json.loads(str(output))
    except json.JSONDecodeError as exc:
        return _verdict("valid_json", False, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    return _verdict("valid_json", True, "parses as JSON")


def valid_xml(output: Any) -> Grade:
    """The output parses as XML. Entities are never expanded and nothing is fetched, so billion-laughs
    and external-entity documents fail at once instead of eating memory or reaching the network."""
    try:
        defusedxml.ElementTree.fromstring(str(output))
    except DefusedXmlException as exc:
        return _verdict("valid_xml", False, f"refused: {exc}")
    except ParseError as exc:
        return _verdict("valid_xml", False, f"not XML: {exc}")
    return _verdict("valid_xml", True, "parses as XML")


def matches_schema(output: Any, schema: dict[str, Any] | Path) -> Grade:
    """The output is JSON that validates against a JSON Schema (a dict, or a Path to a .json file)."""
    if isinstance(schema, Path):
        schema = json.loads(schema.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    args = {"schema": schema}
    try:
        instance = json.loads(str(output))
    except json.JSONDecodeError as exc:
        return _verdict("matches_schema", False, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", args=args)
    errors = sorted(validator_class(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return _verdict("matches_schema", True, "valid against the schema", args=args)
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _verdict("matches_schema", False, f"at {first.json_path}: {first.message}{more}", args=args)
