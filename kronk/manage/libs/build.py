"""Build the llama.cpp shared libraries (and optionally its tools) with CMake.

The RPC backend (libggml-rpc) and its server program are always built: `kronk rpc-server`
and `--rpc` need them, and they cost one small library and one program.

The build folder is kept between runs, so a second build of the same tree (e.g.
adding `--with-tools`) only compiles what is missing. Libraries get an `$ORIGIN`
(`@loader_path` on macOS) run path so they find each other wherever they are copied.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from kronk.errors import LibsInstallError
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage
from kronk.manage.libs.platform import Platform

LIB_TARGETS = ("llama", "mtmd", "ggml-rpc")
RPC_SERVER_TARGET = "ggml-rpc-server"
"""llama.cpp's tools/rpc program: always built, since `kronk rpc-server` runs it (small, one file)."""
TOOL_TARGETS = ("llama-bench", "llama-batched-bench", "llama-completion", "llama-server", "llama-tokenize")

BASE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DGGML_NATIVE=ON",
    "-DGGML_RPC=ON",  # ggml-rpc: spread a model over `kronk rpc-server`s (docs/rpc.md)
)
_PERCENT_RE = re.compile(r"^\[\s*(\d{1,3})%\]")
_TAIL_LINES = 25


def backend_flags(platform: Platform) -> list[str]:
    """CMake switches for the processor: one GPU backend, or none for the CPU build."""
    if platform.processor == "cuda":
        return ["-DGGML_CUDA=ON"]
    if platform.processor == "vulkan":
        return ["-DGGML_VULKAN=ON"]
    if platform.processor == "rocm":
        return ["-DGGML_HIP=ON"]
    if platform.os == "darwin" and platform.processor == "cpu":
        return ["-DGGML_METAL=OFF"]
    return []  # metal is on by default on macOS


def rpath_flags(platform: Platform) -> list[str]:
    if platform.os == "windows":
        return []  # DLLs are found beside the executable
    origin = "@loader_path" if platform.os == "darwin" else "$ORIGIN"
    return ["-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", f"-DCMAKE_INSTALL_RPATH={origin}"]


def configure_command(cmake: str, source_tree: Path, build_dir: Path, platform: Platform) -> list[str]:
    return [cmake, "-S", str(source_tree), "-B", str(build_dir), *BASE_FLAGS,
            *backend_flags(platform), *rpath_flags(platform)]


def build_command(cmake: str, build_dir: Path, with_tools: bool, jobs: int) -> list[str]:
    targets = [*LIB_TARGETS, RPC_SERVER_TARGET, *(TOOL_TARGETS if with_tools else ())]
    return [cmake, "--build", str(build_dir), "--config", "Release", "-j", str(jobs), "--target", *targets]


def check_toolchain(platform: Platform, environ: Mapping[str, str]) -> str:
    """The cmake executable; LibsInstallError when cmake or the backend's compiler is missing."""
    path = environ.get("PATH")
    cmake = shutil.which("cmake", path=path)
    if cmake is None:
        raise LibsInstallError("cmake is not installed (needed to build llama.cpp from source)")
    if platform.processor == "cuda" and shutil.which("nvcc", path=path) is None:
        raise LibsInstallError("a CUDA build needs nvcc (the CUDA toolkit) on PATH; or use --processor cpu")
    if platform.processor == "rocm" and shutil.which("hipcc", path=path) is None \
            and not (Path(environ.get("ROCM_PATH", "/opt/rocm")) / "bin" / "hipcc").exists():
        raise LibsInstallError("a ROCm build needs hipcc (the ROCm toolkit); or use --processor cpu")
    return cmake


def _run(cmd: list[str], cwd: Path, environ: Mapping[str, str], progress: ProgressCallback,
         source: str, what: str) -> None:
    """Run a build step, streaming its lines as BUILD events; on failure raise with the output's tail."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            tail.append(line)
            match = _PERCENT_RE.match(line)
            percent = int(match.group(1)) if match else None
            progress(ProgressEvent(Stage.BUILD, line, percent, 100 if percent is not None else None, source))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise LibsInstallError(f"{what} failed (exit {code}): " + " | ".join(list(tail)[-6:]))


def _cached_source(build_dir: Path) -> Path | None:
    """The source tree an existing build folder was configured for (from CMakeCache.txt)."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.is_file():
        return None
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith("CMAKE_HOME_DIRECTORY:"):
            return Path(line.split("=", 1)[1].strip())
    return None


def build(source_tree: Path, build_dir: Path, platform: Platform, *, with_tools: bool,
          progress: ProgressCallback, environ: Mapping[str, str], source: str = "source",
          jobs: int | None = None) -> Path:
    """Configure and build; return the folder holding the built libraries (and tools)."""
    cmake = check_toolchain(platform, environ)
    source_tree = source_tree.resolve()
    if not (source_tree / "CMakeLists.txt").is_file():
        raise LibsInstallError(f"{source_tree} is not a llama.cpp source tree (no CMakeLists.txt)")
    build_dir.mkdir(parents=True, exist_ok=True)
    build_dir = build_dir.resolve()
    previous = _cached_source(build_dir)
    if previous is not None and previous.resolve() != source_tree:
        # CMake refuses a build folder configured for another tree; start it afresh.
        progress(ProgressEvent(Stage.BUILD, f"{build_dir} was built from {previous}; starting afresh", source=source))
        shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
    jobs = jobs or os.cpu_count() or 1
    progress(ProgressEvent(Stage.BUILD, f"configuring {source_tree}", source=source))
    _run(configure_command(cmake, source_tree, build_dir, platform), build_dir, environ, progress, source,
         "cmake configure")
    _run(build_command(cmake, build_dir, with_tools, jobs), build_dir, environ, progress, source, "cmake build")
    for candidate in (build_dir / "bin", build_dir / "bin" / "Release"):
        if any(candidate.glob("*llama*")):
            return candidate
    raise LibsInstallError(f"the build in {build_dir} produced no libraries in bin/")
