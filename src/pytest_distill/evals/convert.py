"""An OpenAI Evals definition (`evals.create`'s body or `evals.retrieve`'s answer) as a pytest file.

Each eval data item is a case (its `input` the model's input, its `ideal` the reference, the whole
item kept as `case.metadata["item"]`); one test grades the model's answer by every testing criterion
and passes when all pass, as an OpenAI eval counts a passed item. A criterion that cannot be
converted is named, with why, and becomes a failing placeholder test of its own.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runtime import TEMPLATE

OPERATIONS = frozenset({"eq", "ne", "like", "ilike"})
METRICS = frozenset({"fuzzy_match", "bleu", "gleu", "meteor", "cosine",
                     "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"})
WHOLE = re.compile(r"^\s*\{\{\s*(item|sample)((?:\.[A-Za-z0-9_-]+)+)\s*\}\}\s*$")
SAMPLE_FIELDS = frozenset({"output_text", "output_json"})


class EvalsError(Exception):
    """A definition or data file that cannot be converted at all; the message says why."""


class NotConverted(Exception):
    """One criterion that cannot be converted; the message says why."""


@dataclass
class Conversion:
    """The written test file's source, and what became of each criterion."""

    source: str
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class Writer:
    """The lines of one test function's grading, and what they need from the file's header."""

    reference_field: str = "ideal"
    imports: set[str] = field(default_factory=set)
    runtime: set[str] = field(default_factory=set)
    needs_sample: bool = False
    module: list[str] = field(default_factory=list)
    """Module-level definitions (python graders' sources)."""

    def text(self, template: Any) -> str:
        """Python code for a template's value: `output`, `item["x"]`, or `fill(...)` for mixed text."""
        if not isinstance(template, str):
            raise NotConverted(f"a template must be text, not {json.dumps(template)[:60]}")
        for namespace, path in TEMPLATE.findall(template):
            if namespace == "sample" and path.strip(".").split(".")[0] not in SAMPLE_FIELDS:
                raise NotConverted(f"{{{{sample{path}}}}} is not something a chat answer has (only sample.output_text "
                                   "and sample.output_json)")
        whole = WHOLE.match(template)
        if whole:
            namespace, path = whole.group(1), whole.group(2).strip(".").split(".")
            if namespace == "sample" and path == ["output_text"]:
                return "output"
            self.needs_sample |= namespace == "sample"
            return namespace + "".join(f"[{int(key)}]" if key.isdigit() else f"[{key!r}]" for key in path)
        if not TEMPLATE.search(template):
            return repr(template)
        self.runtime.add("fill")
        self.needs_sample = True
        return f"fill({template!r}, item, sample)"

    def prompt(self, messages: Any, constant: str) -> str:
        """The grader model's messages as one prompt text (a module constant), each under its role,
        templates filled in."""
        if not isinstance(messages, list) or not messages:
            raise NotConverted("its input has no messages")
        parts = []
        for message in messages:
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise NotConverted("an input message has no role")
            parts.append(f"{message['role']}:\n{content_text(message.get('content'))}")
        text = "\n\n".join(parts)
        self.module.append(f"# The grader model's messages as the eval defines them.\n{constant} = {source_literal(text)}\n")
        if not TEMPLATE.search(text):
            return constant
        self.runtime.add("fill")
        self.needs_sample = True
        return f"fill({constant}, item, sample)"


def content_text(content: Any) -> str:
    """A grader message's content as text: a string, a text part, or a list of text parts."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") in ("input_text", "output_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise NotConverted(f"a message part of type {kind!r} (only text parts can be shown to a judge here)")
    return "\n".join(texts)


def grade_call(criterion: Mapping[str, Any], writer: Writer) -> str:
    """The helper call that grades like this criterion (raises NotConverted saying why not)."""
    kind, name = criterion.get("type"), str(criterion.get("name") or criterion.get("type"))
    if kind == "string_check":
        operation = criterion.get("operation")
        if operation not in OPERATIONS:
            raise NotConverted(f"unknown operation {operation!r}")
        writer.imports.add("string_check")
        return f"string_check({writer.text(criterion.get('input'))}, {writer.text(criterion.get('reference'))}, {operation!r})"
    if kind == "text_similarity":
        metric = criterion.get("evaluation_metric")
        if metric not in METRICS:
            raise NotConverted(f"unknown evaluation_metric {metric!r}")
        writer.imports.add("text_similarity")
        return (f"text_similarity({writer.text(criterion.get('input'))}, {writer.text(criterion.get('reference'))}, "
                f"{metric!r}, {threshold(criterion, None)})")
    if kind in ("score_model", "label_model"):
        writer.imports.add("custom_prompt")
        if kind == "score_model":
            low, high = criterion.get("range") or [0, 1]
            scale = f"({float(low)!r}, {float(high)!r})"
            bar = threshold(criterion, None)
        else:
            labels, passing = criterion.get("labels"), criterion.get("passing_labels")
            if not labels or not passing or not set(passing) <= set(labels):
                raise NotConverted("labels and passing_labels (a subset of labels) are needed")
            ordered = [label for label in labels if label not in passing] + [label for label in labels if label in passing]
            scale, bar = repr(tuple(ordered)), repr(next(label for label in ordered if label in passing))
        judge, prompt = criterion.get("model"), writer.prompt(criterion.get("input"), f"{slug(name).upper()}_PROMPT")
        # The reference the eval's prompt shows is also given as the judge's reference section.
        shows = re.search(r"\{\{\s*item\." + re.escape(writer.reference_field) + r"\s*\}\}", json.dumps(criterion.get("input")))
        expected = f", expected=item[{writer.reference_field!r}]" if shows else ""
        return (f"custom_prompt(output, {prompt}, scale={scale}, threshold={bar}{expected}, "
                f"name={name!r}{'' if not judge else f', judge={judge!r}'})")
    if kind == "python":
        source = criterion.get("source")
        if not isinstance(source, str) or "def grade" not in source:
            raise NotConverted("its source defines no grade(sample, item) function")
        variable = f"{slug(name)}_grader"
        writer.runtime.add("python_grader")
        writer.needs_sample = True
        bar = threshold(criterion, 1.0)
        writer.module.append(f"# The python grader {name!r} as the eval defines it, run with the case's item and the answer.\n"
                             f"{variable} = python_grader({source_literal(source)}, {name!r}, pass_threshold={bar})\n")
        return f"{variable}(sample, item)"
    if kind == "multi":
        graders = criterion.get("graders")
        named = graders.items() if isinstance(graders, Mapping) else \
            ((str(g.get("name")), g) for g in graders if isinstance(g, Mapping)) if isinstance(graders, list) else None
        formula = criterion.get("calculate_output")
        if named is None or not isinstance(formula, str):
            raise NotConverted("graders and calculate_output are needed")
        parts = "".join(f"            {key!r}: lambda: {grade_call(part, writer)},\n" for key, part in named)
        writer.runtime.add("multi")
        return f"multi({name!r}, {formula!r}, {{\n{parts}        }}, pass_threshold={threshold(criterion, 1.0)})"
    raise NotConverted(f"grader type {kind!r} has no counterpart here")


def threshold(criterion: Mapping[str, Any], default: float | None) -> str:
    value = criterion.get("pass_threshold", default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise NotConverted(f"pass_threshold {value!r} is not a number")
    return repr(value)


def source_literal(source: str) -> str:
    """A text (a grader's source, a prompt) as a readable triple-quoted literal, exact to the character."""
    if '"""' not in source and "\\" not in source and not source.endswith('"'):
        return '"""\\\n' + source + '"""'
    return repr(source)


def slug(text: str) -> str:
    """A Python identifier from a criterion's or eval's name."""
    word = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "criterion"
    return f"c_{word}" if word[0].isdigit() else word


def convert(definition: Mapping[str, Any], *, dataset: str | None, command: str, reference_field: str = "ideal") -> Conversion:
    """The test file for an eval definition; `dataset` is the case file's path relative to it."""
    criteria = definition.get("testing_criteria")
    if not isinstance(criteria, list) or not criteria:
        raise EvalsError("the definition has no testing_criteria (expected the JSON of evals.create or evals.retrieve)")
    config = definition.get("data_source_config") or {}
    name = str(definition.get("name") or definition.get("id") or "eval")
    writer = Writer(reference_field)
    calls, placeholders, result = [], [], Conversion("")
    for index, criterion in enumerate(criteria):
        label = str(criterion.get("name") or f"criterion {index + 1}") if isinstance(criterion, Mapping) else f"criterion {index + 1}"
        kind = criterion.get("type") if isinstance(criterion, Mapping) else None
        try:
            if not isinstance(criterion, Mapping):
                raise NotConverted("it is not an object")
            calls.append(f"        {grade_call(criterion, writer)},  # {label!r} ({kind})")
            result.converted.append(f"{label} ({kind})")
        except NotConverted as exc:
            result.skipped.append(f"{label} ({kind}): {exc}")
            placeholders.append(placeholder(label, kind, str(exc), criterion))
    result.source = render(name, definition, config, dataset, command, writer, calls, placeholders)
    return result


def placeholder(label: str, kind: Any, why: str, criterion: Any) -> str:
    shown = textwrap.indent(json.dumps(criterion, indent=2, ensure_ascii=False), "    # ")
    message = f"criterion {label!r} (type {kind!r}) was not converted: {why}; grade it by hand here"
    return (f"def test_{slug(label)}_not_converted():\n"
            f"    # The criterion as the eval defines it:\n{shown}\n"
            f"    pytest.fail({message!r})\n")


def render(name: str, definition: Mapping[str, Any], config: Mapping[str, Any], dataset: str | None, command: str,
           writer: Writer, calls: Sequence[str], placeholders: Sequence[str]) -> str:
    """The whole file: docstring, imports, dataset marker, python graders, the test, placeholders."""
    where = f'the cases of "{dataset}" (one eval data item each)' if dataset else \
        "the cases of --distill-dataset (no --data was given; a .jsonl of items in the registry format)"
    fields = ", ".join(sorted((config.get("item_schema") or config.get("schema", {}).get("properties", {}).get("item", {})
                               or {}).get("properties", {})))
    eval_id = f" ({definition['id']})" if definition.get("id") else ""
    lines = [
        f'"""The OpenAI eval {name!r}{eval_id} as a pytest suite.',
        "",
        f"Written by `{command}`.",
        f"It runs the model under test (`--model`) on {where}; each test",
        "grades the answer by every testing criterion of the eval and passes when all pass.",
        *([f"The eval's item fields: {fields}."] if fields else []),
        '"""',
        "",
        "import pytest",
        "",
    ]
    if writer.imports:
        lines.append(f"from pytest_distill import {', '.join(sorted(writer.imports))}")
    runtime = writer.runtime | ({"sample_of"} if writer.needs_sample else set())
    if runtime:
        lines.append(f"from pytest_distill.evals import {', '.join(sorted(runtime))}")
    lines.append("")
    if dataset:
        lines += [f"pytestmark = pytest.mark.distill_dataset({dataset!r})", ""]
    lines.append("")
    for definition_code in writer.module:
        lines += [definition_code, ""]
    if calls:
        lines += [
            f"def test_{slug(name)}(case, model):",
            '    item = case.metadata.get("item", {})  # the eval data item: {{item.x}} is item["x"]',
            "    output = model.complete(case).text  # {{sample.output_text}}",
            *(["    sample = sample_of(output)  # the sample namespace: output_text, output_json"] if writer.needs_sample else []),
            "    grades = [",
            *calls,
            "    ]",
            "    assert all(grades)",
            "",
            "",
        ]
    for code in placeholders:
        lines += [code, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def read_items(path: Path) -> Iterator[tuple[int, Any]]:
    """The items of an eval data file: one a line, `{"item": {...}}` or the bare item."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalsError(f"{path}: cannot be read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalsError(f"{path}:{number}: not JSON: {exc.msg}") from None
        item = data.get("item") if isinstance(data, dict) and isinstance(data.get("item"), dict) else data
        if not isinstance(item, dict):
            raise EvalsError(f"{path}:{number}: an item must be a JSON object")
        yield number, item


def registry_lines(path: Path, input_field: str, reference_field: str) -> tuple[list[str], list[int]]:
    """The data file as registry-format lines (the item kept whole under `item`), and the line
    numbers of items without the input field (they become broken cases that name the problem)."""
    lines, missing = [], []
    for number, item in read_items(path):
        line: dict[str, Any] = {"id": f"item{number}", "item": item}
        if input_field in item:
            line["input"] = item[input_field]
            if reference_field in item:
                line["ideal"] = item[reference_field]
        else:
            missing.append(number)
        lines.append(json.dumps(line, ensure_ascii=False))
    if lines and len(missing) == len(lines):
        first = next(read_items(path))[1]
        raise EvalsError(f"{path}: no item has the input field {input_field!r}; its fields are "
                         f"{', '.join(sorted(first))}: name the model's input with --input-field "
                         "(and the reference with --reference-field)")
    return lines, missing
