"""`python -m pytest_distill.exit inventory`: which fine-tuned models an account has, and when each goes.

Against the simulator, which knows old fine-tunes (seeded) and makes new ones with its jobs, and gives
each model's `shutdown_date` as the API does; the package's dated table where a server gives none.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace

import openai

from pytest_distill.exit import inventory
from pytest_distill.models.retirements import SOURCE, retirement
from pytest_distill.sim import SimServer

from .support import TEST_KEY, qa_rows

OLD = "ft:gpt-4o-2024-08-06:acme:legal:Lx91bQ2z"
OLDER = "ft:gpt-4o-mini-2024-07-18:acme:support:9fJ2kLq1"
LASTING = "ft:o4-mini-2025-04-16:acme:triage:Zz81Kk0p"
RETIRES = datetime.date(2027, 1, 14)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_distill.exit", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy())


def made_by_a_job(server: SimServer) -> str:
    data = "".join(json.dumps({"messages": row["messages"]}) + "\n" for row in qa_rows(10)).encode()
    with openai.OpenAI(base_url=server.url, api_key=TEST_KEY, max_retries=0) as api:
        uploaded = api.files.create(file=("train.jsonl", io.BytesIO(data), "application/jsonl"), purpose="fine-tune")
        job = api.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id, suffix="new")
        return str(api.fine_tuning.jobs.retrieve(job.id).fine_tuned_model)


def test_the_accounts_fine_tunes_are_listed_soonest_retirement_first_with_days_left(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(fine_tunes=[LASTING, OLDER, OLD], job_seconds=0)
    new = made_by_a_job(server)
    done = run("inventory")
    assert done.returncode == 0, done.stderr
    days = (RETIRES - datetime.datetime.now(datetime.timezone.utc).date()).days
    out = done.stdout.splitlines()
    assert out[0].startswith(f"4 fine-tuned models at {server.url}, soonest retirement first")
    assert out[1].split() == ["model", "base", "retires", "days", "left", "date", "from"]
    assert [line.split() for line in out[2:6]] == [
        [OLD, "gpt-4o-2024-08-06", "2027-01-14", str(days), "API"],
        [OLDER, "gpt-4o-mini-2024-07-18", "2027-01-14", str(days), "API"],
        [new, "gpt-4o-mini-2024-07-18", "2027-01-14", str(days), "API"],
        [LASTING, "o4-mini-2025-04-16", "none", "announced"],
    ]
    assert f"record each while it answers: pytest --model {OLD} --distill-record answers.jsonl" in done.stdout
    assert TEST_KEY not in done.stdout + done.stderr
    listed = json.loads(run("inventory", "--json").stdout)
    assert [item["model"] for item in listed] == [OLD, OLDER, new, LASTING]
    assert listed[0] == {"model": OLD, "base": "gpt-4o-2024-08-06", "retires": "2027-01-14", "days_left": days,
                         "source": "the API's shutdown_date"}


def test_without_the_apis_date_the_dated_table_says_and_names_its_source() -> None:
    models = [SimpleNamespace(id="ft:gpt-4.1-mini-2025-04-14:acme::a1"), SimpleNamespace(id="gpt-4.1"),
              SimpleNamespace(id="ft:gpt-4.1-nano-2025-04-14:acme::n1", shutdown_date="soon"),
              SimpleNamespace(id=None), SimpleNamespace(id=17), SimpleNamespace(id="ft:x\n<b>"),
              SimpleNamespace(id="ft:gpt-4o-2024-08-06:acme::b2", shutdown_date="2026-12-20")]
    jobs = [SimpleNamespace(fine_tuned_model="ft:gpt-4.1-2025-04-14:acme::j1", model="gpt-4.1-2025-04-14"),
            SimpleNamespace(fine_tuned_model=None, model="gpt-4o")]
    found = inventory(models, jobs)
    assert [(ft.model, ft.base, ft.retires.date.isoformat() if ft.retires else None,
             ft.retires.source if ft.retires else None) for ft in found] == [
        ("ft:gpt-4o-2024-08-06:acme::b2", "gpt-4o-2024-08-06", "2026-12-20", "the API's shutdown_date"),
        ("ft:gpt-4.1-2025-04-14:acme::j1", "gpt-4.1-2025-04-14", "2027-01-14", SOURCE),
        ("ft:gpt-4.1-mini-2025-04-14:acme::a1", "gpt-4.1-mini-2025-04-14", "2027-01-14", SOURCE),
        ("ft:gpt-4.1-nano-2025-04-14:acme::n1", "gpt-4.1-nano-2025-04-14", None, None),
    ]
    assert found[0].days_left(datetime.date(2027, 1, 1)) == -12
    assert retirement("gpt-4o-mini-2024-07-18") is not None and retirement("gpt-4.1-nano") is None
    assert retirement("local:gpt-4o") is None  # a model on a declared endpoint is not OpenAI's


def test_a_server_that_cannot_be_reached_is_one_line_and_exit_2(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim()
    server.stop()
    done = run("inventory")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert TEST_KEY not in done.stderr
