"""`python benchmarks/big_files.py`: a 200 MB dataset (20 lines of 10 MB) collected serially and under
`-n 2`, and a 100 MB baseline read (docs/speed.md, "Big files").

Each figure is one whole process (start-up included): its wall time, CPU (with its children's) and the
peak memory of its largest process. Under `-n 2` a small conftest reads what each worker says of the
dataset (`workeroutput`): how many parsed it and how many read another worker's parse. To measure
other code (a "before"), run this file with `PYTHONPATH` pointing at that checkout's `src`. Not a test:
CI never runs it, and nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Run, environment, measure  # noqa: E402

LINES, LINE_MB = 20, 10
BASELINE_MB = 100
SUITE = """
import pytest

@pytest.mark.distill_dataset("big.jsonl")
def test_case(case):
    assert case.expected
"""
NODES = """
import json

def pytest_testnodedown(node, error):
    with open("nodes.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps([len(node.workeroutput.get(key, ())) if key in node.workeroutput else None
                              for key in ("distill_datasets_parsed", "distill_datasets_read")]) + "\\n")
"""
LOAD = "import sys; from pathlib import Path; from pytest_distill.report import baseline; baseline.load(Path(sys.argv[1]))"
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider")


def dataset(folder: Path, lines: int, line_mb: int) -> Path:
    """Chat-format lines of `line_mb` MB each: prose with a few non-ASCII words, as real text has."""
    folder.mkdir(parents=True)
    words = ("the expedition reached the station in the winter of that year, and Grüße from the crew " * 12_000)
    with (folder / "big.jsonl").open("w", encoding="utf-8") as out:
        for index in range(lines):
            text = (words * (line_mb * 2**20 // len(words) + 1))[:line_mb * 2**20]
            out.write(json.dumps({"id": f"c{index}", "messages": [{"role": "user", "content": f"{index}: {text}"},
                                                                  {"role": "assistant", "content": f"answer {index}"}]},
                                 ensure_ascii=False) + "\n")
    (folder / "test_big.py").write_text(SUITE, encoding="utf-8")
    (folder / "conftest.py").write_text(NODES, encoding="utf-8")
    (folder / "pytest.ini").write_text(f"[pytest]\ndistill_max_line_bytes = {(line_mb + 1) * 2**20}\n", encoding="utf-8")
    return folder


def baseline_file(path: Path, megabytes: int) -> Path:
    """A results file as a run writes it (`results.write`), of records with 2 KB answers, to `megabytes` MB."""
    from pytest_distill.report import results

    record = {"nodeid": "", "case_id": "", "model": "gpt-4o", "output": "An answer of some length. " * 80, "latency_s": 0.8,
              "error": None, "outcome": "passed", "sample": 0, "usage": {"prompt_tokens": 120, "completion_tokens": 400},
              "grades": [{"name": "factuality", "score": 1.0, "passed": True, "reason": "The answer agrees with the reference."}],
              "judging": {"factuality": ["gpt-4o", 300, 40]}}
    size = len(json.dumps(record, indent=2)) + 60
    count = megabytes * 2**20 // size
    cases = [{**record, "nodeid": f"test_qa.py::test_answer[q{index}-gpt-4o]", "case_id": f"q{index}",
              "grades": [{**record["grades"][0], "passed": index % 7 != 0}]} for index in range(count)]  # type: ignore[index]
    results.write(path, {"version": 1, "run": {"simulator": False}, "cases": cases, "summary": {}})
    return path


def collect(folder: Path, env: dict[str, str], workers: list[str]) -> tuple[Run, str]:
    (folder / "nodes.jsonl").unlink(missing_ok=True)
    run = measure([*PYTEST, *workers], folder, env)
    if run.returncode != 0:
        print("\n".join(run.output.splitlines()[-15:]))
    nodes = folder / "nodes.jsonl"
    said = [json.loads(line) for line in nodes.read_text(encoding="utf-8").splitlines()] if nodes.exists() else []
    if not said:
        return run, "-"
    if any(parsed is None for parsed, _ in said):
        return run, f"{len(said)} workers, each parsed it (they say nothing of it)"
    return run, f"parsed by {sum(parsed for parsed, _ in said)} of {len(said)} workers, read by {sum(read for _, read in said)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--line-mb", type=int, default=LINE_MB, help=f"MB a dataset line (default {LINE_MB})")
    parser.add_argument("--baseline-mb", type=int, default=BASELINE_MB, help=f"MB of baseline (default {BASELINE_MB})")
    parser.add_argument("--write-baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_baseline:
        baseline_file(args.write_baseline, args.baseline_mb)
        return 0
    import pytest_distill

    print(f"measuring {Path(pytest_distill.__file__).parent}")
    scratch = Path(tempfile.mkdtemp(prefix="distill-big-"))
    figures: list[tuple[str, Run, str]] = []
    try:
        env = environment(scratch)
        folder = dataset(scratch / "project", LINES, args.line_mb)
        size = (folder / "big.jsonl").stat().st_size / 2**20
        measure([*PYTEST, "--collect-only"], folder, env)  # compiled files in place
        for label, workers in (("serial", []), ("-n 2", ["-n", "2"])):
            run, said = collect(folder, env, workers)
            figures.append((f"{size:.0f} MB dataset ({LINES} lines), {label}", run, said))
        # Written by a process of its own: a child forked from a process that held the records would count
        # that memory in its own peak (Linux keeps the parent's high-water mark across fork and exec).
        base = scratch / "base.json"
        subprocess.run([sys.executable, __file__, "--write-baseline", str(base), "--baseline-mb", str(args.baseline_mb)],
                       check=True)
        size = base.stat().st_size / 2**20
        run = measure([sys.executable, "-c", LOAD, str(base)], scratch, env)
        figures.append((f"{size:.0f} MB baseline read", run, "" if run.returncode == 0 else run.output.splitlines()[-1]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'what':<40} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}  dataset")
    for label, run, said in figures:
        print(f"{label:<40} {run.wall_s:>8.2f} {run.cpu_s:>8.2f} {run.max_rss_mb:>8.0f}  {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
