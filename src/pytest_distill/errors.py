"""The plugin's own exceptions, under one base, so that a caller can tell them from everything else."""

from __future__ import annotations


class DistillError(Exception):
    """An error of pytest-distill's own (a model call, a dataset, a judge, a training, a setting)."""


class ConfigError(DistillError):
    """A setting or an input file that the run cannot start with: the plugin stops the session with it."""


def install_hint(extra: str) -> str:
    """How to add one of the package's extras: from the checkout or the git URL it came from, since the
    package is not on PyPI."""
    return (f'install the [{extra}] extra: pip install -e "./pytest-distill[{extra}]" from a checkout, '
            f'or pip install "pytest-distill[{extra}] @ git+GIT_URL"')
