"""A generated test file, built so that no data (an eval's name, ids, field names, prompts, a grader's
source) can become code.

Data enters the file only as literals (`literal`, `text_literal`) or escaped comments (`comment`);
names are identifiers made from it (`TestModule.name`). The finished source is parsed back and must
hold exactly the statements that were built: the docstring as given, the declared imports,
assignments and functions in order, made only of calls, literals, subscripts and lambdas over names
the file itself binds (and `all`), attributes from a short list. Anything else is `GeneratedCode`, and
nothing is written.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

BUILTINS = frozenset({"all"})
"""The only names a generated file uses without binding them itself."""
ATTRIBUTES = frozenset({"metadata", "get", "references", "complete", "text", "mark", "distill_dataset", "fail"})
"""The only attributes a generated file reads: `case.metadata.get`, `case.references`,
`model.complete(case).text`, `pytest.mark.distill_dataset`, `pytest.fail`."""
NODES: tuple[type[ast.AST], ...] = (
    ast.Module, ast.Expr, ast.Constant, ast.Import, ast.ImportFrom, ast.alias, ast.Assign, ast.Name, ast.Load,
    ast.Store, ast.Call, ast.keyword, ast.Attribute, ast.Subscript, ast.FunctionDef, ast.arguments, ast.arg,
    ast.Assert, ast.List, ast.Tuple, ast.Dict, ast.Lambda, ast.UnaryOp, ast.USub,
)  # fmt: skip
"""Every kind of syntax a generated file may hold (`-1.0` is a unary minus on a constant)."""


class GeneratedCode(ValueError):
    """A generated file that would not be exactly what was built; the message says what differs."""


def literal(value: Any) -> str:
    """Python source for a JSON-like value (text, finite number, bool, None, list, tuple, dict of them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise GeneratedCode(f"{value!r} is not a finite number")
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(item) for item in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(key)}: {literal(item)}" for key, item in value.items()) + "}"
    raise GeneratedCode(f"a {type(value).__name__} cannot be written as a literal")


def escaped(text: str) -> str:
    """The text as the inside of a triple-quoted literal with the same value: backslashes doubled, a
    quote escaped where another follows it or it ends the text (so no three quotes meet), every
    character that is not printable (NUL, CR, a lone surrogate, a line separator) as an escape; new
    lines and tabs stay as they are, for a reader."""
    out = []
    for index, char in enumerate(text):
        if char in "\n\t" or (char.isprintable() and char not in '\\"'):
            out.append(char)
        elif char == '"':
            out.append('\\"' if text[index + 1:index + 2] in ('"', "") else '"')
        else:
            out.append(repr(char)[1:-1] if char != "\\" else "\\\\")
    return "".join(out)


def text_literal(text: str) -> str:
    """A text (a prompt, a grader's source) as a readable triple-quoted literal, exact to the character."""
    return '"""\\\n' + escaped(text) + '"""'


def comment(text: str) -> str:
    """A one-line comment showing the text, anything that could end the line shown as an escape."""
    return "# " + "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def slug(text: str) -> str:
    """A Python identifier from a criterion's or eval's name (ASCII letters, digits and `_`, at most 60)."""
    word = re.sub(r"[^0-9a-zA-Z]+", "_", text)[:60].strip("_").lower() or "criterion"
    return f"c_{word}" if word[0].isdigit() else word


def identifier(name: str) -> str:
    """The name, checked to be a plain identifier: no keyword, no builtin's name, no dunder."""
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name) or name.startswith("__") \
            or (hasattr(builtins, name) and name not in BUILTINS):
        raise GeneratedCode(f"{name!r} is not a plain Python identifier")
    return name


@dataclass
class TestModule:
    """A test file being built: docstring, imports, assignments and functions, checked when rendered."""

    __test__ = False  # not a pytest test class, despite its name

    docstring: str
    imports: dict[str, set[str]] = field(default_factory=dict)
    """Module -> names imported from it (an empty set: `import module`)."""
    blocks: list[tuple[str, str, str]] = field(default_factory=list)
    """("assign" or "def", name, source), in order."""
    taken: set[str] = field(default_factory=set)

    def name(self, text: str, prefix: str = "", suffix: str = "", *, upper: bool = False) -> str:
        """A fresh identifier for a top-level name made from the text (`_2`, `_3`... when taken)."""
        base = prefix + (slug(text).upper() if upper else slug(text)) + suffix
        name, number = base, 1
        while name in self.taken:
            number += 1
            name = f"{base}_{number}"
        self.taken.add(identifier(name))
        return name

    def import_(self, module: str, names: Iterable[str] = ()) -> None:
        for part in module.split("."):
            identifier(part)
        self.imports.setdefault(module, set()).update(identifier(name) for name in names)

    def assign(self, name: str, value: str, note: str | None = None) -> None:
        """`name = value`, `value` being source made of literals and the file's own names."""
        self.blocks.append(("assign", identifier(name), (comment(note) + "\n" if note else "") + f"{name} = {value}\n"))

    def function(self, name: str, parameters: Sequence[str], body: Sequence[str]) -> None:
        """`def name(parameters):` with the body's lines (source, indented relative to the body)."""
        signature = ", ".join(identifier(parameter) for parameter in parameters)
        lines = "".join(f"    {line}\n" if line else "\n" for line in body)
        self.blocks.append(("def", identifier(name), f"def {name}({signature}):\n{lines}"))

    def source(self) -> str:
        """The file's source, parsed back and checked to hold exactly what was built."""
        head = [f'"""{escaped(self.docstring)}"""', ""]
        for module in sorted(self.imports, key=lambda module: (bool(self.imports[module]), module)):
            names = self.imports[module]
            head.append(f"from {module} import {', '.join(sorted(names))}" if names else f"import {module}")
        parts = ["\n".join(head) + "\n", *(source for _, _, source in self.blocks)]
        text = "\n\n".join(part.rstrip("\n") + "\n" for part in parts)
        self.check(text)
        return text

    def check(self, text: str) -> None:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError) as exc:
            raise GeneratedCode(f"the generated file does not compile: {exc}") from None
        if ast.get_docstring(tree, clean=False) != self.docstring:
            raise GeneratedCode("the generated file's docstring is not the one built")
        found = [statement_of(node) for node in tree.body[1:]]
        expected = [("import", module, tuple(sorted(self.imports[module])))
                    for module in sorted(self.imports, key=lambda module: (bool(self.imports[module]), module))]
        expected += [(kind, name, ()) for kind, name, _ in self.blocks]
        if found != expected:
            raise GeneratedCode(f"the generated file holds {found}, not {expected}")
        bound = set(BUILTINS) | {alias.asname or alias.name.split(".")[0]
                                 for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        for node in ast.walk(tree):
            if not isinstance(node, NODES):
                raise GeneratedCode(f"the generated file holds a {type(node).__name__} at line {getattr(node, 'lineno', '?')}")
            if isinstance(node, (ast.FunctionDef,)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in bound:
                raise GeneratedCode(f"the generated file uses the name {node.id!r} at line {node.lineno}, which it does not bind")
            if isinstance(node, (ast.Name, ast.arg)):  # a builtin's name bound in one scope is the builtin in another
                try:
                    identifier(node.id if isinstance(node, ast.Name) else node.arg)
                except GeneratedCode as exc:
                    raise GeneratedCode(f"the generated file at line {node.lineno}: {exc}") from None
            if isinstance(node, ast.Attribute) and node.attr not in ATTRIBUTES:
                raise GeneratedCode(f"the generated file reads the attribute {node.attr!r} at line {node.lineno}")


def statement_of(node: ast.stmt) -> tuple[str, str, tuple[str, ...]]:
    """What a top-level statement is, as `TestModule.check` compares it with what was built."""
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return ("import", node.module, tuple(alias.name for alias in node.names if alias.asname is None))
    if isinstance(node, ast.Import) and len(node.names) == 1 and node.names[0].asname is None:
        return ("import", node.names[0].name, ())
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return ("assign", node.targets[0].id, ())
    if isinstance(node, ast.FunctionDef) and not node.decorator_list:
        return ("def", node.name, ())
    return (type(node).__name__, ast.unparse(node)[:60], ())
