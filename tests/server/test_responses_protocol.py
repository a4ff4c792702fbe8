"""The Responses route's translation, without a model: Codex-shaped bodies in, events the `openai` types accept out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.errors import CapabilityError, ContextOverflowError, InvalidRequestError
from kronk.server.openai.protocol import Limits
from kronk.server.openai.responses import ResponsesCall, parse_responses
from kronk.server.openai.responses_items import CallItems, decode_opaque, encode_opaque
from kronk.server.openai.responses_stream import ResponseShell, ResponsesStreamEncoder
from kronk.server.openai.responses_tools import partial_input

EVENTS = TypeAdapter(ResponseStreamEvent)

CODEX_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "exec_command", "description": "Run a command", "strict": False,
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
    {"type": "local_shell"},
    {"type": "web_search", "external_web_access": False},
    {"type": "namespace", "name": "mcp__github__", "description": "Tools of the github MCP server.", "tools": [
        {"type": "function", "name": "create_issue", "strict": False, "defer_loading": True,
         "parameters": {"type": "object", "properties": {"title": {"type": "string"}}}},
        {"type": "custom", "name": "raw_query"}]},
    {"type": "namespace", "name": "functions", "description": "", "tools": [
        {"type": "function", "name": "update_plan", "parameters": {"type": "object", "properties": {}}}]},
    {"type": "image_generation", "output_format": "png"},
    {"type": "tool_search", "execution": "client", "description": "find tools", "parameters": {}},
]


def codex_body(**overrides: Any) -> dict[str, Any]:
    """A request as Codex CLI sends it to a custom `wire_api = "responses"` provider."""
    body = {
        "model": "m", "instructions": "You are Codex.", "stream": True, "store": False,
        "tools": CODEX_TOOLS, "tool_choice": "auto", "parallel_tool_calls": False,
        "reasoning": {"effort": "xhigh", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1", "text": {"verbosity": "low"}, "service_tier": "priority",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "<environment_context>"}, {"type": "input_text", "text": "fix it"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "look first"}],
             "encrypted_content": "gAAAAB-openai-blob"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}],
             "phase": "commentary"},
            {"type": "function_call", "name": "exec_command", "arguments": '{"cmd":"ls"}', "call_id": "c1"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.py"},
            {"type": "function_call", "name": "create_issue", "namespace": "mcp__github__",
             "arguments": "{}", "call_id": "c2"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "#1"}]},
            {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "c3", "output": "Done!"},
            {"type": "local_shell_call", "call_id": "c4", "status": "completed",
             "action": {"type": "exec", "command": ["ls", "-a"], "working_directory": "/w"}},
            {"type": "local_shell_call_output", "id": "c4", "output": "."},
            {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "x"}},
            {"type": "compaction", "encrypted_content": "opaque"},
            {"type": "function_call_output", "id": "fco_1", "name": "goal_objective", "namespace": "agent",
             "output": "ship it"},
            {"type": "message", "role": "user", "content": "thanks"},
        ],
    }
    return {**body, **overrides}


def test_a_codex_request_becomes_chat_messages_and_tools() -> None:
    call = parse_responses(codex_body(), Limits())
    request = call.request
    assert [t["function"]["name"] for t in request.tools or []] == [
        "exec_command", "apply_patch", "local_shell", "mcp__github__create_issue", "mcp__github__raw_query",
        "update_plan"]
    assert call.skipped.tools == ["web_search", "image_generation", "tool_search"]
    assert call.skipped.items == ["web_search_call", "compaction"]
    messages = request.messages
    assert messages[0] == {"role": "system", "content": "You are Codex.\n\n<permissions>"}
    assert messages[1] == {"role": "user", "content": "<environment_context>\nfix it"}
    assert messages[2]["content"] == "Looking." and messages[2]["reasoning_content"] == "look first"
    calls = [(m["tool_calls"][0]["function"]["name"], m["tool_calls"][0]["function"]["arguments"])
             for m in messages if m.get("tool_calls")]
    assert calls == [("exec_command", '{"cmd":"ls"}'), ("mcp__github__create_issue", "{}"),
                     ("apply_patch", '{"input": "*** Begin Patch"}'),
                     ("local_shell", '{"command": ["ls", "-a"], "workdir": "/w"}')]
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ["c1", "c2", "c3", "c4"]
    # Codex 0.171 sends its goal's objective as an output of no call: the model reads it as a user message.
    assert messages[-2:] == [{"role": "user", "content": "[agent.goal_objective]\nship it"},
                             {"role": "user", "content": "thanks"}]
    assert request.tool_choice == "auto" and request.parallel_tool_calls is False
    assert request.enable_thinking is True and request.chat_template_kwargs == {"reasoning_effort": "high"}
    assert call.stream and call.reasoning_summary and call.opaque_reasoning
    custom = next(t for t in request.tools or [] if t["function"]["name"] == "apply_patch")["function"]
    assert "start: begin_patch hunk+ end_patch" in custom["description"]
    assert custom["parameters"]["required"] == ["input"]


def _run(call: ResponsesCall, events: list[Any]) -> list[tuple[str | None, Any]]:
    encoder = ResponsesStreamEncoder(ResponseShell("m", call.echo), CallItems(call.catalog),
                                     reasoning_summary=call.reasoning_summary, opaque_reasoning=call.opaque_reasoning)
    frames = list(encoder.start())
    for event in events:
        frames += encoder.encode(event)
    return frames + encoder.finish()


CALL_EVENTS = [
    ReasoningDelta("plan "), ReasoningDelta("it"), TextDelta("Working."),
    ToolCallDelta(0, "", id="call_a", name="mcp__github__create_issue"), ToolCallDelta(0, '{"title":'),
    ToolCallDelta(0, '"bug"}'),
    ToolCallDelta(1, "", id="call_b", name="apply_patch"), ToolCallDelta(1, '{"input": "*** Begin'),
    ToolCallDelta(1, ' Patch\\n*** End'), ToolCallDelta(1, ' Patch\\u00e9"}'),
    ToolCallDelta(2, "", id="call_c", name="local_shell"), ToolCallDelta(2, '{"command": ["ls", "-l"]}'),
    Finish("tool_calls", Usage(prompt_tokens=30, completion_tokens=12, cached_tokens=8, reasoning_tokens=2)),
]


@pytest.mark.parametrize("summary", ["auto", None])
def test_every_stream_event_is_an_openai_typed_event(summary: str | None) -> None:
    call = parse_responses(codex_body(reasoning={"effort": "high", "summary": summary}), Limits())
    frames = _run(call, CALL_EVENTS)
    for name, data in frames:
        assert name == data["type"]
        EVENTS.validate_python(data)
    assert [data["sequence_number"] for _, data in frames] == list(range(len(frames)))
    kinds = [name for name, _ in frames]
    reasoning_delta = "response.reasoning_summary_text.delta" if summary else "response.reasoning_text.delta"
    assert reasoning_delta in kinds and kinds[-1] == "response.completed"
    response = Response.model_validate(frames[-1][1]["response"])
    assert [item.type for item in response.output] == [
        "reasoning", "message", "function_call", "custom_tool_call", "local_shell_call"]
    reasoning, message, function, custom, shell = response.output
    texts = reasoning.summary if summary else reasoning.content
    assert [t.text for t in texts or []] == ["plan it"]
    assert decode_opaque(reasoning.encrypted_content) == "plan it"
    assert response.output_text == "Working." and message.status == "completed"
    assert (function.name, function.namespace, function.arguments, function.call_id) == (
        "create_issue", "mcp__github__", '{"title":"bug"}', "call_a")
    assert (custom.name, custom.input, custom.call_id) == ("apply_patch", "*** Begin Patch\n*** End Patché", "call_b")
    assert shell.action.command == ["ls", "-l"] and shell.call_id == "call_c"
    assert response.usage.input_tokens_details.cached_tokens == 8
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert response.store is False


def test_custom_tool_input_streams_as_it_is_decoded() -> None:
    call = parse_responses(codex_body(), Limits())
    frames = _run(call, CALL_EVENTS)
    deltas = [d["delta"] for n, d in frames if n == "response.custom_tool_call_input.delta"]
    done = next(d for n, d in frames if n == "response.custom_tool_call_input.done")
    assert len(deltas) == 3 and "".join(deltas) == done["input"] == "*** Begin Patch\n*** End Patché"


def test_partial_input_only_grows() -> None:
    text = 'say "hi"\\ \n é 🙂 \t end'
    for ensure_ascii in (True, False):
        arguments = json.dumps({"input": text}, ensure_ascii=ensure_ascii)
        seen = ""
        for cut in range(len(arguments) + 1):
            now = partial_input(arguments[:cut])
            if now is not None:
                assert now.startswith(seen)
                seen = now
        assert seen == text
    assert partial_input('{"other": 1}') is None


def test_a_call_cut_by_the_token_limit_is_incomplete() -> None:
    call = parse_responses(codex_body(), Limits())
    frames = _run(call, [ToolCallDelta(0, "", id="c", name="apply_patch"), ToolCallDelta(0, '{"input": "*** Beg'),
                         ToolCallDelta(1, "", id="d", name="local_shell"), ToolCallDelta(1, '{"command": ["l'),
                         Finish("length", Usage(completion_tokens=9))])
    for _, data in frames:
        EVENTS.validate_python(data)
    response = frames[-1][1]["response"]
    assert frames[-1][0] == "response.incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    custom, shell = response["output"]
    assert custom["type"] == "custom_tool_call" and custom["input"] == "*** Beg"
    # A local_shell call without a usable command goes out as the raw function call it is.
    assert shell["type"] == "function_call" and shell["name"] == "local_shell" and shell["status"] == "incomplete"


def test_an_error_mid_stream_ends_with_error_and_response_failed() -> None:
    call = parse_responses(codex_body(), Limits())
    encoder = ResponsesStreamEncoder(ResponseShell("m", call.echo), CallItems(call.catalog))
    frames = list(encoder.start()) + encoder.encode(TextDelta("par"))
    frames += encoder.error(ContextOverflowError("the prompt is too long", param="input"))
    for _, data in frames[:-1]:
        EVENTS.validate_python(data)
    (error_name, error), (failed_name, failed) = frames[-2:]
    assert (error_name, failed_name) == ("error", "response.failed")
    assert error["code"] == "context_length_exceeded" and error["message"] == "the prompt is too long"
    # Codex reads response.failed's error.code (context_length_exceeded makes it compact the history);
    # the openai types list fewer codes than the API sends, so that one field is checked by hand.
    assert failed["response"]["error"] == {"code": "context_length_exceeded", "message": "the prompt is too long"}
    response = Response.model_validate({**failed["response"], "error": None})
    assert response.status == "failed"
    assert response.output[0].status == "incomplete" and response.output_text == "par"


def test_reasoning_comes_back_from_kronks_encrypted_content_only() -> None:
    opaque = encode_opaque("earlier thought")
    body = codex_body(input=[
        {"role": "user", "content": "q"},
        {"type": "reasoning", "summary": [], "encrypted_content": opaque},
        {"role": "assistant", "content": "a"},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-not-ours"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "q2"},
    ])
    call = parse_responses(body, Limits())
    assistants = [m for m in call.request.messages if m["role"] == "assistant"]
    assert assistants[0]["reasoning_content"] == "earlier thought"
    assert "reasoning_content" not in assistants[1]
    assert call.skipped.items == ["reasoning.encrypted_content"]


def test_tool_output_images_follow_the_tool_results() -> None:
    body = codex_body(input=[
        {"role": "user", "content": "look"},
        {"type": "function_call", "name": "exec_command", "arguments": "{}", "call_id": "v"},
        {"type": "function_call_output", "call_id": "v", "output": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
        {"role": "user", "content": "well?"},
    ])
    messages = parse_responses(body, Limits()).request.messages
    assert messages[3] == {"role": "tool", "tool_call_id": "v", "content": "(the result is the image below)"}
    assert messages[4]["role"] == "user" and messages[4]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert messages[5] == {"role": "user", "content": "well?"}


def test_long_namespaced_names_fit_the_model_and_map_back() -> None:
    long = "x" * 60
    body = codex_body(tools=[{"type": "namespace", "name": "mcp__a_very_long_server_name__", "tools": [
        {"type": "function", "name": long}, {"type": "function", "name": long + "y"}]}])
    call = parse_responses(body, Limits())
    names = [t["function"]["name"] for t in call.request.tools or []]
    assert len(set(names)) == 2 and all(len(n) <= 64 for n in names)
    item = CallItems(call.catalog).item("fc", "c", names[1], "{}")
    assert (item["name"], item["namespace"]) == (long + "y", "mcp__a_very_long_server_name__")


@pytest.mark.parametrize("choice, expected", [
    ({"type": "function", "name": "create_issue", "namespace": "mcp__github__"},
     {"type": "function", "function": {"name": "mcp__github__create_issue"}}),
    ({"type": "function", "name": "mcp__github__create_issue"},
     {"type": "function", "function": {"name": "mcp__github__create_issue"}}),
    ({"type": "function", "name": "update_plan"}, {"type": "function", "function": {"name": "update_plan"}}),
    ({"type": "custom", "name": "apply_patch"}, {"type": "function", "function": {"name": "apply_patch"}}),
    ({"type": "local_shell"}, {"type": "function", "function": {"name": "local_shell"}}),
    ("required", "required"),
    ("none", "none"),
])
def test_tool_choice_names_the_model_facing_function(choice: Any, expected: Any) -> None:
    assert parse_responses(codex_body(tool_choice=choice), Limits()).request.tool_choice == expected


def test_allowed_tools_offers_only_those() -> None:
    choice = {"type": "allowed_tools", "mode": "required", "tools": [
        {"type": "function", "name": "exec_command"}, {"type": "namespace", "name": "mcp__github__"},
        {"type": "web_search"}]}
    request = parse_responses(codex_body(tool_choice=choice), Limits()).request
    assert request.tool_choice == "required"
    assert [t["function"]["name"] for t in request.tools or []] == [
        "exec_command", "mcp__github__create_issue", "mcp__github__raw_query"]


@pytest.mark.parametrize("overrides, error, param", [
    ({"tool_choice": {"type": "web_search_preview"}}, CapabilityError, "tool_choice"),
    ({"tool_choice": {"type": "mcp", "server_label": "deepwiki"}}, CapabilityError, "tool_choice"),
    ({"tools": [{"type": "web_search"}], "tool_choice": "required"}, CapabilityError, "tool_choice"),
    ({"tools": [], "tool_choice": "required"}, InvalidRequestError, "tool_choice"),
    ({"tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "file_search"}]}},
     CapabilityError, "tool_choice.tools"),
    ({"tool_choice": {"type": "allowed_tools", "tools": [{"type": "function", "name": "nope"}]}},
     InvalidRequestError, "tool_choice.tools[0]"),
    ({"tool_choice": {"type": "function", "name": "nope"}}, InvalidRequestError, "tool_choice"),
    ({"tools": [{"type": "function", "name": "f"}, {"type": "namespace", "name": "functions", "tools": [
        {"type": "function", "name": "f"}]}]}, InvalidRequestError, "tools[1].tools[0].name"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, InvalidRequestError, "tools[0].name"),
    ({"previous_response_id": "resp_1"}, InvalidRequestError, "previous_response_id"),
    ({"conversation": "conv_1"}, InvalidRequestError, "conversation"),
    ({"background": True}, InvalidRequestError, "background"),
    ({"prompt": {"id": "pmpt_1"}}, InvalidRequestError, "prompt"),
    ({"input": ""}, InvalidRequestError, "input"),
    ({"input": []}, InvalidRequestError, "input"),
    ({"input": [{"type": "web_search_call"}, {"type": "reasoning", "summary": []}]}, InvalidRequestError, "input"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, InvalidRequestError, "input[0].id"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, InvalidRequestError,
     "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, InvalidRequestError,
     "input[0].content[0].file_id"),
    ({"input": [{"role": "developer", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
     InvalidRequestError, "input[0].content[0]"),
    ({"input": [{"type": "function_call", "name": "f"}]}, InvalidRequestError, "input[0].call_id"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, InvalidRequestError, "input[0].call_id"),
    ({"reasoning": {"effort": "extreme"}}, InvalidRequestError, "reasoning.effort"),
    ({"max_output_tokens": 0}, InvalidRequestError, "max_output_tokens"),
])
def test_refusals_name_their_param(overrides: dict[str, Any], error: type[Exception], param: str) -> None:
    with pytest.raises(error) as caught:
        parse_responses(codex_body(**overrides), Limits())
    assert type(caught.value) is error and caught.value.param == param  # type: ignore[attr-defined]


def test_skipped_tools_are_known_even_when_the_request_is_refused() -> None:
    from kronk.server.openai.responses import Skipped

    skipped = Skipped()
    with pytest.raises(CapabilityError):
        parse_responses(codex_body(tool_choice={"type": "image_generation"}), Limits(), skipped)
    assert skipped.tools == ["web_search", "image_generation", "tool_search"]


def test_store_max_tokens_and_echo() -> None:
    call = parse_responses(codex_body(store=True, max_output_tokens=10**6, metadata={"k": "v"}, max_tool_calls=1,
                                      truncation="auto", user="u", safety_identifier="s"), Limits(max_tokens=512))
    assert call.request.max_tokens == 512 and call.request.parallel_tool_calls is False
    shell = ResponseShell("m", call.echo).build("completed", [], Usage())
    response = Response.model_validate(shell)
    assert response.store is False and response.max_output_tokens == 512 and response.metadata == {"k": "v"}
    assert response.truncation == "auto" and response.text.verbosity == "low"
    assert response.reasoning.effort == "xhigh" and response.tools[4].type == "namespace"
    assert parse_responses(codex_body(max_tool_calls=0), Limits()).request.tool_choice == "none"
