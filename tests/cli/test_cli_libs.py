"""`kronk libs` end to end through Click: install from a real release archive served on
127.0.0.1 and from a folder, list, remove, JSON output and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kronk.cli.main import cli
from tests.manage import libs_support as support
from tests.require import missing

pytestmark = pytest.mark.requires_libs


@pytest.fixture()
def env(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KRONK_LIB_PATH", raising=False)
    monkeypatch.setenv("KRONK_PROCESSOR", "cpu")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return isolated_home


@pytest.fixture(scope="module")
def real_bin() -> Path:
    if not support.real_libs_available():
        missing("libs", f"the built llama.cpp libraries are not in {support.REAL_BUILD_BIN}")
    return support.REAL_BUILD_BIN


@pytest.fixture(scope="module")
def release_server(tmp_path_factory: pytest.TempPathFactory, real_bin: Path) -> Iterator[support.LocalServer]:
    root = tmp_path_factory.mktemp("cli-libs-server")
    target = support.release_path(root, "gh", support.REAL_BUILD, support.linux_asset())
    support.make_tarball(target, "build/bin", support.real_lib_names())
    with support.serve(root) as server:
        yield server


def kronk(*args: str) -> Result:
    return CliRunner().invoke(cli, ["libs", *args], catch_exceptions=False)


def test_install_from_release_then_list(env: Path, release_server: support.LocalServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{release_server.url}/gh")
    result = kronk("--source", "release")
    assert result.exit_code == 0, result.output
    target = env / "libs" / "linux" / "x64" / "cpu"
    assert f"installed llama.cpp b11434 for linux/x64/cpu from release in {target}" in result.output
    assert (target / "libllama.so").exists()

    again = kronk()
    assert again.exit_code == 0 and "already installed" in again.output

    listing = kronk("--list")
    assert listing.exit_code == 0
    row = next(line for line in listing.output.splitlines() if "b11434" in line)
    assert "linux" in row and "cpu" in row and "release" in row and "*" in row


def test_json_install_list_remove(env: Path, real_bin: Path) -> None:
    installed = json.loads(kronk("--from-dir", str(real_bin), "--with-tools", "--json").output)
    assert (installed["build"], installed["source"], installed["tools"]) == (11434, "dir", True)
    assert installed["path"] == str(env / "libs" / "linux" / "x64" / "cpu")

    listed = json.loads(kronk("--list", "--json").output)
    assert [(r["processor"], r["current"]) for r in listed] == [("cpu", True)]

    removed = kronk("--remove")
    assert removed.exit_code == 0 and "removed llama.cpp b11434 (linux/x64/cpu)" in removed.output
    assert json.loads(kronk("--list", "--json").output) == []
    assert "no llama.cpp libraries installed" in kronk("--list").output


def test_processor_override(env: Path, real_bin: Path) -> None:
    result = kronk("--from-dir", str(real_bin), "--processor", "vulkan")
    assert result.exit_code == 0, result.output
    assert (env / "libs" / "linux" / "x64" / "vulkan" / "version.json").exists()
    assert kronk("--remove", "--processor", "vulkan").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--version", "foo"], "invalid llama.cpp version 'foo'"),
    (["--remove"], "no llama.cpp libraries are installed for linux/x64/cpu"),
    (["--source", "dir"], "--source dir needs --from-dir PATH"),
    (["--list", "--remove"], "mutually exclusive"),
])
def test_errors_are_one_line(env: Path, args: list[str], message: str) -> None:
    result = kronk(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 or "Usage:" in result.output


def test_every_source_failing(env: Path, monkeypatch: pytest.MonkeyPatch, release_server: support.LocalServer) -> None:
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{release_server.url}/missing")
    result = kronk("--version", "b3", "--json")
    assert result.exit_code == 1
    assert result.output.startswith("Error: could not install llama.cpp b3 for linux/x64/cpu — release:")
    assert len(result.output.strip().splitlines()) == 1


def test_combinations(env: Path) -> None:
    combos = json.loads(kronk("--combinations", "--json").output)
    assert {"os": "linux", "arch": "x64", "processor": "cpu", "release": ["ubuntu-x64.tar.gz"],
            "buildable": True} in combos
    assert "macos-arm64.tar.gz" in kronk("--combinations").output
