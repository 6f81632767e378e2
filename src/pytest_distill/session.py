"""`DistillSession`: the per-process state of a pytest session, kept in `config.stash[SESSION]` (`plugin.py`).

Settings, the model runtime, the datasets and the fixtures' objects live here, in every process.
The end of the run (ledger, reports, baseline, the gate) belongs to plugin objects that exist only
on the controller (`report/reporter.py`, `distill/plugin.py`); `plugin.py` registers them all.
"""

from __future__ import annotations

import gc
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from . import grades, progress
from .calls import COMPLETE, Call, record_call
from .cases import CaseSource
from .datasets import BrokenCase, Case, DatasetError, model_ids, param_ids
from .models import hf
from .models.batches import Batches, BatchRecord
from .models.cache import CompletionCache
from .models.client import ModelRuntime
from .models.handle import Model
from .models.recorded import is_recorded
from .models.retirements import base_of, retirement
from .models.types import Endpoint, url_problem
from .recording import Recorder
from .settings import SIM_SEED, SIM_URL, Settings, is_worker, item_params

SIM_KEY = "distill-sim"
UNDER_TEST = "model under test"
BATCH_POLL_S = 10.0
SIM_BATCH_POLL_S = 0.05
"""Seconds between looks at a batch: a real one takes minutes to hours; the simulator's moves a step a look."""


class DistillSession:
    """Settings, runtime, datasets and fixture objects of one process."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.sim: Any = None
        self._runtime: ModelRuntime | None = None
        self._frozen = False
        self.cases = CaseSource(config, self.settings, lambda: self.runtime, self.cache_dir)

    def start(self) -> None:
        """Check that `hf:` models can run, then start the simulator on the controller (workers reach it
        through workerinput)."""
        s = self.settings
        problem = hf.unavailable((*s.models_under_test, s.teacher, s.student, s.judge))
        if problem:
            raise pytest.UsageError(problem)
        default_url = os.environ.get("OPENAI_BASE_URL")
        if s.configured and not s.sim and default_url and url_problem(default_url):
            raise pytest.UsageError(f"OPENAI_BASE_URL is not a usable base URL: {url_problem(default_url)}")
        if s.cache != "off" and getattr(self.config, "cache", None) is None:
            raise pytest.UsageError("--distill-cache keeps its answers in pytest's cache: drop -p no:cacheprovider")
        if s.sim and not is_worker(self.config):
            from .sim import SimServer
            from .sim.seed import SeedError

            # --distill-sim-seed paths are relative to where pytest was started; the ini's are already absolute.
            seeds = [self.config.invocation_params.dir / path for path in s.sim_seed]
            # Its files and jobs live in pytest's cache, so a model distilled in one session exists in the next.
            try:
                # It takes its own key only: the user's real OPENAI_API_KEY is never sent to it.
                self.sim = SimServer(seed=seeds, state_dir=self.cache_dir("distill-sim"), api_key=SIM_KEY).start()
            except SeedError as exc:
                raise pytest.UsageError(f"--distill-sim-seed / ini distill_sim_seed: {exc}") from None

    def stop(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        if self.sim is not None:
            self.sim.stop()

    @property
    def sim_url(self) -> str | None:
        if self.sim is not None:
            return str(self.sim.url)
        url: str | None = getattr(self.config, "workerinput", {}).get(SIM_URL)
        return url

    @property
    def sim_seed(self) -> str:
        """The digest of what the simulator was seeded with ("" without one)."""
        digest: str = self.sim.seed_digest if self.sim is not None else getattr(self.config, "workerinput", {}).get(SIM_SEED, "")
        return digest

    @property
    def runtime(self) -> ModelRuntime:
        """The process's model runtime, made on first use so that collection-only runs start nothing.

        Under --distill-sim every endpoint is the simulator, with the simulator's key: a real key in
        OPENAI_API_KEY (or an endpoint's variable) is never sent to it."""
        if self._runtime is None:
            url, s = self.sim_url, self.settings
            endpoints = [Endpoint(e.name, url, key=SIM_KEY, api=e.api) for e in s.endpoints] if url else s.endpoints
            self._runtime = ModelRuntime(base_url=url, api_key=SIM_KEY if url else None, api=s.api, concurrency=s.concurrency,
                                         request_timeout=s.request_timeout, cache=self._completion_cache(url),
                                         endpoints=endpoints, batches=self._batches(url), max_line_bytes=s.max_line_bytes)
            progress.attach(self._runtime, self.config)
            self._runtime.on_start = self._freeze
        return self._runtime

    def _freeze(self) -> None:
        """Keep the cyclic collector off the objects that live all session, once the SDK is loaded.

        The SDK's types are some 70,000 objects that every full collection walks, and a run of model
        calls sets off full collections: freezing what is alive at the first call (`gc.freeze`) cut the
        client's CPU by a sixth on the benchmark. `thaw` gives them back to the collector."""
        gc.freeze()
        self._frozen = True

    def thaw(self) -> None:
        """The session's last cleanup (`plugin.py` registers it first): after pytest's own end-of-session
        collections, which so stay cheap. Cyclic garbage among frozen objects is collected from then on."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def endpoints(self) -> dict[str, str]:
        """Each endpoint's base URL as reports may show it (never a key), by name; "" is the default."""
        return self.runtime.endpoints()

    def _batches(self, url: str | None) -> Batches | None:
        """--distill-batch: the batches are noted in pytest's cache, so a re-run resumes them."""
        if not self.settings.batch:
            return None
        poll = self.settings.batch_poll or (SIM_BATCH_POLL_S if url else BATCH_POLL_S)
        return Batches(BatchRecord(self.cache_dir("distill-batches")), poll)

    def finish(self, exitstatus: int) -> None:
        """A session that ran to its end forgets its batches (all answered); an interrupted one keeps
        them for the re-run."""
        batches = self._runtime.batches if self._runtime is not None else None
        if batches is not None and exitstatus != pytest.ExitCode.INTERRUPTED:
            batches.record.forget(batches.used)

    def _completion_cache(self, url: str | None) -> CompletionCache | None:
        """`--distill-cache`: answers under pytest's cache directory, kept apart per server."""
        folder = None if self.settings.cache == "off" else self.cache_dir("distill-calls")
        if folder is None:
            return None
        # The simulator's answers follow its seeds: answers of another seed are never served.
        server = f"simulator {self.sim_seed}" if self.settings.sim else url or os.environ.get("OPENAI_BASE_URL") \
            or "https://api.openai.com/v1"
        return CompletionCache(folder, server, self.settings.cache)

    def cache_dir(self, name: str) -> Path | None:
        """A folder under pytest's cache directory, or None when the cache provider is off (-p no:cacheprovider)."""
        cache = getattr(self.config, "cache", None)
        return cache.mkdir(name) if cache is not None else None

    def header(self) -> list[str]:
        """Only a session that configures the plugin (an option or ini setting) hears of it here."""
        s = self.settings
        if not s.configured:
            return []
        lines = [f"distill: models {', '.join(s.models_under_test)}; teacher {s.teacher}; judge {s.judge}"]
        note = default_judge_note(s)
        if note:
            lines.append(f"distill: {note}")
        if s.model_flag != "--model":
            lines.append(f"distill: this project has its own --model; name the models under test with {s.model_flag}")
        if self.sim is not None:
            lines.append(f"distill: offline simulator at {self.sim.url} (its scores measure wiring, not model quality)")
        elif s.endpoints:
            lines.append("distill: endpoints " + ", ".join(f"{name} at {url}" for name, url in self.endpoints().items() if name))
        return lines

    # -- collection ----------------------------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc, names: set[str]) -> None:
        """Give `case` one parameter per case of the test's dataset, and `model` one per model under test
        (`names`: the plugin's fixtures that the test gets, not a project's own of the same name)."""
        if "case" in names:
            cases = self.cases.for_test(metafunc)
            metafunc.parametrize("case", cases, ids=param_ids(cases), indirect=True)
        if "model" in names:
            models = self.settings.models_under_test
            metafunc.parametrize("model", models, ids=model_ids(models), indirect=True)
        if "distill_sample" in names and self.settings.repeat > 1:
            samples = range(self.settings.repeat)
            metafunc.parametrize("distill_sample", samples, ids=[f"rep{i}" for i in samples], indirect=True)

    # -- fixtures ------------------------------------------------------------------------------

    def case(self, request: pytest.FixtureRequest) -> Case:
        param = getattr(request, "param", None)
        if isinstance(param, BrokenCase):
            raise DatasetError(param.problem)
        assert isinstance(param, Case), "the `case` fixture is parametrized at collection"
        return param

    def model_under_test(self, request: pytest.FixtureRequest, sample: int) -> Model:
        """The `model` fixture: its answers are recorded as the test's output."""
        entry = Recorder.entry(request.node)
        entry.sample = sample
        return Model(request.param, self.runtime, system=self._system_for(request.param), sample=sample,
                     on_complete=entry.add_completion, role=UNDER_TEST, on_submit=told)

    def model(self, name: str, sample: int = 0, role: str = UNDER_TEST) -> Model:
        """A model that a test uses but does not test (teacher, student, judge), or one that prefetch asks."""
        return Model(name, self.runtime, system=self._system_for(name), sample=sample, role=role)

    def _system_for(self, name: str) -> str | None:
        """The shorter student system prompt applies to every model but the teacher, the judge and a
        `recorded:` model (whose answers were given to the case's own messages)."""
        if name in (self.settings.teacher, self.settings.judge) or is_recorded(name):
            return None
        return self.settings.student_system

    # -- running -------------------------------------------------------------------------------

    def call_scope(self, item: pytest.Item) -> AbstractContextManager[grades.Scope]:
        """The grading scope of one test call: the session's judge, and the case's question."""
        case = item_params(item).get("case")
        scope = grades.Scope(judge=self.model(self.settings.judge, role="judge"), question=getattr(case, "question", None),
                             transcripts=[] if self.settings.keep_transcripts else None,
                             embedding_model=Model(self.settings.embedding_model, self.runtime, role="embeddings"))
        return grades.scoped(scope)


def default_judge_note(settings: Settings) -> str | None:
    """Model-graded checks are judged by the teacher unless --judge-model names a judge: said once when
    that teacher is no judge to lean on (retiring, a fine-tune that goes with its base, recorded answers)."""
    teacher = settings.teacher
    if settings.grader_model is not None:
        return None
    retires = retirement(teacher)
    when = f" on {retires.date.isoformat()} ({retires.source})" if retires else ""
    if is_recorded(teacher):
        why = "answers from a file and cannot judge"
    elif base_of(teacher) != teacher:
        why = f"is a fine-tuned model, which goes when its base {base_of(teacher)} retires{when}"
    elif retires:
        why = f"retires{when}"
    else:
        return None
    return f"model-graded checks are judged by the teacher {teacher} by default, which {why}: name a lasting judge with --judge-model"


def told(asked: Any, params: dict[str, Any], answer: Any) -> None:
    """The model under test tells the running test's listener (prefetch) each call it starts."""
    record_call(Call(COMPLETE, (asked,), params, answer))
