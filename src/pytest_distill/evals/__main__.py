"""`python -m pytest_distill.evals import EVAL.json [--data FILE.jsonl] [-o tests/test_NAME.py]`, and
`python -m pytest_distill.evals import REGISTRY.yaml [--registry DIR] [-o tests/test_NAME.py or a folder]`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_atomic
from ..strict_json import NotJSON, loads
from .convert import EvalsError, convert, registry_lines
from .module import slug
from .registry import convert_eval, file_names, load_yaml, modelgraded_specs, registry_evals, registry_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.evals",
                                     description="Turn OpenAI Evals definitions into pytest suites.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("import", help="write a pytest file from an eval definition (evals.create / evals.retrieve "
                               "JSON) or one per eval of an openai/evals registry YAML")
    make.add_argument("definition", type=Path, help="the eval's JSON, or a registry YAML (.yaml, .yml)")
    make.add_argument("--registry", type=Path, help="a registry YAML's registry root, the folder of data/, evals/ and "
                      "modelgraded/ (default: the YAML's grandparent when it lies in an evals/ folder)")
    make.add_argument("--data", type=Path, help="the eval's data: one item a line, {\"item\": {...}} or the bare item")
    make.add_argument("-o", "--output", type=Path, help="the test file to write (default: test_NAME.py here); for a "
                      "registry YAML of several evals, the folder to write them in")
    make.add_argument("--input-field", default="input", help="the item field that is the model's input (default: input)")
    make.add_argument("--reference-field", default="ideal", help="the item field that is the reference (default: ideal)")
    args = parser.parse_args(argv)
    try:
        return run_import(args, argv if argv is not None else sys.argv[1:])
    except EvalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_import(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.definition.suffix.lower() in (".yaml", ".yml"):
        return run_registry_import(args, argv)
    try:
        definition = loads(args.definition.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalsError(f"{args.definition}: cannot be read: {exc}") from None
    except NotJSON as exc:  # NaN, Infinity or 1e999 (a threshold no score can meet), nesting too deep
        raise EvalsError(f"{args.definition}: not strict JSON: {exc}") from None
    if not isinstance(definition, dict):
        raise EvalsError(f"{args.definition}: expected a JSON object (the body of evals.create or evals.retrieve's answer)")
    output: Path = args.output or Path(f"test_{slug(str(definition.get('name') or args.definition.stem))}.py")
    dataset = None
    if args.data is not None:
        lines, missing = registry_lines(args.data, args.input_field, args.reference_field)
        cases = output.with_suffix(".jsonl")
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cases, "".join(line + "\n" for line in lines))
        dataset = os.path.basename(cases)
        print(f"wrote {cases}: {len(lines)} cases from {args.data}")
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            print(f"  {len(missing)} items have no {args.input_field!r} field (lines {shown}): those cases will error")
    command = "python -m pytest_distill.evals " + " ".join(shlex.quote(part) for part in argv)
    conversion = convert(definition, dataset=dataset, command=command, reference_field=args.reference_field)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, conversion.source)
    print(f"wrote {output}: {len(conversion.converted)} criteria converted, {len(conversion.skipped)} not")
    for converted in conversion.converted:
        print(f"  converted: {converted}")
    for skipped in conversion.skipped:
        print(f"  NOT converted: {skipped} (a failing placeholder test says so)")
    return 0


def run_registry_import(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """One test file per eval of a registry YAML, its samples copied beside it."""
    if args.data is not None:
        raise EvalsError("--data is for an eval definition's JSON; a registry eval names its samples_jsonl (use --registry DIR)")
    root = registry_root(args.definition, args.registry)
    evals, problems = registry_evals(load_yaml(args.definition), args.definition)
    output: Path | None = args.output
    if len(evals) > 1 and output is not None and output.suffix == ".py":
        raise EvalsError(f"{args.definition} defines {len(evals)} evals, one test file each: -o names their folder, not a .py file")
    specs = modelgraded_specs(root)
    command = "python -m pytest_distill.evals " + " ".join(shlex.quote(part) for part in argv)
    for ev, name in zip(evals, file_names(evals), strict=True):
        path = output if output is not None and output.suffix == ".py" else (output or Path()) / f"{name}.py"
        written = convert_eval(ev, path.stem, root=root, specs=specs, command=command)
        path.parent.mkdir(parents=True, exist_ok=True)
        if written.samples is not None:
            cases = path.with_suffix(".jsonl")
            try:
                text = written.samples.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise EvalsError(f"{written.samples}: cannot be read: {exc}") from None
            write_atomic(cases, text)
            print(f"wrote {cases}: {sum(1 for line in text.splitlines() if line.strip())} samples from {written.samples}")
        write_atomic(path, written.source)
        print(f"wrote {path}: " + (f"converted: {written.converted}" if written.converted else
                                   f"NOT converted: {written.skipped} (a failing placeholder test says so)"))
        for note in written.notes:
            print(f"  note: {note}")
    for problem in problems:
        print(f"  not an eval here: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
