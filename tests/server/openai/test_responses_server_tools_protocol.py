"""Responses `mcp` / `web_search` tools without a model: parsing, refusals, input replay, and the
encoder's items and events for a scripted run of the agent loop."""

from __future__ import annotations

from typing import Any

import pytest

from kronk.engine.types import TextDelta, ToolCallDelta, Usage
from kronk.errors import CapabilityError, InvalidRequestError
from kronk.sdk.requests import ChatChoice, ChatResult, ToolCall
from kronk.server.agent import CallFinished, CallStarted, LoopFinished, ModelDelta, ServerCall, TurnFinished
from kronk.server.agent.events import AgentOutcome
from kronk.server.agent.select import Listing, McpRequest
from kronk.server.meter import RequestMeter
from kronk.server.metrics import ServerMetrics
from kronk.server.openai.protocol import Limits
from kronk.server.openai.responses import parse_responses
from kronk.server.openai.responses_agent import ResponsesAgentEncoder
from kronk.server.openai.responses_items import CallItems
from kronk.server.openai.responses_stream import ResponseShell, ResponsesStreamEncoder
from kronk.server.openai.responses_tools import ToolCatalog
from kronk.settings import ServerSettings
from kronk.tools.types import ToolResult, ToolSpec

LIMITS = Limits.from_settings(ServerSettings())
MCP = {"type": "mcp", "server_label": "calc", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}


def parse(**body: Any) -> Any:
    return parse_responses({"input": "hi", **body}, LIMITS)


def test_mcp_and_web_search_tools_are_kept_for_the_loop() -> None:
    call = parse_responses({"input": "hi", "tools": [MCP, {"type": "web_search_preview"}]}, LIMITS,
                           search_backend=True)
    assert [tool.server_label for tool, _ in call.catalog.servers] == ["calc"]
    assert call.catalog.web_search and call.skipped.tools == []
    assert call.request.tools is None  # server tools join in the agent loop


def test_without_a_search_backend_web_search_is_skipped_as_before() -> None:
    call = parse(tools=[{"type": "web_search"}])
    assert not call.catalog.server_tools and call.skipped.tools == ["web_search"]
    with pytest.raises(CapabilityError):
        parse(tools=[{"type": "web_search"}], tool_choice={"type": "web_search"})


@pytest.mark.parametrize(("tool", "error", "param"), [
    ({**MCP, "require_approval": "always"}, InvalidRequestError, "tools[0].require_approval"),
    ({**MCP, "require_approval": {"always": {"tool_names": ["add"]}}}, InvalidRequestError,
     "tools[0].require_approval"),
    ({"type": "mcp", "server_label": "gmail", "connector_id": "connector_gmail"}, CapabilityError,
     "tools[0].connector_id"),
    ({**MCP, "server_label": "bad label"}, InvalidRequestError, "tools[0].server_label"),
])
def test_refusals_name_their_field(tool: dict[str, Any], error: type[Exception], param: str) -> None:
    with pytest.raises(error) as caught:
        parse(tools=[tool])
    assert caught.value.param == param  # type: ignore[attr-defined]


def test_a_label_given_twice_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="given twice"):
        parse(tools=[MCP, MCP])


def test_tool_choice_may_name_an_mcp_tool_or_require_one() -> None:
    assert parse(tools=[MCP], tool_choice={"type": "mcp", "server_label": "calc", "name": "add"}
                 ).request.tool_choice == {"type": "function", "function": {"name": "add"}}
    assert parse(tools=[MCP], tool_choice={"type": "mcp", "server_label": "calc"}).request.tool_choice == "required"
    assert parse(tools=[MCP], tool_choice="required").request.tool_choice == "required"
    with pytest.raises(CapabilityError):
        parse(tools=[MCP], tool_choice={"type": "mcp", "server_label": "other", "name": "add"})


def test_past_mcp_calls_replay_into_the_conversation() -> None:
    call = parse_responses({"input": [
        {"role": "user", "content": "who am I"},
        {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "t", "tools": []},
        {"type": "mcp_call", "id": "mcp_1", "name": "whoami", "server_label": "t", "arguments": "{}",
         "output": "Bob", "error": None, "status": "completed"},
        {"type": "mcp_call", "id": "mcp_2", "name": "add", "arguments": "{}", "output": None,
         "error": {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "boom"}]}},
        {"role": "user", "content": "thanks"}]}, LIMITS)
    assert call.request.messages[1:5] == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "mcp_1", "type": "function", "function": {"name": "whoami", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "mcp_1", "content": "Bob"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "mcp_2", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "mcp_2", "content": "error: boom"}]
    assert call.skipped.items == ["mcp_list_tools"]


ADD = ToolSpec("add", "Add.", {"type": "object"}, source="calc#0123456789ab")
FETCH = ToolSpec("web_fetch", "Fetch.", {"type": "object"})
SEARCH = ToolSpec("web_search", "Search.", {"type": "object"})


def scripted(calls: list[tuple[ToolSpec, str, ToolResult]]) -> list[Any]:
    """The events of a loop whose first turn makes `calls` and whose second answers."""
    events: list[Any] = []
    for i, (spec, arguments, _) in enumerate(calls):
        events += [ModelDelta(0, ToolCallDelta(i, id=f"c{i}", name=spec.name), True),
                   ModelDelta(0, ToolCallDelta(i, arguments=arguments), True)]
    events.append(TurnFinished(0, "tool_calls", Usage(prompt_tokens=10, completion_tokens=4),
                               tuple(ToolCall(f"c{i}", s.name, a) for i, (s, a, _) in enumerate(calls))))
    for i, (spec, arguments, result) in enumerate(calls):
        events += [CallStarted(0, f"c{i}", spec.name, arguments, spec.source, "calc"),
                   CallFinished(ServerCall(f"c{i}", spec.name, arguments, spec.source, result, 0))]
    usage = Usage(prompt_tokens=40, completion_tokens=6)
    events += [ModelDelta(1, TextDelta("done")), TurnFinished(1, "stop", Usage(prompt_tokens=30, completion_tokens=2)),
               LoopFinished(AgentOutcome(ChatResult("m", [ChatChoice(0, "done", "stop")], usage), turns=1))]
    return events


def encode(events: list[Any], **options: Any) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    shell = ResponseShell("m", {})
    listing = Listing(McpRequest("calc"), "calc#0123456789ab", [ADD])
    encoder = ResponsesAgentEncoder(ResponsesStreamEncoder(shell, CallItems(ToolCatalog())),
                                    {"add": ADD, "web_fetch": FETCH, "web_search": SEARCH}, [listing],
                                    RequestMeter(ServerMetrics(), "m", "t"), **options)
    frames = list(encoder.start())
    for event in events:
        frames += encoder.encode(event)
    frames += encoder.finish()
    assert encoder.response is not None
    return frames, encoder.response  # type: ignore[return-value]


def test_items_and_events_in_order_with_sequence_numbers() -> None:
    frames, response = encode(scripted([(ADD, '{"a": 1}', ToolResult("3")),
                                        (FETCH, '{"url": "http://x.test/"}', ToolResult("boom", is_error=True))]))
    names = [name for name, _ in frames]
    assert [data["sequence_number"] for _, data in frames] == list(range(len(frames)))
    assert names == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added", "response.mcp_call.in_progress", "response.mcp_call_arguments.delta",
        "response.output_item.added", "response.web_search_call.in_progress",
        "response.mcp_call_arguments.done", "response.mcp_call.completed", "response.output_item.done",
        "response.web_search_call.searching", "response.web_search_call.completed", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    listed, mcp, web, message = response["output"]
    assert listed == {"type": "mcp_list_tools", "id": listed["id"], "server_label": "calc", "error": None,
                      "tools": [{"name": "add", "description": "Add.", "input_schema": {"type": "object"},
                                 "annotations": None}]}
    assert mcp == {"type": "mcp_call", "id": mcp["id"], "server_label": "calc", "name": "add", "arguments": '{"a": 1}',
                   "output": "3", "error": None, "status": "completed", "approval_request_id": None}
    assert web == {"type": "web_search_call", "id": web["id"], "status": "failed",
                   "action": {"type": "open_page", "url": "http://x.test/"}}
    assert message["type"] == "message" and message["content"][0]["text"] == "done"
    assert response["usage"]["input_tokens"] == 40 and response["status"] == "completed"


def test_a_failed_mcp_call_carries_its_error() -> None:
    frames, response = encode(scripted([(ADD, "{}", ToolResult("error: tool 'add' took too long", is_error=True))]))
    assert "response.mcp_call.failed" in [name for name, _ in frames]
    mcp = response["output"][1]
    assert mcp["status"] == "failed" and mcp["output"] is None
    assert mcp["error"] == {"type": "mcp_tool_execution_error",
                            "content": [{"type": "text", "text": "error: tool 'add' took too long"}]}


def test_a_call_written_but_not_run_is_incomplete() -> None:
    events = [ModelDelta(0, ToolCallDelta(0, id="c0", name="add"), True),
              TurnFinished(0, "stop", Usage(), (), cut=True),
              LoopFinished(AgentOutcome(ChatResult("m", [ChatChoice(0, "", "stop")], Usage()), stopped="max_time"))]
    _, response = encode(events)
    assert response["output"][1]["status"] == "incomplete" and response["status"] == "completed"


def test_search_sources_when_included() -> None:
    found = ToolResult("1. Llama", structured={"query": "llama", "results": [{"title": "Llama", "url": "https://l.test/"}]})
    events = scripted([(ADD, "{}", ToolResult("3")), (SEARCH, '{"query": "llama"}', found)])
    _, plain = encode(events)
    assert plain["output"][2]["action"] == {"type": "search", "query": "llama", "queries": ["llama"]}
    _, sourced = encode(events, search_sources=True)
    assert sourced["output"][2]["action"]["sources"] == [{"type": "url", "url": "https://l.test/"}]
    assert "action" not in sourced["output"][1]
