"""pytest-distill: evaluate, compare and distill LLMs inside pytest.

The public names are imported on first use (PEP 562): pytest imports this package whenever it loads
the plugin, and a suite that never uses a helper should not pay for importing them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .datasets import Case
    from .graders.deterministic import matches_schema, string_check, valid_json, valid_xml
    from .graders.embedding import embedding_similarity
    from .graders.judged import (
        JudgeError,
        criteria_match,
        custom_prompt,
        factuality,
        semantic_similarity,
        sentiment,
        text_quality,
    )
    from .graders.references import any_of
    from .graders.registry import (
        registry_classify,
        registry_fuzzy_match,
        registry_includes,
        registry_json_match,
        registry_match,
    )
    from .graders.similarity import MetricUnavailable, text_similarity
    from .grades import Grade, record_grade
    from .models.handle import Model
    from .models.types import Completion, ModelError, Usage

_HOMES = {
    "Case": "datasets", "Grade": "grades", "Model": "models.handle",
    "Completion": "models.types", "ModelError": "models.types", "Usage": "models.types",
    "matches_schema": "graders.deterministic", "string_check": "graders.deterministic",
    "valid_json": "graders.deterministic", "valid_xml": "graders.deterministic",
    "embedding_similarity": "graders.embedding",
    "JudgeError": "graders.judged", "criteria_match": "graders.judged", "custom_prompt": "graders.judged",
    "factuality": "graders.judged", "semantic_similarity": "graders.judged", "sentiment": "graders.judged",
    "text_quality": "graders.judged",
    "any_of": "graders.references", "record_grade": "grades",
    **{name: "graders.registry" for name in ("registry_classify", "registry_fuzzy_match", "registry_includes",
                                              "registry_json_match", "registry_match")},
    "MetricUnavailable": "graders.similarity", "text_similarity": "graders.similarity",
}
"""Each public name and the module it lives in."""

__all__ = [
    "Case", "Completion", "Grade", "JudgeError", "MetricUnavailable", "Model", "ModelError", "Usage",
    "any_of", "criteria_match", "custom_prompt", "embedding_similarity", "factuality", "matches_schema",
    "record_grade", "registry_classify", "registry_fuzzy_match", "registry_includes",
    "registry_json_match", "registry_match", "semantic_similarity", "sentiment", "string_check", "text_quality",
    "text_similarity", "valid_json", "valid_xml",
]


_asked = False


def asked() -> bool:
    """Whether this process has taken a public name from the package (a test module imported a helper):
    then a session uses the plugin even where no test asks for its fixtures (`plugin.py`)."""
    return _asked


def __getattr__(name: str) -> Any:
    global _asked
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _asked = True
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
