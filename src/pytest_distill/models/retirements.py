"""When models retire: a dated table, for where the API does not say (its `shutdown_date`).

A fine-tuned model (`ft:BASE:ORG:SUFFIX:ID`) goes the day its base goes. The table names its source
and the day it was read, so a reader can tell how old it is; the API's own date wins where given.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

SOURCE = "OpenAI's deprecations page (platform.openai.com/docs/deprecations), announced 2026-10-14"
RETIRING = {
    "gpt-4o": datetime.date(2027, 1, 14),
    "gpt-4o-mini": datetime.date(2027, 1, 14),
    "gpt-4.1": datetime.date(2027, 1, 14),
    "gpt-4.1-mini": datetime.date(2027, 1, 14),
}
"""Model families (the alias and its dated snapshots) and the day they shut down, with every fine-tune on them."""
_SNAPSHOT = re.compile(r"(.+)-\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Retirement:
    date: datetime.date
    source: str

    def days_left(self, today: datetime.date) -> int:
        return (self.date - today).days


def base_of(model: str) -> str:
    """The model a fine-tune was built on (`ft:gpt-4o-mini-2024-07-18:acme::x1` -> gpt-4o-mini-2024-07-18);
    any other model as it is. A name on a declared endpoint (`NAME:MODEL`) is not a fine-tune."""
    parts = model.split(":")
    return parts[1] if parts[0] == "ft" and len(parts) >= 3 and parts[1] else model


def family(model: str) -> str:
    """A dated snapshot's alias (gpt-4o-2024-08-06 -> gpt-4o); any other name as it is."""
    match = _SNAPSHOT.fullmatch(model)
    return match.group(1) if match else model


def retirement(model: str) -> Retirement | None:
    """The table's retirement of a model or of a fine-tune's base, or None when it lists none."""
    date = RETIRING.get(family(base_of(model)))
    return Retirement(date, SOURCE) if date else None



RECORDED_HINT = ("answer from its recorded answers: a model named recorded:FILE.jsonl (also as --teacher) stands in for "
                 "it, FILE being what --distill-record wrote while it answered")


def gone_hint(model: str, today: datetime.date | None = None) -> str:
    """What to say of a model the API no longer knows (404 model_not_found): retired, by the table,
    when its date has passed (then nothing about making a fine-tune: none can be made on a retired base);
    for a fine-tune otherwise, that it exists once its job has succeeded, or is gone if it was deleted."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    found = retirement(model)
    if found is not None and found.days_left(today) <= 0:
        what = f"its base {base_of(model)}" if base_of(model) != model else model
        return f"{what} retired on {found.date.isoformat()} ({found.source}): {RECORDED_HINT}"
    if model.startswith("ft:"):
        return ("a fine-tuned model exists once its job has succeeded (`pytest --distill --distill-wait` follows the job "
                f"and prints its name); if it was deleted or has retired, {RECORDED_HINT}")
    return ""
