"""`python -m pytest_distill.exit inventory`: the account's fine-tuned models and when each retires.

A fine-tune goes the day its base goes (gpt-4o, gpt-4o-mini, gpt-4.1 and gpt-4.1-mini on 2027-01-14).
The models come from `GET /models` (ids `ft:...`) and from the fine-tuning jobs that made one; the
date is the API's `shutdown_date` where it gives one, else the package's dated table (it names its
source). Soonest first, so the list is the order to record them in (`--distill-record`). It reads
OPENAI_BASE_URL and OPENAI_API_KEY as the SDK does; everything the server sends is read as hostile.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .models.client import redact
from .models.retirements import Retirement, base_of, retirement
from .models.types import shorten

API_SOURCE = "the API's shutdown_date"
SHOWN_ID = 80
"""A model id longer than this (a hostile server's) is cut in the table; the JSON keeps it whole."""


@dataclass(frozen=True)
class FineTuned:
    """One fine-tuned model of the account, with its base and its retirement (None: none announced)."""

    model: str
    base: str
    retires: Retirement | None

    def days_left(self, today: datetime.date) -> int | None:
        return self.retires.days_left(today) if self.retires else None

    def to_dict(self, today: datetime.date) -> dict[str, Any]:
        return {"model": self.model, "base": self.base, "retires": self.retires.date.isoformat() if self.retires else None,
                "days_left": self.days_left(today), "source": self.retires.source if self.retires else None}


def inventory(models: Iterable[Any], jobs: Iterable[Any]) -> list[FineTuned]:
    """The fine-tuned models among `GET /models` items and the jobs' results, soonest retirement first
    (then by name; those with none announced last). An item off the API's shape is left out."""
    found: dict[str, FineTuned] = {}
    for item in models:
        model = _text(_field(item, "id"))
        if model and model.startswith("ft:"):
            found[model] = FineTuned(model, base_of(model), _shutdown(_field(item, "shutdown_date")) or retirement(model))
    for job in jobs:
        model = _text(_field(job, "fine_tuned_model"))
        if model and model not in found:
            base = _text(_field(job, "model")) or base_of(model)
            found[model] = FineTuned(model, base_of(base), retirement(base) or retirement(model))
    never = datetime.date.max
    return sorted(found.values(), key=lambda ft: (ft.retires.date if ft.retires else never, ft.model))


def lines(fine_tuned: Sequence[FineTuned], today: datetime.date, where: str) -> list[str]:
    """The table people read, and what to do next."""
    if not fine_tuned:
        return [f"no fine-tuned models at {where}"]
    rows = [("model", "base", "retires", "days left", "date from")]
    for ft in fine_tuned:
        days = ft.days_left(today)
        rows.append((shorten(ft.model, SHOWN_ID), shorten(ft.base, SHOWN_ID),
                     ft.retires.date.isoformat() if ft.retires else "none announced",
                     "" if days is None else ("retired" if days < 0 else str(days)),
                     "" if ft.retires is None else "API" if ft.retires.source == API_SOURCE else "table"))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    table = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    sources = sorted({ft.retires.source for ft in fine_tuned if ft.retires and ft.retires.source != API_SOURCE})
    notes = [f"table: {source}" for source in sources]
    first = next((ft for ft in fine_tuned if ft.retires and ft.days_left(today) is not None), None)
    if first is not None:
        notes.append(f"record each while it answers: pytest --model {first.model} --distill-record answers.jsonl; "
                     "then --model recorded:answers.jsonl stands in for it (docs: leaving-openai.md)")
    return [f"{len(fine_tuned)} fine-tuned models at {where}, soonest retirement first (today {today.isoformat()}):",
            *table, *notes]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.exit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("inventory", help="the account's fine-tuned models, their base and its retirement")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    args = parser.parse_args(argv)
    import openai

    today = datetime.datetime.now(datetime.timezone.utc).date()
    try:
        with openai.OpenAI(max_retries=2) as client:
            where = str(client.base_url).rstrip("/")
            models = list(client.models.list())
            jobs = [job for job in client.fine_tuning.jobs.list(limit=100) if _field(job, "status") == "succeeded"]
    except openai.OpenAIError as exc:
        print(f"error: {redact(str(exc), os.environ.get('OPENAI_API_KEY'))}", file=sys.stderr)
        return 2
    found = inventory(models, jobs)
    if args.json:
        print(json.dumps([ft.to_dict(today) for ft in found], ensure_ascii=False, indent=2))
    else:
        print("\n".join(lines(found, today, where)))
    return 0


def _field(item: Any, name: str) -> Any:
    """A field of an SDK object, or of its extra fields (a server's own), or None."""
    value = getattr(item, name, None)
    if value is None:
        value = (getattr(item, "model_extra", None) or {}).get(name)
    return value


def _text(value: Any) -> str | None:
    """A model id as the server gave it, if it is one: text, on one line, of sane length."""
    if isinstance(value, str) and value and len(value) <= 256 and value.isprintable():
        return value
    return None


def _shutdown(value: Any) -> Retirement | None:
    """The API's `shutdown_date` (YYYY-MM-DD, or a Unix time), or None when it gives none or no date."""
    try:
        if isinstance(value, str):
            return Retirement(datetime.date.fromisoformat(value[:10]), API_SOURCE)
        if isinstance(value, int) and not isinstance(value, bool):
            return Retirement(datetime.datetime.fromtimestamp(value, datetime.timezone.utc).date(), API_SOURCE)
    except (ValueError, OverflowError, OSError):
        return None
    return None


if __name__ == "__main__":
    raise SystemExit(main())
