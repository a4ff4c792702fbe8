"""Turn Kronk's C declarations in native/ into cffi out-of-line ABI-mode modules.

ABI mode: the generated module holds pre-parsed declarations only; no C compiler is
needed to install or import Kronk, and the llama.cpp shared libraries are opened with
dlopen at run time (kronk._native.loader). Run after editing native/*.cdef:

    python build_libs.py          # regenerate kronk/_native/_ffi.py
    python build_libs.py --check  # exit 1 if the generated module is stale (CI)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "native"
TARGET = ROOT / "kronk" / "_native" / "_ffi.py"
MODULE = "kronk._native._ffi"

# Order matters: later declarations use types from earlier ones.
DECLARATION_FILES = ("kronk.cdef", "ggml.cdef", "llama.cdef", "mtmd.cdef")


def declarations() -> str:
    return "\n".join((NATIVE / name).read_text() for name in DECLARATION_FILES)


def build_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(declarations())
    ffi.set_source(MODULE, None)
    return ffi


def generate() -> str:
    """The text of the generated module."""
    ffi = build_ffi()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "_ffi.py"
        ffi.emit_python_code(str(out))
        return out.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated module is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `python build_libs.py`", file=sys.stderr)
            return 1
        print("generated binding is up to date")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
