"""OpenAI Evals definitions as pytest suites.

`python -m pytest_distill.evals import EVAL.json [--data FILE.jsonl] [-o tests/test_NAME.py]` writes
a pytest file from an eval's `data_source_config` and `testing_criteria` (`convert.py`); the file it
writes uses the plugin's helpers and the few small functions of `runtime.py`, imported from here.
"""

from __future__ import annotations

from .runtime import fill, multi, python_grader, sample_of

__all__ = ["fill", "multi", "python_grader", "sample_of"]
