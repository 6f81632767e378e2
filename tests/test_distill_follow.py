"""Following a fine-tuning job to its end, when something else happens first: the job is cancelled,
the user presses Ctrl-C, the connection is lost. The loop runs with real parts (the SDK over HTTP to
the simulator); the moment comes through the loop's own progress callback, which runs right before
and during the wait."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai

from pytest_distill.datasets import load_jsonl
from pytest_distill.distill.backends import TrainerContext, make_trainer
from pytest_distill.distill.loop import LoopInputs, Outcome, run_loop
from pytest_distill.distill.record import TrainingRecord
from pytest_distill.ledger import Entry
from pytest_distill.models.client import ModelRuntime
from pytest_distill.settings import Settings
from pytest_distill.sim import Fault, SimServer

from .support import TEST_KEY, qa_rows, write_jsonl


def run_waiting(server: SimServer, tmp_path: Path, when: Callable[[str, SimServer], None]) -> Outcome:
    """One --distill --distill-wait loop on 12 training examples; `when` sees every progress line."""
    train = write_jsonl(tmp_path / "train.jsonl", qa_rows(12, "train", "t"))
    settings = Settings(distill=True, wait=True, train=str(train), timeout=60.0)
    entries = [Entry(f"t.py::test[c{i}-{model}]", f"c{i}", model, [{"role": "user", "content": f"Q{i}?"}],
                     outcome="passed" if model == "gpt-4o" else "failed") for model in ("gpt-4o", "gpt-4o-mini") for i in range(4)]
    runtime = ModelRuntime(base_url=server.url, api_key=TEST_KEY)

    def say(line: str) -> None:
        when(line, server)

    inputs = LoopInputs(settings=settings, entries=entries, load=lambda spec: load_jsonl(Path(spec), spec),
                        out_dir=tmp_path / "out", record=TrainingRecord(None), say=say,
                        args=["--distill", "--distill-wait"],
                        trainer=lambda: make_trainer("openai", TrainerContext(settings, runtime, say)))
    try:
        return run_loop(inputs)
    finally:
        runtime.close()


def cancel_when_following(line: str, server: SimServer) -> None:
    if line.startswith("following "):
        job = line.split()[1]
        with openai.OpenAI(base_url=server.url, api_key=TEST_KEY) as client:
            client.fine_tuning.jobs.cancel(job)


def interrupt_at_first_progress(line: str, server: SimServer) -> None:
    if line.startswith("job "):
        raise KeyboardInterrupt


def lose_the_connection_when_following(line: str, server: SimServer) -> None:
    if line.startswith("following "):  # four refusals: the request and the SDK's three retries
        server.inject(Fault("429", count=4, path="/fine_tuning/jobs/ftjob", retry_after=0.01))


def job_status(server: SimServer, job_id: str) -> str:
    with openai.OpenAI(base_url=server.url, api_key=TEST_KEY) as client:
        return client.fine_tuning.jobs.retrieve(job_id).status


def test_a_job_cancelled_while_followed_is_a_failure_that_says_so(make_sim, tmp_path: Path) -> None:
    server = make_sim(job_seconds=60)
    outcome = run_waiting(server, tmp_path, cancel_when_following)
    assert outcome.gate.met and outcome.failed and not outcome.interrupted
    assert outcome.run is not None and outcome.run.status == "cancelled"
    assert outcome.notes[-1] == f"{outcome.run.id} cancelled"


def test_ctrl_c_while_following_stops_cleanly_and_leaves_the_job_running(make_sim, tmp_path: Path) -> None:
    server = make_sim(job_seconds=60)
    outcome = run_waiting(server, tmp_path, interrupt_at_first_progress)
    assert outcome.interrupted and outcome.run is not None
    assert outcome.notes[-1] == (f"stopped following on Ctrl-C: {outcome.run.id} is left running; "
                                 "follow it again with: pytest --distill --distill-wait")
    assert job_status(server, outcome.run.id) == "validating_files"


def test_a_connection_lost_while_following_is_a_failure_that_leaves_the_job_running(make_sim, tmp_path: Path) -> None:
    server = make_sim(job_seconds=60)
    outcome = run_waiting(server, tmp_path, lose_the_connection_when_following)
    assert outcome.failed and outcome.run is not None
    assert outcome.notes[-1].startswith(
        f"lost track of {outcome.run.id}: GET /fine_tuning/jobs/{outcome.run.id} on {server.url} failed (HTTP 429)")
    assert outcome.notes[-1].endswith("it is left running; follow it again with: pytest --distill --distill-wait")
    assert job_status(server, outcome.run.id) == "validating_files"
    assert TEST_KEY not in " ".join(outcome.notes)


def test_the_file_uploaded_is_the_checked_file_written_beside_the_results(make_sim, tmp_path: Path) -> None:
    server = make_sim(job_seconds=60)
    outcome = run_waiting(server, tmp_path, cancel_when_following)
    with openai.OpenAI(base_url=server.url, api_key=TEST_KEY) as client:
        uploaded = client.files.list(purpose="fine-tune").data
        assert len(uploaded) == 1
        assert client.files.content(uploaded[0].id).read() == outcome.files["training"].read_bytes()
