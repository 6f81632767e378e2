"""The values that model calls produce: what the rest of the package and the tests depend on.

Apart from the HTTP runtime (`client.py`), so that the cache, the `hf:` provider, datasets and the
ledger use these types without importing the runtime, and the runtime imports them without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DistillError

LOCAL_PREFIX = "hf:"
"""Models named `hf:...` run in this process (models/hf.py), not on the API."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class Completion:
    """A model's answer: `str(completion)` is its text, so it can be passed to any helper."""

    text: str
    model: str
    usage: Usage
    latency_s: float
    served_model: str = ""
    refusal: str | None = None
    cached: bool = False
    """Answered from the on-disk cache (`--distill-cache`): `latency_s` is the original call's."""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        """Short, for pytest's assertion messages: the text's beginning and the model."""
        return f"Completion({shorten(self.text, 40)!r}, model={self.model!r})"


def shorten(text: str, width: int) -> str:
    """`text` on one line, cut to at most `width` characters with an ellipsis (any script: no word splitting)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


class ModelError(DistillError):
    """A model call that failed for a reason outside the test (network, auth, limits, server).

    The plugin reports it as an error of the test, not a failure of the model under test. `status` is
    the HTTP status, `param` the request parameter the API blamed, when it named one.
    """

    def __init__(self, model: str, endpoint: str, message: str, status: int | None = None,
                 param: str | None = None) -> None:
        self.model, self.endpoint, self.status, self.param = model, endpoint, status, param
        where = f"{endpoint} for model {model!r}" if model else endpoint
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"{where} failed{code}: {message}")
