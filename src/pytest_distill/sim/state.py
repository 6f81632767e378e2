"""The simulator's memory across restarts: uploaded files and fine-tuning jobs, in one JSON file.

A pytest session with `--distill-sim` starts a fresh simulator; without this, a model fine-tuned in
one session would not exist in the next, and the loop (evaluate, distill and wait, re-run on the
distilled model) could not run offline. Jobs follow the wall clock, so a job started before a
restart finishes after it as it would have.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FILENAME = "sim-state.json"


class StateFile:
    """`<state_dir>/sim-state.json`, read once at start and rewritten whole after every change."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILENAME
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        """The kept state; none yet (or an unreadable file) is an empty state, so the simulator starts."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def save(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Write the state atomically; taking the snapshot under the lock keeps the newest one last."""
        with self._lock:
            text = json.dumps(snapshot(), ensure_ascii=False)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILENAME}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
