"""models.line: the Gate (at most N calls on the wire, tests' calls first; a cancelled waiter never costs a
place) and the SDK clients a Line makes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from pytest_distill.models import line as line_module
from pytest_distill.models.line import Gate, Line
from pytest_distill.models.types import Endpoint, ModelError

from .support import TEST_KEY


def test_a_waiter_cancelled_in_the_turn_its_place_is_freed_loses_no_place() -> None:
    """B waits behind A; B is cancelled (a prefetched call withdrawn) and A releases before B's task runs:
    the place goes on to C, and A's release does not fail."""

    async def scenario() -> list[str]:
        gate = Gate(1, wanted=lambda key: False)
        order: list[str] = []
        await gate.acquire("a")

        async def waiter(key: str) -> None:
            await gate.acquire(key)
            order.append(key)
            gate.release()

        b = asyncio.ensure_future(waiter("b"))
        c = asyncio.ensure_future(waiter("c"))
        await asyncio.sleep(0)  # both now wait in the gate
        assert gate.queued() == ["b", "c"]
        b.cancel()
        gate.release()  # in the same turn: b's task has not yet seen its cancellation
        await asyncio.wait_for(c, timeout=10)
        assert b.cancelled() and gate.queued() == []
        await asyncio.wait_for(gate.acquire("d"), timeout=10)  # the one place is free again
        return order

    assert asyncio.run(scenario()) == ["c"]


def test_a_call_a_test_waits_for_goes_before_calls_asked_ahead() -> None:
    async def scenario() -> list[str]:
        gate = Gate(1, wanted=lambda key: key == "wanted")
        order: list[str] = []
        await gate.acquire("first")

        async def waiter(key: str) -> None:
            await gate.acquire(key)
            order.append(key)
            gate.release()

        tasks = [asyncio.ensure_future(waiter(key)) for key in ("ahead-1", "ahead-2", "wanted")]
        await asyncio.sleep(0)
        gate.release()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        return order

    assert asyncio.run(scenario()) == ["wanted", "ahead-1", "ahead-2"]


def test_the_clients_of_a_process_share_one_tls_context_made_as_the_sdk_makes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One CA store a process, not one a client; SSL_CERT_FILE still counts, as it does for the SDK's own."""
    line_module._tls.cache_clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    line = Line(Endpoint("", "http://127.0.0.1:9/v1", key=TEST_KEY))
    with pytest.raises(ModelError, match="the client could not be made: FileNotFoundError"):
        line.make(openai.AsyncOpenAI, 5.0)
    monkeypatch.delenv("SSL_CERT_FILE")
    line_module._tls.cache_clear()
    clients = [line.make(openai.AsyncOpenAI, 5.0), line.make(openai.OpenAI, 5.0), line.make(openai.AsyncOpenAI, 5.0)]
    assert line_module._tls.cache_info().misses == 1 and line_module._tls.cache_info().hits == 2
    clients[1].close()
