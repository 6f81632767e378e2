"""Fixtures for the simulator's tests: a seeded SimServer over real HTTP and the official client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from pytest_distill.sim import SimServer

from .data import seed_rows, write_jsonl

CLIENT_KEY = "sk-sim-test-key-0000"


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    """The standard seed: capitals, Japanese questions, numbered items and one long conversation."""
    return write_jsonl(tmp_path / "seed.jsonl", seed_rows())


@pytest.fixture
def server(seed_file: Path) -> Iterator[SimServer]:
    """A running simulator seeded with `seed_file`, whose fine-tuning jobs take 0.3 s."""
    with SimServer(seed=[seed_file], job_seconds=0.3) as running:
        yield running


@pytest.fixture
def client(server: SimServer) -> Iterator[openai.OpenAI]:
    """The official SDK pointed at `server`, without retries so each call is one request."""
    with openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    """One seeded simulator and client for a whole module, for tests of stateless endpoints
    (the judge, embeddings, models), which saves a server and a client per test."""
    seed = write_jsonl(tmp_path_factory.mktemp("seed") / "seed.jsonl", seed_rows())
    with SimServer(seed=[seed]) as running, openai.OpenAI(base_url=running.url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        yield sdk
