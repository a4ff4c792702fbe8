"""Kronk: run GGUF models locally through llama.cpp.

Importing `kronk` loads no native library; the libs are opened on first use.
"""

from __future__ import annotations

from kronk.errors import KronkError

__version__ = "0.1.0"

__all__ = ["KronkError", "__version__"]
