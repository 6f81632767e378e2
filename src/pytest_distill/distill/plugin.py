"""`DistillStep`: the gate and the training after the run, on the controller only, exactly once.

Registered only with `--distill` or `--distill-dry-run` and never on an xdist worker. It checks at
start-up that the backend can run (a missing extra stops the session before any model call), and
at the end of the session, before the results file is written, runs the loop and hands what it
decided to the reporter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..datasets import BrokenCase, Case
from ..ledger import Entry
from ..models.client import ModelRuntime
from ..settings import Settings
from ..untrusted import printable
from . import backends

RAN = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
"""Exit statuses of a run that measured something: an interrupted or broken run decides nothing."""


class DistillStep:
    def __init__(self, config: pytest.Config, settings: Settings, entries: Sequence[Entry],
                 runtime: Callable[[], ModelRuntime], load: Callable[[str], Sequence[Case | BrokenCase]],
                 publish: Callable[[list[str], dict[str, Any], bool, list[str]], None]) -> None:
        backends.check_backend(settings)
        self.config, self.settings, self.entries = config, settings, entries
        self.runtime, self.load, self.publish = runtime, load, publish
        self._said = False
        """Whether a progress line was written yet (the first one ends pytest's line of dots)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The gate, the training file and the training; before the reporter writes the results file,
        which carries the outcome under "distill"."""
        if session.exitstatus not in RAN:
            return
        from . import loop  # imported when the run ends: a suite that never distills does not pay for it
        from .record import TrainingRecord

        s, cache = self.settings, getattr(self.config, "cache", None)
        out_dir: Path = s.results.parent if s.results else cache.mkdir("distill") if cache else self.config.rootpath / ".distill"
        outcome = loop.run_loop(loop.LoopInputs(
            settings=s, entries=self.entries, load=self.load, out_dir=out_dir,
            record=TrainingRecord(cache), args=self.config.invocation_params.args, say=self.say, runtime=self.runtime,
            trainer=lambda: backends.make_trainer(s.backend, backends.TrainerContext(s, self.runtime(), self.say))))
        self.publish(outcome.lines(), outcome.to_dict(), outcome.interrupted, outcome.closing)
        if outcome.interrupted:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        elif outcome.failed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def say(self, line: str) -> None:
        """A line on the terminal now (progress while following a training), not at the summary."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            if not self._said:
                reporter.write_line("")
                self._said = True
            reporter.write_line(printable(f"distill: {line}"))  # a job's events are the server's words
