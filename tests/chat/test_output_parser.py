"""The streaming output parser: every format, whole / per character / random chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kronk.chat.formats import DeepSeekFormat, GenericFormat, HermesFormat, Llama3Format, MistralFormat, ToolFormat
from kronk.chat.formats.base import ToolSpec
from kronk.chat.output import ChatOutputParser
from kronk.chat.reasoning import THINK, ReasoningTags
from kronk.engine.types import ReasoningDelta, TextDelta, ToolCallDelta
from tests.chat.helpers import run_parser, summarize

WEATHER = ToolSpec(
    "get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
)
TIME = ToolSpec("get_time")
SEARCH = ToolSpec("brave_search", parameters={"type": "object", "properties": {"query": {"type": "string"}}})
TOOLS = [WEATHER, TIME, SEARCH]
PARIS = {"name": "get_weather", "arguments": {"city": "Paris"}}

MARKERS = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "tool▁call", "<think>", "</think>")


def parser(fmt: ToolFormat | None, *, reasoning: ReasoningTags | None = None, opened: bool = False) -> ChatOutputParser:
    return ChatOutputParser(tool_format=fmt, tools=TOOLS if fmt else (), reasoning=reasoning, starts_in_reasoning=opened)


def parse_all_ways(make: Any, text: str) -> dict[str, Any]:
    """Parse whole, per character and in random chunks; all must agree (ids aside)."""
    results = []
    for chunks, seed in [("all", 0), ("chars", 0), *[(n, s) for n in (2, 5, 11) for s in range(3)]]:
        summary = summarize(run_parser(make(), text, chunks, seed))
        for call in summary["calls"]:
            call.pop("id")
        results.append(summary)
    for other in results[1:]:
        assert other == results[0]
    return results[0]


def calls_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in summary["calls"]]


CASES: list[tuple[str, Any, str, str, list[dict[str, Any]], str]] = [
    # name, parser factory, output, content, calls, reasoning
    (
        "hermes",
        lambda: parser(HermesFormat()),
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "Let me check.",
        [PARIS],
        "",
    ),
    (
        "hermes-parallel-and-text-after",
        lambda: parser(HermesFormat()),
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\nDone.',
        "Done.",
        [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}, {"name": "get_time", "arguments": {}}],
        "",
    ),
    (
        "hermes-qwen3-thinking",
        lambda: parser(HermesFormat(), reasoning=THINK),
        '<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "",
        [PARIS],
        "The user wants weather.",
    ),
    (
        "hermes-marker-inside-thinking-is-reasoning",
        lambda: parser(HermesFormat(), reasoning=THINK),
        "<think>maybe a <tool_call> later</think>\n\nNo tool needed.",
        "No tool needed.",
        [],
        "maybe a <tool_call> later",
    ),
    (
        "hermes-args-before-name-and-string-args",
        lambda: parser(HermesFormat()),
        '<tool_call>{"arguments": {"city": "Oslo"}, "name": "get_weather"}</tool_call>'
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}</tool_call>',
        "",
        [{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_weather", "arguments": {"city": "Rome"}}],
        "",
    ),
    (
        "hermes-unknown-tool-is-text",
        lambda: parser(HermesFormat()),
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        [],
        "",
    ),
    (
        "hermes-not-a-marker",
        lambda: parser(HermesFormat()),
        "if a < b then <tool> and <tool_cal",
        "if a < b then <tool> and <tool_cal",
        [],
        "",
    ),
    (
        "hermes-missing-close-tag",
        lambda: parser(HermesFormat()),
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        [PARIS],
        "",
    ),
    (
        "qwen3-coder-xml",
        lambda: parser(HermesFormat(xml=True)),
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
        "</function>\n</tool_call>",
        "",
        [{"name": "get_weather", "arguments": {"city": "New York", "days": 3}}],
        "",
    ),
    (
        "llama3-json",
        lambda: parser(Llama3Format()),
        '\n{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [PARIS],
        "",
    ),
    (
        "llama3-semicolons",
        lambda: parser(Llama3Format()),
        '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "get_time", "parameters": {}}',
        "",
        [PARIS, {"name": "get_time", "arguments": {}}],
        "",
    ),
    (
        "llama3-python-tag-json",
        lambda: parser(Llama3Format()),
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [PARIS],
        "",
    ),
    (
        "llama3-builtin-call",
        lambda: parser(Llama3Format()),
        '<|python_tag|>brave_search.call(query="weather in paris")',
        "",
        [{"name": "brave_search", "arguments": {"query": "weather in paris"}}],
        "",
    ),
    (
        "llama3-json-answer-is-content",
        lambda: parser(Llama3Format()),
        '{"answer": 42, "name": "not a tool"}',
        '{"answer": 42, "name": "not a tool"}',
        [],
        "",
    ),
    (
        "llama3-brace-later-is-content",
        lambda: parser(Llama3Format()),
        'Use {"name": "get_weather"} like this.',
        'Use {"name": "get_weather"} like this.',
        [],
        "",
    ),
    (
        "mistral-array",
        lambda: parser(MistralFormat()),
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}, '
        '{"name": "get_time", "arguments": {}, "id": "xyzXYZ789"}]',
        "",
        [PARIS, {"name": "get_time", "arguments": {}}],
        "",
    ),
    (
        "mistral-args-tags",
        lambda: parser(MistralFormat(args_tag=True)),
        'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{}',
        "Sure.",
        [PARIS, {"name": "get_time", "arguments": {}}],
        "",
    ),
    (
        "deepseek-r1-opened-thinking",
        lambda: parser(DeepSeekFormat(), reasoning=THINK, opened=True),
        "I need the weather.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
        '```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n'
        "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "",
        [PARIS, {"name": "get_time", "arguments": {}}],
        "I need the weather.",
    ),
    (
        "deepseek-v31",
        lambda: parser(DeepSeekFormat(fenced=False)),
        'On it.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "On it.",
        [PARIS],
        "",
    ),
    (
        "generic-calls",
        lambda: parser(GenericFormat()),
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]}',
        "",
        [PARIS, {"name": "get_time", "arguments": {}}],
        "",
    ),
    (
        "generic-response",
        lambda: parser(GenericFormat()),
        '{"response": "Say \\"hi\\" \\u00e9 \\ud83d\\ude00 a\\\\b\\nend"}',
        'Say "hi" é 😀 a\\b\nend',
        [],
        "",
    ),
    (
        "generic-ignored-by-model",
        lambda: parser(GenericFormat()),
        "Hello there",
        "Hello there",
        [],
        "",
    ),
    (
        "reasoning-qwen3",
        lambda: parser(None, reasoning=THINK),
        "<think>\nStep one.\nStep two.\n</think>\n\nThe answer.",
        "The answer.",
        [],
        "Step one.\nStep two.",
    ),
    (
        "reasoning-prompt-opened",
        lambda: parser(None, reasoning=THINK, opened=True),
        "\nStep one.\n</think>\n\nThe answer.",
        "The answer.",
        [],
        "Step one.",
    ),
    (
        "reasoning-never-closed",
        lambda: parser(None, reasoning=THINK, opened=True),
        "still thinking about </thi",
        "",
        [],
        "still thinking about </thi",
    ),
    (
        "reasoning-off-keeps-tags",
        lambda: parser(None),
        "<think>x</think>y",
        "<think>x</think>y",
        [],
        "",
    ),
    (
        "think-tag-later-is-content",
        lambda: parser(None, reasoning=THINK),
        "Hi <think>x</think>",
        "Hi <think>x</think>",
        [],
        "",
    ),
    (
        "magistral-tags",
        lambda: parser(MistralFormat(args_tag=True), reasoning=ReasoningTags("[THINK]", "[/THINK]")),
        '[THINK]hmm[/THINK]ok[TOOL_CALLS]get_time[ARGS]{}',
        "ok",
        [{"name": "get_time", "arguments": {}}],
        "hmm",
    ),
]


@pytest.mark.parametrize(("name", "make", "text", "content", "calls", "reasoning"), CASES, ids=[c[0] for c in CASES])
def test_formats(name: str, make: Any, text: str, content: str, calls: list[dict[str, Any]], reasoning: str) -> None:
    summary = parse_all_ways(make, text)
    assert summary["content"] == content
    assert calls_of(summary) == calls
    assert summary["reasoning"] == reasoning
    if calls:
        for marker in MARKERS:
            assert marker not in summary["content"]


def test_call_ids_and_has_tool_calls() -> None:
    p = parser(HermesFormat())
    events = run_parser(p, '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    first = next(e for e in events if isinstance(e, ToolCallDelta))
    assert first.id is not None and first.id.startswith("call_") and len(first.id) == 29
    assert p.has_tool_calls and p.tool_calls_emitted == 1 and not p.incomplete_tool_call
    m = parser(MistralFormat())
    events = run_parser(m, '[TOOL_CALLS][{"name": "get_time", "arguments": {}}]')
    mid = next(e for e in events if isinstance(e, ToolCallDelta)).id
    assert mid is not None and len(mid) == 9 and mid.isalnum()
    plain = parser(HermesFormat())
    run_parser(plain, "no calls")
    assert not plain.has_tool_calls


def test_arguments_stream_before_the_call_is_complete() -> None:
    p = parser(HermesFormat())
    assert p.feed("<tool_call>\n") == []
    head = p.feed('{"name": "get_weather", "arguments": {"ci')
    assert len(head) == 1 and isinstance(head[0], ToolCallDelta)
    assert head[0].name == "get_weather" and head[0].arguments == '{"ci'
    more = p.feed('ty": "Par')
    assert more == [ToolCallDelta(index=0, arguments='ty": "Par')]
    rest = p.feed('is"}}\n</tool_call>') + p.finish()
    assert "".join(e.arguments for e in rest if isinstance(e, ToolCallDelta)) == 'is"}'


def test_truncated_arguments_are_reported_as_incomplete() -> None:
    p = parser(HermesFormat())
    summary = summarize(run_parser(p, '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa'))
    assert summary["calls"][0]["arguments"] == '{"city": "Pa'
    assert p.incomplete_tool_call and p.has_tool_calls
    q = parser(HermesFormat())
    summary = summarize(run_parser(q, '<tool_call>{"name": "get_weather", "argu'))
    assert summary == {"content": '<tool_call>{"name": "get_weather", "argu', "reasoning": "", "calls": []}
    assert not q.has_tool_calls


def test_plain_text_is_not_delayed() -> None:
    p = parser(None)
    assert p.feed("Hello wor") == [TextDelta("Hello wor")]
    tools = parser(HermesFormat())
    assert tools.feed("Hello <tool") == [TextDelta("Hello")]  # the space waits: it is dropped before a call
    assert tools.feed("box> ok") == [TextDelta(" <toolbox> ok")]
    thinking = parser(None, reasoning=THINK)
    assert thinking.feed("<thi") == []
    assert thinking.feed("nk>a b") == [ReasoningDelta("a b")]
    assert thinking.feed("</think>  Hi") == [TextDelta("Hi")]


def test_choice_index_and_feed_after_finish() -> None:
    p = ChatOutputParser(choice=3)
    events = p.feed("x") + p.finish()
    assert events == [TextDelta("x", choice=3)]
    with pytest.raises(RuntimeError):
        p.feed("more")
    assert p.finish() == []


def test_long_outputs_stay_correct_across_buffer_compaction() -> None:
    filler = "word " * 3000
    big_args = json.dumps({"city": "x" * 20000})
    text = filler + '<tool_call>{"name": "get_weather", "arguments": ' + big_args + "}</tool_call>" + filler
    summary = summarize(run_parser(parser(HermesFormat()), text, chunks=7))
    assert summary["content"] == filler.rstrip() + filler
    assert json.loads(summary["calls"][0]["arguments"]) == json.loads(big_args)
