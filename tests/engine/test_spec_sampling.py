"""Sampled requests with speculation: the output distribution is the model's own.

The tiny random model's choices are narrowed by a logit bias to three tokens whose odds
shift with the context, and the prompt is a string of them, so prompt-lookup drafts are
accepted about as often as they are rejected: both sides of the rejection sampling run
at every position (drafts are priced as on a GPU, so the engine keeps verifying them although
half fail). Seeds are fixed, so the tests are deterministic, never flaky.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from kronk.engine import ngram
from kronk.engine.loop import Engine
from kronk.engine.types import GenerateRequest, SamplingParams
from kronk.llama import Model
from tests.engine.conftest import make_engine
from tests.engine.test_spec_ngram import _run_together

LENGTH = 8
SAMPLES = 480


def _critical(df: int) -> float:
    """The chi-square value that equal laws exceed with probability 0.001 (Wilson-Hilferty)."""
    z = 3.0902
    return df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3


def _chi2(table: np.ndarray) -> float:
    """Pearson's statistic of a contingency table (rows: runs, columns: tokens)."""
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def _letters(model: Model) -> list[int]:
    letters = [model.vocab.tokenize(char, add_special=False)[-1] for char in "xyz"]
    assert len(set(letters)) == 3
    return letters


def _params(model: Model, **sampling: object) -> dict[str, object]:
    params: dict[str, object] = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                                      logit_bias={t: 12.0 for t in _letters(model)})
    params.update(sampling)
    return params


def _prompt(model: Model) -> list[int]:
    """The model's own sampled text: its n-grams are what the model tends to say again."""
    head = model.vocab.tokenize("the")
    with make_engine(model, slots=1) as engine:
        request = GenerateRequest(head, sampling=SamplingParams(seed=7, **_params(model)), max_tokens=96,  # type: ignore[arg-type]
                                  ignore_eos=True, logprobs=True)
        tokens, _, _ = _run_together(engine, [request])[0]
    return head + [entry[0] for entry in tokens]


def _requests(model: Model, seeds: range, **sampling: object) -> list[GenerateRequest]:
    prompt = _prompt(model)
    params = _params(model, **sampling)
    return [GenerateRequest(prompt, sampling=SamplingParams(seed=seed, **params), max_tokens=LENGTH,  # type: ignore[arg-type]
                            ignore_eos=True, logprobs=True) for seed in seeds]


def _sample(engine: Engine, requests: list[GenerateRequest], together: int) -> list[tuple[int, ...]]:
    out = []
    for start in range(0, len(requests), together):
        out += [tuple(entry[0] for entry in tokens) for tokens, _, _ in
                _run_together(engine, requests[start : start + together])]
    assert all(len(sample) == LENGTH for sample in out)
    return out


@pytest.fixture
def short_matches(cheap_drafts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Draft after 2-token matches too: in the tiny model's three-letter text the token after a
    2-token match is taken about a third of the time, after a longer one rarely, and the tests
    need both outcomes of the verification many times."""
    monkeypatch.setattr(ngram, "NGRAM_MIN", 2)


@pytest.mark.requires_libs
@pytest.mark.usefixtures("short_matches")
def test_a_seeded_sampled_request_gives_the_same_tokens_with_speculation(tiny_model: Model) -> None:
    """Each row is sampled by the request's own chain in order, so the random draws line up:
    the same seed gives the same tokens (one slot: bit-equal logits), whatever was drafted."""
    requests = _requests(tiny_model, range(48), top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)
    runs = {}
    for spec in ("off", "ngram"):
        with make_engine(tiny_model, slots=1, spec_type=spec) as engine:
            runs[spec] = _sample(engine, requests, 1)
            stats = engine.stats()
    assert runs["ngram"] == runs["off"]
    # both outcomes of the verification happen, many times
    assert stats.spec_accepted_tokens >= 10 and stats.spec_drafted_tokens - stats.spec_accepted_tokens >= 10


@pytest.mark.requires_libs
@pytest.mark.usefixtures("short_matches")
def test_sampled_output_distribution_is_unchanged(tiny_model: Model) -> None:
    """Independent seeds for the two runs, four streams at a time: per position the token
    frequencies, and the joint law of the first three tokens, agree (chi-square tests at the
    0.001 level; the seeds are fixed, so the outcome is too)."""
    samples = {}
    for spec, seeds in (("off", range(SAMPLES)), ("ngram", range(10_000, 10_000 + SAMPLES))):
        with make_engine(tiny_model, slots=4, spec_type=spec) as engine:
            samples[spec] = _sample(engine, _requests(tiny_model, seeds), 4)
            stats = engine.stats()
    assert stats.spec_accepted_tokens >= 100 and stats.spec_drafted_tokens - stats.spec_accepted_tokens >= 100
    letters = _letters(tiny_model)
    for position in range(LENGTH):
        table = np.array([[sum(1 for s in samples[spec] if s[position] == t) for t in letters]
                          for spec in ("off", "ngram")])
        table = np.concatenate([table, SAMPLES - table.sum(axis=1, keepdims=True)], axis=1)  # any other token
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            assert _chi2(table) < _critical(table.shape[1] - 1), (position, table)
    # the joint law of the first three tokens (each one of the three, or "other")
    def head(sample: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(letters.index(t) if t in letters else 3 for t in sample[:3])

    heads = {spec: Counter(head(s) for s in samples[spec]) for spec in samples}
    keys = sorted(set(heads["off"]) | set(heads["ngram"]))
    table = np.array([[heads[spec][k] for k in keys] for spec in ("off", "ngram")])
    rare = table.sum(axis=0) < 10  # pooled, so every expected count is large enough for the test
    table = np.concatenate([table[:, ~rare], table[:, rare].sum(axis=1, keepdims=True)], axis=1)
    table = table[:, table.sum(axis=0) > 0]
    assert table.shape[1] >= 8
    assert _chi2(table) < _critical(table.shape[1] - 1), table
