"""Wire encoders on event sequences a reasoning, tool-calling model produces (the tiny models never think)."""

from __future__ import annotations

import json

import pytest

from kronk.engine.types import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kronk.errors import ContextOverflowError
from kronk.server.anthropic.messages import MessagesStreamEncoder
from kronk.server.anthropic.protocol import parse_request
from kronk.server.openai.chat import ChatStreamEncoder
from kronk.server.openai.protocol import Limits
from kronk.server.openai.responses import ResponseShell, ResponsesStreamEncoder, parse_responses
from kronk.server.validate import Body

EVENTS = [
    ReasoningDelta("let me "),
    ReasoningDelta("think"),
    TextDelta("Checking."),
    ToolCallDelta(0, "", id="call_1", name="get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"paris"}'),
    Finish("tool_calls", Usage(prompt_tokens=10, completion_tokens=7, cached_tokens=4, reasoning_tokens=2)),
]


def _run(encoder: object) -> list[tuple[str | None, object]]:
    frames = list(encoder.start())  # type: ignore[attr-defined]
    for event in EVENTS:
        frames += encoder.encode(event)  # type: ignore[attr-defined]
    return frames + list(encoder.finish())  # type: ignore[attr-defined]


def test_anthropic_blocks_thinking_text_tool_use() -> None:
    frames = _run(MessagesStreamEncoder("m", input_tokens=10))
    names = [name for name, _ in frames]
    assert names == [
        "message_start",
        "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    payloads = [p for _, p in frames]
    assert payloads[1]["content_block"]["type"] == "thinking"  # type: ignore[index]
    assert payloads[3]["delta"] == {"type": "thinking_delta", "thinking": "let me "}  # type: ignore[index]
    assert payloads[5]["delta"]["type"] == "signature_delta"  # type: ignore[index]
    tool_start = payloads[10]
    assert tool_start["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather",  # type: ignore[index]
                                           "input": {}}
    assert tool_start["index"] == 2  # type: ignore[index]
    partial = "".join(p["delta"]["partial_json"] for p in payloads[11:13])  # type: ignore[index]
    assert json.loads(partial) == {"city": "paris"}
    delta = payloads[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"  # type: ignore[index]
    assert delta["usage"] == {"input_tokens": 6, "output_tokens": 7, "cache_read_input_tokens": 4,  # type: ignore[index]
                              "cache_creation_input_tokens": 0}


def test_anthropic_stop_sequence_reason() -> None:
    encoder = MessagesStreamEncoder("m", input_tokens=1)
    encoder.encode(Finish("stop", Usage(), stop_sequence="END"))
    delta = next(p for name, p in encoder.finish() if name == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}  # type: ignore[index]


def test_responses_items_for_reasoning_text_and_call() -> None:
    shell = ResponseShell("m", {"tools": []})
    frames = _run(ResponsesStreamEncoder(shell))
    kinds = [name for name, _ in frames]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_item.added") == 3
    assert kinds.count("response.output_item.done") == 3
    assert "response.reasoning_text.delta" in kinds
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    done = next(p for name, p in frames if name == "response.function_call_arguments.done")
    assert done["arguments"] == '{"city":"paris"}' and done["name"] == "get_weather"  # type: ignore[index]
    final = frames[-1][1]
    assert frames[-1][0] == "response.completed"
    output = final["response"]["output"]  # type: ignore[index]
    assert [item["type"] for item in output] == ["reasoning", "message", "function_call"]
    assert output[0]["content"][0]["text"] == "let me think"
    assert final["response"]["output_text"] == "Checking."  # type: ignore[index]
    assert final["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}  # type: ignore[index]


def test_chat_chunks_carry_reasoning_and_tool_deltas() -> None:
    frames = _run(ChatStreamEncoder("m", include_usage=True))
    chunks = [p if isinstance(p, dict) else json.loads(p) for _, p in frames if p != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1] == {"reasoning_content": "let me "}
    assert deltas[4]["tool_calls"][0] == {"index": 0, "id": "call_1", "type": "function",
                                          "function": {"name": "get_weather", "arguments": ""}}
    assert deltas[5]["tool_calls"][0] == {"index": 0, "function": {"arguments": '{"city":'}}
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert frames[-1] == (None, "[DONE]")


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("text", ["plain", 'a "quoted" \\ line\nnext\ttab', "é 漢字 🙂", "", '"content":""'])
def test_chat_content_chunks_equal_the_generic_chunk(text: str, include_usage: bool) -> None:
    """Content chunks take a pre-encoded fast path; the JSON must be what the generic path gives."""
    encoder = ChatStreamEncoder('mo"del', n=2, include_usage=include_usage)
    for choice in (1, 0, 1):
        (name, payload), = encoder.encode(TextDelta(text, choice))
        assert name is None and isinstance(payload, str) and "\n" not in payload
        assert json.loads(payload) == encoder._chunk(choice, {"content": text})[1]


def test_mid_stream_errors_in_each_shape() -> None:
    error = ContextOverflowError("too long", param="messages")
    assert ChatStreamEncoder("m").error(error) == [(None, {"error": {
        "message": "too long", "type": "invalid_request_error", "param": "messages",
        "code": "context_length_exceeded"}})]
    assert MessagesStreamEncoder("m", 0).error(error) == [("error", {
        "type": "error", "error": {"type": "invalid_request_error", "message": "too long"}})]
    name, payload = ResponsesStreamEncoder(ResponseShell("m", {})).error(error)[0]
    assert name == "error" and payload["code"] == "context_length_exceeded"  # type: ignore[index]


def test_anthropic_request_translation() -> None:
    body = Body({
        "max_tokens": 50,
        "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "oops", "is_error": True},
                {"type": "text", "text": "thanks"}]},
        ],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 10},
    })
    call = parse_request(body, Limits())
    request = call.request
    assert request.messages == [
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "hmm", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"city": "paris"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: oops"},
        {"role": "user", "content": "thanks"},
    ]
    assert request.tool_choice == {"type": "function", "function": {"name": "w"}}
    assert request.parallel_tool_calls is False
    assert request.stop == ["END"] and request.enable_thinking is True
    assert request.sampling.top_k == 5 and call.explicit == {"top_k"}


def test_responses_input_translation() -> None:
    body = Body({
        "instructions": "be nice",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "r"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "reasoning": {"effort": "none"},
        "max_output_tokens": 9,
    })
    request = parse_responses(body, Limits()).request
    assert request.messages[0] == {"role": "system", "content": "be nice"}
    assistant = request.messages[2]
    assert assistant["reasoning_content"] == "r"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert request.messages[3:] == [{"role": "tool", "tool_call_id": "c1", "content": "one"},
                                    {"role": "tool", "tool_call_id": "c2", "content": "two"}]
    assert request.enable_thinking is False and request.max_tokens == 9


@pytest.mark.parametrize("effort, enabled", [("none", False), ("high", True)])
def test_reasoning_effort_maps_to_enable_thinking(effort: str, enabled: bool) -> None:
    from kronk.server.openai.chat import parse_chat

    call = parse_chat({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}, Limits())
    assert call.request.enable_thinking is enabled
    assert call.request.chat_template_kwargs["reasoning_effort"] == effort
