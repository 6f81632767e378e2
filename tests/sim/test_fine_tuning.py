"""Files and fine-tuning jobs: the lifecycle to a fine-tuned model that answers what it learned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_distill.sim import SimServer
from pytest_distill.sim.chatformat import example_of
from pytest_distill.sim.jobs import JobBoard, check_training_file, fine_tuned_name
from pytest_distill.sim.models import GENERIC_ANSWER

from .conftest import CLIENT_KEY
from .data import ask, item_rows, user, wait_for_job

STATUS_ORDER = ["validating_files", "queued", "running", "succeeded"]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def upload(client: openai.OpenAI, rows: list[dict[str, Any]], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(rows)), purpose="fine-tune").id


def test_a_file_round_trips(client: openai.OpenAI) -> None:
    data = jsonl(item_rows(3)) + "日本語\n".encode()
    created = client.files.create(file=("data.jsonl", data), purpose="fine-tune")
    assert (created.filename, created.bytes, created.purpose) == ("data.jsonl", len(data), "fine-tune")
    assert created.status == "processed"
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [created.id]
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError, match=f"No such File object: {created.id}"):
        client.files.retrieve(created.id)


def test_files_list_newest_first(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="fine-tune").id for i in range(3)]
    assert [f.id for f in client.files.list()] == ids[::-1]
    assert [f.id for f in client.files.list(order="asc")] == ids


def test_a_fine_tune_file_must_be_jsonl(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")


def test_a_job_runs_to_a_fine_tuned_model_that_answers_what_it_learned(client: openai.OpenAI) -> None:
    rows = item_rows(12, prefix="t")
    assert ask(client, "gpt-4o-mini", "What is item t3?") == GENERIC_ANSWER
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, rows), suffix="items")
    assert (job.status, job.model, job.fine_tuned_model) == ("validating_files", "gpt-4o-mini-2024-07-18", None)
    done, seen = wait_for_job(client, job.id)
    assert seen == [s for s in STATUS_ORDER if s in seen] and seen[-1] == "succeeded"
    model = done.fine_tuned_model
    assert model is not None and model.startswith("ft:gpt-4o-mini-2024-07-18:sim:items:") and len(model.split(":")[-1]) == 8
    assert done.trained_tokens and done.finished_at and done.error is None
    assert done.hyperparameters.n_epochs == 3
    assert client.models.retrieve(model).id == model
    assert model in {m.id for m in client.models.list()}
    assert ask(client, model, "What is item t3?") == "Item t3 is number 3."
    assert ask(client, model, "what's item t3") == "Item t3 is number 3.", "a near input gets the nearest trained answer"
    assert ask(client, model, "Who wrote Hamlet?") == GENERIC_ANSWER, "anything else falls back to the base student"
    assert client.chat.completions.create(model=model, messages=[user("hi")]).model == model


def test_a_fine_tuned_model_exists_only_once_its_job_succeeded(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, item_rows(12)))
    client.fine_tuning.jobs.cancel(job.id)
    name = fine_tuned_name(job.model, None, job.id)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(name)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        ask(client, name, "What is item q1?")


def test_events_tell_the_jobs_story_newest_first_in_pages(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, item_rows(12)))
    wait_for_job(client, job.id)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=4))
    assert len({e.id for e in events}) == len(events) > 4
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert events[0].message == "The job has successfully completed"
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and all(e.data and {"step", "train_loss", "total_steps"} <= set(e.data) for e in metrics)
    assert metrics[0].data["step"] == metrics[0].data["total_steps"]


def test_jobs_list_newest_first_with_paging_and_metadata(client: openai.OpenAI) -> None:
    training = upload(client, item_rows(12))
    jobs = [client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training, metadata={"n": str(i)}) for i in range(3)]
    ids = [job.id for job in jobs]
    first = client.fine_tuning.jobs.list(limit=2)
    assert ([j.id for j in first.data], first.has_more) == (ids[:0:-1], True)
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"n": "1"})] == [ids[1]]


@pytest.mark.parametrize(
    "rows, code, message",
    [
        (item_rows(5), "invalid_n_examples", "Training file has 5 example(s), but must have at least 10 examples"),
        ([*item_rows(11), {"messages": [user("?")]}], "invalid_file_format", "Line 12: at least one message must be from the assistant"),
        ([*item_rows(11), {"messages": [{"role": "bot", "content": "x"}]}], "invalid_file_format", "Line 12: messages[0].role"),
        ([*item_rows(11), {"prompt": "legacy format"}], "invalid_file_format", 'Line 12: the key "messages"'),
    ],
    ids=["too-few", "no-assistant", "bad-role", "no-messages"],
)
def test_a_bad_training_file_fails_the_job_with_an_error(
    client: openai.OpenAI, rows: list[dict[str, Any]], code: str, message: str
) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, rows))
    done, seen = wait_for_job(client, job.id)
    assert seen[-1] == "failed" and "running" not in seen
    assert done.error is not None and (done.error.code, done.error.param) == (code, "training_file")
    assert message in done.error.message
    assert done.fine_tuned_model is None
    assert client.fine_tuning.jobs.list_events(job.id).data[0].level == "error"


def test_an_unknown_training_file_is_a_400_at_create(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")
    assert raised.value.response.json()["error"] == {
        "message": "invalid training_file: file-nope", "type": "invalid_request_error", "param": "training_file", "code": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "params, match",
    [
        ({"model": "text-embedding-3-small"}, "not available for fine-tuning"),
        ({"model": "gpt-4o-mini", "method": {"type": "dpo"}}, "supervised"),
        ({"model": "gpt-4o-mini", "hyperparameters": {"n_epochs": 99}}, "n_epochs"),
        ({"model": "gpt-4o-mini", "extra_body": {"epochs": 3}}, "Unrecognized request argument supplied: epochs"),
    ],
    ids=["model", "method", "hyperparameters", "unknown"],
)
def test_invalid_job_requests_are_400s(client: openai.OpenAI, params: dict[str, Any], match: str) -> None:
    with pytest.raises(openai.BadRequestError, match=match):
        client.fine_tuning.jobs.create(training_file=upload(client, item_rows(12)), **params)


@pytest.mark.parametrize("job_seconds, finished", [(3600, "cancelled"), (0, "succeeded")], ids=["running", "succeeded"])
def test_cancel_stops_a_job_and_a_finished_job_cannot_be_cancelled(seed_file: Path, job_seconds: float, finished: str) -> None:
    """A job of an hour is still running at its cancel however slow the machine; one of no time has
    succeeded by the time it is asked to cancel."""
    with (SimServer(seed=[seed_file], job_seconds=job_seconds) as server,
          openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0) as client):
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, item_rows(12)))
        if finished == "cancelled":
            cancelled = client.fine_tuning.jobs.cancel(job.id)
            assert (cancelled.status, cancelled.fine_tuned_model) == ("cancelled", None)
            assert client.fine_tuning.jobs.list_events(job.id).data[0].message == "Fine-tuning job cancelled"
        assert client.fine_tuning.jobs.retrieve(job.id).status == finished
        with pytest.raises(openai.BadRequestError, match=re.escape(f"already completed: {job.id}. Its status is '{finished}'")):
            client.fine_tuning.jobs.cancel(job.id)


def test_a_fine_tuned_model_can_be_tuned_again_and_keeps_its_root_base(client: openai.OpenAI) -> None:
    first_job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, item_rows(12, "a")))
    first, _ = wait_for_job(client, first_job.id)
    assert first.fine_tuned_model is not None
    second_job = client.fine_tuning.jobs.create(model=first.fine_tuned_model, training_file=upload(client, item_rows(12, "b")))
    second, _ = wait_for_job(client, second_job.id)
    assert second.fine_tuned_model is not None and second.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:sim::")
    assert ask(client, second.fine_tuned_model, "What is item b2?") == "Item b2 is number 2."
    assert ask(client, second.fine_tuned_model, "What is item a2?") == "Item a2 is number 2.", "it falls back on its base"


def test_the_job_timeline_follows_the_clock() -> None:
    now = [1000.0]
    board = JobBoard(job_seconds=10, clock=lambda: now[0])
    check = check_training_file(jsonl(item_rows(12)), param="training_file", minimum=10)
    job_id = board.create(model="gpt-4o-mini-2024-07-18", training_file="file-x", check=check)["id"]
    statuses = {}
    for at in (0.0, 1.0, 2.0, 5.0, 9.9, 10.0):
        now[0] = 1000.0 + at
        statuses[at] = board.get(job_id)["status"]
    assert list(statuses.values()) == ["validating_files", "validating_files", "queued", "running", "running", "succeeded"]
    assert board.get(job_id)["hyperparameters"] == {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
    assert list(board.fine_tunes()) == [board.get(job_id)["fine_tuned_model"]]


def test_a_training_line_keeps_the_input_before_the_last_assistant_turn() -> None:
    turns = [user("q1"), {"role": "assistant", "content": "a1"}, user("q2"), {"role": "assistant", "content": "a2"}]
    example = example_of({"messages": turns})
    assert (example.key, example.answer, len(example.input)) == ("q2", "a2", 3)
