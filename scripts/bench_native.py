#!/usr/bin/env python3
"""Prefill and decode speed of Kronk's low-level SDK against `llama-bench`, in one run.

Both use the same libraries, model and thread count; rounds are interleaved and the
side that goes first alternates (llama-bench, ours | ours, llama-bench | ...) so machine
noise hits both alike; ratios are medians of the per-round ratios. Ours:
  pp:  one llama_decode of a 512-token batch into an empty KV cache (tokens/s),
  tg:  128 single-token decodes of given tokens, as llama-bench's tg128 does (tokens/s),
  tg+sample (informational): the same, each token sampled by a greedy sampler chain
       in llama.cpp and fed back, as real generation does.
Targets: ours >= 0.97 x llama-bench for pp and tg.

    python scripts/bench_native.py [--model PATH] [--threads 2] [--rounds 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TARGET = 0.97


def default_model() -> Path:
    folder = Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))
    return folder / "SmolLM2-135M-Instruct-Q4_1.gguf"


def tools_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    from kronk._native.loader import find_lib_dir

    lib_dir = find_lib_dir()
    return lib_dir / "bin" if (lib_dir / "bin").exists() else lib_dir


def llama_bench(tools: Path, model: Path, threads: int, pp: int, tg: int, reps: int) -> dict[str, float]:
    cmd = [
        str(tools / "llama-bench"), "-m", str(model), "-p", str(pp), "-n", str(tg), "-t", str(threads),
        "-r", str(reps), "-o", "json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"llama-bench failed: {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout)
    out = {}
    for row in rows:
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            out["pp"] = float(row["avg_ts"])
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            out["tg"] = float(row["avg_ts"])
    return out


class Ours:
    def __init__(self, model_path: Path, threads: int, pp: int) -> None:
        from kronk.llama import Batch, Context, Model, SamplerChain

        self.model = Model.load(model_path)
        self.ctx = Context(self.model, n_ctx=max(1024, pp + 256), n_batch=2048, n_ubatch=512, n_threads=threads)
        self.batch = Batch(2048)
        self.chain = SamplerChain(self.model).greedy()
        rng = np.random.default_rng(0)
        self.prompt = rng.integers(100, self.model.vocab.n_tokens - 100, size=pp).astype(np.int32)
        self._warm()

    def _warm(self) -> None:
        self.ctx.clear()
        self.batch.clear()
        self.batch.add_sequence(self.prompt[:32], 0, 0, True)
        self.ctx.decode(self.batch)
        self.ctx.clear()

    def prefill(self, reps: int) -> float:
        speeds = []
        for _ in range(reps):
            self.ctx.clear()
            self.batch.clear()
            self.batch.add_sequence(self.prompt, 0, 0, True)
            start = time.perf_counter()
            self.ctx.decode(self.batch)
            speeds.append(len(self.prompt) / (time.perf_counter() - start))
        return statistics.mean(speeds)

    def decode_given(self, n: int, reps: int) -> float:
        """Decode n given tokens one at a time (no sampling), as llama-bench's tg does."""
        speeds = []
        ctx, batch, tokens = self.ctx, self.batch, [int(t) for t in self.prompt]
        for _ in range(reps):
            ctx.clear()
            batch.clear()
            batch.add(tokens[0], 0, 0, True)
            ctx.decode(batch)
            start = time.perf_counter()
            for pos in range(1, n + 1):
                batch.clear()
                batch.add(tokens[pos % len(tokens)], pos, 0, True)
                ctx.decode(batch)
            speeds.append(n / (time.perf_counter() - start))
        return statistics.mean(speeds)

    def decode(self, n: int, reps: int) -> float:
        """Generate n tokens: greedy sampling in C, each token fed back."""
        speeds = []
        ctx, batch, chain = self.ctx, self.batch, self.chain
        for _ in range(reps):
            ctx.clear()
            batch.clear()
            row = batch.add(int(self.prompt[0]), 0, 0, True)
            ctx.decode(batch)
            start = time.perf_counter()
            for pos in range(1, n + 1):
                token = chain.sample(ctx, row)
                batch.clear()
                row = batch.add(token, pos, 0, True)
                ctx.decode(batch)
            speeds.append(n / (time.perf_counter() - start))
        return statistics.mean(speeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--reps", type=int, default=3, help="repetitions inside each round (both sides)")
    parser.add_argument("--pp", type=int, default=512)
    parser.add_argument("--tg", type=int, default=128)
    parser.add_argument("--tools-dir")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.reps = 1, 1
    if not args.model.exists():
        raise SystemExit(f"model not found: {args.model} (run scripts/fetch_models.py)")
    tools = tools_dir(args.tools_dir)
    ours = Ours(args.model, args.threads, args.pp)
    rows: list[dict[str, float]] = []
    for index in range(args.rounds):
        ref: dict[str, float] = {}
        if index % 2 == 0:
            ref = llama_bench(tools, args.model, args.threads, args.pp, args.tg, args.reps)
        mine = {
            "ours_pp": ours.prefill(args.reps),
            "ours_tg": ours.decode_given(args.tg, args.reps),
            "ours_tg_sample": ours.decode(args.tg, args.reps),
        }
        if index % 2 == 1:
            ref = llama_bench(tools, args.model, args.threads, args.pp, args.tg, args.reps)
        row = {"ref_pp": ref["pp"], "ref_tg": ref["tg"], **mine}
        rows.append(row)
        print(
            f"round {index + 1}: pp{args.pp} llama-bench {row['ref_pp']:7.1f} ours {row['ours_pp']:7.1f} | "
            f"tg{args.tg} llama-bench {row['ref_tg']:6.1f} ours {row['ours_tg']:6.1f} "
            f"(+sampling {row['ours_tg_sample']:6.1f}) t/s",
            flush=True,
        )
    summary = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    ratios = {
        "prefill": statistics.median(r["ours_pp"] / r["ref_pp"] for r in rows),
        "decode": statistics.median(r["ours_tg"] / r["ref_tg"] for r in rows),
        "decode_with_sampling": statistics.median(r["ours_tg_sample"] / r["ref_tg"] for r in rows),
    }
    print()
    print(f"{'metric':<26}{'llama-bench':>12}{'kronk':>10}{'ratio':>8}  target")
    ok = True
    for name, ratio_key, ref_key, our_key, target in (
        (f"prefill pp{args.pp} t/s", "prefill", "ref_pp", "ours_pp", TARGET),
        (f"decode tg{args.tg} t/s", "decode", "ref_tg", "ours_tg", TARGET),
        (f"tg{args.tg} + greedy sampling", "decode_with_sampling", "ref_tg", "ours_tg_sample", None),
    ):
        ratio = ratios[ratio_key]
        if target is None:
            verdict = "(informational)"
        else:
            passed = ratio >= target
            ok &= passed
            verdict = f">= {target} {'PASS' if passed else 'FAIL'}"
        print(f"{name:<26}{summary[ref_key]:>12.1f}{summary[our_key]:>10.1f}{ratio:>8.3f}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rows, "median": summary, "ratios": ratios, "threads": args.threads},
                                        indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
