"""JSON responses written compactly and without escaping non-ASCII text."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(obj, status=status, headers=headers, dumps=dumps)


TOOLS_DROPPED_HEADER = "X-Kronk-Tools-Dropped"
"""Names the request's tools that did not fit the model's context and were left out."""


def tools_dropped_headers(names: list[str]) -> dict[str, str] | None:
    """`X-Kronk-Tools-Dropped: a, b` when tools were left out; None when none were."""
    return {TOOLS_DROPPED_HEADER: ", ".join(names)} if names else None
