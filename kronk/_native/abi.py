"""Checks that the llama.cpp libraries match our declarations before we use them.

Three levels, cheapest first:
1. `check_build`: the install record names a build our declarations were written for.
2. `check_symbols` and `check_defaults` (every load): every declared function
   resolves, and the default params llama.cpp returns read back, through our struct
   layouts, as the values that build sets. A field inserted or moved shifts the fields
   after it, which changes what we read. The defaults are fetched through an
   oversized return buffer, so this check is safe even against a larger struct.
3. `probe_headers` (tests and source installs): compile a C program against the real
   headers and compare every struct size, field offset and enum value.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kronk._native.host import SUPPORTED_BUILDS, library_filename
from kronk.errors import ABIMismatchError, LibraryNotFoundError

logger = logging.getLogger("kronk.native")

# Structs whose layout we depend on (passed or returned by value, or read field by field).
CHECKED_STRUCTS = (
    "llama_token_data",
    "llama_token_data_array",
    "llama_batch",
    "llama_model_params",
    "llama_context_params",
    "llama_sampler_chain_params",
    "llama_logit_bias",
    "llama_perf_context_data",
    "llama_perf_sampler_data",
    "llama_sampler_seq_config",
    "mtmd_input_text",
    "mtmd_context_params",
    "mtmd_helper_init_opt",
    "mtmd_helper_video_init_params",
    "mtmd_helper_bitmap_wrapper",
)
_TYPEDEF_STRUCTS = {"llama_token_data", "llama_token_data_array", "llama_batch", "llama_logit_bias",
                    "llama_sampler_chain_params", "mtmd_input_text"}

# Defaults of build b11434 (src/llama-model.cpp, src/llama-context.cpp).
EXPECTED_MODEL_DEFAULTS: dict[str, Any] = {
    "devices": None, "tensor_buft_overrides": None, "n_gpu_layers": -1, "split_mode": 1,
    "load_mode": -1, "lazy_mode": 1, "main_gpu": 0, "tensor_split": None, "kv_overrides": None,
    "vocab_only": False, "check_tensors": False, "use_extra_bufts": True, "no_host": False,
    "no_alloc": False, "load_mtp": False,
}
EXPECTED_CONTEXT_DEFAULTS: dict[str, Any] = {
    "n_ctx": 512, "n_batch": 2048, "n_ubatch": 512, "n_seq_max": 1, "n_rs_seq": 0, "n_outputs_max": 0,
    "n_outputs_max_per_seq": 1, "ctx_type": 0, "rope_scaling_type": -1, "pooling_type": -1,
    "attention_type": -1, "flash_attn_type": -1, "rope_freq_base": 0.0, "rope_freq_scale": 0.0,
    "yarn_ext_factor": -1.0, "yarn_attn_factor": -1.0, "yarn_beta_fast": -1.0, "yarn_beta_slow": -1.0,
    "yarn_orig_ctx": 0, "defrag_thold": -1.0, "cb_eval": None, "cb_eval_user_data": None, "type_k": 1,
    "type_v": 1, "abort_callback": None, "abort_callback_data": None, "embeddings": False,
    "offload_kqv": True, "no_perf": True, "op_offload": True, "swa_full": True, "kv_unified": False,
    "samplers": None, "n_samplers": 0, "ctx_other": None,
}


class _Names:
    """Declared function names, split by the library that exports them (by prefix)."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def select(self, lib: Any) -> list[str]:
        # dir() of an ABI-mode library lists every declared function and enum constant;
        # constants are upper case, functions lower case.
        return [name for name in dir(lib) if name.startswith(self.prefixes)]


LLAMA_AND_GGML_FUNCTIONS = _Names(("llama_", "ggml_"))
MTMD_FUNCTIONS = _Names(("mtmd_",))


def check_build(build: int | None, folder: Path) -> None:
    if build is None:
        logger.warning("%s has no version.json; relying on the runtime ABI check only", folder)
        return

    if int(build) not in SUPPORTED_BUILDS:
        supported = ", ".join(f"b{b}" for b in sorted(SUPPORTED_BUILDS))
        raise ABIMismatchError(
            f"llama.cpp build b{build} in {folder} does not match Kronk's declarations (supported: {supported}); "
            "run `kronk libs --upgrade` to install the pinned build"
        )


def check_symbols(ffi: Any, lib: Any, names: _Names, folder: Path) -> None:
    """Every function we declare must exist in the library: a missing one means another ABI."""
    missing = []
    for name in names.select(lib):
        try:
            getattr(lib, name)
        except AttributeError:
            missing.append(name)
    if missing:
        raise ABIMismatchError(
            f"the libraries in {folder} lack {len(missing)} functions Kronk declares "
            f"(e.g. {', '.join(missing[:5])}): they are from another llama.cpp build"
        )


def read_defaults(ffi: Any, lib: Any, func_name: str, struct_name: str) -> dict[str, Any]:
    """Call a `*_default_params` function through an oversized buffer and decode it with our layout."""
    func = ffi.cast("struct kronk_abi_probe (*)(void)", ffi.addressof(lib, func_name))
    raw = func()
    struct = ffi.cast(f"struct {struct_name} *", ffi.addressof(raw))
    values: dict[str, Any] = {}
    for field_name, _field in ffi.typeof(f"struct {struct_name}").fields:
        value = getattr(struct, field_name)
        if isinstance(value, ffi.CData):
            value = None if value == ffi.NULL else value
        values[field_name] = value
    return values


def _same(expected: Any, actual: Any) -> bool:
    if expected is None:
        return actual is None
    if isinstance(expected, float):
        return isinstance(actual, float) and math.isclose(expected, actual, abs_tol=1e-6)
    return expected == actual


def check_defaults(ffi: Any, lib: Any, folder: Path) -> None:
    for func, struct, expected in (
        ("llama_model_default_params", "llama_model_params", EXPECTED_MODEL_DEFAULTS),
        ("llama_context_default_params", "llama_context_params", EXPECTED_CONTEXT_DEFAULTS),
    ):
        try:
            actual = read_defaults(ffi, lib, func, struct)
        except AttributeError as exc:
            raise ABIMismatchError(f"{folder}: {func} is missing") from exc
        wrong = [f"{k}={actual.get(k)!r} (expected {v!r})" for k, v in expected.items() if not _same(v, actual.get(k))]
        if wrong:
            raise ABIMismatchError(
                f"struct {struct} of the libraries in {folder} does not match Kronk's declarations: "
                + "; ".join(wrong[:4])
            )


def verify_lib_dir(folder: Path) -> None:
    """Check a libs folder without making it the process's libraries (used by installers).

    Runs in a subprocess so a bad build can never crash or poison the caller.
    """

    folder = Path(folder)
    if not (folder / library_filename("llama")).exists():
        raise LibraryNotFoundError(f"{folder} holds no {library_filename('llama')}")
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from kronk._native import abi, host, loader\n"
        "from kronk._native._ffi import ffi\n"
        "folder = Path(sys.argv[1])\n"
        "rec = loader.read_install_record(folder)\n"
        "abi.check_build(rec.get('build') if rec else None, folder)\n"
        "lib = ffi.dlopen(str(folder / host.library_filename('llama')))\n"
        "abi.check_symbols(ffi, lib, abi.LLAMA_AND_GGML_FUNCTIONS, folder)\n"
        "abi.check_defaults(ffi, lib, folder)\n"
        "m = folder / host.library_filename('mtmd')\n"
        "if m.exists():\n"
        "    abi.check_symbols(ffi, ffi.dlopen(str(m)), abi.MTMD_FUNCTIONS, folder)\n"
    )
    import sys

    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {proc.returncode}"
        if "ABIMismatchError" in message or proc.returncode < 0:
            raise ABIMismatchError(f"ABI check of {folder} failed: {message.split(': ', 1)[-1]}")
        raise LibraryNotFoundError(f"cannot load the libraries in {folder}: {message}")


# --- header probe -----------------------------------------------------------


def declared_layout(ffi: Any) -> dict[str, Any]:
    """Sizes, field offsets and enum values as our declarations define them."""
    structs: dict[str, Any] = {}
    for name in CHECKED_STRUCTS:
        ctype = ffi.typeof(f"struct {name}")
        structs[name] = {
            "size": ffi.sizeof(ctype),
            "fields": {field_name: field.offset for field_name, field in ctype.fields},
        }
    enums: dict[str, int] = {}
    for type_name in ENUM_TYPES:
        for name, value in ffi.typeof(f"enum {type_name}").relements.items():
            enums[name] = int(value)
    return {"structs": structs, "enums": enums}


ENUM_TYPES = (
    "ggml_log_level", "ggml_type", "ggml_numa_strategy", "ggml_backend_dev_type",
    "llama_vocab_type", "llama_token_attr", "llama_ftype", "llama_rope_scaling_type", "llama_pooling_type",
    "llama_attention_type", "llama_flash_attn_type", "llama_split_mode", "llama_load_mode", "llama_lazy_mode",
    "llama_context_type", "mtmd_input_chunk_type",
)


def probe_program(layout: dict[str, Any]) -> str:
    """C source printing the real sizes/offsets/enum values as JSON."""
    lines = [
        "#include <stdio.h>", "#include <stddef.h>", '#include "llama.h"', '#include "mtmd.h"',
        '#include "mtmd-helper.h"', "int main(void) {", '  printf("{\\"structs\\": {");',
    ]
    for index, (name, info) in enumerate(layout["structs"].items()):
        ctype = name if name in _TYPEDEF_STRUCTS else f"struct {name}"
        sep = "," if index else ""
        lines.append(f'  printf("{sep}\\"{name}\\": {{\\"size\\": %zu, \\"fields\\": {{", sizeof({ctype}));')
        for f_index, field_name in enumerate(info["fields"]):
            fsep = "," if f_index else ""
            lines.append(f'  printf("{fsep}\\"{field_name}\\": %zu", offsetof({ctype}, {field_name}));')
        lines.append('  printf("}}");')
    lines.append('  printf("}, \\"enums\\": {");')
    for index, name in enumerate(layout["enums"]):
        sep = "," if index else ""
        lines.append(f'  printf("{sep}\\"{name}\\": %lld", (long long)({name}));')
    lines += ['  printf("}}\\n");', "  return 0;", "}"]
    return "\n".join(lines)


def include_dirs(source_tree: Path) -> list[Path]:
    return [source_tree / "include", source_tree / "ggml" / "include", source_tree / "tools" / "mtmd"]


def probe_headers(source_tree: Path, layout: dict[str, Any]) -> dict[str, Any]:
    """Compile and run the probe against a llama.cpp source tree's headers."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise ABIMismatchError("no C compiler found to probe the headers")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        exe = Path(tmp) / "probe"
        src.write_text(probe_program(layout))
        cmd = [compiler, "-std=c11", "-o", str(exe), str(src)]
        for folder in include_dirs(source_tree):
            cmd += ["-I", str(folder)]
        build = subprocess.run(cmd, capture_output=True, text=True)
        if build.returncode != 0:
            raise ABIMismatchError(f"probe does not compile against {source_tree}: {build.stderr.strip()[:2000]}")
        run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
        return json.loads(run.stdout)


def compare_layouts(declared: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """Human-readable differences between our declarations and the real headers."""
    problems: list[str] = []
    for name, info in declared["structs"].items():
        real_info = real["structs"][name]
        if info["size"] != real_info["size"]:
            problems.append(f"sizeof(struct {name}): ours {info['size']}, real {real_info['size']}")
        for field_name, offset in info["fields"].items():
            if real_info["fields"].get(field_name) != offset:
                problems.append(
                    f"offsetof({name}.{field_name}): ours {offset}, real {real_info['fields'].get(field_name)}"
                )
    for name, value in declared["enums"].items():
        if real["enums"].get(name) != value:
            problems.append(f"{name}: ours {value}, real {real['enums'].get(name)}")
    return problems


def verify_against_headers(source_tree: Path, ffi: Any | None = None) -> None:
    """Raise ABIMismatchError listing every difference between ours and the headers."""
    if ffi is None:
        from kronk._native._ffi import ffi as declared_ffi

        ffi = declared_ffi
    layout = declared_layout(ffi)
    problems = compare_layouts(layout, probe_headers(source_tree, layout))
    if problems:
        raise ABIMismatchError(f"declarations differ from {source_tree}: " + "; ".join(problems[:10]))
