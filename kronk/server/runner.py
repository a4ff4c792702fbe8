"""Run the server in the foreground until SIGTERM/SIGINT, then shut down gracefully.

Graceful means: stop accepting connections, end open streams with an error event,
let in-flight non-streaming requests finish (up to `SHUTDOWN_TIMEOUT`), then close
the SDK (which unloads the models) and remove the pid file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from kronk.errors import ConfigError
from kronk.server import process
from kronk.server.app import create_app
from kronk.settings import ServerSettings

log = logging.getLogger("kronk.server")

SHUTDOWN_TIMEOUT = 30.0
_NOISY = ("llama.cpp", "gguf", "kronk.native")


def configure_logging(level: str) -> None:
    """One line per record on stderr; llama.cpp's chatter only at debug level."""
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel("DEBUG" if level == "debug" else "WARNING")


async def serve(settings: ServerSettings, *, write_pid: bool = True) -> None:
    """Serve until a stop signal; raises ConfigError if the address cannot be bound."""
    app = await asyncio.to_thread(create_app, settings)  # reads the catalog and model index from disk
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
        if write_pid:
            log_file = os.environ.get("KRONK_SERVER_LOG")
            await asyncio.to_thread(process.write_record, settings.base_url, Path(log_file) if log_file else None)
        log.info("Kronk server listening on %s (default model %s, pid %d)", settings.base_url,
                 settings.default_model, os.getpid())
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        if write_pid:
            await asyncio.to_thread(process.remove_record)
        log.info("stopped")


def run(settings: ServerSettings) -> None:
    """Blocking entry point of `kronk server start` (foreground).

    Uses uvloop where it is installed (Linux, macOS): its C event loop and socket
    writes take a fraction of asyncio's CPU per streamed token, CPU that the decode
    threads otherwise lose. KRONK_EVENT_LOOP=asyncio forces the standard loop.
    """
    configure_logging(settings.log_level)
    loop_factory = _loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(settings))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get("KRONK_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
