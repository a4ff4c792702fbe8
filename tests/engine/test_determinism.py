"""`deterministic`: a greedy request gives the same tokens whatever else the engine is serving."""

from __future__ import annotations

import pytest

from kronk.engine.attention import Attention, resolve_attention
from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.types import Finish, TextDelta
from kronk.errors import ConfigError
from kronk.llama import Model
from tests.engine.conftest import collect, greedy_request, make_engine

# Long enough that, without `deterministic`, the CPU flash attention takes other kernels solo
# (a tiled one for its 64+ token prefill, a split-KV one for single-token decodes over 512+
# cells) than next to other streams.
TARGET = ("You are a helpful assistant. Answer in full sentences and explain your reasoning. "
          "Question: what is the history of Paris, the capital of France, and why did it grow "
          "into one of the largest cities of Europe? Mention the river, the kings, the revolution, the "
          "boulevards of the nineteenth century and what the city is known for today. Answer:")
OTHERS = ["Write a long story about a dragon who lived in a cave by the sea. " * 4,
          "def quicksort(arr):\n    # sort the list in place and return it\n" * 4,
          "Explain photosynthesis in detail, step by step, for a student. " * 4]


def test_deterministic_keeps_flash_attention_on_and_stores_v_as_bf16() -> None:
    assert resolve_attention("auto", "f16", "f16", deterministic=True, cpu=True) == Attention("on", "f16", "bf16")
    assert resolve_attention("on", "f16", "f32", deterministic=True, cpu=True) == Attention("on", "f16", "bf16")
    # a quantized V is already summed in f32 by the one-row kernel
    assert resolve_attention("auto", "q8_0", "q8_0", deterministic=True, cpu=True) == Attention("on", "q8_0", "q8_0")
    # off, or on a GPU build: as configured
    assert resolve_attention("auto", "f16", "f16", deterministic=False, cpu=True) == Attention("auto", "f16", "f16")
    assert resolve_attention("auto", "f16", "f16", deterministic=True, cpu=False) == Attention("auto", "f16", "f16")
    with pytest.raises(ConfigError, match="flash attention"):
        resolve_attention("off", "f16", "f16", deterministic=True, cpu=True)


def _tokens(deltas: list[TextDelta]) -> list[tuple[int, float]]:
    """Each generated token with its logprob: equal floats mean bit-equal logits, a far
    finer check than equal text (a real model's greedy choice rarely sits on a near-tie)."""
    return [(entry.token_id, entry.logprob) for d in deltas for entry in d.logprobs or []]


@pytest.mark.slow
@pytest.mark.requires_libs
def test_greedy_output_repeats_while_other_slots_generate(smol_model: Model) -> None:
    """Bit-equal logits, so equal tokens. Without `deterministic` this fails at the first token
    (logprob -0.04523 solo, -0.04214 next to the other streams)."""
    target = greedy_request(smol_model, TARGET * 8, 40, ignore_eos=True, logprobs=True)
    assert len(target.prompt_tokens) >= 520
    with make_engine(smol_model, slots=4, deterministic=True) as engine:
        assert engine.attention.cache_type_v == "bf16"
        first, finish = collect(engine, target)
        assert finish.usage.completion_tokens == 40 and len(_tokens(first)) == 40
        for round_ in range(2):
            # other slots prefill and generate; the target comes back while they run
            sinks = []
            for i, prompt in enumerate(OTHERS):
                sink = ThreadEventQueue()
                engine.submit(greedy_request(smol_model, prompt + str(round_), 48 + 8 * i, ignore_eos=True), sink)
                sinks.append(sink)
            assert isinstance(sinks[0].get(timeout=120), TextDelta)  # they are running
            again, again_finish = collect(engine, target)
            assert _tokens(again) == _tokens(first)
            assert again_finish.usage.completion_tokens == 40
            assert again_finish.usage.cached_tokens > 0  # it came back through the prefix cache
            for sink in sinks:
                while not isinstance(item := sink.get(timeout=120), Finish):
                    assert not isinstance(item, BaseException), item
