"""The HTTP server: OpenAI- and Anthropic-compatible APIs over the SDK.

    from kronk.server import create_app, serve
    app = create_app(settings)          # an aiohttp Application (kronk.settings.ServerSettings)
    await serve(settings)               # run until SIGTERM/SIGINT

Names are imported lazily so `import kronk.server.process` (used by the CLI) stays light.
"""

from __future__ import annotations

from kronk.lazy import lazy_exports

_EXPORTS = {"create_app": "kronk.server.app", "serve": "kronk.server.runner"}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
