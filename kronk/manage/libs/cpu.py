"""The CPU instruction-set extensions a native llama.cpp build may use.

A source build (`GGML_NATIVE=ON`) is compiled for the CPU it was built on and may
execute any instruction that CPU has; on a CPU without one it dies with an illegal
instruction. So a native build records the host's ISA flags (from /proc/cpuinfo) in
its version.json, and a machine receiving the build from a peer refuses it when it
lacks any of them. Only ISA extensions count: flags such as `hypervisor` or `ht`
say nothing about which instructions the code may run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

ISA_FLAGS = frozenset({
    # x86-64
    "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "sse4a", "popcnt", "abm", "movbe", "aes", "pclmulqdq", "adx",
    "bmi1", "bmi2", "f16c", "fma", "fma4", "avx", "avx2", "avx_vnni", "avx_vnni_int8", "avx_ne_convert",
    "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
    "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "gfni", "vaes",
    "vpclmulqdq", "sha_ni", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
    # arm64
    "fp", "asimd", "fphp", "asimdhp", "asimddp", "asimdfhm", "asimdrdm", "sve", "sve2", "i8mm", "bf16", "sme",
    "sme2", "dotprod", "svei8mm", "svebf16",
})


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The ISA flags of the first CPU in a /proc/cpuinfo text (`flags` on x86, `Features` on arm)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split()) & ISA_FLAGS
    return frozenset()


def host_cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """This machine's ISA flags; empty where /proc/cpuinfo is unavailable (not Linux)."""
    try:
        return parse_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def missing_features(needed: Iterable[str], have: frozenset[str]) -> list[str]:
    """What a build needs that this CPU lacks, sorted (empty: the build can run here)."""
    return sorted(set(needed) & ISA_FLAGS - have)
