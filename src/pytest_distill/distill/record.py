"""The record of trainings started from this project, kept in pytest's cache directory.

Keyed by a fingerprint of what is trained (backend, student, training and validation data,
hyperparameters), it is how a second `--distill` on the same data finds the job the first one
started instead of paying for another.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from .backends import TrainingRequest, TrainingRun

KEY = "distill/trainings"


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
