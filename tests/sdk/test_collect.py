"""Gathering interleaved events of n choices into non-streaming results."""

from __future__ import annotations

from kronk.engine.types import (
    Finish,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from kronk.sdk.collect import Choices
from kronk.sdk.requests import ToolCall


def test_interleaved_choices_gather_text_reasoning_tool_calls_and_usage() -> None:
    choices = Choices()
    logprob = TokenLogprob(token="Hi", token_id=5, logprob=-0.5, bytes=list(b"Hi"))
    for event in [
        ReasoningDelta("think", 1),
        TextDelta("Hi", 0, [logprob]),
        ToolCallDelta(0, '{"a":', id="c1", name="f", choice=1),
        TextDelta(" there", 0),
        ToolCallDelta(0, " 1}", choice=1),
        ToolCallDelta(1, "{}", name="g", choice=1),
        Finish("stop", Usage(prompt_tokens=7, completion_tokens=2, cached_tokens=3), 0, stop_sequence="\n"),
        Finish("tool_calls", Usage(prompt_tokens=7, completion_tokens=5, cached_tokens=0), 1),
    ]:
        choices.add(event)
    first, second = choices.chat(logprobs=True)
    assert (first.index, first.content, first.finish_reason, first.stop_sequence) == (0, "Hi there", "stop", "\n")
    assert first.logprobs == [logprob] and first.reasoning_content is None and first.tool_calls == []
    assert second.content is None and second.reasoning_content == "think" and second.finish_reason == "tool_calls"
    assert second.tool_calls == [ToolCall("c1", "f", '{"a": 1}'), ToolCall("call_1_1", "g", "{}")]
    assert (choices.usage.prompt_tokens, choices.usage.completion_tokens, choices.usage.cached_tokens) == (7, 7, 3)
    assert choices.chat(logprobs=False)[0].logprobs is None


def test_completion_lists_every_choice_even_one_without_events() -> None:
    choices = Choices()
    choices.add(TextDelta("a", 1))
    choices.add(Finish("length", Usage(prompt_tokens=2, completion_tokens=1), 1))
    empty, done = choices.completion(2, logprobs=True)
    assert (empty.text, empty.finish_reason, empty.logprobs) == ("", "stop", [])
    assert (done.text, done.finish_reason) == ("a", "length")
