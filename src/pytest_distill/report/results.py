"""The JSON results file (`--distill-results`), schema version 1: one record per case per model.

The same document is what a later run reads as its baseline, so its schema is kept here as data
and the baseline loader checks files against it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import strict_json
from ..atomic import replaceable, write_atomic
from ..errors import ConfigError
from ..grades import Grade
from ..ledger import Entry, summarize, verdict_changes
from ..significance import Interval
from . import schema_check
from .inputs import read_input

if TYPE_CHECKING:
    from .agreement import Agreement, Panel

VERSION = 1

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INTERVAL = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 2, "maxItems": 2}
"""`"ci95": [LOW, HIGH]`: the 95% Wilson interval beside a pass rate."""
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "cases", "summary"],
    "properties": {
        "version": {"const": VERSION},
        "cases": {"type": "array", "items": {
            "type": "object",
            "required": ["nodeid", "case_id", "model", "output", "grades", "usage", "latency_s", "error"],
            "properties": {
                "nodeid": {"type": "string"},
                "case_id": {"type": ["string", "null"]},
                "model": {"type": ["string", "null"]},
                "output": {"type": ["string", "null"]},
                "grades": {"type": "array", "items": {
                    "type": "object", "required": ["name", "score", "passed", "reason"],
                    "properties": {"name": {"type": "string"}, "score": {"type": "number"},
                                   "passed": {"type": "boolean"}, "reason": {"type": "string"}}}},
                "usage": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}},
                "latency_s": _NUMBER_OR_NULL,
                "error": {"type": ["string", "null"]},
                "outcome": {"enum": ["passed", "failed", "error"]},
                "sample": {"type": "integer", "minimum": 0},
                "dataset": {"type": ["string", "null"]},
                "judging": {"type": "object", "additionalProperties": {
                    "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "integer"}],
                    "minItems": 3, "maxItems": 3}},
            }}},
        "summary": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {
                "type": "object", "required": ["pass_rate", "mean_score", "n"],
                "properties": {"pass_rate": {"type": "number"}, "mean_score": {"type": "number"},
                               "n": {"type": "integer"}, "ci95": _INTERVAL}}}},
        "distill": {"type": "object"},
        "run": {"type": "object"},
        "repeats": {"type": "object"},
        "judges": {"type": "object"},
        "balance": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["train", "test"],
            "properties": {"train": {"type": "integer"}, "test": {"type": "integer"}}}}},
    },
}


UNSAID_ERROR = "the test errored (see its report)"


def record(entry: Entry) -> dict[str, Any]:
    """One case on one model; a test that errored without a model error still says it errored. The
    repeat, the dataset and the judge calls are kept so that `entry` gives the entry back (a merged file
    is summed up as one run)."""
    error = entry.error or (UNSAID_ERROR if entry.outcome == "error" else None)
    return {
        "nodeid": entry.nodeid, "case_id": entry.case_id, "model": entry.model, "output": entry.output,
        "grades": [{"name": g.name, "score": g.score, "passed": g.passed, "reason": g.reason,
                    **({"votes": g.votes} if g.votes is not None else {})} for g in entry.grades],
        "usage": entry.usage, "latency_s": entry.latency_s, "error": error, "outcome": entry.outcome,
        "sample": entry.sample, "dataset": entry.dataset, "judging": entry.judging,
        **({"judge_transcripts": entry.transcripts} if entry.transcripts else {}),
    }


def entry(data: Mapping[str, Any]) -> Entry:
    """A record of a (schema-checked) results file as the entry it was made from; a file of an older
    plugin, without repeat or judge calls, reads as repeat 0 and no judging."""
    error = data["error"]
    outcome = data.get("outcome", "error" if error is not None else "passed")
    return Entry(nodeid=data["nodeid"], case_id=data["case_id"], model=data["model"], output=data["output"],
                 grades=[Grade(g["name"], g["score"], g["passed"], g["reason"], votes=_votes(g.get("votes"))) for g in data["grades"]],
                 usage=data["usage"], latency_s=data["latency_s"], outcome=outcome,
                 error=None if outcome == "error" and error == UNSAID_ERROR else error,
                 sample=data.get("sample", 0), dataset=data.get("dataset"),
                 judging={request: (call[0], call[1], call[2]) for request, call in data.get("judging", {}).items()},
                 transcripts=_transcripts(data.get("judge_transcripts")))


def _votes(value: Any) -> dict[str, bool] | None:
    """A grade's judges' verdicts, read as hostile: judge names and true or false, anything else none."""
    if not isinstance(value, Mapping):
        return None
    return {str(judge): verdict for judge, verdict in value.items() if isinstance(verdict, bool)}


def _transcripts(value: Any) -> list[dict[str, Any]]:
    """A record's judge transcripts, read as hostile: a list of objects, anything else none."""
    return [dict(item) for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def document(entries: Sequence[Entry], distill: Mapping[str, Any] | None = None,
             run: Mapping[str, Any] | None = None, judges: Mapping[str, Agreement] | None = None,
             panels: Mapping[str, Panel] | None = None) -> dict[str, Any]:
    """The results of a run: how it was made, its records (skipped tests left out), the per-grader
    summary, the distillation; with --distill-repeat, pass^N, pass@N and the flaky cases; with judge
    labels, each judge's agreement; with several judges (`judge=[...]`), how far they agreed among themselves."""
    ran = [entry for entry in entries if entry.outcome != "skipped"]
    summary = {model: {name: {"pass_rate": g.pass_rate, "ci95": _ci95(g.interval), "mean_score": g.mean_score, "n": g.n}
                       for name, g in stats.graders.items()}
               for model, stats in summarize(ran).items()}
    results = {"version": VERSION, **({"run": dict(run)} if run is not None else {}),
               "cases": [record(entry) for entry in ran], "summary": summary, "distill": dict(distill or {})}
    if repeats := verdict_changes(ran):
        results["repeats"] = {model: stats.to_dict() for model, stats in repeats.items()}
    if judges is not None:
        results["judges"] = {grader: stats.to_dict() for grader, stats in judges.items()}
    if panels:
        results["panels"] = {grader: panel.to_dict() for grader, panel in panels.items()}
    return results


def _ci95(interval: Interval | None) -> list[float] | None:
    return interval.to_list() if interval is not None else None


def load(path: Path, where: str, missing: str = "no such file") -> dict[str, Any]:
    """A results file checked against the schema, or a usage error that says what is wrong with it."""
    text = read_input(path, where, missing)
    try:
        results = strict_json.loads(text)
    except strict_json.NotJSON as exc:  # incl. nesting too deep to read and lone surrogates no report can hold
        raise ConfigError(f"{where}: not JSON: {exc}") from None
    check_version(results if isinstance(results, dict) else {}, where)
    check(SCHEMA, results, "$", where)
    return dict(results)


def check(schema: Mapping[str, Any], value: Any, at: str, where: str) -> None:
    """A usage error unless the value (at JSON path `at` of the file) matches the schema (or a part of it)."""
    if schema_check.matches(schema, value):  # a plain pass: jsonschema took two minutes on 100,000 cases
        return
    import jsonschema  # imported when first needed: it costs a suite that never validates

    problem = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if problem is not None:
        raise ConfigError(f"{where}: not a pytest-distill results file: at {at}{problem.json_path[1:]}: {problem.message}")


def check_version(members: Mapping[str, Any], where: str) -> None:
    """A usage error unless the file is of the schema version this plugin reads."""
    version = members.get("version")
    if version != VERSION:
        raise ConfigError(f"{where}: results schema version {version!r}; this pytest-distill reads version "
                          f"{VERSION} (write a new one with --distill-results)")


def check_record(record: Any, index: int, where: str) -> None:
    """One record of a results file read a record at a time: what `load` checks of the whole document."""
    surrogate = strict_json.lone_surrogate(record)
    if surrogate is not None:
        raise ConfigError(f"{where}: not JSON: a lone surrogate in the string at $.cases[{index}]{surrogate[1:]}")
    check(SCHEMA["properties"]["cases"]["items"], record, f"$.cases[{index}]", where)


def check_head(members: Mapping[str, Any], where: str) -> None:
    """The members of a results file read a record at a time (its "cases" read as [], the records apart):
    what `load` checks of them."""
    check_version(members, where)
    surrogate = strict_json.lone_surrogate(dict(members))
    if surrogate is not None:
        raise ConfigError(f"{where}: not JSON: a lone surrogate in the string at {surrogate}")
    for name in SCHEMA["required"]:
        if name not in members:
            raise ConfigError(f"{where}: not a pytest-distill results file: at $: {name!r} is a required property")
    for name, value in members.items():
        if name in SCHEMA["properties"]:
            check(SCHEMA["properties"][name], value, f"$.{name}", where)


def check_destination(path: Path, flag: str = "--distill-results", example: str = "results.json") -> None:
    """At start-up, before any model is called: the results file (or another file a run writes, named by
    `flag`) can be written where it is asked for, so that a run's answers are not paid for and then lost.

    Its folders are made at the end; here the nearest folder that exists must take a new file (a
    nameless one, so nothing is left behind)."""
    where = f"{flag} {path}"
    try:
        if path.is_dir():
            raise ConfigError(f"{where} is a folder: name a file in it, e.g. {path / example}")
        if not replaceable(path):
            raise ConfigError(f"{where} is not a regular file (a device, a pipe or a socket): name a new or a regular file")
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise ConfigError(f"{where} cannot be written: {folder} is not a folder")
    except OSError as exc:  # a name too long, a folder that cannot be read
        raise ConfigError(f"{where} cannot be written: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{where} cannot be written: {folder}: {exc.strerror or exc}") from None


def write(path: Path, results: Mapping[str, Any]) -> None:
    """Readers (a CI step, the next run's baseline) see the old file or the whole new one, never half."""
    write_atomic(path, strict_json.dumps(results) + "\n")
