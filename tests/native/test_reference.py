"""Our SDK against llama.cpp's own tools on the same libs and model (SmolLM2-135M)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kronk.llama import Batch, Context, Model, SamplerChain

pytestmark = [pytest.mark.slow, pytest.mark.requires_tools]

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at",
    "Here is a list of fruits: apple,",
]


@pytest.fixture(scope="module")
def smol(smollm2: Path, lib_dir: Path) -> Model:
    model = Model.load(smollm2)
    yield model
    model.close()


def reference_completion(tools_dir: Path, model: Path, prompt: str, n: int) -> str:
    proc = subprocess.run(
        [
            str(tools_dir / "llama-completion"), "-m", str(model), "-p", prompt, "-n", str(n), "--temp", "0",
            "-no-cnv", "--no-display-prompt", "-t", "2", "-c", "512", "--no-warmup", "--simple-io", "-s", "1",
        ],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def our_completion(model: Model, prompt: str, n: int) -> str:
    tokens = model.vocab.tokenize(prompt, add_special=True, parse_special=True)
    with Context(model, n_ctx=512, n_threads=2) as ctx, SamplerChain(model).greedy() as chain:
        batch = Batch(512)
        row = batch.add_sequence(tokens, 0, 0, True)
        ctx.decode(batch)
        out, pos = [], len(tokens)
        for _ in range(n):
            token = chain.sample(ctx, row)
            if model.vocab.is_eog(token):
                break
            out.append(token)
            batch.clear()
            row = batch.add(token, pos, 0, True)
            pos += 1
            ctx.decode(batch)
    return b"".join(model.vocab.piece(t) for t in out).decode("utf-8", "replace")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_tokens_equal_llama_completion(smol: Model, smollm2: Path, tools_dir: Path, prompt: str) -> None:
    ours = our_completion(smol, prompt, 64)
    reference = reference_completion(tools_dir, smollm2, prompt, 64)
    # llama-completion ends its output with a newline of its own, or " [end of text]" at EOS
    reference = reference.rstrip("\n").removesuffix(" [end of text]")
    assert ours.rstrip("\n") == reference.rstrip("\n")
    assert len(smol.vocab.tokenize(ours, add_special=False)) >= 10


def test_tokenizer_equals_llama_tokenize(smol: Model, smollm2: Path, tools_dir: Path) -> None:
    text = "Hello world! Ünïcödé, 日本語, emoji 😀, code: def f(x): return x**2 <|im_start|>"
    proc = subprocess.run(
        [str(tools_dir / "llama-tokenize"), "-m", str(smollm2), "-p", text, "--ids", "--log-disable"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = [int(x) for x in proc.stdout.strip().splitlines()[-1].strip("[]").split(",")]
    assert smol.vocab.tokenize(text, add_special=True, parse_special=True) == reference
