"""Find the installed llama.cpp libraries, open them once, and check them first.

The search order is fixed and every failure is reported: `KRONK_LIB_PATH`, then the
installs under `$KRONK_HOME/libs/<os>/<arch>/<processor>/` (GPU builds before CPU).
Before any by-value struct is used we check that the build is one our declarations
were written for (version.json) and that the defaults llama.cpp reports read back
correctly through our struct layouts (kronk._native.abi), so a mismatched build gives
an ABIMismatchError instead of a segfault.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kronk._native.host import PROCESSOR_PREFERENCE, arch_name, library_filename, os_name
from kronk.errors import LibraryNotFoundError, NativeError

logger = logging.getLogger("kronk.native")

def _has_llama(folder: Path) -> bool:
    return (folder / library_filename("llama")).exists()


def find_lib_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding libllama to use, or LibraryNotFoundError listing where we looked."""
    env = os.environ if environ is None else environ
    tried: list[str] = []
    explicit = env.get("KRONK_LIB_PATH")
    if explicit:
        folder = Path(explicit).expanduser()
        if _has_llama(folder):
            return folder
        raise LibraryNotFoundError(f"KRONK_LIB_PATH={folder} holds no {library_filename('llama')}")
    home = Path(env["KRONK_HOME"]).expanduser() if env.get("KRONK_HOME") else Path.home() / ".kronk"
    base = home / "libs" / env.get("KRONK_OS", os_name()) / env.get("KRONK_ARCH", arch_name())
    wanted = env.get("KRONK_PROCESSOR")
    order = (wanted,) if wanted else PROCESSOR_PREFERENCE
    for processor in order:
        folder = base / processor
        if _has_llama(folder):
            return folder
        tried.append(str(folder))
    raise LibraryNotFoundError(
        "llama.cpp libraries are not installed (looked in " + ", ".join(tried) + "); run `kronk libs`"
    )


def read_install_record(folder: Path) -> dict[str, Any] | None:
    record = folder / "version.json"
    if not record.exists():
        return None
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise NativeError(f"{record} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class Libraries:
    """The opened libraries. `llama` also resolves ggml symbols (its dependencies)."""

    folder: Path
    ffi: Any
    llama: Any
    mtmd: Any | None
    build: int | None


class _Binding:
    """Opens the libraries once per process, under a lock, and initialises the backend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._libs: Libraries | None = None

    def get(self) -> Libraries:
        if self._libs is not None:
            return self._libs
        with self._lock:
            if self._libs is None:
                self._libs = self._open(find_lib_dir())
            return self._libs

    def _open(self, folder: Path) -> Libraries:
        from kronk._native import abi
        from kronk._native._ffi import ffi

        record = read_install_record(folder)
        build = record.get("build") if record else None
        abi.check_build(build, folder)
        try:
            llama = ffi.dlopen(str(folder / library_filename("llama")))
        except OSError as exc:
            raise LibraryNotFoundError(f"cannot open {folder / library_filename('llama')}: {exc}") from exc
        abi.check_symbols(ffi, llama, abi.LLAMA_AND_GGML_FUNCTIONS, folder)
        abi.check_defaults(ffi, llama, folder)
        mtmd = None
        mtmd_path = folder / library_filename("mtmd")
        if mtmd_path.exists():
            try:
                mtmd = ffi.dlopen(str(mtmd_path))
                abi.check_symbols(ffi, mtmd, abi.MTMD_FUNCTIONS, folder)
            except OSError as exc:
                logger.warning("libmtmd present but not loadable (%s); multimodal disabled", exc)
                mtmd = None
        from kronk._native import log

        log.install(ffi, llama, mtmd)
        llama.llama_backend_init()
        if llama.ggml_backend_dev_count() == 0:
            # Release archives ship the backends as loadable modules beside the libraries.
            llama.ggml_backend_load_all_from_path(str(folder).encode())
        logger.debug("loaded llama.cpp build %s from %s", build, folder)
        return Libraries(folder=folder, ffi=ffi, llama=llama, mtmd=mtmd, build=build)


_BINDING = _Binding()


def libraries() -> Libraries:
    """The process-wide opened libraries (opened and verified on first call)."""
    return _BINDING.get()
