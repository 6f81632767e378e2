"""models.line.Gate: at most N calls on the wire, tests' calls first; a cancelled waiter never costs a place."""

from __future__ import annotations

import asyncio

from pytest_distill.models.line import Gate


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
