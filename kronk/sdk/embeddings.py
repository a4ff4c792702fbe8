"""Embedding and rerank inputs as token lists, and the engine's pooled vectors as the
API's answers. The engine batches and pools; this is the request-shaped part around it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from kronk.errors import ContextOverflowError, InvalidRequestError
from kronk.sdk.requests import RerankItem

if TYPE_CHECKING:
    from kronk.llama.vocab import Vocab


def embedding_tokens(vocab: Vocab, inputs: Sequence[str | Sequence[int]], *, limit: int,
                     truncate: bool) -> list[list[int]]:
    """Each input's tokens (a text is tokenized, token ids are taken as given), cut to
    `limit` with `truncate`, else an input longer than `limit` is an error naming it."""
    out = []
    for index, item in enumerate(inputs):
        tokens = (vocab.tokenize(item, add_special=True, parse_special=False) if isinstance(item, str)
                  else [int(t) for t in item])
        if len(tokens) > limit:
            if not truncate:
                raise ContextOverflowError(
                    f"input[{index}] has {len(tokens)} tokens; the model takes at most {limit}",
                    param=f"input[{index}]",
                )
            tokens = tokens[:limit]
        out.append(tokens)
    return out


def shaped(vectors: Sequence[np.ndarray], *, dimensions: int | None, normalize: bool) -> list[list[float]]:
    """Vectors cut to `dimensions` (Matryoshka-style) and then, with `normalize`, scaled to
    unit length (after the cut, so a shortened vector is still a unit vector)."""
    n_embd = len(vectors[0]) if vectors else 0
    if dimensions is not None and not 0 < dimensions <= n_embd:
        raise InvalidRequestError(f"dimensions must be between 1 and {n_embd} for this model", param="dimensions")
    out = []
    for vector in vectors:
        if dimensions is not None:
            vector = vector[:dimensions]
        if normalize:
            norm = float(np.linalg.norm(vector))
            if norm > 0:
                vector = vector / norm
        out.append([float(x) for x in vector])
    return out


def rerank_tokens(vocab: Vocab, query: str, documents: Sequence[str]) -> list[list[int]]:
    """One `BOS query EOS SEP document EOS` sequence per document (the cross-encoder form;
    a token the vocabulary lacks is left out)."""
    query_tokens = vocab.tokenize(query, add_special=False)
    bos, eos, sep = vocab.bos, vocab.eos, vocab.sep
    out = []
    for doc in documents:
        tokens = ([bos] if bos >= 0 else []) + query_tokens + ([eos] if eos >= 0 else [])
        tokens += ([sep] if sep >= 0 else []) + vocab.tokenize(doc, add_special=False)
        tokens += [eos] if eos >= 0 else []
        out.append(tokens)
    return out


def ranked(scores: Sequence[np.ndarray], documents: Sequence[str], top_n: int | None) -> list[RerankItem]:
    """Documents by relevance (the rank-pooled logit through a sigmoid), best first."""
    items = [
        RerankItem(index=i, relevance_score=1.0 / (1.0 + math.exp(-float(s[0]))), document=documents[i])
        for i, s in enumerate(scores)
    ]
    items.sort(key=lambda item: item.relevance_score, reverse=True)
    return items[: max(0, top_n)] if top_n is not None else items
