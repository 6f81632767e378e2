"""The lowest supported versions: `.ci/lowest.txt`, which CI's second run installs, pins each package at
pyproject.toml's lower bound, so a bound cannot be raised or lowered without the run that vouches for it."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .support import REPO

tomllib = pytest.importorskip("tomllib", reason="pyproject.toml is read with tomllib (Python 3.11+)")

TOOLS = {"mypy", "ruff", "py-spy", "types-jsonschema", "types-pyyaml"}
"""[dev]'s developer tools: the fast suite does not run them, so the lowest run cannot vouch for their bounds."""


def lower_bounds() -> dict[str, Version]:
    """The `>=` bound of every package the fast suite runs with: the core dependencies, [evals] and [dev]."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    bounds: dict[str, Version] = {}
    for line in [*project["dependencies"], *extras["evals"], *extras["dev"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == "pytest-distill" or name in TOOLS:
            continue
        (bound,) = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        bounds[name] = bound
    return bounds


def pinned() -> dict[str, Version]:
    """`.ci/lowest.txt`'s `name==version` lines."""
    pins: dict[str, Version] = {}
    for line in (REPO / ".ci" / "lowest.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_lowest_run_pins_every_package_at_pyproject_s_lower_bound() -> None:
    bounds = lower_bounds()
    assert {"pytest", "openai", "httpx2", "pytest-xdist", "pytest-html"} <= bounds.keys()
    assert pinned() == bounds
