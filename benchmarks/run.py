"""`python benchmarks/run.py`: 200 cases × (completion + factuality judge) against one local server that adds
0.2 s to every call, by us and by the tools we are compared with; then collection time and memory for
10,000 stored cases, and the plugin's overhead per case. Prints the figures, their ratios, the targets,
and the change against `benchmarks/baseline.json` (`--save-baseline` keeps this run's figures in it, the
others stay with their dates).

`python benchmarks/run.py --speed` is the run behind the speed figures of docs/speed.md: the asyncio lower bound,
the plain `assert factuality(model.complete(case), case.expected)` suite and the same suite with the
`distill_grade` marker, side by side in one run, with their ratios to the bound (wall time and client
CPU). Compare ratios within one run: on a shared machine the absolute figures move with the load.
`--cases N` shrinks the work while iterating; `--profile` runs the plain suite once under py-spy and
prints where the client's CPU goes.

Every variant is a whole process, start-up included, median of `--runs` after one warm-up; the runs go
round by round (each variant once a round), so that a machine whose speed drifts moves them alike. The peers
are installed on first use into `benchmarks/.peers/` (promptfoo from the npm registry, DeepEval into a
virtual environment of its own, so that its pytest plugin never loads into our runs); `--no-peers`
skips them. Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distill.sim import SimServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scale  # noqa: E402
from harness import Run, cases, environment, measure, median, passed_of_pytest, spread, write_jsonl  # noqa: E402
from peer_judges import peer_answer  # noqa: E402

LATENCY_S = 0.2
CASES = 200
SPEED = ("lower_bound", "ours_plain", "ours")
"""The variants of `--speed`: the bound and both forms of our suite."""
PLAIN_TARGET, CPU_TARGET = 1.15, 1.7
"""The plain form's wall time and client CPU, at most these multiples of the asyncio bound's."""
CONCURRENCY = 16
PEERS = HERE / ".peers"
BASELINE = HERE / "baseline.json"
QUIET_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1", "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
             "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
             "no_proxy": "127.0.0.1,localhost"}
"""Peers' telemetry off, and no way out but to the local server."""


@dataclass(frozen=True)
class Variant:
    name: str
    key: str
    command: Callable[[Path], list[str]]
    folder: str
    slow: bool = False
    passed: Callable[[str], str] = passed_of_pytest
    success: tuple[int, ...] = (0, 1)
    """Exit codes of a finished run (some cases failing included)."""


def json_passed(output: str) -> str:
    last = [line for line in output.splitlines() if line.startswith("{")][-1:] or ["{}"]
    data = json.loads(last[0])
    return f"{data.get('passed', '?')}/{data.get('n', '?')}"


def deepeval_passed(output: str) -> str:
    found = re.search(r"Passed: (\d+) \| Failed: (\d+)", output)
    return f"{found.group(1)}/{int(found.group(1)) + int(found.group(2))}" if found else "?"


def promptfoo_passed(output: str) -> str:
    passed, failed = re.search(r"(\d+) passed", output), re.search(r"(\d+) failed", output)
    return f"{passed.group(1)}/{int(passed.group(1)) + int(failed.group(1))}" if passed and failed else "?"


# -- the variants --------------------------------------------------------------------------------------


def pytest_command(*extra: str) -> Callable[[Path], list[str]]:
    return lambda _: [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra]


def variants(deepeval_python: str | None, promptfoo: Path | None) -> list[Variant]:
    found = [
        Variant("asyncio + semaphore 16, completion → judge (lower bound)", "lower_bound",
                lambda folder: [sys.executable, str(HERE / "lower_bound.py"), str(folder / "cases.jsonl"), str(CONCURRENCY)],
                "plain", passed=json_passed),
        Variant("pytest-distill --distill-concurrency 16 (distill_grade marker)", "ours",
                pytest_command("--distill-concurrency", str(CONCURRENCY)), "ours"),
        Variant("pytest-distill, plain assert (no marker)", "ours_plain",
                pytest_command("--distill-concurrency", str(CONCURRENCY)), "ours_plain"),
        Variant("pytest-distill -n 2 --dist worksteal, concurrency 8 each", "ours_xdist",
                pytest_command("-n", "2", "--dist", "worksteal", "--distill-concurrency", str(CONCURRENCY // 2)), "ours"),
        Variant("plain pytest, sequential, sync client", "plain_sequential", pytest_command("-p", "no:distill"), "plain", slow=True),
        Variant("plain pytest + xdist -n 4", "plain_xdist", pytest_command("-p", "no:distill", "-n", "4"), "plain", slow=True),
    ]
    if promptfoo is not None:
        found.append(Variant(f"promptfoo eval -j {CONCURRENCY}, factuality", "promptfoo",
                             lambda folder: [str(promptfoo / "node_modules" / ".bin" / "promptfoo"), "eval", "-c",
                                             str(folder / "promptfooconfig.yaml"), "-j", str(CONCURRENCY), "--no-cache"],
                             "promptfoo", passed=promptfoo_passed, success=(0, 100)))
    if deepeval_python is not None:
        found += [
            Variant("DeepEval `deepeval test run` + assert_test(GEval)", "deepeval_pytest",
                    lambda folder: [str(Path(deepeval_python).parent / "deepeval"), "test", "run", "test_deepeval.py"],
                    "deepeval", slow=True, passed=deepeval_passed),
            Variant(f"DeepEval async generation + evaluate(max_concurrent={CONCURRENCY})", "deepeval_evaluate",
                    lambda folder: [deepeval_python, str(HERE / "peers" / "deepeval_evaluate.py"), str(CONCURRENCY)],
                    "deepeval", passed=json_passed),
        ]
    return found


def lay_out(scratch: Path, rows: list[dict[str, Any]], server_url: str) -> None:
    """One folder per kind of suite, each with the cases beside it."""
    for folder in ("plain", "ours", "ours_plain", "promptfoo", "deepeval"):
        (scratch / folder).mkdir()
        write_jsonl(scratch / folder / "cases.jsonl", rows)
    shutil.copy(HERE / "suites" / "plain_suite.py", scratch / "plain" / "test_plain.py")
    suite = (HERE / "suites" / "distill_suite.py").read_text(encoding="utf-8")
    (scratch / "ours" / "test_distill.py").write_text(suite, encoding="utf-8")
    unmarked = "".join(line for line in suite.splitlines(keepends=True) if "distill_grade" not in line)
    (scratch / "ours_plain" / "test_distill.py").write_text(unmarked, encoding="utf-8")
    shutil.copy(HERE / "peers" / "deepeval_suite.py", scratch / "deepeval" / "test_deepeval.py")
    provider = {"apiBaseUrl": server_url}
    config = {"description": "200 cases x (completion + factuality)", "prompts": ["{{question}}"],
              "providers": [{"id": "openai:chat:gpt-4o-mini", "config": provider}],
              "defaultTest": {"options": {"provider": {"id": "openai:chat:gpt-4o", "config": provider}}},
              "tests": [{"vars": {"question": row["messages"][0]["content"], "expected": row["messages"][1]["content"]},
                         "assert": [{"type": "factuality", "value": "{{expected}}"}]} for row in rows]}
    (scratch / "promptfoo" / "promptfooconfig.yaml").write_text(json.dumps(config, indent=1), encoding="utf-8")


# -- the peers, installed on first use -------------------------------------------------------------------


def install_peers() -> tuple[str | None, Path | None]:
    """promptfoo (npm) and DeepEval (its own venv) under benchmarks/.peers; None for what cannot be installed."""
    PEERS.mkdir(exist_ok=True)
    promptfoo = PEERS / "promptfoo"
    if not (promptfoo / "node_modules" / ".bin" / "promptfoo").exists() and shutil.which("npm"):
        promptfoo.mkdir(exist_ok=True)
        print("installing promptfoo (npm install promptfoo) ...", flush=True)
        subprocess.run(["npm", "init", "-y"], cwd=promptfoo, capture_output=True, check=False)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "promptfoo"], cwd=promptfoo, capture_output=True, check=False)
    venv = PEERS / "deepeval-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print("installing DeepEval into benchmarks/.peers/deepeval-venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "deepeval"], capture_output=True, check=False)
    has_deepeval = python.exists() and subprocess.run([str(python), "-c", "import deepeval"], capture_output=True).returncode == 0
    return (str(python) if has_deepeval else None,
            promptfoo if (promptfoo / "node_modules" / ".bin" / "promptfoo").exists() else None)


# -- running and printing -------------------------------------------------------------------------------


def run_variants(chosen: list[Variant], scratch: Path, sim: SimServer, runs: int) -> dict[str, dict[str, Any]]:
    paths = (str(HERE), str(HERE / "peers"), os.environ.get("PYTHONPATH"))
    env = {**environment(scratch), **QUIET_ENV, "OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sk-bench-0000",
           "PYTHONPATH": os.pathsep.join(filter(None, paths)), "PROMPTFOO_CONFIG_DIR": str(scratch / "promptfoo-home"),
           "BENCH_CASES": "cases.jsonl"}
    commands = {variant.key: variant.command(scratch / variant.folder) for variant in chosen}
    for variant in chosen:
        print(f"· {variant.name}: {'1 run' if variant.slow else f'warm-up + {runs} run(s)'}", flush=True)
        if not variant.slow:
            measure(commands[variant.key], scratch / variant.folder, env, sim)
    done: dict[str, list[Run]] = {variant.key: [] for variant in chosen}
    # Round after round, each variant once: a machine that speeds up or slows down mid-run moves every
    # variant alike, so the ratios within one run hold.
    for round_ in range(runs):
        for variant in chosen:
            if round_ == 0 or not variant.slow:
                done[variant.key].append(measure(commands[variant.key], scratch / variant.folder, env, sim))
    figures: dict[str, dict[str, Any]] = {}
    for variant in chosen:
        middle = median(done[variant.key])
        if middle.returncode not in variant.success:
            print(f"  exit {middle.returncode}; last lines:\n    " + "\n    ".join(middle.output.splitlines()[-8:]))
        figures[variant.key] = {"name": variant.name, "wall_s": round(middle.wall_s, 2), "spread": spread(done[variant.key]),
                                "cpu_s": round(middle.cpu_s, 2), "max_in_flight": middle.peak_in_flight,
                                "passed": variant.passed(middle.output), "exit": middle.returncode}
    return figures


def table(figures: dict[str, dict[str, Any]], cases: int) -> list[str]:
    floor = cases * 2 * LATENCY_S / CONCURRENCY
    bound = figures.get("lower_bound", {})
    lines = [f"{'variant':<66} {'median s':>9} {'range':>12} {'÷ bound':>8} {'÷ floor':>8} {'in flight':>9} {'CPU s':>6} "
             f"{'CPU ÷ bound':>11}  passed"]
    for figure in figures.values():
        ratio = f"{figure['wall_s'] / bound['wall_s']:.2f}×" if bound else "-"
        cpu = f"{figure['cpu_s'] / bound['cpu_s']:.2f}×" if bound and bound["cpu_s"] else "-"
        lines.append(f"{figure['name']:<66} {figure['wall_s']:>9.2f} {figure['spread']:>12} {ratio:>8} "
                     f"{figure['wall_s'] / floor:>7.2f}× {figure['max_in_flight']:>9} {figure['cpu_s']:>6.2f} {cpu:>11}  "
                     f"{figure['passed']}")
    return lines


def targets(figures: dict[str, dict[str, Any]], overhead: dict[str, Any]) -> list[str]:
    lines = []
    ours, bound = figures.get("ours", {}).get("wall_s"), figures.get("lower_bound", {}).get("wall_s")
    for key, form in (("ours_plain", "plain assert"), ("ours", "distill_grade marker")):
        figure = figures.get(key)
        if figure and bound:
            ratio, cpu = figure["wall_s"] / bound, figure["cpu_s"] / figures["lower_bound"]["cpu_s"]
            lines.append(f"ours, {form} ÷ asyncio lower bound: {ratio:.2f}× wall (target ≤ {PLAIN_TARGET}×: "
                         f"{'met' if ratio <= PLAIN_TARGET else 'NOT met'}), {cpu:.2f}× client CPU "
                         f"(target ≤ {CPU_TARGET}×: {'met' if cpu <= CPU_TARGET else 'NOT met'})")
    for key in ("promptfoo", "deepeval_evaluate", "deepeval_pytest", "plain_sequential"):
        peer = figures.get(key, {}).get("wall_s")
        if ours and peer:
            lines.append(f"{figures[key]['name']} ÷ ours: {peer / ours:.2f}×  (target ≥ 3×: {'met' if peer / ours >= 3 else 'NOT met'})")
    if "promptfoo" in figures and ours:
        cpu_ours, cpu_peer = figures["ours"]["cpu_s"], figures["promptfoo"]["cpu_s"]
        lines.append(f"client CPU: ours {cpu_ours:.2f} s, promptfoo {cpu_peer:.2f} s")
    per_case = overhead.get("per_case_ms")
    if per_case is not None:
        lines.append(f"plugin overhead per case at {overhead['cases']} cases: {per_case:.3f} ms with a cached model call, "
                     f"{overhead['per_case_bare_ms']:.3f} ms with `case` only  (target < 1 ms: "
                     f"{'met' if per_case < 1 else 'NOT met'})")
    return lines


def against_baseline(current: dict[str, Any]) -> list[str]:
    if not BASELINE.exists():
        return ["no baseline yet: run with --save-baseline to keep this run as one"]
    old = json.loads(BASELINE.read_text(encoding="utf-8"))
    lines = [f"against the baseline ({old.get('machine', '?')}; each figure's date in brackets):"]
    for key, figure in current["variants"].items():
        kept = old.get("variants", {}).get(key, {})
        before = kept.get("wall_s")
        if before:
            lines.append(f"  {figure['name']:<66} {before:>7.2f} s → {figure['wall_s']:>7.2f} s ({figure['wall_s'] / before - 1:+.0%})"
                         f"  [{kept.get('when', old.get('when', '?'))}]")
    for key, value in current["scale"].items():
        before = old.get("scale", {}).get(key)
        if isinstance(value, (int, float)) and before:
            when = old.get("scale_when", old.get("when", "?"))
            lines.append(f"  {key:<66} {before:>9} → {value:>9} ({value / before - 1:+.0%})  [{when}]")
    return lines


def save_baseline(current: dict[str, Any]) -> None:
    """Keep this run's figures as the baseline, each variant dated: a partial run (`--speed`, `--only`,
    no peers) replaces the figures it measured and keeps the others, with their own dates."""
    old = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.exists() else {}
    variants = {key: {"when": figure.get("when", old.get("when", "?")), **figure} for key, figure in old.get("variants", {}).items()}
    variants.update({key: {"when": current["when"], **figure} for key, figure in current["variants"].items()})
    kept = {"when": current["when"], "machine": current["machine"], "variants": variants,
            "scale": current["scale"] or old.get("scale", {}),
            "scale_when": current["when"] if current["scale"] else old.get("scale_when", old.get("when", "?"))}
    BASELINE.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved as {BASELINE}")


def profile(scratch: Path, sim: SimServer) -> int:
    """The plain suite once under py-spy (every thread: the test thread, the runtime's loop, the judge
    workers), sampling only the thread that holds the GIL: the samples are the client's Python CPU, and
    a thread waiting (in a lock, a queue, a select) is never counted. Prints where they fall, by thread,
    then by function: own time and time inside."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: pip install py-spy (the [dev] extra)")
        return 1
    out = scratch / "plain.stacks"
    env = {**environment(scratch), **QUIET_ENV, "OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sk-bench-0000"}
    suite = pytest_command("--distill-concurrency", str(CONCURRENCY))(scratch)
    measure(suite, scratch / "ours_plain", env, sim)  # a warm-up: compiled files in place, as in the timed runs
    command = [spy, "record", "--gil", "--threads", "-r", "100", "-f", "raw", "-o", str(out), "--", *suite]
    run = measure(command, scratch / "ours_plain", env, sim)
    print(f"plain suite under py-spy: {run.wall_s:.2f} s wall, {run.cpu_s:.2f} s CPU, exit {run.returncode}")
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for line in out.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or len(frames) < 2:
            continue
        threads[re.sub(r"thread \(\d+\): |_\d+$", "", frames[0])] += int(count)  # a pool's threads as one
        own[frames[-1]] += int(count)
        for frame in set(frames[1:]):
            inside[frame] += int(count)
    total = sum(threads.values()) or 1
    ours = Counter({frame: count for frame, count in inside.items() if "pytest_distill/" in frame})
    for title, counter in (("busy samples by thread", threads), ("own time", own), ("time inside", inside),
                           ("time inside the plugin's functions", ours)):
        print(f"\n{title} (share of {total} busy samples):")
        for frame, samples in counter.most_common(25):
            print(f"  {samples / total:6.1%}  {frame}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each fast variant, after one warm-up (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run each, no slow variants (sequential ones), smaller scale part")
    parser.add_argument("--no-peers", action="store_true", help="skip promptfoo and DeepEval")
    parser.add_argument("--only", action="append", default=[], help="run only these variant keys (repeatable)")
    parser.add_argument("--save-baseline", action="store_true", help="keep this run's figures in benchmarks/baseline.json")
    parser.add_argument("--speed", action="store_true", help="only the asyncio bound, the plain and the marked suite")
    parser.add_argument("--cases", type=int, default=CASES, help=f"cases of the work (default {CASES})")
    parser.add_argument("--profile", action="store_true", help="profile the plain suite once (py-spy) and print the top")
    args = parser.parse_args()
    only = list(SPEED) if args.speed else args.only
    deepeval_python, promptfoo = (None, None) if args.no_peers or args.speed or args.profile else install_peers()
    chosen = [v for v in variants(deepeval_python, promptfoo)
              if (not only or v.key in only) and not (args.quick and v.slow)]
    runs = 1 if args.quick else args.runs
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    rows = cases(args.cases)
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as folder:
        scratch = Path(folder)
        with SimServer(seed=[write_jsonl(scratch / "seed.jsonl", rows)], latency_s=LATENCY_S, answerers=[peer_answer]) as sim:
            lay_out(scratch, rows, sim.url)
            if args.profile:
                return profile(scratch, sim)
            figures = run_variants(chosen, scratch, sim, runs)
        sizes = scale.measure_scale(scratch / "scale", 2_000 if args.quick else 10_000) if not only else {}
    print(f"\n{args.cases} cases × (completion + factuality judge), server latency {LATENCY_S} s, concurrency {CONCURRENCY}; "
          f"floor {args.cases * 2 * LATENCY_S / CONCURRENCY:.1f} s = {args.cases * 2} calls × {LATENCY_S} s ÷ {CONCURRENCY}; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n".join(table(figures, args.cases)))
    if sizes:
        print("\n" + "\n".join(scale.lines(sizes)))
    print("\n" + "\n".join(targets(figures, sizes)))
    current = {"when": scale.today(), "machine": f"{os.cpu_count()} CPUs", "variants": figures,
               "scale": {key: value for key, value in sizes.items() if isinstance(value, (int, float))}}
    print("\n" + "\n".join(against_baseline(current)))
    if args.save_baseline:
        save_baseline(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
