"""A rendered chat prompt as the tokens the model evaluates."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kronk.llama.vocab import Vocab


def prompt_tokens(vocab: Vocab, prompt: str) -> list[int]:
    """Tokenize a rendered prompt: special tokens (the template's markers) are parsed and
    BOS is added as the model asks, but once: many templates write BOS themselves, and a
    doubled BOS measurably degrades some models' answers."""
    tokens = vocab.tokenize(prompt, add_special=True, parse_special=True)
    if len(tokens) >= 2 and tokens[0] == tokens[1] == vocab.bos:
        tokens = tokens[1:]  # the template wrote BOS and the tokenizer added one
    return tokens
