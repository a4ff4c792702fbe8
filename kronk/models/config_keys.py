"""The per-model setting names a catalog entry or a stored model's `config` may carry.

They are `kronk.sdk.settings.ModelSettings` fields and the server's flag names (`--ctx-size`
sets `ctx_size` everywhere). Two older spellings are still read, so catalogs and model
config files written before the names were unified keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONFIG_KEYS = frozenset({"ctx_size", "slots", "sampling", "template", "batch_size", "ubatch_size",
                         "cache_type_k", "cache_type_v", "flash_attn", "max_tokens_default",
                         "spec_type", "spec_draft_max", "spec_draft_min", "draft_model"})
"""What a catalog entry's `config` may set."""

LEGACY_NAMES: Mapping[str, str] = {"context_size": "ctx_size", "flash_attention": "flash_attn"}
"""Old spelling -> the setting's name."""


def canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with old spellings renamed (a name given both ways keeps the new one)."""
    out = {LEGACY_NAMES.get(key, key): value for key, value in config.items() if key in LEGACY_NAMES}
    out.update({key: value for key, value in config.items() if key not in LEGACY_NAMES})
    return out
