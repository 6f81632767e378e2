"""The record of trainings started from this project, kept in pytest's cache directory.

Keyed by a fingerprint of what is trained (backend, student, training and validation data,
hyperparameters), it is how a second `--distill` on the same data finds the job the first one
started instead of paying for another. Two runs that end at the same moment take turns under a file
lock beside the record, so the second one finds the first one's job instead of creating its own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .backends import TrainingRequest, TrainingRun

KEY = "distill/trainings"
LOCK = "trainings.lock"


def fingerprint(backend: str, request: TrainingRequest, validation_sha256: str | None) -> str:
    """The same data, student and settings give the same fingerprint; the run's own tags do not count."""
    what = {"backend": backend, "student": request.student, "training": request.training_sha256,
            "validation": validation_sha256, "suffix": request.suffix, "epochs": request.epochs,
            "learning_rate": request.learning_rate, "batch_size": request.batch_size}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


class TrainingRecord:
    """Fingerprint -> the run it started (id, status, model) and the training file's hash."""

    def __init__(self, cache: pytest.Cache | None) -> None:
        self.cache = cache

    @property
    def available(self) -> bool:
        return self.cache is not None

    @contextmanager
    def claimed(self, say: Callable[[str], None]) -> Iterator[None]:
        """Hold the project's training lock (across processes) while the record is read, a training is
        started and the record is written; say so when another run holds it. Without pytest's cache
        there is no record to share, and no lock."""
        if self.cache is None:
            yield
            return
        import filelock  # imported when a run distills: every session loads this plugin

        lock = filelock.FileLock(self.cache.mkdir("distill") / LOCK)
        try:
            lock.acquire(blocking=False)
        except filelock.Timeout:
            say(f"another run of this project is starting a training: waiting for it ({lock.lock_file})")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def find(self, key: str) -> TrainingRun | None:
        entry = self._all().get(key)
        run = entry.get("run") if isinstance(entry, dict) else None
        return TrainingRun.from_dict(run) if isinstance(run, dict) else None

    def save(self, key: str, run: TrainingRun, training_sha256: str) -> None:
        if self.cache is None:
            return
        entries = self._all()
        entries[key] = {"run": run.to_dict(), "training_sha256": training_sha256, "updated": int(time.time())}
        self.cache.set(KEY, entries)

    def _all(self) -> dict[str, Any]:
        entries = self.cache.get(KEY, {}) if self.cache is not None else {}
        return entries if isinstance(entries, dict) else {}
