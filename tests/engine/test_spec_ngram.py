"""Speculative decoding with prompt-lookup (n-gram) drafts: the proposal, the adaptive policy,
and that a real model's output is token for token what it is without speculation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.loop import Engine
from kronk.engine.ngram import NGRAM_MAX, NGRAM_MIN, lookup
from kronk.engine.speculation import COOLDOWN_FIRST, ROW_COST_PRIOR, SlotSpec, StepCost, best_length
from kronk.engine.types import Finish, GenerateRequest, SamplingParams, Speculation, TextDelta
from kronk.errors import ConfigError, InvalidRequestError
from kronk.llama import Model
from tests.engine.conftest import collect, make_engine

PARAGRAPH = ("The quick brown fox jumps over the lazy dog near the river bank. Every morning the farmer "
             "walks his two dogs along the old stone wall, then feeds the chickens and checks the apple "
             "trees before the sun is up. ")
CODE = Path(__file__).resolve().parents[2].joinpath("kronk/engine/stop.py").read_text()[:1400]


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = {
    "rewrite": chat("Rewrite this paragraph, changing 'fox' to 'cat' and nothing else:\n\n" + PARAGRAPH * 2),
    "code": chat("Repeat this code exactly, with a docstring added to the class:\n\n" + CODE),
    "chat": chat("Tell me a short story about a dragon and a knight."),
}


# --- the proposal ---------------------------------------------------------------------


def test_lookup_continues_the_latest_longest_match() -> None:
    history = np.array([5, 1, 2, 3, 9, 9, 7, 2, 3, 4, 4, 1, 2, 3], dtype=np.int32)
    # the suffix 1 2 3 occurred at 1..3 (then 9 9 7); 2 3 alone also at 7..8 (then 4 4)
    assert lookup(history, len(history)) == (4, 3)
    # a match shorter than NGRAM_MIN tokens is too weak a hint to draft from
    assert NGRAM_MIN == 3
    assert lookup(np.array([1, 2, 3, 1], dtype=np.int32), 4) == (0, 0)
    assert lookup(np.array([4, 1, 2, 5, 1, 2], dtype=np.int32), 6) == (0, 0)
    assert lookup(np.array([4, 1, 2, 5, 4, 1, 2], dtype=np.int32), 7) == (3, 3)
    # a run of one token: the continuation is what followed the latest earlier run
    assert lookup(np.array([7, 7, 7, 7], dtype=np.int32), 4) == (3, 3)


def test_lookup_prefers_the_longest_match_beyond_four_tokens() -> None:
    """Code repeats short runs (indentation, `self.`): only the longer match tells which
    occurrence is being copied, even when a shorter one is more recent."""
    history = np.array([1, 2, 3, 4, 5, 7, 8, 0, 2, 3, 4, 5, 9, 1, 2, 3, 4, 5], dtype=np.int32)
    assert lookup(history, len(history)) == (5, 5)
    # the match is capped at NGRAM_MAX tokens; a long repeated run still finds its continuation
    run = np.arange(100, 100 + NGRAM_MAX + 6, dtype=np.int32)
    history = np.concatenate([run, [0], run[:-3]]).astype(np.int32)
    assert lookup(history, len(history)) == (len(run) - 3, NGRAM_MAX)
    assert lookup(np.array([5, 6, 7], dtype=np.int32), 3) == (0, 0)


def test_lookup_never_matches_media_positions() -> None:
    history = np.array([-1, -1, -1, 4, -1, -1, -1], dtype=np.int32)
    assert lookup(history, 7) == (0, 0)
    history = np.array([-1, -1, 4, 5, 6, -1, -1], dtype=np.int32)
    assert lookup(history, 7) == (0, 0)


# --- the adaptive policy ----------------------------------------------------------------


def test_best_length_weighs_acceptance_against_the_cost_of_a_row() -> None:
    # a row that costs half a step pays only when the draft is likelier than not to survive
    assert best_length(0.4, 16, 0, 0.5) == 0
    assert best_length(0.6, 16, 0, 0.5) == 1
    assert 3 <= best_length(0.9, 16, 0, 0.5) <= 6
    assert best_length(0.99, 16, 0, 0.5) >= 12
    assert best_length(0.99, 5, 0, 0.5) == 5  # never past the cap
    # nearly free rows (a GPU): draft long even at a modest acceptance
    assert best_length(0.6, 16, 0, 0.02) >= 4
    # the more streams already share the step, the surer a draft row must be
    assert best_length(0.7, 16, 0, 0.5) >= 1
    assert best_length(0.7, 16, 7, 0.5) == 0


def test_draft_length_follows_acceptance() -> None:
    spec = SlotSpec(draft_max=16, draft_min=1)
    assert spec.length(16, 0, 0.5) == 1  # a new request starts cautious
    for _ in range(4):
        spec.observe(8, 8)
    long = spec.length(16, 0, 0.5)
    assert long >= 8
    assert spec.length(3, 0, 0.5) == 3  # capped by the match behind the proposal
    misses = 0
    while spec.acceptance >= 0.5:  # the copied block ended: its drafts now fail at once
        spec.observe(spec.length(16, 0, 0.5), 0)
        misses += 1
    assert misses <= 8
    assert spec.length(16, 0, 0.5) == 0


def test_low_acceptance_pauses_drafting_with_a_growing_cooldown() -> None:
    spec = SlotSpec(draft_max=8, draft_min=1)
    spec.observe(1, 0)
    spec.observe(1, 0)
    assert spec.length(8, 0, 0.5) == 0
    assert [spec.cooling() for _ in range(COOLDOWN_FIRST)] == [True] * COOLDOWN_FIRST
    assert not spec.cooling()
    assert spec.length(8, 0, 0.5) == 1  # the probe after a cool-down
    spec.observe(1, 0)
    assert spec.length(8, 0, 0.5) == 0
    assert spec.cooldown == 2 * COOLDOWN_FIRST
    # drafts that pay again reset the cool-down
    spec = SlotSpec(draft_max=8, draft_min=1)
    spec.observe(1, 0)
    spec.observe(1, 0)
    assert spec.length(8, 0, 0.5) == 0
    spec.cooldown = 0
    for _ in range(3):
        spec.observe(4, 4)
    assert spec.length(8, 0, 0.5) > 1 and spec.pause == COOLDOWN_FIRST


def _steps(cost: StepCost, one_row: float, per_row: float, times: int = 10) -> None:
    for rows in (1, 5, 9, 17) * times:
        cost.record(rows, one_row + per_row * (rows - 1))


def test_step_cost_fits_what_a_row_costs_on_this_machine() -> None:
    cost = StepCost()
    for _ in range(20):
        cost.record(1, 0.0095)
    assert cost.ratio == ROW_COST_PRIOR  # rows never varied: nothing to fit yet
    assert cost.one_row_s == pytest.approx(0.0095)
    _steps(cost, 0.0095, 0.005)
    assert cost.ratio == pytest.approx(0.005 / 0.0095, rel=0.02)
    assert cost.one_row_s == pytest.approx(0.0095, rel=1e-6)
    for _ in range(3):  # stalls caused by other work on the machine barely move the fit
        cost.record(1, 0.5)
    assert cost.ratio == pytest.approx(0.005 / 0.0095, rel=0.25)
    # nearly free rows (a GPU): the estimate follows, the prior's pull fading as steps accrue
    cost = StepCost()
    _steps(cost, 0.010, 0.0002, times=20)
    assert cost.ratio < 0.12
    cost.record_draft(4, 0.008)
    assert cost.draft_ratio() == pytest.approx(cost.ratio + 0.002 / cost.one_row_s, rel=1e-6)


def test_one_slow_first_multi_row_step_does_not_stop_drafting() -> None:
    """A first draft step that happens to stall (a graph built the first time, another
    process) must not price rows so high that drafting stops and the estimate never recovers."""
    cost = StepCost()
    for _ in range(20):
        cost.record(1, 0.0095)
    cost.record(2, 0.5)
    assert cost.ratio < 0.65
    assert best_length(0.7, 16, 0, cost.ratio) >= 1


# --- the engine, with SmolLM2 ----------------------------------------------------------


def _request(model: Model, prompt: str, n: int, **kwargs: object) -> GenerateRequest:
    sampling = kwargs.pop("sampling", SamplingParams(temperature=0))
    return GenerateRequest(model.vocab.tokenize(prompt, parse_special=True), sampling=sampling,  # type: ignore[arg-type]
                           max_tokens=n, logprobs=True, **kwargs)  # type: ignore[arg-type]


Entry = tuple[int, float, float]
"""A generated token, its logprob, and the gap to the runner-up's logprob."""


def _entries(deltas: list[TextDelta]) -> list[Entry]:
    out = []
    for delta in deltas:
        for entry in delta.logprobs or []:
            top = entry.top_logprobs
            gap = top[0].logprob - top[1].logprob if len(top) > 1 else float("inf")
            out.append((entry.token_id, entry.logprob, gap))
    return out


def _run_together(engine: Engine, requests: list[GenerateRequest]) -> list[tuple[list[Entry], str, Finish]]:
    """Submit every request at once (each in its own slot) and collect each one's tokens."""
    sinks = []
    for request in requests:
        sink = ThreadEventQueue()
        engine.submit(request, sink)
        sinks.append(sink)
    out = []
    for sink in sinks:
        deltas: list[TextDelta] = []
        while True:
            item = sink.get(timeout=600)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Finish):
                out.append((_entries(deltas), "".join(d.text for d in deltas), item))
                break
            deltas.append(item)
    return out


@pytest.mark.slow
@pytest.mark.requires_libs
def test_one_stream_is_bit_identical_with_ngram_speculation(smol_model: Model) -> None:
    """Rewrite a paragraph, copy code, free chat: the same tokens with the same logprobs
    (bit-equal logits), while most of the repeat-heavy text comes from accepted drafts."""
    runs: dict[str, list[list[Entry]]] = {}
    for spec in ("off", "ngram"):
        with make_engine(smol_model, slots=1, n_ctx=4096, deterministic=True, spec_type=spec) as engine:
            runs[spec] = [
                _run_together(engine, [_request(smol_model, prompt, 48, ignore_eos=True, top_logprobs=2)])[0][0]
                for prompt in PROMPTS.values()
            ]
            stats = engine.stats()
        if spec == "ngram":
            assert stats.spec_accepted_tokens >= 30  # the rewrite alone copies dozens of tokens
            assert stats.spec_accepted_tokens <= stats.spec_drafted_tokens
        else:
            assert stats.spec_drafted_tokens == 0
    assert runs["ngram"] == runs["off"]
    assert [len(tokens) for tokens in runs["off"]] == [48, 48, 48]


NEAR_TIE = 0.1
"""Logprob gap under which float noise may flip a greedy choice (see the next test)."""


@pytest.mark.slow
@pytest.mark.requires_libs
def test_greedy_tokens_identical_with_ngram_speculation_in_several_slots(smol_model: Model) -> None:
    """Repeat-heavy prompts and free chat speculate together, with a stop string and max_tokens
    that can end a stream inside an accepted draft.

    Several speculating streams share the unified KV cache: the cells of one stream's rejected
    draft are reused by whichever stream decodes next, so the attention visits a stream's
    cells in another order and its float sums can differ in the last bits (as in llama-server).
    So each stream must equal its non-speculative output token for token, except that where a
    greedy choice was a near tie the two runs may part there (and differ after)."""
    requests = [
        _request(smol_model, PROMPTS["rewrite"], 64, ignore_eos=True, top_logprobs=2),
        _request(smol_model, PROMPTS["code"], 64, ignore_eos=True, top_logprobs=2),
        _request(smol_model, PROMPTS["chat"], 48, ignore_eos=True, top_logprobs=2),
        _request(smol_model, PROMPTS["rewrite"], 61, stop=["apple"], top_logprobs=2),
    ]
    results = {}
    for spec in ("off", "ngram"):
        with make_engine(smol_model, slots=4, n_ctx=4096, deterministic=True, spec_type=spec) as engine:
            results[spec] = _run_together(engine, requests)
            stats = engine.stats()
        if spec == "off":
            assert stats.spec_drafted_tokens == 0
        else:
            assert stats.spec_drafted_tokens > 0
            assert 0 < stats.spec_accepted_tokens <= stats.spec_drafted_tokens
    for (plain, text, finish), (spec, text_spec, finish_spec) in zip(results["off"], results["ngram"]):
        ids, ids_spec = [e[0] for e in plain], [e[0] for e in spec]
        parted = next((i for i, (a, b) in enumerate(zip(ids, ids_spec)) if a != b), None)
        if parted is None:
            assert ids_spec == ids and text_spec == text
            assert (finish_spec.reason, finish_spec.stop_sequence) == (finish.reason, finish.stop_sequence)
        else:
            assert min(plain[parted][2], spec[parted][2]) < NEAR_TIE, f"parted at {parted} without a near tie"
        assert finish_spec.usage.completion_tokens == len(ids_spec)
    assert [len(r[0]) for r in results["ngram"][:3]] == [64, 64, 48]
    assert results["off"][3][2].reason == "stop" and "apple" not in results["off"][3][1]
    # the repeat-heavy stream with the stop string parts from nothing: its choices are clear
    assert [e[0] for e in results["ngram"][3][0]] == [e[0] for e in results["off"][3][0]]


@pytest.mark.slow
@pytest.mark.requires_libs
def test_grammar_request_is_verified_token_by_token(smol_model: Model) -> None:
    """A grammar-constrained request speculates too: each row is sampled through the grammar."""
    grammar = 'root ::= ("The " | "quick " | "brown " | "fox " | "jumps " | "over " | "lazy " | "dog ")+'
    sampling = SamplingParams(temperature=0, grammar=grammar)
    prompt = chat("Repeat: " + "The quick brown fox jumps over the lazy dog " * 6)
    outputs = []
    for spec in ("off", "ngram"):
        with make_engine(smol_model, slots=2, deterministic=True, spec_type=spec) as engine:
            deltas, finish = collect(engine, _request(smol_model, prompt, 40, sampling=sampling))
            outputs.append(("".join(d.text for d in deltas), finish.usage.completion_tokens))
            if spec == "ngram":
                assert engine.stats().spec_accepted_tokens > 0
    assert outputs[0] == outputs[1]
    assert set(outputs[0][0].split()) <= {"The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"}


@pytest.mark.slow
@pytest.mark.requires_libs
def test_a_request_chooses_its_speculation(smol_model: Model) -> None:
    prompt = PROMPTS["rewrite"]
    with make_engine(smol_model, slots=1, spec_type="off") as engine:
        collect(engine, _request(smol_model, prompt, 24, ignore_eos=True, speculation=Speculation("ngram")))
        assert engine.stats().spec_drafted_tokens > 0
    with make_engine(smol_model, slots=1, spec_type="ngram") as engine:
        collect(engine, _request(smol_model, prompt, 24, ignore_eos=True, speculation=Speculation("off")))
        collect(engine, _request(smol_model, prompt, 24, ignore_eos=True, speculation=Speculation("ngram", 0)))
        assert engine.stats().spec_drafted_tokens == 0
        for bad, param in ((Speculation("magic"), "type"), (Speculation("draft"), "type"),  # type: ignore[arg-type]
                           (Speculation("ngram", 65), "draft_max"), (Speculation("ngram", -1), "draft_max")):
            with pytest.raises(InvalidRequestError) as info:
                engine.submit(_request(smol_model, prompt, 4, speculation=bad), ThreadEventQueue())
            assert info.value.param == f"kronk_speculation.{param}"


@pytest.mark.requires_libs
def test_bad_speculation_settings_fail_at_load(tiny_model: Model) -> None:
    for config, match in (({"spec_type": "magic"}, "spec_type"), ({"spec_type": "draft"}, "draft model"),
                          ({"spec_draft_max": 100}, "spec_draft_max"),
                          ({"spec_draft_max": 4, "spec_draft_min": 5}, "spec_draft_min")):
        with pytest.raises(ConfigError, match=match):
            make_engine(tiny_model, **config)
