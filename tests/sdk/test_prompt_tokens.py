"""A rendered chat prompt's tokens: the model's BOS once, whether or not the template wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kronk.chat.prompt import prompt_tokens
from kronk.llama import Model

pytestmark = pytest.mark.requires_libs


@pytest.fixture(scope="module")
def model(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[Model]:
    loaded = Model.load(tiny["chat"])
    yield loaded
    loaded.close()


def test_bos_written_by_the_template_is_not_doubled(model: Model) -> None:
    vocab = model.vocab
    assert vocab.add_bos and vocab.bos >= 0  # the tokenizer adds BOS itself
    plain = prompt_tokens(vocab, "<|im_start|>user\nhi")
    assert plain[0] == vocab.bos and plain[1] != vocab.bos
    assert prompt_tokens(vocab, vocab.token_text(vocab.bos) + "<|im_start|>user\nhi") == plain


def test_special_markers_are_parsed(model: Model) -> None:
    vocab = model.vocab
    marker = vocab.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(marker) == 1 and prompt_tokens(vocab, "<|im_start|>")[1:] == marker
