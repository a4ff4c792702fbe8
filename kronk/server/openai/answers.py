"""The OpenAI-side response bodies, as models for /openapi.json (and for tests to check answers against).

The encoders build these bodies as plain dicts for speed; these declarations say what
they build, so the document can be checked against real answers.
"""

from __future__ import annotations

from typing import Any, Literal

from kronk.wire import DocModel


class PromptTokensDetails(DocModel):
    cached_tokens: int


class CompletionTokensDetails(DocModel):
    reasoning_tokens: int


class Usage(DocModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    time_to_first_token_ms: float
    tokens_per_second: float


class TopLogprob(DocModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(DocModel):
    content: list[TokenLogprob]
    refusal: None = None


class CalledFunction(DocModel):
    name: str
    arguments: str
    """JSON text."""


class CalledTool(DocModel):
    id: str
    type: Literal["function"]
    function: CalledFunction


class AnswerMessage(DocModel):
    role: Literal["assistant"]
    content: str | None
    refusal: None = None
    reasoning_content: str | None = None
    tool_calls: list[CalledTool] | None = None


class ChatChoice(DocModel):
    index: int
    message: AnswerMessage
    logprobs: ChatLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletion(DocModel):
    """A chat completion; with `"stream": true` the answer is SSE `chat.completion.chunk` events, then `[DONE]`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChoice]
    usage: Usage


class LegacyLogprobs(DocModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(DocModel):
    index: int
    text: str
    logprobs: LegacyLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"]


class Completion(DocModel):
    """A text completion; with `"stream": true`, SSE `text_completion` chunks, then `[DONE]`."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: Usage


class Embedding(DocModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str
    """Floats, or base64 of little-endian float32 with `encoding_format: base64`."""


class PromptUsage(DocModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(DocModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: PromptUsage


class RerankedDocument(DocModel):
    text: str


class RerankItem(DocModel):
    index: int
    relevance_score: float
    document: RerankedDocument | None = None
    """With `return_documents` (the default)."""


class RerankResult(DocModel):
    id: str
    object: Literal["list"]
    model: str
    results: list[RerankItem]
    """Best first."""
    usage: PromptUsage


class TokenPiece(DocModel):
    id: int
    piece: str


class TokenizeResult(DocModel):
    model: str
    count: int
    tokens: list[int] | list[TokenPiece]
    """Ids, or `{id, piece}` objects with `with_pieces`."""


class DetokenizeResult(DocModel):
    model: str
    content: str


class Model(DocModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    loaded: bool
    capabilities: dict[str, Any]
    """chat, embedding, rerank, fim, tools, reasoning, vision, audio, context_length ..."""


class ModelList(DocModel):
    object: Literal["list"]
    data: list[Model]
