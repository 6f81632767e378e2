"""What a converted eval's test file calls besides the helpers: OpenAI's templates, python graders
and multi graders, with OpenAI's meanings (the `item` and `sample` namespaces, `calculate_output`)."""

from __future__ import annotations

import ast
import contextlib
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..grades import Grade, record, unrecorded

TEMPLATE = re.compile(r"\{\{\s*(item|sample)((?:\.[A-Za-z0-9_-]+)+)\s*\}\}")
FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
    "sqrt": math.sqrt, "log": math.log,
}  # fmt: skip
OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.BitXor: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
}  # fmt: skip
"""`calculate_output` writes powers as `^`; Python parses that as xor, so both mean power here."""


def sample_of(output: Any) -> dict[str, Any]:
    """The `sample` namespace of OpenAI's templates for the model's answer: `output_text`, and
    `output_json` when the answer is JSON."""
    text = str(output)
    sample: dict[str, Any] = {"output_text": text}
    with contextlib.suppress(ValueError):
        sample["output_json"] = json.loads(text)
    return sample


def fill(template: str, item: Mapping[str, Any], sample: Mapping[str, Any]) -> str:
    """A template with each `{{item.x}}` / `{{sample.output_text}}` replaced by its value (JSON for
    objects and lists), as OpenAI fills testing criteria."""
    def value(match: re.Match[str]) -> str:
        found = lookup(item if match.group(1) == "item" else sample, match.group(2).strip(".").split("."), match.group(0))
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
    return TEMPLATE.sub(value, template)


def lookup(namespace: Mapping[str, Any], path: list[str], template: str) -> Any:
    """The value at a dotted path; a missing one raises KeyError naming the template."""
    node: Any = namespace
    for key in path:
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise KeyError(f"{template}: the data has no {'.'.join(path)!r}")
    return node


def python_grader(source: str, name: str = "python", pass_threshold: float = 1.0) -> Callable[[Any, Any], Grade]:
    """The grade function of a python grader's own source (`def grade(sample, item) -> float`),
    run in a namespace of its own; the returned callable records a grade that passes at `pass_threshold`."""
    namespace: dict[str, Any] = {"__name__": f"openai_grader_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"}
    exec(compile(source, f"<python grader {name!r}>", "exec"), namespace)  # the eval's own grader code, which the user chose to run
    grade = namespace.get("grade")
    if not callable(grade):
        raise ValueError(f"python grader {name!r}: its source defines no grade(sample, item) function")

    def run(sample: Any, item: Any) -> Grade:
        score = float(grade(sample, item))
        passed = score >= pass_threshold
        reason = f"grade(sample, item) returned {score:g}"
        return record(Grade(name, score, passed, reason, f"score >= {pass_threshold:g}"))
    return run


def multi(name: str, calculate_output: str, graders: Mapping[str, Callable[[], Grade]], pass_threshold: float) -> Grade:
    """A multi grader: each grader's score (their grades are not recorded), combined by the formula;
    one grade is recorded, passing when the result is at least `pass_threshold`."""
    with unrecorded():
        scores = {key: grader().score for key, grader in graders.items()}
    score = float(evaluate(calculate_output, scores))
    shown = ", ".join(f"{key} {value:g}" for key, value in scores.items())
    return record(Grade(name, score, score >= pass_threshold, f"{calculate_output} = {score:g} with {shown}",
                        f"score >= {pass_threshold:g}"))


def evaluate(formula: str, names: Mapping[str, float]) -> float:
    """An arithmetic formula over the graders' scores: numbers, names, + - * / ^, and min, max, abs,
    floor, ceil, exp, sqrt, log. Anything else raises ValueError (nothing is executed)."""
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
            return float(FUNCTIONS[node.func.id](*(value(argument) for argument in node.args)))
        raise ValueError(f"calculate_output {formula!r}: cannot compute {ast.unparse(node)!r} "
                         f"(the graders are {', '.join(names)})")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"calculate_output {formula!r}: not a formula ({exc.msg})") from None
    return value(tree.body)

