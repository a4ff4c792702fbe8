"""Helpers shared by the chat tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from kronk.chat.output import ChatOutputParser
from kronk.engine.types import Event, ReasoningDelta, SamplingParams, TextDelta, ToolCallDelta

FIXED_NOW = datetime(2024, 7, 26, 12, 0, 0)

OPEN_WEBUI_TOOLS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "open_webui_tools.json").read_text(encoding="utf-8")
)
"""Open WebUI's 36 built-in tools in the shape it sends them (OpenAI function tools with
pydantic-made parameter schemas, ~25 KB of JSON); written for these tests."""


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def fixed_clock() -> datetime:
    return FIXED_NOW


def run_parser(parser: ChatOutputParser, text: str, chunks: str | int = "all", seed: int = 0) -> list[Event]:
    """Feed `text` whole, one character at a time ("chars"), or in random chunks (an int: max size)."""
    events: list[Event] = []
    if chunks == "all":
        events += parser.feed(text)
    elif chunks == "chars":
        for ch in text:
            events += parser.feed(ch)
    else:
        rng = random.Random(seed)
        i = 0
        while i < len(text):
            n = rng.randint(1, int(chunks))
            events += parser.feed(text[i : i + n])
            i += n
    events += parser.finish()
    return events


def summarize(events: list[Event]) -> dict[str, Any]:
    """Content, reasoning and complete tool calls assembled from events."""
    content = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            if e.index not in calls:
                assert e.id and e.name, "the first delta of a call must carry its id and name"
                calls[e.index] = {"id": e.id, "name": e.name, "arguments": ""}
            else:
                assert e.id is None and e.name is None
            calls[e.index]["arguments"] += e.arguments
    return {"content": content, "reasoning": reasoning, "calls": [calls[i] for i in sorted(calls)]}


def generate(
    model: Any, prompt: str, sampling: SamplingParams, *, max_tokens: int = 200, forced: str = "", threads: int = 1
) -> tuple[str, bool]:
    """Decode `prompt`, then `forced` text (accepted by the sampler chain as if sampled,
    which is how a lazy grammar sees its trigger), then sample up to `max_tokens`.

    Returns the generated text (forced text included) and whether generation stopped
    at an end-of-generation token.
    """
    from kronk.llama import Batch, Context, SamplerChain, Utf8Stream

    vocab = model.vocab
    tokens = vocab.tokenize(prompt, add_special=True, parse_special=True)
    extra = vocab.tokenize(forced, add_special=False, parse_special=True) if forced else []
    pieces: list[str] = [forced]
    stream = Utf8Stream()
    n_ctx = max(512, len(tokens) + len(extra) + max_tokens + 8)
    # One thread: the machine is shared, and busy-waiting worker threads of a tiny model
    # only slow everyone down.
    with Context(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads) as ctx, SamplerChain.from_params(
        model, sampling
    ) as chain:
        batch = Batch(len(tokens) + len(extra) + 1)
        row = batch.add_sequence(tokens + extra, 0, 0, True)
        for token in extra:
            chain.accept(token)
        ctx.decode(batch)
        pos = len(tokens) + len(extra)
        for _ in range(max_tokens):
            token = chain.sample(ctx, row)
            if vocab.is_eog(token):
                pieces.append(stream.flush())
                return "".join(pieces), True
            pieces.append(stream.push(vocab.piece(token, special=True)))
            batch.clear()
            row = batch.add(token, pos, 0, True)
            pos += 1
            ctx.decode(batch)
    pieces.append(stream.flush())
    return "".join(pieces), False
