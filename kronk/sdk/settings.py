"""Engine-level settings: how a model is loaded and served, and how the pool behaves.

The server's configuration layer (flags, KRONK_* env, config file) fills these; SDK
users construct them directly. Values of 0/None mean "pick a sensible default".
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from kronk.models.config_keys import canonical


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class ModelSettings:
    """How one model is loaded and how many requests it serves at once."""

    ctx_size: int = 4096
    """Total KV cells shared by all slots (0: the model's training context)."""
    slots: int = 4
    """Parallel sequences decoded together (continuous batching)."""
    batch_size: int = 2048
    ubatch_size: int = 512
    threads: int = 0
    """Decode threads (0: all cores)."""
    threads_batch: int = 0
    """Prefill threads (0: same as threads)."""
    gpu_layers: int = -1
    """Layers offloaded to the GPU (-1: all that the device can take)."""
    flash_attn: str = "auto"
    """auto | on | off"""
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    deterministic: bool = False
    """Greedy output that repeats whatever else the model serves: batch-invariant CPU attention
    (flash attention on, V cache bf16), at some decode speed (docs/server.md)."""
    mmap: bool = True
    mlock: bool = False
    template: str | None = None
    """Jinja chat template override for this model."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """Default sampling options (names of SamplingParams fields) for requests that set none."""
    tools: dict[str, Any] = field(default_factory=dict)
    """Default server-side tools, `{builtins: [...], mcp: [labels]}` (the server reads it; docs/tools.md)."""
    queue_size: int = 64
    """Requests that may wait for a slot; one more gets BusyError."""
    spec_type: str = "ngram"
    """Speculative decoding for requests that do not choose: off | ngram | draft (docs/server.md).
    Prompt lookup by default: it speeds up replies that repeat their prompt and stops drafting
    where drafts do not pay, so other replies run as fast as without it."""
    spec_draft_max: int = 16
    """The most draft tokens a slot verifies per step."""
    spec_draft_min: int = 1
    """Drafts shorter than this are not verified."""
    draft_model: str | None = None
    """The draft model (id, alias or path) for spec_type draft."""
    prompt_cache_mb: int = 256
    """RAM for saved sequence states (prompt cache across slot reuse); 0 disables."""
    max_tokens_default: int | None = 4096
    """Output cap for a request that sets no max_tokens (None or 0: until the context is full).
    Few replies are longer; a runaway one (a small model repeating itself) then ends in minutes
    instead of holding a slot until the context is full."""
    embeddings: bool | None = None
    """Force embedding mode (None: decided from the model's metadata)."""
    rpc: tuple[str, ...] | str | None = None
    """`host:port` of ggml RPC servers (`kronk rpc-server`) that take some of the layers: a list or
    a comma-separated text (docs/rpc.md). None: all layers on this machine."""

    def merged(self, overrides: dict[str, Any]) -> ModelSettings:
        """A copy with the known keys of `overrides` applied (unknown keys are ignored; the
        old spellings `context_size` and `flash_attention` are read as their new names)."""
        names = {f.name for f in dataclasses.fields(self)}
        known = {k: v for k, v in canonical(overrides).items() if k in names and v is not None}
        return dataclasses.replace(self, **known)

    def effective_threads(self) -> int:
        return self.threads or default_threads()

    def effective_threads_batch(self) -> int:
        return self.threads_batch or self.effective_threads()


@dataclass(slots=True)
class PoolSettings:
    """Which models may be in memory at once and for how long."""

    default_model: str | None = None
    max_models: int = 3
    ttl_seconds: float = 300.0
    """Unload a model idle this long (0: never)."""
    model_defaults: ModelSettings = field(default_factory=ModelSettings)
    overrides: dict[str, Any] = field(default_factory=dict)
    """ModelSettings fields the operator set explicitly (flags, env, config file) for every model."""
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Model id -> overrides of ModelSettings fields (from the model config file)."""
    model_paths: bool = True
    """Whether a request may name a GGUF file by path. The server turns this off, so a
    client cannot make it read any file; the default model and the model config file's
    entries may still be paths (the operator chose them)."""

    def settings_for(self, model_id: str, catalog_config: dict[str, Any] | None = None) -> ModelSettings:
        """Most specific wins: built-in defaults < the catalog's config for the model <
        the operator's explicit settings < the operator's per-model config."""
        settings = self.model_defaults
        if catalog_config:
            settings = settings.merged(catalog_config)
        if self.overrides:
            settings = settings.merged(self.overrides)
        if model_id in self.per_model:
            settings = settings.merged(self.per_model[model_id])
        return settings
