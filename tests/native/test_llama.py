"""The low-level SDK on tiny random models: loading, vocab, decode, KV, state, samplers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kronk.engine.types import SamplingParams
from kronk.errors import GrammarError, InvalidRequestError, ModelLoadError
from kronk.llama import Batch, Context, Model, SamplerChain, Utf8Stream, validate_grammar

pytestmark = pytest.mark.requires_libs


@pytest.fixture(scope="module")
def chat_model(lib_dir: Path, tiny: dict[str, Path]) -> Model:
    model = Model.load(tiny["chat"])
    yield model
    model.close()


def greedy(model: Model, ctx: Context, tokens: list[int], n: int, seq: int = 0) -> list[int]:
    batch = Batch(512, 1)
    row = batch.add_sequence(tokens, 0, seq, True)
    ctx.decode(batch)
    out = []
    with SamplerChain(model).greedy() as chain:
        pos = len(tokens)
        for _ in range(n):
            token = chain.sample(ctx, row)
            out.append(token)
            batch.clear()
            row = batch.add(token, pos, seq, True)
            pos += 1
            ctx.decode(batch)
    return out


def test_missing_and_non_gguf_files_are_clear_errors(lib_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Model.load(tmp_path / "nope.gguf")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        Model.load(bogus)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(ModelLoadError):
        Model.load(truncated)


def test_metadata_and_info(chat_model: Model) -> None:
    info = chat_model.info()
    assert info["architecture"] == "llama"
    assert info["chat_template"] is True
    assert chat_model.metadata["general.name"] == "tiny-chat"
    assert "<|im_start|>" in chat_model.chat_template()
    assert chat_model.n_embd == 64 and chat_model.n_layer == 2
    assert chat_model.size_bytes > 0 and chat_model.n_params > 0
    assert chat_model.vocab.supports_fim is False


def test_fim_tokens(lib_dir: Path, tiny: dict[str, Path]) -> None:
    with Model.load(tiny["fim"]) as model:
        vocab = model.vocab
        assert vocab.supports_fim
        assert vocab.token_text(vocab.fim_pre) == "<|fim_prefix|>"


def test_tokenize_roundtrip_and_special_tokens(chat_model: Model) -> None:
    vocab = chat_model.vocab
    text = "hello world, été 日本 😀"
    tokens = vocab.tokenize(text, add_special=False)
    assert vocab.detokenize(tokens) == text
    with_bos = vocab.tokenize(text, add_special=True)
    assert with_bos[0] == vocab.bos and with_bos[1:] == tokens
    special = vocab.tokenize("<|im_start|>user", add_special=False, parse_special=True)
    assert special[0] == vocab.tokenize("<|im_start|>", add_special=False, parse_special=True)[0]
    assert len(vocab.tokenize("<|im_start|>", add_special=False, parse_special=False)) > 1
    with pytest.raises(InvalidRequestError):
        vocab.detokenize([vocab.n_tokens + 5])


def test_utf8_stream_never_splits_characters(chat_model: Model) -> None:
    vocab = chat_model.vocab
    text = "日本 😀 é ñ 中文"
    tokens = vocab.tokenize(text, add_special=False)
    stream = Utf8Stream()
    pieces = [stream.push(vocab.piece(t)) for t in tokens] + [stream.flush()]
    # SentencePiece marks the start of text with a space, which detokenize() strips
    assert "".join(pieces).removeprefix(" ") == text
    assert all("\ufffd" not in p for p in pieces)
    # byte tokens really split multi-byte characters in this vocabulary
    assert any(len(vocab.piece(t)) == 1 and vocab.piece(t)[0] >= 0x80 for t in tokens)


def test_decode_is_deterministic_and_seq_state_roundtrips(chat_model: Model) -> None:
    prompt = chat_model.vocab.tokenize("hello world the cat")
    with Context(chat_model, n_ctx=256, n_seq_max=2) as ctx:
        first = greedy(chat_model, ctx, prompt, 12)
        ctx.clear()
        assert greedy(chat_model, ctx, prompt, 12) == first
        ctx.clear()
        batch = Batch(64)
        batch.add_sequence(prompt, 0, 0, True)
        ctx.decode(batch)
        logits = ctx.logits(batch.n_tokens - 1).copy()
        state = ctx.seq_state_save(0)
        assert ctx.seq_pos_max(0) == len(prompt) - 1
        ctx.seq_rm(0)
        assert ctx.seq_pos_max(0) == -1
        ctx.seq_state_load(state, 1)
        assert ctx.seq_pos_max(1) == len(prompt) - 1
        # evaluating the last token again on the restored sequence gives the same logits
        ctx.seq_rm(1, len(prompt) - 1, -1)
        batch.clear()
        batch.add(prompt[-1], len(prompt) - 1, 1, True)
        ctx.decode(batch)
        assert np.allclose(ctx.logits(0), logits, atol=1e-4)


def test_kv_copy_shares_a_prefix(chat_model: Model) -> None:
    prompt = chat_model.vocab.tokenize("one two three four")
    with Context(chat_model, n_ctx=256, n_seq_max=3) as ctx:
        batch = Batch(64)
        batch.add_sequence(prompt, 0, 0, False)
        ctx.decode(batch)
        ctx.seq_cp(0, 2)
        assert ctx.seq_pos_max(2) == len(prompt) - 1
        ctx.seq_keep(2)
        assert ctx.seq_pos_max(0) == -1 and ctx.seq_pos_max(2) == len(prompt) - 1


def test_multi_sequence_batch(chat_model: Model) -> None:
    a = chat_model.vocab.tokenize("the cat")
    b = chat_model.vocab.tokenize("a dog and the moon")
    with Context(chat_model, n_ctx=256, n_seq_max=2) as ctx:
        batch = Batch(64, 1)
        ra = batch.add_sequence(a, 0, 0, True)
        rb = batch.add_sequence(b, 0, 1, True)
        ctx.decode(batch)
        assert ctx.logits(ra).shape == (chat_model.vocab.n_tokens,)
        assert not np.allclose(ctx.logits(ra), ctx.logits(rb))


def test_every_sampler_builds(chat_model: Model) -> None:
    with SamplerChain(chat_model) as chain:
        (
            chain.logit_bias({5: -1.0}).penalties(64, 1.1, 0.1, 0.1).dry(0.8, 1.75, 2, -1, ["\n"])
            .top_n_sigma(2.0).top_k(40).typical(0.9).top_p(0.9).min_p(0.05).xtc(0.5, 0.1, seed=1)
            .temperature(0.7, 0.2, 1.0).mirostat(5.0, 0.1, seed=1).mirostat_v2(5.0, 0.1, seed=1)
            .dist(3).infill()
        )
        assert len(chain.names) == 14
    with SamplerChain(chat_model) as chain:
        chain.grammar_lazy('root ::= "yes"', ["<tool_call>"])


def _sample_run(model: Model, params: SamplingParams, n: int = 16) -> list[int]:
    prompt = model.vocab.tokenize("hello world")
    with Context(model, n_ctx=256) as ctx, SamplerChain.from_params(model, params) as chain:
        batch = Batch(64)
        row = batch.add_sequence(prompt, 0, 0, True)
        ctx.decode(batch)
        out, pos = [], len(prompt)
        for _ in range(n):
            token = chain.sample(ctx, row)
            out.append(token)
            batch.clear()
            row = batch.add(token, pos, 0, True)
            pos += 1
            ctx.decode(batch)
        return out


def test_same_seed_same_output(chat_model: Model) -> None:
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=42)
    assert _sample_run(chat_model, params) == _sample_run(chat_model, params)
    other = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=43)
    assert _sample_run(chat_model, params) != _sample_run(chat_model, other)


def test_grammar_constrains_output(chat_model: Model) -> None:
    params = SamplingParams(temperature=0, grammar='root ::= "yes" | "no"')
    tokens = _sample_run(chat_model, params, n=4)
    text = chat_model.vocab.detokenize([t for t in tokens if not chat_model.vocab.is_eog(t)])
    assert text in ("yes", "no")


def test_invalid_grammar_is_a_clear_error(chat_model: Model) -> None:
    validate_grammar(chat_model, 'root ::= [a-z]+ "!"')
    with pytest.raises(GrammarError):
        validate_grammar(chat_model, "root ::= (unclosed")


def test_sample_with_probs_reports_candidates(chat_model: Model) -> None:
    prompt = chat_model.vocab.tokenize("hello")
    with Context(chat_model, n_ctx=128) as ctx:
        batch = Batch(16)
        row = batch.add_sequence(prompt, 0, 0, True)
        ctx.decode(batch)
        with SamplerChain.from_params(chat_model, SamplingParams(temperature=0.8, top_k=5, seed=1)) as chain:
            token, top = chain.sample_with_probs(ctx.logits(row), 5)
        assert len(top) == 5
        assert token in [t for t, _ in top]
        assert abs(sum(p for _, p in top) - 1.0) < 1e-3
