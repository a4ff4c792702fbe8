"""Server tool calls → Anthropic's content blocks: server_tool_use / mcp_tool_use and their results.

The shapes are Anthropic's (the `anthropic` SDK parses them into its own block types):
- `{"type": "server_tool_use", "id", "name": "web_search" | "web_fetch", "input"}`
- `{"type": "mcp_tool_use", "id", "name", "server_name", "input"}`
- `{"type": "web_search_tool_result", "tool_use_id", "content": [{"type": "web_search_result", "title",
  "url", "encrypted_content", "page_age"}] | {"type": "web_search_tool_result_error", "error_code"}}`;
  Kronk's `encrypted_content` is the hit's snippet in plain text (Anthropic's is opaque).
- `{"type": "web_fetch_tool_result", "tool_use_id", "content": {"type": "web_fetch_result", "url",
  "retrieved_at", "content": {"type": "document", "source": {"type": "text", "media_type": "text/plain",
  "data"}, "title"}} | {"type": "web_fetch_tool_result_error", "error_code"}}`
- `{"type": "mcp_tool_result", "tool_use_id", "is_error", "content": [{"type": "text", "text"}]}`

Sent back in the next request's history, kronk.server.anthropic.server_blocks turns them into text.
"""

from __future__ import annotations

from typing import Any

from kronk.server.agent import ServerCall
from kronk.server.anthropic.response import tool_input
from kronk.server.anthropic.server_tools import OfferedTool
from kronk.server.anthropic.tool_policy import ERROR_CODE, RETRIEVED_AT


def use_block(call: ServerCall, tool: OfferedTool) -> dict[str, Any]:
    """The call, as the model made it."""
    block: dict[str, Any] = {"type": "mcp_tool_use" if tool.kind == "mcp" else "server_tool_use",
                             "id": call.id, "name": call.name}
    if tool.kind == "mcp":
        block["server_name"] = tool.server_name
    block["input"] = tool_input(call.arguments)
    return block


def result_block(call: ServerCall, tool: OfferedTool) -> dict[str, Any]:
    """What the call gave back, in the result block of its tool's kind."""
    result = call.result
    if tool.kind == "mcp":
        return {"type": "mcp_tool_result", "tool_use_id": call.id, "is_error": result.is_error,
                "content": [{"type": "text", "text": result.text}]}
    kind = f"{call.name}_tool_result"
    structured = result.structured or {}
    if result.is_error:
        code = structured.get(ERROR_CODE) or "invalid_tool_input"
        return {"type": kind, "tool_use_id": call.id, "content": {"type": f"{kind}_error", "error_code": code}}
    if call.name == "web_search":
        hits = [{"type": "web_search_result", "title": str(hit.get("title", "")), "url": str(hit.get("url", "")),
                 "encrypted_content": str(hit.get("snippet", "")), "page_age": None}
                for hit in structured.get("results") or []]
        return {"type": kind, "tool_use_id": call.id, "content": hits}
    url = str(structured.get("url", ""))
    document: dict[str, Any] = {"type": "document", "source": {
        "type": "text", "media_type": "text/plain", "data": _page_text(result.text, url, structured.get("title"))}}
    if structured.get("title"):
        document["title"] = structured["title"]
    return {"type": kind, "tool_use_id": call.id, "content": {
        "type": "web_fetch_result", "url": url, "retrieved_at": structured.get(RETRIEVED_AT), "content": document}}


def _page_text(text: str, url: str, title: Any) -> str:
    """web_fetch's text without the "Contents of URL (title):" line it writes for the model."""
    header = f"Contents of {url}" + (f" ({title})" if title else "") + ":\n\n"
    return text[len(header):] if text.startswith(header) else text
