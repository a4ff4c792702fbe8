"""Attention settings of an engine's context, and the batch-invariant choice `deterministic` makes.

Greedy output repeats only if a sequence's logits do not depend on what else shares the
batch. On the CPU they do, through which flash-attention kernel llama.cpp picks for a
ubatch (measured on SmolLM2 Q4_1, logits move by 0.3-0.8, enough to flip greedy tokens):

- K and V both f16 (or f32, which the graph casts to f16): a ubatch of 64+ tokens takes a
  tiled kernel, one token over 512+ cells a split-KV kernel, anything else a one-row
  kernel that sums V in f16, so even where a sequence's cells sit changes the result.
- Any other V type: always the one-row kernel, summing in f32 whatever the batch or layout.
- Flash attention off: no better; the KQ/KQV matmuls pick kernels by batch size too.

So `deterministic` keeps flash attention on and stores V as bf16 (same size as f16, and an
f32 sum instead of an f16 one). It costs speed (docs/server.md has the numbers). GPU builds
are left as configured: their kernels are chosen by batch size as well, and a bf16 V next to
an f16 K may not run there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kronk.errors import ConfigError

logger = logging.getLogger("kronk.engine")

_F16_PATH_TYPES = ("f16", "f32")
"""V types the CPU flash attention sums in f16 (f32 is cast to f16 first)."""


@dataclass(frozen=True, slots=True)
class Attention:
    flash_attn: str
    cache_type_k: str
    cache_type_v: str


def resolve_attention(
    flash_attn: str, cache_type_k: str, cache_type_v: str, *, deterministic: bool, cpu: bool
) -> Attention:
    """The settings a context is created with; `cpu`: attention runs on the CPU backend."""
    if deterministic and not cpu:
        logger.warning("deterministic applies to the CPU backend only; this GPU build keeps its attention settings")
    if not deterministic or not cpu:
        return Attention(flash_attn, cache_type_k, cache_type_v)
    if flash_attn.lower() == "off":
        raise ConfigError(
            "deterministic needs flash attention (auto or on): without it the CPU matmuls of "
            "attention also depend on the batch size"
        )
    value_type = "bf16" if cache_type_v.lower() in _F16_PATH_TYPES else cache_type_v
    return Attention("on", cache_type_k, value_type)
