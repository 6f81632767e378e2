"""What a model's tokens cost: the price table from the `distill_prices` ini lines over the defaults.

A model without a price shows its tokens and no cost: a guessed price would make the report lie.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..settings import DEFAULT_PRICES

SNAPSHOT = re.compile(r"(?P<alias>.+)-\d{4}-\d{2}-\d{2}")
"""A dated snapshot (`gpt-4o-mini-2024-07-18`) is priced like its alias (`gpt-4o-mini`)."""


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1_000_000


BATCH_RATE = 0.5
"""The Batch API bills half the list price."""


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]
    batch: bool = False
    """Prices at the Batch API's rate (--distill-batch)."""

    @classmethod
    def parse(cls, text: str | Sequence[str], where: str = "ini distill_prices") -> PriceTable:
        """Lines `MODEL INPUT_PER_1M OUTPUT_PER_1M`; blank lines and `#` comments are skipped."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        prices = {}
        for number, line in enumerate(lines, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                name, price_in, price_out = fields
                prices[name] = Price(float(price_in), float(price_out))
            except ValueError:
                raise ConfigError(
                    f"{where} line {number}: expected `MODEL INPUT_PER_1M OUTPUT_PER_1M`, got {line.strip()!r}") from None
            if not all(math.isfinite(price) and price >= 0 for price in (prices[name].input_per_1m, prices[name].output_per_1m)):
                raise ConfigError(f"{where} line {number}: a price is a number of dollars, 0 or more: {line.strip()!r}")
        return cls(prices)

    @classmethod
    def with_defaults(cls, text: str | Sequence[str]) -> PriceTable:
        """The user's lines over the defaults for the common OpenAI models."""
        return cls({**cls.parse(DEFAULT_PRICES).prices, **cls.parse(text).prices})

    def at_batch_rate(self) -> PriceTable:
        """The same table at the Batch API's rate."""
        return PriceTable({name: Price(p.input_per_1m * BATCH_RATE, p.output_per_1m * BATCH_RATE)
                           for name, p in self.prices.items()}, batch=True)

    def price(self, model: str) -> Price | None:
        """The model's own line, else (for `ft:BASE:org::id`) the fine-tuned price `ft:BASE`, else BASE's;
        a dated snapshot (`gpt-4o-mini-2024-07-18`) right after its own name is looked up as its alias."""
        names = [model]
        if model.startswith("ft:"):
            base = model.split(":")[1]
            names += [f"ft:{base}", base]
        return next((self.prices[name] for name in names for name in _with_alias(name) if name in self.prices), None)

    def per_1000_cases(self, model: str, prompt_tokens: int, completion_tokens: int, cases: int) -> float | None:
        """The estimated cost of 1,000 cases like these, or None without a price (or without cases)."""
        price = self.price(model)
        if price is None or not cases:
            return None
        return 1000 * price.cost(prompt_tokens, completion_tokens) / cases


def _with_alias(name: str) -> list[str]:
    """`gpt-4o-mini-2024-07-18` is priced as itself, else as `gpt-4o-mini`."""
    snapshot = SNAPSHOT.fullmatch(name)
    return [name, snapshot["alias"]] if snapshot else [name]
