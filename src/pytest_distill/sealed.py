"""Cache entries that say what they answer and prove they are as written.

An entry names its claim (the request key's digest, a stored completion's id) and carries the SHA-256
of its content with that claim: an entry copied under another name, or edited by hand, reads as no
entry, so the answer is asked for again rather than served wrong. Not a defence against someone who
recomputes the digest: against mistakes, stale copies and tools that rewrite files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import strict_json


def seal(claim: str, entry: Mapping[str, Any]) -> str:
    """The entry as JSON text, with its claim and digest."""
    body = {**entry, "claim": claim}
    return json.dumps({**body, "sha256": _digest(body)}, ensure_ascii=False)


def opened(text: str, claim: str) -> dict[str, Any] | None:
    """The entry a sealed text holds, when it is strict JSON that claims `claim` with a matching digest."""
    try:
        data = strict_json.loads(text)
    except strict_json.NotJSON:
        return None
    if not isinstance(data, dict):
        return None
    digest = data.pop("sha256", None)
    if data.get("claim") != claim or digest != _digest(data):
        return None
    del data["claim"]
    return data


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
