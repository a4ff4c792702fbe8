"""The built-in `web_fetch` tool: GET a public page and hand the model readable text.

HTML becomes Markdown with markdownify (pure Python on BeautifulSoup, MIT, maintained, already
what mcp-server-fetch uses; trafilatura would pull lxml and a dozen more, html2text is GPL).
Every hop goes through the SSRF guard and the connection goes to the address it checked:
the aiohttp connector's resolver only answers with the guard's pinned addresses, so nothing
resolves the name a second time. Redirects are followed here, one checked hop at a time.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

from kronk.errors import ToolError, ToolRefusedError
from kronk.tools.arguments import count_argument, text_argument
from kronk.tools.config import ToolsConfig
from kronk.tools.http import tool_session, transport_failure
from kronk.tools.netguard import NetGuard
from kronk.tools.output import cap_text
from kronk.tools.types import BUILTIN, ToolResult, ToolSpec

NAME = "web_fetch"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.1"
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml", "application/rss+xml",
              "application/atom+xml", "application/javascript", "application/ld+json")
DROP_TAGS = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "head", "nav", "footer", "form")

SPEC = ToolSpec(
    name=NAME,
    description="Fetch a web page (HTTP GET) and return its content as Markdown text. "
                "Use it to read a URL the user gave or one found by web_search.",
    input_schema={
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "The http(s) URL to fetch."},
            "max_length": {"type": "integer", "minimum": 1,
                           "description": "Most characters of content to return."},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    source=BUILTIN,
)


class _PinnedResolver(AbstractResolver):
    """Answers only with addresses the guard checked for a host; never asks DNS."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[str, ...]] = {}

    def pin(self, host: str, addresses: tuple[str, ...]) -> None:
        self._pins[host.lower()] = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = self._pins.get(host.lower().rstrip("."))
        if not addresses:
            raise ToolRefusedError(f"{host} was not checked by the SSRF guard")
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for a in addresses]

    async def close(self) -> None:
        self._pins.clear()


def html_to_markdown(html: str) -> tuple[str, str | None]:
    """Readable Markdown of a page (scripts, styles, navigation dropped) and its title."""
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(DROP_TAGS):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    text = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"]).convert_soup(body)
    lines = [line.rstrip() for line in text.splitlines()]
    collapsed: list[str] = []
    for line in lines:
        if line or (collapsed and collapsed[-1]):
            collapsed.append(line)
    return "\n".join(collapsed).strip(), title


class WebFetch:
    """GET with the guard, size/time limits, content-type checks and manual redirects."""

    spec = SPEC

    def __init__(self, config: ToolsConfig, guard: NetGuard) -> None:
        self._config = config
        self._guard = guard

    async def __call__(self, arguments: dict[str, Any]) -> ToolResult:
        url = text_argument(arguments, "url", NAME).strip()
        max_length = count_argument(arguments, "max_length", NAME)
        resolver = _PinnedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
        async with tool_session(self._config, connector) as session:
            for _hop in range(self._config.max_redirects + 1):
                target = await self._guard.check(url)
                resolver.pin(target.host, target.addresses)
                try:
                    async with session.get(url, allow_redirects=False, headers={"Accept": ACCEPT}) as response:
                        if response.status in REDIRECTS:
                            location = response.headers.get("Location")
                            if not location:
                                raise ToolError(f"{url} answered HTTP {response.status} without a Location")
                            url = urljoin(url, location)
                            continue
                        return await self._read(url, response, max_length)
                except aiohttp.ClientError as exc:
                    raise transport_failure(f"fetching {url}", exc) from None
            raise ToolError(f"too many redirects (more than {self._config.max_redirects})")

    async def _read(self, url: str, response: aiohttp.ClientResponse, max_length: int | None) -> ToolResult:
        if response.status >= 400:
            raise ToolError(f"{url} answered HTTP {response.status} {response.reason or ''}".rstrip())
        content_type = response.content_type.lower()
        if not content_type.startswith(TEXT_TYPES) and not content_type.endswith(("+json", "+xml")):
            raise ToolError(f"{url} is {content_type}, not text or HTML; web_fetch reads only text")
        limit = self._config.fetch_max_bytes
        body = bytearray()
        cut = False
        async for chunk in response.content.iter_chunked(65536):
            body.extend(chunk)
            if len(body) > limit:
                del body[limit:]
                cut = True
                break
        try:
            text = bytes(body).decode(response.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            text = bytes(body).decode("utf-8", errors="replace")
        title = None
        if content_type in ("text/html", "application/xhtml+xml"):
            # BeautifulSoup on megabytes of HTML takes CPU seconds: off the event loop.
            text, title = await asyncio.to_thread(html_to_markdown, text)
        cap = min(self._config.max_output, max_length or self._config.max_output)
        text, truncated = cap_text(text, cap)
        header = f"Contents of {url}" + (f" ({title})" if title else "") + ":\n\n"
        return ToolResult(text=header + text, truncated=truncated or cut,
                          structured={"url": url, "status": response.status, "content_type": content_type,
                                      "title": title, "bytes": len(body)})
