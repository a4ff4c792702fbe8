"""Tools in small contexts: the compact listing of the generic fallback, and fitting.

Open WebUI sends its 36 built-in tools with every chat (`fixtures/open_webui_tools.json`,
written in the shape it sends: OpenAI function tools with pydantic-made parameter
schemas, ~25 KB). The generic fallback lists them one signature line each; tools that
do not fit the context are dropped (tool_choice auto) or refused (required, named).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kronk.chat import DEFAULT_REPLY_ROOM, ContextBudget, prepare_chat, validate_tools
from kronk.chat.formats import ToolSpec
from kronk.chat.formats.generic import system_prompt
from kronk.chat.formats.signatures import tool_line
from kronk.errors import ContextOverflowError
from kronk.sdk.requests import ChatRequest
from tests.chat import templates
from tests.chat.gbnf_match import accepts
from tests.chat.helpers import OPEN_WEBUI_TOOLS, fixed_clock
from tests.chat.helpers import tool_names as names

SAY_HELLO = [{"role": "user", "content": "Say hello"}]


class Counter:
    """A stand-in tokenizer: one token per 4 characters; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prompt: str) -> int:
        self.calls += 1
        return len(prompt) // 4


def plan_for(source: str | None, budget: ContextBudget | None, **fields: Any) -> Any:
    request = ChatRequest(messages=fields.pop("messages", SAY_HELLO), **fields)
    return prepare_chat(request, template_source=source, clock=fixed_clock, budget=budget)


def budget(n_ctx: int, max_tokens: int | None = None, counter: Counter | None = None) -> ContextBudget:
    return ContextBudget.for_request(n_ctx, max_tokens, counter or Counter())


# --- the compact listing -------------------------------------------------------------------


def test_the_fixture_is_open_webui_sized() -> None:
    assert len(OPEN_WEBUI_TOOLS) == 36 and len(set(names(OPEN_WEBUI_TOOLS))) == 36
    assert 22_000 <= len(json.dumps(OPEN_WEBUI_TOOLS)) <= 28_000


def test_a_signature_line_keeps_names_types_and_what_is_required() -> None:
    tool = ToolSpec(
        name="plan_trip",
        description=(
            "Plan a trip between two cities. It books nothing!\n\n"
            "Args:\n    origin: where from\n    destination: where to"
        ),
        parameters={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": "PlanTripArgs",
            "additionalProperties": False,
            "$defs": {"Stop": {"type": "object", "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}}, "required": ["city"]}},
            "properties": {
                "origin": {"type": "string", "title": "Origin", "description": "The origin."},
                "when": {"type": "string", "format": "date", "description": "Day of departure. Must be in the future."},
                "mode": {"enum": ["train", "plane"], "default": "train", "description": "How to travel. Defaults to train."},
                "stops": {"type": "array", "items": {"$ref": "#/$defs/Stop"}, "default": []},
                "budget": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None, "title": "Budget"},
                "tags": {"type": ["array", "null"], "items": {"type": ["string", "integer"]}},
                "note": {"type": "string", "default": "x" * 40, "description": "A note for the travel agent that is far too long to keep in a prompt line, so it gets cut at a word."},
                "strict": {"const": True},
            },
            "required": ["origin", "when", "strict"],
        },
    )
    line = tool_line(tool)
    assert line == (
        'plan_trip(origin: string, when: string<date>, mode?: "train"|"plane" = "train", '
        "stops?: {city: string, nights?: integer}[], budget?: number, tags?: (string|integer)[], "
        "note?: string, strict: true) - Plan a trip between two cities. It books nothing! "
        "Args: when: Day of departure; mode: How to travel; "
        "note: A note for the travel agent that is far too long to keep in a prompt line, so…"
    )
    for noise in ("Origin", "PlanTripArgs", "additionalProperties", "$schema", "Defaults to", "where from"):
        assert noise not in line


def test_the_listing_is_one_line_per_tool_and_the_grammar_keeps_the_exact_schemas() -> None:
    plan = plan_for(None, None, tools=OPEN_WEBUI_TOOLS)
    lines = plan.prompt.splitlines()
    assert lines[1].startswith("You can call these tools.")
    assert [line.split("(", 1)[0] for line in lines[2:38]] == names(OPEN_WEBUI_TOOLS)
    assert lines[38] == ""
    assert '"additionalProperties"' not in plan.prompt and '"title"' not in plan.prompt
    ok = '{"tool_calls": [{"name": "search_web", "arguments": {"query": "kronk", "count": 3}}]}'
    assert accepts(plan.grammar, ok)
    assert not accepts(plan.grammar, '{"tool_calls": [{"name": "search_web", "arguments": {"count": 3}}]}')
    assert not accepts(plan.grammar, '{"tool_calls": [{"name": "fetch_url", "arguments": {"url": 7}}]}')
    assert accepts(plan.grammar, '{"response": "Hello!"}')


@pytest.mark.requires_libs
def test_open_webui_tools_take_under_40_percent_of_the_old_listing(lib_dir: Path, smollm2: Path, smollm2_template: str) -> None:
    """Measured with SmolLM2's tokenizer: the instructions with every schema as indented
    JSON took 7,637 tokens for the 36 tools, with signature lines they take 2,913 (38%);
    with "Say hello" the whole prompt is 2,929 tokens, which leaves the default reply
    room free in a 4096 context."""
    from kronk.llama import Model

    model = Model.load(smollm2, vocab_only=True)
    try:
        def count(text: str) -> int:
            return len(model.vocab.tokenize(text, add_special=True, parse_special=True))

        specs = validate_tools(OPEN_WEBUI_TOOLS)
        before = count(_indented_listing(specs))
        after = count(system_prompt(specs, allow_response=True, parallel=True))
        print(f"36 Open WebUI tools, SmolLM2 tokens: indented JSON {before}, signature lines {after}")
        assert after <= 0.40 * before
        prompt = plan_for(smollm2_template, None, tools=OPEN_WEBUI_TOOLS).prompt
        assert count(prompt) <= 4096 - DEFAULT_REPLY_ROOM
    finally:
        model.close()


def _indented_listing(specs: list[ToolSpec]) -> str:
    """The generic fallback's instructions as they were: every schema as indented JSON."""
    listing = json.dumps(
        [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in specs],
        ensure_ascii=False,
        indent=2,
    )
    return "\n".join([
        "You can call these tools (the parameters are JSON Schemas of their arguments):",
        listing,
        "",
        "Reply with a single JSON object and nothing else.",
        'To call tools (one or more tool calls): {"tool_calls": [{"name": "<tool name>", "arguments": {...}}]}',
        'To answer the user directly: {"response": "<your answer>"}',
    ])


# --- fitting the tools into the context ---------------------------------------------------------


def test_the_reply_room_follows_max_tokens_up_to_a_quarter_of_the_context() -> None:
    assert budget(8192).reply_room == DEFAULT_REPLY_ROOM == 1024
    assert budget(2048).reply_room == 512
    assert budget(8192, max_tokens=20).reply_room == 20
    assert budget(8192, max_tokens=100_000).reply_room == 2048
    assert budget(4096).limit == 3072 and budget(4096, max_tokens=0).limit == 4095


def test_tools_that_fit_cost_one_render_and_one_count() -> None:
    counter = Counter()
    plan = plan_for(None, budget(1_000_000, counter=counter), tools=OPEN_WEBUI_TOOLS)
    assert counter.calls == 1 and plan.tools_dropped == [] and len(plan.tools) == 36


def test_auto_keeps_the_first_tools_that_fit_and_names_the_rest() -> None:
    whole = len(plan_for(None, None, tools=OPEN_WEBUI_TOOLS).prompt) // 4
    small = ContextBudget(n_ctx=whole * 3 // 4, reply_room=64, count=Counter())  # about 3/4 of the tools fit
    plan = plan_for(None, small, tools=OPEN_WEBUI_TOOLS)
    kept = [t.name for t in plan.tools]
    assert 0 < len(kept) < 36
    assert kept + plan.tools_dropped == names(OPEN_WEBUI_TOOLS)
    assert small.count(plan.prompt) <= small.limit
    one_more = plan_for(None, None, tools=OPEN_WEBUI_TOOLS[: len(kept) + 1]).prompt
    assert small.count(one_more) > small.limit, "the kept prefix is the longest that fits"
    assert all(f"\n{name}(" in plan.prompt for name in kept)
    assert not any(f"\n{name}(" in plan.prompt for name in plan.tools_dropped)
    call = '{{"tool_calls": [{{"name": "{}", "arguments": {{}}}}]}}'
    assert accepts(plan.grammar, call.format("get_current_timestamp"))
    assert not accepts(plan.grammar, call.format("list_chat_files"))  # dropped: not callable
    again = plan_for(None, ContextBudget(small.n_ctx, small.reply_room, Counter()), tools=OPEN_WEBUI_TOOLS)
    assert again.prompt == plan.prompt and again.tools_dropped == plan.tools_dropped


def test_auto_drops_every_tool_when_the_conversation_alone_does_not_fit() -> None:
    long_talk = [{"role": "user", "content": "word " * 4000}]
    plan = plan_for(None, budget(2048), tools=OPEN_WEBUI_TOOLS, messages=long_talk)
    assert plan.tools_dropped == names(OPEN_WEBUI_TOOLS)
    assert plan.tools == [] and plan.tool_format is None and plan.grammar is None
    assert "You can call these tools" not in plan.prompt


def test_structured_output_survives_dropped_tools() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}}
    some = plan_for(None, budget(1024), tools=OPEN_WEBUI_TOOLS, response_format=fmt)
    assert some.tools and some.tools_dropped and accepts(some.grammar, '{"response": {"title": "Hello"}}')
    none = plan_for(None, budget(128), tools=OPEN_WEBUI_TOOLS, response_format=fmt)
    assert not none.tools and accepts(none.grammar, '{"title": "Hello"}')


def test_required_tools_that_do_not_fit_are_a_clear_400() -> None:
    with pytest.raises(ContextOverflowError) as caught:
        plan_for(None, budget(2048), tools=OPEN_WEBUI_TOOLS, tool_choice="required")
    error = caught.value
    assert error.param == "tools" and error.http_status == 400 and error.error_code == "context_length_exceeded"
    message = str(error)
    assert "the 36 tools do not fit the context" in message and "holds 2048 tokens" in message
    assert "512 stay free for the reply" in message and "tool_choice 'auto'" in message


def test_a_named_tool_stays_and_the_others_make_room() -> None:
    named = {"type": "function", "function": {"name": "run_terminal_command"}}
    plan = plan_for(None, budget(2048), tools=OPEN_WEBUI_TOOLS, tool_choice=named)
    assert "run_terminal_command" in [t.name for t in plan.tools]
    assert plan.tools_dropped and "run_terminal_command" not in plan.tools_dropped
    assert accepts(plan.grammar, '{"tool_calls": [{"name": "run_terminal_command", "arguments": {"command": "ls"}}]}')
    with pytest.raises(ContextOverflowError, match="tool 'run_terminal_command' does not fit the context") as caught:
        plan_for(None, budget(160), tools=OPEN_WEBUI_TOOLS, tool_choice=named)
    assert caught.value.param == "tools"


def test_templates_with_their_own_tool_format_are_fitted_too() -> None:
    plan = plan_for(templates.QWEN3, budget(2048), tools=OPEN_WEBUI_TOOLS, enable_thinking=False)
    assert plan.tools_dropped and plan.tools
    assert '"name": "get_current_timestamp"' in plan.prompt
    assert not any(f'"name": "{name}"' in plan.prompt for name in plan.tools_dropped)


def test_without_a_budget_nothing_is_dropped() -> None:
    plan = plan_for(None, None, tools=OPEN_WEBUI_TOOLS)
    assert plan.tools_dropped == [] and len(plan.tools) == 36
