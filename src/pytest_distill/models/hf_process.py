"""`hf:` models in a process of their own, so that they never slow the API calls of the same session.

Loading and generating with torch in the runtime's process held the GIL and every core: beside an
`hf:` model, an API model's latency grew from 0.06 s to 22 s, and a side-by-side table lied. Here the
models live in one child process (`python -m pytest_distill.models.hf_process`), which loads each
model once and answers one request at a time over a pipe of JSON lines, with torch bounded to all
cores but one, at a lower priority (nice 10). The caller's thread waits on the pipe without the GIL; the event loop and the other
calls go on. An error in the child (a model that cannot load, a prompt too long) comes back as the
same `ModelError`; a child that dies is an error of the calls that were waiting on it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from .types import Completion, ModelError, Usage

ENDPOINT = "hf generate"
NICE = 10
"""The child runs at a lower priority: its generating is throughput, the session's API calls are waited for."""
TAIL = 20
"""Lines of the child's stderr kept, to say why it died."""


def torch_threads() -> int:
    """All cores but one: the one left keeps the session's own work (the API calls) going."""
    return max(1, (os.cpu_count() or 2) - 1)


class ModelProcess:
    """The `hf:` models of one runtime, answered by a child process started at the first call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=TAIL)

    def chat(self, name: str, messages: Sequence[dict[str, Any]], params: dict[str, Any]) -> Completion:
        request = json.dumps({"name": name, "messages": list(messages), "params": params}, ensure_ascii=False)
        with self._lock:
            child = self._start()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(request + "\n")
                child.stdin.flush()
                line = child.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                self._child = None
                raise ModelError(name, ENDPOINT, self._died(child))
        reply = json.loads(line)
        if "error" in reply:
            error = reply["error"]
            raise ModelError(name, error["endpoint"], error["message"])
        return Completion(text=reply["text"], model=name, usage=Usage(*reply["usage"]), latency_s=reply["latency_s"],
                          served_model=name)

    def close(self) -> None:
        """Stop the child (it ends when its input closes); safe twice."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _start(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            self._stderr.clear()
            self._child = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            threading.Thread(target=self._drain, args=(self._child.stderr,), daemon=True, name="hf-stderr").start()
        return self._child

    def _drain(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            self._stderr.append(line.rstrip())

    def _died(self, child: subprocess.Popen[str]) -> str:
        try:
            code = child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        said = [line for line in self._stderr if line.strip()]
        return f"the process that runs hf: models ended (exit code {code})" + (f": {said[-1]}" if said else "")


def serve() -> None:
    """The child: answer each request line on stdin with one reply line, until stdin closes. Anything a
    library prints goes to stderr: stdout carries the replies alone."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from .hf import LocalModels, missing_packages

    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        os.nice(NICE)
    if not missing_packages(("torch",)):
        import torch

        torch.set_num_threads(torch_threads())
    models = LocalModels()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = models.chat(request["name"], request["messages"], request["params"])
        except ModelError as exc:
            reply: dict[str, Any] = {"error": {"endpoint": exc.endpoint, "message": exc.message}}
        except Exception as exc:  # what torch or transformers raise that no check foresaw: this call's error
            reply = {"error": {"endpoint": ENDPOINT, "message": f"{type(exc).__name__}: {exc}"}}
        else:
            reply = {"text": answer.text, "usage": [answer.usage.prompt_tokens, answer.usage.completion_tokens],
                     "latency_s": answer.latency_s}
        replies.write(json.dumps(reply, ensure_ascii=False) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
