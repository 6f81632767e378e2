"""Files that readers see whole or not at all: results, caches and training files are written here.

They get the permissions of any new file (0644 under a umask of 022), like pytest's own outputs, not
the owner-only 0600 of `tempfile.mkstemp`: a CI step or a colleague must be able to read them.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path


def fresh_name(beside: Path, suffix: str) -> Path:
    """A hidden name in `beside`'s folder that nothing uses yet (128 random bits), for a file or
    folder that becomes `beside` once it is complete."""
    return beside.parent / f".{beside.name}.{secrets.token_hex(16)}{suffix}"


def replaceable(path: Path) -> bool:
    """Whether a file may be written whole at `path`: nothing is there, or a regular file (replacing a
    device's node, a pipe or a socket with a file would break the system, as root)."""
    return not path.exists() or path.is_file()


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never a half-written file."""
    if not replaceable(path):
        raise OSError(errno.EEXIST, "not a regular file, refused to replace it", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = fresh_name(path, ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask takes its share, as for any new file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def share_like_new_files(folder: Path) -> None:
    """Give every file under `folder` the mode a new file gets here (0644 under a umask of 022): what a
    library wrote owner-only (safetensors writes 0600) is published as readable as our other outputs.
    The mode is read from a probe file made the way `write_atomic` makes its files, so the umask is
    respected without changing it (`os.umask` would, for every thread)."""
    probe = fresh_name(folder / "mode", ".probe")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        mode = probe.stat().st_mode & 0o777
    finally:
        probe.unlink()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
