"""The lifetime of one llama.cpp object owned by a Python object.

Model, Context, SamplerChain, Projector and mtmd chunk lists each hold one C handle
that must be freed exactly once: on `close()`, at the end of a `with` block, or when
the owner is collected (an owner whose constructor failed has no handle to free).
Using a closed owner raises a clear error instead of passing NULL to C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from kronk.errors import KronkError, NativeError


class NativeOwner:
    """Base of the classes that own one llama.cpp handle."""

    _handle: Any = None
    _free: Callable[[Any], None] | None = None
    _what = "llama.cpp object"
    """How error messages name the object ("context", "sampler chain", ...)."""

    def _own(self, handle: Any, free: Callable[[Any], None]) -> None:
        """Take ownership of `handle`; `free` releases it."""
        self._handle = handle
        self._free = free

    def _closed_error(self) -> KronkError:
        return NativeError(f"{self._what} is closed")

    @property
    def handle(self) -> Any:
        if self._handle is None:
            raise self._closed_error()
        return self._handle

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and self._free is not None:
            self._free(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
