"""Our declarations against the real libraries and headers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cffi
import pytest

from kronk._native import abi
from kronk._native._ffi import ffi
from kronk._native.loader import find_lib_dir, library_filename
from kronk.errors import ABIMismatchError, LibraryNotFoundError

ROOT = Path(__file__).resolve().parents[2]


def test_generated_binding_is_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "build_libs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_declared_function_exists(lib_dir: Path) -> None:
    llama = ffi.dlopen(str(lib_dir / library_filename("llama")))
    mtmd = ffi.dlopen(str(lib_dir / library_filename("mtmd")))
    names = abi.LLAMA_AND_GGML_FUNCTIONS.select(llama)
    assert len(names) > 150
    for name in names:
        assert getattr(llama, name) is not None, name
    mtmd_names = abi.MTMD_FUNCTIONS.select(mtmd)
    assert len(mtmd_names) > 20
    for name in mtmd_names:
        assert getattr(mtmd, name) is not None, name


def test_struct_offsets_and_enums_match_headers(source_tree: Path) -> None:
    layout = abi.declared_layout(ffi)
    real = abi.probe_headers(source_tree, layout)
    assert abi.compare_layouts(layout, real) == []
    # the probe really compared something
    assert real["structs"]["llama_context_params"]["fields"]["kv_unified"] > 0
    assert real["enums"]["LLAMA_TOKEN_ATTR_SINGLE_WORD"] == 512


def test_probe_detects_a_moved_field(source_tree: Path) -> None:
    layout = abi.declared_layout(ffi)
    real = abi.probe_headers(source_tree, layout)
    layout["structs"]["llama_context_params"]["fields"]["embeddings"] += 8
    problems = abi.compare_layouts(layout, real)
    assert any("llama_context_params.embeddings" in p for p in problems)


def test_runtime_defaults_check_passes(lib_dir: Path) -> None:
    llama = ffi.dlopen(str(lib_dir / library_filename("llama")))
    abi.check_defaults(ffi, llama, lib_dir)
    values = abi.read_defaults(ffi, llama, "llama_context_default_params", "llama_context_params")
    assert values["n_batch"] == 2048 and values["offload_kqv"] is True


def test_runtime_defaults_check_catches_a_layout_change(lib_dir: Path) -> None:
    """Declarations with one field inserted (as happened upstream between builds) are refused."""
    text = (ROOT / "native" / "kronk.cdef").read_text() + (ROOT / "native" / "ggml.cdef").read_text()
    llama_text = (ROOT / "native" / "llama.cdef").read_text().replace(
        "    uint32_t n_rs_seq;\n", "    uint32_t n_rs_seq;\n    size_t n_inserted;\n", 1
    )
    other = cffi.FFI()
    other.cdef(text + llama_text)
    llama = other.dlopen(str(lib_dir / library_filename("llama")))
    with pytest.raises(ABIMismatchError, match="llama_context_params"):
        abi.check_defaults(other, llama, lib_dir)


def _copy_libs(lib_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for item in lib_dir.iterdir():
        if item.name.startswith("lib") and ".so" in item.name:
            shutil.copy2(item, dest / item.name, follow_symlinks=False)
    return dest


def test_verify_rejects_an_unsupported_build(lib_dir: Path, tmp_path: Path) -> None:
    folder = _copy_libs(lib_dir, tmp_path / "libs")
    (folder / "version.json").write_text(json.dumps({"build": 11000}))
    with pytest.raises(ABIMismatchError, match="b11000"):
        abi.verify_lib_dir(folder)


def test_verify_accepts_the_pinned_build(lib_dir: Path, tmp_path: Path) -> None:
    folder = _copy_libs(lib_dir, tmp_path / "libs")
    (folder / "version.json").write_text(json.dumps({"build": 11434}))
    abi.verify_lib_dir(folder)


def test_missing_libs_are_reported_with_the_places_looked(tmp_path: Path) -> None:
    with pytest.raises(LibraryNotFoundError, match="kronk libs"):
        find_lib_dir({"KRONK_HOME": str(tmp_path)})
    with pytest.raises(LibraryNotFoundError, match="KRONK_LIB_PATH"):
        find_lib_dir({"KRONK_LIB_PATH": str(tmp_path)})
