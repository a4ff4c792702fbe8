"""Real generation under our grammars: a tiny random model (and SmolLM2, marked slow).

A random model is the harshest client a grammar can have: whatever it emits under
the grammar must parse and validate. Only schemas with a finite language are used
with it (a random model may otherwise write one string until max_tokens).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kronk.chat import prepare_chat
from kronk.engine.types import SamplingParams
from kronk.errors import GrammarError
from kronk.sdk.requests import ChatRequest
from tests.chat import templates
from tests.chat.helpers import generate, run_parser, summarize
from tests.chat.test_json_schema import SCHEMAS

pytestmark = pytest.mark.requires_libs

FINITE = [
    "person", "nested-arrays", "enum-mixed", "const", "anyof-date-or-null", "pattern", "number-range", "formats",
    "type-list", "all-optional", "draft7-definitions-with-sibling", "oneof-discriminated", "nullable-is-not-json-schema",
]
EXTRA: dict[str, Any] = {
    "bounded-tuple": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 4}, {"type": "boolean"}], "items": False},
    "bounded-extras": {"type": "object", "properties": {"k": {"enum": ["a", "b"]}}, "additionalProperties": {"type": "integer", "maximum": 9}, "maxProperties": 1},
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
SAMPLERS = [SamplingParams(temperature=0.0), *[SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=s) for s in (1, 2)]]


@pytest.fixture(scope="module")
def samplers(tiny_chat_model: Any) -> list[SamplingParams]:
    """Greedy and two seeded samplers that never emit a lone UTF-8 byte.

    A random model happily writes byte sequences that are not UTF-8 (overlong forms);
    llama.cpp's grammar sees code points, Python sees U+FFFD per bad byte, so a
    length limit could look broken. Real models do not do that; the byte tokens go.
    """
    vocab = tiny_chat_model.vocab
    banned = {t: float("-inf") for t in range(vocab.n_tokens) if vocab.token_text(t).startswith("<0x") and int(vocab.token_text(t)[3:5], 16) >= 0x80}
    assert banned
    return [replace(s, logit_bias=banned) for s in SAMPLERS]


def schema_cases() -> list[tuple[str, Any]]:
    cases = [(name, SCHEMAS[name][0]) for name in FINITE]
    for name, schema in EXTRA.items():
        cases.append((name, schema))
    return cases


@pytest.mark.parametrize(("name", "schema"), schema_cases(), ids=[c[0] for c in schema_cases()])
def test_random_model_output_under_schema_grammar_validates(
    tiny_chat_model: Any, samplers: list[SamplingParams], name: str, schema: Any
) -> None:
    if name == "bounded-extras":
        with pytest.raises(GrammarError):  # maxProperties with open extras is refused, not ignored
            prepare_chat(ChatRequest(messages=[{"role": "user", "content": "x"}], response_format={"type": "json_schema", "json_schema": {"schema": schema}}), template_source=None)
        return
    request = ChatRequest(
        messages=[{"role": "user", "content": "Give me JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema}},
    )
    plan = prepare_chat(request, template_source=tiny_chat_model.chat_template())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for sampling in samplers:
        text, stopped = generate(tiny_chat_model, plan.prompt, plan.sampling(sampling), max_tokens=700)
        assert stopped, f"{name}: no end of generation within the budget: {text!r}"
        content = summarize(run_parser(plan.new_parser(), text))["content"]
        validator.validate(json.loads(content))


def test_json_mode_with_random_model_parses(tiny_chat_model: Any) -> None:
    plan = prepare_chat(
        ChatRequest(messages=[{"role": "user", "content": "{}"}], response_format={"type": "json_object", "schema": EXTRA["bounded-tuple"]}),
        template_source=None,
    )
    text, stopped = generate(tiny_chat_model, plan.prompt, plan.sampling(SAMPLERS[0]), max_tokens=300)
    assert stopped
    jsonschema.validate(json.loads(text), EXTRA["bounded-tuple"])


def test_generic_required_tool_call_from_random_model(tiny_chat_model: Any, samplers: list[SamplingParams]) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], tool_choice="required")
    plan = prepare_chat(request, template_source=tiny_chat_model.chat_template())
    for sampling in samplers:
        text, stopped = generate(tiny_chat_model, plan.prompt, plan.sampling(sampling), max_tokens=400)
        assert stopped
        parser = plan.new_parser()
        summary = summarize(run_parser(parser, text, chunks=3))
        assert parser.has_tool_calls and summary["content"] == ""
        for call in summary["calls"]:
            assert call["name"] == "get_weather"
            jsonschema.validate(json.loads(call["arguments"]), WEATHER["function"]["parameters"])


@pytest.mark.parametrize(
    ("template", "forced"),
    [
        (templates.QWEN3, "Let me look that up.\n<tool_call>"),
        (templates.QWEN3, "<think>\nweather needed\n</think>\n\n<tool_call>"),
        (templates.LLAMA31, '{"name"'),
        (templates.MISTRAL, "[TOOL_CALLS]"),
        (templates.MISTRAL_ARGS, "Sure.[TOOL_CALLS]"),
    ],
    ids=["hermes", "hermes-after-thinking", "llama3", "mistral", "mistral-args"],
)
def test_lazy_grammar_takes_over_after_its_trigger(
    tiny_chat_model: Any, samplers: list[SamplingParams], template: str, forced: str
) -> None:
    # DeepSeek's markers hold "▁", which the tiny SentencePiece vocabulary turns into a
    # space, so its trigger cannot be typed here; its grammar is checked in test_plan.
    request = ChatRequest(
        messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], template=template, parallel_tool_calls=False
    )
    plan = prepare_chat(request, template_source=None)
    assert plan.grammar_lazy_patterns
    text, stopped = generate(tiny_chat_model, plan.prompt, plan.sampling(samplers[0]), max_tokens=400, forced=forced)
    assert stopped, text
    parser = plan.new_parser()
    summary = summarize(run_parser(parser, text))
    assert parser.has_tool_calls and not parser.incomplete_tool_call, text
    for call in summary["calls"]:
        jsonschema.validate(json.loads(call["arguments"]), WEATHER["function"]["parameters"])


@pytest.mark.slow
def test_smollm2_json_mode_and_generic_tool_call(smollm2: Path, lib_dir: Path) -> None:
    from kronk.llama import Model

    with Model.load(smollm2) as model:
        template = model.chat_template()
        plan = prepare_chat(
            ChatRequest(
                messages=[{"role": "user", "content": "Describe a cat as a JSON object with the keys name and age."}],
                response_format={"type": "json_object"},
            ),
            template_source=template,
        )
        text, stopped = generate(model, plan.prompt, plan.sampling(SamplingParams(temperature=0.0)), max_tokens=80)
        assert stopped, text
        assert isinstance(json.loads(text), dict)
        plan = prepare_chat(
            ChatRequest(messages=[{"role": "user", "content": "What is the weather in Paris, in C?"}], tools=[WEATHER], tool_choice="required",
                            parallel_tool_calls=False),
            template_source=template,
        )
        text, stopped = generate(model, plan.prompt, plan.sampling(SamplingParams(temperature=0.0)), max_tokens=80)
        assert stopped, text
        summary = summarize(run_parser(plan.new_parser(), text))
        assert summary["calls"] and summary["calls"][0]["name"] == "get_weather"
        jsonschema.validate(json.loads(summary["calls"][0]["arguments"]), WEATHER["function"]["parameters"])
