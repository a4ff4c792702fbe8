"""The continuous-batching engine: concurrency, cancellation, limits, streaming details."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.logprobs import log_softmax
from kronk.engine.types import Finish, GenerateRequest, SamplingParams, TextDelta
from kronk.errors import BusyError, ContextOverflowError, InvalidRequestError
from kronk.llama import Model
from tests.engine.conftest import collect, greedy_request, make_engine

pytestmark = pytest.mark.requires_libs

PROMPTS = [
    "hello world the cat", "a dog and the moon", "json name value", "red blue green",
    "one two three four", "paris london city", "think because time", "weather answer question",
]


def text_of(deltas: list[TextDelta]) -> str:
    return "".join(d.text for d in deltas)


def run_concurrently(engine, requests):
    results: dict[int, tuple] = {}

    def worker(i: int, request: GenerateRequest) -> None:
        results[i] = collect(engine, request)

    threads = [threading.Thread(target=worker, args=(i, r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_concurrent_streams_equal_solo_runs_tiny(tiny_model: Model) -> None:
    """`deterministic`: llama.cpp's CPU attention picks its kernels by what shares the batch
    (and flash attention sums V in f16), which moves logits enough to flip this random model's
    greedy near-ties; batch-invariant attention makes batched and solo logits bit-equal
    (tests/engine/test_determinism.py)."""
    solo = []
    for prompt in PROMPTS:
        with make_engine(tiny_model, slots=8, prompt_cache_bytes=0, deterministic=True) as engine:
            solo.append(text_of(collect(engine, greedy_request(tiny_model, prompt, 40, ignore_eos=True))[0]))
    with make_engine(tiny_model, slots=8, prompt_cache_bytes=0, deterministic=True) as engine:
        results = run_concurrently(engine, [greedy_request(tiny_model, p, 40, ignore_eos=True) for p in PROMPTS])
        stats = engine.stats()
    assert [text_of(results[i][0]) for i in range(8)] == solo
    assert all(results[i][1].usage.completion_tokens == 40 for i in range(8))
    assert stats.steps < 8 * 41  # the streams really were batched together


@pytest.mark.slow
def test_concurrent_streams_equal_solo_runs_smollm2(smol_model: Model) -> None:
    prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The sun is",
               "My favourite food is", "In 1492,", "Python is a", "The best way to learn"]
    solo = []
    for prompt in prompts:
        with make_engine(smol_model, slots=8, prompt_cache_bytes=0, deterministic=True) as engine:
            solo.append(text_of(collect(engine, greedy_request(smol_model, prompt, 48))[0]))
    with make_engine(smol_model, slots=8, prompt_cache_bytes=0, deterministic=True) as engine:
        results = run_concurrently(engine, [greedy_request(smol_model, p, 48) for p in prompts])
    assert [text_of(results[i][0]) for i in range(8)] == solo


def test_cancellation_frees_the_slot(tiny_model: Model) -> None:
    with make_engine(tiny_model, slots=1) as engine:
        sink = ThreadEventQueue()
        job = engine.submit(greedy_request(tiny_model, "hello", 1000, ignore_eos=True), sink)
        first = sink.get(timeout=60)
        assert isinstance(first, TextDelta)
        engine.cancel(job)
        while not isinstance(item := sink.get(timeout=60), Finish):
            pass
        assert item.reason == "cancelled"
        assert engine.active == 0
        # the freed slot serves the next request
        deltas, finish = collect(engine, greedy_request(tiny_model, "the cat", 5, ignore_eos=True))
        assert finish.reason == "length" and finish.usage.completion_tokens == 5


def test_full_queue_gives_busy_error(tiny_model: Model) -> None:
    with make_engine(tiny_model, slots=1, queue_size=2) as engine:
        sinks = [ThreadEventQueue() for _ in range(4)]
        request = greedy_request(tiny_model, "hello", 500, ignore_eos=True)
        jobs = [engine.submit(request, sinks[0])]
        time.sleep(0.2)  # the first job occupies the only slot
        jobs += [engine.submit(request, sinks[1]), engine.submit(request, sinks[2])]
        with pytest.raises(BusyError):
            engine.submit(request, sinks[3])
        for job in jobs:
            engine.cancel(job)


def test_stop_strings_never_leak(tiny_model: Model) -> None:
    with make_engine(tiny_model) as engine:
        full = text_of(collect(engine, greedy_request(tiny_model, "the cat", 60, ignore_eos=True))[0])
        assert len(full) > 20
        # pick a stop string from the middle of the real output, spanning tokens
        stop = full[10:14]
        cut = full.index(stop)
        deltas, finish = collect(engine, greedy_request(tiny_model, "the cat", 60, ignore_eos=True, stop=[stop]))
        assert finish.reason == "stop"
        assert text_of(deltas) == full[:cut]
        assert all(stop not in d.text for d in deltas)


def test_utf8_characters_are_never_split(tiny_model: Model) -> None:
    """A random model emits raw byte tokens: streamed text must equal the decoded byte stream,
    i.e. no multi-byte character is ever split between two deltas (which would give U+FFFD)."""
    multibyte = 0
    with make_engine(tiny_model, slots=4) as engine:
        for seed in range(6):
            sampling = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
            request = greedy_request(tiny_model, "日本 é", 80, sampling=sampling, ignore_eos=True, logprobs=True)
            deltas, _ = collect(engine, request)
            raw = b"".join(bytes(lp.bytes) for d in deltas for lp in (d.logprobs or []))
            expected = raw.decode("utf-8", "replace")
            assert text_of(deltas) == expected
            multibyte += sum(1 for ch in expected if ord(ch) > 0x7F and ch != "\ufffd")
    assert multibyte > 0  # the test really saw multi-byte characters


def test_same_seed_same_output(tiny_model: Model) -> None:
    sampling = SamplingParams(temperature=1.0, seed=1234)
    with make_engine(tiny_model) as engine:
        a = text_of(collect(engine, greedy_request(tiny_model, "hello", 30, sampling=sampling, ignore_eos=True))[0])
        b = text_of(collect(engine, greedy_request(tiny_model, "hello", 30, sampling=sampling, ignore_eos=True))[0])
        other = SamplingParams(temperature=1.0, seed=99)
        c = text_of(collect(engine, greedy_request(tiny_model, "hello", 30, sampling=other, ignore_eos=True))[0])
    assert a == b
    assert a != c


def test_logprobs_match_numpy_log_softmax(tiny_model: Model) -> None:
    from kronk.llama import Batch, Context

    prompt = tiny_model.vocab.tokenize("hello world")
    with make_engine(tiny_model) as engine:
        request = greedy_request(tiny_model, "hello world", 6, logprobs=True, top_logprobs=5, ignore_eos=True)
        deltas, _ = collect(engine, request)
    entries = [lp for d in deltas for lp in (d.logprobs or [])]
    assert len(entries) == 6
    # recompute the raw logits for every generated position and compare
    tokens = list(prompt)
    with Context(tiny_model, n_ctx=256) as ctx:
        for entry in entries:
            ctx.clear()
            batch = Batch(256)
            row = batch.add_sequence(tokens, 0, 0, True)
            ctx.decode(batch)
            logits = ctx.logits(row).astype(np.float64)
            expected = logits - np.max(logits) - np.log(np.sum(np.exp(logits - np.max(logits))))
            assert entry.token_id == int(np.argmax(logits))  # greedy
            assert entry.logprob == pytest.approx(expected[entry.token_id], abs=1e-4)
            top_ids = [t.token_id for t in entry.top_logprobs]
            assert top_ids == list(np.argsort(-expected)[:5])
            assert [t.logprob for t in entry.top_logprobs] == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-4)
            tokens.append(entry.token_id)
    assert log_softmax(np.array([0.0, 0.0]))[0] == pytest.approx(np.log(0.5))


def test_second_turn_reuses_the_cached_prefix(tiny_model: Model) -> None:
    with make_engine(tiny_model, slots=2) as engine:
        first = greedy_request(tiny_model, "hello world the cat and the dog " * 4, 8, ignore_eos=True)
        deltas, finish = collect(engine, first)
        assert finish.usage.cached_tokens == 0
        history = first.prompt_tokens + tiny_model.vocab.tokenize(text_of(deltas), add_special=False)
        follow = GenerateRequest(history + tiny_model.vocab.tokenize(" and the moon", add_special=False),
                                 SamplingParams(temperature=0), max_tokens=4)
        _, finish2 = collect(engine, follow)
        assert finish2.usage.cached_tokens >= len(first.prompt_tokens)
        assert finish2.usage.prompt_tokens == len(follow.prompt_tokens)


def test_prompt_cache_restores_a_conversation_after_its_slot_was_reused(tiny_model: Model) -> None:
    with make_engine(tiny_model, slots=1) as engine:
        conversation = greedy_request(tiny_model, "json name value true false null " * 8, 4, ignore_eos=True)
        collect(engine, conversation)
        collect(engine, greedy_request(tiny_model, "red blue green one two three " * 8, 4, ignore_eos=True))
        _, finish = collect(engine, conversation)
        assert finish.usage.cached_tokens == len(conversation.prompt_tokens) - 1
        assert engine.stats().prompt_cache_hits >= 1


def test_idle_slots_are_parked_in_ram_while_others_generate(tiny_model: Model) -> None:
    """An idle slot's KV leaves the unified cache while another slot generates, and comes back from RAM."""
    with make_engine(tiny_model, slots=2) as engine:
        conversation = greedy_request(tiny_model, "json name value true false null " * 8, 4, ignore_eos=True)
        collect(engine, conversation)
        assert engine.stats().kv_cells_used > 0
        # an unrelated prompt goes to the empty slot; the conversation's slot stays idle
        other = greedy_request(tiny_model, "red blue green one two three " * 8, 24, ignore_eos=True)
        sink = ThreadEventQueue()
        engine.submit(other, sink)
        while not isinstance(sink.get(timeout=60), Finish):
            # while `other` runs, only its own cells are in use
            assert engine.stats().kv_cells_used <= len(other.prompt_tokens) + other.max_tokens
        _, finish = collect(engine, conversation)
        assert finish.usage.cached_tokens == len(conversation.prompt_tokens) - 1
        assert engine.stats().prompt_cache_hits >= 1


def test_bad_requests(tiny_model: Model) -> None:
    with make_engine(tiny_model, n_ctx=128) as engine:
        sink = ThreadEventQueue()
        with pytest.raises(InvalidRequestError):
            engine.submit(GenerateRequest([]), sink)
        with pytest.raises(ContextOverflowError):
            engine.submit(GenerateRequest([5] * (engine.n_ctx + 10)), sink)
        with pytest.raises(InvalidRequestError):
            engine.submit(GenerateRequest([tiny_model.vocab.n_tokens + 3]), sink)
        # generation stops at the end of the context
        _, finish = collect(engine, greedy_request(tiny_model, "hello", 1000, ignore_eos=True))
        assert finish.reason == "length"


def test_embeddings_batch_many_inputs(lib_dir, tiny) -> None:
    from kronk.engine.loop import Engine, EngineConfig
    from kronk.llama import Model as M
    from kronk.llama.context import ContextParams

    with M.load(tiny["embed"]) as model:
        with Engine(model, EngineConfig(ContextParams(n_ctx=512, n_seq_max=4, n_batch=512, embeddings=True, n_threads=2))) as engine:
            inputs = [model.vocab.tokenize(t) for t in ["hello world", "the cat", "a dog", "red", "blue green"]]
            vectors = engine.call(lambda: engine.embed_tokens(inputs)).result(timeout=60)
            alone = engine.call(lambda: engine.embed_tokens([inputs[3]])).result(timeout=60)
    assert len(vectors) == 5 and all(v.shape == (64,) for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-5 for v in vectors)
    assert np.allclose(vectors[3], alone[0], atol=1e-5)


def test_a_cached_prompt_that_no_longer_fits_is_computed_instead(tiny_model: Model) -> None:
    """KV pressure never fails a request with an internal error: while a long generation holds
    most cells, restoring a cached 256-token conversation cannot fit, so the engine computes the
    prompt instead (and, when even that does not fit, ends the largest job with a clear error)."""
    conversation = greedy_request(tiny_model, "json name value true false null " * 8, 4, ignore_eos=True)
    assert len(conversation.prompt_tokens) >= 240
    with make_engine(tiny_model, n_ctx=512, slots=1, prompt_cache_bytes=0, deterministic=True) as engine:
        cold, cold_finish = collect(engine, conversation)
    with make_engine(tiny_model, n_ctx=512, slots=2, deterministic=True) as engine:
        collect(engine, conversation)  # cached in its slot, then parked in RAM while `long` runs
        long = greedy_request(tiny_model, "red blue green", 480, ignore_eos=True)
        long_sink = ThreadEventQueue()
        engine.submit(long, long_sink)
        produced = 0
        while produced < 260:  # `long` now holds more cells than the conversation could get back
            event = long_sink.get(timeout=60)
            assert not isinstance(event, (Finish, Exception)), event
            produced += 1
        again, finish = collect(engine, conversation)
        assert text_of(again) == text_of(cold) and finish.reason == cold_finish.reason
        while True:  # `long` finishes, or ends with the clear overflow error: never an internal one
            event = long_sink.get(timeout=60)
            if isinstance(event, Finish):
                break
            if isinstance(event, Exception):
                assert isinstance(event, ContextOverflowError), event
                break


def test_a_prompt_that_does_not_fit_next_to_a_generation_waits_for_it(tiny_model: Model) -> None:
    """When the cells run out mid-prefill, the newcomer goes back to the queue until the running
    generation ends: the generation is not cut short and the newcomer gets no error."""
    conversation = greedy_request(tiny_model, "json name value true false null " * 8, 4, ignore_eos=True)
    with make_engine(tiny_model, n_ctx=512, slots=1, prompt_cache_bytes=0, deterministic=True) as engine:
        cold, _ = collect(engine, conversation)
    with make_engine(tiny_model, n_ctx=512, slots=2, prompt_cache_bytes=0, deterministic=True) as engine:
        long = greedy_request(tiny_model, "red blue green", 400, ignore_eos=True)
        long_sink = ThreadEventQueue()
        engine.submit(long, long_sink)
        for _ in range(270):  # `long` now holds more cells than leave room for the conversation
            assert isinstance(long_sink.get(timeout=60), TextDelta)
        again, finish = collect(engine, conversation)
        assert text_of(again) == text_of(cold) and finish.reason == "length"
        while not isinstance(event := long_sink.get(timeout=60), Finish):
            assert not isinstance(event, Exception), event
        assert event.reason == "length" and event.usage.completion_tokens == 400
