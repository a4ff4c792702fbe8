"""Prompt-lookup drafting: propose the tokens that followed the latest earlier occurrence of
the sequence's last few tokens (in the prompt or in what was generated so far).

Code edits, "rewrite this" and answers that quote a document copy long runs of the
prompt, so the continuation of a matching n-gram is often exactly what the model says
next. One vectorised scan of the history per step (no per-token Python), so drafting
costs microseconds next to a decode.
"""

from __future__ import annotations

import numpy as np

NGRAM_MIN = 2
"""Shortest suffix match that may propose (one shared token is too weak a hint)."""
NGRAM_MAX = 4
"""Longest suffix matched: a longer match is preferred, as it is more often continued alike."""


def propose(history: np.ndarray, n: int, k: int) -> np.ndarray | None:
    """Up to `k` draft tokens continuing `history[:n]`, or None when nothing matches.

    The candidates are the earlier positions that end the longest suffix match (between
    NGRAM_MIN and NGRAM_MAX tokens); the latest one wins, as recent text is the likeliest
    to be repeated. Media positions (-1) never match: the suffix must be real tokens.
    """
    if k <= 0 or n <= NGRAM_MIN:
        return None
    last = history[n - 1]
    if last < 0:
        return None
    # `ends`: positions e < n-1 where history[e] == last, i.e. a 1-token match ending at e.
    ends = np.flatnonzero(history[: n - 1] == last)
    if len(ends) == 0:
        return None
    best = None
    for length in range(2, NGRAM_MAX + 1):
        ends = ends[ends >= length - 1]
        ends = ends[history[ends - (length - 1)] == history[n - length]]
        if len(ends) == 0 or history[n - length] < 0:
            break
        best = ends
        if length == n - 1:
            break
    if best is None:
        return None
    start = int(best[-1]) + 1
    stop = min(start + k, n)
    return history[start:stop] if stop > start else None
