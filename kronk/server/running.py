"""GET /v1/kronk/running: each loaded model with its slots, queue, KV and prompt-cache use.

`/v1/kronk/models/ps` answers what the pool knows (ids, sizes, expiry); the Running page
also needs what each engine is doing slot by slot, which only the server (holding the
AsyncKronk) can see. Mounted on the management sub-application (admin under security).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiohttp import web

from kronk.engine.loop import SlotStats
from kronk.server.keys import KRONK
from kronk.wire import DocModel, Operation, operation

_TAG = "Management"


class RunningModel(DocModel):
    id: str
    path: str
    kind: str
    size_bytes: int
    loaded_at: float
    context_size: int
    """Tokens per sequence."""
    active_streams: int
    queued: int
    idle_seconds: float
    expires_in_seconds: float | None
    kv_cells_used: int
    kv_cells_total: int
    prompt_cache_entries: int
    prompt_cache_bytes: int
    prompt_cache_budget_bytes: int
    prompt_cache_hits: int
    prompt_tokens_total: int
    completion_tokens_total: int
    slots: list[SlotStats]


class Running(DocModel):
    object: str
    data: list[RunningModel]
    at: float


def _model_row(loaded: Any, status: Any) -> dict[str, Any]:
    engine = loaded.engine
    stats = engine.stats()
    return {
        **dataclasses.asdict(status),
        "loaded_at": loaded.loaded_at,
        "kv_cells_used": stats.kv_cells_used,
        "kv_cells_total": stats.n_ctx,
        "prompt_cache_entries": stats.prompt_cache_entries,
        "prompt_cache_bytes": stats.prompt_cache_bytes,
        "prompt_cache_budget_bytes": engine.prompt_cache.budget_bytes,
        "prompt_cache_hits": stats.prompt_cache_hits,
        "prompt_tokens_total": stats.prompt_tokens_total,
        "completion_tokens_total": stats.completion_tokens_total,
        "slots": [dataclasses.asdict(s) for s in engine.slot_stats()],
    }


@operation(Operation(summary="Loaded models with their slots, queue, KV and prompt-cache use", tag=_TAG,
                     response=Running))
async def running(request: web.Request) -> web.Response:
    pool = request.config_dict[KRONK].pool
    status = {row.id: row for row in pool.ps()}
    rows = [_model_row(loaded, status[loaded.id]) for loaded in pool.models() if loaded.id in status]
    return web.json_response({"object": "list", "data": rows, "at": time.time()})


def add_routes(app: web.Application) -> None:
    """Register on the management sub-application (paths relative to /v1/kronk/)."""
    app.router.add_get("/running", running)
