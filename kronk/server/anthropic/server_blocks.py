"""Server-produced blocks echoed back in history, as text the model can read (or nothing).

They arrive from Kronk's own answers (web_search, web_fetch and `mcp_servers` calls it
ran: kronk.server.anthropic.server_blocks_out) and from conversations held with
Anthropic's API before (a client switched base URL, or replays a transcript). What a
model can use stays, as text where the block stood: the calls
(`[web_search call: {...}]`), search hits (title and URL; Anthropic encrypts the
page text), fetched text documents, MCP and code-execution output, compaction
summaries. Encrypted, binary or bookkeeping blocks (tool search, container
uploads, tool additions/removals, fallbacks) are dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from kronk.server.anthropic.schema import ServerBlock

log = logging.getLogger("kronk.server.anthropic")


def server_block_text(block: ServerBlock) -> str | None:
    """The block as text, or None when it carries nothing a model can read."""
    kind = block.type
    if kind in ("server_tool_use", "mcp_tool_use"):
        name = f"{block.server_name}.{block.name}" if block.server_name else (block.name or "tool")
        return f"[{name} call: {json.dumps(block.input or {}, ensure_ascii=False)}]"
    if kind == "web_search_tool_result":
        return _search_results(block.content)
    if kind == "web_fetch_tool_result":
        return _fetch_result(block.content)
    if kind == "mcp_tool_result":
        text = _texts(block.content)
        return f"[mcp result{' (error)' if block.is_error else ''}]\n{text}"
    if kind in ("code_execution_tool_result", "bash_code_execution_tool_result"):
        return _execution_result(kind, block.content)
    if kind == "compaction" and isinstance(block.content, str) and block.content:
        return f"[summary of the earlier conversation]\n{block.content}"
    log.debug("dropping a %s block from the history", kind)
    return None


def _texts(content: Any) -> str:
    """A string, or the text of an array of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(part["text"] for part in content
                           if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _error_code(content: Any) -> str | None:
    if isinstance(content, dict) and str(content.get("type", "")).endswith("error"):
        return str(content.get("error_code", "unknown"))
    return None


def _search_results(content: Any) -> str:
    code = _error_code(content)
    if code is not None:
        return f"[web_search error: {code}]"
    hits = [f"- {hit.get('title', '')}: {hit.get('url', '')}" for hit in content or []
            if isinstance(hit, dict)] if isinstance(content, list) else []
    return "[web_search results]\n" + "\n".join(hits)


def _fetch_result(content: Any) -> str:
    code = _error_code(content)
    if code is not None:
        return f"[web_fetch error: {code}]"
    if not isinstance(content, dict):
        return "[web_fetch result]"
    url = content.get("url", "")
    document = content.get("content")
    text = _document_text(document.get("source")) if isinstance(document, dict) else None
    return f"[web_fetch {url}]" + (f"\n{text}" if text else "")


def _document_text(source: Any) -> str | None:
    """The text of a fetched document's source when it is text (PDFs stay out)."""
    if not isinstance(source, dict):
        return None
    data = source.get("data")
    if source.get("type") == "text" and isinstance(data, str):
        return data
    if source.get("type") == "base64" and str(source.get("media_type", "")).startswith("text/") \
            and isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
    return None


def _execution_result(kind: str, content: Any) -> str:
    code = _error_code(content)
    label = "code_execution" if kind.startswith("code") else "bash"
    if code is not None:
        return f"[{label} error: {code}]"
    if not isinstance(content, dict):
        return f"[{label} result]"
    parts = [f"[{label} result, exit code {content.get('return_code', '?')}]"]
    for stream in ("stdout", "stderr"):
        value = content.get(stream)
        if isinstance(value, str) and value:
            parts.append(f"{stream}:\n{value}")
    return "\n".join(parts)
