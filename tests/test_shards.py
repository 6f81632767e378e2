"""--distill-shard and `python -m pytest_distill.results merge/show`: a suite split over machines reads as one run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_distill import results as results_cli
from pytest_distill.cases import shard_of
from pytest_distill.sim import SimServer

JUDGED_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("stored:split=test")
@pytest.mark.distill_grade("factuality")
def test_reply(case, model):
    assert factuality(model.complete(case), case.expected)
"""
RUN = ("--model", "gpt-4o", "--model", "gpt-4o-mini", "--distill-repeat", "2")
LATENCY = re.compile(r"(\d+\.\d+s|-) / (\d+\.\d+s|-)")


def summary_of(lines: list[str]) -> list[str]:
    """The distill summary's lines, latencies blanked (they are the one thing two runs do not share)."""
    start = next(i for i, line in enumerate(lines) if "distill summary" in line) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(("distill:", "===", "---"))), len(lines))
    return [LATENCY.sub("LATENCY", line) for line in lines[start:end]]


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def without_times(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in record.items() if key != "latency_s"} for record in records]


def test_three_shards_merged_are_the_table_and_results_of_one_run(
        pytester: pytest.Pytester, sim: SimServer, capsys: pytest.CaptureFixture[str]) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    whole = pytester.runpytest(*RUN, "--distill-results", "whole.json")
    parts = [pytester.runpytest(*RUN, "--distill-shard", f"{i}/3", "--distill-results", f"part{i}.json",
                                *(("-n", "2") if i == 2 else ())) for i in (1, 2, 3)]
    one = read(pytester.path / "whole.json")
    counts = [len(read(pytester.path / f"part{i}.json")["cases"]) for i in (1, 2, 3)]
    assert sum(counts) == len(one["cases"]) == 48 and all(counts), counts
    for i, part in enumerate(parts, 1):
        assert read(pytester.path / f"part{i}.json")["run"]["shard"] == f"{i}/3"
        part.stdout.no_fnmatch_line("*INTERNALERROR*")

    files = [str(pytester.path / f"part{i}.json") for i in (3, 1, 2)]
    capsys.readouterr()
    assert results_cli.main(["merge", *files, "-o", str(pytester.path / "all.json")]) == 0
    merged_out = capsys.readouterr().out
    merged = read(pytester.path / "all.json")
    assert without_times(merged["cases"]) == without_times(one["cases"])
    assert merged["summary"] == one["summary"] and merged["repeats"] == one["repeats"]
    assert [shard["shard"] for shard in merged["run"]["shards"]] == ["3/3", "1/3", "2/3"]
    assert "shard" not in merged["run"] and merged["run"]["datasets"] == one["run"]["datasets"]

    table = summary_of(whole.stdout.lines)
    assert any(line.startswith("judging: ") for line in table) and any("flaky" in line or "pass^2" in line for line in table)
    wrote, *merged_table = merged_out.splitlines()
    assert wrote.startswith("wrote ") and summary_of(["distill summary", *merged_table]) == table
    assert results_cli.main(["show", str(pytester.path / "all.json")]) == 0
    assert summary_of(["distill summary", *capsys.readouterr().out.splitlines()]) == table

    # The baseline comparison reads the merged file as one run: nothing added, removed or changed.
    again = pytester.runpytest(*RUN, "--distill-baseline", "all.json")
    again.stdout.fnmatch_lines(["distill: no regression against the baseline all.json*"])
    again.stdout.no_fnmatch_line("*added since the baseline*")
    again.stdout.no_fnmatch_line("*did not run*")


def test_a_case_is_in_the_same_slice_whatever_the_order_and_the_slices_are_balanced() -> None:
    ids = [f"q{i:05d}" for i in range(3000)]
    slices = [shard_of(case_id, 3) for case_id in ids]
    assert [shard_of(case_id, 3) for case_id in reversed(ids)] == slices[::-1]
    assert [shard_of(case_id, 3) for case_id in ("q00000", "q00001", "q00002", "line1")] == [1, 3, 1, 3], \
        "the slice is a pure function of the id, the same on every machine and in every release"
    assert all(900 < slices.count(index) < 1100 for index in (1, 2, 3))


@pytest.mark.parametrize(("value", "message"), [
    ("4/3", "*--distill-shard: '4/3': I must be from 1 to N*"),
    ("0/3", "*--distill-shard: '0/3': I must be from 1 to N*"),
    ("2", "*--distill-shard: '2' is not I/N*"),
    ("a/b", "*--distill-shard: 'a/b' is not I/N*"),
])
def test_a_shard_that_is_no_slice_stops_the_run_at_start_up(pytester: pytest.Pytester, value: str, message: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--distill-shard", value)
    result.stderr.fnmatch_lines([message])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def results_file(path: Path, nodeids: list[str], **run: Any) -> str:
    base = {"plugin_version": "1.0", "started": "2026-12-07T10:00:00+00:00", "duration_s": 5.0, "simulator": True,
            "endpoints": [], "roles": {"models_under_test": ["m"], "teacher": "t", "student": "s", "judge": "t"},
            "datasets": ["cases.jsonl"]}
    cases = [{"nodeid": nodeid, "case_id": nodeid[-2:], "model": "m", "output": "x", "grades": [], "usage": None,
              "latency_s": None, "error": None, "outcome": "passed"} for nodeid in nodeids]
    path.write_text(json.dumps({"version": 1, "run": {**base, **run}, "cases": cases, "summary": {}}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("second", "message"), [
    ({"nodeids": ["t.py::test[c1-m]"]}, "*a.json and *b.json both hold t.py::test[c1-m]: a case may be in one file only*"),
    ({"datasets": ["other.jsonl"]}, "*b.json ran other datasets than *a.json: other.jsonl*"),
    ({"plugin_version": "2.0"}, "*a.json and *b.json are not parts of one run: their plugin version differs (1.0 against 2.0)*"),
    ({"simulator": False}, "*their simulator differs (True against False)*"),
    ({"shard": "1/4"}, "*the files are slices of different splits (--distill-shard .../3 and .../4)*"),
    ({"started": "yesterday"}, "*b.json: run.started 'yesterday' is not a time (ISO 8601)*"),
    ({"datasets": "cases.jsonl"}, "*b.json: run.datasets is not a list of dataset specs*"),
])
def test_files_that_are_not_parts_of_one_run_are_refused_saying_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], second: dict[str, Any], message: str) -> None:
    first = results_file(tmp_path / "a.json", ["t.py::test[c1-m]"], shard="1/3")
    nodeids = second.pop("nodeids", ["t.py::test[c2-m]"])
    other = results_file(tmp_path / "b.json", nodeids, **{"shard": "2/3", **second})
    assert results_cli.main(["merge", first, other, "-o", str(tmp_path / "all.json")]) == 2
    assert re.fullmatch(message.replace("*", ".*").replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)"),
                        capsys.readouterr().err.strip(), re.S)
    assert not (tmp_path / "all.json").exists()


def test_a_merge_short_of_a_shard_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [results_file(tmp_path / f"{i}.json", [f"t.py::test[c{i}-m]"], shard=f"{i}/4") for i in (1, 3)]
    assert results_cli.main(["merge", *files, "-o", str(tmp_path / "all.json")]) == 0
    out = capsys.readouterr().out
    assert "note: shards 2/4, 4/4 not among the files: the merged file holds part of the datasets" in out
    merged = read(tmp_path / "all.json")
    assert [case["nodeid"] for case in merged["cases"]] == ["t.py::test[c1-m]", "t.py::test[c3-m]"]
