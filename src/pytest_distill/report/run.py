"""How a run was made, so that a results file or a report read a month later says what it measured:
the plugin's version, when and how long, the simulator or the endpoints (base URLs, never a key),
the roles and the dataset specs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from ..ledger import Entry
from ..settings import Settings


def plugin_version() -> str:
    try:
        return metadata.version("pytest-distill")
    except metadata.PackageNotFoundError:
        return "unknown"


def describe(settings: Settings, entries: Sequence[Entry], started: float, finished: float,
             endpoints: Mapping[str, str]) -> dict[str, Any]:
    """The results file's "run": `endpoints` maps each endpoint's name to its base URL."""
    run: dict[str, Any] = {
        "plugin_version": plugin_version(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(finished - started, 3),
        "simulator": settings.sim,
        "endpoints": [{"name": name or "default", "base_url": url} for name, url in endpoints.items()],
        "roles": {"models_under_test": list(settings.models_under_test), "teacher": settings.teacher,
                  "student": settings.student, "judge": settings.judge},
        "datasets": list(dict.fromkeys(entry.dataset for entry in entries if entry.dataset)),
    }
    if settings.batch:
        run["batch"] = True
    if settings.shard:
        run["shard"] = "{}/{}".format(*settings.shard)
    if settings.distill or settings.dry_run:
        run["training_data"] = settings.train
    return run


def lines(run: Mapping[str, Any]) -> list[str]:
    """The same in words, for the HTML summary."""
    roles = run["roles"]
    where = "the offline simulator" if run["simulator"] else "the API"
    endpoints = ", ".join(f"{e['name']} {e['base_url']}" for e in run["endpoints"])
    return [f"pytest-distill {run['plugin_version']}, started {run['started']}, {run['duration_s']:.1f}s, "
            f"against {where} ({endpoints})",
            f"models under test: {', '.join(roles['models_under_test'])}; teacher {roles['teacher']}; "
            f"student {roles['student']}; judge {roles['judge']}",
            f"datasets: {', '.join(run['datasets']) or '-'}"
            + (f"; training data: {run['training_data']}" if "training_data" in run else "")]
