"""`python -m pytest_distill.datasets split`: every value in both files, the same split for the same seed,
rare values copied on request, a bad line named and left out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_distill.split import LONG, NONE, read_lines, stratified, value_of


def chat(case_id: str, intent: str | None, question: str = "q") -> dict[str, object]:
    metadata = {} if intent is None else {"intent": intent}
    return {"id": case_id, "metadata": metadata,
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "a"}]}


def write(path: Path, rows: list[object], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows) + extra, encoding="utf-8")
    return path


def split(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_distill.datasets", "split", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def ids(path: Path) -> list[str]:
    return [json.loads(line).get("id", "") for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_value_with_two_cases_is_in_both_files_in_the_asked_share(tmp_path: Path) -> None:
    rows = [chat(f"r{i}", "refund") for i in range(10)] + [chat(f"h{i}", "hours") for i in range(2)] + [chat("s0", "ship")]
    data = write(tmp_path / "traffic.jsonl", rows)
    done = split(str(data), "--by", "intent", "--test", "0.2", "--seed", "7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    train, test = ids(tmp_path / "traffic-train.jsonl"), ids(tmp_path / "traffic-test.jsonl")
    assert sorted(train + test) == sorted(row["id"] for row in rows)  # type: ignore[index]
    assert sum(i.startswith("r") for i in test) == 2 and sum(i.startswith("h") for i in test) == 1
    assert "s0" in train and "s0" not in test
    assert "ship" in done.stdout and "(one case: train only)" in done.stdout


def test_the_same_seed_gives_the_same_split_and_lines_are_kept_as_written(tmp_path: Path) -> None:
    rows = [chat(f"r{i}", "refund", f"question {i}") for i in range(20)]
    data = write(tmp_path / "d.jsonl", rows)
    split(str(data), "--by", "intent", "--seed", "1", "-o", "one", cwd=tmp_path)
    split(str(data), "--by", "intent", "--seed", "1", "-o", "two", cwd=tmp_path)
    first = (tmp_path / "one" / "d-test.jsonl").read_text(encoding="utf-8")
    assert first == (tmp_path / "two" / "d-test.jsonl").read_text(encoding="utf-8")
    written = set(data.read_text(encoding="utf-8").splitlines())
    assert set(first.splitlines()) <= written


def test_rare_values_are_copied_in_train_and_each_copy_says_so(tmp_path: Path) -> None:
    rows = [chat(f"r{i}", "refund") for i in range(6)] + [chat("c0", "complaint"), chat("c1", "complaint")]
    registry = {"input": "where is my parcel?", "ideal": "on its way", "intent": "ship"}
    data = write(tmp_path / "d.jsonl", [*rows, registry])
    done = split(str(data), "--by", "intent", "--test", "0.5", "--min-per-value", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "d-train.jsonl").read_text(encoding="utf-8").splitlines()]
    complaint = [line for line in lines if line.get("metadata", {}).get("intent") == "complaint"]
    assert len(complaint) == 4
    copies = [line for line in complaint if "oversampled_from" in line["metadata"]]
    assert len(copies) == 3 and {copy["metadata"]["oversampled_from"] for copy in copies} <= {"c0", "c1"}
    named = [line["id"] for line in lines if "id" in line]
    assert len(named) == len(lines) - 1 and len(set(named)) == len(named)  # every copy has an id of its own
    ship = [line for line in lines if line.get("intent") == "ship"]
    assert len(ship) == 4 and sum("oversampled_from" in line for line in ship) == 3


def test_a_bad_line_is_named_and_left_out_and_hostile_values_are_printed_inert(tmp_path: Path) -> None:
    data = write(tmp_path / "d.jsonl", [chat("a", "x\x1b[2J"), chat("b", "x\x1b[2J"), [1, 2]], extra="{not json\n")
    done = split(str(data), "--by", "intent", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "x\\x1b[2J" in done.stdout
    assert "left out: line 3: not a JSON object" in done.stdout and "left out: line 4:" in done.stdout
    assert len(ids(tmp_path / "d-train.jsonl")) + len(ids(tmp_path / "d-test.jsonl")) == 2


@pytest.mark.parametrize("args", [["--test", "1.5"], ["--test", "nan"], ["--min-per-value", "-1"]])
def test_a_share_or_count_out_of_range_is_refused(tmp_path: Path, args: list[str]) -> None:
    data = write(tmp_path / "d.jsonl", [chat("a", "x")])
    done = split(str(data), "--by", "intent", *args, cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "d-train.jsonl").exists()


def test_length_buckets_and_a_missing_key(tmp_path: Path) -> None:
    lines, skipped = read_lines(write(tmp_path / "d.jsonl", [chat("short", None, "hi"), chat("long", None, "x" * 1500)], extra="\n\n"))
    assert skipped == []
    assert [value_of(line.data, "length") for line in lines] == ["short (< 200 chars)", LONG]
    assert [value_of(line.data, "intent") for line in lines] == [NONE, NONE]
    assert stratified(lines, "length", 0.5, 0).counts == {"short (< 200 chars)": (1, 1, 0), LONG: (1, 1, 0)}
