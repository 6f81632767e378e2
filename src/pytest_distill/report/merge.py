"""Results files of one suite's shards (`--distill-shard I/N` on several machines) made into one.

The merged file is a results file like any other: its cases are the shards' cases in the order one
run would have written them, and its summary, repeats and judge calls are summed up from those cases
by the code that sums up a run, so the table, a baseline comparison and the gate read it as one run.
Files that are not parts of one run (other datasets, models or plugin versions, a case in two of
them) are refused, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ledger import in_order
from . import results
from .baseline import LISTED

_SHARD = re.compile(r"[1-9][0-9]{0,8}/[1-9][0-9]{0,8}")
AGREE = ("plugin_version", "simulator", "roles")
"""What every part of one run has alike in its "run" block."""


class MergeError(ConfigError):
    """Files that are not the parts of one run."""


def merge(paths: Sequence[Path]) -> tuple[dict[str, Any], list[str]]:
    """The merged results, and notes for the user (shards missing, judge agreement left out)."""
    if len(paths) < 2:
        raise MergeError("merge takes two results files or more")
    files = [(path, results.load(path, str(path))) for path in paths]
    runs = [_run(path, data) for path, data in files]
    _check_alike(paths, runs)
    datasets = _datasets(paths, runs)
    owner: dict[str, Path] = {}
    entries = []
    for path, data in files:
        for record in data["cases"]:
            other = owner.setdefault(record["nodeid"], path)
            if other != path:
                raise MergeError(f"{other} and {path} both hold {record['nodeid']}: a case may be in one file only "
                                 "(were they run with the same --distill-shard, or is one file given twice?)")
            entries.append(results.entry(record))
    roles = runs[0].get("roles")
    models = roles.get("models_under_test", []) if isinstance(roles, Mapping) else []
    notes = _missing_shards(runs)
    if any("judges" in data for _, data in files):
        notes.append("judge agreement (--distill-judge-labels) is left out: it is measured again on a whole run, "
                     "not added up from its parts")
    run = _merged_run(paths, runs, datasets, [len(data["cases"]) for _, data in files])
    return results.document(in_order(entries, models), None, run), notes


def _run(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's "run" block, its times, datasets and slice checked (the file is from outside)."""
    run = data.get("run")
    if not isinstance(run, dict) or not all(key in run for key in (*AGREE, "started", "duration_s", "datasets")):
        raise MergeError(f"{path}: its \"run\" block is missing or incomplete: only results files written by "
                         "--distill-results can be merged")
    duration, datasets, shard = run["duration_s"], run["datasets"], run.get("shard")
    try:
        _time(run["started"])
    except ValueError:
        raise MergeError(f"{path}: run.started {run['started']!r} is not a time (ISO 8601)") from None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < float("inf"):
        raise MergeError(f"{path}: run.duration_s {duration!r} is not a number of seconds")
    if not isinstance(datasets, list) or not all(isinstance(spec, str) for spec in datasets):
        raise MergeError(f"{path}: run.datasets is not a list of dataset specs")
    if shard is not None and (not isinstance(shard, str) or not _SHARD.fullmatch(shard)):
        raise MergeError(f"{path}: run.shard {shard!r} is not I/N")
    if not isinstance(run.get("endpoints", []), list):
        raise MergeError(f"{path}: run.endpoints is not a list")
    return run


def _check_alike(paths: Sequence[Path], runs: Sequence[Mapping[str, Any]]) -> None:
    for key in AGREE:
        for path, run in zip(paths[1:], runs[1:], strict=True):
            if run[key] != runs[0][key]:
                raise MergeError(f"{paths[0]} and {path} are not parts of one run: their {key.replace('_', ' ')} "
                                 f"differs ({_said(runs[0][key])} against {_said(run[key])})")
    counts = {run["shard"].partition("/")[2] for run in runs if isinstance(run.get("shard"), str)}
    if len(counts) > 1:
        raise MergeError(f"the files are slices of different splits (--distill-shard .../{' and .../'.join(sorted(counts))})")


def _datasets(paths: Sequence[Path], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every file's dataset specs are among those of the file with the most (a small dataset may have
    no case in a slice); files that ran other datasets are not one run."""
    fullest = max(range(len(runs)), key=lambda index: len(runs[index]["datasets"]))
    known = runs[fullest]["datasets"]
    for path, run in zip(paths, runs, strict=True):
        other = [spec for spec in run["datasets"] if spec not in known]
        if other:
            raise MergeError(f"{path} ran other datasets than {paths[fullest]}: {', '.join(map(str, other))} "
                             f"(that one ran {', '.join(map(str, known)) or 'none'})")
    return list(known)


def _said(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _missing_shards(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    shards = [run["shard"] for run in runs if isinstance(run.get("shard"), str)]
    if not shards:
        return []
    count = int(shards[0].partition("/")[2])
    absent = count - len(set(shards))
    if absent <= 0:
        return []
    # islice: a hostile "1/999999999" is not walked to its end
    named = islice((f"{index}/{count}" for index in range(1, count + 1) if f"{index}/{count}" not in shards), LISTED)
    more = f" and {absent - LISTED} more" if absent > LISTED else ""
    return [f"shard{'s' if absent > 1 else ''} {', '.join(named)}{more} not among the files: the merged file "
            "holds part of the datasets"]


def _merged_run(paths: Sequence[Path], runs: Sequence[Mapping[str, Any]], datasets: list[str],
                counts: Sequence[int]) -> dict[str, Any]:
    """The first file's "run" with the whole span of time, every endpoint, and the parts listed."""
    starts = [_time(run["started"]) for run in runs]
    ends = [start + timedelta(seconds=float(run["duration_s"])) for start, run in zip(starts, runs, strict=True)]
    endpoints = list({repr(endpoint): endpoint for run in runs for endpoint in run.get("endpoints", [])}.values())
    merged = {key: value for key, value in runs[0].items() if key != "shard"}
    merged.update(started=min(starts).isoformat(timespec="seconds"), duration_s=round((max(ends) - min(starts)).total_seconds(), 3),
                  endpoints=endpoints, datasets=datasets,
                  shards=[{"file": path.name, "shard": run.get("shard"), "started": run["started"],
                           "duration_s": run["duration_s"], "cases": count}
                          for path, run, count in zip(paths, runs, counts, strict=True)])
    return merged


def _time(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
