"""Lazy package exports: a package names what it offers without importing it yet.

`kronk.security` and `kronk.server` keep `import kronk.<package>.<module>` (the CLI's
path) light this way: aiohttp, regorus and the engine load only when a caller first
touches a name that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each of `exports` (name → module) on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
