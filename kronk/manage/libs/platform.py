"""Which llama.cpp build fits this machine: OS, CPU architecture and GPU backend.

Probes run the vendor tools (`nvidia-smi`, `rocminfo`, `vulkaninfo`) found on the
PATH of the given environment, with a timeout, so a broken driver can never hang
detection. `KRONK_OS`, `KRONK_ARCH` and `KRONK_PROCESSOR` override each part.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kronk._native.host import arch_name, os_name
from kronk.errors import ConfigError

OSES = ("linux", "darwin", "windows")
ARCHES = ("x64", "arm64")
PROCESSORS = ("cpu", "cuda", "rocm", "vulkan", "metal")

_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    """One install target; also the path `libs/<os>/<arch>/<processor>/`."""

    os: str
    arch: str
    processor: str

    def __post_init__(self) -> None:
        for kind, value, allowed in (("OS", self.os, OSES), ("arch", self.arch, ARCHES),
                                     ("processor", self.processor, PROCESSORS)):
            if value not in allowed:
                raise ConfigError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")
        if self.processor == "metal" and self.os != "darwin":
            raise ConfigError("processor 'metal' exists only on darwin")

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}/{self.processor}"

    def parts(self) -> tuple[str, str, str]:
        return (self.os, self.arch, self.processor)

    def is_host(self) -> bool:
        """Whether libraries for this platform can be loaded by this very process."""
        return (self.os, self.arch) == (host_os(), host_arch())


def host_os(sys_platform: str | None = None) -> str:
    name = os_name(sys_platform)
    if name not in OSES:
        raise ConfigError(f"unsupported operating system {name!r}; set KRONK_OS")
    return name


def host_arch(machine: str | None = None) -> str:
    name = arch_name(machine)
    if name not in ARCHES:
        raise ConfigError(f"unsupported CPU architecture {name!r}; set KRONK_ARCH")
    return name


def _run_probe(tool: str, args: list[str], environ: Mapping[str, str], extra_dirs: tuple[Path, ...] = ()) -> str | None:
    """stdout of `tool args` when it exists and exits 0 within the timeout, else None."""
    search = os.pathsep.join([environ.get("PATH", ""), *(str(d) for d in extra_dirs)])
    exe = shutil.which(tool, path=search)
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, errors="replace",
                              timeout=_PROBE_TIMEOUT_S, env=dict(environ), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _has_cuda_gpu(environ: Mapping[str, str]) -> bool:
    out = _run_probe("nvidia-smi", ["-L"], environ)
    return out is not None and "GPU" in out


def _has_rocm_gpu(environ: Mapping[str, str]) -> bool:
    rocm_bin = Path(environ.get("ROCM_PATH", "/opt/rocm")) / "bin"
    out = _run_probe("rocminfo", [], environ, extra_dirs=(rocm_bin,))
    return out is not None and "gfx" in out


def _has_vulkan_gpu(environ: Mapping[str, str]) -> bool:
    out = _run_probe("vulkaninfo", ["--summary"], environ)
    return out is not None and ("DISCRETE_GPU" in out or "INTEGRATED_GPU" in out)


def detect_processor(os_name: str, arch: str, environ: Mapping[str, str]) -> str:
    """The best backend with a usable device: cuda, rocm, vulkan, then cpu; metal on Apple silicon."""
    if os_name == "darwin":
        return "metal" if arch == "arm64" else "cpu"
    if _has_cuda_gpu(environ):
        return "cuda"
    if _has_rocm_gpu(environ):
        return "rocm"
    if _has_vulkan_gpu(environ):
        return "vulkan"
    return "cpu"


def detect(environ: Mapping[str, str] | None = None, *, sys_platform: str | None = None,
           machine: str | None = None) -> Platform:
    """This machine's platform, each part overridable by KRONK_OS / KRONK_ARCH / KRONK_PROCESSOR."""
    env = os.environ if environ is None else environ
    os_name = env.get("KRONK_OS") or host_os(sys_platform)
    arch = env.get("KRONK_ARCH") or host_arch(machine)
    processor = env.get("KRONK_PROCESSOR") or detect_processor(os_name, arch, env)
    return Platform(os_name, arch, processor)
