"""Facts about this host and the llama.cpp builds we support.

Shared by the loader, the ABI check (which imported them from the loader, a cycle)
and the libs installer (which kept its own copies): one declaration each.
"""

from __future__ import annotations

import platform
import sys

SUPPORTED_BUILDS = frozenset({11434})
"""Builds whose headers our declarations in native/*.cdef were checked against."""

PROCESSOR_PREFERENCE = ("cuda", "rocm", "vulkan", "metal", "cpu")
"""When several installs fit, the loader takes the first processor in this order."""

OS_BY_SYS_PLATFORM = {"linux": "linux", "darwin": "darwin", "win32": "windows", "cygwin": "windows"}
ARCH_BY_MACHINE = {"x86_64": "x64", "amd64": "x64", "x64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def os_name(sys_platform: str | None = None) -> str:
    """Our name of the OS (`linux`, `darwin`, `windows`); an unknown one as Python names it."""
    name = sys_platform or sys.platform
    return OS_BY_SYS_PLATFORM.get(name, name)


def arch_name(machine: str | None = None) -> str:
    """Our name of the CPU architecture (`x64`, `arm64`); an unknown one as the OS names it."""
    name = (machine if machine is not None else platform.machine()).lower()
    return ARCH_BY_MACHINE.get(name, name)


def library_filename(stem: str, os: str | None = None) -> str:
    """`llama` -> `libllama.so` / `libllama.dylib` / `llama.dll` (this host's OS by default)."""
    target = os or os_name()
    if target == "windows":
        return f"{stem}.dll"
    if target == "darwin":
        return f"lib{stem}.dylib"
    return f"lib{stem}.so"
