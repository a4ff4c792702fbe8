"""`prepare_chat`: validation, tool_choice modes, formats, reasoning, structured output."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kronk.chat import ChatTemplate, prepare_chat
from kronk.chat.formats import DeepSeekFormat, GenericFormat, HermesFormat, Llama3Format, MistralFormat
from kronk.engine.types import SamplingParams
from kronk.errors import GrammarError, InvalidRequestError
from kronk.sdk.requests import ChatRequest
from tests.chat import templates
from tests.chat.gbnf_match import accepts
from tests.chat.helpers import fixed_clock, run_parser, summarize

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
USER = [{"role": "user", "content": "Weather in Paris?"}]
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 20}, "score": {"type": "integer", "minimum": 0, "maximum": 10}},
    "required": ["answer", "score"],
    "additionalProperties": False,
}
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def plan_for(source: str | None, **fields: Any) -> Any:
    request = ChatRequest(messages=fields.pop("messages", USER), **fields)
    return prepare_chat(request, template_source=source, bos_token="<s>", eos_token="</s>", clock=fixed_clock)


def search(pattern: str, text: str) -> bool:
    """llama.cpp's rule: ^...$ patterns must match whole, others are searched."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return re.fullmatch(pattern, text) is not None
    return re.search(pattern, text) is not None


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": {"not": "a list"}}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}}, "response_format"),
        ({"response_format": {"type": "json_object"}, "sampling": SamplingParams(grammar='root ::= "a"')}, "response_format"),
        ({"tools": [WEATHER], "sampling": SamplingParams(grammar='root ::= "a"')}, "grammar"),
        ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs"),
        ({"enable_thinking": "yes"}, "enable_thinking"),
        ({"template": "{% if %}"}, "template"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        plan_for(templates.QWEN3, **fields)
    assert err.value.param == param


def test_unsupported_schema_is_a_grammar_error() -> None:
    with pytest.raises(GrammarError):
        plan_for(None, response_format={"type": "json_schema", "json_schema": {"schema": {"type": "array", "uniqueItems": True}}})


# --- tool_choice ---------------------------------------------------------------------------


def test_tool_choice_none_hides_tools_and_parses_nothing() -> None:
    plan = plan_for(templates.QWEN3, tools=[WEATHER], tool_choice="none")
    assert "get_weather" not in plan.prompt
    assert plan.grammar is None and plan.tool_format is None
    summary = summarize(run_parser(plan.new_parser(), HERMES_CALL))
    assert summary["calls"] == [] and summary["content"] == HERMES_CALL


def test_auto_with_qwen3_is_lazy_and_guarded_by_thinking() -> None:
    plan = plan_for(templates.QWEN3, tools=[WEATHER, TIME])
    assert isinstance(plan.tool_format, HermesFormat)
    assert '"name": "get_weather"' in plan.prompt
    assert plan.reasoning and not plan.starts_in_reasoning
    [pattern] = plan.grammar_lazy_patterns
    assert search(pattern, "Sure.\n<tool_call>")
    assert search(pattern, "<think>\nok\n</think>\n\n<tool_call>")
    assert not search(pattern, "<think>\nmaybe <tool_call>")
    assert accepts(plan.grammar, HERMES_CALL)
    assert accepts(plan.grammar, HERMES_CALL + "\n" + HERMES_CALL)
    assert not accepts(plan.grammar, '<tool_call>\n{"name": "get_weather", "arguments": {"town": "Paris"}}\n</tool_call>')
    summary = summarize(run_parser(plan.new_parser(), "<think>\nweather\n</think>\n\n" + HERMES_CALL))
    assert summary["reasoning"] == "weather" and summary["calls"][0]["name"] == "get_weather"


def test_thinking_disabled_closes_the_block_in_the_prompt() -> None:
    plan = plan_for(templates.QWEN3, tools=[WEATHER], enable_thinking=False)
    assert plan.prompt.endswith("<think>\n\n</think>\n\n")
    assert not plan.reasoning
    assert plan.grammar_lazy_patterns == ["<tool_call>"]
    summary = summarize(run_parser(plan.new_parser(), "<think>x</think>"))
    assert summary["content"] == "<think>x</think>"


def test_required_named_and_single_call() -> None:
    required = plan_for(templates.QWEN3, tools=[WEATHER, TIME], tool_choice="required", enable_thinking=False)
    assert required.grammar_lazy_patterns == []
    assert accepts(required.grammar, HERMES_CALL)
    assert not accepts(required.grammar, "Hello")
    named = plan_for(
        templates.QWEN3,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    assert accepts(named.grammar, '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    assert accepts(named.grammar, '<think>\nhm\n</think>\n\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    assert not accepts(named.grammar, HERMES_CALL)
    two = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    assert not accepts(named.grammar, two)


def test_llama31_format() -> None:
    plan = plan_for(templates.LLAMA31, tools=[WEATHER])
    assert isinstance(plan.tool_format, Llama3Format)
    assert "Today Date: 26 Jul 2024" in plan.prompt
    call = '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "C"}}'
    assert any(search(p, call) for p in plan.grammar_lazy_patterns)
    assert not any(search(p, 'The JSON {"name": "x"}') for p in plan.grammar_lazy_patterns)
    assert accepts(plan.grammar, call)
    assert accepts(plan.grammar, "<|python_tag|>" + call)
    assert calls(plan, call) == [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}]


def test_mistral_formats() -> None:
    plan = plan_for(templates.MISTRAL, tools=[WEATHER])
    assert isinstance(plan.tool_format, MistralFormat) and not plan.tool_format.args_tag
    out = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]'
    assert accepts(plan.grammar, out)
    assert calls(plan, out) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    newer = plan_for(templates.MISTRAL_ARGS, tools=[WEATHER, TIME])
    assert newer.tool_format.args_tag
    out = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}'
    assert accepts(newer.grammar, out)
    assert [c["name"] for c in calls(newer, out)] == ["get_weather", "get_time"]


def test_deepseek_r1_starts_in_reasoning() -> None:
    original = plan_for(templates.DEEPSEEK_R1, tools=[WEATHER])
    assert isinstance(original.tool_format, GenericFormat)  # its template never shows the model the tools
    assert original.starts_in_reasoning
    assert accepts(original.grammar, 'hmm</think>\n\n{"response": "hi"}')
    plan = plan_for(templates.DEEPSEEK_R1_TOOLS, tools=[WEATHER])
    assert "## Tools" in plan.prompt
    assert isinstance(plan.tool_format, DeepSeekFormat) and plan.tool_format.fenced
    assert plan.starts_in_reasoning and plan.reasoning
    section = (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
    )
    assert accepts(plan.grammar, section)
    assert all(not search(p, "thinking about <｜tool▁calls▁begin｜>") for p in plan.grammar_lazy_patterns)
    assert any(search(p, "ok</think>\n\n" + section) for p in plan.grammar_lazy_patterns)
    summary = summarize(run_parser(plan.new_parser(), "I should check.</think>\n\n" + section))
    assert summary["reasoning"] == "I should check."
    v31 = plan_for(templates.DEEPSEEK_V31, tools=[WEATHER])
    assert not v31.tool_format.fenced and not v31.reasoning  # the prompt closed the think block


def test_generic_format_for_a_template_without_tools(smollm2_template: str) -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    ]
    plan = plan_for(smollm2_template, tools=[WEATHER], messages=history)
    assert isinstance(plan.tool_format, GenericFormat)
    assert plan.prompt.startswith("<|im_start|>system\nBe brief.\n\nYou can call these tools")
    assert '<|im_start|>assistant\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}<|im_end|>' in plan.prompt
    assert '<|im_start|>user\n{"tool_response": {"name": "get_weather", "content": "22C", "tool_call_id": "call_1"}}' in plan.prompt
    assert plan.grammar_lazy_patterns == [] and not plan.reasoning
    call = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
    assert accepts(plan.grammar, call)
    assert accepts(plan.grammar, '{"response": "It is sunny."}')
    assert not accepts(plan.grammar, "It is sunny.")
    assert calls(plan, call) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    required = plan_for(smollm2_template, tools=[WEATHER], tool_choice="required")
    assert not accepts(required.grammar, '{"response": "It is sunny."}')
    assert '{"response"' not in required.prompt


def test_generic_instructions_go_to_the_user_when_there_is_no_system_role() -> None:
    plan = plan_for(templates.GEMMA_LIKE, tools=[WEATHER])
    assert plan.prompt.startswith("<s><start_of_turn>user\nYou can call these tools")
    assert "Weather in Paris?<end_of_turn>" in plan.prompt


def test_structured_output_with_and_without_thinking() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA, "strict": True}}
    plain = plan_for(None, response_format=fmt)
    doc = '{"answer": "yes", "score": 7}'
    assert accepts(plain.grammar, doc) and not accepts(plain.grammar, '{"answer": "yes"}')
    thinking = plan_for(templates.QWEN3, response_format=fmt)
    assert accepts(thinking.grammar, doc)
    assert accepts(thinking.grammar, "<think>\nlet me see\n</think>\n\n" + doc)
    assert not accepts(thinking.grammar, "<think>\nnever closed " + doc)
    opened = plan_for(templates.DEEPSEEK_R1, response_format={"type": "json_object"})
    assert accepts(opened.grammar, 'reasoning...</think>\n{"a": 1}')
    assert not accepts(opened.grammar, '{"a": 1}')
    summary = summarize(run_parser(opened.new_parser(), 'reasoning...</think>\n{"a": 1}'))
    assert summary == {"content": '{"a": 1}', "reasoning": "reasoning...", "calls": []}


def test_structured_output_together_with_tools() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    native = plan_for(templates.QWEN3, tools=[WEATHER], response_format=fmt, enable_thinking=False)
    assert native.grammar_lazy_patterns == []
    assert accepts(native.grammar, HERMES_CALL) and accepts(native.grammar, '{"answer": "x", "score": 1}')
    assert not accepts(native.grammar, "free text")
    generic = plan_for(None, tools=[WEATHER], response_format=fmt)
    answer = '{"response": {"answer": "x", "score": 1}}'
    assert accepts(generic.grammar, answer) and not accepts(generic.grammar, '{"response": "x"}')
    summary = summarize(run_parser(generic.new_parser(), answer))
    assert json.loads(summary["content"]) == {"answer": "x", "score": 1}


def test_raw_grammar_override_and_sampling_copy() -> None:
    plan = plan_for(None, sampling=SamplingParams(grammar='root ::= "yes" | "no"'))
    assert plan.grammar == 'root ::= "yes" | "no"'
    base = SamplingParams(temperature=0.2)
    tools = plan_for(templates.QWEN3, tools=[WEATHER])
    sampling = tools.sampling(base)
    assert sampling.grammar == tools.grammar and sampling.grammar_lazy_patterns == tools.grammar_lazy_patterns
    assert sampling.temperature == 0.2 and base.grammar is None
    override = plan_for(templates.QWEN3, template="{{ messages[0].content }}!")
    assert override.prompt == "Weather in Paris?!"


def test_compiled_template_and_media_marker() -> None:
    compiled = ChatTemplate(templates.QWEN3)
    request = ChatRequest(messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "input_image", "image_url": "data:,"}]}])
    plan = prepare_chat(request, template_source=compiled, media_marker="<__media__>")
    assert "see\n<__media__>" in plan.prompt and len(plan.media) == 1


def calls(plan: Any, text: str) -> list[dict[str, Any]]:
    summary = summarize(run_parser(plan.new_parser(), text))
    return [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in summary["calls"]]


def test_asking_a_template_without_thinking_to_think_changes_nothing() -> None:
    """A model never trained to close a thinking block must not be allowed to open one: a stray
    tag would make the whole answer reasoning (seen with Claude Code's thinking on SmolLM2)."""
    for fields in ({}, {"tools": [WEATHER, TIME], "tool_choice": "auto"}):
        plain = plan_for(None, **fields)
        asked = plan_for(None, enable_thinking=True, **fields)
        assert asked.reasoning is False
        assert asked.prompt == plain.prompt and asked.sampling(SamplingParams()).grammar == \
            plain.sampling(SamplingParams()).grammar
