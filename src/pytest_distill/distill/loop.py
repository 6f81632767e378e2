"""The distillation loop after a run: the gate, the training file, the training, and what to say.

The session hands over what the run measured and how to reach the datasets, the cache and the
terminal; this module decides, writes the checked file, starts a training or finds the one already
running for the same data, and follows it when asked. It runs once, on the xdist controller.
"""

from __future__ import annotations

import dataclasses
import shlex
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..datasets import BrokenCase, Case, DatasetError
from ..ledger import Entry, disagreements, summarize, verdict_changes
from ..models.client import ModelRuntime
from ..models.handle import Model
from ..models.types import ModelError
from ..settings import Settings
from . import training
from .backends import FINGERPRINT, Trainer, TrainingError, TrainingRequest, TrainingRun
from .filter import Vetting, evaluates_training, flipped_answers, suite_checks
from .gate import Decision, Thresholds, decide
from .record import TrainingRecord, fingerprint
from .training import TrainingSet

FILES = {"training": "distill-train.jsonl", "validation": "distill-validation.jsonl"}
LOOP_FLAGS = frozenset({"--distill", "--distill-wait", "--distill-dry-run"})
RESULTS_FLAG = "--distill-results"


@dataclass(frozen=True)
class LoopInputs:
    """What the loop needs from the session."""

    settings: Settings
    entries: Sequence[Entry]
    load: Callable[[str], Sequence[Case | BrokenCase]]
    """A dataset spec's cases (the session's loader, so nothing is loaded twice)."""
    out_dir: Path
    record: TrainingRecord
    trainer: Callable[[], Trainer]
    args: Sequence[str]
    """The command line of this run, for the commands we print."""
    say: Callable[[str], None]
    runtime: Callable[[], ModelRuntime] | None = None
    """The session's runtime: the judge of --distill-filter judged and the teacher of --distill-repair call through it."""


@dataclass
class Outcome:
    """Everything the loop decided and did: the summary block and the results file's "distill"."""

    gate: Decision
    training: TrainingSet | None = None
    validation: TrainingSet | None = None
    files: dict[str, Path] = field(default_factory=dict)
    run: TrainingRun | None = None
    notes: list[str] = field(default_factory=list)
    failed: bool = False
    interrupted: bool = False
    closing: list[str] = field(default_factory=list)
    """The trained model and the command that re-runs the suite on it: the last lines of the terminal."""

    def lines(self) -> list[str]:
        rows = self.gate.lines()
        for label, data in (("training data", self.training), ("validation data", self.validation)):
            if data is not None:
                rows += data.lines(label)
        return rows + self.notes

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate.to_dict(),
                "training": self.training.to_dict() if self.training else None,
                "validation": self.validation.to_dict() if self.validation else None,
                "files": {name: str(path) for name, path in self.files.items()},
                "run": self.run.to_dict() if self.run else None,
                "notes": self.notes, "failed": self.failed, "interrupted": self.interrupted}


def run_loop(inputs: LoopInputs) -> Outcome:
    """Gate, then (dry run) write the file, or (distill, gate met) train and maybe wait."""
    s = inputs.settings
    held_out = {training.input_key(entry.input) for entry in inputs.entries
                if entry.input and not evaluates_training(entry, s.train)}
    train_set, problem = _build(inputs, s.train, held_out, "a test case")
    thresholds = Thresholds(s.teacher_min, s.gap_min, s.min_examples, s.alpha if s.gate_test == "mcnemar" else None)
    examples = len(train_set.examples) if train_set else 0
    outcome = Outcome(decide(summarize(inputs.entries), s.teacher, s.student, examples, thresholds, problem or f"from {s.train}",
                             verdict_changes(inputs.entries) if s.every_repeat else None,
                             disagreements(inputs.entries, s.teacher, s.student, s.every_repeat)), train_set)
    if _gone(inputs.entries, s.teacher):
        outcome.notes.append(f"the teacher {s.teacher} answered HTTP 404 to every case: it no longer exists (retired or "
                             "deleted), so the gate cannot measure it; distill from the answers it left: --teacher "
                             "recorded:FILE.jsonl (what --distill-record wrote while it answered), or choose another --teacher")
    if train_set is None:
        return outcome
    if s.validation:
        outcome.validation, problem = _build(inputs, s.validation, held_out | train_set.inputs(),
                                             "a test case or a training example")
        if problem:
            outcome.notes.append(f"validation data {s.validation}: {problem}; training goes on without it")
    if s.dry_run or (s.distill and outcome.gate.met):
        _write(inputs.out_dir, outcome)
    if s.dry_run:
        written = outcome.files.get("training")
        outcome.notes.append(f"dry run: training file written to {written}; nothing uploaded" if written
                             else "dry run: no valid training example, so no training file; nothing uploaded")
        return outcome
    if not outcome.gate.met:
        outcome.notes.append("no training started: the gate is not met")
        return outcome
    _train(inputs, outcome)
    return outcome


def _gone(entries: Sequence[Entry], teacher: str) -> bool:
    """Whether every case of the teacher errored with a 404: the model is gone, not failing."""
    mine = [entry for entry in entries if entry.model == teacher]
    return bool(mine) and all(entry.outcome == "error" and "(HTTP 404)" in (entry.error or "") for entry in mine)


def _build(inputs: LoopInputs, spec: str, held_out: set[str],
           held_out_what: str) -> tuple[training.TrainingSet | None, str | None]:
    """One dataset as a checked training set, or why it could not be read."""
    s = inputs.settings
    try:
        cases = inputs.load(spec)
    except (DatasetError, ModelError) as exc:
        return None, f"could not be read: {exc}"
    vetting = _vetting(inputs)
    built = training.build(cases, source=spec, teacher=s.teacher, held_out=held_out, held_out_what=held_out_what,
                           system=s.student_system, vet=vetting.vet if vetting else None,
                           filter_note=vetting.checks.describe() if vetting else "",
                           flipped=flipped_answers(inputs.entries, spec) if vetting else ())
    if vetting is not None:
        built.filter_lines, built.filter_record = vetting.lines(), vetting.to_dict()
    return built, None


def _vetting(inputs: LoopInputs) -> Vetting | None:
    """--distill-filter's checks, with the session's judge (judged) and teacher (--distill-repair)."""
    s = inputs.settings
    if s.filter == "off":
        return None
    runtime = inputs.runtime() if inputs.runtime is not None else None
    return Vetting(suite_checks(inputs.entries, judged=s.filter == "judged"),
                   judge=Model(s.judge, runtime, role="judge") if runtime and s.filter == "judged" else None,
                   teacher=Model(s.teacher, runtime, role="teacher") if runtime and s.repair else None, repairs=s.repair)


def _write(out_dir: Path, outcome: Outcome) -> None:
    for name, data in (("training", outcome.training), ("validation", outcome.validation)):
        if data is not None and data.examples:
            path = out_dir / FILES[name]
            write_atomic(path, data.jsonl())
            outcome.files[name] = path


def _train(inputs: LoopInputs, outcome: Outcome) -> None:
    """Find the run already started for this data, or start one; follow it under --distill-wait."""
    s, data, notes = inputs.settings, outcome.training, outcome.notes
    assert data is not None
    validation = outcome.validation if outcome.validation and outcome.validation.examples else None
    request = TrainingRequest(
        training_file=outcome.files["training"], training_sha256=data.sha256, examples=len(data.examples),
        validation_file=outcome.files.get("validation") if validation else None, student=s.student,
        suffix=s.suffix, seed=int(data.sha256[:8], 16) % 2**31, metadata=_metadata(outcome, data.sha256),
        epochs=s.epochs, learning_rate=s.lr, batch_size=s.batch_size)
    key = fingerprint(s.backend, request, validation.sha256 if validation else None)
    request = dataclasses.replace(request, metadata={**request.metadata, FINGERPRINT: key})
    try:
        trainer = inputs.trainer()
        with inputs.record.claimed(inputs.say):
            run = _earlier(inputs, trainer, key, notes)
            if run is None:
                run = trainer.live(request)
                if run is not None:
                    notes.append(f"training {run.id} of the same data and settings is already {run.status} on the "
                                 "server, started elsewhere (another checkout or CI job): following it, no new one started")
            if run is None:
                run = trainer.start(request)
                notes.append(f"started {trainer.name} training {run.id} of {s.student} on {len(data.examples)} "
                             f"examples (training file sha256 {data.sha256[:12]})")
                run = _won(trainer, request, run, notes)
            inputs.record.save(key, run, data.sha256)
    except (ModelError, TrainingError) as exc:
        outcome.failed = True
        notes.append(f"could not start training: {exc}")
        return
    except KeyboardInterrupt:
        outcome.interrupted = True
        notes.append(f"stopped on Ctrl-C while starting the {s.backend} training: nothing was recorded, "
                     f"so the next --distill starts anew (a job created in that very moment would run on "
                     f"unknown to it); the training file {request.training_file} is kept")
        return
    if not inputs.record.available:
        notes.append("pytest's cache is off: a second --distill cannot know about this training")
    if s.wait and run.active:
        run = _follow(inputs, trainer, run, outcome)
        inputs.record.save(key, run, data.sha256)
    outcome.run = run
    _report(inputs, run, outcome)


def _won(trainer: Trainer, request: TrainingRequest, run: TrainingRun, notes: list[str]) -> TrainingRun:
    """Two checkouts that start the same training at once both find no job and both create one: each
    then looks again, and the one whose job is not the oldest cancels it (before it trains) and
    follows the oldest, so one job is paid for."""
    oldest = trainer.live(request)
    if oldest is None or oldest.id == run.id:
        return run
    trainer.cancel(run)
    notes.append(f"{oldest.id} for the same data and settings was created elsewhere a moment earlier: {run.id} is "
                 f"cancelled before it trained, and {oldest.id} is followed")
    return oldest


def _earlier(inputs: LoopInputs, trainer: Trainer, key: str, notes: list[str]) -> TrainingRun | None:
    """The run recorded for this data if it is still running or succeeded; None to start anew."""
    recorded = inputs.record.find(key)
    if recorded is None:
        return None
    try:
        run = trainer.refresh(recorded)
    except ModelError as exc:
        if exc.status != 404:
            raise
        notes.append(f"the recorded training {recorded.id} no longer exists; starting a new one")
        return None
    if run.active:
        notes.append(f"training {run.id} for the same data is still running ({run.status}): no new one started")
        return run
    if run.status == "succeeded":
        notes.append(f"the same data was already trained by {run.id}: no new training started")
        return run
    notes.append(f"the earlier training {run.id} of the same data {run.status}"
                 + (f" ({run.error})" if run.error else "") + "; starting a new one")
    return None


def _follow(inputs: LoopInputs, trainer: Trainer, run: TrainingRun, outcome: Outcome) -> TrainingRun:
    """Follow to the end, the timeout, Ctrl-C or a lost connection; the last three leave it running."""
    again = f"follow it again with: {follow_command(inputs.args)}"
    try:
        inputs.say(f"following {run.id} for up to {inputs.settings.timeout:g}s (Ctrl-C stops following, not the training)")
        run = trainer.follow(run, inputs.settings.timeout)
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.notes.append(f"stopped following on Ctrl-C: {run.id} is left running; {again}")
        return run
    except (ModelError, TrainingError) as exc:
        outcome.failed = True
        outcome.notes.append(f"lost track of {run.id}: {exc}; it is left running; {again}")
        return run
    if run.active:
        outcome.failed = True
        outcome.notes.append(f"{run.id} is still {run.status} after {inputs.settings.timeout:g}s (--distill-timeout); "
                             f"it is left running; {again}")
    return run


def _report(inputs: LoopInputs, run: TrainingRun, outcome: Outcome) -> None:
    s, notes = inputs.settings, outcome.notes
    if run.status == "succeeded" and run.model:
        tokens = f", {run.trained_tokens:,} trained tokens" if run.trained_tokens else ""
        notes.append(f"{run.id} succeeded{tokens}: distilled model {run.model}")
        rerun = rerun_command(inputs.args, [run.model], s.model_flag, s.results)
        notes.append(f"re-run the suite on it: {rerun}")
        outcome.closing = [f"distilled model {run.model}", f"re-run the suite on it: {rerun}"]
        notes.append(f"side by side: {rerun_command(inputs.args, [s.teacher, s.student, run.model], s.model_flag, s.results)}")
    elif run.status in ("failed", "cancelled"):
        outcome.failed = True
        notes.append(f"{run.id} {run.status}" + (f": {run.error}" if run.error else ""))
    elif run.active and not outcome.interrupted and not outcome.failed:
        notes.append(f"{run.id} is {run.status}; follow it to the end (no second training starts): "
                     f"{follow_command(inputs.args)}")


def _metadata(outcome: Outcome, sha256: str) -> dict[str, str]:
    """Tags that tie the training to this run (the API allows 16 string pairs)."""
    rates = {m.name: m.value for m in outcome.gate.measures}
    return {"source": "pytest-distill", "run": uuid.uuid4().hex[:16], "training_sha256": sha256,
            "teacher": outcome.gate.teacher, "teacher_pass_rate": f"{rates['teacher_pass_rate']:.4f}",
            "gap": f"{rates['gap']:.4f}"}


def rerun_command(args: Sequence[str], models: Sequence[str], flag: str = "--model", results: Path | None = None) -> str:
    """This run's command line without the loop's flags and models, on the given models. `flag` names the
    models under test (`--distill-model` where the project owns `--model`, whose value is then kept).
    The results file (`results`, from the command line or the ini) becomes a new one beside it: the
    re-run never overwrites the results of the run that trained."""
    ours = {flag, "--distill-model"}
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip or arg in LOOP_FLAGS or ("=" in arg and arg.partition("=")[0] in ours):
            skip = False
            continue
        if arg in ours:
            skip = True
            continue
        kept.append(arg)
    kept = [arg for index, arg in enumerate(kept) if arg != RESULTS_FLAG and not arg.startswith(f"{RESULTS_FLAG}=")
            and (index == 0 or kept[index - 1] != RESULTS_FLAG)]
    rerun = [RESULTS_FLAG, str(results.with_name(f"{results.stem}-rerun{results.suffix}"))] if results else []
    return shlex.join(["pytest", *kept, *rerun, *(part for model in models for part in (flag, model))])


def follow_command(args: Sequence[str]) -> str:
    """This run's command line with --distill-wait: it finds the running training and follows it."""
    return shlex.join(["pytest", *args, *([] if "--distill-wait" in args else ["--distill-wait"])])
