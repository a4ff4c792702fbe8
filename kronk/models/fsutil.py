"""File-system helpers the store and the downloader share: hashing, free space, locks.

Cross-process exclusion: `kronk.paths.file_lock`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from kronk.errors import InsufficientStorageError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file: the one file hash of the store, the downloader and the libs installer."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def existing_dir(path: Path) -> Path:
    """The nearest folder of `path` that exists (for disk_usage before mkdir)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(existing_dir(path)).free


def check_free_space(path: Path, needed: int, what: str) -> None:
    """Raise InsufficientStorageError when `needed` bytes do not fit on the disk of `path`."""
    free = free_bytes(path)
    if needed > free:
        raise InsufficientStorageError(
            f"not enough disk space for {what}: needs {format_bytes(needed)}, "
            f"{format_bytes(free)} free at {existing_dir(path)}",
            needed=needed,
            free=free,
        )


def format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def remove_empty_dirs(start: Path, stop: Path) -> None:
    """Remove `start` and its parents while they are empty, never `stop` or above."""
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
