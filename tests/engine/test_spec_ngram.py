"""Speculative decoding with prompt-lookup (n-gram) drafts: the proposal, the adaptive policy,
and that a real model's output is token for token what it is without speculation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.loop import Engine
from kronk.engine.ngram import NGRAM_MAX, lookup, propose
from kronk.engine.speculation import COOLDOWN_FIRST, WINDOW, SlotSpec
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


def test_propose_continues_the_latest_longest_match() -> None:
    history = np.array([5, 1, 2, 3, 9, 9, 7, 2, 3, 4, 4, 1, 2, 3], dtype=np.int32)
    # the suffix 1 2 3 occurred at 1..3 (then 9 9 7); 2 3 alone also at 7..8 (then 4 4)
    assert propose(history, len(history), 3).tolist() == [9, 9, 7]
    assert propose(history, len(history), 1).tolist() == [9]
    # a 1-token match is not enough
    assert propose(np.array([1, 2, 3, 1], dtype=np.int32), 4, 4) is None
    # nothing after the match but the suffix itself: the continuation stops at the end
    assert propose(np.array([7, 7, 7, 7], dtype=np.int32), 4, 8).tolist() == [7]
    assert propose(history, len(history), 0) is None


def test_lookup_prefers_the_longest_match_beyond_four_tokens() -> None:
    """Code repeats short runs (indentation, `self.`): only the longer match tells which
    occurrence is being copied, even when a shorter one is more recent."""
    history = np.array([1, 2, 3, 4, 5, 7, 8, 0, 2, 3, 4, 5, 9, 1, 2, 3, 4, 5], dtype=np.int32)
    assert lookup(history, len(history)) == (5, 5)
    assert propose(history, len(history), 2).tolist() == [7, 8]
    # the match is capped at NGRAM_MAX tokens; a long repeated run still proposes its continuation
    run = np.arange(100, 100 + NGRAM_MAX + 6, dtype=np.int32)
    history = np.concatenate([run, [0], run[:-3]]).astype(np.int32)
    assert lookup(history, len(history)) == (len(run) - 3, NGRAM_MAX)
    assert propose(history, len(history), 4).tolist() == [*run[-3:], 0]
    assert lookup(np.array([5, 6, 7], dtype=np.int32), 3) == (0, 0)


def test_propose_never_matches_media_positions() -> None:
    history = np.array([-1, -1, 4, -1, -1], dtype=np.int32)
    assert propose(history, 5, 4) is None
    history = np.array([-1, -1, 4, 5, -1, -1], dtype=np.int32)
    assert propose(history, 6, 4) is None


# --- the adaptive policy ----------------------------------------------------------------


def test_draft_length_follows_acceptance() -> None:
    spec = SlotSpec(draft_max=16, draft_min=1)
    assert spec.budget() == 4  # it starts short
    spec.observe(4, 4)
    spec.observe(8, 8)
    assert spec.budget() == 16
    spec = SlotSpec(draft_max=16, draft_min=1)
    spec.observe(6, 3)
    assert spec.budget() == 4  # what was accepted, plus one
    spec.observe(4, 4)
    assert spec.budget() == 8  # a full accept doubles it
    spec.observe(8, 8)
    assert spec.budget() == 16
    spec.observe(16, 16)
    assert spec.budget() == 16


def test_low_acceptance_pauses_drafting_with_a_growing_cooldown() -> None:
    spec = SlotSpec(draft_max=8, draft_min=1)
    drafted = 0
    while drafted < WINDOW:
        n = spec.budget()
        spec.observe(n, 0)
        drafted += n
    assert [spec.budget() for _ in range(COOLDOWN_FIRST)] == [0] * COOLDOWN_FIRST
    assert spec.budget() == 1
    for _ in range(WINDOW):
        spec.observe(1, 0)
    assert spec.cooldown == 2 * COOLDOWN_FIRST
    # good acceptance keeps drafting on and resets the cooldown
    spec = SlotSpec(draft_max=8, draft_min=1)
    for _ in range(10):
        spec.observe(spec.budget(), spec.budget() - 1)
    assert spec.cooldown == 0 and spec.budget() > 1


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
