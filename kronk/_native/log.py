"""The one C log callback: llama.cpp, ggml and mtmd messages go to Python `logging`.

Logger `llama.cpp` (set its level to see them; DEBUG shows everything). Fragments with
level CONT continue the previous message. llama_log_set is process-global and not
thread-safe, so it is installed once, while the binding is opened under its lock.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("llama.cpp")

_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class _LogSink:
    """Owns the C callback (it must stay alive as long as the libraries may call it)."""

    def __init__(self) -> None:
        self.callback: Any = None
        self._level = logging.INFO

    def install(self, ffi: Any, llama: Any, mtmd: Any | None) -> None:
        @ffi.callback("void(enum ggml_log_level, const char *, void *)")
        def on_log(level: int, text: Any, user_data: Any) -> None:
            del user_data
            if level != 5:  # CONT keeps the previous level
                self._level = _LEVELS.get(level, logging.DEBUG)
            if text == ffi.NULL or not logger.isEnabledFor(self._level):
                return
            message = ffi.string(text).decode("utf-8", "replace").rstrip("\n")
            if message:
                logger.log(self._level, message)

        self.callback = on_log
        llama.llama_log_set(on_log, ffi.NULL)
        if mtmd is not None:
            mtmd.mtmd_log_set(on_log, ffi.NULL)
            mtmd.mtmd_helper_log_set(on_log, ffi.NULL)


_SINK = _LogSink()


def install(ffi: Any, llama: Any, mtmd: Any | None) -> None:
    _SINK.install(ffi, llama, mtmd)
