"""`create_app(settings)`: the whole HTTP API in one aiohttp application.

State lives under typed AppKeys (kronk.server.keys); the SDK's lifetime is a
cleanup context (started before the first request, closed after the last); the
management API and security are wired in when their packages are installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType

from aiohttp import web

from kronk.errors import KronkError
from kronk.sdk import AsyncKronk
from kronk.server import health, history, openapi, running, scrape, system, tools_host
from kronk.server.agent.defaults import check_model_tools
from kronk.server.anthropic import messages
from kronk.server.keys import HEALTH, KRONK, METRICS, SETTINGS, STREAMS
from kronk.server.metrics import ServerMetrics
from kronk.server.middleware import error_middleware, metrics_middleware
from kronk.server.openai import chat, completions, embeddings, models, rerank, responses, tokenize
from kronk.server.sse import StreamRegistry
from kronk.server.state import HealthState
from kronk.server.ui import routes as ui_routes
from kronk.settings import ServerSettings

log = logging.getLogger("kronk.server")

_ENDPOINTS = (health, scrape, openapi, chat, completions, embeddings, responses, models, rerank, tokenize, messages)


def _optional(module: str) -> ModuleType | None:
    """Import a sibling package's module, or None if it is not there (yet)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            log.debug("%s is not available; skipping it", module)
            return None
        raise


async def _preload(app: web.Application) -> None:
    """Load the default model in the background; readiness follows its outcome."""
    state, kronk = app[HEALTH], app[KRONK]
    state.state = "loading"
    try:
        await kronk.load(None)
    except KronkError as exc:
        state.state, state.error = "failed", str(exc)
        log.error("could not load the default model %s: %s", state.default_model, exc)
        return
    except Exception as exc:  # a bug, not a bad model: readiness must still say "failed", not "loading" forever
        state.state, state.error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("could not load the default model %s", state.default_model)
        return
    state.state = "ready"
    log.info("default model %s is ready", state.default_model)


async def kronk_context(app: web.Application) -> AsyncIterator[None]:
    """Start the SDK (and the default model's load); close it gracefully at the end."""
    kronk, settings = app[KRONK], app[SETTINGS]
    await kronk.start()
    preload: asyncio.Task[None] | None = None
    if settings.preload:
        preload = asyncio.create_task(_preload(app), name="kronk-preload")
    else:
        app[HEALTH].state = "ready"
    try:
        yield
    finally:
        app[HEALTH].state = "stopping"
        if preload is not None and not preload.done():
            preload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await preload
        await kronk.close()


async def _on_shutdown(app: web.Application) -> None:
    """End open streams now (with an error event) instead of waiting out the shutdown timeout."""
    app[HEALTH].state = "stopping"
    app[STREAMS].stop_all()


def _wire_security(app: web.Application, settings: ServerSettings) -> None:
    security = _optional("kronk.security.middleware")
    routes = _optional("kronk.security.routes")
    config_module = _optional("kronk.security.config")
    if security is None or config_module is None:
        if settings.security != "off":
            raise KronkError(f"--security {settings.security} needs the kronk.security package")
        return
    config = config_module.SecurityConfig.from_env().with_mode(settings.security)
    security.setup_security(app, config)
    if routes is not None:
        routes.add_security_routes(app)


def _mount_management(app: web.Application, kronk: AsyncKronk) -> None:
    api = _optional("kronk.manage.api")
    sub_app = api.create_management_app(api.ManagementContext(pool=kronk)) if api is not None else web.Application()
    for module in (running, system):  # the browser UI's views of the running server (admin, like /v1/kronk)
        module.add_routes(sub_app)
    app.add_subapp("/v1/kronk/", sub_app)


def create_app(settings: ServerSettings, *, kronk: AsyncKronk | None = None) -> web.Application:
    """The server application; `kronk` lets an embedding program share its own SDK instance."""
    app = web.Application(
        client_max_size=settings.max_body_size,
        middlewares=[metrics_middleware, error_middleware],
    )
    app[SETTINGS] = settings
    app[KRONK] = kronk if kronk is not None else AsyncKronk(settings.pool_settings())
    app[METRICS] = ServerMetrics()
    app[HEALTH] = HealthState(default_model=settings.default_model)
    app[STREAMS] = StreamRegistry()
    app.cleanup_ctx.append(kronk_context)
    app.on_shutdown.append(_on_shutdown)
    for module in _ENDPOINTS:
        module.add_routes(app)
    tools_host.install(app, settings)
    check_model_tools(settings)
    history.install(app)
    _wire_security(app, settings)
    _mount_management(app, app[KRONK])
    ui_routes.install(app, settings)
    return app
