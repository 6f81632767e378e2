"""What the distillation loop needs from the simulator's fine-tuned models: they answer what they were
trained on, and unseen questions of the same kind as far as their training data was the teacher's.
(That they outlive a restart with `state_dir` is tested in tests/sim/test_state.py.)"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import openai

from pytest_distill.sim import SimServer

from .support import HOBANNU, TEST_KEY

ROWS = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()]
TRAIN = [row for row in ROWS if row["metadata"]["split"] == "train"]
TEST = [row for row in ROWS if row["metadata"]["split"] == "test"]


def client(server: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=TEST_KEY, max_retries=0)


def fine_tune(api: openai.OpenAI, rows: list[dict[str, Any]]) -> Any:
    """Upload the rows as a training file and start a job on the student (done at once with job_seconds=0)."""
    data = "".join(json.dumps({"messages": row["messages"]}, ensure_ascii=False) + "\n" for row in rows).encode()
    uploaded = api.files.create(file=("train.jsonl", io.BytesIO(data), "application/jsonl"), purpose="fine-tune")
    return api.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)


def right_answers(api: openai.OpenAI, model: str, rows: list[dict[str, Any]]) -> int:
    """How many rows the model answers with the stored answer, word for word."""
    return sum(api.chat.completions.create(model=model, messages=row["messages"][:-1]).choices[0].message.content
               == row["messages"][-1]["content"] for row in rows)


def test_a_model_distilled_from_the_teacher_answers_unseen_questions_nearly_like_it(
        make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(job_seconds=0)
    with client(server) as api:
        distilled = api.fine_tuning.jobs.retrieve(fine_tune(api, TRAIN).id).fine_tuned_model
        student, after = right_answers(api, "gpt-4o-mini", TEST), right_answers(api, distilled, TEST)
        assert right_answers(api, "gpt-4o", TEST) == len(TEST)
        assert student < after and after >= 0.75 * len(TEST)


def test_a_model_trained_on_wrong_answers_learns_no_teacher(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(job_seconds=0)
    wrong = [{**row, "messages": [*row["messages"][:-1], {"role": "assistant", "content": "わかりません。"}]} for row in TRAIN]
    with client(server) as api:
        model = api.fine_tuning.jobs.retrieve(fine_tune(api, wrong).id).fine_tuned_model
        assert right_answers(api, model, TEST) == right_answers(api, "gpt-4o-mini", TEST)
        assert right_answers(api, model, TRAIN) == 0
