"""The `openai` training backend: upload the file, create a fine-tuning job, follow it.

Everything goes through the official SDK (`runtime.sdk()`), so it works against OpenAI, Azure
OpenAI's v1 API and any server with the same fine-tuning endpoints; an endpoint a server lacks
comes back as a `ModelError` that names it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..models.client import ModelRuntime
from ..models.types import LOCAL_PREFIX
from ..settings import Settings
from ..strict_json import as_unicode
from ..untrusted import capped
from .backends import FINGERPRINT, TrainerContext, TrainingError, TrainingRequest, TrainingRun

FIRST_POLL_S = 0.5
MAX_POLL_S = 15.0
"""Polling starts fast (a job may be seconds long) and slows down to this bound (or hours of polling)."""
EVENTS_PER_POLL = 5
LIVE = frozenset({"validating_files", "queued", "running"})
"""The statuses of a job that is still under way (`succeeded`, `failed`, `cancelled` are not)."""
LISTED_JOBS = 100
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
"""What a fine-tuning job id looks like on OpenAI (`ftjob-…`), Azure and compatible servers."""


def create_params(request: TrainingRequest, training_file: str, validation_file: str | None) -> dict[str, Any]:
    """The body of `POST /fine_tuning/jobs`: hyperparameters in the current `method` form."""
    hyperparameters = {name: value for name, value in (("n_epochs", request.epochs),
                                                       ("learning_rate_multiplier", request.learning_rate),
                                                       ("batch_size", request.batch_size)) if value is not None}
    supervised: dict[str, Any] = {"hyperparameters": hyperparameters} if hyperparameters else {}
    params: dict[str, Any] = {"model": request.student, "training_file": training_file, "seed": request.seed,
                              "metadata": request.metadata, "method": {"type": "supervised", "supervised": supervised}}
    if request.suffix:
        params["suffix"] = request.suffix
    if validation_file:
        params["validation_file"] = validation_file
    return params


def progress_line(job: Any, events: list[Any]) -> str:
    """One line on a job: its status, its newest event (the step and loss while training), the trained
    tokens once known."""
    parts = [f"job {job.id}: {job.status}"]
    if events:
        parts.append(capped(str(events[0].message)))
    if isinstance(job.trained_tokens, int):
        parts.append(f"trained tokens {job.trained_tokens:,}")
    return as_unicode(" | ".join(parts))


class OpenAITrainer:
    """Fine-tuning jobs on the API; the run's id is the job id."""

    name = "openai"

    def __init__(self, runtime: ModelRuntime, say: Callable[[str], None]) -> None:
        self.runtime, self.say = runtime, say

    def start(self, request: TrainingRequest) -> TrainingRun:
        self.say(f"uploading {request.training_file.name} ({request.examples} examples) and creating a fine-tuning "
                 f"job on {request.student}")
        training = self._upload(request.training_file)
        validation = self._upload(request.validation_file) if request.validation_file else None
        params = create_params(request, training, validation)
        with self.runtime.api_errors("POST /fine_tuning/jobs", request.student):
            job = self.runtime.sdk().fine_tuning.jobs.create(**params)
        return run_of(job)

    def live(self, request: TrainingRequest) -> TrainingRun | None:
        """The oldest job on the server for the same training (its metadata names the training file's
        sha256 and the fingerprint of data, student and settings) that is still validating, queued or
        running: one paid job per training set across checkouts, not only within one project folder."""
        with self.runtime.api_errors("GET /fine_tuning/jobs"):
            jobs = list(self.runtime.sdk().fine_tuning.jobs.list(
                metadata={"training_sha256": request.training_sha256}, limit=LISTED_JOBS).data)
        same = [(place, job) for place, job in enumerate(jobs) if job.status in LIVE and isinstance(job.metadata, dict)
                and job.metadata.get(FINGERPRINT) == request.metadata.get(FINGERPRINT) and JOB_ID.fullmatch(str(job.id))]
        if not same:
            return None
        # created_at counts whole seconds: jobs of the same second go by the server's list order (newest
        # first), which every checkout sees alike. Their ids are random: ordered by id, the later of two
        # checkouts could keep its own job while the earlier, which looked before it existed, kept its.
        return run_of(min(same, key=lambda pair: (pair[1].created_at if isinstance(pair[1].created_at, int) else 0, -pair[0]))[1])

    def cancel(self, run: TrainingRun) -> None:
        _check_id(run.id)
        with self.runtime.api_errors(f"POST /fine_tuning/jobs/{run.id}/cancel"):
            self.runtime.sdk().fine_tuning.jobs.cancel(run.id)

    def refresh(self, run: TrainingRun) -> TrainingRun:
        _check_id(run.id)
        with self.runtime.api_errors(f"GET /fine_tuning/jobs/{run.id}"):
            return run_of(self.runtime.sdk().fine_tuning.jobs.retrieve(run.id))

    def follow(self, run: TrainingRun, timeout_s: float) -> TrainingRun:
        """Poll the job and its events at a growing, bounded interval; print a line when it changes."""
        _check_id(run.id)
        deadline = time.monotonic() + timeout_s
        interval, shown = FIRST_POLL_S, ""
        jobs = self.runtime.sdk().fine_tuning.jobs
        while True:
            with self.runtime.api_errors(f"GET /fine_tuning/jobs/{run.id}"):
                job = jobs.retrieve(run.id)
                events = list(jobs.list_events(run.id, limit=EVENTS_PER_POLL).data)
            line = progress_line(job, events)
            if line != shown:
                self.say(line)
                shown = line
            run = run_of(job)
            left = deadline - time.monotonic()
            if not run.active or left <= 0:
                return run
            time.sleep(min(interval, left))
            interval = min(MAX_POLL_S, interval * 1.5)

    def _upload(self, path: Path) -> str:
        with self.runtime.api_errors("POST /files"):
            uploaded = self.runtime.sdk().files.create(
                file=(path.name, path.read_bytes(), "application/jsonl"), purpose="fine-tune")
        return uploaded.id


def run_of(job: Any) -> TrainingRun:
    """The job as the loop keeps it, read as hostile: a text that is no Unicode text (a lone surrogate)
    gets U+FFFD and a token count that is no whole number is none, so that no terminal, report or
    record fails on them."""
    error = job.error.message if job.error and job.error.message else None
    return TrainingRun(OpenAITrainer.name, as_unicode(str(job.id)), as_unicode(str(job.status)),
                       model=as_unicode(job.fine_tuned_model) if isinstance(job.fine_tuned_model, str) else None,
                       error=as_unicode(capped(str(error))) if error else None,
                       trained_tokens=job.trained_tokens if isinstance(job.trained_tokens, int) else None)


def _check_id(job_id: str) -> None:
    """A job id goes into a request's path: one that is no plain id (`..`, a slash, a space) would ask for
    another path, so it is refused. It came from a server or from the training record, a file in pytest's
    cache: hostile either way."""
    if not JOB_ID.fullmatch(job_id):
        raise TrainingError(f"the fine-tuning job id {as_unicode(job_id[:60])!r} is not a plain id, so no request is made "
                            "with it (from the server, or from the training record in .pytest_cache/v/distill/trainings: "
                            "pytest --cache-clear starts anew)")


def check(settings: Settings) -> None:
    """At start-up: the job is created on the default endpoint (OPENAI_BASE_URL / OPENAI_API_KEY), so the
    student is a model of that server, named without a declared endpoint, and not an `hf:` model."""
    student = settings.student
    if student.startswith(LOCAL_PREFIX):
        raise TrainingError(f"--student {student}: an hf: model trains with --distill-backend trl, not openai")
    endpoint, sep, model = student.partition(":")
    if sep and any(declared.name == endpoint for declared in settings.endpoints):
        raise TrainingError(f"--student {student}: the openai backend creates its fine-tuning job on the default "
                            f"endpoint (OPENAI_BASE_URL / OPENAI_API_KEY), not on {endpoint!r}: name the student "
                            f"{model!r} there")


def make(context: TrainerContext) -> OpenAITrainer:
    return OpenAITrainer(context.runtime, context.say)
