"""Files the user hands a run to read (a baseline, judge labels, prices): read whole, or a usage error that
says why not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError


def read_input(path: Path, where: str, missing: str = "no such file") -> str:
    """The text of a file the user gave (a baseline, prices), or a usage error that says why not."""
    with reading(where, missing):
        return path.read_text(encoding="utf-8")


@contextmanager
def reading(where: str, missing: str = "no such file") -> Iterator[None]:
    """Reading a file the user gave (whole, or a line at a time): a file that cannot be read is a usage
    error that says why."""
    try:
        yield
    except FileNotFoundError:
        raise ConfigError(f"{where}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read: {exc}") from None
