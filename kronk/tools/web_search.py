"""The built-in `web_search` tool over pluggable backends: a SearXNG instance or the Brave API.

The backend is the operator's choice (settings); with none configured the tool is not offered.
Backend endpoints are configured by the operator, so they are not subject to the SSRF guard
(a SearXNG on the same host is the usual setup); the result URLs go to web_fetch, which is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from kronk.errors import ToolError
from kronk.tools.arguments import count_argument, text_argument
from kronk.tools.config import ToolsConfig
from kronk.tools.http import tool_session, transport_failure
from kronk.tools.output import cap_text
from kronk.tools.types import BUILTIN, ToolResult, ToolSpec

NAME = "web_search"
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
MAX_RESULTS = 20

SPEC = ToolSpec(
    name=NAME,
    description="Search the web. Returns titles, URLs and snippets of the top results; "
                "use web_fetch to read a result in full.",
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to search for."},
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS,
                      "description": "How many results (default 5)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    source=BUILTIN,
)


@dataclass(frozen=True, slots=True)
class SearchHit:
    title: str
    url: str
    snippet: str


class SearchBackend(Protocol):
    name: str

    async def search(self, session: aiohttp.ClientSession, query: str, count: int) -> list[SearchHit]: ...


async def _json(response: aiohttp.ClientResponse, backend: str) -> Any:
    if response.status >= 400:
        raise ToolError(f"{backend} search answered HTTP {response.status}")
    try:
        return await response.json(content_type=None)
    except ValueError:
        raise ToolError(f"{backend} search answered something that is not JSON") from None


class SearxngBackend:
    """A SearXNG instance's JSON API (`format=json` must be enabled in its settings)."""

    name = "searxng"

    def __init__(self, url: str) -> None:
        self.url = url

    async def search(self, session: aiohttp.ClientSession, query: str, count: int) -> list[SearchHit]:
        async with session.get(self.url, params={"q": query, "format": "json"}) as response:
            data = await _json(response, "SearXNG")
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ToolError("SearXNG answered without a `results` list")
        return [SearchHit(str(r.get("title") or ""), str(r["url"]), str(r.get("content") or ""))
                for r in results if isinstance(r, dict) and r.get("url")][:count]


class BraveBackend:
    """The Brave Search API (an API key from api.search.brave.com)."""

    name = "brave"

    def __init__(self, api_key: str, url: str = BRAVE_URL) -> None:
        self._api_key = api_key
        self.url = url

    def __repr__(self) -> str:  # the key never shows up in logs or tracebacks
        return f"BraveBackend(url={self.url!r})"

    async def search(self, session: aiohttp.ClientSession, query: str, count: int) -> list[SearchHit]:
        headers = {"X-Subscription-Token": self._api_key, "Accept": "application/json"}
        async with session.get(self.url, params={"q": query, "count": str(count)}, headers=headers) as response:
            data = await _json(response, "Brave")
        web = data.get("web") if isinstance(data, dict) else None
        results = web.get("results") if isinstance(web, dict) else []
        return [SearchHit(str(r.get("title") or ""), str(r["url"]), str(r.get("description") or ""))
                for r in results or [] if isinstance(r, dict) and r.get("url")][:count]


def configured_backend(config: ToolsConfig) -> SearchBackend | None:
    """The backend the settings name (SearXNG first), or None: then web_search is not offered."""
    if config.searxng_url:
        return SearxngBackend(config.searxng_url)
    if config.brave_api_key:
        return BraveBackend(config.brave_api_key)
    return None


class WebSearch:
    """Runs a query on the backend and formats the hits as a numbered list."""

    spec = SPEC

    def __init__(self, config: ToolsConfig, backend: SearchBackend) -> None:
        self._config = config
        self.backend = backend

    async def __call__(self, arguments: dict[str, Any]) -> ToolResult:
        query = text_argument(arguments, "query", NAME)
        count = count_argument(arguments, "count", NAME, default=5, most=MAX_RESULTS)
        async with tool_session(self._config) as session:
            try:
                hits = await self.backend.search(session, query.strip(), count)
            except aiohttp.ClientError as exc:
                raise transport_failure(f"{self.backend.name} search", exc) from None
        if not hits:
            text = f"No results for {query!r}."
        else:
            text = "\n\n".join(f"{i}. {h.title}\n{h.url}\n{h.snippet}".rstrip() for i, h in enumerate(hits, 1))
        text, truncated = cap_text(text, self._config.max_output)
        return ToolResult(text=text, truncated=truncated, structured={
            "query": query, "results": [{"title": h.title, "url": h.url, "snippet": h.snippet} for h in hits]})
