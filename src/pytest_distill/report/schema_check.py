"""A fast "yes" for a results file that matches its schema.

`jsonschema` walks a 100 MB results file (100,000 cases) in about two minutes: a baseline or a merge
paid that before the first test. This checks the few keywords our schema uses (type, const, enum,
required, properties, additionalProperties, items, prefixItems, minItems, maxItems, minimum, maximum)
in one plain pass. It only ever says yes or "ask jsonschema": a file it does not pass, or a schema
with a keyword it does not know, is checked by `jsonschema`, which finds the error to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "boolean": bool, "null": type(None), "object": dict, "array": list}
KNOWN = frozenset({"$schema", "type", "const", "enum", "required", "properties", "additionalProperties", "items",
                   "prefixItems", "minItems", "maxItems", "minimum", "maximum"})


def matches(schema: Mapping[str, Any], value: Any) -> bool:
    """True when the value matches the schema as JSON Schema 2020-12 reads these keywords; False when
    it does not, or when the schema holds a keyword not known here."""
    if not KNOWN.issuperset(schema):
        return False
    if "type" in schema and not any(is_type(value, kind) for kind in _listed(schema["type"])):
        return False
    if "const" in schema and not _equal(value, schema["const"]):
        return False
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        return False
    if _is_number(value) and (value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        return False
    if isinstance(value, dict):
        return _object_matches(schema, value)
    if isinstance(value, list):
        return _array_matches(schema, value)
    return True


def _object_matches(schema: Mapping[str, Any], value: dict[str, Any]) -> bool:
    if not all(name in value for name in schema.get("required", ())):
        return False
    properties, rest = schema.get("properties", {}), schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name, rest)
        if sub is False or (isinstance(sub, Mapping) and not matches(sub, item)):
            return False
    return True


def _array_matches(schema: Mapping[str, Any], value: list[Any]) -> bool:
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
        return False
    prefix = schema.get("prefixItems", [])
    if not all(matches(sub, item) for sub, item in zip(prefix, value, strict=False)):  # value may be shorter
        return False
    rest, tail = schema.get("items", True), value[len(prefix):]
    return not tail if rest is False else rest is True or all(matches(rest, item) for item in tail)


def is_type(value: Any, kind: str) -> bool:
    """JSON Schema's types: a bool is no number, and an integer may be written 1.0."""
    if kind == "integer":
        return _is_number(value) and float(value).is_integer()
    if kind == "number":
        return _is_number(value)
    return isinstance(value, TYPES[kind]) if kind in TYPES else False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _listed(kinds: Any) -> list[str]:
    return kinds if isinstance(kinds, list) else [kinds]


def _equal(value: Any, expected: Any) -> bool:
    """Equality as JSON sees it: true is not 1."""
    return type(value) is type(expected) and value == expected if isinstance(value, bool) or isinstance(expected, bool) \
        else value == expected
