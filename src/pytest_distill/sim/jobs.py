"""Fine-tuning jobs whose state follows the clock.

A job's whole life (validating_files -> queued -> running -> succeeded, or failed after
validation) is laid out when it is created and read off the clock on every request, so no
background thread is needed and a job is always consistent with its own events.
"""

from __future__ import annotations

import builtins
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jsonl import BadLine, parse_jsonl
from .chatformat import Example, FormatError, example_of, message_text
from .errors import bad_request, not_found
from .ids import random_id, stable_id
from .models import FineTune, TrainedAnswers
from .text import count_tokens, stable_fraction

MIN_TRAINING_EXAMPLES = 10
# Defaults the real API picks for "auto" on a small chat dataset.
AUTO_HYPERPARAMETERS: dict[str, int | float] = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
# Fractions of `job_seconds` at which a job leaves validating_files and queued.
VALIDATED_AT = 0.15
STARTED_AT = 0.3
METRIC_EVENTS = 10
# What a job is made of, less its file check (which is read again from the file on restore).
STATE_FIELDS = ("id", "created", "duration", "model", "training_file", "validation_file", "suffix", "seed",
                "metadata", "integrations", "hyperparameters", "cancelled_at")


@dataclass(frozen=True)
class TrainingCheck:
    """A training (or validation) file read like the real API reads it: examples, or why not."""

    examples: list[Example]
    error: dict[str, Any] | None


def check_training_file(data: bytes, *, param: str, minimum: int) -> TrainingCheck:
    """Validate a chat-format JSONL file; the error is the job's `error` object `{code, message, param}`."""
    kind = "Training" if param == "training_file" else "Validation"
    examples = []
    for line in parse_jsonl(data):
        try:
            if isinstance(line, BadLine):
                raise FormatError(line.problem)
            examples.append(example_of(line.data))
        except FormatError as exc:
            message = f"Invalid file format. Line {line.number}: {exc}."
            return TrainingCheck([], _file_error("invalid_file_format", message, param))
    if len(examples) < minimum:
        message = f"{kind} file has {len(examples)} example(s), but must have at least {minimum} examples"
        return TrainingCheck(examples, _file_error("invalid_n_examples", message, param))
    return TrainingCheck(examples, None)


def check_job_files(training: bytes, validation: bytes | None) -> TrainingCheck:
    """A job's training file, then its validation file, as the job reads them while validating."""
    check = check_training_file(training, param="training_file", minimum=MIN_TRAINING_EXAMPLES)
    if validation is not None and check.error is None:
        return TrainingCheck(check.examples, check_training_file(validation, param="validation_file", minimum=1).error)
    return check


def hyperparameters_problem(hyperparameters: object) -> str | None:
    """Why the hyperparameters break the spec's ranges, or None."""
    if not isinstance(hyperparameters, Mapping):
        return "hyperparameters must be an object"
    limits = {"n_epochs": (1, 50), "batch_size": (1, 256)}
    for name, value in hyperparameters.items():
        if name not in AUTO_HYPERPARAMETERS:
            return f"Unknown hyperparameter: {name}"
        if value == "auto":
            continue
        if name in limits:
            low, high = limits[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                return f"{name} must be 'auto' or an integer from {low} to {high}"
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            return f"{name} must be 'auto' or a number above 0"
    return None


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:<base snapshot>:sim:<suffix>:<8 chars>`; a fine-tune of a fine-tune keeps the root base."""
    root = base.split(":")[1] if base.startswith("ft:") else base
    return f"ft:{root}:sim:{suffix or ''}:{stable_id('', job_id, length=8)}"


@dataclass(frozen=True)
class Event:
    """A job event, `at` seconds after the job's creation."""

    at: float
    message: str
    level: str = "info"
    type: str = "message"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """One fine-tuning job; `view` and `events` read its state off the clock."""

    id: str
    created: float
    duration: float
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    integrations: list[Any] | None
    hyperparameters: dict[str, Any]
    check: TrainingCheck
    cancelled_at: float | None = None

    def state(self) -> dict[str, Any]:
        """The job as JSON, for a simulator that keeps its state across restarts."""
        return {name: getattr(self, name) for name in STATE_FIELDS}

    @property
    def fine_tuned_model(self) -> str:
        """The name the model gets if the job succeeds."""
        return fine_tuned_name(self.model, self.suffix, self.id)

    @property
    def resolved_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters with "auto" replaced by what the job trains with."""
        chosen = self.hyperparameters.items()
        return {name: AUTO_HYPERPARAMETERS[name] if value == "auto" else value for name, value in chosen}

    def status(self, now: float) -> str:
        """validating_files, queued, running, succeeded, failed or cancelled at time `now`."""
        if self.cancelled_at is not None:
            return "cancelled"
        elapsed = now - self.created
        if elapsed < VALIDATED_AT * self.duration:
            return "validating_files"
        if self.check.error:
            return "failed"
        if elapsed < STARTED_AT * self.duration:
            return "queued"
        return "running" if elapsed < self.duration else "succeeded"

    def view(self, now: float) -> dict[str, Any]:
        """The real `fine_tuning.job` object at time `now`."""
        status = self.status(now)
        started = status in ("running", "succeeded")
        hyperparameters = self.resolved_hyperparameters if started else self.hyperparameters
        finished = {
            "succeeded": self.created + self.duration,
            "failed": self.created + VALIDATED_AT * self.duration,
            "cancelled": self.cancelled_at,
        }.get(status)
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": int(self.created),
            "finished_at": int(finished) if finished is not None else None,
            "fine_tuned_model": self.fine_tuned_model if status == "succeeded" else None,
            "organization_id": "org-sim",
            "result_files": [],
            "status": status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": hyperparameters,
            "trained_tokens": self.trained_tokens if status == "succeeded" else None,
            "error": self.check.error if status == "failed" else None,
            "seed": self.seed,
            "estimated_finish": int(self.created + self.duration) if status in ("queued", "running") else None,
            "integrations": self.integrations,
            "metadata": self.metadata,
            "user_provided_suffix": self.suffix,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        }

    @property
    def total_steps(self) -> int:
        """Optimizer steps: batches per epoch times epochs."""
        resolved = self.resolved_hyperparameters
        return math.ceil(len(self.check.examples) / int(resolved["batch_size"])) * int(resolved["n_epochs"])

    @property
    def trained_tokens(self) -> int:
        """Tokens of every training message, once per epoch."""
        per_epoch = sum(
            sum(count_tokens(message_text(m)) for m in example.input) + count_tokens(example.answer)
            for example in self.check.examples
        )
        return per_epoch * int(self.resolved_hyperparameters["n_epochs"])

    def timeline(self) -> list[Event]:
        """Every event the job will emit if left alone, oldest first."""
        files = f"Validating training file: {self.training_file}"
        if self.validation_file:
            files += f" and validation file: {self.validation_file}"
        events = [Event(0.0, f"Created fine-tuning job: {self.id}"), Event(0.0, files)]
        validated = VALIDATED_AT * self.duration
        if self.check.error:
            return [*events, Event(validated, self.check.error["message"], level="error")]
        started = STARTED_AT * self.duration
        events.append(Event(validated, "Files validated, moving job to queued state"))
        events.append(Event(started, "Fine-tuning job started"))
        total = self.total_steps
        shown = min(METRIC_EVENTS, total)
        for k in range(1, shown + 1):
            step = math.ceil(k * total / shown)
            loss = round(0.2 + 2.3 * math.exp(-3 * step / total), 4)
            accuracy = round(1 - loss / 3, 4)
            data = {"step": step, "train_loss": loss, "total_steps": total, "train_mean_token_accuracy": accuracy}
            at = started + (self.duration - started) * 0.95 * step / total
            events.append(Event(at, f"Step {step}/{total}: training loss={loss:.2f}", type="metrics", data=data))
        return [
            *events,
            Event(self.duration, f"New fine-tuned model created: {self.fine_tuned_model}"),
            Event(self.duration, "The job has successfully completed"),
        ]

    def events(self, now: float) -> list[dict[str, Any]]:
        """The events emitted by time `now`, newest first, as the real API lists them."""
        until = now if self.cancelled_at is None else self.cancelled_at
        events = [e for e in self.timeline() if self.created + e.at <= until]
        if self.cancelled_at is not None:
            events.append(Event(self.cancelled_at - self.created, "Fine-tuning job cancelled"))
        return [
            {
                "object": "fine_tuning.job.event",
                "id": stable_id("ftevent-", self.id, str(index)),
                "created_at": int(self.created + event.at),
                "level": event.level,
                "message": event.message,
                "type": event.type,
                "data": event.data,
            }
            for index, event in reversed(list(enumerate(events)))
        ]

    def fine_tune(self) -> FineTune:
        """The model this job makes (it exists once `status` says succeeded)."""
        trained = TrainedAnswers(self.check.examples)
        return FineTune(self.fine_tuned_model, self.model, int(self.created + self.duration), trained)


class JobBoard:
    """All fine-tuning jobs, newest first, and the fine-tuned models their success made."""

    def __init__(self, job_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.job_seconds = job_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._fine_tunes: dict[str, FineTune] = {}

    def create(
        self,
        *,
        model: str,
        training_file: str,
        check: TrainingCheck,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: dict[str, str] | None = None,
        integrations: list[Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a job on an already checked training file and return its first view."""
        job_id = random_id("ftjob-")
        job = Job(
            id=job_id,
            created=self.clock(),
            duration=self.job_seconds,
            model=model,
            training_file=training_file,
            validation_file=validation_file,
            suffix=suffix,
            seed=seed if seed is not None else int(stable_fraction(job_id, "seed") * 2**31),
            metadata=metadata,
            integrations=integrations,
            hyperparameters={name: "auto" for name in AUTO_HYPERPARAMETERS} | dict(hyperparameters or {}),
            check=check,
        )
        with self._lock:
            self._jobs[job_id] = job
        return job.view(job.created)

    def restore(self, state: Mapping[str, Any], check: TrainingCheck) -> None:
        """Take back a job kept by `state()` (its clock goes on: it may have finished meanwhile)."""
        job = Job(**{name: state[name] for name in STATE_FIELDS}, check=check)
        with self._lock:
            self._jobs[job.id] = job

    def state(self) -> list[dict[str, Any]]:
        """Every job as JSON, oldest first."""
        with self._lock:
            return [job.state() for job in self._jobs.values()]

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's current view, or a 404."""
        with self._lock:
            return self._find(job_id).view(self.clock())

    def list(self, metadata: Mapping[str, str]) -> list[dict[str, Any]]:
        """Current views of the jobs whose metadata has every pair given, newest first."""
        now = self.clock()
        with self._lock:
            return [
                job.view(now)
                for job in reversed(self._jobs.values())
                if all((job.metadata or {}).get(key) == value for key, value in metadata.items())
            ]

    def events(self, job_id: str) -> builtins.list[dict[str, Any]]:
        """A job's events so far, newest first."""
        with self._lock:
            return self._find(job_id).events(self.clock())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not finished; a finished one is a 400, as on the real API."""
        now = self.clock()
        with self._lock:
            job = self._find(job_id)
            status = job.status(now)
            if status in ("succeeded", "failed", "cancelled"):
                message = f"Job has already completed: {job_id}. Its status is '{status}'."
                raise bad_request(message, param="fine_tuning_job_id")
            job.cancelled_at = now
            return job.view(now)

    def fine_tunes(self) -> dict[str, FineTune]:
        """The fine-tuned models that exist now (their job has succeeded), by name."""
        now = self.clock()
        with self._lock:
            for job in self._jobs.values():
                if job.fine_tuned_model not in self._fine_tunes and job.status(now) == "succeeded":
                    self._fine_tunes[job.fine_tuned_model] = job.fine_tune()
            return dict(self._fine_tunes)

    def _find(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise not_found(f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id") from None


def _file_error(code: str, message: str, param: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param}
