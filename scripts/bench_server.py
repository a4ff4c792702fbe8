#!/usr/bin/env python3
"""Kronk's HTTP server against `llama-server` under the same streaming load, in one run.

Each round starts our server (`python -m kronk server start`) and llama-server, then runs
every case on one and right after on the other, who goes first alternating from case to
case and round to round. Only one server is driven at a time (the other sits idle), so
they never compete for the cores, and each pair of measurements is taken seconds apart,
so the drift of a shared machine hits both alike. Both get the same model, libs, slots
(8), threads, context (8192 cells, unified KV) and flash-attention setting. A case is a
mode and a concurrency level C (default 1, 4, 8):

  sustained  `requests-per-slot x C` requests, C at a time, `max-tokens` (128) each
  wave       a single wave: C requests started together, `wave-tokens` (96) each

Request i of a case has the same messages on both servers: streaming POST
/v1/chat/completions, greedy (temperature 0), ignore_eos, stream_options.include_usage,
so both generate the same number of tokens. Measured per case:

  tokens/s   completion tokens (from the usage chunk) / wall time of the case
  TTFT       request sent -> first non-empty content delta; mean and p95

Targets (issue 14): ours >= 1.05 x llama-server tokens/s and ours p95 TTFT <= 1.0 x
llama-server's, in every case (medians of the per-round ratios).

    python scripts/bench_server.py [--mode both|sustained|wave] [--rounds 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from _bench_common import (
    Check,
    check_model,
    default_model,
    find_tool,
    int_list,
    lib_dir,
    median,
    percentile,
    positive_int,
    print_checks,
    print_table,
    ratio,
    tools_dir,
    write_json,
)
from _bench_http import (
    BenchError,
    Outcome,
    RunningServer,
    ServerSpec,
    client_session,
    llama_server,
    our_server,
    running,
    stream_chat,
    warm_up,
)

TPS_TARGET = 1.05
TTFT_TARGET = 1.0
MODES = ("sustained", "wave")
TOPICS = (
    "a lighthouse keeper", "a lost robot", "the first city on Mars", "a river that flows uphill",
    "a chess game between two ghosts", "a baker who can taste colours", "a library with no exits",
    "the last tree in a desert", "a cat that runs a railway", "a storm that keeps a diary",
)


@dataclass(slots=True, frozen=True)
class Case:
    """One measured load: a mode at a concurrency level, with its request count and length."""

    mode: Literal["sustained", "wave"]
    level: int
    requests: int
    max_tokens: int

    @property
    def key(self) -> str:
        return f"{self.mode} C={self.level}"


def cases_for(modes: list[str], levels: list[int], per_slot: int, max_tokens: int, wave_tokens: int) -> list[Case]:
    """Sustained cases first (as before), then the single waves, each at every level."""
    out: list[Case] = []
    for mode in modes:
        for level in levels:
            if mode == "sustained":
                out.append(Case("sustained", level, per_slot * level, max_tokens))
            else:
                out.append(Case("wave", level, level, wave_tokens))
    return out


def messages_for(case: Case, index: int) -> list[dict[str, str]]:
    """The same messages for request `index` of `case` on both servers; the modes use different
    prompts, so a wave never starts from what a sustained run left in a prompt cache."""
    topic = TOPICS[(index + case.level) % len(TOPICS)]
    label = "Story" if case.mode == "sustained" else "Wave story"
    return [{"role": "user", "content": f"{label} {case.level}.{index}: write a long, detailed story about {topic}."}]


# --- the load (asyncio client) ----------------------------------------------------------------


async def run_case(url: str, case: Case) -> dict[str, Any]:
    """`case.requests` requests, `case.level` at a time; aggregate t/s and TTFT stats. A wave is
    the case where every worker sends exactly one request, so all C start together."""
    indices = iter(range(case.requests))
    outcomes: list[Outcome] = []
    async with client_session(limit=case.level) as session:

        async def worker() -> None:
            for index in indices:
                outcomes.append(await stream_chat(session, url, messages_for(case, index), case.max_tokens,
                                                  ignore_eos=True))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(case.level)))
        wall = time.perf_counter() - start
    tokens = sum(o.tokens for o in outcomes)
    ttfts = [o.ttft_s * 1000.0 for o in outcomes if not math.isnan(o.ttft_s)]
    return {
        "requests": case.requests,
        "tokens": tokens,
        "short_requests": sum(1 for o in outcomes if o.tokens != case.max_tokens),
        "wall_s": wall,
        "tps": tokens / wall,
        "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else math.nan,
        "ttft_p95_ms": percentile(ttfts, 95),
    }


async def drive(servers: list[RunningServer], cases: list[Case], first: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every case on both servers back to back, who goes first alternating per case."""
    await warm_up(servers)
    results: dict[str, dict[str, dict[str, Any]]] = {server.spec.name: {} for server in servers}
    for position, case in enumerate(cases):
        order = servers if (first + position) % 2 == 0 else servers[::-1]
        for server in order:
            try:
                results[server.spec.name][case.key] = await run_case(server.url, case)
            except (BenchError, aiohttp.ClientError, TimeoutError) as exc:
                raise BenchError(f"{server.spec.name}: {exc!r}\n--- log tail ---\n{server.log_tail()}") from None
    return results


def bench_round(specs: tuple[ServerSpec, ...], cases: list[Case], log_dir: Path, first: int) -> dict[str, Any]:
    """Both servers started (each idle while the other is driven), then driven case by case."""
    with running(specs, log_dir) as servers:
        return asyncio.run(drive(servers, cases, first))


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model(), help="GGUF model (default: SmolLM2-135M)")
    parser.add_argument("--tools-dir", type=Path, help="folder with llama-server (default: <lib dir>/bin)")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--slots", type=positive_int, default=8)
    parser.add_argument("--ctx-size", type=positive_int, default=8192)
    parser.add_argument("--mode", choices=("both", *MODES), default="both",
                        help="sustained load, a single wave per level, or both (default)")
    parser.add_argument("--concurrency", type=int_list, default=[1, 4, 8], help="levels, e.g. 1,4,8")
    parser.add_argument("--requests-per-slot", type=positive_int, default=3,
                        help="sustained: requests per level = this x the concurrency")
    parser.add_argument("--max-tokens", type=positive_int, default=128, help="sustained: tokens per request")
    parser.add_argument("--wave-tokens", type=positive_int, default=96, help="wave: tokens per request")
    parser.add_argument("--spec-type", choices=("off", "ngram"),
                        help="our server's speculative decoding (default: the server's default); llama-server "
                             "runs with its own default, none")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="1 round, 32 tokens, 1 request per slot")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.max_tokens, args.wave_tokens, args.requests_per_slot = 1, 32, 32, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = check_model(args.model)
    libs = lib_dir()
    tool = find_tool(tools_dir(args.tools_dir), "llama-server")
    modes = list(MODES) if args.mode == "both" else [args.mode]
    levels = sorted(set(args.concurrency))
    cases = cases_for(modes, levels, args.requests_per_slot, args.max_tokens, args.wave_tokens)
    print(f"model {model.name}, libs {libs}, threads {args.threads}, slots {args.slots}, ctx {args.ctx_size}, "
          f"levels {levels}, modes {modes} (sustained: {args.requests_per_slot}xC requests of {args.max_tokens} "
          f"tokens; wave: C requests of {args.wave_tokens} tokens), {args.rounds} round(s), "
          f"our spec-type {args.spec_type or 'default'}", flush=True)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kronk-bench-") as tmp:
        home = Path(tmp) / "home"
        extra = ("--spec-type", args.spec_type) if args.spec_type else ()
        specs = (our_server(model, libs, home, args.slots, args.threads, args.ctx_size, extra=extra),
                 llama_server(tool, model, libs, args.slots, args.threads, args.ctx_size))
        try:
            for index in range(args.rounds):
                row = bench_round(specs, cases, Path(tmp), first=index)
                rounds.append(row)
                print(f"round {index + 1}: " + " | ".join(
                    f"{c.key} t/s {row['kronk'][c.key]['tps']:.1f}/{row['llama-server'][c.key]['tps']:.1f} "
                    f"p95 TTFT ms {row['kronk'][c.key]['ttft_p95_ms']:.0f}/"
                    f"{row['llama-server'][c.key]['ttft_p95_ms']:.0f}"
                    for c in cases) + "  (kronk/llama-server)", flush=True)
        except BenchError as exc:
            raise SystemExit(f"benchmark failed: {exc}") from None
    checks, summary = report(rounds, cases)
    ok = print_checks(checks, theirs_label="llama-server", ours_label="kronk")
    if args.json:
        write_json(args.json, {
            "model": model, "libs": libs, "threads": args.threads, "slots": args.slots, "ctx_size": args.ctx_size,
            "levels": levels, "modes": modes, "requests_per_slot": args.requests_per_slot,
            "max_tokens": args.max_tokens, "wave_tokens": args.wave_tokens, "spec_type": args.spec_type,
            "rounds": rounds, "summary": summary, "checks": [c.as_dict() for c in checks], "passed": ok,
        })
    return 0 if ok else 1


def report(rounds: list[dict[str, Any]], cases: list[Case]) -> tuple[list[Check], dict[str, Any]]:
    """Print the paired per-round table and the ratios, and build the checks (medians of
    per-round ratios)."""
    rows = []
    for i, r in enumerate(rounds, 1):
        for c in cases:
            o, t = r["kronk"][c.key], r["llama-server"][c.key]
            rows.append([f"{i}", c.key, t["tps"], o["tps"], ratio(o["tps"], t["tps"]),
                         t["ttft_mean_ms"], o["ttft_mean_ms"], t["ttft_p95_ms"], o["ttft_p95_ms"],
                         ratio(o["ttft_p95_ms"], t["ttft_p95_ms"]), f"{o['short_requests']}/{t['short_requests']}"])
    print_table(["round", "case", "llama t/s", "kronk t/s", "ratio", "llama TTFT", "kronk TTFT",
                 "llama p95", "kronk p95", "p95 ratio", "short k/l"], rows,
                title="Paired rounds (TTFT in ms; 'short' = requests that generated fewer than their max tokens)")
    checks: list[Check] = []
    summary: dict[str, Any] = {}
    for c in cases:
        ours_tps = median(r["kronk"][c.key]["tps"] for r in rounds)
        ref_tps = median(r["llama-server"][c.key]["tps"] for r in rounds)
        tps_ratios = [ratio(r["kronk"][c.key]["tps"], r["llama-server"][c.key]["tps"]) for r in rounds]
        ours_p95 = median(r["kronk"][c.key]["ttft_p95_ms"] for r in rounds)
        ref_p95 = median(r["llama-server"][c.key]["ttft_p95_ms"] for r in rounds)
        p95_ratios = [ratio(r["kronk"][c.key]["ttft_p95_ms"], r["llama-server"][c.key]["ttft_p95_ms"])
                      for r in rounds]
        checks.append(Check(f"tokens/s {c.key}", ours_tps, ref_tps, median(tps_ratios), ">=", TPS_TARGET))
        checks.append(Check(f"p95 TTFT ms {c.key}", ours_p95, ref_p95, median(p95_ratios), "<=", TTFT_TARGET))
        summary[c.key] = {"tps": {"ours": ours_tps, "ref": ref_tps, "ratio": median(tps_ratios),
                                  "round_ratios": tps_ratios},
                          "ttft_p95_ms": {"ours": ours_p95, "ref": ref_p95, "ratio": median(p95_ratios),
                                          "round_ratios": p95_ratios}}
    print_table(["case", "tokens/s ratio per round", "p95 TTFT ratio per round"],
                [[c.key, " ".join(f"{v:.3f}" for v in summary[c.key]["tps"]["round_ratios"]),
                  " ".join(f"{v:.3f}" for v in summary[c.key]["ttft_p95_ms"]["round_ratios"])] for c in cases],
                title="Ratios kronk/llama-server, every paired round")
    return checks, summary


if __name__ == "__main__":
    sys.exit(main())
