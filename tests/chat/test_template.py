"""Rendering real template shapes: tools, tool results, multi-turn, thinking, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kronk.chat.messages import normalize_messages
from kronk.chat.template import CHATML_TEMPLATE, ChatTemplate
from kronk.errors import CapabilityError, InvalidRequestError
from tests.chat import templates
from tests.chat.helpers import fixed_clock

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL_TURN: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "abcDEF123", "content": "22C sunny"},
]


def test_smollm2_real_template(smollm2_template: str) -> None:
    t = ChatTemplate(smollm2_template, bos_token="<|im_start|>", eos_token="<|im_end|>")
    assert not t.supports_tools and not t.supports_thinking
    text = t.render([{"role": "user", "content": "Hi"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = t.render(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        add_generation_prompt=False,
    )
    assert with_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    assert t.supports_system_role


def test_content_parts_become_text_and_media_needs_a_marker() -> None:
    t = ChatTemplate(CHATML_TEMPLATE)
    parts = [{"type": "text", "text": "look"}, {"type": "text", "text": "here"}]
    assert "look\nhere" in t.render([{"role": "user", "content": parts}])
    image = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    with pytest.raises(CapabilityError) as err:
        t.render([{"role": "user", "content": image}])
    assert err.value.param == "messages"
    normalized = normalize_messages([{"role": "user", "content": image}], media_marker="<__media__>")
    assert normalized.messages[0]["content"] == "what is this\n<__media__>"
    assert normalized.media == [image[1]]


def test_bad_messages_are_invalid_requests() -> None:
    t = ChatTemplate(CHATML_TEMPLATE)
    for bad in ([], [{"content": "x"}], ["hi"], [{"role": "user", "content": 5}], [{"role": "user", "content": [{"type": "video"}]}]):
        with pytest.raises(InvalidRequestError) as err:
            t.render(bad)  # type: ignore[arg-type]
        assert err.value.param == "messages"


def test_normalising_leaves_the_callers_messages_alone_and_is_idempotent() -> None:
    original = json.loads(json.dumps(TOOL_TURN))
    once = normalize_messages(TOOL_TURN).messages
    assert TOOL_TURN == original
    assert once[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert once[3]["name"] == "get_weather"  # filled from the matching call
    assert normalize_messages(once).messages == once
    assert normalize_messages([{"role": "developer", "content": "d"}]).messages[0]["role"] == "system"
    as_strings = normalize_messages(TOOL_TURN, object_arguments=False).messages
    assert as_strings[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'


def test_qwen3_tools_calls_results_and_thinking() -> None:
    t = ChatTemplate(templates.QWEN3)
    assert t.supports_tools and t.supports_thinking and t.wants_object_arguments
    text = t.render(TOOL_TURN, tools=[WEATHER])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert json.dumps(WEATHER) in text  # tojson keeps HF's default separators
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\n22C sunny\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    off = t.render([{"role": "user", "content": "hi"}], enable_thinking=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    history = t.render(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "hmm"}],
        add_generation_prompt=False,
    )
    assert "<think>\nhmm\n</think>\n\na<|im_end|>" in history


def test_llama31_tools_in_user_message_date_and_single_call_rule() -> None:
    t = ChatTemplate(templates.LLAMA31, bos_token="<|begin_of_text|>", clock=fixed_clock)
    assert t.supports_tools and t.wants_object_arguments
    text = t.render(TOOL_TURN, tools=[WEATHER])
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n")
    assert "Today Date: 26 Jul 2024" in text
    assert json.dumps(WEATHER, indent=4) in text
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n22C sunny<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    two_calls = [dict(TOOL_TURN[2], tool_calls=[CALL, CALL])]
    with pytest.raises(InvalidRequestError, match="single tool-calls") as err:
        t.render([TOOL_TURN[1], *two_calls])
    assert err.value.param == "messages"


def test_mistral_available_tools_tool_calls_and_results() -> None:
    t = ChatTemplate(templates.MISTRAL, bos_token="<s>", eos_token="</s>")
    assert t.supports_tools
    text = t.render(TOOL_TURN[1:], tools=[WEATHER])
    assert text.startswith("<s>[AVAILABLE_TOOLS] [")
    assert '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]</s>' in text
    assert '[TOOL_RESULTS] {"content": 22C sunny, "call_id": "abcDEF123"}[/TOOL_RESULTS]' in text
    bad_id = [TOOL_TURN[1], dict(TOOL_TURN[2], tool_calls=[dict(CALL, id="call_1")])]
    with pytest.raises(InvalidRequestError, match="length 9"):
        t.render(bad_id)
    with pytest.raises(InvalidRequestError, match="Only user and assistant"):
        t.render([{"role": "user", "content": "a"}, {"role": "critic", "content": "b"}])


def test_deepseek_r1_string_arguments_and_opened_think() -> None:
    t = ChatTemplate(templates.DEEPSEEK_R1, bos_token="<｜begin▁of▁sentence｜>")
    assert not t.wants_object_arguments  # it concatenates arguments as text
    text = t.render(TOOL_TURN)
    assert text.startswith("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Weather in Paris?")
    assert '<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>' in text
    assert "<｜tool▁output▁begin｜>22C sunny<｜tool▁output▁end｜>" in text
    assert t.render([{"role": "user", "content": "hi"}]).endswith("<｜Assistant｜><think>\n")


def test_system_role_probe_and_alternation_errors() -> None:
    t = ChatTemplate(templates.GEMMA_LIKE)
    assert not t.supports_system_role
    with pytest.raises(InvalidRequestError, match="alternate"):
        t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_template_kwargs_and_hf_tojson() -> None:
    t = ChatTemplate(
        "{{ custom }}|{{ data | tojson }}|{{ data | tojson(indent=2) }}|{{ data | tojson(separators=(',', ':')) }}"
        "|{{ strftime_now('%Y') }}",
        clock=fixed_clock,
    )
    text = t.render([{"role": "user", "content": "x"}], custom="yes", data={"é": "<b>"})
    assert text == 'yes|{"é": "<b>"}|{\n  "é": "<b>"\n}|{"é":"<b>"}|2024'


def test_broken_and_unsafe_templates() -> None:
    with pytest.raises(InvalidRequestError) as err:
        ChatTemplate("{% for x in %}")
    assert err.value.param == "template"
    with pytest.raises(InvalidRequestError):
        ChatTemplate("   ")
    unsafe = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(InvalidRequestError):
        unsafe.render([{"role": "user", "content": "x"}])
    mutating = ChatTemplate("{% set l = [] %}{{ l.append(1) }}")
    with pytest.raises(InvalidRequestError) as err:
        mutating.render([{"role": "user", "content": "x"}])
    assert err.value.param == "template"
    failing = ChatTemplate("{{ messages[0].content + 1 }}")
    with pytest.raises(InvalidRequestError) as err:
        failing.render([{"role": "user", "content": "x"}])
    assert err.value.param == "messages"


def test_loopcontrols_and_trim_blocks() -> None:
    t = ChatTemplate("{% for m in messages %}\n  {% if loop.index > 1 %}{% break %}{% endif %}\n{{ m.content }}\n{% endfor %}")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "a\n"


def test_qwen3_coder_and_newer_mistral_call_shapes() -> None:
    coder = ChatTemplate(templates.QWEN3_CODER)
    assert coder.wants_object_arguments
    text = coder.render(TOOL_TURN, tools=[WEATHER])
    assert "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>" in text
    newer = ChatTemplate(templates.MISTRAL_ARGS, bos_token="<s>", eos_token="</s>")
    text = newer.render(TOOL_TURN, tools=[WEATHER])
    assert text.startswith("<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Weather in Paris?[/INST]")
    assert '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}</s>[TOOL_RESULTS]22C sunny[/TOOL_RESULTS]' in text
    assert "[AVAILABLE_TOOLS]" not in text  # only before the last user turn, and the last turn is a tool result


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ 'a' * 1000000000 }}",
        "{{ [1] * 10**9 }}",
        "{{ 2 ** 100000 }}",
        "{% for i in range(5) %}{{ 'x' * 1000000 }}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    ],
)
def test_hostile_templates_fail_fast_with_a_clear_error(source: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        ChatTemplate(source).render([{"role": "user", "content": "x"}])
    assert err.value.param == "template"
