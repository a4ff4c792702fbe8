#!/usr/bin/env python3
"""Speculative decoding: Kronk's server against llama-server's own speculation, in one run.

Columns (each a server started with the same model, libs, slots, threads and context):

  kronk                 `kronk server start --spec-type off`
  kronk ngram           `--spec-type ngram` (prompt lookup: drafts from the prompt and the answer so far)
  kronk draft           `--spec-type draft --draft-model D` (D: --draft-model, default the model itself)
  llama none            `llama-server --spec-type none`
  llama ngram-simple    `--spec-type ngram-simple`
  llama ngram-mod       `--spec-type ngram-mod`
  llama draft-simple    `--spec-type draft-simple -md D`

Each round starts every column's server (idle until driven), then sends every prompt of the
three workloads (scripts/_spec_workloads.py: repeat-heavy, quoting, free chat) to each column
in turn, one request at a time, who goes first rotating from prompt to prompt and round to
round, so each column's measurements are taken seconds apart from the others'. Requests are
streaming, greedy (temperature 0, seed 42) and stop at the end of the answer or max_tokens.

  tokens/s   generation rate: (completion tokens - 1) / (last content - first content),
             summed over a workload's prompts (prefill and queueing left out)
  identical  the greedy text of a kronk spec column is the same as the kronk column's

Targets (issue 14): repeat-heavy >= 1.5 x kronk without speculation and >= 1.1 x llama-server's
best spec mode (both with our best spec mode); free chat >= 0.98 x kronk without speculation
(every spec mode); identical greedy text in all three workloads (every spec mode). Ratios are
medians of per-round ratios. When this build of kronk has no --spec-type, only the baseline
columns run and the spec targets read FAIL (not measured).

    python scripts/bench_spec.py [--model PATH] [--draft-model PATH] [--rounds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _bench_common as bc
import _bench_http as bh
import aiohttp
from _spec_workloads import WORKLOADS, Workload
from prometheus_client.parser import text_string_to_metric_families

BASELINE = "kronk"
LLAMA_NONE = "llama none"
REPEAT, CHAT = "repeat-heavy", "free chat"
SPEEDUP_TARGET = 1.5
VS_LLAMA_TARGET = 1.1
CHAT_TARGET = 0.98


@dataclass(frozen=True, slots=True)
class Column:
    """One server configuration: `spec` is the speculation mode (None: off)."""

    name: str
    ours: bool
    spec: str | None
    extra: tuple[str, ...]


def columns_for(draft: Path, spec_flags: bool, draft_flag: bool, with_draft: bool,
                deterministic: bool = False) -> list[Column]:
    """The columns this build can run: ours with speculation only when its flags exist."""
    ours = ("--deterministic",) if deterministic else ()
    cols = [Column(BASELINE, True, None, (("--spec-type", "off") if spec_flags else ()) + ours)]
    if spec_flags:
        cols.append(Column("kronk ngram", True, "ngram", ("--spec-type", "ngram", *ours)))
        if with_draft and draft_flag:
            cols.append(Column("kronk draft", True, "draft",
                               ("--spec-type", "draft", "--draft-model", str(draft), *ours)))
    cols += [Column(LLAMA_NONE, False, None, ("--spec-type", "none")),
             Column("llama ngram-simple", False, "ngram-simple", ("--spec-type", "ngram-simple")),
             Column("llama ngram-mod", False, "ngram-mod", ("--spec-type", "ngram-mod"))]
    if with_draft:
        md = ("--spec-type", "draft-simple", "-md", str(draft))
        cols.append(Column("llama draft-simple", False, "draft-simple", md))
    return cols


# --- one round -----------------------------------------------------------------------------


def outcome_row(o: bh.Outcome) -> dict[str, Any]:
    row = asdict(o)
    row["gen_tps"] = o.gen_tps
    return row


async def drive(servers: list[bh.RunningServer], workloads: tuple[Workload, ...], max_tokens: int | None,
                first: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every prompt on every server, one request at a time, the first server rotating per prompt."""
    await bh.warm_up(servers)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {s.spec.name: {w.name: [] for w in workloads}
                                                           for s in servers}
    position = first
    async with bh.client_session() as session:
        for workload in workloads:
            for prompt in workload.prompts:
                shift = position % len(servers)
                position += 1
                for server in servers[shift:] + servers[:shift]:
                    tokens = min(prompt.max_tokens, max_tokens or prompt.max_tokens)
                    messages = [{"role": "user", "content": prompt.content}]
                    try:
                        before = await spec_counters(session, server.url)
                        outcome = await bh.stream_chat(session, server.url, messages, tokens)
                        after = await spec_counters(session, server.url)
                    except (bh.BenchError, aiohttp.ClientError, TimeoutError) as exc:
                        tail = server.log_tail()
                        raise bh.BenchError(f"{server.spec.name}: {exc!r}\n--- log tail ---\n{tail}") from None
                    row = outcome_row(outcome)
                    if before is not None and after is not None and "draft_n" not in row["timings"]:
                        row["timings"] = {**row["timings"], "draft_n": after[0] - before[0],
                                          "draft_n_accepted": after[1] - before[1]}
                    results[server.spec.name][workload.name].append(row)
    return results


SPEC_COUNTERS = ("kronk_spec_drafted_tokens_total", "kronk_spec_accepted_tokens_total")


async def spec_counters(session: aiohttp.ClientSession, url: str) -> tuple[float, float] | None:
    """Kronk's draft counters (drafted, accepted; summed over models) from /metrics, so our
    columns' acceptance is reported like llama-server's; None where the server has none."""
    async with session.get(f"{url}/metrics") as response:
        if response.status != 200:
            return None
        return spec_totals(await response.text())


def spec_totals(exposition: str) -> tuple[float, float] | None:
    """(drafted, accepted) summed over models from Prometheus text; None without those counters."""
    samples = [sample for family in text_string_to_metric_families(exposition) for sample in family.samples
               if sample.name in SPEC_COUNTERS]
    if not samples:
        return None
    drafted, accepted = (sum(s.value for s in samples if s.name == name) for name in SPEC_COUNTERS)
    return drafted, accepted


def bench_round(specs: list[bh.ServerSpec], max_tokens: int | None, log_dir: Path, first: int) -> dict[str, Any]:
    with bh.running(specs, log_dir) as servers:
        return asyncio.run(drive(servers, WORKLOADS, max_tokens, first))


# --- the numbers ---------------------------------------------------------------------------


def workload_tps(outcomes: list[dict[str, Any]]) -> float:
    """Generation tokens over generation seconds, summed over a workload's prompts."""
    tokens = sum(o["tokens"] - 1 for o in outcomes if o["tokens"] > 1)
    seconds = sum(o["total_s"] - o["ttft_s"] for o in outcomes if o["tokens"] > 1 and not math.isnan(o["ttft_s"]))
    return tokens / seconds if seconds > 0 else math.nan


def acceptance(outcomes: list[dict[str, Any]]) -> float:
    """Accepted / drafted tokens where the server reported them (llama-server's `timings`; for
    kronk, the change of its kronk_spec_* counters across the request, put into `timings`)."""
    drafted = sum(int(o["timings"].get("draft_n") or 0) for o in outcomes)
    accepted = sum(int(o["timings"].get("draft_n_accepted") or 0) for o in outcomes)
    return accepted / drafted if drafted else math.nan


def tps_of(rounds: list[dict[str, Any]], col: str, workload: str) -> list[float]:
    return [workload_tps(r[col][workload]) for r in rounds]


def round_ratios(rounds: list[dict[str, Any]], col: str, ref: str, workload: str) -> list[float]:
    return [bc.ratio(a, b) for a, b in zip(tps_of(rounds, col, workload), tps_of(rounds, ref, workload))]


def best(rounds: list[dict[str, Any]], cols: list[Column], workload: str) -> str | None:
    """The column with the highest median tokens/s on `workload` among `cols`."""
    scored = [(bc.median(tps_of(rounds, c.name, workload)), c.name) for c in cols]
    scored = [(v, name) for v, name in scored if not math.isnan(v)]
    return max(scored)[1] if scored else None


def same_text(rounds: list[dict[str, Any]], col: str, ref: str, workload: str) -> tuple[int, int]:
    """(identical answers, answers compared) between two columns on one workload, over all rounds."""
    pairs = [(a["text"], b["text"]) for r in rounds for a, b in zip(r[col][workload], r[ref][workload])]
    return sum(1 for a, b in pairs if a == b), len(pairs)


def report(rounds: list[dict[str, Any]], cols: list[Column]) -> tuple[list[bc.Check], dict[str, Any]]:
    """Print the per-round and median tables, the ratios and text identity; build the checks."""
    names = [c.name for c in cols]
    ours_spec = [c for c in cols if c.ours and c.spec]
    llama_spec = [c for c in cols if not c.ours and c.spec]
    wnames = [w.name for w in WORKLOADS]
    bc.print_table(["round / workload", *names],
                   [[f"{i} {w}", *(workload_tps(r[n][w]) for n in names)]
                    for i, r in enumerate(rounds, 1) for w in wnames],
                   title="Tokens/s per round (generation rate, each workload's prompts together)")
    bc.print_table(["workload", *names], [[w, *(bc.median(tps_of(rounds, n, w)) for n in names)] for w in wnames],
                   title="Tokens/s, medians over rounds")
    spec_cols = [c for c in cols if c.spec]
    bc.print_table(["workload", *(c.name for c in spec_cols)],
                   [[w, *(acceptance([o for r in rounds for o in r[c.name][w]]) for c in spec_cols)] for w in wnames],
                   title="draft acceptance (accepted / drafted: llama-server's timings, kronk's /metrics counters)")
    summary: dict[str, Any] = {}
    ratio_rows = []
    for w in wnames:
        theirs = best(rounds, llama_spec, w)
        entry: dict[str, Any] = {"tps": {n: bc.median(tps_of(rounds, n, w)) for n in names},
                                 "llama_best_spec": theirs,
                                 "kronk_vs_llama_none": bc.median(round_ratios(rounds, BASELINE, LLAMA_NONE, w))}
        for c in ours_spec:
            vs_self = round_ratios(rounds, c.name, BASELINE, w)
            vs_llama = round_ratios(rounds, c.name, theirs, w) if theirs else [math.nan]
            identical = same_text(rounds, c.name, BASELINE, w)
            entry[c.name] = {"vs_nospec": bc.median(vs_self), "vs_nospec_rounds": vs_self,
                             "vs_llama_best": bc.median(vs_llama), "vs_llama_best_rounds": vs_llama,
                             "identical": identical[0], "compared": identical[1]}
            ratio_rows.append([w, c.name, bc.median(vs_self), " ".join(f"{v:.3f}" for v in vs_self),
                               theirs or "-", bc.median(vs_llama), f"{identical[0]}/{identical[1]}"])
        summary[w] = entry
    if ratio_rows:
        headers = ["workload", "kronk spec", "/ kronk", "per round", "llama best spec", "/ llama best", "same text"]
        bc.print_table(headers, ratio_rows, title="Ratios (medians of per-round ratios); same text = greedy answers "
                                                  "identical to kronk without speculation")
    bc.print_table(["workload", "kronk / llama none", "same text as llama none"],
                   [[w, summary[w]["kronk_vs_llama_none"], "{}/{}".format(*same_text(rounds, BASELINE, LLAMA_NONE, w))]
                    for w in wnames], title="Without speculation, kronk vs llama-server (informational)")
    return checks_for(rounds, ours_spec, llama_spec, summary), summary


def checks_for(rounds: list[dict[str, Any]], ours_spec: list[Column], llama_spec: list[Column],
               summary: dict[str, Any]) -> list[bc.Check]:
    """The issue's targets; a spec target with no kronk spec column reads NaN, i.e. FAIL."""
    checks: list[bc.Check] = []
    ours_best = best(rounds, ours_spec, REPEAT)
    theirs_best = summary[REPEAT]["llama_best_spec"]
    tps = summary[REPEAT]["tps"]
    if ours_best:
        mine = summary[REPEAT][ours_best]
        checks.append(bc.Check(f"{REPEAT}: {ours_best} / kronk", tps[ours_best], tps[BASELINE], mine["vs_nospec"],
                               ">=", SPEEDUP_TARGET, "t/s"))
        theirs_tps = tps.get(theirs_best, math.nan)
        checks.append(bc.Check(f"{REPEAT}: {ours_best} / {theirs_best}", tps[ours_best], theirs_tps,
                               mine["vs_llama_best"], ">=", VS_LLAMA_TARGET, "t/s"))
    else:
        nan = math.nan
        checks.append(bc.Check(f"{REPEAT}: kronk spec / kronk (not measured)", nan, tps[BASELINE], nan,
                               ">=", SPEEDUP_TARGET, "t/s"))
        checks.append(bc.Check(f"{REPEAT}: kronk spec / {theirs_best} (not measured)", nan,
                               tps.get(theirs_best, nan), nan, ">=", VS_LLAMA_TARGET, "t/s"))
    for c in ours_spec or [Column("kronk spec (not measured)", True, None, ())]:
        chat = summary[CHAT].get(c.name, {})
        chat_tps = summary[CHAT]["tps"]
        checks.append(bc.Check(f"{CHAT}: {c.name} / kronk", chat_tps.get(c.name, math.nan), chat_tps[BASELINE],
                               chat.get("vs_nospec", math.nan), ">=", CHAT_TARGET, "t/s"))
        same = sum(summary[w].get(c.name, {}).get("identical", 0) for w in summary)
        compared = sum(summary[w].get(c.name, {}).get("compared", 0) for w in summary)
        checks.append(bc.Check(f"identical greedy text: {c.name}", same, compared,
                               same / compared if compared else math.nan, ">=", 1.0, "answers"))
    return checks


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=bc.default_model(), help="GGUF model (default: SmolLM2-135M)")
    parser.add_argument("--draft-model", type=Path,
                        help="GGUF draft model with the model's vocabulary (default: the model itself)")
    parser.add_argument("--no-draft", action="store_true", help="leave out the draft-model columns")
    parser.add_argument("--tools-dir", type=Path, help="folder with llama-server (default: <lib dir>/bin)")
    parser.add_argument("--threads", type=bc.positive_int, default=2)
    parser.add_argument("--rounds", type=bc.positive_int, default=3)
    parser.add_argument("--slots", type=bc.positive_int, default=2)
    parser.add_argument("--ctx-size", type=bc.positive_int, default=8192)
    parser.add_argument("--max-tokens", type=bc.positive_int,
                        help="cap every prompt's max_tokens (default: each prompt's own, 192-768)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="1 round, answers capped at 64 tokens")
    parser.add_argument("--deterministic", action="store_true",
                        help="run kronk's columns with --deterministic (batch-invariant attention: greedy text "
                             "identical with and without speculation, at that mode's speed cost)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.max_tokens = 1, args.max_tokens or 64
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = bc.check_model(args.model)
    draft = bc.check_model(args.draft_model) if args.draft_model else model
    libs = bc.lib_dir()
    tool = bc.find_tool(bc.tools_dir(args.tools_dir), "llama-server")
    flags = bh.kronk_server_flags()
    spec_flags, draft_flag = "--spec-type" in flags, "--draft-model" in flags
    if not spec_flags:
        print("speculation not available in this build (kronk server start has no --spec-type): "
              "running the baseline columns only", flush=True)
    cols = columns_for(draft, spec_flags, draft_flag, not args.no_draft, args.deterministic)
    print(f"model {model.name}, draft {draft.name}, libs {libs}, threads {args.threads}, slots {args.slots}, "
          f"ctx {args.ctx_size}, {args.rounds} round(s), kronk deterministic {args.deterministic}, max tokens {args.max_tokens or 'per prompt'}, "
          f"columns: {', '.join(c.name for c in cols)}", flush=True)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kronk-bench-spec-") as tmp:
        # A private KRONK_HOME per kronk column: servers never share a home's files.
        sizes = (args.slots, args.threads, args.ctx_size)
        specs = [bh.our_server(model, libs, Path(tmp) / f"home-{i}", *sizes, c.name, c.extra) if c.ours
                 else bh.llama_server(tool, model, libs, *sizes, c.name, c.extra) for i, c in enumerate(cols)]
        try:
            for index in range(args.rounds):
                row = bench_round(specs, args.max_tokens, Path(tmp), first=index)
                rounds.append(row)
                print(f"round {index + 1}: " + " | ".join(
                    f"{w.name} " + " ".join(f"{workload_tps(row[c.name][w.name]):.1f}" for c in cols)
                    for w in WORKLOADS) + "  (t/s, columns in order)", flush=True)
        except bh.BenchError as exc:
            raise SystemExit(f"benchmark failed: {exc}") from None
    checks, summary = report(rounds, cols)
    ok = bc.print_checks(checks, theirs_label="reference", ours_label="kronk spec")
    if not spec_flags:
        print("speculation not available in this build: the spec targets were not measured")
    if args.json:
        bc.write_json(args.json, {
            "model": model, "draft_model": draft, "libs": libs, "threads": args.threads, "slots": args.slots,
            "ctx_size": args.ctx_size, "max_tokens": args.max_tokens, "speculation_available": spec_flags,
            "columns": [asdict(c) for c in cols], "rounds": rounds, "summary": summary,
            "checks": [c.as_dict() for c in checks], "passed": ok,
        })
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
