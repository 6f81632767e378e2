"""Shared fixtures: every test runs offline, against a simulator that the test itself starts and stops."""

from __future__ import annotations

import importlib
import pkgutil
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore2  # noqa: F401 - see below
import pytest

import pytest_distill
from pytest_distill.sim import SimServer

from .support import HOBANNU, TEST_KEY, HostileServer, Reply, qa_rows, write_jsonl
from .toy_model import build_toy_model, texts_of

# pytester's in-process runs put sys.modules back as they found it. httpx2 imports httpcore2 lazily and
# keeps its exception classes once mapped, so an httpcore2 first imported inside such a run would come
# back as a second copy whose timeouts httpx2 no longer recognises (a raw httpcore2.ReadTimeout, not the
# SDK's APITimeoutError). Imported here, before any run, it is the one copy.
# Likewise the plugin's own machinery, which a session imports only when it uses the plugin: a second
# copy of `grades` would hold its own running test, where the helpers a test file imported never look.
for module in pkgutil.walk_packages(pytest_distill.__path__, "pytest_distill."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real API: drop the user's OPENAI_* settings and point at a closed port."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")


@pytest.fixture(autouse=True)
def sigint_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves SIGINT ignored, replaced or blocked is named in a warning, and the state put back:
    the children that later tests start would inherit an ignored or blocked SIGINT, and a test that
    interrupts one (Ctrl-C while following a job) would wait for an interrupt that never comes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    yield
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    if blocked or signal.getsignal(signal.SIGINT) is not handler:
        warnings.warn(f"{request.node.nodeid} left SIGINT {'blocked' if blocked else 'changed'}; put back", stacklevel=1)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, handler)


@pytest.fixture
def make_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., SimServer]]:
    """Start simulators (seeded with the hobannu example unless told otherwise) and point OPENAI_* at the last one."""
    servers: list[SimServer] = []

    def start(seed: list[Path] | None = None, **options: Any) -> SimServer:
        server = SimServer(seed=[HOBANNU] if seed is None else seed, **options).start()
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_qa_sim(make_sim: Callable[..., SimServer], tmp_path: Path) -> Callable[[int], SimServer]:
    """Start a simulator seeded with `count` question/answer cases (the student answers some wrongly)."""
    return lambda count: make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", qa_rows(count))])


@pytest.fixture
def sim(make_sim: Callable[..., SimServer]) -> SimServer:
    """A simulator seeded with the hobannu example, with OPENAI_BASE_URL and OPENAI_API_KEY set for it."""
    return make_sim()


@pytest.fixture(scope="session")
def training_stack() -> Any:
    """torch, and what trl imports to train (`datasets` among it), imported once for the session.

    A session fixture is set up before a test's `pytester`, which puts sys.modules back as it found it
    when the test ends: imported inside such a test, `datasets` would be imported again by the next
    one and register its pyarrow types twice (ArrowKeyError). Skips where the [trl] extra is missing."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("datasets")
    pytest.importorskip("trl").SFTTrainer  # noqa: B018 - the lazy module imports it on access
    pytest.importorskip("trl.chat_template_utils")
    return torch


@pytest.fixture(scope="session")
def toy_model(training_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama chat model with a tokenizer learnt from hobannu, built offline (needs the [trl] extra)."""
    return build_toy_model(tmp_path_factory.mktemp("toy-model"), texts_of(HOBANNU))


@pytest.fixture(scope="session")
def trained_student(toy_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trl backend's output folder (the adapter, and the full model in `merged/`) after one short
    training of the toy model on hobannu (needs the [trl] extra)."""
    import hashlib
    import json

    from pytest_distill.distill.backends import TrainingRequest
    from pytest_distill.distill.trl_backend import AdapterOptions, train

    folder = tmp_path_factory.mktemp("trained")
    rows = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()][:8]
    training = write_jsonl(folder / "train.jsonl", [{"messages": row["messages"]} for row in rows])
    request = TrainingRequest(training_file=training, training_sha256=hashlib.sha256(training.read_bytes()).hexdigest(),
                              examples=len(rows), validation_file=None, student=f"hf:{toy_model}", suffix=None, seed=7,
                              metadata={}, epochs=1, learning_rate=3e-3, batch_size=4)
    return train(request, AdapterOptions(folder / "out", lora_rank=4), print).output


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[HostileServer]]:
    """Start hostile servers (OPENAI_BASE_URL points at the last one), stopped after the test."""
    started: list[HostileServer] = []

    class Started(HostileServer):
        def __init__(self, status: int = 200, body: object = None, reply: Reply | None = None) -> None:
            super().__init__(status, body, reply)
            threading.Thread(target=self.serve_forever, daemon=True).start()
            started.append(self)
            monkeypatch.setenv("OPENAI_BASE_URL", self.url)
            monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)

    yield Started
    for server in started:
        server.shutdown()
        server.server_close()
