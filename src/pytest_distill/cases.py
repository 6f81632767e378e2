"""Which cases a test gets: the dataset spec of its marker or of an option, loaded once per session."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from . import progress
from .datasets import PAGE_SIZE, BrokenCase, Case, DatasetError, DatasetSpec, StoredCompletions, load_jsonl, parse_spec
from .models.client import ModelRuntime
from .models.types import ModelError, shorten
from .settings import Settings


class CaseSource:
    """The session's datasets: each spec's cases, read once and shared by every test that names it."""

    def __init__(self, config: pytest.Config, settings: Settings, runtime: Callable[[], ModelRuntime],
                 cache_dir: Callable[[str], Path | None]) -> None:
        self.config, self.settings, self.runtime, self.cache_dir = config, settings, runtime, cache_dir
        self._loaded: dict[tuple[str, tuple[Path, ...]], list[Case | BrokenCase]] = {}

    def for_test(self, metafunc: pytest.Metafunc) -> list[Case | BrokenCase]:
        """The cases of a test that asks for `case`: its marker's dataset, else --distill-dataset."""
        marker = metafunc.definition.get_closest_marker("distill_dataset")
        where = f"{metafunc.definition.nodeid} asks for `case`"
        if marker is not None:
            if len(marker.args) != 1 or not isinstance(marker.args[0], str):
                raise pytest.Collector.CollectError(f"{where}: distill_dataset takes one dataset spec string")
            text, dirs = marker.args[0], (metafunc.definition.path.parent, self.config.rootpath)
        elif self.settings.dataset:
            text, dirs = self.settings.dataset, self._option_dirs()
        else:
            raise pytest.Collector.CollectError(
                f"{where} but has no dataset: add @pytest.mark.distill_dataset(\"stored:split=test\") "
                "(or a .jsonl path), or pass --distill-dataset")
        try:
            cases = self.load(text, dirs)
        except (DatasetError, ModelError) as exc:
            # An error of the tests that use this dataset (each gets one broken case saying why), not of the
            # session: the other tests of the run still run.
            cases = [BrokenCase("dataset", text, str(exc) if text in str(exc) else f"dataset {text!r}: {exc}")]
        return in_shard(cases, self.settings.shard) if self.settings.shard else cases

    def for_option(self, text: str) -> list[Case | BrokenCase]:
        """The cases of a spec given as an option (--distill-train, --distill-validation)."""
        return self.load(text, self._option_dirs())

    def _option_dirs(self) -> tuple[Path, Path]:
        """Where a path given as an option is looked up: where pytest was run, then the rootdir."""
        return self.config.invocation_params.dir, self.config.rootpath

    def load(self, text: str, dirs: tuple[Path, ...]) -> list[Case | BrokenCase]:
        """The cases of a dataset spec, loaded once per session."""
        key = (text, dirs)
        if key not in self._loaded:
            spec = parse_spec(text, dirs)
            if spec.path is None:
                stored = StoredCompletions(self.runtime(), self.cache_dir("distill-stored"), progress.collecting(self.config))
                cases = stored.load(spec)
            else:
                cases = load_jsonl(spec.path, text, self.settings.max_line_bytes)
            if not cases:
                raise DatasetError(f"dataset {text!r} has no cases" + (f": {self._no_stored_cases(spec)}" if spec.stored else ""))
            self._loaded[key] = cases
        return self._loaded[key]

    def _no_stored_cases(self, spec: DatasetSpec) -> str:
        """Why a stored spec found nothing: an unseeded simulator stores nothing, so say how to seed it; a
        metadata filter may name a value no completion has, so say the values the latest ones have."""
        if self.settings.sim and not self.settings.sim_seed:
            return ("the simulator (--distill-sim) holds no stored completions: seed it with --distill-sim-seed "
                    "FILE.jsonl (repeatable) or the ini setting distill_sim_seed, one chat-format case a line")
        why = "no stored completion matches its filters"
        if not spec.metadata:
            return why
        try:
            found = StoredCompletions(self.runtime(), None).values(spec)
        except ModelError:
            return why
        said = [f"{key} is one of {', '.join(shorten(repr(value), 60) for value in values)}" if values else f"none of them has {key}"
                for key, values in found.items()]
        return f"{why}; among the latest {PAGE_SIZE} stored completions, {'; '.join(said)}"


def shard_of(case_id: str, count: int) -> int:
    """Which of `count` slices (1 to count) a case is in: from the SHA-256 of its id alone, so the same on
    every machine, for every model and repeat, whatever the order or the other lines of the file."""
    return int.from_bytes(hashlib.sha256(case_id.encode("utf-8", "surrogatepass")).digest()[:8], "big") % count + 1


def in_shard(cases: Sequence[Case | BrokenCase], shard: tuple[int, int]) -> list[Case | BrokenCase]:
    """`--distill-shard I/N`: the cases of slice I, in the dataset's order."""
    index, count = shard
    return [case for case in cases if shard_of(case.id, count) == index]
