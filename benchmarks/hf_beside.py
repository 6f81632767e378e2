"""`python benchmarks/hf_beside.py`: is an API model's latency true beside an `hf:` model of the same session?

An API model (the simulator, with a fixed server latency) is asked `--calls` questions one after
another: alone; beside an `hf:` model generating all the while in the runtime's own `hf:` process (how
the plugin runs it); and beside the same model generating in a thread of this process (how it ran
before, for comparison). Prints the API model's p50 latency in each case and its ratio to alone: the
target is at most 1.5x. The `hf:` model is the tests' tiny offline Llama (tests/toy_model.py) unless
`--model hf:PATH` names another. Not a test: a timing threshold in a test would be flaky.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from pytest_distill.models.client import ModelRuntime  # noqa: E402
from pytest_distill.models.hf import LocalModels  # noqa: E402
from pytest_distill.sim import SimServer  # noqa: E402

QUESTION = [{"role": "user", "content": "ホバンヌの1チームは何人ですか？"}]
TARGET = 1.5


def p50(runtime: ModelRuntime, calls: int, offset: int) -> float:
    """The median latency of `calls` distinct API calls, one after another, as the caller waits for them."""
    latencies = []
    for index in range(calls):
        started = time.perf_counter()
        runtime.chat("gpt-4o", [{"role": "user", "content": f"question {offset + index}"}])
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


def beside(generate: Callable[[int], object], measure: Callable[[], float]) -> float:
    """`measure()` while `generate(sample)` runs again and again in a thread until it is done."""
    stop = threading.Event()

    def busy() -> None:
        sample = 0
        while not stop.is_set():
            generate(sample)
            sample += 1

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        return measure()
    finally:
        stop.set()
        worker.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.05, help="the simulator's latency per answer (seconds)")
    parser.add_argument("--model", help="the hf: model (default: the tests' toy Llama, built here)")
    parser.add_argument("--hidden", type=int, default=1536, help="the toy Llama's hidden size: larger weighs on torch as a "
                        "real model does (default 1536)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model
        if model is None:
            from tests.support import HOBANNU
            from tests.toy_model import build_toy_model, texts_of

            model = f"hf:{build_toy_model(Path(folder) / 'toy', texts_of(HOBANNU), hidden_size=args.hidden)}"
        server = SimServer(latency_s=args.latency, api_key="sk-bench").start()
        runtime = ModelRuntime(base_url=server.url, api_key="sk-bench")
        try:
            runtime.chat(model, QUESTION, max_tokens=1)  # loaded in its process before anything is timed
            alone = p50(runtime, args.calls, 0)
            separate = beside(lambda sample: runtime.chat(model, QUESTION, sample=sample, temperature=1.0, max_tokens=64),
                              lambda: p50(runtime, args.calls, args.calls))
            local = LocalModels()
            local.chat(model, QUESTION, {"max_tokens": 1})
            in_thread = beside(lambda sample: local.chat(model, QUESTION, {"temperature": 1.0, "max_tokens": 64, "seed": sample}),
                               lambda: p50(runtime, args.calls, 2 * args.calls))
        finally:
            runtime.close()
            server.stop()
    print(f"API model p50 latency over {args.calls} calls (server latency {args.latency:g} s), beside {model}:")
    for label, value in (("alone", alone), ("beside hf: in its own process (the plugin)", separate),
                         ("beside hf: in a thread of this process (before)", in_thread)):
        print(f"  {label:48} {value:.3f} s  {value / alone:.2f}x")
    verdict = "met" if separate / alone <= TARGET else "NOT met"
    print(f"target: at most {TARGET}x beside an hf: model: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
