"""Survive ggml-rpc's aborts: a lost RPC connection must not kill the server.

ggml-rpc (llama.cpp b11434) calls GGML_ABORT when it cannot connect to an RPC server
or when a send/receive on an open connection fails (`RPC_STATUS_ASSERT`), and
`ggml_abort` ends the process with abort() once its callback returns. So the callback
installed here never returns for an abort raised in ggml-rpc.cpp: it tells the
registered handlers (kronk.llama.rpc fails the models that use RPC) and then parks the
calling thread for good. That thread is ggml-rpc's dispatcher for the dead connection
(or a thread connecting to it); whoever waits on it waits forever too, so the handlers
must give up on those threads and the objects they hold rather than wait for them.
Any other abort (a real bug) is logged and the process ends as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("kronk.native")

RPC_SOURCE = "ggml-rpc"
"""ggml_abort prefixes the message with `file:line:`; ggml-rpc's file names start with this."""

Handler = Callable[[str], None]


class _AbortGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: list[Handler] = []
        self._callback: Any = None  # the cffi callback must live as long as the library may call it
        self._parked = threading.Event()  # never set: parked threads wait on it forever

    def install(self, ffi: Any, lib: Any) -> None:
        with self._lock:
            if self._callback is not None:
                return

            @ffi.callback("ggml_abort_callback_t")
            def on_abort(message: Any) -> None:
                self.on_abort(ffi.string(message).decode("utf-8", "replace") if message != ffi.NULL else "")

            lib.ggml_set_abort_callback(on_abort)
            self._callback = on_abort

    def add_handler(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def on_abort(self, message: str) -> None:
        if not is_rpc_abort(message):
            logger.critical("llama.cpp aborted: %s", message)
            return  # ggml_abort calls abort() now
        logger.error("ggml-rpc lost a connection: %s", message)
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # an exception must not cross the C boundary
                logger.exception("RPC failure handler raised")
        self._parked.wait()  # returning would abort the process


def is_rpc_abort(message: str) -> bool:
    """Whether an abort message comes from ggml-rpc (`.../ggml-rpc.cpp:35: Remote RPC server crashed ...`)."""
    location = message.split(": ", 1)[0]
    return RPC_SOURCE in location.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]


_GUARD = _AbortGuard()


def install(ffi: Any, lib: Any) -> None:
    """Install the abort callback once per process (idempotent)."""
    _GUARD.install(ffi, lib)


def on_rpc_abort(handler: Handler) -> None:
    """Call `handler(message)` on ggml-rpc's thread when it would abort the process."""
    _GUARD.add_handler(handler)
