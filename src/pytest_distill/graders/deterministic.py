"""Graders that need no model: string checks, JSON, XML and JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from .. import strict_json
from ..grades import Grade, record
from .references import first_passing, several

OPERATIONS = {
    "eq": ("equals", "does not equal", lambda out, ref: out == ref),
    "ne": ("differs from", "equals", lambda out, ref: out != ref),
    "like": ("contains", "does not contain", lambda out, ref: ref in out),
    "ilike": ("contains (any case)", "does not contain (any case)", lambda out, ref: ref.casefold() in out.casefold()),
}


def _verdict(helper: str, passed: bool, reason: str, threshold: str = "", args: dict[str, Any] | None = None, *,
             name: str | None = None) -> Grade:
    """The grade, named `name` (the helper's name by default), recorded with the arguments that replay
    the check on another output (and the helper's name, when the grade has another)."""
    replay = dict(args or {})
    if name is not None and name != helper:
        replay["helper"] = helper
    return record(Grade(helper if name is None else name, 1.0 if passed else 0.0, passed, reason, threshold, args=replay))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def string_check(output: Any, reference: str | Sequence[str], operation: str = "eq", *, name: str | None = None) -> Grade:
    """Compare the output with a reference string: eq, ne, like (contains), ilike (contains, any case).

    A list of references passes when the check passes for one of them (one grade is recorded).
    `name` names the grade (default: string_check), so two checks of a test are told apart.
    """
    if several(reference):
        return first_passing("string_check", reference, lambda one: string_check(output, one, operation, name=name))
    reference = cast(str, reference)
    if operation not in OPERATIONS:
        raise ValueError(f"string_check: unknown operation {operation!r} (use one of {', '.join(OPERATIONS)})")
    holds, fails, check = OPERATIONS[operation]
    text = str(output)
    passed: bool = check(text, reference)  # type: ignore[no-untyped-call]
    # The output and the reference stand beside every verdict (a failure's lines, the reports): not here again.
    reason = f"the output {holds if passed else fails} the reference"
    return _verdict("string_check", passed, reason, f"output {holds} the reference",
                    {"reference": reference, "operation": operation}, name=name)


def valid_json(output: Any, *, name: str | None = None) -> Grade:
    """The output parses as strict JSON (RFC 8259): no NaN or Infinity, no lone surrogates."""
    try:
        strict_json.loads(str(output))
    except strict_json.NotJSON as exc:
        return _verdict("valid_json", False, f"not JSON: {exc}", name=name)
    return _verdict("valid_json", True, "parses as JSON", name=name)


def valid_xml(output: Any, *, name: str | None = None) -> Grade:
    """The output parses as XML. Entities are never expanded and nothing is fetched, so billion-laughs
    and external-entity documents fail at once instead of eating memory or reaching the network."""
    try:
        defusedxml.ElementTree.fromstring(str(output))
    except DefusedXmlException as exc:
        return _verdict("valid_xml", False, f"refused: {exc}", name=name)
    except defusedxml.ElementTree.ParseError as exc:  # its own: 0.7.0's is not xml.etree's
        return _verdict("valid_xml", False, f"not XML: {exc}", name=name)
    return _verdict("valid_xml", True, "parses as XML", name=name)


def matches_schema(output: Any, schema: Mapping[str, Any] | bool | Path, *, name: str | None = None) -> Grade:
    """The output is JSON that validates against a JSON Schema (a dict, or a Path to a .json file).

    `$ref`s inside the schema are followed; one to anywhere else (a URL, a file) is never fetched, since a
    schema or an output must not make the test suite reach the network or read files: that grade fails."""
    checked = _schema(schema)
    args = {"schema": checked}
    try:
        instance = strict_json.loads(str(output))
    except strict_json.NotJSON as exc:
        return _verdict("matches_schema", False, f"not JSON: {exc}", args=args, name=name)
    import jsonschema  # imported when first needed: the plugin loads this module, most suites never validate
    import referencing
    import referencing.exceptions

    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs init
    validator = jsonschema.validators.validator_for(checked)(checked, registry=registry)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    except referencing.exceptions.Unresolvable as exc:
        reason = f"the schema refers to {getattr(exc, 'ref', str(exc))!r}, which is not inside it: remote and file $refs are never fetched"
        return _verdict("matches_schema", False, reason, args=args, name=name)
    except RecursionError:
        reason = "validation recursed without end: the output nests too deep, or a $ref of the schema refers to itself"
        return _verdict("matches_schema", False, reason, args=args, name=name)
    if not errors:
        return _verdict("matches_schema", True, "valid against the schema", args=args, name=name)
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _verdict("matches_schema", False, f"at {first.json_path}: {first.message}{more}", args=args, name=name)


def _schema(schema: Any) -> Mapping[str, Any] | bool:
    """The schema as data, checked against its metaschema; anything else is a clear `ValueError`/`TypeError`."""
    if isinstance(schema, str):
        raise TypeError(f"matches_schema: the schema is the string {schema[:80]!r}, and a string is not a schema: "
                        "pass a dict, or Path(...) for a schema file")
    if isinstance(schema, Path):
        try:
            schema = strict_json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, strict_json.NotJSON) as exc:
            raise ValueError(f"matches_schema: the schema file {schema} cannot be read: {exc}") from None
    if not isinstance(schema, (Mapping, bool)):
        raise TypeError(f"matches_schema: a schema is a dict (or a Path to a .json file), not {type(schema).__name__}")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)  # type: ignore[arg-type]  # any Mapping or bool is checked
    except jsonschema.SchemaError as exc:
        raise ValueError(f"matches_schema: not a valid JSON Schema: at {exc.json_path}: {_clip(exc.message, 200)}") from None
    except RecursionError:
        raise ValueError("matches_schema: the schema nests too deep to check") from None
    return schema


def _refuse(uri: str) -> NoReturn:
    """The registry's retrieval: nothing outside the schema is ever fetched."""
    import referencing.exceptions

    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs init
