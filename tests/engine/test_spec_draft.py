"""Draft-model speculation: SmolLM2 drafting for itself (every draft accepted: the mechanics),
a random-weight model with SmolLM2's vocabulary (nearly none: the switch-off), and the
vocabulary check at load. Greedy output is the target's own in every case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kronk.engine.loop import Engine
from kronk.errors import ConfigError
from kronk.llama import Model
from tests.engine.conftest import make_engine
from tests.engine.test_spec_ngram import PROMPTS, _request, _run_together


def write_random_model_with_vocab_of(source: Path, path: Path, n_embd: int = 32, seed: int = 0) -> Path:
    """A tiny random-weight llama GGUF whose tokenizer (every tokenizer.* key) is copied from `source`."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-smol-vocab")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(2 * n_embd)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(n_embd // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        value = field.contents()
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, value)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_string(key, value)
        elif kind == gguf.GGUFValueType.BOOL:
            writer.add_bool(key, value)
        else:
            writer.add_uint32(key, int(value))
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    head_dim = n_embd // 2
    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, n_embd))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", weight(n_embd, n_embd))
    writer.add_tensor("blk.0.attn_k.weight", weight(head_dim, n_embd))
    writer.add_tensor("blk.0.attn_v.weight", weight(head_dim, n_embd))
    writer.add_tensor("blk.0.attn_output.weight", weight(n_embd, n_embd))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", weight(2 * n_embd, n_embd))
    writer.add_tensor("blk.0.ffn_up.weight", weight(2 * n_embd, n_embd))
    writer.add_tensor("blk.0.ffn_down.weight", weight(n_embd, 2 * n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def smol_draft(lib_dir: Path, smollm2: Path) -> Iterator[Model]:
    model = Model.load(smollm2)
    yield model
    model.close()


@pytest.fixture(scope="module")
def random_draft(lib_dir: Path, smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    model = Model.load(write_random_model_with_vocab_of(smollm2, tmp_path_factory.mktemp("draft") / "rnd.gguf"))
    yield model
    model.close()


def _greedy(engine: Engine, model: Model, n: int = 40) -> list[list[int]]:
    """Each prompt alone, then all together (a slot each), as token ids."""
    requests = [_request(model, prompt, n, ignore_eos=True) for prompt in PROMPTS.values()]
    alone = [_run_together(engine, [request])[0] for request in requests]
    return [[entry[0] for entry in tokens] for tokens, _, _ in alone]


@pytest.mark.slow
@pytest.mark.requires_libs
@pytest.mark.usefixtures("cheap_drafts")
def test_smollm2_drafting_for_itself_is_always_accepted(smol_model: Model, smol_draft: Model) -> None:
    """The mechanics: every drafted token is accepted and the tokens are the same. On a CPU a
    draft model as large as the target never pays (each drafted token costs a full step), so
    the engine would rightly stop drafting; here drafts are priced as on a GPU (cheap_drafts)."""
    with make_engine(smol_model, slots=2, n_ctx=4096, deterministic=True, spec_type="off") as engine:
        plain = _greedy(engine, smol_model)
    with make_engine(smol_model, slots=2, n_ctx=4096, deterministic=True, spec_type="draft",
                     draft_model=smol_draft) as engine:
        drafted = _greedy(engine, smol_model)
        stats = engine.stats()
    assert drafted == plain
    assert stats.spec_drafted_tokens >= 60
    assert stats.spec_accepted_tokens >= 0.95 * stats.spec_drafted_tokens


@pytest.mark.slow
@pytest.mark.requires_libs
def test_a_draft_model_that_never_agrees_is_switched_off(smol_model: Model, random_draft: Model) -> None:
    with make_engine(smol_model, slots=2, n_ctx=4096, deterministic=True, spec_type="off") as engine:
        plain = _greedy(engine, smol_model, 64)
    with make_engine(smol_model, slots=2, n_ctx=4096, deterministic=True, spec_type="draft",
                     draft_model=random_draft) as engine:
        drafted = _greedy(engine, smol_model, 64)
        stats = engine.stats()
    assert drafted == plain
    assert stats.spec_accepted_tokens <= 0.1 * stats.spec_drafted_tokens
    # 3 x 64 tokens: without the switch-off each step would verify 1+ drafts (192+);
    # with it each request drafts one window (16 tokens) and then pauses for its cool-downs
    assert 0 < stats.spec_drafted_tokens <= 3 * 40


@pytest.mark.requires_libs
def test_a_draft_model_with_another_vocabulary_is_refused_at_load(smol_model: Model, tiny_model: Model) -> None:
    with pytest.raises(ConfigError, match="vocabulary"):
        make_engine(smol_model, spec_type="draft", draft_model=tiny_model)
