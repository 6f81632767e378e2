"""`state_dir`: uploaded files, fine-tuning jobs and so fine-tuned models outlive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import openai

from pytest_distill.sim import SimServer

from .conftest import CLIENT_KEY
from .data import ask, item_rows, wait_for_job


def training_bytes() -> bytes:
    return "".join(json.dumps(row) + "\n" for row in item_rows(12, prefix="r")).encode()


def test_a_fine_tuned_model_outlives_a_restart(seed_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with SimServer(seed=[seed_file], job_seconds=0.3, state_dir=state) as first, \
            openai.OpenAI(base_url=first.url, api_key=CLIENT_KEY, max_retries=0) as sdk:  # fmt: skip
        file_id = sdk.files.create(file=("train.jsonl", training_bytes()), purpose="fine-tune").id
        job, _ = wait_for_job(sdk, sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id)
        pending = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    with SimServer(seed=[seed_file], job_seconds=0.3, state_dir=state) as second, \
            openai.OpenAI(base_url=second.url, api_key=CLIENT_KEY, max_retries=0) as sdk:  # fmt: skip
        assert sdk.files.content(file_id).read() == training_bytes()
        assert sdk.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
        assert job.fine_tuned_model is not None
        assert ask(sdk, job.fine_tuned_model, "What is item r4?") == "Item r4 is number 4."
        assert wait_for_job(sdk, pending.id)[0].status == "succeeded", "a job started before the restart goes on"


def test_an_unreadable_state_file_starts_empty(seed_file: Path, tmp_path: Path) -> None:
    (tmp_path / "sim-state.json").write_text("{not json", encoding="utf-8")
    with SimServer(seed=[seed_file], state_dir=tmp_path) as server, \
            openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0) as sdk:  # fmt: skip
        assert list(sdk.files.list()) == []
        sdk.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    assert len(json.loads((tmp_path / "sim-state.json").read_text(encoding="utf-8"))["files"]) == 1
