"""openai/evals registry evals (YAML + JSONL) as pytest files, one file per eval.

A registry YAML names each eval (`NAME: {id: NAME.dev.v0}`) and defines its id
(`NAME.dev.v0: {class: ..., args: {samples_jsonl: ...}}`); samples live under the registry's `data/`
and model-graded specs under its `modelgraded/` (the package knows `fact` and `closedqa`). The YAML is
hostile data: it is read with PyYAML's safe loader (no tag runs code) after its node graph is measured,
so an alias bomb is refused before anything walks it. The written files are built as `module.py`
builds every generated file: data only as literals and escaped comments, the source parsed back and
held to exactly what was built.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..names import distinct
from .convert import EvalsError, NotConverted
from .module import GeneratedCode, TestModule, comment, literal, slug, text_literal

MAX_BYTES = 10_000_000
MAX_NODES = 200_000
"""A registry file whose aliases expand to more nodes than this is refused (a billion-laughs file)."""
MAX_SPEC_FILES = 1000
CLASSES = {
    "evals.elsuite.basic.match:Match": "registry_match",
    "evals.elsuite.basic.includes:Includes": "registry_includes",
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch": "registry_fuzzy_match",
    "evals.elsuite.basic.json_match:JsonMatch": "registry_json_match",
    "evals.elsuite.modelgraded.classify:ModelBasedClassify": "registry_classify",
}
"""Each registry class this converts, and the helper that gives its verdict."""
MEANINGS = {
    "registry_match": "passes when the answer starts with an ideal answer",
    "registry_includes": "passes when an ideal answer is inside the answer",
    "registry_fuzzy_match": "passes when the normalised answer and an ideal contain one another",
    "registry_json_match": "passes when the answer's JSON equals an ideal's",
    "registry_classify": "asks the judge with the modelgraded spec's prompt and reads its choice",
}
IGNORED_ARGS = frozenset({"samples_jsonl", "max_tokens", "temperature", "sample_kwargs", "eval_kwargs"})
"""Args that change no verdict's rule (the answer's sampling is the session's, by --model and its params)."""
PARSE_TYPES = ("classify", "classify_cot", "cot_classify", "cot_classify_jp")


class Unsafe(EvalsError):
    """A YAML file that is refused before it is built (too big, too deep, an alias bomb)."""


@dataclass(frozen=True)
class RegistryEval:
    """One eval of a registry file: its name (the test file's), id, class and args."""

    name: str
    id: str
    cls: Any
    args: Mapping[str, Any]


@dataclass
class Written:
    """A test file's source and the dataset file to copy beside it (None for a placeholder only)."""

    name: str
    source: str
    samples: Path | None
    converted: str = ""
    skipped: str = ""
    notes: list[str] = field(default_factory=list)


# -- reading YAML safely ---------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    """A YAML file's data, read with the safe loader after its node graph was measured: more than
    MAX_NODES nodes once aliases are expanded, an alias that contains itself, or nesting deeper than
    Python recurses are refused with a clear `Unsafe`."""
    import yaml  # imported by `evals import` only: nothing else of the package reads YAML

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvalsError(f"{path}: cannot be read: {exc}") from None
    if len(data) > MAX_BYTES:
        raise Unsafe(f"{path}: {len(data)} bytes; a registry file of more than {MAX_BYTES} bytes is refused")
    loader = yaml.SafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = expanded_size(node)
        if size > MAX_NODES:
            raise Unsafe(f"{path}: its aliases expand to more than {MAX_NODES} nodes (a billion-laughs YAML?): refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise EvalsError(f"{path}: not YAML: {exc}") from None
    except RecursionError:
        raise Unsafe(f"{path}: nested too deep to read") from None
    finally:
        loader.dispose()


def expanded_size(root: Any) -> int:
    """The number of nodes the document has once every alias is expanded (counted, never built),
    stopping as soon as it passes MAX_NODES. Each node's size is computed once, so this is linear in
    the graph; a node that contains itself raises `Unsafe`."""
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else \
            list(node.value) if isinstance(node, yaml.SequenceNode) else []
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(sizes[id(child)] for child in children))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise Unsafe("an alias refers to a node that contains it (a recursive YAML): refused")
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise Unsafe("an alias refers to a node that contains it (a recursive YAML): refused")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


# -- what the registry file defines ----------------------------------------------------------------


def registry_evals(data: Any, where: Path) -> tuple[list[RegistryEval], list[str]]:
    """The evals a registry file defines (a name with an id that this file defines), and what else it
    holds that is no eval here, each said."""
    if not isinstance(data, Mapping):
        raise EvalsError(f"{where}: a registry file is a mapping of eval names (NAME: {{id: NAME.dev.v0}}), "
                         f"not {type(data).__name__}")
    evals, problems, used = [], [], set()
    for name, entry in data.items():
        if not isinstance(entry, Mapping) or "id" not in entry:
            continue
        if not isinstance(name, str) or not isinstance(entry["id"], str):
            problems.append(f"{name!r}: a name and its id are texts")
            continue
        spec = data.get(entry["id"])
        if not isinstance(spec, Mapping) or "class" not in spec:
            problems.append(f"{name!r}: its id {entry['id']!r} is defined nowhere in this file (no entry with a class)")
            continue
        used.add(entry["id"])
        args = spec.get("args") or {}
        evals.append(RegistryEval(name, entry["id"], spec["class"], args if isinstance(args, Mapping) else {"": args}))
    for name, entry in data.items():
        if isinstance(entry, Mapping) and "class" in entry and name not in used and isinstance(name, str):
            args = entry.get("args") or {}
            evals.append(RegistryEval(name, name, entry["class"], args if isinstance(args, Mapping) else {"": args}))
        elif isinstance(entry, Mapping) and "evals" in entry and "id" not in entry:
            problems.append(f"{name!r}: an eval set (its evals are converted from their own files)")
    if not evals and not problems:
        raise EvalsError(f"{where}: defines no eval (an eval is NAME: {{id: NAME.dev.v0}} with NAME.dev.v0: {{class: ..., args: ...}})")
    return evals, problems


def registry_root(yaml_path: Path, given: Path | None) -> Path:
    """The registry's root (the folder of `data/`, `evals/`, `modelgraded/`): `--registry`, else the
    YAML's grandparent when the YAML lies in an `evals/` folder, else its own folder."""
    if given is not None:
        return given
    folder = yaml_path.resolve().parent
    return folder.parent if folder.name == "evals" else folder


def modelgraded_specs(root: Path) -> dict[str, Any]:
    """The modelgraded specs by name: the package's (`fact`, `closedqa`), then those of every YAML
    file under `ROOT/modelgraded/`, which win."""
    specs = dict(builtin()["specs"])
    folder = root / "modelgraded"
    files = sorted(folder.rglob("*.yaml"))[:MAX_SPEC_FILES] if folder.is_dir() else []
    for path in files:
        data = load_yaml(path)
        if isinstance(data, Mapping):
            specs.update({name: spec for name, spec in data.items() if isinstance(name, str)})
    return specs


def builtin() -> dict[str, Any]:
    """The package's copy of openai/evals' `fact` and `closedqa` specs and classify's answer prompts."""
    loaded: dict[str, Any] = json.loads((resources.files(__package__) / "modelgraded.json").read_text(encoding="utf-8"))
    return loaded


def samples_path(value: Any, root: Path) -> Path:
    """Where `samples_jsonl` is: under `ROOT/data/`, as the registry resolves it. A path that leads out
    of that folder (absolute, `..`) is refused: the file is copied beside the tests, and a hostile
    registry file must not copy a key or a password file there."""
    if not isinstance(value, str) or not value.strip():
        raise NotConverted("its args name no samples_jsonl file")
    data = (root / "data").resolve()
    under = (data / value).resolve()
    if not under.is_relative_to(data):
        raise NotConverted(f"its samples_jsonl {value!r} lies outside the registry's data folder {data}: refused")
    if not under.is_file():
        raise NotConverted(f"its samples_jsonl {value!r} is no file (looked for {under}; name the registry's root, "
                           "the folder of data/, evals/ and modelgraded/, with --registry DIR)")
    return under


# -- the test file ---------------------------------------------------------------------------------


def convert_eval(ev: RegistryEval, function: str, *, root: Path, specs: Mapping[str, Any], command: str) -> Written:
    """The test file `function`.py of one eval (its samples copied to `function`.jsonl); an eval that
    cannot be converted gets a file with a failing placeholder test that says why."""
    dataset = f"{function}.jsonl"
    try:
        helper = CLASSES.get(ev.cls) if isinstance(ev.cls, str) else None
        if helper is None:
            known = ", ".join(name.rsplit(":", 1)[-1] for name in CLASSES)
            raise NotConverted(f"class {ev.cls!r} has no counterpart here (converted: {known})")
        samples = samples_path(ev.args.get("samples_jsonl"), root)
        written = Written(ev.name, "", samples, converted=f"{ev.name} ({ev.cls} -> {helper})")
        module = TestModule(f"The openai/evals registry eval {ev.name!r} ({ev.id}, {ev.cls}) as a pytest suite.\n\n"
                            f"Written by `{command}`.\n"
                            f"It runs the model under test (`--model`) on the eval's samples, copied to {dataset!r}, and\n"
                            f"grades each answer as the registry does: {helper} {MEANINGS[helper]}.\n")
        module.import_("pytest")
        module.import_("pytest_distill", [helper])
        module.assign("pytestmark", f"pytest.mark.distill_dataset({literal(dataset)})")
        call = classify_call(ev, specs, module, written) if helper == "registry_classify" else basic_call(ev, helper)
        module.function(function, ["case", "model"], ["output = model.complete(case).text", *call])
        written.source = module.source()
        return written
    except (NotConverted, GeneratedCode) as exc:
        return Written(ev.name, placeholder_file(ev, function, str(exc), command), None, skipped=f"{ev.name} ({ev.cls}): {exc}")


def basic_call(ev: RegistryEval, helper: str) -> list[str]:
    """The assert of Match, Includes, FuzzyMatch and JsonMatch, as lines of the test's body."""
    unknown = sorted(set(ev.args) - IGNORED_ARGS - {"ignore_case", "num_few_shot", "few_shot_jsonl"})
    if unknown:
        raise NotConverted(f"its args {', '.join(map(repr, unknown))} have no counterpart here")
    if ev.args.get("num_few_shot"):
        raise NotConverted("few-shot prompts (num_few_shot) are not converted: put the examples into the samples' input")
    extra = ""
    if helper == "registry_includes":
        ignore_case = ev.args.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            raise NotConverted(f"ignore_case {ignore_case!r} is not true or false")
        extra = f", ignore_case={literal(ignore_case)}"
    return [f"assert {helper}(output, case.references{extra}, name={literal(ev.name)})"]


def classify_call(ev: RegistryEval, specs: Mapping[str, Any], module: TestModule, written: Written) -> list[str]:
    """The assert of a ModelBasedClassify eval, as lines of the test's body; the spec goes into the
    module as constants (prompt, choices, scores, the passing choices), readable and editable."""
    args = ev.args
    unknown = sorted(set(args) - IGNORED_ARGS - {"modelgraded_spec", "modelgraded_spec_args", "eval_type", "match_fn",
                                                 "multicomp_n", "metaeval"})
    if unknown:
        raise NotConverted(f"its args {', '.join(map(repr, unknown))} have no counterpart here")
    if args.get("multicomp_n", 1) != 1:
        raise NotConverted("multicomp_n (several answers compared by one judge) is not converted")
    if args.get("metaeval"):
        raise NotConverted("metaeval (grading the judge against labelled choices) is not converted")
    spec_name = args.get("modelgraded_spec")
    spec = specs.get(spec_name) if isinstance(spec_name, str) else None
    if not isinstance(spec, Mapping):
        raise NotConverted(f"modelgraded_spec {spec_name!r} is not found (the package knows fact and closedqa; others are "
                           "read from the registry's modelgraded/ folder, --registry DIR)")
    choices = choice_list(spec.get("choice_strings"))
    scores = choice_scores(spec.get("choice_scores"), choices)
    outputs = spec.get("input_outputs")
    if not isinstance(outputs, Mapping) or list(outputs) != ["input"] or not isinstance(outputs["input"], str):
        raise NotConverted(f"input_outputs {outputs!r}: only the model's answer to the sample's input is converted")
    answer_type, parse_type = args.get("eval_type"), spec.get("eval_type") or args.get("eval_type")
    if parse_type not in PARSE_TYPES or (answer_type is not None and answer_type not in PARSE_TYPES):
        raise NotConverted(f"eval_type {parse_type!r} is none of {', '.join(PARSE_TYPES)} (the registry needs one to read a choice)")
    match_fn = args.get("match_fn") or "starts_or_endswith"
    if match_fn not in ("include", "exact", "endswith", "starts_or_endswith"):
        raise NotConverted(f"match_fn {match_fn!r} is not one of the registry's")
    extra = args.get("modelgraded_spec_args") or {}
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in extra):
        raise NotConverted("modelgraded_spec_args is a mapping of field names to texts")
    prompt = spec_prompt(spec.get("prompt"), answer_type, choices)
    passing = [c for c in choices if max(scores.values()) == scores[c]] if scores else \
        [c for c in choices if c != "D"] if spec_name == "fact" and choices == list("ABCDE") else choices
    if not scores and spec_name != "fact":
        written.notes.append(f"spec {spec_name!r} has no choice_scores: every readable choice passes; edit PASSING to choose")
    what = f" with the answer prompt of {answer_type!r}" if answer_type else ""
    module.assign("PROMPT", text_literal(prompt) if isinstance(prompt, str) else literal(prompt),
                  f"The modelgraded spec {spec_name!r}'s prompt{what}.")
    module.assign("CHOICES", literal(choices), "The choices the judge picks from (choice_strings).")
    module.assign("SCORES", literal(scores), "Each choice's score (choice_scores; None: the spec gives none).")
    module.assign("PASSING", literal(passing), "The choices that pass: those of the top score" + (
        "; fact gives no scores, and D (a disagreement) is the one that fails." if spec_name == "fact" and not scores else "."))
    if extra:
        module.assign("SPEC_ARGS", literal(dict(extra)), "The eval's modelgraded_spec_args, filled into the prompt.")
    arguments = ["output, case, PROMPT, CHOICES", *(["spec_args=SPEC_ARGS"] if extra else []),
                 f"eval_type={literal(parse_type)}", "choice_scores=SCORES, passing=PASSING",
                 *([f"match_fn={literal(match_fn)}"] if match_fn != "starts_or_endswith" else []),
                 *([f"answer_key={literal(outputs['input'])}"] if outputs["input"] != "completion" else []),
                 f"name={literal(ev.name)}"]
    return ["assert registry_classify(", *(f"    {argument}," for argument in arguments), ")"]


def choice_list(given: Any) -> list[str]:
    """`choice_strings` as a list (a text is its characters; from_n... with one answer is one choice)."""
    counted = {"from_n": ["1"], "from_n_abc": ["a"], "from_n_ABC": ["A"]}
    if isinstance(given, str):
        choices = counted.get(given, list(given))
    elif isinstance(given, list) and all(isinstance(c, str) for c in given):
        choices = list(given)
    else:
        raise NotConverted(f"choice_strings {given!r} is neither a text nor a list of texts")
    if not choices or any(char in string.punctuation for choice in choices for char in choice):
        raise NotConverted(f"choice_strings {given!r}: the registry needs choices without punctuation")
    return choices


def choice_scores(given: Any, choices: Sequence[str]) -> dict[str, float] | None:
    """`choice_scores` as numbers per choice (`from_strings`: each choice read as a number)."""
    if given is None:
        return None
    try:
        scores = {c: float(c) for c in choices} if given == "from_strings" else \
            {str(k): float(v) for k, v in given.items() if not isinstance(v, bool)} if isinstance(given, Mapping) else None
    except (TypeError, ValueError):
        scores = None
    if scores is None or set(choices) - set(scores) or not all(map(_finite, scores.values())):
        raise NotConverted(f"choice_scores {given!r} gives no number to every choice")
    return {c: scores[c] for c in choices}


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def spec_prompt(prompt: Any, answer_type: Any, choices: Sequence[str]) -> Any:
    """The spec's prompt with the eval_type's answer prompt appended to its last message, as classify
    does when the eval's args give an eval_type."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt and all(isinstance(m, Mapping) and isinstance(m.get("role"), str)
                                                     and isinstance(m.get("content"), str) for m in prompt):
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    else:
        raise NotConverted("its spec's prompt is neither a text nor a list of messages with text content")
    if answer_type is not None:
        shown = " or ".join(f'"{choice}"' for choice in choices)
        messages[-1]["content"] += "\n\n" + builtin()["answer_prompts"][answer_type].replace("{choices}", shown)
    return messages[0]["content"] if isinstance(prompt, str) else messages


def placeholder_file(ev: RegistryEval, function: str, why: str, command: str) -> str:
    """A file whose one test fails saying why the eval was not converted, the eval shown as comments."""
    try:
        shown = json.dumps({"class": ev.cls, "args": ev.args}, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        shown = repr({"class": ev.cls, "args": ev.args})
    message = f"registry eval {ev.name!r} ({ev.id}) was not converted: {why}; grade it by hand here"
    module = TestModule(f"The openai/evals registry eval {ev.name!r}: not converted.\n\nWritten by `{command}`.\n")
    module.import_("pytest")
    module.function(f"{function}_not_converted", [], [
        "# The eval as the registry defines it:", *(comment(line) for line in shown.split("\n")), f"pytest.fail({literal(message)})"])
    return module.source()


def file_names(evals: Sequence[RegistryEval]) -> list[str]:
    """A distinct `test_NAME` per eval (a name made of no ASCII letter is `eval`)."""
    return distinct([f"test_{slug(ev.name) if re.search(r'[A-Za-z0-9]', ev.name) else 'eval'}" for ev in evals], "_")
