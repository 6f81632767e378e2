"""Files the user hands a run to read (a baseline, judge labels, prices): read whole, or a usage error that
says why not."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


def read_input(path: Path, where: str, missing: str = "no such file") -> str:
    """The text of a file the user gave (a baseline, judge labels), or a usage error that says why not."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read: {exc}") from None
