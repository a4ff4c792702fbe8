"""Where each llama.cpp build lives online, and which platforms we can install.

ggml-org publishes one archive per OS/arch/backend with every release tag. Names
change between builds (the CUDA toolkit version is part of them), so a platform may
list several candidates, tried in order. Platforms with no official archive
(Linux CUDA, Linux arm64 GPU) are built from source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kronk.manage.libs.platform import ARCHES, OSES, PROCESSORS, Platform

DEFAULT_BASE_URL = "https://github.com/ggml-org/llama.cpp"
BASE_URL_ENV = "KRONK_LIBS_BASE_URL"

# (os, arch, processor) -> archive variants, best first.
_RELEASE_VARIANTS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("linux", "x64", "cpu"): ("ubuntu-x64.tar.gz",),
    ("linux", "x64", "vulkan"): ("ubuntu-vulkan-x64.tar.gz",),
    ("linux", "x64", "rocm"): ("ubuntu-rocm-7.2-x64.tar.gz",),
    ("linux", "arm64", "cpu"): ("ubuntu-arm64.tar.gz",),
    ("darwin", "arm64", "metal"): ("macos-arm64.tar.gz",),
    ("darwin", "arm64", "cpu"): ("macos-arm64.tar.gz",),
    ("darwin", "x64", "cpu"): ("macos-x64.tar.gz",),
    ("windows", "x64", "cpu"): ("win-cpu-x64.zip",),
    ("windows", "arm64", "cpu"): ("win-cpu-arm64.zip",),
    ("windows", "x64", "cuda"): ("win-cuda-13.3-x64.zip", "win-cuda-12.4-x64.zip"),
    ("windows", "x64", "vulkan"): ("win-vulkan-x64.zip",),
    ("windows", "x64", "rocm"): ("win-hip-radeon-x64.zip",),
}

# Backends a source build can target per OS (metal only on Apple silicon).
_BUILDABLE: dict[str, tuple[str, ...]] = {
    "linux": ("cpu", "cuda", "rocm", "vulkan"),
    "darwin": ("cpu", "metal"),
    "windows": ("cpu", "cuda", "rocm", "vulkan"),
}


@dataclass(frozen=True, slots=True)
class Combination:
    """A platform and how it can be installed."""

    platform: Platform
    release_variants: tuple[str, ...]
    buildable: bool

    def to_dict(self) -> dict[str, object]:
        return {"os": self.platform.os, "arch": self.platform.arch, "processor": self.platform.processor,
                "release": list(self.release_variants), "buildable": self.buildable}


def base_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def release_assets(platform: Platform, build: int) -> list[str]:
    """Archive file names of build `build` for `platform`, best first (may be empty)."""
    return [f"llama-b{build}-bin-{variant}" for variant in _RELEASE_VARIANTS.get(platform.parts(), ())]


def companion_assets(asset: str) -> list[str]:
    """Archives that must be unpacked beside `asset`: the CUDA runtime DLLs of a Windows CUDA build."""
    marker = "-bin-win-cuda-"
    if marker not in asset:
        return []
    return ["cudart-llama-bin-win-cuda-" + asset.split(marker, 1)[1]]


def release_url(base: str, build: int, asset: str) -> str:
    return f"{base}/releases/download/b{build}/{asset}"


def source_tarball_url(base: str, build: int) -> str:
    return f"{base}/archive/refs/tags/b{build}.tar.gz"


def is_buildable(platform: Platform) -> bool:
    if platform.processor == "metal":
        return platform.arch == "arm64"
    return platform.processor in _BUILDABLE[platform.os]


def combinations() -> list[Combination]:
    """Every platform with an official archive or a source build, sorted."""
    result = []
    for os_name in OSES:
        for arch in ARCHES:
            for processor in PROCESSORS:
                if processor == "metal" and os_name != "darwin":
                    continue
                platform = Platform(os_name, arch, processor)
                variants = _RELEASE_VARIANTS.get(platform.parts(), ())
                buildable = is_buildable(platform)
                if variants or buildable:
                    result.append(Combination(platform, variants, buildable))
    return result
