"""Typed application state (aiohttp AppKeys): the only place server state lives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from kronk.server.metrics import ServerMetrics
from kronk.server.sse import StreamRegistry
from kronk.server.state import HealthState
from kronk.settings import ServerSettings

if TYPE_CHECKING:
    from kronk.sdk import AsyncKronk

SETTINGS = web.AppKey("settings", ServerSettings)
KRONK: web.AppKey[AsyncKronk] = web.AppKey("kronk")
METRICS = web.AppKey("metrics", ServerMetrics)
HEALTH = web.AppKey("health", HealthState)
STREAMS = web.AppKey("streams", StreamRegistry)
