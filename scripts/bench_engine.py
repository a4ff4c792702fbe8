#!/usr/bin/env python3
"""Kronk's continuous-batching Engine against `llama-batched-bench`, in one run.

Both use the same libs, model, threads, context size and batch sizes; runs are
interleaved (ours at P=1, llama-batched-bench at P=1, ours at P=4 ...; the next round
starts with llama-batched-bench) so machine noise hits both alike.
For each parallelism P (default 1, 4, 8) both prefill P distinct prompts of PP random
tokens in one batch, then decode TG steps of P tokens each:

  decode t/s  P*TG / time of the TG decode steps (llama-batched-bench's S_TG). Ours is
              timed from the moment every sequence has its first token (sampled from the
              prefill) to the last Finish, with max_tokens = TG+1, so both time exactly TG
              decode steps; ours also samples (greedy chain in C), detokenizes and runs the
              stop matcher per token, the reference decodes random tokens without sampling.
  prefill t/s P*PP / prefill time (informational; ours includes admission and the first sample).
Ours runs in the engine's steady state: after one unmeasured run at the largest P, idle
slots keep their KV for prefix reuse (the table shows how many cells); the reference
clears its KV before each P.

Other targets, ours only:
  warm TTFT   second turn of a chat with a cached ~1,000-token history (prompt = history +
              turn-1 answer + a new message) vs the same length with nothing cached, on a
              fresh warmed-up engine: warm/cold <= 0.25.
  python      Python time per step / (Python + llama_decode time) at the largest P, from
              Engine.stats(): <= 0.05.
Target for decode t/s: ours >= 0.95 x llama-batched-bench at every P.

    python scripts/bench_engine.py [--model PATH] [--threads 2] [--rounds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _bench_common import (
    Check,
    check_model,
    default_model,
    find_tool,
    int_list,
    lib_dir,
    median,
    positive_int,
    print_checks,
    print_table,
    ratio,
    tool_env,
    tools_dir,
    write_json,
)

from kronk.engine.loop import Engine, EngineConfig
from kronk.engine.types import Finish, GenerateRequest, SamplingParams, TextDelta
from kronk.llama import Model
from kronk.llama.context import ContextParams

DECODE_TARGET = 0.95
TTFT_TARGET = 0.25
PYTHON_TARGET = 0.05
WAIT_S = 1800.0
"""Longest wait for one engine job before the script gives up (never hang)."""


@dataclass(slots=True)
class Sizes:
    pp: int
    tg: int
    parallel: list[int]
    ctx: int
    history: int
    answer: int
    new_turn: int


# --- the reference -------------------------------------------------------------------------


def batched_bench(tool: Path, libs: Path, model: Path, sizes: Sizes, threads: int, p: int) -> dict[str, float]:
    """One llama-batched-bench run at P parallel sequences: {"tg": S_TG t/s, "pp": S_PP t/s}."""
    cmd = [
        str(tool), "-m", str(model), "-c", str(sizes.ctx), "-b", "2048", "-ub", "512",
        "-npp", str(sizes.pp), "-ntg", str(sizes.tg), "-npl", str(p),
        "-t", str(threads), "-tb", str(threads), "-kvu", "-fa", "auto", "--output-format", "jsonl",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tool_env(libs), timeout=WAIT_S, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"llama-batched-bench failed ({proc.returncode}): {proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if int(row["pl"]) == p:
                return {"tg": float(row["speed_tg"]), "pp": float(row["speed_pp"])}
    raise SystemExit(f"llama-batched-bench skipped P={p} (is --ctx large enough?): {proc.stdout[-1000:]}")


# --- ours ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Recorder:
    """A job's sink: keeps the finish time, usage and (optionally) the token ids."""

    done: threading.Event = field(default_factory=threading.Event)
    finish: Finish | None = None
    finished_at: float = 0.0
    error: BaseException | None = None
    token_ids: list[int] = field(default_factory=list)

    def __call__(self, item: Any) -> None:
        if isinstance(item, TextDelta):
            if item.logprobs:
                self.token_ids.extend(entry.token_id for entry in item.logprobs)
        elif isinstance(item, Finish):
            self.finished_at = time.perf_counter()
            self.finish = item
            self.done.set()
        elif isinstance(item, BaseException):
            self.error = item
            self.done.set()

    def wait(self) -> Finish:
        if not self.done.wait(WAIT_S):
            raise SystemExit(f"an engine job did not finish within {WAIT_S:.0f}s")
        if self.error is not None:
            raise SystemExit(f"an engine job failed: {self.error!r}")
        assert self.finish is not None
        return self.finish


def greedy(prompt: list[int], max_tokens: int, logprobs: bool = False) -> GenerateRequest:
    return GenerateRequest(
        prompt_tokens=prompt, sampling=SamplingParams(temperature=0.0), max_tokens=max_tokens,
        ignore_eos=True, logprobs=logprobs,
    )


def run_job(engine: Engine, request: GenerateRequest) -> Recorder:
    recorder = Recorder()
    engine.submit(request, recorder)
    recorder.wait()
    return recorder


class Ours:
    """Our Engine with the reference's settings, and random prompts of exact lengths."""

    def __init__(self, model_path: Path, sizes: Sizes, threads: int) -> None:
        self.model = Model.load(model_path)
        self.sizes = sizes
        self.config = EngineConfig(ContextParams(
            n_ctx=sizes.ctx, n_seq_max=max(sizes.parallel), n_batch=2048, n_ubatch=512,
            n_threads=threads, n_threads_batch=threads, flash_attn="auto",
        ))
        self.rng = np.random.default_rng(1234)
        self.engine = Engine(self.model, self.config)
        run_job(self.engine, greedy(self.prompt(16), 2))  # warm-up, as llama-batched-bench does
        # Steady state of a server that has served P requests at once: idle slots keep their
        # KV (for prefix reuse), so every measured run, round 1 included, starts alike.
        self.parallel(max(sizes.parallel))

    def close(self) -> None:
        self.engine.close()
        self.model.close()

    def prompt(self, n: int) -> list[int]:
        """n random ordinary tokens; never the same twice, so nothing is served from a cache."""
        return [int(t) for t in self.rng.integers(100, self.model.vocab.n_tokens - 100, size=n)]

    def parallel(self, p: int) -> dict[str, float]:
        """P prompts admitted together, prefilled in one batch, then TG decode steps."""
        engine, sizes = self.engine, self.sizes
        requests = [greedy(self.prompt(sizes.pp), sizes.tg + 1) for _ in range(p)]
        recorders = [Recorder() for _ in range(p)]
        before = engine.stats()
        # Submitting from the engine thread (between steps) admits all P before the next
        # step, so they are prefilled in one batch, as llama-batched-bench does.
        jobs = engine.call(lambda: [engine.submit(r, s) for r, s in zip(requests, recorders)]).result(WAIT_S)
        finishes = [rec.wait() for rec in recorders]
        after = engine.stats()
        submitted = min(job.submitted_at for job in jobs)
        first = max(job.submitted_at + f.usage.time_to_first_token_ms / 1000.0 for job, f in zip(jobs, finishes))
        end = max(rec.finished_at for rec in recorders)
        decoded = sum(f.usage.completion_tokens - 1 for f in finishes)
        if decoded != p * sizes.tg:
            raise SystemExit(f"expected {p * sizes.tg} decoded tokens at P={p}, got {decoded}")
        python_s = after.python_seconds - before.python_seconds
        decode_s = after.decode_seconds - before.decode_seconds
        steps = after.steps - before.steps
        return {
            "tg": decoded / (end - first),
            "pp": p * sizes.pp / (first - submitted),
            "python_share": python_s / (python_s + decode_s),
            "python_ms_per_step": 1000.0 * python_s / steps,
            "decode_ms_per_step": 1000.0 * decode_s / steps,
            "idle_kv_cells": float(before.kv_cells_used),
        }

    def ttft(self) -> dict[str, float]:
        """Cold vs second-turn TTFT on a fresh, warmed-up engine with nothing cached."""
        sizes = self.sizes
        total = sizes.history + sizes.answer + sizes.new_turn
        with Engine(self.model, self.config) as engine:
            run_job(engine, greedy(self.prompt(16), 2))
            cold = run_job(engine, greedy(self.prompt(total), 1)).wait()
            history = self.prompt(sizes.history)
            turn1 = run_job(engine, greedy(history, sizes.answer, logprobs=True))
            prompt2 = history + turn1.token_ids + self.prompt(sizes.new_turn)
            warm = run_job(engine, greedy(prompt2, 1)).wait()
        if len(prompt2) != total:
            raise SystemExit(f"turn 1 produced {len(turn1.token_ids)} token ids, expected {sizes.answer}")
        return {
            "cold_ms": cold.usage.time_to_first_token_ms,
            "warm_ms": warm.usage.time_to_first_token_ms,
            "warm_cached_tokens": float(warm.usage.cached_tokens),
            "prompt_tokens": float(total),
        }


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model(), help="GGUF model (default: SmolLM2-135M)")
    parser.add_argument("--tools-dir", type=Path, help="folder with llama-batched-bench (default: <lib dir>/bin)")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--pp", type=positive_int, default=128, help="prompt tokens per sequence")
    parser.add_argument("--tg", type=positive_int, default=128, help="decode steps per sequence")
    parser.add_argument("--parallel", type=int_list, default=[1, 4, 8], help="parallel sequences, e.g. 1,4,8")
    parser.add_argument("--ctx", type=positive_int, default=4096, help="KV cells (both sides)")
    parser.add_argument("--history", type=positive_int, default=1000, help="cached history tokens for the TTFT test")
    parser.add_argument("--ttft-reps", type=positive_int, default=2, help="TTFT pairs per round")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="1 round, small sizes (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.pp, args.tg, args.history, args.ttft_reps = 1, 32, 32, 256, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes(args.pp, args.tg, sorted(set(args.parallel)), args.ctx, args.history, 32, 24)
    need = max(sizes.parallel) * (sizes.pp + sizes.tg + 1)
    if need > sizes.ctx or 2 * (sizes.history + sizes.answer + sizes.new_turn) + 32 > sizes.ctx:
        raise SystemExit(f"--ctx {sizes.ctx} is too small for these sizes (needs at least {need})")
    model = check_model(args.model)
    libs = lib_dir()
    tool = find_tool(tools_dir(args.tools_dir), "llama-batched-bench")
    print(f"model {model.name}, libs {libs}, threads {args.threads}, PP {sizes.pp}, TG {sizes.tg}, "
          f"P {sizes.parallel}, ctx {sizes.ctx}, {args.rounds} round(s)", flush=True)
    ours = Ours(model, sizes, args.threads)
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(args.rounds):
            mine: dict[int, dict[str, float]] = {}
            ref: dict[int, dict[str, float]] = {}
            for p in sizes.parallel:  # interleaved per P: the two runs of a pair are seconds apart
                if index % 2 == 0:  # who goes first alternates, so a drifting load favours neither
                    mine[p] = ours.parallel(p)
                    ref[p] = batched_bench(tool, libs, model, sizes, args.threads, p)
                else:
                    ref[p] = batched_bench(tool, libs, model, sizes, args.threads, p)
                    mine[p] = ours.parallel(p)
            ttfts = [ours.ttft() for _ in range(args.ttft_reps)]
            row = {"ours": mine, "ref": ref, "ttft": ttfts}
            rounds.append(row)
            decode = "  ".join(f"P{p}: {mine[p]['tg']:.1f}/{ref[p]['tg']:.1f}" for p in sizes.parallel)
            ttft = "  ".join(f"{t['warm_ms']:.0f}/{t['cold_ms']:.0f}" for t in ttfts)
            print(f"round {index + 1}: decode t/s ours/ref {decode} | TTFT ms warm/cold {ttft}", flush=True)
    finally:
        ours.close()
    checks, summary = report(rounds, sizes)
    ok = print_checks(checks, theirs_label="baseline", ours_label="kronk")
    if args.json:
        write_json(args.json, {
            "model": model, "libs": libs, "threads": args.threads, "sizes": asdict(sizes),
            "rounds": rounds, "summary": summary, "checks": [c.as_dict() for c in checks], "passed": ok,
        })
    return 0 if ok else 1


def report(rounds: list[dict[str, Any]], sizes: Sizes) -> tuple[list[Check], dict[str, Any]]:
    """Print the per-round tables and build the target checks (medians of per-round ratios)."""
    rows = []
    for i, r in enumerate(rounds, 1):
        for p in sizes.parallel:
            o, t = r["ours"][p], r["ref"][p]
            rows.append([f"{i}", p, t["tg"], o["tg"], ratio(o["tg"], t["tg"]), t["pp"], o["pp"],
                         100 * o["python_share"], o["python_ms_per_step"], o["decode_ms_per_step"],
                         int(o["idle_kv_cells"])])
    print_table(["round", "P", "ref tg t/s", "ours tg t/s", "ratio", "ref pp t/s", "ours pp t/s",
                 "py %", "py ms/step", "decode ms/step", "KV at start"], rows,
                title="Per round (decode = generation phase only; KV at start = cells idle slots held)")
    ttft_rows = [[f"{i}", t["cold_ms"], t["warm_ms"], t["warm_ms"] / t["cold_ms"], int(t["warm_cached_tokens"]),
                  int(t["prompt_tokens"])]
                 for i, r in enumerate(rounds, 1) for t in r["ttft"]]
    print_table(["round", "cold TTFT ms", "warm TTFT ms", "warm/cold", "cached", "prompt"], ttft_rows,
                title=f"Second-turn TTFT with a {sizes.history}-token history")
    checks: list[Check] = []
    summary: dict[str, Any] = {"decode": {}, "prefill": {}}
    for p in sizes.parallel:
        ours_tg = median(r["ours"][p]["tg"] for r in rounds)
        ref_tg = median(r["ref"][p]["tg"] for r in rounds)
        value = median(ratio(r["ours"][p]["tg"], r["ref"][p]["tg"]) for r in rounds)
        checks.append(Check(f"decode t/s P={p}", ours_tg, ref_tg, value, ">=", DECODE_TARGET))
        summary["decode"][p] = {"ours": ours_tg, "ref": ref_tg, "ratio": value}
        summary["prefill"][p] = {
            "ours": median(r["ours"][p]["pp"] for r in rounds),
            "ref": median(r["ref"][p]["pp"] for r in rounds),
            "ratio": median(ratio(r["ours"][p]["pp"], r["ref"][p]["pp"]) for r in rounds),
        }
    pairs = [t for r in rounds for t in r["ttft"]]
    cold = median(t["cold_ms"] for t in pairs)
    warm = median(t["warm_ms"] for t in pairs)
    ttft_ratio = median(t["warm_ms"] / t["cold_ms"] for t in pairs)
    checks.append(Check("warm/cold TTFT ms", warm, cold, ttft_ratio, "<=", TTFT_TARGET))
    top = max(sizes.parallel)
    share = median(r["ours"][top]["python_share"] for r in rounds)
    checks.append(Check(f"python share P={top}", share, float("nan"), share, "<=", PYTHON_TARGET))
    summary["ttft"] = {"cold_ms": cold, "warm_ms": warm, "ratio": ttft_ratio}
    summary["python_share"] = share
    return checks, summary


if __name__ == "__main__":
    sys.exit(main())
