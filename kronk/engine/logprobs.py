"""Log-probabilities as OpenAI reports them: log-softmax of the raw logits over the whole
vocabulary (the model's distribution, before any sampler), plus the top-N alternatives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kronk.engine.types import TokenLogprob, TopLogprob


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64, copy=False)
    shifted = x - np.max(x)
    return shifted - np.log(np.sum(np.exp(shifted)))


def token_logprobs(
    logits: np.ndarray, token: int, top_n: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    """Logprob of `token` and of the `top_n` most likely tokens (best first)."""
    logp = log_softmax(logits)
    top: list[TopLogprob] = []
    if top_n > 0:
        candidates = np.argpartition(-logp, min(top_n, len(logp) - 1))[:top_n]
        for tid in candidates[np.argsort(-logp[candidates], kind="stable")]:
            raw = piece(int(tid))
            top.append(TopLogprob(raw.decode("utf-8", "replace"), int(tid), float(logp[tid]), list(raw)))
    raw = piece(token)
    return TokenLogprob(raw.decode("utf-8", "replace"), token, float(logp[token]), list(raw), top)
