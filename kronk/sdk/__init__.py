"""The high-level SDK: `Kronk` (blocking) and `AsyncKronk` (asyncio) over a model pool."""

from kronk.sdk.client import AsyncKronk
from kronk.sdk.pool import ModelPool
from kronk.sdk.requests import (
    ChatChoice,
    ChatRequest,
    ChatResult,
    CompletionChoice,
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    LoadedModelStatus,
    ModelInfo,
    RerankItem,
    RerankRequest,
    RerankResult,
    ToolCall,
    ToolsDropped,
)
from kronk.sdk.settings import ModelSettings, PoolSettings
from kronk.sdk.sync import Kronk

__all__ = [
    "AsyncKronk",
    "ChatChoice",
    "ChatRequest",
    "ChatResult",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResult",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Kronk",
    "LoadedModelStatus",
    "ModelInfo",
    "ModelPool",
    "ModelSettings",
    "PoolSettings",
    "RerankItem",
    "RerankRequest",
    "RerankResult",
    "ToolCall",
    "ToolsDropped",
]
