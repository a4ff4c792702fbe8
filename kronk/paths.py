"""Where Kronk keeps its files: everything lives under one home directory.

`KRONK_HOME` (default `~/.kronk`) holds `libs/`, `models/`, `keys/`, `catalog/`,
`server/` (pid and log files) and `security.db`. Functions, not constants, so tests
can point `KRONK_HOME` at a temp dir per test.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from filelock import FileLock


def kronk_home() -> Path:
    """The root of all Kronk state, from `KRONK_HOME` or `~/.kronk`."""
    env = os.environ.get("KRONK_HOME")
    return Path(env).expanduser() if env else Path.home() / ".kronk"


def libs_root() -> Path:
    return kronk_home() / "libs"


def models_dir() -> Path:
    env = os.environ.get("KRONK_MODELS")
    return Path(env).expanduser() if env else kronk_home() / "models"


def keys_dir() -> Path:
    return kronk_home() / "keys"


def catalog_dir() -> Path:
    return kronk_home() / "catalog"


def server_dir() -> Path:
    return kronk_home() / "server"


def cache_dir() -> Path:
    """Downloads and build trees that may be reused but are never the source of truth."""
    return kronk_home() / "cache"


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename.

    A reader sees the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def file_lock(path: Path, *, wait: bool = True) -> FileLock:
    """The one way Kronk takes a cross-process lock: an exclusive lock on `path` for a
    `with` block (flock on POSIX, msvcrt on Windows, through `filelock`). It dies with
    the process, so a crash never leaves the store or an install locked. With
    `wait=False`, entering raises `filelock.Timeout` at once when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path, timeout=-1 if wait else 0, mode=0o600)
