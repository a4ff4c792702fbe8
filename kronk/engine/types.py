"""Neutral request and event types shared by the engine, the SDK and every API.

The engine knows no HTTP API: it takes a `GenerateRequest` (tokens + sampling +
limits) and emits `Event`s. The chat layer turns messages into a prompt and raw text
into content / reasoning / tool-call events; each API (OpenAI, Anthropic, Responses)
encodes the same events in its own wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union

from kronk.llama.sampling_params import SamplingParams as SamplingParams  # re-exported for the engine's users

FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]


class MediaInput(Protocol):
    """A multimodal prompt (text and image/audio chunks) the engine evaluates into a slot."""

    n_tokens: int

    def evaluate(self, ctx: Any, seq_id: int) -> int:
        """Decode the whole prompt into `seq_id` from position 0; return the positions used."""

    def close(self) -> None:
        """Free the prompt's native resources."""


@dataclass(slots=True)
class GenerateRequest:
    """One generation job for the engine: a tokenized prompt and how to continue it."""

    prompt_tokens: list[int]
    """Ignored when `media` is set (the multimodal prompt carries its own tokens)."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    """None: until EOG or the context is full."""
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    """0..20 alternatives per token (only when logprobs is True)."""
    cache_key: str | None = None
    """Hint for the prompt cache (e.g. a conversation id); prefix matching works without it."""
    media: MediaInput | None = None
    """A prompt with images/audio: evaluated whole when a slot takes it (no prefix reuse)."""
    speculation: Speculation | None = None
    """Speculative decoding for this request; None: the model's default (kronk.engine.speculation)."""


@dataclass(slots=True)
class Speculation:
    """A request's speculative decoding: which drafter, and the most draft tokens per step."""

    type: Literal["off", "ngram", "draft"] = "ngram"
    draft_max: int | None = None
    """None: the model's setting; 0 turns speculation off."""


@dataclass(slots=True)
class SpecSettings:
    """A model's speculative decoding defaults, for requests that do not choose (EngineConfig;
    ModelSettings' spec_type, spec_draft_max and spec_draft_min fill it)."""

    type: str = "off"
    """off, ngram (prompt lookup) or draft (needs EngineConfig.draft_model)."""
    draft_max: int = 16
    """The most draft tokens a slot proposes per step."""
    draft_min: int = 1
    """A shorter proposal is not worth its rows: the slot decodes one token instead."""


@dataclass(slots=True)
class TopLogprob:
    """One candidate token and its log-probability."""

    token: str
    token_id: int
    logprob: float
    bytes: list[int]


@dataclass(slots=True)
class TokenLogprob(TopLogprob):
    """The token chosen, with the most likely alternatives when the request asked for them."""

    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    """Every token of the prompt, cached ones included."""
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens served from the KV/prompt cache instead of being evaluated."""
    reasoning_tokens: int = 0
    """Of completion_tokens, those of the thinking block. The engine knows no thinking
    blocks: the SDK's chat path fills this from the text its output parser split off."""
    time_to_first_token_ms: float = 0.0
    """From submission to the first generated token: queue wait and prefill included."""
    tokens_per_second: float = 0.0
    """Decode speed after the first token (0 with fewer than two tokens)."""
    queue_wait_ms: float = 0.0
    """Time from submission until a slot took the request (admission queue wait)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --- events -----------------------------------------------------------------
# Every event carries `choice` so requests with n > 1 can interleave choices.


@dataclass(slots=True)
class TextDelta:
    """Visible answer text (UTF-8 complete; never part of a stop string)."""

    text: str
    choice: int = 0
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class ReasoningDelta:
    """Text inside the model's thinking block (`reasoning_content`)."""

    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call. The first delta of a call has id and name;
    later ones append to `arguments` (a JSON text fragment)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0


@dataclass(slots=True)
class Finish:
    """Last event of a choice."""

    reason: FinishReason
    usage: Usage
    choice: int = 0
    stop_sequence: str | None = None
    """The stop string that ended the choice (reason "stop"), None for EOG/length."""


Event = Union[TextDelta, ReasoningDelta, ToolCallDelta, Finish]
