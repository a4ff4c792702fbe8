"""Process-wide facts about the llama.cpp build: features, devices, versions."""

from __future__ import annotations

from dataclasses import dataclass

from kronk._native.loader import libraries

_DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


@dataclass(frozen=True, slots=True)
class Device:
    index: int
    name: str
    description: str
    type: str
    memory_free: int
    memory_total: int


def system_info() -> str:
    """llama.cpp's feature line, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | ...`."""
    libs = libraries()
    return libs.ffi.string(libs.llama.llama_print_system_info()).decode()


def versions() -> dict[str, object]:
    libs = libraries()
    ffi, lib = libs.ffi, libs.llama
    return {
        "build": libs.build,
        "llama": ffi.string(lib.llama_version()).decode(),
        "ggml": ffi.string(lib.ggml_version()).decode(),
        "ggml_commit": ffi.string(lib.ggml_commit()).decode(),
        "lib_dir": str(libs.folder),
    }


def devices() -> list[Device]:
    libs = libraries()
    ffi, lib = libs.ffi, libs.llama
    out = []
    free = ffi.new("size_t *")
    total = ffi.new("size_t *")
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        lib.ggml_backend_dev_memory(dev, free, total)
        out.append(
            Device(
                index=i,
                name=ffi.string(lib.ggml_backend_dev_name(dev)).decode(),
                description=ffi.string(lib.ggml_backend_dev_description(dev)).decode(),
                type=_DEVICE_TYPES.get(int(lib.ggml_backend_dev_type(dev)), "unknown"),
                memory_free=int(free[0]),
                memory_total=int(total[0]),
            )
        )
    return out


def supports_gpu_offload() -> bool:
    """A local GPU or iGPU is present. (llama_supports_gpu_offload() also says yes for every
    build with the RPC backend, even on a CPU-only machine, so the devices are asked instead.)"""
    lib = libraries().llama
    gpu = (lib.GGML_BACKEND_DEVICE_TYPE_GPU, lib.GGML_BACKEND_DEVICE_TYPE_IGPU)
    return any(lib.ggml_backend_dev_type(lib.ggml_backend_dev_get(i)) in gpu for i in range(lib.ggml_backend_dev_count()))


def supports_mmap() -> bool:
    return bool(libraries().llama.llama_supports_mmap())


def max_parallel_sequences() -> int:
    return int(libraries().llama.llama_max_parallel_sequences())
