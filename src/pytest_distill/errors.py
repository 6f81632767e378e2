"""The plugin's own exceptions, under one base, so that a caller can tell them from everything else."""

from __future__ import annotations


class DistillError(Exception):
    """An error of pytest-distill's own (a model call, a dataset, a judge, a training, a setting)."""


class ConfigError(DistillError):
    """A setting or an input file that the run cannot start with: the plugin stops the session with it."""
