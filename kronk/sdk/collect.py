"""A stream's events gathered choice by choice into a non-streaming result (`chat()`,
`complete()`): the n choices of one request arrive interleaved, each ending in a Finish."""

from __future__ import annotations

from dataclasses import dataclass, field

from kronk.engine.types import (
    Event,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from kronk.sdk.requests import ChatChoice, CompletionChoice, ToolCall


@dataclass(slots=True)
class _CallParts:
    id: str | None
    name: str | None
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _ChoiceParts:
    """One choice so far."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, _CallParts] = field(default_factory=dict)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: FinishReason = "stop"
    stop_sequence: str | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            if event.logprobs:
                self.logprobs.extend(event.logprobs)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.calls.setdefault(event.index, _CallParts(event.id, event.name))
            call.id = call.id or event.id
            call.name = call.name or event.name
            call.arguments.append(event.arguments)
        elif isinstance(event, Finish):
            self.finish = event.reason
            self.stop_sequence = event.stop_sequence


class Choices:
    """The choices of one request, and their usage summed (prompt tokens count once)."""

    def __init__(self) -> None:
        self._parts: dict[int, _ChoiceParts] = {}
        self.usage = Usage()

    def add(self, event: Event) -> None:
        self._parts.setdefault(event.choice, _ChoiceParts()).add(event)
        if isinstance(event, Finish):
            self.usage = _add_usage(self.usage, event.usage, first=event.choice == 0)

    def chat(self, *, logprobs: bool) -> list[ChatChoice]:
        """The choices that produced an event, by index."""
        out = []
        for index in sorted(self._parts):
            parts = self._parts[index]
            calls = [
                ToolCall(id=c.id or f"call_{index}_{i}", name=c.name or "", arguments="".join(c.arguments))
                for i, c in sorted(parts.calls.items())
            ]
            content = "".join(parts.text)
            out.append(ChatChoice(
                index=index,
                content=content if (content or not calls) else None,
                finish_reason=parts.finish,
                reasoning_content="".join(parts.reasoning) or None,
                tool_calls=calls,
                logprobs=parts.logprobs if logprobs else None,
                stop_sequence=parts.stop_sequence,
            ))
        return out

    def completion(self, n: int, *, logprobs: bool) -> list[CompletionChoice]:
        """All `n` choices (one that produced nothing is empty text, finish "stop")."""
        out = []
        for index in range(n):
            parts = self._parts.get(index) or _ChoiceParts()
            out.append(CompletionChoice(
                index=index,
                text="".join(parts.text),
                finish_reason=parts.finish,
                logprobs=parts.logprobs if logprobs else None,
            ))
        return out


def _add_usage(total: Usage, usage: Usage, *, first: bool) -> Usage:
    """Sum completion tokens over choices; prompt tokens count once."""
    return Usage(
        prompt_tokens=usage.prompt_tokens if first else total.prompt_tokens or usage.prompt_tokens,
        completion_tokens=total.completion_tokens + usage.completion_tokens,
        cached_tokens=usage.cached_tokens if first else total.cached_tokens,
        reasoning_tokens=total.reasoning_tokens + usage.reasoning_tokens,
        time_to_first_token_ms=usage.time_to_first_token_ms if first else total.time_to_first_token_ms,
        tokens_per_second=usage.tokens_per_second if first else total.tokens_per_second,
        queue_wait_ms=usage.queue_wait_ms if first else total.queue_wait_ms,
    )
