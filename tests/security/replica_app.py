"""A minimal server replica for the multi-process test: `python -m tests.security.replica_app PORT`.

Security comes from the environment (KRONK_SECURITY, KRONK_RATE_STORE, KRONK_HOME).
"""

from __future__ import annotations

import sys

from aiohttp import web

from kronk.security.config import SecurityConfig
from kronk.security.middleware import setup_security


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main(port: int) -> None:
    app = web.Application()
    setup_security(app, SecurityConfig.from_env())
    app.router.add_post("/v1/chat/completions", ok)
    app.router.add_get("/v1/liveness", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
