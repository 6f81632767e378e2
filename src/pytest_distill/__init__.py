"""pytest-distill: evaluate, compare and distill LLMs inside pytest."""

from .datasets import Case
from .grades import Grade
from .graders.deterministic import matches_schema, string_check, valid_json, valid_xml
from .models.client import Completion, ModelError, Usage
from .models.handle import Model

__all__ = [
    "Case", "Completion", "Grade", "Model", "ModelError", "Usage",
    "matches_schema", "string_check", "valid_json", "valid_xml",
]
