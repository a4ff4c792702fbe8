"""Anthropic request bodies → ChatRequest: what current clients send, translated without a server."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from kronk.errors import CapabilityError, InvalidRequestError
from kronk.server.anthropic.protocol import MessagesCall, parse_request
from kronk.server.openai.protocol import Limits

USER = {"role": "user", "content": "hi"}


def parse(**fields: Any) -> MessagesCall:
    return parse_request({"max_tokens": 16, "messages": [USER], **fields}, Limits())


def messages_of(*messages: dict[str, Any], **fields: Any) -> list[dict[str, Any]]:
    return parse(**{**fields, "messages": list(messages)}).request.messages


def refused(exc_type: type[Exception], **fields: Any) -> InvalidRequestError:
    with pytest.raises(exc_type) as info:
        parse(**fields)
    assert isinstance(info.value, InvalidRequestError)
    return info.value


# --- system text -----------------------------------------------------------------------


def test_leading_system_messages_join_the_system_prompt() -> None:
    out = messages_of(
        {"role": "system", "content": "B"},
        {"role": "system", "content": [{"type": "text", "text": "C", "cache_control": {"type": "ephemeral"}}]},
        USER,
        system=[{"type": "text", "text": "A", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    assert out == [{"role": "system", "content": "A\n\nB\n\nC"}, {"role": "user", "content": "hi"}]


def test_claude_codes_billing_line_is_dropped_so_sessions_share_the_prefix() -> None:
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.7b2; cc_entrypoint=sdk-cli;"},
              {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}}]
    assert messages_of(USER, system=system)[0] == {"role": "system", "content": "You are a Claude agent."}
    other_session = [{**system[0], "text": "x-anthropic-billing-header: cc_version=2.1.197.e41; cc_entrypoint=cli;"},
                     system[1]]
    assert messages_of(USER, system=other_session) == messages_of(USER, system=system)


def test_mid_conversation_system_messages_keep_their_place() -> None:
    """Claude Code: [user, system]; later turns keep the system message where it was (prefix cache)."""
    out = messages_of(USER, {"role": "system", "content": "MCP instructions"}, system="S")
    assert out == [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                   {"role": "system", "content": "MCP instructions"}]
    out = messages_of(USER, {"role": "system", "content": "one"}, {"role": "system", "content": "two"},
                      {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"})
    assert [m["role"] for m in out] == ["user", "system", "assistant", "user"]
    assert out[1]["content"] == "one\n\ntwo"


def test_only_system_messages_is_a_clear_400() -> None:
    error = refused(InvalidRequestError, messages=[{"role": "system", "content": "x"}])
    assert error.param == "messages" and "user or assistant" in str(error)


def test_unknown_role_names_the_field() -> None:
    error = refused(InvalidRequestError, messages=[{"role": "wizard", "content": "x"}])
    assert error.param == "messages[0].role"
    assert "'user', 'assistant', 'system'" in str(error)


# --- turns and blocks ---------------------------------------------------------------------


def test_consecutive_turns_of_one_role_merge() -> None:
    out = messages_of(USER, {"role": "user", "content": [{"type": "text", "text": "again"}]},
                      {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"})
    assert out == [{"role": "user", "content": "hi\n\nagain"}, {"role": "assistant", "content": "a\n\nb"}]


def test_tool_round_trip_blocks() -> None:
    out = messages_of(
        USER,
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "need weather", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "paris"},
             "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
             "content": [{"type": "text", "text": "timeout"}, {"type": "tool_reference", "tool_name": "w2"}]},
            {"type": "text", "text": "retry"}]})
    assert out[1] == {"role": "assistant", "content": "Checking.", "reasoning_content": "need weather",
                      "tool_calls": [{"id": "toolu_1", "type": "function",
                                      "function": {"name": "w", "arguments": '{"city": "paris"}'}}]}
    assert out[2] == {"role": "tool", "tool_call_id": "toolu_1",
                      "content": "Error: timeout\n\n[tool available: w2]"}
    assert out[3] == {"role": "user", "content": "retry"}


def test_tool_result_images_stay_in_the_tool_message() -> None:
    out = messages_of(
        USER, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "screenshot:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]}]})
    assert out[-1] == {"role": "tool", "tool_call_id": "t", "content": [
        {"type": "text", "text": "screenshot:"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]}


def test_images_by_base64_and_url() -> None:
    out = messages_of({"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}},
        {"type": "text", "text": "what is it?"}]})
    assert out[0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                                 {"type": "text", "text": "what is it?"}]
    error = refused(CapabilityError, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}])
    assert error.param == "messages[0].content[0].source" and "Files API" in str(error)


def test_text_documents_become_text_and_pdfs_are_refused() -> None:
    encoded = base64.b64encode("héllo".encode()).decode()
    out = messages_of({"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "base64", "media_type": "text/plain", "data": encoded}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
        {"type": "document", "context": "ctx", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
        {"type": "search_result", "source": "https://s.invalid", "title": "T", "content": [{"type": "text", "text": "r"}]},
    ]})
    assert out[0]["content"] == "Notes\n\nhéllo\n\nplain\n\nctx\n\nc\n\nT (https://s.invalid)\nr"
    error = refused(CapabilityError, messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}])
    assert error.param == "messages[0].content[0].source" and "PDF" in str(error)
    error = refused(InvalidRequestError, messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": "%%%"}}]}])
    assert error.param == "messages[0].content[0].source.data"


def test_server_tool_blocks_in_history_become_text() -> None:
    out = messages_of(USER, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "kronk"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "title": "Kronk", "url": "https://k.invalid", "encrypted_content": "x"}]},
        {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_2", "content": {
            "type": "web_fetch_result", "url": "https://k.invalid/p",
            "content": {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "page"}}}},
        {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "echo", "server_name": "srv", "input": {"x": 1}},
        {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "is_error": False,
         "content": [{"type": "text", "text": "echoed"}]},
        {"type": "bash_code_execution_tool_result", "tool_use_id": "s3", "content": {
            "type": "bash_code_execution_result", "stdout": "ok\n", "stderr": "", "return_code": 0, "content": []}},
        {"type": "web_search_tool_result", "tool_use_id": "s4",
         "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}},
        {"type": "container_upload", "file_id": "file_1"},
        {"type": "text", "text": "Done."}]})
    expected = [
        '[web_search call: {"query": "kronk"}]',
        "[web_search results]\n- Kronk: https://k.invalid",
        "[web_fetch https://k.invalid/p]\npage",
        '[srv.echo call: {"x": 1}]',
        "[mcp result]\nechoed",
        "[bash result, exit code 0]\nstdout:\nok\n",
        "[web_search error: max_uses_exceeded]",
        "Done."]
    assert out[1]["content"] == "\n\n".join(expected)


def test_misplaced_tool_blocks_are_refused() -> None:
    error = refused(InvalidRequestError, messages=[{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "w", "input": {}}]}])
    assert error.param == "messages[0].content[0]"
    error = refused(InvalidRequestError, messages=[USER, {"role": "assistant", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "x"}]}])
    assert error.param == "messages[1].content[0]"


def test_unknown_block_type_names_the_field() -> None:
    error = refused(InvalidRequestError, messages=[{"role": "user", "content": [{"type": "video"}]}])
    assert error.param == "messages[0].content[0].type"


# --- tools ------------------------------------------------------------------------------------

CUSTOM = {"name": "Bash", "description": "Run a command", "cache_control": {"type": "ephemeral"},
          "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                           "properties": {"command": {"type": "string"}}, "required": ["command"],
                           "additionalProperties": False}}
SERVER_TOOLS = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 800, "display_height_px": 600},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "memory_20250818", "name": "memory"},
    {"type": "mcp_toolset", "mcp_server_name": "srv"},
]


def test_server_tools_are_skipped_and_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "kronk.server.anthropic"):
        call = parse(tools=[CUSTOM, *SERVER_TOOLS])
    assert [t["function"]["name"] for t in call.request.tools or []] == ["Bash"]
    assert call.request.tools[0]["function"]["parameters"] == CUSTOM["input_schema"]  # type: ignore[index]
    assert call.ignored_tools == ["web_search", "web_fetch", "bash", "str_replace_based_edit_tool", "computer",
                                  "code_execution", "memory", "srv"]
    assert call.request.tool_choice == "auto"
    assert "skipping tool 'web_search'" in caplog.text or "skipping server tool 'web_search'" in caplog.text


def test_tool_choice_variants() -> None:
    assert parse(tools=[CUSTOM], tool_choice={"type": "auto"}).request.tool_choice == "auto"
    call = parse(tools=[CUSTOM], tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert call.request.tool_choice == "required" and call.request.parallel_tool_calls is False
    call = parse(tools=[CUSTOM], tool_choice={"type": "tool", "name": "Bash"})
    assert call.request.tool_choice == {"type": "function", "function": {"name": "Bash"}}
    assert call.request.parallel_tool_calls is True
    assert parse(tools=[CUSTOM], tool_choice={"type": "none"}).request.tool_choice == "none"


def test_tool_choice_that_needs_a_skipped_tool_is_refused() -> None:
    error = refused(CapabilityError, tools=[CUSTOM, *SERVER_TOOLS], tool_choice={"type": "tool", "name": "web_search"})
    assert error.param == "tool_choice.name" and "'web_search'" in str(error)
    error = refused(CapabilityError, tools=SERVER_TOOLS[:1], tool_choice={"type": "any"})
    assert "web_search" in str(error)
    error = refused(InvalidRequestError, tools=[CUSTOM], tool_choice={"type": "tool", "name": "nope"})
    assert error.param == "tool_choice.name"
    refused(InvalidRequestError, tool_choice={"type": "any"})


def test_custom_tools_need_a_schema_and_unique_names() -> None:
    assert refused(InvalidRequestError, tools=[{"name": "x"}]).param == "tools[0].input_schema"
    assert refused(InvalidRequestError, tools=[CUSTOM, CUSTOM]).param == "tools"


def test_mcp_servers_are_kept_for_the_agent_loop() -> None:
    call = parse(mcp_servers=[{"type": "url", "url": "https://m.invalid", "name": "m",
                               "tool_configuration": {"allowed_tools": ["a"]}}])
    assert call.agent and call.mcp_servers[0].name == "m"
    assert call.mcp_servers[0].tool_configuration.allowed_tools == ["a"]  # type: ignore[union-attr]
    assert refused(InvalidRequestError, mcp_servers=[{"type": "sse", "url": "x", "name": "m"}]).param \
        == "mcp_servers[0].type"
    assert not parse(mcp_servers=[]).agent and parse(mcp_servers=[]).request.messages == [USER]


# --- thinking, output, limits, ignored fields --------------------------------------------------


@pytest.mark.parametrize(("thinking", "enable", "shown"), [
    (None, None, True),
    ({"type": "enabled", "budget_tokens": 8}, True, True),
    ({"type": "enabled", "budget_tokens": 8, "display": "omitted"}, True, False),
    ({"type": "adaptive"}, None, True),
    ({"type": "adaptive", "display": "omitted"}, None, False),
    ({"type": "between_tools"}, None, True),
    ({"type": "disabled"}, False, True),
])
def test_thinking_maps_to_enable_thinking(thinking: dict[str, Any] | None, enable: bool | None, shown: bool) -> None:
    call = parse(thinking=thinking)
    assert call.request.enable_thinking is enable and call.show_thinking is shown


def test_thinking_budget_must_stay_below_max_tokens() -> None:
    error = refused(InvalidRequestError, thinking={"type": "enabled", "budget_tokens": 16})
    assert error.param == "thinking.budget_tokens"


def test_output_config_effort_and_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    call = parse(output_config={"effort": "max", "format": {"type": "json_schema", "schema": schema}})
    assert call.request.chat_template_kwargs == {"reasoning_effort": "high"}
    assert call.request.response_format == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    beta = parse(output_format={"type": "json_schema", "schema": schema})
    assert beta.request.response_format == call.request.response_format


def test_max_tokens_above_the_limit_is_lowered_and_zero_is_allowed() -> None:
    call = parse_request({"max_tokens": 64000, "messages": [USER]}, Limits(max_tokens=1000))
    assert call.request.max_tokens == 1000
    assert parse_request({"max_tokens": 0, "messages": [USER]}, Limits()).request.max_tokens == 0
    with pytest.raises(InvalidRequestError) as info:
        parse_request({"messages": [USER]}, Limits())
    assert info.value.param == "max_tokens"
    assert parse_request({"messages": [USER]}, Limits(), count_only=True).request.max_tokens is None


def test_fields_kronk_has_no_use_for_are_accepted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "kronk.server.anthropic"):
        call = parse(metadata={"user_id": "user_abc"}, service_tier="auto", container="c", speed="fast",
                     context_management={"edits": [{"type": "clear_tool_uses_20250919"}]}, inference_geo="us",
                     cache_control={"type": "ephemeral"}, top_k=5, temperature=1, stop_sequences=["END", ""])
    assert call.request.stop == ["END"]
    assert call.explicit == {"top_k", "temperature"}
    assert "context_management" in caplog.text and "metadata" in caplog.text
