"""The `trl` backend trains a real LoRA adapter on the tiny offline Llama (tests/toy_model.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_distill.distill.backends import TrainingError, TrainingRequest
from pytest_distill.distill.trl_backend import AdapterOptions, train

from .support import HOBANNU, hears_ctrl_c, write_jsonl

pytestmark = pytest.mark.slow
pytest.importorskip("trl")

SYSTEM = "ホバンヌの質問に答えてください。"
PROGRESS = re.compile(r"trl: step \d+/\d+ \| loss \d+\.\d{4} (\| eval loss \d+\.\d{4} )?\| \d+(m\d\ds|s) left")


def examples(split: str, count: int) -> list[dict]:
    """Hobannu questions of one split in the training format, with the short student system prompt."""
    rows = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()]
    return [{"messages": [{"role": "system", "content": SYSTEM}, *row["messages"][1:]]}
            for row in rows if row["metadata"]["split"] == split][:count]


def request(student: str, training: Path, validation: Path | None = None, epochs: int = 1) -> TrainingRequest:
    return TrainingRequest(
        training_file=training, training_sha256=hashlib.sha256(training.read_bytes()).hexdigest(),
        examples=len(training.read_text(encoding="utf-8").splitlines()), validation_file=validation, student=student,
        suffix=None, seed=7, metadata={}, epochs=epochs, learning_rate=3e-3, batch_size=4)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def hidden(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


def test_training_writes_a_complete_adapter_folder_with_its_record(toy_model: Path, tmp_path: Path) -> None:
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 8))
    validation = write_jsonl(tmp_path / "valid.jsonl", examples("test", 4))
    lines: list[str] = []
    trained = train(request(f"hf:{toy_model}", training, validation, epochs=2),
                    AdapterOptions(tmp_path / "out", lora_rank=4), lines.append)
    record = json.loads((tmp_path / "out" / "distill.json").read_text(encoding="utf-8"))
    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text(encoding="utf-8"))
    assert trained.model == f"hf:{tmp_path / 'out'}"
    assert record["base_model"] == adapter["base_model_name_or_path"] == str(toy_model.resolve())
    assert record["training_file_sha256"] == hashlib.sha256(training.read_bytes()).hexdigest()
    assert (record["examples"], record["validation_examples"], record["lora_rank"], adapter["r"]) == (8, 4, 4, 4)
    assert record["loss_on"] == "assistant turns" and record["steps"] == 4
    assert isinstance(record["final_loss"], float) and isinstance(record["eval_loss"], float)
    steps = [line for line in lines if "step" in line]
    assert steps and all(PROGRESS.fullmatch(line) and "eval loss" in line for line in steps), lines
    assert steps[-1].startswith("trl: step 4/4 ")
    assert hidden(tmp_path) == []


def test_the_merged_full_model_answers_as_the_adapter_on_its_base_does(trained_student: Path, toy_model: Path) -> None:
    from safetensors.torch import load_file

    from pytest_distill.models.hf import LocalModels

    merged = trained_student / "merged"
    assert json.loads((merged / "config.json").read_text(encoding="utf-8"))["model_type"] == "llama"
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    assert "merged/config.json" in json.loads((trained_student / "distill.json").read_text(encoding="utf-8"))["files"]
    weights, base = load_file(str(merged / "model.safetensors")), load_file(str(toy_model / "model.safetensors"))
    assert set(weights) == set(base)  # a plain model: no LoRA tensors left
    assert any(not weights[name].equal(base[name]) for name in base)  # the adapter is in its weights
    models, asked = LocalModels(), [{"role": "user", "content": row["messages"][-2]["content"]} for row in examples("train", 3)]
    for messages in asked:
        params = {"max_tokens": 12}
        merged_answer = models.chat(f"hf:{merged}", [messages], params)
        assert merged_answer.text == models.chat(f"hf:{trained_student}", [messages], params).text
        assert merged_answer.usage.completion_tokens > 0


def test_training_again_replaces_the_earlier_adapter_whole(toy_model: Path, tmp_path: Path) -> None:
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    for rank in (2, 4):
        train(request(f"hf:{toy_model}", training), AdapterOptions(tmp_path / "out", lora_rank=rank), print)
    assert json.loads((tmp_path / "out" / "distill.json").read_text(encoding="utf-8"))["lora_rank"] == 4
    assert hidden(tmp_path) == []


def test_a_template_without_generation_markers_learns_the_final_answer(toy_model: Path, tmp_path: Path) -> None:
    plain = shutil.copytree(toy_model, tmp_path / "plain")
    template = plain / "chat_template.jinja"
    template.write_text(re.sub(r"\{%- (end)?generation %\}", "", template.read_text(encoding="utf-8")), encoding="utf-8")
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    lines: list[str] = []
    trained = train(request(f"hf:{plain}", training), AdapterOptions(tmp_path / "out"), lines.append)
    assert "{% generation" not in template.read_text(encoding="utf-8")
    assert trained.record["loss_on"] == "final answers"
    assert any("(final answers in the loss)" in line for line in lines)


@pytest.mark.parametrize("student, message", [
    ("gpt-4o-mini", "--student must be hf:PATH_OR_ID"),
    ("hf:{tmp}/missing", "missing: no such model folder"),
    ("hf:{tmp}/t5", "is not a causal language model"),
    ("hf:{toy}+{tmp}/adapter", "the trl backend trains a new adapter on a base model: use --student hf:{toy}"),
])
def test_a_student_that_cannot_be_trained_is_refused_before_training(toy_model: Path, tmp_path: Path, student: str,
                                                                     message: str) -> None:
    from transformers import T5Config

    T5Config(vocab_size=100, d_model=32, num_layers=1, num_heads=2).save_pretrained(str(tmp_path / "t5"))
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    with pytest.raises(TrainingError) as error:
        train(request(student.format(tmp=tmp_path, toy=toy_model), training), AdapterOptions(tmp_path / "out"), print)
    assert message.format(toy=toy_model) in str(error.value)
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_a_folder_that_is_not_an_adapter_is_never_replaced(toy_model: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine", encoding="utf-8")
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    with pytest.raises(TrainingError, match="holds files that are not an adapter written by pytest-distill"):
        train(request(f"hf:{toy_model}", training), AdapterOptions(tmp_path / "out"), print)
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_a_folder_with_more_than_an_earlier_training_wrote_is_left_alone(toy_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    train(request(f"hf:{toy_model}", training), AdapterOptions(out, lora_rank=2), print)
    written = json.loads((out / "distill.json").read_text(encoding="utf-8"))["files"]
    assert "adapter_config.json" in written and "distill.json" not in written
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~current_umask()
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(TrainingError, match=r"holds files pytest-distill did not write \(notes.txt\): it is left alone"):
        train(request(f"hf:{toy_model}", training), AdapterOptions(out, lora_rank=4), print)
    (out / "notes.txt").unlink()
    (out / "adapter_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(TrainingError, match=r"holds files changed since the training wrote them \(adapter_config.json\)"):
        train(request(f"hf:{toy_model}", training), AdapterOptions(out, lora_rank=4), print)
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == {**before, "adapter_config.json": b"{}"}
    assert hidden(tmp_path) == []


def test_every_published_file_has_the_mode_of_a_new_file(toy_model: Path, tmp_path: Path) -> None:
    """safetensors writes `adapter_model.safetensors` owner-only (0600): every file the backend publishes
    gets what a new file gets under the umask (0644 under 022), like the other outputs."""
    out = tmp_path / "out"
    train(request(f"hf:{toy_model}", write_jsonl(tmp_path / "train.jsonl", examples("train", 4))),
          AdapterOptions(out, lora_rank=2), print)
    modes = {path.relative_to(out).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
    assert "adapter_model.safetensors" in modes and "distill.json" in modes
    assert modes == dict.fromkeys(modes, 0o666 & ~current_umask())


def test_a_file_put_into_the_output_folder_during_training_is_never_deleted(toy_model: Path, tmp_path: Path) -> None:
    """The folder was checked once, before training, and replaced whole after it: a file written there
    meanwhile was deleted. It is checked again when publishing; the new adapter is kept beside it."""
    out = tmp_path / "out"
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    train(request(f"hf:{toy_model}", training), AdapterOptions(out, lora_rank=2), print)
    before = files_in(out)

    def meanwhile(line: str) -> None:
        """At the first training step, someone saves a file into the output folder."""
        if line.startswith("trl: step") and not (out / "notes.txt").exists():
            (out / "notes.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(TrainingError, match=r"holds files pytest-distill did not write \(notes.txt\).* It changed during "
                                            r"the training: the new adapter is in .*\.out\.[0-9a-f]+\.new") as raised:
        train(request(f"hf:{toy_model}", training), AdapterOptions(out, lora_rank=4), meanwhile)
    assert files_in(out) == {**before, "notes.txt": b"mine"}
    kept = Path(str(raised.value).rsplit(" ", 1)[1])
    assert json.loads((kept / "distill.json").read_text(encoding="utf-8"))["lora_rank"] == 4


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (the adapter's, and the merged model's in merged/), by its relative path."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_examples_longer_than_the_context_are_counted_and_left_out_only_when_asked(toy_model: Path,
                                                                                  tmp_path: Path) -> None:
    long = [{"messages": [{"role": "user", "content": "ホバンヌ" * 800}, {"role": "assistant", "content": "はい。"}]}]
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4) + long * 2)
    with pytest.raises(TrainingError) as error:
        train(request(f"hf:{toy_model}", training), AdapterOptions(tmp_path / "out"), print)
    assert re.search(r"2 of 6 examples in .*train\.jsonl are longer than the model's context of 512 tokens: "
                     r"line 5 \(\d+ tokens\), line 6 \(\d+ tokens\); .*--distill-drop-long", str(error.value))
    assert not (tmp_path / "out").exists()
    lines: list[str] = []
    trained = train(request(f"hf:{toy_model}", training), AdapterOptions(tmp_path / "out", drop_long=True), lines.append)
    assert trained.record["examples"] == 4
    assert any("left out (--distill-drop-long)" in line for line in lines)


def command_line(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_distill.distill.trl_backend", *args]


def test_the_command_line_trains_and_prints_the_rerun_command(toy_model: Path, tmp_path: Path) -> None:
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    done = subprocess.run(command_line(str(training), "--student", f"hf:{toy_model}", "--output", str(tmp_path / "out"),
                                       "--epochs", "1", "--lora-rank", "2"),
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"re-run the suite on it: pytest --model hf:{tmp_path / 'out'} --distill-student-system {shlex.quote(SYSTEM)}" in done.stdout
    assert json.loads((tmp_path / "out" / "distill.json").read_text(encoding="utf-8"))["lora_rank"] == 2


def test_ctrl_c_stops_training_and_presents_no_half_written_adapter(toy_model: Path, tmp_path: Path) -> None:
    training = write_jsonl(tmp_path / "train.jsonl", examples("train", 4))
    process = subprocess.Popen(
        command_line(str(training), "--student", f"hf:{toy_model}", "--output", str(tmp_path / "out"),
                     "--epochs", "400"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        preexec_fn=hears_ctrl_c)
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("trl: step"):
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    output = "".join(seen) + rest
    assert process.returncode == 130
    assert "Traceback" not in output
    assert re.search(r"trl: stopped by Ctrl-C at step \d+/400: nothing was written, no adapter folder was created; "
                     r"the training file .*train\.jsonl is kept", output), output
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_an_earlier_training_stands_only_while_its_adapter_is_there_as_asked(tmp_path: Path) -> None:
    from pytest_distill.distill.backends import TrainerContext, TrainingRun
    from pytest_distill.distill.trl_backend import TrlTrainer
    from pytest_distill.models.client import ModelRuntime
    from pytest_distill.settings import Settings

    out = tmp_path / "out"
    out.mkdir()
    (out / "distill.json").write_text(json.dumps({"lora_rank": 16}), encoding="utf-8")
    run = TrainingRun("trl", str(out), "succeeded", model=f"hf:{out}")

    def refreshed(**settings: object) -> TrainingRun:
        return TrlTrainer(TrainerContext(Settings(**settings), ModelRuntime(), print)).refresh(run)

    assert refreshed(output=out, lora_rank=16) == run
    assert refreshed(output=out, lora_rank=8).status == "failed"
    assert refreshed(output=tmp_path / "elsewhere", lora_rank=16).status == "failed"
    (out / "distill.json").unlink()
    assert "is gone" in (refreshed(output=out, lora_rank=16).error or "")
