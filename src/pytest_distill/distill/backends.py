"""Who trains the student: the small interface every training backend implements.

The gate, the checked training file and the record of earlier trainings are the same for every
backend; a backend only turns a `TrainingRequest` into a `TrainingRun`, tells how an earlier run
stands, and follows a run to its end. `openai` runs a fine-tuning job on the API (or any server
with its fine-tuning endpoints). A backend is a module of this package listed in `BACKENDS`, with
a `make(context) -> Trainer` and, if it can tell at start-up that it cannot run (a missing extra, a
student it cannot train), a `check(settings)` that raises `TrainingError`. It is imported only when
chosen, so its dependencies stay optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from ..errors import DistillError
from ..models.client import ModelRuntime
from ..settings import Settings

BACKENDS: dict[str, str] = {"openai": "openai_jobs", "trl": "trl_backend"}
"""Backend name (`--distill-backend`) -> module in this package."""
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
FINGERPRINT = "fingerprint"
"""The metadata key of a job that holds its training's fingerprint (the same data, student and settings):
how a run finds the job another checkout started for the same training."""


class TrainingError(DistillError):
    """Training could not be started or followed; the message is for the user."""


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: a checked chat-format file, the student, and how."""

    training_file: Path
    training_sha256: str
    examples: int
    validation_file: Path | None
    student: str
    suffix: str | None
    seed: int
    metadata: dict[str, str]
    epochs: int | None
    learning_rate: float | None
    batch_size: int | None


@dataclass(frozen=True)
class TrainingRun:
    """One training as its backend reports it; `model` is what `--model` takes once it succeeded."""

    backend: str
    id: str
    status: str
    model: str | None = None
    error: str | None = None
    trained_tokens: int | None = None

    @property
    def active(self) -> bool:
        return self.status not in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRun | None:
        """A run as `to_dict` wrote it into the training record, a file in pytest's cache: None when it is
        damaged (a field of the wrong kind), which the record then treats as no run at all."""
        backend, id_, status, model, error, tokens = (data.get(key) for key in (
            "backend", "id", "status", "model", "error", "trained_tokens"))
        if not (isinstance(backend, str) and isinstance(id_, str) and isinstance(status, str) and backend and id_ and status):
            return None
        if not ((model is None or isinstance(model, str)) and (error is None or isinstance(error, str))
                and (tokens is None or (isinstance(tokens, int) and not isinstance(tokens, bool)))):
            return None
        return cls(backend, id_, status, model, error, tokens)


@dataclass(frozen=True)
class TrainerContext:
    """What a backend may use: the settings, the process's model runtime, a line to the terminal."""

    settings: Settings
    runtime: ModelRuntime
    say: Callable[[str], None]


class Trainer(Protocol):
    """A training backend. Only the xdist controller ever calls it, once per session."""

    name: str

    def start(self, request: TrainingRequest) -> TrainingRun:
        """Start training (or train, for a backend that runs in this process) and report the run."""

    def refresh(self, run: TrainingRun) -> TrainingRun:
        """How an earlier run stands now."""

    def live(self, request: TrainingRequest) -> TrainingRun | None:
        """A run of the same training still under way where this backend trains, started elsewhere
        (another checkout, a CI job): followed instead of starting a second; None when there is none."""

    def cancel(self, run: TrainingRun) -> None:
        """Cancel a run this process just started that lost a race to one started elsewhere."""

    def follow(self, run: TrainingRun, timeout_s: float) -> TrainingRun:
        """Report progress until the run finishes or `timeout_s` passes; Ctrl-C propagates."""


def check_backend(settings: Settings) -> None:
    """Fail at start-up, before any model is called: an unknown name, or a backend that cannot run."""
    check = getattr(_module(settings.backend), "check", None)
    if check is not None:
        check(settings)


def make_trainer(name: str, context: TrainerContext) -> Trainer:
    """The backend of that name, its module imported now."""
    trainer: Trainer = _module(name).make(context)
    return trainer


def _module(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise TrainingError(f"--distill-backend {name!r} is not one of {', '.join(BACKENDS)}")
    return importlib.import_module(f".{BACKENDS[name]}", __package__)
