"""Request and result objects of the high-level SDK.

They are API-neutral but shaped like OpenAI's (messages, tools and response_format
are OpenAI dicts) so the server's OpenAI routes translate almost nothing; the
Anthropic and Responses routes translate into the same objects.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from kronk.chat.request import ChatRequest as ChatRequest  # re-exported: declared where the chat layer plans it
from kronk.engine.types import FinishReason, SamplingParams, Speculation, TokenLogprob, Usage

__all__ = ["ChatChoice", "ChatRequest", "ChatResult", "CompletionChoice", "CompletionRequest", "CompletionResult",
           "EmbeddingRequest", "EmbeddingResult", "LoadedModelStatus", "ModelInfo", "RerankItem", "RerankRequest",
           "RerankResult", "ToolCall", "ToolsDropped"]
"""The SDK's request, result and event types (kronk.sdk re-exports exactly these)."""


C = TypeVar("C")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass(slots=True)
class CompletionRequest:
    prompt: str | list[int]
    model: str | None = None
    suffix: str | None = None
    """Fill-in-the-middle: text after the gap (needs a model with FIM tokens)."""
    echo: bool = False
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = 16
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False
    add_special: bool = True
    speculation: Speculation | None = None
    """Speculative decoding for this request (None: the model's setting)."""


@dataclass(slots=True)
class EmbeddingRequest:
    input: list[str] | list[list[int]]
    model: str | None = None
    normalize: bool = True
    truncate: bool = True
    """Cut inputs longer than the context instead of failing."""
    dimensions: int | None = None


@dataclass(slots=True)
class RerankRequest:
    query: str
    documents: list[str]
    model: str | None = None
    top_n: int | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text, as OpenAI sends it."""

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(slots=True)
class ChatChoice:
    index: int
    content: str | None
    finish_reason: FinishReason
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    stop_sequence: str | None = None
    """The stop string that ended this choice, if one did (Anthropic's stop_reason)."""


@dataclass(slots=True)
class _Generated(Generic[C]):
    """What a chat or a completion answers: the model, its choices, their summed usage, and
    OpenAI's envelope of an id and a creation time (each kind declares its id's prefix)."""

    model: str
    choices: list[C]
    usage: Usage
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(slots=True)
class ChatResult(_Generated[ChatChoice]):
    id: str = field(default_factory=lambda: new_id("chatcmpl"))
    tools_dropped: list[str] = field(default_factory=list)
    """Tools left out because they did not fit the context (tool_choice auto)."""


@dataclass(slots=True)
class ToolsDropped:
    """First event of a chat stream whose tools did not all fit the context.

    With tool_choice "auto" the chat is served without the tools it cannot hold;
    this names them (request order) before any output, so a server can still put it
    in a response header.
    """

    names: list[str]
    choice: int = 0


@dataclass(slots=True)
class CompletionChoice:
    index: int
    text: str
    finish_reason: FinishReason
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class CompletionResult(_Generated[CompletionChoice]):
    id: str = field(default_factory=lambda: new_id("cmpl"))


@dataclass(slots=True)
class EmbeddingResult:
    model: str
    embeddings: list[list[float]]
    prompt_tokens: int


@dataclass(slots=True)
class RerankItem:
    index: int
    relevance_score: float
    document: str


@dataclass(slots=True)
class RerankResult:
    model: str
    results: list[RerankItem]
    """Sorted by relevance, best first; at most top_n."""
    prompt_tokens: int


@dataclass(slots=True)
class ModelInfo:
    id: str
    path: str
    """The model's GGUF file on this machine (the SDK's to know; /v1/models leaves it out)."""
    loaded: bool
    owned_by: str = "kronk"
    created: int = 0
    """When it was loaded (epoch seconds); 0 for a model that is not."""
    capabilities: dict[str, Any] = field(default_factory=dict)
    """chat, embedding, rerank, fim, tools, reasoning, vision, audio, context_length..."""


@dataclass(slots=True)
class LoadedModelStatus:
    """One row of `ps`."""

    id: str
    path: str
    size_bytes: int
    context_size: int
    slots: int
    active_streams: int
    queued: int
    idle_seconds: float
    expires_in_seconds: float | None
    kind: Literal["chat", "embedding", "rerank"] = "chat"
