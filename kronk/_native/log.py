"""The one C log callback: llama.cpp, ggml and mtmd messages go to Python `logging`.

Logger `llama.cpp` (set its level to see them; DEBUG shows everything). Fragments with
level CONT continue the previous message at its level: they are joined until a newline
ends them (llama.cpp prints its load progress one "." at a time), so a fragmented line is
one record, not one per fragment. llama_log_set is process-global and not thread-safe, so
it is installed once, while the binding is opened under its lock.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger("llama.cpp")

_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5


class _LogSink:
    """Owns the C callback (it must stay alive as long as the libraries may call it)."""

    def __init__(self) -> None:
        self.callback: Any = None
        # Per thread: each thread's messages (and their CONT fragments) arrive in order.
        self._local = threading.local()

    def on_message(self, level: int, text: bytes | None) -> None:
        """One message or fragment from the C side; `text` is None when the message is
        filtered out (so the caller need not decode it)."""
        local = self._local
        if level != _CONT:
            self._flush()
            local.level = _LEVELS.get(level, logging.DEBUG)
            message = text.decode("utf-8", "replace").rstrip("\n") if text is not None else ""
            if message:
                logger.log(local.level, message)
            return
        if text is None:
            return
        pending = getattr(local, "pending", b"") + text
        if pending.endswith(b"\n"):
            local.pending = b""
            self._emit(pending)
        else:
            local.pending = pending

    def level(self, level: int) -> int:
        """The logging level of a message at C level `level` (CONT: the previous message's)."""
        if level == _CONT:
            return getattr(self._local, "level", logging.DEBUG)
        return _LEVELS.get(level, logging.DEBUG)

    def _flush(self) -> None:
        pending = getattr(self._local, "pending", b"")
        if pending:
            self._local.pending = b""
            self._emit(pending)

    def _emit(self, data: bytes) -> None:
        message = data.decode("utf-8", "replace").rstrip("\n")
        if message:
            logger.log(getattr(self._local, "level", logging.DEBUG), message)

    def install(self, ffi: Any, llama: Any, mtmd: Any | None) -> None:
        @ffi.callback("void(enum ggml_log_level, const char *, void *)")
        def on_log(level: int, text: Any, user_data: Any) -> None:
            del user_data
            wanted = text != ffi.NULL and logger.isEnabledFor(self.level(level))
            self.on_message(level, ffi.string(text) if wanted else None)

        self.callback = on_log
        llama.llama_log_set(on_log, ffi.NULL)
        if mtmd is not None:
            mtmd.mtmd_log_set(on_log, ffi.NULL)
            mtmd.mtmd_helper_log_set(on_log, ffi.NULL)


_SINK = _LogSink()


def install(ffi: Any, llama: Any, mtmd: Any | None) -> None:
    _SINK.install(ffi, llama, mtmd)
