"""Prompt-lookup drafting: propose the tokens that followed the latest earlier occurrence of
the sequence's last few tokens (in the prompt or in what was generated so far).

Code edits, "rewrite this" and answers that quote a document copy long runs of the
prompt, so the continuation of a matching n-gram is often exactly what the model says
next. One vectorised scan of the history per step (no per-token Python), so drafting
costs microseconds next to a decode. The match length is the evidence: the engine drafts no
more tokens than matched (kronk.engine.speculation decides how many of those pay).

The match is extended as far as NGRAM_MAX tokens: text with many short repeats (code's
indentation, a list's "- the") has several earlier occurrences of its last 2-4 tokens,
and only a longer match tells which one the model is copying (SmolLM2 returning a 60-line
file: acceptance 0.74 with matches of at most 4 tokens, 0.99 with up to 24).
"""

from __future__ import annotations

import numpy as np

NGRAM_MIN = 3
"""Shortest suffix match that may propose. Measured on SmolLM2's answers to the benchmark prompts
(scripts/bench_spec.py): the token after a 2-token match was the model's next token 45% of the
time, after a 3-token match 71%, after 4 or more 80-98% (a draft row costs half a step on a CPU)."""
NGRAM_MAX = 24
"""Longest suffix matched: a longer match is preferred, as it is more often continued alike."""


def lookup(history: np.ndarray, n: int) -> tuple[int, int]:
    """(start, length): where the continuation of the longest suffix match of `history[:n]`
    begins, and how many tokens matched (between NGRAM_MIN and NGRAM_MAX); (0, 0) when none.

    The candidates are the earlier positions that end the longest match; the latest one wins,
    as recent text is the likeliest to be repeated. Media positions (-1) never match.
    """
    if n <= NGRAM_MIN:
        return 0, 0
    last = history[n - 1]
    if last < 0:
        return 0, 0
    # `ends`: positions e < n-1 where history[e] == last, i.e. a 1-token match ending at e.
    ends = np.flatnonzero(history[: n - 1] == last)
    if len(ends) == 0:
        return 0, 0
    best, matched = None, 0
    for length in range(2, min(NGRAM_MAX, n - 1) + 1):
        if history[n - length] < 0:
            break
        ends = ends[ends >= length - 1]
        ends = ends[history[ends - (length - 1)] == history[n - length]]
        if len(ends) == 0:
            break
        best, matched = ends, length
    if best is None or matched < NGRAM_MIN:
        return 0, 0
    return int(best[-1]) + 1, matched
