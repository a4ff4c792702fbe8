"""The install folder: what goes in it, its version.json, and the atomic swap.

An install is staged in a hidden sibling of its target (`.cpu.staging-*`), verified
there, then swapped in with two renames (old -> `.cpu.old-*`, staging -> target).
Whatever happens before the second rename, the previous install is untouched; a
crash between the renames is repaired by `recover` on the next run. One lock file
per target keeps two installers from racing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import Timeout

from kronk._native.host import library_filename
from kronk.errors import LibraryNotFoundError, LibsInstallError, NativeError
from kronk.manage.libs.platform import Platform
from kronk.models.fsutil import sha256_file
from kronk.paths import atomic_write_text, file_lock

logger = logging.getLogger("kronk.libs")

RECORD_NAME = "version.json"
TOOLS_DIR = "bin"
REQUIRED_LIBRARIES = ("llama", "ggml", "ggml-base", "mtmd")
RPC_LIBRARY = "ggml-rpc"
RPC_SERVER_NAMES = ("ggml-rpc-server", "rpc-server")
"""llama.cpp's tools/rpc program: `ggml-rpc-server` from a CMake build, `rpc-server` in older archives.
Installed into bin/ whenever the payload has it (with or without --with-tools): `kronk rpc-server` runs it."""


def is_library(name: str, os_name: str) -> bool:
    if os_name == "windows":
        return name.lower().endswith(".dll")
    if os_name == "darwin":
        return name.endswith(".dylib")
    return name.startswith("lib") and (name.endswith(".so") or ".so." in name)


def is_tool(path: Path, os_name: str) -> bool:
    """An executable program of the build (llama-server, llama-bench, ...)."""
    if path.is_symlink() or not path.is_file() or is_library(path.name, os_name):
        return False
    if os_name == "windows":
        return path.name.lower().endswith(".exe")
    return "." not in path.name and os.access(path, os.X_OK)


@dataclass(frozen=True, slots=True)
class InstallRecord:
    """An installed build, as stored in its folder's version.json."""

    path: Path
    platform: Platform
    build: int | None
    source: str
    installed_at: str | None = None
    source_tree: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    cpu_features: tuple[str, ...] | None = None
    """ISA flags a native build may use (kronk.manage.libs.cpu); None: a portable build, or not recorded."""

    @property
    def tag(self) -> str | None:
        return None if self.build is None else f"b{self.build}"

    @property
    def has_tools(self) -> bool:
        """The llama.cpp tools (llama-server, ...) are in bin/; the RPC server alone does not count."""
        return any(name.startswith(TOOLS_DIR + "/") and not _is_rpc_server(name.split("/", 1)[1])
                   for name in self.files)

    @property
    def has_rpc(self) -> bool:
        """The build has ggml's RPC backend and its server (`kronk rpc-server`, `--rpc`)."""
        stem = library_filename(RPC_LIBRARY, self.platform.os).split(".")[0]
        has_library = any("/" not in name and name.split(".")[0] == stem for name in self.files)
        return has_library and any(name.startswith(TOOLS_DIR + "/") and _is_rpc_server(name.split("/", 1)[1])
                                   for name in self.files)

    def version_json(self) -> dict[str, Any]:
        return {"build": self.build, "processor": self.platform.processor, "os": self.platform.os,
                "arch": self.platform.arch, "source": self.source, "installed_at": self.installed_at,
                "source_tree": self.source_tree, "files": dict(sorted(self.files.items())),
                "cpu_features": list(self.cpu_features) if self.cpu_features is not None else None}

    def to_dict(self) -> dict[str, Any]:
        """version.json plus where the install lives: what `--json` and the server report."""
        return {**self.version_json(), "path": str(self.path), "tools": self.has_tools, "rpc": self.has_rpc}


def _is_rpc_server(name: str) -> bool:
    return name.lower().removesuffix(".exe") in RPC_SERVER_NAMES


def read_record(folder: Path) -> InstallRecord | None:
    """The record of the install in `folder`, None if it has no version.json."""
    path = folder / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return InstallRecord(
            path=folder,
            platform=Platform(data["os"], data["arch"], data["processor"]),
            build=None if data.get("build") is None else int(data["build"]),
            source=str(data.get("source", "unknown")),
            installed_at=data.get("installed_at"),
            source_tree=data.get("source_tree"),
            files=dict(data.get("files") or {}),
            cpu_features=tuple(data["cpu_features"]) if data.get("cpu_features") is not None else None,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NativeError(f"{path} is unreadable: {exc}") from exc


def write_record(record: InstallRecord) -> None:
    atomic_write_text(record.path / RECORD_NAME, json.dumps(record.version_json(), indent=2) + "\n", mode=0o644)


def now_utc() -> str:
    return datetime.now(UTC).isoformat()


# --- staging -------------------------------------------------------------------


def _copy_entry(entry: Path, dest: Path, payload: Path) -> None:
    """Copy a file, or recreate a symlink that points at a sibling (libllama.so -> libllama.so.0)."""
    if entry.is_symlink():
        link = os.readlink(entry)
        if os.sep not in link and "/" not in link and (payload / link).exists():
            os.symlink(link, dest)
            return
        if not entry.exists():
            raise LibsInstallError(f"{entry} is a broken symlink")
    shutil.copy2(entry, dest)


def stage_payload(payload: Path, staging: Path, platform: Platform, *, with_tools: bool) -> dict[str, str]:
    """Copy the libraries (and tools into bin/) from a build or archive folder; return {name: sha256}."""
    names = sorted(p.name for p in payload.iterdir())
    libraries = [n for n in names if is_library(n, platform.os)]
    if not libraries:
        raise LibraryNotFoundError(f"{payload} holds no llama.cpp libraries")
    for name in libraries:
        _copy_entry(payload / name, staging / name, payload)
    # Build folders and archives keep tools beside the libraries; a Kronk install keeps them in bin/.
    programs = {p.name: p for folder in (payload / TOOLS_DIR, payload) if folder.is_dir()
                for p in folder.iterdir() if is_tool(p, platform.os)}
    tools = {name: path for name, path in programs.items() if with_tools or _is_rpc_server(name)}
    if with_tools and not any(not _is_rpc_server(name) for name in tools):
        raise LibsInstallError(f"{payload} holds no llama.cpp tools (asked for --with-tools)")
    if tools:
        bin_dir = staging / TOOLS_DIR
        bin_dir.mkdir()
        for name, path in sorted(tools.items()):
            shutil.copy2(path, bin_dir / name)
        _link_libraries_into_bin(staging, bin_dir, libraries, platform)
    return file_digests(staging)


def _link_libraries_into_bin(staging: Path, bin_dir: Path, libraries: list[str], platform: Platform) -> None:
    """Tools look for libraries in their own folder ($ORIGIN, or beside the .exe on Windows)."""
    for name in libraries:
        if platform.os == "windows":
            shutil.copy2(staging / name, bin_dir / name)
        else:
            os.symlink(os.path.join("..", name), bin_dir / name)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every regular file (symlinks excluded), keyed by posix path relative to `folder`."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != RECORD_NAME:
            digests[path.relative_to(folder).as_posix()] = sha256_file(path)
    return digests


def check_required(folder: Path, os_name: str) -> None:
    missing = [library_filename(stem, os_name) for stem in REQUIRED_LIBRARIES
               if not (folder / library_filename(stem, os_name)).exists()]
    if missing:
        raise LibraryNotFoundError(f"the libraries are incomplete: missing {', '.join(missing)}")


def verify_staged(folder: Path, platform: Platform) -> bool:
    """Presence of every library we need, then the binding's ABI check when it can run here.

    Returns whether the ABI check ran (it needs the target's OS and arch).
    """
    check_required(folder, platform.os)
    if not platform.is_host():
        return False
    from kronk._native.abi import verify_lib_dir

    verify_lib_dir(folder)
    return True


# --- the target folder ----------------------------------------------------------


def staging_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; libraries are for every user of the machine
    return staging


def swap_in(staging: Path, target: Path) -> None:
    """Make `staging` the install at `target`, keeping the old one until the new one is in place."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover(target: Path) -> None:
    """Finish or undo what an interrupted run left beside `target` (call under the lock)."""
    parent = target.parent
    if not parent.is_dir():
        return
    for stale in parent.glob(f".{target.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    olds = sorted(parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not target.exists():
        logger.warning("restoring %s from the interrupted install %s", target, olds[0].name)
        os.rename(olds[0], target)
        olds = olds[1:]
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def remove_tree(target: Path) -> None:
    """Delete an install: rename it out of the way first so a reader never sees half of it."""
    doomed = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


@contextmanager
def install_lock(target: Path) -> Iterator[None]:
    """Hold the per-target lock; LibsInstallError if another installer has it (never wait forever)."""
    try:
        lock = file_lock(target.with_name(f".{target.name}.lock"), wait=False)
        lock.acquire()
    except Timeout:
        raise LibsInstallError(f"another `kronk libs` is working on {target}; try again when it ends") from None
    except OSError as exc:
        raise LibsInstallError(f"cannot write to {target.parent}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        lock.release()
