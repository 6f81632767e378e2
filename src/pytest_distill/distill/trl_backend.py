"""The `trl` backend: supervised fine-tuning of an open-weights student with a LoRA adapter, here.

The checked chat-format training file is trained with TRL's `SFTTrainer` and a PEFT `LoraConfig` on
every linear layer, the loss on the assistant turns only. The adapter is written to a hidden folder
beside `--distill-output` and moved into place only once it is complete with its record, so a
folder that is there is a whole result. The run is over when `start` returns: there is no job to
follow. On several GPUs the same training runs under `accelerate launch` through this module's
command line (`python -m pytest_distill.distill.trl_backend --help`), on a training file that
`--distill-dry-run` wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import fresh_name, share_like_new_files
from ..jsonl import BadLine, read_jsonl
from ..models.hf import INSTALL, HFName, chat_messages, context_length, load_base, missing_packages, resolve_base
from ..models.types import LOCAL_PREFIX, ModelError
from ..settings import Settings
from .backends import TrainerContext, TrainingError, TrainingRequest, TrainingRun

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate")
DEFAULT_EPOCHS = 3
DEFAULT_LR = 2e-4
DEFAULT_BATCH_SIZE = 4
RECORD = "distill.json"
MERGED = "merged"
"""The folder in the output that holds the full model, the adapter merged into its base: what
`transformers serve` and `vllm serve` load as it is, with no LoRA flags."""
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
PROGRESS_LINES = 20
"""About how many progress lines a training prints, however many steps it has."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class AdapterOptions:
    """What only this backend reads: where the adapter goes, its rank, and whether examples too long
    for the model may be left out."""

    output: Path
    lora_rank: int = 16
    drop_long: bool = False


@dataclass(frozen=True)
class Trained:
    """A finished training: the adapter folder and its record."""

    output: Path
    record: dict[str, Any]

    @property
    def model(self) -> str:
        """The `--model` name of the result: the folder records its base, so the folder is enough."""
        return f"{LOCAL_PREFIX}{self.output}"


def check_ready(student: str) -> None:
    """At start-up: the student is an `hf:` model and the extra is installed (nothing loaded yet)."""
    if not student.startswith(LOCAL_PREFIX):
        raise TrainingError(f"--distill-backend trl trains an open-weights model: --student must be "
                            f"hf:PATH_OR_ID (a model folder or a hub id), not {student!r}")
    missing = missing_packages(PACKAGES)
    if missing:
        raise TrainingError(f"--distill-backend trl needs {', '.join(missing)}: {INSTALL}")


def train(request: TrainingRequest, options: AdapterOptions, say: Say) -> Trained:
    """Train the adapter and put it in place; a clear `TrainingError` for bad input or a failed run."""
    check_ready(request.student)
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bar()  # type: ignore[no-untyped-call]
    student = _student(request.student)
    replaced = _check_output(options.output)
    examples = read_examples(request.training_file)
    validation = read_examples(request.validation_file) if request.validation_file else []
    try:
        tokenizer, model = load_base(request.student, student.base)
    except ModelError as exc:
        raise TrainingError(f"--student {request.student}: {exc}") from None
    context = context_length(model)
    examples = fit_context(tokenizer, examples, context, request.training_file, options.drop_long, say)
    if validation:
        validation = fit_context(tokenizer, validation, context, request.validation_file, options.drop_long, say)
    assistant_only = _assistant_only(tokenizer)
    say(f"trl: training {request.student} on {len(examples)} examples"
        + (f", validating on {len(validation)}" if validation else "")
        + f" ({'assistant turns' if assistant_only else 'final answers'} in the loss)")
    output = options.output
    staging = fresh_name(_parent(output) / output.name, ".partial")
    staging.mkdir()  # the usual permissions of a new folder, not mkdtemp's owner-only ones
    try:
        trainer, progress = _trainer(request, options, model, tokenizer, examples, validation, assistant_only, context,
                                     staging, say)
        _run(trainer, progress, request, output if replaced else None, say)
        eval_loss = trainer.evaluate()["eval_loss"] if validation else None
        if not trainer.is_world_process_zero():
            return Trained(output, {})
        trainer.save_model(str(staging))
        save_merged(trainer.model, tokenizer, staging / MERGED)
        record = _record(request, options, resolve_base(student.base), len(examples), len(validation), assistant_only,
                         progress, eval_loss, _contents(staging))
        (staging / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        share_like_new_files(staging)
        _publish(staging, output, say)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Trained(output, record)


def save_merged(model: Any, tokenizer: Any, folder: Path) -> None:
    """The trained adapter merged into its base, saved as a full model with its tokenizer (and chat
    template): a folder any transformers-based server loads as a plain model (`config.json` names
    its `model_type`). Merging changes the weights in place: done once training and the adapter are saved."""
    merged = model.merge_and_unload()
    merged.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def read_examples(path: Path) -> list[list[dict[str, str]]]:
    """The conversations of a chat-format JSONL file (checked already: a bad line is a plain error here)."""
    examples = []
    try:
        for line in read_jsonl(path):
            if isinstance(line, BadLine):
                raise TrainingError(line.at(path))
            messages = line.data.get("messages")
            if not (isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)
                    and messages[-1].get("role") == "assistant"):
                raise TrainingError(f"{path}:{line.number}: not a chat-format training example (`messages`, objects, "
                                    "the last the assistant's answer)")
            examples.append(chat_messages(messages))
    except OSError as exc:
        raise TrainingError(f"{path}: cannot be read: {exc}") from None
    if not examples:
        raise TrainingError(f"{path}: no training examples")
    return examples


def trained_system(examples: Sequence[Sequence[dict[str, str]]]) -> str | None:
    """The system prompt every example was trained with (what --distill-student-system wrote), if one:
    the student answers as trained only when it is asked with it again."""
    prompts = {messages[0]["content"] if messages and messages[0]["role"] == "system" else None for messages in examples}
    only = prompts.pop() if len(prompts) == 1 else None
    return only or None


def fit_context(tokenizer: Any, examples: list[list[dict[str, str]]], context: int | None, path: Path | None,
                drop_long: bool, say: Say) -> list[list[dict[str, str]]]:
    """The examples that fit the model's context; longer ones are an error unless `drop_long`."""
    if context is None:
        return examples
    lengths = [len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
               for messages in examples]
    long = [(line, length) for line, length in enumerate(lengths, start=1) if length > context]
    if not long:
        return examples
    shown = ", ".join(f"line {line} ({length} tokens)" for line, length in long[:5]) + (" ..." if len(long) > 5 else "")
    problem = (f"{len(long)} of {len(examples)} examples in {path} are longer than the model's context of "
               f"{context} tokens: {shown}")
    if not drop_long:
        raise TrainingError(f"{problem}; shorten them (--distill-student-system replaces a long system prompt) "
                            "or pass --distill-drop-long to train without them")
    kept = [messages for messages, length in zip(examples, lengths, strict=False) if length <= context]
    if not kept:
        raise TrainingError(f"{problem}: none is left to train on")
    say(f"trl: {problem}: left out (--distill-drop-long)")
    return kept


class TrlTrainer:
    """The `Trainer` of `--distill-backend trl`: trains in `start`, on the xdist controller only."""

    name = "trl"

    def __init__(self, context: TrainerContext) -> None:
        self.settings, self.say = context.settings, context.say

    def start(self, request: TrainingRequest) -> TrainingRun:
        s = self.settings
        trained = train(request, AdapterOptions(s.output, s.lora_rank, s.drop_long), self.say)
        return TrainingRun(self.name, str(trained.output), "succeeded", model=trained.model)

    def refresh(self, run: TrainingRun) -> TrainingRun:
        """A finished local run stands while its adapter folder is there, in the place and of the rank
        asked for now; otherwise it counts as failed, so the same data is trained again."""
        if run.status != "succeeded":
            return run
        try:
            rank = json.loads((Path(run.id) / RECORD).read_text(encoding="utf-8"))["lora_rank"]
        except (OSError, ValueError, KeyError, TypeError):
            return TrainingRun(self.name, run.id, "failed", error=f"the adapter folder {run.id} is gone")
        if Path(run.id) != self.settings.output or rank != self.settings.lora_rank:
            return TrainingRun(self.name, run.id, "failed", error=f"{run.id} has rank {rank}; asked for "
                               f"{self.settings.output} with --distill-lora-rank {self.settings.lora_rank}")
        return run

    def follow(self, run: TrainingRun, timeout_s: float) -> TrainingRun:
        return run

    def live(self, request: TrainingRequest) -> TrainingRun | None:
        """None: a local training runs inside this process, never elsewhere."""
        return None

    def cancel(self, run: TrainingRun) -> None:
        """Never asked (`live` finds no other run): a local training has finished when `start` returns."""


def check(settings: Settings) -> None:
    """At start-up, before any model is called: the extra is there and the student can be trained."""
    check_ready(settings.student)


def make(context: TrainerContext) -> TrlTrainer:
    return TrlTrainer(context)


# -- training ------------------------------------------------------------------------------------


def _student(name: str) -> HFName:
    try:
        student = HFName.parse(name)
    except ModelError as exc:
        raise TrainingError(f"--student {name}: {exc}") from None
    if student.adapter is not None:
        raise TrainingError(f"--student {name} is a base with an adapter; the trl backend trains a new adapter on a "
                            f"base model: use --student {LOCAL_PREFIX}{student.base}")
    return student


def _check_output(output: Path) -> bool:
    """Refuse a --distill-output that holds anything but what an earlier training wrote there, as it
    wrote it: replacing the folder deletes all of it, and we never delete what we did not write."""
    if not output.exists():
        return False
    if not output.is_dir():
        raise TrainingError(f"--distill-output {output} is a file, not a folder")
    if not any(output.iterdir()):
        return True
    written = _written(output)
    if written is None:
        raise TrainingError(f"--distill-output {output} holds files that are not an adapter written by pytest-distill "
                            f"(no {RECORD} that lists them): it is left alone; choose another folder, or empty "
                            "this one")
    found = _contents(output)
    foreign = sorted(set(found) - set(written))
    changed = sorted(name for name in set(found) & set(written) if found[name] != written[name])
    if foreign or changed:
        problems = ([f"files pytest-distill did not write ({_names(foreign)})"] if foreign else []) + \
                   ([f"files changed since the training wrote them ({_names(changed)})"] if changed else [])
        raise TrainingError(f"--distill-output {output} holds {' and '.join(problems)}: it is left alone; choose "
                            "another folder, or move them out")
    return True


def _contents(folder: Path) -> dict[str, str]:
    """Every entry under `folder` but the record, by its relative path: a file's sha256, or what else it is
    (a symlink or a folder with nothing in it, which a training never writes)."""
    contents = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name == RECORD:
            continue
        if path.is_symlink():
            contents[name] = "symlink"
        elif path.is_file():
            contents[name] = _sha256(path)
        elif path.is_dir() and not any(path.iterdir()):
            contents[name] = "empty folder"
        elif not path.is_dir():
            contents[name] = "special file"
    return contents


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _parent(output: Path) -> Path:
    parent = output.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _assistant_only(tokenizer: Any) -> bool:
    """Loss on every assistant turn needs a fast tokenizer and a template with `{% generation %}`
    markers (or one TRL knows how to mark); otherwise each example becomes a prompt and a completion,
    and the loss is on the final answer, the teacher's, only."""
    from trl.chat_template_utils import get_training_chat_template

    if not tokenizer.is_fast:
        return False
    if GENERATION_MARKER.search(str(tokenizer.chat_template)):
        return True
    try:
        return get_training_chat_template(tokenizer) is not None
    except ValueError:
        return False


def _trainer(request: TrainingRequest, options: AdapterOptions, model: Any, tokenizer: Any,
             examples: list[list[dict[str, str]]], validation: list[list[dict[str, str]]], assistant_only: bool,
             context: int | None, staging: Path, say: Say) -> tuple[Any, Progress]:
    import torch
    from datasets import Dataset, disable_progress_bars
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    disable_progress_bars()
    batch_size = request.batch_size or DEFAULT_BATCH_SIZE
    epochs = request.epochs or DEFAULT_EPOCHS
    steps = math.ceil(len(examples) / batch_size) * epochs
    every = max(1, steps // PROGRESS_LINES)
    gpu = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(staging), num_train_epochs=epochs, learning_rate=request.learning_rate or DEFAULT_LR,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size, seed=request.seed,
        assistant_only_loss=assistant_only, completion_only_loss=None if assistant_only else True,
        max_length=context, logging_steps=every, eval_strategy="steps" if validation else "no", eval_steps=every,
        save_strategy="no", report_to="none", disable_tqdm=True, gradient_checkpointing=gpu, dataloader_pin_memory=gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(), fp16=False,
        # several CPU processes (torchrun) train as one too
        use_cpu=not gpu, ddp_backend="gloo" if not gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None)
    lora = LoraConfig(r=options.lora_rank, lora_alpha=2 * options.lora_rank, target_modules="all-linear", task_type="CAUSAL_LM")
    progress = Progress(say, bool(validation))
    trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer, peft_config=lora,
                         train_dataset=Dataset.from_list([_row(m, assistant_only) for m in examples]),
                         eval_dataset=Dataset.from_list([_row(m, assistant_only) for m in validation]) if validation else None,
                         callbacks=[_callback(progress)])
    trainer.remove_callback(PrinterCallback)
    return trainer, progress


def _row(messages: list[dict[str, str]], assistant_only: bool) -> dict[str, Any]:
    if assistant_only:
        return {"messages": messages}
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _run(trainer: Any, progress: Progress, request: TrainingRequest, earlier: Path | None, say: Say) -> None:
    """`trainer.train()`, with Ctrl-C and running out of memory told apart from other failures."""
    import torch

    try:
        trainer.train()
    except KeyboardInterrupt:
        kept = f"the adapter already in {earlier} is kept as it was" if earlier else "no adapter folder was created"
        say(f"trl: stopped by Ctrl-C at step {progress.step}/{progress.total}: nothing was written, {kept}; "
            f"the training file {request.training_file} is kept")
        raise
    except torch.OutOfMemoryError:
        raise TrainingError(f"out of memory at step {progress.step}/{progress.total} with --distill-batch-size "
                            f"{request.batch_size or DEFAULT_BATCH_SIZE}: use a smaller batch size or a smaller student; "
                            "nothing was written") from None


def _record(request: TrainingRequest, options: AdapterOptions, base: str, examples: int, validation: int,
            assistant_only: bool, progress: Progress, eval_loss: float | None, files: dict[str, str]) -> dict[str, Any]:
    """What was trained, how, and the files written (with their sha256): a later training replaces the
    folder only while it holds these files alone, unchanged."""
    import trl

    return {
        "base_model": base, "student": request.student, "training_file": str(request.training_file),
        "training_file_sha256": request.training_sha256, "examples": examples,
        "validation_file": str(request.validation_file) if request.validation_file else None,
        "validation_examples": validation, "epochs": request.epochs or DEFAULT_EPOCHS,
        "learning_rate": request.learning_rate or DEFAULT_LR, "batch_size": request.batch_size or DEFAULT_BATCH_SIZE,
        "lora_rank": options.lora_rank, "seed": request.seed, "steps": progress.step, "final_loss": progress.loss,
        "eval_loss": eval_loss, "loss_on": "assistant turns" if assistant_only else "final answers",
        "trainer": f"trl {trl.__version__}", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files,
    }


def _publish(staging: Path, output: Path, say: Say) -> None:
    """Move the complete adapter folder into place. The folder is checked again first: a file put there
    during the training must not go with it (then the new adapter is kept beside it, and said so). The
    earlier adapter is swapped out and only the files its record names are deleted; anything else
    that reached it meanwhile stays in the swapped-out folder, which is then kept and named."""
    try:
        replaced = _check_output(output)
    except TrainingError as exc:
        kept = fresh_name(_parent(output) / output.name, ".new")
        os.replace(staging, kept)
        raise TrainingError(f"{exc}. It changed during the training: the new adapter is in {kept}") from None
    old = None
    if replaced:
        old = fresh_name(_parent(output) / output.name, ".old")
        os.replace(output, old)
    os.replace(staging, output)
    if old is not None and not _remove_written(old):
        say(f"trl: files that reached {output} while it was being replaced are kept in {old}: {_names(_foreign(old))}")


def _remove_written(folder: Path) -> bool:
    """Delete the files of an earlier adapter that its record names, as it wrote them, then the record
    and the folders left empty; whether nothing else was there (the folder is gone)."""
    written = _written(folder) or {}
    for name, digest in _contents(folder).items():
        if written.get(name) == digest:
            (folder / name).unlink()
    # Folders emptied above (merged/) go before anything is judged foreign: an empty one would count.
    for path in sorted(folder.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    if not _foreign(folder):
        (folder / RECORD).unlink(missing_ok=True)
    if any(folder.iterdir()):
        return False
    folder.rmdir()
    return True


def _foreign(folder: Path) -> list[str]:
    """What is in an adapter folder that its record does not name as it is now."""
    written = _written(folder) or {}
    return sorted(name for name, digest in _contents(folder).items() if written.get(name) != digest)


def _written(folder: Path) -> dict[str, str] | None:
    """The files an adapter's record names, with their sha256; None when it has no readable record."""
    try:
        written = json.loads((folder / RECORD).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {str(name): str(digest) for name, digest in written.items()} if isinstance(written, dict) else None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Progress lines from the trainer's logs: step, loss, eval loss when validating, and time left."""

    def __init__(self, say: Say, validating: bool) -> None:
        self.say, self.validating = say, validating
        self.step = self.total = 0
        self.loss: float | None = None
        self.eval_loss: float | None = None
        self._started = time.monotonic()
        self._pending = False

    def begin(self, total: int) -> None:
        self._started, self.total = time.monotonic(), total

    def log(self, step: int, total: int, logs: dict[str, Any], main: bool) -> None:
        """A training log is shown at once, or with the eval loss that follows it when validating."""
        self.step, self.total = step, total
        if "loss" in logs:
            self.loss, self._pending = float(logs["loss"]), True
        if "eval_loss" in logs:
            self.eval_loss = float(logs["eval_loss"])
        if self._pending and (not self.validating or "eval_loss" in logs) and main:
            self._line()

    def end(self, main: bool) -> None:
        if self._pending and main:
            self._line()

    def _line(self) -> None:
        self._pending = False
        elapsed = time.monotonic() - self._started
        left = elapsed / self.step * (self.total - self.step) if self.step else 0.0
        parts = [f"trl: step {self.step}/{self.total}", f"loss {self.loss:.4f}"]
        if self.eval_loss is not None:
            parts.append(f"eval loss {self.eval_loss:.4f}")
        parts.append(f"{_duration(left)} left")
        self.say(" | ".join(parts))


def _callback(progress: Progress) -> Any:
    """A transformers callback that feeds `progress` (made here: transformers is imported only to train)."""
    from transformers import TrainerCallback

    class Feed(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.begin(state.max_steps)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            progress.log(state.global_step, state.max_steps, logs or {}, state.is_world_process_zero)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.end(state.is_world_process_zero)

    return Feed()


# -- command line (for `accelerate launch`) ------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Train from a training file written by `--distill-dry-run`; `accelerate launch` spreads it over GPUs."""
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.distill.trl_backend", description=main.__doc__)
    parser.add_argument("training_file", type=Path)
    parser.add_argument("--student", required=True, help="hf:PATH_OR_ID of the base model")
    parser.add_argument("--validation", type=Path, help="a validation file in the same format")
    parser.add_argument("--output", type=Path, default=Path("distilled"), help="the adapter folder (default: distilled)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--drop-long", action="store_true", help="leave out examples longer than the context")
    args = parser.parse_args(argv)
    try:
        data = args.training_file.read_bytes()
    except OSError as exc:
        print(f"error: {args.training_file}: cannot be read: {exc}", flush=True)
        return 2
    request = TrainingRequest(
        training_file=args.training_file, training_sha256=hashlib.sha256(data).hexdigest(), examples=data.count(b"\n"),
        validation_file=args.validation, student=args.student, suffix=None, seed=args.seed, metadata={},
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size)
    try:
        options = AdapterOptions(args.output, args.lora_rank, args.drop_long)
        trained = train(request, options, lambda line: print(line, flush=True))
    except TrainingError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    if trained.record:
        system = trained_system(read_examples(args.training_file))
        again = shlex.join(["pytest", "--model", trained.model, *(["--distill-student-system", system] if system else [])])
        print(f"trl: adapter written to {trained.output} (the merged full model in {trained.output / MERGED}); "
              f"re-run the suite on it: {again}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
