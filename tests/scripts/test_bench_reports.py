"""The benchmark scripts' own logic, without running a benchmark: the streaming client's
parsing (against a loopback SSE server), the server bench's cases, and bench_spec's columns,
rates, ratios and targets, including a build without speculation (targets not measured)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _bench_http as bh  # noqa: E402
import bench_server  # noqa: E402
import bench_spec  # noqa: E402
from _spec_workloads import CODE_FILE, WORKLOADS  # noqa: E402


def sse(*events: dict | str) -> bytes:
    return b"".join(b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
                    for e in events)


async def serve(aiohttp_server, body: bytes, status: int = 200):
    """A loopback server answering every chat request with `body`; also returns the request bodies."""
    bodies: list[dict] = []

    async def chat(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(body=body, status=status, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = await aiohttp_server(app, host="127.0.0.1")
    return server, bodies


async def test_stream_chat_joins_text_and_reads_usage_and_timings(aiohttp_server) -> None:
    body = sse({"choices": [{"delta": {"role": "assistant"}}]},
               {"choices": [{"delta": {"content": "Hel"}}]},
               {"choices": [{"delta": {"content": "lo"}}]},
               {"choices": [], "usage": {"completion_tokens": 3}, "timings": {"draft_n": 4, "draft_n_accepted": 3}},
               "[DONE]")
    server, bodies = await serve(aiohttp_server, body)
    async with bh.client_session() as session:
        out = await bh.stream_chat(session, str(server.make_url("")).rstrip("/"), [{"role": "user", "content": "x"}],
                                   16, ignore_eos=True)
    assert (out.text, out.tokens, out.content_chunks) == ("Hello", 3, 2)
    assert out.timings == {"draft_n": 4, "draft_n_accepted": 3}
    assert 0 <= out.ttft_s <= out.total_s
    assert bodies[0]["temperature"] == 0 and bodies[0]["max_tokens"] == 16 and bodies[0]["ignore_eos"] is True


async def test_stream_chat_error_event_and_status_raise(aiohttp_server) -> None:
    server, _ = await serve(aiohttp_server, sse({"error": {"message": "boom"}}))
    async with bh.client_session() as session:
        with pytest.raises(bh.BenchError, match="boom"):
            await bh.stream_chat(session, str(server.make_url("")).rstrip("/"), [], 4)
    server, _ = await serve(aiohttp_server, b'{"error": "no"}', status=400)
    async with bh.client_session() as session:
        with pytest.raises(bh.BenchError, match="400"):
            await bh.stream_chat(session, str(server.make_url("")).rstrip("/"), [], 4)


def test_gen_tps_leaves_out_the_first_token() -> None:
    assert bh.Outcome(1.0, 3.0, 21, 21, "").gen_tps == pytest.approx(10.0)
    assert math.isnan(bh.Outcome(1.0, 1.0, 1, 1, "").gen_tps)


def test_server_cases_and_wave_prompts() -> None:
    cases = bench_server.cases_for(["sustained", "wave"], [1, 4], per_slot=3, max_tokens=128, wave_tokens=96)
    assert [(c.key, c.requests, c.max_tokens) for c in cases] == [
        ("sustained C=1", 3, 128), ("sustained C=4", 12, 128), ("wave C=1", 1, 96), ("wave C=4", 4, 96)]
    assert bench_server.messages_for(cases[0], 0) != bench_server.messages_for(cases[2], 0)


def test_workloads_are_the_issues() -> None:
    assert len(CODE_FILE.splitlines()) == 60
    assert [w.name for w in WORKLOADS] == ["repeat-heavy", "quoting", "free chat"]


def test_columns_without_speculation_are_the_baseline() -> None:
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=False, draft_flag=False, with_draft=True)
    assert [c.name for c in cols] == ["kronk", "llama none", "llama ngram-simple", "llama ngram-mod",
                                      "llama draft-simple"]
    assert cols[0].extra == () and cols[-1].extra == ("--spec-type", "draft-simple", "-md", "d.gguf")
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=True, draft_flag=True, with_draft=False)
    assert [(c.name, c.extra) for c in cols if c.ours] == [
        ("kronk", ("--spec-type", "off")), ("kronk ngram", ("--spec-type", "ngram"))]
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=True, draft_flag=True, with_draft=False,
                                  deterministic=True)
    assert [c.extra for c in cols if c.ours] == [("--spec-type", "off", "--deterministic"),
                                                 ("--spec-type", "ngram", "--deterministic")]
    assert all("--deterministic" not in c.extra for c in cols if not c.ours)


def rounds_for(cols: list[bench_spec.Column], tps: dict[str, dict[str, float]],
               text: dict[str, str]) -> Iterator[dict]:
    """Two rounds where column c generates at tps[c][workload] tokens/s, answering text.get(c, 'same')."""
    for _ in range(2):
        yield {c.name: {w.name: [{"tokens": 101, "ttft_s": 0.5, "total_s": 0.5 + 100 / tps[c.name][w.name],
                                  "text": text.get(c.name, "same"), "timings": {}} for _ in w.prompts]
                        for w in WORKLOADS} for c in cols}


def test_spec_targets_pass_and_fail_on_the_numbers(capsys) -> None:
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=True, draft_flag=True, with_draft=False)
    tps = {c.name: {"repeat-heavy": 100.0, "quoting": 100.0, "free chat": 100.0} for c in cols}
    tps["kronk ngram"] = {"repeat-heavy": 200.0, "quoting": 150.0, "free chat": 97.0}
    tps["llama ngram-mod"]["repeat-heavy"] = 170.0
    checks, summary = bench_spec.report(list(rounds_for(cols, tps, {})), cols)
    result = {c.name: (round(c.value, 3), c.passed) for c in checks}
    assert result == {
        "repeat-heavy: kronk ngram / kronk": (2.0, True),
        "repeat-heavy: kronk ngram / llama ngram-mod": (round(200 / 170, 3), True),
        "free chat: kronk ngram / kronk": (0.97, False),
        "identical greedy text: kronk ngram": (1.0, True),
    }
    assert summary["repeat-heavy"]["llama_best_spec"] == "llama ngram-mod"
    assert "kronk ngram" in capsys.readouterr().out


def test_spec_text_difference_fails_and_no_spec_build_is_not_measured() -> None:
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=True, draft_flag=True, with_draft=False)
    tps = {c.name: {w.name: 100.0 for w in WORKLOADS} for c in cols}
    checks, _ = bench_spec.report(list(rounds_for(cols, tps, {"kronk ngram": "other"})), cols)
    assert [c.passed for c in checks if c.name.startswith("identical")] == [False]
    cols = bench_spec.columns_for(Path("d.gguf"), spec_flags=False, draft_flag=False, with_draft=False)
    checks, _ = bench_spec.report(list(rounds_for(cols, tps, {})), cols)
    assert checks and all(not c.passed for c in checks)
    assert all("not measured" in c.name for c in checks)


def test_spec_totals_sums_kronks_draft_counters_over_models() -> None:
    text = (
        "# HELP kronk_spec_drafted_tokens_total Speculative draft tokens verified (since load).\n"
        "# TYPE kronk_spec_drafted_tokens_total counter\n"
        'kronk_spec_drafted_tokens_total{model="/m/a b.gguf"} 10.0\n'
        'kronk_spec_drafted_tokens_total{model="c"} 5.0\n'
        "# HELP kronk_spec_accepted_tokens_total Speculative draft tokens accepted (since load).\n"
        "# TYPE kronk_spec_accepted_tokens_total counter\n"
        'kronk_spec_accepted_tokens_total{model="/m/a b.gguf"} 7.0\n'
        'kronk_spec_accepted_tokens_total{model="c"} 2.0\n'
        "# TYPE kronk_spec_acceptance_rate gauge\n"
        'kronk_spec_acceptance_rate{model="c"} 0.4\n'
    )
    assert bench_spec.spec_totals(text) == (15.0, 9.0)
    assert bench_spec.spec_totals("# TYPE kronk_models_loaded gauge\nkronk_models_loaded 1.0\n") is None
