"""The pool turns a model's ModelSettings (the user-facing names) into the engine's one
EngineConfig: the llama context's settings as a ContextParams, speculation as SpecSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kronk.sdk import ModelSettings
from kronk.sdk.pool import PathResolution, _load_blocking

pytestmark = pytest.mark.requires_libs


def test_a_chat_model_gets_its_settings_in_the_engine_config(lib_dir: Path, tiny: dict[str, Path]) -> None:
    settings = ModelSettings(ctx_size=512, slots=3, batch_size=256, ubatch_size=128, threads=1, threads_batch=2,
                             cache_type_k="bf16", spec_type="ngram", spec_draft_max=8, spec_draft_min=2,
                             queue_size=5, prompt_cache_mb=1)
    loaded = _load_blocking("chat", PathResolution(id="chat", path=tiny["chat"]), settings)
    try:
        config, engine = loaded.engine.config, loaded.engine
        context = config.context
        assert (context.n_ctx, context.n_seq_max, context.n_batch, context.n_ubatch) == (512, 3, 256, 128)
        assert (context.n_threads, context.n_threads_batch, context.cache_type_k) == (1, 2, "bf16")
        assert not context.embeddings and context.pooling == "unspecified"
        assert (config.queue_size, config.prompt_cache_bytes) == (5, 1024 * 1024)
        assert (config.speculation.type, config.speculation.draft_max, config.speculation.draft_min) == ("ngram", 8, 2)
        # what llama.cpp made of it
        assert len(engine.slots) == 3 and engine.ctx.n_seq_max == 3 and engine.ctx.n_batch == 256
        assert engine.spec_config.type == "ngram" and not engine.spec_config.has_draft_model
    finally:
        loaded.close()


def test_an_embedding_model_gets_a_batch_of_the_whole_context_and_no_speculation(
        lib_dir: Path, tiny: dict[str, Path]) -> None:
    settings = ModelSettings(ctx_size=256, slots=2, batch_size=64, ubatch_size=32, threads=1, spec_type="ngram")
    loaded = _load_blocking("embed", PathResolution(id="embed", path=tiny["embed"]), settings)
    try:
        context = loaded.engine.config.context
        assert loaded.kind == "embedding" and context.embeddings
        assert context.n_batch == 256 and loaded.engine.ctx.n_ubatch == 256  # a whole input in one ubatch
        assert loaded.engine.config.speculation.type == "off"
    finally:
        loaded.close()
