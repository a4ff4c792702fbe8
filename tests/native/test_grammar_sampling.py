"""A grammar beside the sampler chain: the same greedy output as masking the whole
vocabulary first, prompt history kept away from it, and no process abort when it has
nothing left to allow (llama.cpp's grammar code throws a C++ exception there)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kronk.engine.types import SamplingParams
from kronk.llama import Batch, Context, Model, SamplerChain

pytestmark = pytest.mark.requires_libs

JSON_GRAMMAR = r'''
root   ::= "{" ws "\"name\":" ws string "," ws "\"tags\":" ws "[" ws (string ("," ws string)*)? "]" ws "}"
string ::= "\"" [a-z ]{1,12} "\""
ws     ::= [ ]?
'''


@pytest.fixture(scope="module")
def chat_model(lib_dir: Path, tiny: dict[str, Path]) -> Model:
    model = Model.load(tiny["chat"])
    yield model
    model.close()


def _generate(model: Model, chain: SamplerChain, prompt: str, n: int, *, history: bool = False) -> list[int]:
    tokens = model.vocab.tokenize(prompt)
    if history:
        for token in tokens:
            chain.accept_prompt(token)
    out: list[int] = []
    with Context(model, n_ctx=256, n_threads=1, n_threads_batch=1) as ctx:
        batch = Batch(64)
        row = batch.add_sequence(tokens, 0, 0, True)
        ctx.decode(batch)
        for pos in range(len(tokens), len(tokens) + n):
            token = chain.sample(ctx, row)
            out.append(token)
            if model.vocab.is_eog(token):
                break
            batch.clear()
            row = batch.add(token, pos, 0, True)
            ctx.decode(batch)
    return out


def _grammar_first_chain(model: Model, gbnf: str) -> SamplerChain:
    """The old arrangement, as a reference: the grammar masks every token before greedy."""
    chain = SamplerChain(model)
    lib = chain._lib
    chain._add(lib.llama_sampler_init_grammar(model.vocab.handle, gbnf.encode(), b"root"), "grammar")
    return chain.greedy()


def test_greedy_output_equals_masking_the_vocabulary_first(chat_model: Model) -> None:
    # a random-weight model: its first choice breaks the grammar almost every time, so both
    # paths (the one-token check and the full mask) are taken
    with SamplerChain.from_params(chat_model, SamplingParams(temperature=0, grammar=JSON_GRAMMAR)) as chain:
        beside = _generate(chat_model, chain, "a cat", 60)
    with _grammar_first_chain(chat_model, JSON_GRAMMAR) as chain:
        first = _generate(chat_model, chain, "a cat", 60)
    assert beside == first
    text = chat_model.vocab.detokenize([t for t in beside if not chat_model.vocab.is_eog(t)])
    assert text.startswith('{') and text.endswith('}') and '"tags":' in text


def test_prompt_history_reaches_the_penalties_not_the_grammar(chat_model: Model) -> None:
    """The engine feeds the prompt to penalty samplers; had it reached the grammar, llama.cpp
    would have aborted the process ("Unexpected empty grammar stack")."""
    params = SamplingParams(temperature=0.8, seed=7, repeat_penalty=1.3, grammar='root ::= "yes" | "no"')
    with SamplerChain.from_params(chat_model, params) as chain:
        tokens = _generate(chat_model, chain, "is the sky blue? answer yes or no", 8, history=True)
    text = chat_model.vocab.detokenize([t for t in tokens if not chat_model.vocab.is_eog(t)])
    assert text in ("yes", "no") and chat_model.vocab.is_eog(tokens[-1])


def test_a_finished_grammar_with_end_of_generation_banned_ends_instead_of_aborting(chat_model: Model) -> None:
    banned = {int(t): -math.inf for t in range(chat_model.vocab.n_tokens) if chat_model.vocab.is_eog(t)}
    params = SamplingParams(temperature=0, grammar='root ::= "yes"', logit_bias=banned)
    with SamplerChain.from_params(chat_model, params) as chain:
        tokens = _generate(chat_model, chain, "hello", 8)
    assert chat_model.vocab.detokenize(tokens[:-1]) == "yes"
    assert tokens[-1] == chat_model.vocab.eos
