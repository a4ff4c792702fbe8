"""The built-in tools' outbound HTTP: one way to open a session and one way to report its failures.

Every built-in tool that calls out (web_fetch, web_search) identifies itself with the
configured User-Agent and ignores the proxy environment (trust_env=False): a proxy would
connect to an address the SSRF guard never checked. A transport failure becomes a
ToolError naming what failed, which is safe to show the model and the client.
"""

from __future__ import annotations

import aiohttp

from kronk.errors import ToolError
from kronk.tools.config import ToolsConfig


def tool_session(config: ToolsConfig, connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """A session for one tool call: the tools' User-Agent, no proxy from the environment."""
    return aiohttp.ClientSession(connector=connector, trust_env=False, headers={"User-Agent": config.user_agent})


def transport_failure(what: str, exc: aiohttp.ClientError) -> ToolError:
    """The ToolError for a connection or protocol failure of `what` (e.g. "fetching URL")."""
    return ToolError(f"{what} failed: {exc.__class__.__name__}: {exc}")
