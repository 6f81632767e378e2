"""An OpenAI Evals definition (`evals.create`'s body or `evals.retrieve`'s answer) as a pytest file.

Each eval data item is a case (its `input` the model's input, its `ideal` the reference, the whole
item kept as `case.metadata["item"]`); one test grades the model's answer by every testing criterion
and passes when all pass, as an OpenAI eval counts a passed item. A criterion that cannot be
converted is named, with why, and becomes a failing placeholder test of its own. The file is built
by `module.TestModule`, so no text of the definition can become code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonl import BadLine, read_jsonl
from ..strict_json import string_matching
from .module import GeneratedCode, TestModule, comment, literal, text_literal
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
    """The code of one test function's grading; what it needs from the file's header goes to `module`."""

    module: TestModule
    reference_field: str = "ideal"
    imports: set[str] = field(default_factory=set)
    runtime: set[str] = field(default_factory=set)
    needs_sample: bool = False

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

    def prompt(self, messages: Any, name: str) -> str:
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
        constant = self.module.name(name, suffix="_PROMPT", upper=True)
        self.module.assign(constant, text_literal(text), "The grader model's messages as the eval defines them.")
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
        return (f"string_check({writer.text(criterion.get('input'))}, {writer.text(criterion.get('reference'))}, {operation!r}, "
                f"name={literal(name)})")
    if kind == "text_similarity":
        metric = criterion.get("evaluation_metric")
        if metric not in METRICS:
            raise NotConverted(f"unknown evaluation_metric {metric!r}")
        writer.imports.add("text_similarity")
        return (f"text_similarity({writer.text(criterion.get('input'))}, {writer.text(criterion.get('reference'))}, "
                f"{metric!r}, {threshold(criterion, None)}, name={literal(name)})")
    if kind in ("score_model", "label_model"):
        writer.imports.add("custom_prompt")
        if kind == "score_model":
            bounds = criterion.get("range") or [0, 1]
            if not isinstance(bounds, list) or len(bounds) != 2 or not all(is_number(bound) for bound in bounds):
                raise NotConverted(f"range must be two numbers, not {json.dumps(bounds)[:60]}")
            scale = literal((float(bounds[0]), float(bounds[1])))
            bar = threshold(criterion, None)
        else:
            labels, passing = texts(criterion.get("labels")), texts(criterion.get("passing_labels"))
            if not labels or not passing or not set(passing) <= set(labels):
                raise NotConverted("labels and passing_labels (a subset of labels, all texts) are needed")
            ordered = [label for label in labels if label not in passing] + [label for label in labels if label in passing]
            scale, bar = literal(tuple(ordered)), literal(next(label for label in ordered if label in passing))
        judge = criterion.get("model")
        if judge is not None and not isinstance(judge, str):
            raise NotConverted(f"its model must be a model's name, not {json.dumps(judge)[:60]}")
        prompt = writer.prompt(criterion.get("input"), name)
        # The reference the eval's prompt shows is also given as the judge's reference section.
        shows = re.search(r"\{\{\s*item\." + re.escape(writer.reference_field) + r"\s*\}\}", json.dumps(criterion.get("input")))
        expected = f", expected=item[{writer.reference_field!r}]" if shows else ""
        return (f"custom_prompt(output, {prompt}, scale={scale}, threshold={bar}{expected}, "
                f"name={name!r}{'' if not judge else f', judge={judge!r}'})")
    if kind == "python":
        source = criterion.get("source")
        if not isinstance(source, str) or "def grade" not in source:
            raise NotConverted("its source defines no grade(sample, item) function")
        writer.runtime.add("python_grader")
        writer.needs_sample = True
        bar = threshold(criterion, 1.0)
        variable = writer.module.name(name, suffix="_grader")
        writer.module.assign(variable, f"python_grader({text_literal(source)}, {name!r}, pass_threshold={bar})",
                             f"The python grader {name!r} as the eval defines it, run with the case's item and the answer.")
        return f"{variable}(sample, item)"
    if kind == "multi":
        graders = criterion.get("graders")
        named = graders.items() if isinstance(graders, Mapping) else \
            ((str(g.get("name")), g) for g in graders if isinstance(g, Mapping)) if isinstance(graders, list) else None
        formula = criterion.get("calculate_output")
        if named is None or not isinstance(formula, str) or not all(isinstance(part, Mapping) for _, part in named):
            raise NotConverted("graders (objects) and calculate_output are needed")
        parts = "".join(f"            {key!r}: lambda: {grade_call(part, writer)},\n" for key, part in named)
        writer.runtime.add("multi")
        return f"multi({name!r}, {formula!r}, {{\n{parts}        }}, pass_threshold={threshold(criterion, 1.0)})"
    raise NotConverted(f"grader type {kind!r} has no counterpart here")


def threshold(criterion: Mapping[str, Any], default: float | None) -> str:
    value = criterion.get("pass_threshold", default)
    if value is not None and not is_number(value):
        raise NotConverted(f"pass_threshold {json.dumps(value)[:60]} is not a number")
    return literal(value)


def is_number(value: Any) -> bool:
    """A JSON number (not a bool); `strict_json` has already refused NaN and infinities."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def texts(value: Any) -> list[str]:
    """The value when it is a list of texts, else an empty list."""
    return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else []


def convert(definition: Mapping[str, Any], *, dataset: str | None, command: str, reference_field: str = "ideal") -> Conversion:
    """The test file for an eval definition; `dataset` is the case file's path relative to it."""
    criteria = definition.get("testing_criteria")
    if not isinstance(criteria, list) or not criteria:
        raise EvalsError("the definition has no testing_criteria (expected the JSON of evals.create or evals.retrieve)")
    where = string_matching(definition, lambda text: "\x00" in text)
    if where is not None:
        raise EvalsError(f"the definition has a NUL character in the text at {where}")
    name = str(definition.get("name") or definition.get("id") or "eval")
    module = TestModule(docstring(name, definition, dataset, command))
    module.import_("pytest")
    if dataset:
        module.assign("pytestmark", f"pytest.mark.distill_dataset({dataset!r})")
    test = module.name(name, prefix="test_")
    writer = Writer(module, reference_field)
    calls, placeholders, result = [], [], Conversion("")
    for index, criterion in enumerate(criteria):
        label = str(criterion.get("name") or f"criterion {index + 1}") if isinstance(criterion, Mapping) else f"criterion {index + 1}"
        kind = criterion.get("type") if isinstance(criterion, Mapping) else None
        try:
            if not isinstance(criterion, Mapping):
                raise NotConverted("it is not an object")
            calls.append(f"    {grade_call(criterion, writer)},  {comment(f'{label!r} ({kind})')}")
            result.converted.append(f"{label} ({kind})")
        except NotConverted as exc:
            result.skipped.append(f"{label} ({kind}): {exc}")
            placeholders.append(placeholder(module, label, kind, str(exc), criterion))
    if calls:
        module.import_("pytest_distill", writer.imports)
        module.import_("pytest_distill.evals", writer.runtime | ({"sample_of"} if writer.needs_sample else set()))
        module.function(test, ["case", "model"], [
            'item = case.metadata.get("item", {})  # the eval data item: {{item.x}} is item["x"]',
            "output = model.complete(case).text  # {{sample.output_text}}",
            *(["sample = sample_of(output)  # the sample namespace: output_text, output_json"] if writer.needs_sample else []),
            "grades = [", *calls, "]",
            "assert all(grades)",
        ])
    for function, body in placeholders:
        module.function(function, [], body)
    try:
        result.source = module.source()
    except GeneratedCode as exc:
        raise EvalsError(f"the definition cannot be written as a test file safely: {exc}") from None
    return result


def placeholder(module: TestModule, label: str, kind: Any, why: str, criterion: Any) -> tuple[str, list[str]]:
    """The name and body of a failing test that says why the criterion was not converted, and shows it."""
    shown = json.dumps(criterion, indent=2, ensure_ascii=False).split("\n")
    message = f"criterion {label!r} (type {kind!r}) was not converted: {why}; grade it by hand here"
    return module.name(label, prefix="test_", suffix="_not_converted"), [
        "# The criterion as the eval defines it:", *(comment(line) for line in shown), f"pytest.fail({message!r})"]


def docstring(name: str, definition: Mapping[str, Any], dataset: str | None, command: str) -> str:
    """The file's docstring: which eval, written how, run on what, graded by what."""
    where = f'the cases of "{dataset}" (one eval data item each)' if dataset else \
        "the cases of --distill-dataset (no --data was given; a .jsonl of items in the registry format)"
    config = definition.get("data_source_config")
    config = config if isinstance(config, Mapping) else {}
    schema = config.get("item_schema") or dig(config, "schema", "properties", "item")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    fields = ", ".join(sorted(properties)) if isinstance(properties, Mapping) else ""
    eval_id = f" ({definition['id']})" if definition.get("id") else ""
    return "\n".join([
        f"The OpenAI eval {name!r}{eval_id} as a pytest suite.",
        "",
        f"Written by `{command}`.",
        f"It runs the model under test (`--model`) on {where}; each test",
        "grades the answer by every testing criterion of the eval and passes when all pass.",
        *([f"The eval's item fields: {fields}."] if fields else []),
    ]) + "\n"


def dig(value: Any, *keys: str) -> Any:
    """The value at a path of object keys, or None where one is missing or not an object."""
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def read_items(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The items of an eval data file: one a line, `{"item": {...}}` or the bare item."""
    try:
        for line in read_jsonl(path):
            if isinstance(line, BadLine):
                raise EvalsError(line.at(path))
            item = line.data.get("item")
            yield line.number, item if isinstance(item, dict) else line.data
    except OSError as exc:
        raise EvalsError(f"{path}: cannot be read: {exc}") from None


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
