"""The request-shaped part around the engine's embed call: vectors cut and normalized,
rerank scores ranked, over-long inputs cut or refused."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kronk.errors import ContextOverflowError, InvalidRequestError
from kronk.llama import Model
from kronk.sdk.embeddings import embedding_tokens, ranked, shaped


def test_vectors_are_cut_then_normalized() -> None:
    vectors = [np.array([3.0, 4.0, 12.0], dtype=np.float32), np.zeros(3, dtype=np.float32)]
    cut = shaped(vectors, dimensions=2, normalize=True)
    assert cut[0] == pytest.approx([0.6, 0.8]) and cut[1] == [0.0, 0.0]
    assert shaped(vectors, dimensions=None, normalize=False)[0] == [3.0, 4.0, 12.0]
    for bad in (0, 4):
        with pytest.raises(InvalidRequestError, match="between 1 and 3") as error:
            shaped(vectors, dimensions=bad, normalize=True)
        assert error.value.param == "dimensions"


def test_rerank_scores_rank_best_first_and_top_n_cuts() -> None:
    scores = [np.array([-1.0]), np.array([2.0]), np.array([0.0])]
    items = ranked(scores, ["a", "b", "c"], None)
    assert [item.document for item in items] == ["b", "c", "a"]
    assert items[0].relevance_score == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert [item.index for item in ranked(scores, ["a", "b", "c"], 1)] == [1]
    assert ranked(scores, ["a", "b", "c"], -3) == []


@pytest.fixture(scope="module")
def model(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[Model]:
    loaded = Model.load(tiny["embed"])
    yield loaded
    loaded.close()


@pytest.mark.requires_libs
def test_long_inputs_are_cut_or_refused_by_index(model: Model) -> None:
    vocab = model.vocab
    inputs: list[str | list[int]] = ["hello world " * 20, [5, 6, 7]]
    full = embedding_tokens(vocab, inputs, limit=1000, truncate=False)
    assert full[1] == [5, 6, 7] and len(full[0]) > 8
    assert embedding_tokens(vocab, inputs, limit=8, truncate=True) == [full[0][:8], [5, 6, 7]]
    with pytest.raises(ContextOverflowError, match=r"input\[0\] has") as error:
        embedding_tokens(vocab, inputs, limit=8, truncate=False)
    assert error.value.param == "input[0]"
