"""One Messages request's server tools as the agent loop calls them: Anthropic's limits and error codes.

`RequestTools` stands between the agent loop and the ToolHost. It applies what the request's
tool definitions ask — `max_uses` (a call past it is not made: `max_uses_exceeded`),
`allowed_domains` / `blocked_domains` (web_fetch refuses the URL, and its final URL after
redirects; web_search drops the results), web_fetch's `max_content_tokens` — counts the
web_search / web_fetch requests made (usage.server_tool_use), and turns every failure into a
result the model sees, with the Anthropic `error_code` its `*_tool_result_error` block needs
in `structured[ERROR_CODE]`.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from kronk.errors import (
    InvalidRequestError,
    KronkError,
    ToolError,
    ToolRefusedError,
    ToolTimeoutError,
    ToolUnavailableError,
)
from kronk.server.anthropic.server_tools import OfferedTool
from kronk.tools import ToolHost
from kronk.tools.types import ToolResult

ERROR_CODE = "anthropic_error_code"
"""Key in a failed call's `ToolResult.structured`: the Anthropic error_code of its result block."""
RETRIEVED_AT = "retrieved_at"


def error_code(name: str, exc: KronkError) -> str:
    """The `*_tool_result_error` code Anthropic documents for a failed call."""
    if isinstance(exc, InvalidRequestError):
        return "invalid_tool_input"
    if isinstance(exc, ToolRefusedError):
        return "url_not_allowed"
    if isinstance(exc, (ToolTimeoutError, ToolUnavailableError)) or name != "web_fetch":
        return "unavailable"
    if isinstance(exc, ToolError) and "not text or HTML" in str(exc):
        return "unsupported_content_type"
    return "url_not_accessible"


def _domain(entry: str) -> str:
    """A domain list entry (`example.com`, `https://example.com/docs`) as a host name."""
    entry = entry.split("://", 1)[-1]
    return entry.split("/", 1)[0].split(":", 1)[0].lower().rstrip(".")


def domain_allowed(url: str, tool: OfferedTool) -> bool:
    """The URL's host against the request's allowed / blocked domains (a domain covers its subdomains)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")

    def within(entries: tuple[str, ...]) -> bool:
        return any(host == d or host.endswith("." + d) for d in map(_domain, entries) if d)

    if tool.allowed_domains is not None and not within(tool.allowed_domains):
        return False
    return not within(tool.blocked_domains)


def failed(text: str, code: str) -> ToolResult:
    return ToolResult(text=f"error ({code}): {text}", is_error=True, structured={ERROR_CODE: code})


class RequestTools:
    """The ToolHost as one request may use it (what AgentLoop calls as its host)."""

    def __init__(self, host: ToolHost, tools: dict[str, OfferedTool]) -> None:
        self.host = host
        self.tools = tools
        self.uses: dict[str, int] = {}
        self.requests = {"web_search": 0, "web_fetch": 0}
        """Built-in calls made (usage.server_tool_use)."""

    async def call(self, name: str, arguments: dict[str, Any], *, source: str | None = None,
                   timeout: float | None = None) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return failed(f"no tool {name!r} is offered", "unavailable")
        self.uses[name] = uses = self.uses.get(name, 0) + 1
        if tool.max_uses is not None and uses > tool.max_uses:
            return failed(f"{name} may be used {tool.max_uses} times in this request", "max_uses_exceeded")
        if tool.kind == "server" and name == "web_fetch":
            url = arguments.get("url")
            if isinstance(url, str) and not domain_allowed(url.strip(), tool):
                return failed(f"{url} is outside the domains this request allows", "url_not_allowed")
            if tool.max_length is not None:
                asked = arguments.get("max_length")
                limit = min(asked, tool.max_length) if isinstance(asked, int) and asked > 0 else tool.max_length
                arguments = {**arguments, "max_length": limit}
        if name in self.requests and tool.kind == "server":
            self.requests[name] += 1
        try:
            result = await self.host.call(name, arguments, source=source, timeout=timeout)
        except KronkError as exc:
            return failed(str(exc), error_code(name, exc))
        if tool.kind != "server":
            return result
        if name == "web_fetch":
            final = (result.structured or {}).get("url")
            if isinstance(final, str) and not domain_allowed(final, tool):
                return failed(f"the page redirected to {final}, outside the domains this request allows",
                              "url_not_allowed")
            return dataclasses.replace(result, structured={**(result.structured or {}),
                                                           RETRIEVED_AT: datetime.now(UTC).isoformat()})
        if name == "web_search" and (tool.allowed_domains is not None or tool.blocked_domains):
            return _filtered(result, tool)
        return result


def _filtered(result: ToolResult, tool: OfferedTool) -> ToolResult:
    """A search result without the hits outside the request's domains (text rebuilt the way web_search writes it)."""
    structured = result.structured or {}
    hits = [hit for hit in structured.get("results") or [] if domain_allowed(str(hit.get("url", "")), tool)]
    if hits:
        text = "\n\n".join(f"{i}. {h.get('title', '')}\n{h.get('url', '')}\n{h.get('snippet', '')}".rstrip()
                           for i, h in enumerate(hits, 1))
    else:
        text = f"No results for {structured.get('query', '')!r} in the allowed domains."
    return dataclasses.replace(result, text=text, structured={**structured, "results": hits})
