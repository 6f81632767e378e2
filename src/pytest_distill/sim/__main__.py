"""`python -m pytest_distill.sim`: run the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .seed import SeedError
from .server import SimServer


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, serve, print the banner, and stop cleanly on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; beyond loopback "
                        "only with --allow-remote)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host beyond loopback, and requests whose Host header names anything but "
                        "localhost, 127.x or [::1]: anyone who reaches it can use it, and it has no real authentication")
    parser.add_argument("--api-key", metavar="KEY",
                        help="accept only this bearer token, on /v1 and on the admin endpoints (default: any key on "
                        "/v1; the admin endpoints take a random key that the banner prints)")
    parser.add_argument("--seed", type=Path, action="append", default=[], metavar="FILE.jsonl",
                        help="JSONL whose cases become stored teacher completions: chat-format lines, or openai/evals "
                        "registry lines (input, ideal: the first ideal is the answer); a test file that `evals import` "
                        "wrote stands for its dataset (repeatable)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay of every answer")
    parser.add_argument("--job-seconds", type=float, default=3.0, metavar="SECONDS",
                        help="how long a fine-tuning job takes (default 3)")
    parser.add_argument("--fine-tune", action="append", default=[], metavar="ft:BASE:ORG:SUFFIX:ID",
                        help="a fine-tuned model that exists from the start, as if trained on the seeded answers "
                        "(repeatable): an account's old fine-tunes, for `python -m pytest_distill.exit inventory`")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep uploaded files and fine-tuning jobs here, so fine-tuned models outlive a restart")
    args = parser.parse_args(argv)
    try:
        server = SimServer(args.seed, latency_s=args.latency, job_seconds=args.job_seconds, host=args.host, port=args.port,
                           state_dir=args.state_dir, api_key=args.api_key, allow_remote=args.allow_remote,
                           fine_tunes=args.fine_tune)
        server.start()
    except (SeedError, OSError, ValueError) as exc:
        print(f"pytest-distill simulator: {exc}", file=sys.stderr)
        return 2
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    print(banner(server, args.seed), flush=True)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("pytest-distill simulator stopped.", flush=True)
    return 0


def banner(server: SimServer, seeds: Sequence[Path]) -> str:
    """What the simulator is, where it listens, and how to point a client at it."""
    sources = ", ".join(map(str, seeds)) or "no seed files"
    return "\n".join(
        [
            f"pytest-distill simulator: an offline OpenAI-compatible API at {server.url}",
            f"{server.seeded} stored completion(s) seeded from {sources}.",
            "Its models are deterministic stand-ins: its scores measure wiring, not model quality.",
            f"export OPENAI_BASE_URL={server.url}",
            "export OPENAI_API_KEY=sk-sim  # any key is accepted" if server.api_key is None
            else "export OPENAI_API_KEY=<the key given with --api-key>",
            "Admin endpoints (/_sim/...) take: Authorization: Bearer "
            + (server.admin_key if server.api_key is None else "<the key given with --api-key>"),
            "Press Ctrl-C to stop.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
