"""The HTTP server: OpenAI- and Anthropic-compatible APIs over the SDK.

    from kronk.server import create_app, serve
    app = create_app(settings)          # an aiohttp Application (kronk.settings.ServerSettings)
    await serve(settings)               # run until SIGTERM/SIGINT

Names are imported lazily so `import kronk.server.process` (used by the CLI) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"create_app": "kronk.server.app", "serve": "kronk.server.runner"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kronk.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
