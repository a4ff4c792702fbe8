#!/usr/bin/env python3
"""What `--deterministic` costs: prefill and decode speed of the attention settings it
chooses (flash attention on, V cache bf16) against llama.cpp's default (flash attention
on, K and V f16) and flash attention off, on the same model, libs and threads.

Each configuration has its own context; rounds are interleaved so that a busy machine
slows all of them alike, and the best round is kept. Speeds are tokens per CPU second
of this process (all threads), which a shared machine disturbs less than wall time; the
ratios to the default are what to read.

    python scripts/bench_deterministic.py [--depth 256] [--rounds 3] [--threads 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _bench_common import check_model, default_model

from kronk.llama import Batch, Model
from kronk.llama.context import Context, ContextParams

CONFIGS = {
    "default (FA on, f16/f16)": ("on", "f16", "f16"),
    "FA off (f16/f16)": ("off", "f16", "f16"),
    "deterministic (FA on, f16/bf16)": ("on", "f16", "bf16"),
}
STREAMS = (1, 4)
GENERATED = 48


def measure(ctx: Context, prompt: list[int], streams: int) -> tuple[float, float]:
    """(prefill, decode) tokens per CPU second for `streams` sequences of `prompt`."""
    ctx.clear()
    batch = Batch(max(len(prompt), streams), streams)
    start = time.process_time()
    for seq in range(streams):
        batch.clear()
        batch.add_sequence(prompt, 0, seq, True)
        ctx.decode(batch)
    prefilled = time.process_time()
    for step in range(GENERATED):
        batch.clear()
        for seq in range(streams):
            batch.add(100 + seq + step, len(prompt) + step, seq, True)
        ctx.decode(batch)
    done = time.process_time()
    return streams * len(prompt) / (prefilled - start), streams * GENERATED / (done - prefilled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--depth", type=int, default=256, help="prompt tokens per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = Model.load(str(check_model(args.model)))
    prompt = model.vocab.tokenize("Write a long story about a dragon who lived in a cave near the sea. " * 200)
    prompt = prompt[: args.depth]
    contexts = {
        name: Context(model, ContextParams(
            n_ctx=max(2048, 4 * (args.depth + GENERATED)), n_batch=2048, n_ubatch=512, n_seq_max=max(STREAMS),
            n_threads=args.threads, n_threads_batch=args.threads, flash_attn=fa, cache_type_k=k, cache_type_v=v))
        for name, (fa, k, v) in CONFIGS.items()
    }
    best: dict[tuple[str, int], tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, ctx in contexts.items():
            for streams in STREAMS:
                prefill, decode = measure(ctx, prompt, streams)
                old = best.get((name, streams), (0.0, 0.0))
                best[(name, streams)] = (max(old[0], prefill), max(old[1], decode))
    base = next(iter(CONFIGS))
    print(f"{len(prompt)}-token prompts, {GENERATED} generated, {args.threads} threads, best of {args.rounds}")
    print(f"| {'attention':32s} | prefill tok/s | decode P=1 | decode P=4 (sum) |")
    print(f"|{'-' * 34}|---------------|------------|------------------|")
    for name in CONFIGS:
        cells = [best[(name, 1)][0], best[(name, 1)][1], best[(name, 4)][1]]
        refs = [best[(base, 1)][0], best[(base, 1)][1], best[(base, 4)][1]]
        text = [f"{value:.0f} ({value / ref:.2f}×)" for value, ref in zip(cells, refs)]
        print(f"| {name:32s} | {text[0]:13s} | {text[1]:10s} | {text[2]:16s} |")


if __name__ == "__main__":
    main()
