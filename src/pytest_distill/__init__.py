"""pytest-distill: evaluate, compare and distill LLMs inside pytest."""

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
from .graders.similarity import MetricUnavailable, text_similarity
from .grades import Grade
from .models.handle import Model
from .models.types import Completion, ModelError, Usage

__all__ = [
    "Case", "Completion", "Grade", "JudgeError", "MetricUnavailable", "Model", "ModelError", "Usage",
    "any_of", "criteria_match", "custom_prompt", "embedding_similarity", "factuality", "matches_schema",
    "semantic_similarity", "sentiment", "string_check", "text_quality", "text_similarity", "valid_json", "valid_xml",
]
