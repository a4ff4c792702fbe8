"""Building from source with CMake: the exact invocation, a real (tiny) CMake build whose
output runs from its install folder, and — marked slow — the real llama.cpp build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kronk.errors import LibsInstallError
from kronk.manage.libs import LibsManager, Platform, ProgressEvent, Stage
from kronk.manage.libs import build as libs_build
from kronk.manage.libs import install as inst
from tests import real_llama
from tests.require import missing

CPU = Platform("linux", "x64", "cpu")
pytestmark = pytest.mark.usefixtures("libs_env")
needs_cmake = pytest.mark.usefixtures("c_toolchain")

TINY_CMAKE = """\
cmake_minimum_required(VERSION 3.14)
project(tiny C)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_library(ggml-base SHARED base.c)
add_library(ggml SHARED ggml.c)
target_link_libraries(ggml ggml-base)
add_library(llama SHARED llama.c)
target_link_libraries(llama ggml)
set_target_properties(llama PROPERTIES VERSION 0.6.0 SOVERSION 0)
add_library(mtmd SHARED mtmd.c)
target_link_libraries(mtmd llama)
add_library(ggml-rpc SHARED rpc.c)
target_link_libraries(ggml-rpc ggml-base)
target_link_libraries(ggml ggml-rpc)
add_executable(ggml-rpc-server tool.c)
target_link_libraries(ggml-rpc-server mtmd)
foreach(tool llama-bench llama-batched-bench llama-completion llama-server llama-tokenize)
  add_executable(${tool} tool.c)
  target_link_libraries(${tool} mtmd)
endforeach()
"""
TINY_SOURCES = {
    "base.c": "int base_answer(void) { return 40; }\n",
    "ggml.c": "int base_answer(void);\nint ggml_answer(void) { return base_answer() + 1; }\n",
    "llama.c": "int ggml_answer(void);\nint llama_answer(void) { return ggml_answer() + 1; }\n",
    "rpc.c": "int rpc_answer(void) { return 0; }\n",
    "mtmd.c": "int llama_answer(void);\nint mtmd_answer(void) { return llama_answer(); }\n",
    "tool.c": '#include <stdio.h>\nint mtmd_answer(void);\n'
              'int main(void) { printf("%d\\n", mtmd_answer()); return 0; }\n',
}


def _tiny_tree(root: Path, broken: bool = False) -> Path:
    root.mkdir(parents=True)
    (root / "CMakeLists.txt").write_text(TINY_CMAKE)
    for name, text in TINY_SOURCES.items():
        (root / name).write_text(text if not (broken and name == "llama.c") else "this is not C;\n")
    return root


def test_configure_command_is_the_documented_one(tmp_path: Path) -> None:
    cmd = libs_build.configure_command("cmake", tmp_path / "src", tmp_path / "b", CPU)
    assert cmd[:5] == ["cmake", "-S", str(tmp_path / "src"), "-B", str(tmp_path / "b")]
    for flag in ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_BUILD_TESTS=OFF",
                 "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
                 "-DLLAMA_OPENSSL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF",
                 "-DLLAMA_BUILD_APP=OFF", "-DGGML_NATIVE=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN"):
        assert flag in cmd
    assert not any(flag.startswith(("-DGGML_CUDA", "-DGGML_VULKAN", "-DGGML_HIP")) for flag in cmd)


@pytest.mark.parametrize("platform, flag", [
    (Platform("linux", "x64", "cuda"), "-DGGML_CUDA=ON"),
    (Platform("linux", "x64", "vulkan"), "-DGGML_VULKAN=ON"),
    (Platform("linux", "x64", "rocm"), "-DGGML_HIP=ON"),
    (Platform("darwin", "arm64", "cpu"), "-DGGML_METAL=OFF"),
    (Platform("darwin", "arm64", "metal"), "-DCMAKE_INSTALL_RPATH=@loader_path"),
])
def test_backend_flags(platform: Platform, flag: str, tmp_path: Path) -> None:
    assert flag in libs_build.configure_command("cmake", tmp_path, tmp_path, platform)


def test_build_targets(tmp_path: Path) -> None:
    libs_only = libs_build.build_command("cmake", tmp_path, with_tools=False, jobs=2)
    assert libs_only[libs_only.index("--target") + 1:] == ["llama", "mtmd", "ggml-rpc", "ggml-rpc-server"]
    assert "-j" in libs_only and "2" in libs_only
    tools = libs_build.build_command("cmake", tmp_path, with_tools=True, jobs=2)
    assert tools[tools.index("--target") + 1:] == ["llama", "mtmd", "ggml-rpc", "ggml-rpc-server", "llama-bench",
                                                   "llama-batched-bench", "llama-completion", "llama-server",
                                                   "llama-tokenize"]


def test_source_builds_enable_rpc(tmp_path: Path) -> None:
    """`kronk rpc-server` and --rpc need ggml-rpc in every build made here (docs/rpc.md)."""
    assert "-DGGML_RPC=ON" in libs_build.configure_command("cmake", tmp_path, tmp_path, CPU)


def test_missing_toolchain_is_reported_before_building(tmp_path: Path) -> None:
    with pytest.raises(LibsInstallError, match="cmake is not installed"):
        libs_build.check_toolchain(CPU, {"PATH": str(tmp_path)})
    if shutil.which("cmake") is not None:
        path = os.pathsep.join([str(Path(shutil.which("cmake")).parent)])
        with pytest.raises(LibsInstallError, match="nvcc"):
            libs_build.check_toolchain(Platform("linux", "x64", "cuda"), {"PATH": path})


@needs_cmake
def test_real_cmake_build_runs_from_its_install_folder(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    tree = _tiny_tree(tmp_path / "src")
    out = libs_build.build(tree, tmp_path / "build", CPU, with_tools=True, progress=events.append,
                           environ=dict(os.environ), jobs=2)
    assert out == (tmp_path / "build" / "bin").resolve()
    libs_only = tmp_path / "libs-only"
    libs_only.mkdir()
    record = inst.InstallRecord(path=libs_only, platform=CPU, build=1, source="source",
                                files=inst.stage_payload(out, libs_only, CPU, with_tools=False))
    assert record.has_rpc and not record.has_tools  # the RPC server comes with every build
    percents = [e.done for e in events if e.stage is Stage.BUILD and e.done is not None]
    assert percents and percents[-1] == 100

    staging = tmp_path / "install"
    staging.mkdir()
    files = inst.stage_payload(out, staging, CPU, with_tools=True)
    assert "bin/llama-server" in files and "libllama.so.0.6.0" in files
    assert "bin/ggml-rpc-server" in files and "libggml-rpc.so" in files
    shutil.rmtree(tmp_path / "build")  # nothing may point back into the build folder
    moved = tmp_path / "elsewhere"
    staging.rename(moved)
    run = subprocess.run([str(moved / "bin" / "llama-server")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"


@needs_cmake
def test_build_folder_of_another_tree_is_started_afresh(tmp_path: Path) -> None:
    first = _tiny_tree(tmp_path / "one")
    second = _tiny_tree(tmp_path / "two")
    for tree in (first, second):
        out = libs_build.build(tree, tmp_path / "build", CPU, with_tools=False, progress=lambda e: None,
                               environ=dict(os.environ), jobs=2)
    assert (out / "libllama.so").exists()
    assert str(second.resolve()) in (tmp_path / "build" / "CMakeCache.txt").read_text()


@needs_cmake
def test_failing_build_reports_the_compiler_error(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "src", broken=True)
    with pytest.raises(LibsInstallError, match="cmake build failed") as info:
        libs_build.build(tree, tmp_path / "build", CPU, with_tools=False, progress=lambda e: None,
                         environ=dict(os.environ), jobs=1)
    assert "llama.c" in str(info.value)


@needs_cmake
def test_interrupted_build_kills_cmake(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "src")

    def stop(event: ProgressEvent) -> None:
        if event.stage is Stage.BUILD and event.done is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        libs_build.build(tree, tmp_path / "build", CPU, with_tools=False, progress=stop,
                         environ=dict(os.environ), jobs=1)


def test_source_tree_that_is_not_llama_cpp(libs_env: Path, tmp_path: Path) -> None:
    with pytest.raises(LibsInstallError, match="not a llama.cpp source tree"):
        LibsManager().install(source_tree=tmp_path)


REAL_TREE = real_llama.source_tree()
# Kept between runs so only the first run compiles (~5 min on 2 cores); later runs are incremental.
REAL_BUILD_DIR = Path(os.environ.get("KRONK_TEST_LIBS_BUILD_DIR", Path.home() / ".cache/kronk-dev/libs-test-build"))


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the first run compiles llama.cpp; later runs reuse REAL_BUILD_DIR
@needs_cmake
def test_real_llama_cpp_source_build(libs_env: Path) -> None:
    if not (REAL_TREE / "include" / "llama.h").exists():
        missing("libs", f"no llama.cpp b11434 source tree at {REAL_TREE}")
    build_dir = libs_env / "cache" / "build" / "b11434-linux-x64-cpu"
    build_dir.parent.mkdir(parents=True)
    REAL_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    build_dir.symlink_to(REAL_BUILD_DIR)
    record = LibsManager().install(source_tree=REAL_TREE)
    assert (record.source, record.build, record.source_tree) == ("source", 11434, str(REAL_TREE.resolve()))
    readelf = shutil.which("readelf")
    if readelf is not None:
        dynamic = subprocess.run([readelf, "-d", str(record.path / "libllama.so")], capture_output=True,
                                 text=True).stdout
        assert "[$ORIGIN]" in dynamic
    from kronk._native import abi

    abi.verify_lib_dir(record.path)
    abi.verify_against_headers(Path(record.source_tree or ""))
