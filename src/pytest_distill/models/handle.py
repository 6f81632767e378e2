"""`Model`: what the `model`, `teacher`, `student` and `judge` fixtures hand to a test."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .client import ModelRuntime
from .types import Completion, ModelError


def is_snapshot_of(served: str | None, name: str) -> bool:
    """True when the API's answer model `served` is `name` or a dated snapshot of it (gpt-4o-2024-08-06)."""
    return served is not None and served != "" and (
        served == name or re.fullmatch(re.escape(name) + r"-\d{4}-\d{2}-\d{2}", served) is not None)


class Model:
    """A named model: `complete(case_or_messages, **params)` returns a `Completion`.

    A case whose stored answer came from this very model is replayed without a call. Outside pytest,
    `Model("gpt-4o")` makes its own runtime from the usual OPENAI_* environment. `role` (model under
    test, teacher, judge, embeddings) is what its errors call it.
    """

    def __init__(self, name: str, runtime: ModelRuntime | None = None, *, system: str | None = None,
                 sample: int = 0, on_complete: Callable[[Completion], None] | None = None,
                 on_submit: Callable[[Any, dict[str, Any], concurrent.futures.Future[Completion]], None] | None = None,
                 role: str = "") -> None:
        self.name = name
        self.runtime = runtime or ModelRuntime()
        self.system = system
        self.sample = sample
        self.role = role
        self._on_complete = on_complete
        self._on_submit = on_submit
        """Told each call as it starts (what was asked, its parameters, the future answer)."""

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    def complete(self, case_or_messages: Any, **params: Any) -> Completion:
        with self._named_errors():
            return self._finish(self.runtime.wait(self.submit(case_or_messages, **params)))

    async def acomplete(self, case_or_messages: Any, **params: Any) -> Completion:
        """`complete` for async tests: awaits the same shared call without blocking the test's loop."""
        with self._named_errors():
            return self._finish(await asyncio.wrap_future(self.submit(case_or_messages, **params)))

    def chat(self, messages: Sequence[dict[str, Any]], *, sample: int = 0, optional: Mapping[str, Any] | None = None,
             **params: Any) -> Completion:
        """The request exactly as given (no system prompt, no replay, no recording): what a judge is asked."""
        with self._named_errors():
            return self.runtime.chat(self.name, messages, sample=sample, optional=optional, **params)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embedding vectors of texts, in order."""
        with self._named_errors():
            return self.runtime.embed(self.name, texts)

    @contextmanager
    def _named_errors(self) -> Iterator[None]:
        """A failed call says which role it served (the runtime knows models, not roles)."""
        try:
            yield
        except ModelError as exc:
            raise exc.in_role(self.role) from None

    def submit(self, case_or_messages: Any, **params: Any) -> concurrent.futures.Future[Completion]:
        """Start exactly the call `complete` would make, without waiting (prefetch): a later `complete`
        with the same arguments joins it. A replayed answer comes back as a future already done."""
        replayed = self._replay(case_or_messages, params)
        if replayed is None:
            future = self.runtime.submit_chat(self.name, self.messages(case_or_messages), sample=self.sample, **params)
        else:
            future = concurrent.futures.Future()
            future.set_result(replayed)
        if self._on_submit is not None:
            self._on_submit(case_or_messages, params, future)
        return future

    def _finish(self, completion: Completion) -> Completion:
        if self._on_complete:
            self._on_complete(completion)
        return completion

    def messages(self, case_or_messages: Any) -> list[dict[str, Any]]:
        """The messages sent for a case or a message list, with this model's system prompt if it has one."""
        messages: Sequence[dict[str, Any]] = getattr(case_or_messages, "messages", case_or_messages)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not self.system:
            return list(messages)
        rest = [m for m in messages if m.get("role") not in ("system", "developer")]
        return [{"role": "system", "content": self.system}, *rest]

    def _replay(self, case_or_messages: Any, params: dict[str, Any]) -> Completion | None:
        if params or self.system or not is_snapshot_of(getattr(case_or_messages, "origin_model", None), self.name):
            return None
        replayed: Completion | None = case_or_messages.replay(self.name)
        return replayed
