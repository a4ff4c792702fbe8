"""The security policy asked before each server tool call (docs/tools.md, "Policy input").

Under `--security full` (and wherever the request's route needs a token) the Rego policies are
evaluated once more per server tool call, with the request's usual input plus
`input.tool = {"name", "server", "builtin"}`; a denial becomes a tool error result the model
sees (and the client sees in the call's progress), so the request still finishes.
"""

from __future__ import annotations

from aiohttp import web

from kronk.errors import KronkError
from kronk.security.middleware import tool_denial
from kronk.server.agent.events import ServerCall
from kronk.server.agent.loop import Gate
from kronk.tools.types import BUILTIN, ToolResult


def tool_input(call: ServerCall) -> dict[str, object]:
    """`input.tool` of the policies: the tool's name, its server label ("builtin" for built-ins)."""
    return {"name": call.name, "server": call.label, "builtin": call.source == BUILTIN}


def policy_gate(request: web.Request) -> Gate:
    """The AgentLoop gate of one request: the policies' verdict on each call."""

    async def gate(call: ServerCall) -> ToolResult | None:
        try:
            reason = await tool_denial(request, tool_input(call))
        except KronkError as exc:  # e.g. the token expired while the loop ran
            reason = getattr(exc, "code", None) or type(exc).error_code
        if reason is None:
            return None
        return ToolResult(text=f"error: the security policy denied the tool {call.name!r} ({reason})", is_error=True)

    return gate
