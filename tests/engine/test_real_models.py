"""Real models end to end through the high-level SDK (`AsyncKronk`), against references.

- all-MiniLM-L6-v2: `embed` equals the NumPy BERT forward pass of the same GGUF weights
  (`tests/embedding_reference.py`), batched or not, truncated or not.
- Gemma 3 270M (a base model with no chat template): greedy `complete` equals
  llama.cpp's own `llama-completion` on the same libs; `chat` falls back to ChatML.
- SmolLM2-135M-Instruct: streamed and non-streamed chat agree, alone and side by side.

Every model goes through the real pool: path resolution, loading, the engine thread.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kronk.engine.types import Finish, SamplingParams, TextDelta
from kronk.errors import CapabilityError, ContextOverflowError, InvalidRequestError
from kronk.sdk import AsyncKronk
from kronk.sdk.pool import path_resolver
from kronk.sdk.requests import ChatRequest, CompletionRequest, EmbeddingRequest
from kronk.sdk.settings import PoolSettings
from tests.embedding_reference import BertWeights, cosine, embed
from tests.require import missing

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]

GREEDY = SamplingParams(temperature=0)
# Every model served the same way. One decode thread: on a shared 2-core
# machine, two OpenMP ggml threads spin at every op barrier while another process holds
# the second core (Gemma: 1 s a token instead of 20 ms, measured). Greedy outputs do not
# depend on the thread count (llama-completion -t 1 and -t 2 print the same text).
SERVING = {"threads": 1, "threads_batch": 1, "ctx_size": 2048, "slots": 4}

SENTENCES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Quantum chromodynamics describes how quarks and gluons interact.",
    "Kronk serves local models through an OpenAI-compatible API.",
]


def kronk_for(model: Path) -> AsyncKronk:
    """An SDK client whose default model is the GGUF at `model`.

    Paths resolve directly: the store's path resolution parses the whole GGUF tokenizer
    in Python (~15 s for Gemma's 262k-token vocabulary); the store has its own tests.
    """
    return AsyncKronk(PoolSettings(default_model=str(model), overrides=dict(SERVING)), resolver=path_resolver)


# ---------------------------------------------------------------- all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm_reference(minilm: Path) -> BertWeights:
    return BertWeights.from_gguf(minilm)


async def _tokens(kronk: AsyncKronk, text: str) -> list[int]:
    """The ids `embed` uses for a text: special tokens added, none parsed."""
    return await kronk.tokenize(None, text, add_special=True, parse_special=False)


async def test_minilm_embeddings_equal_the_numpy_reference(minilm: Path, minilm_reference: BertWeights) -> None:
    async with kronk_for(minilm) as kronk:
        result = await kronk.embed(EmbeddingRequest(input=list(SENTENCES)))
        token_lists = [await _tokens(kronk, text) for text in SENTENCES]
    assert result.model and len(result.embeddings) == len(SENTENCES)
    assert result.prompt_tokens == sum(len(tokens) for tokens in token_lists)
    assert token_lists[0] == [101, 7592, 2088, 102]  # the HF BertTokenizer of all-MiniLM-L6-v2
    for text, tokens, vector in zip(SENTENCES, token_lists, result.embeddings, strict=True):
        assert len(vector) == 384
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
        assert cosine(vector, embed(minilm_reference, tokens)) >= 0.999, text
    # The published sentence-transformers vector of "hello world" starts like this.
    np.testing.assert_allclose(result.embeddings[0][:5], [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362], atol=2e-3)


async def test_minilm_batch_equals_one_by_one_and_dimensions_truncate(minilm: Path) -> None:
    async with kronk_for(minilm) as kronk:
        batched = (await kronk.embed(EmbeddingRequest(input=list(SENTENCES)))).embeddings
        alone = [(await kronk.embed(EmbeddingRequest(input=[text]))).embeddings[0] for text in SENTENCES]
        short = (await kronk.embed(EmbeddingRequest(input=list(SENTENCES), dimensions=128))).embeddings
        raw = (await kronk.embed(EmbeddingRequest(input=[SENTENCES[1]], normalize=False))).embeddings[0]
        for bad in (0, 385):
            with pytest.raises(InvalidRequestError) as failure:
                await kronk.embed(EmbeddingRequest(input=["hello"], dimensions=bad))
            assert failure.value.param == "dimensions"
    for one, many in zip(alone, batched, strict=True):
        np.testing.assert_allclose(many, one, atol=1e-5)
    for full, cut in zip(batched, short, strict=True):
        assert len(cut) == 128
        assert np.linalg.norm(cut) == pytest.approx(1.0, abs=1e-5)
        head = np.asarray(full[:128])
        np.testing.assert_allclose(cut, head / np.linalg.norm(head), atol=1e-5)
    assert np.linalg.norm(raw) > 1.5  # unnormalised mean pooling of MiniLM is far from unit length
    np.testing.assert_allclose(np.asarray(raw) / np.linalg.norm(raw), batched[1], atol=1e-5)


async def test_minilm_over_long_input_truncates_or_overflows(minilm: Path, minilm_reference: BertWeights) -> None:
    text = "the cat sat on the mat and " * 100  # ~700 tokens; MiniLM takes 512
    async with kronk_for(minilm) as kronk:
        tokens = await _tokens(kronk, text)
        assert len(tokens) > 512
        cut = await kronk.embed(EmbeddingRequest(input=[text], truncate=True))
        by_ids = await kronk.embed(EmbeddingRequest(input=[tokens[:512]]))
        with pytest.raises(ContextOverflowError) as failure:
            await kronk.embed(EmbeddingRequest(input=["hello", text], truncate=False))
        # A failed request leaves the model usable.
        again = await kronk.embed(EmbeddingRequest(input=["hello world"]))
    assert failure.value.param is not None and failure.value.param.startswith("input")
    assert cut.prompt_tokens == 512
    np.testing.assert_allclose(cut.embeddings[0], by_ids.embeddings[0], atol=1e-6)
    assert cosine(cut.embeddings[0], embed(minilm_reference, tokens[:512])) >= 0.999
    assert cosine(again.embeddings[0], embed(minilm_reference, [101, 7592, 2088, 102])) >= 0.999


async def test_a_chat_model_refuses_embeddings(smollm2: Path) -> None:
    async with kronk_for(smollm2) as kronk:
        with pytest.raises(CapabilityError) as failure:
            await kronk.embed(EmbeddingRequest(input=["hello"]))
    assert failure.value.param == "model"


# ---------------------------------------------------------------- Gemma 3 270M


GEMMA_PROMPTS = ["The capital of France is", "def fibonacci(n):"]


@pytest.fixture(scope="module")
def completion_tool(lib_dir: Path) -> Path:
    """llama.cpp's `llama-completion`, installed beside the libs (`kronk libs --with-tools`)."""
    for folder in (lib_dir / "bin", lib_dir):
        if (folder / "llama-completion").is_file():
            return folder / "llama-completion"
    missing("tools", "llama.cpp reference tools are not installed (`kronk libs --with-tools`)")


def reference_completion(tool: Path, model: Path, prompt: str, n: int) -> str:
    """Greedy text from llama-completion, without its own trailing newline / end marker.

    The flags are those of tests/native/test_reference.py; a passive OpenMP wait keeps
    its two threads from spinning against each other on a busy machine (same output).
    """
    proc = subprocess.run(
        [
            str(tool), "-m", str(model), "-p", prompt, "-n", str(n), "--temp", "0",
            "-no-cnv", "--no-display-prompt", "-t", "2", "-c", "512", "--no-warmup", "--simple-io", "-s", "1",
        ],
        check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.rstrip("\n").removesuffix(" [end of text]").rstrip("\n")


@pytest.mark.requires_tools
async def test_gemma_greedy_completion_equals_llama_completion(gemma3: Path, completion_tool: Path) -> None:
    # One at a time: two 2-thread processes on a 2-core machine would stall each other.
    references = [
        await asyncio.to_thread(reference_completion, completion_tool, gemma3, prompt, 32) for prompt in GEMMA_PROMPTS
    ]
    async with kronk_for(gemma3) as kronk:
        info = await kronk.load()
        assert info.capabilities["chat_template"] is False  # the base model ships no template
        for prompt, reference in zip(GEMMA_PROMPTS, references, strict=True):
            result = await kronk.complete(CompletionRequest(prompt=prompt, sampling=GREEDY, max_tokens=32))
            choice = result.choices[0]
            assert choice.text.rstrip("\n") == reference, prompt
            assert choice.finish_reason in ("stop", "length")
            assert result.usage.completion_tokens >= 10
            if choice.finish_reason == "length":
                assert result.usage.completion_tokens == 32


async def test_gemma_without_template_chats_through_chatml(gemma3: Path) -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "Name a colour."}], sampling=GREEDY, max_tokens=16
    )
    async with kronk_for(gemma3) as kronk:
        result = await kronk.chat(request)
    choice = result.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert isinstance(choice.content, str) and choice.content.strip()
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 16


# ---------------------------------------------------------------- SmolLM2


def smol_chat(question: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": question}], sampling=GREEDY, max_tokens=32)


async def streamed_text(kronk: AsyncKronk, request: ChatRequest) -> tuple[str, Finish]:
    """The concatenated text deltas of a chat stream and its Finish event."""
    parts: list[str] = []
    finish: Finish | None = None
    async for event in kronk.chat_stream(request):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Finish):
            finish = event
    assert finish is not None
    return "".join(parts), finish


async def test_smollm2_streamed_chat_equals_chat(smollm2: Path) -> None:
    request = smol_chat("What is the capital of France?")
    async with kronk_for(smollm2) as kronk:
        whole = await kronk.chat(request)
        streamed, finish = await streamed_text(kronk, request)
    assert whole.choices[0].content and len(whole.choices[0].content) > 5
    assert streamed == whole.choices[0].content
    assert finish.reason == whole.choices[0].finish_reason
    assert finish.usage.completion_tokens == whole.usage.completion_tokens


async def test_smollm2_concurrent_streams_equal_their_solo_runs(smollm2: Path) -> None:
    questions = ["Write a haiku about the sea.", "List three prime numbers."]
    async with kronk_for(smollm2) as kronk:
        solo = [await streamed_text(kronk, smol_chat(q)) for q in questions]
        (solo_steps,) = [engine.steps for engine in kronk.stats().values()]
        together = await asyncio.gather(*(streamed_text(kronk, smol_chat(q)) for q in questions))
        (all_steps,) = [engine.steps for engine in kronk.stats().values()]
    assert [text for text, _ in together] == [text for text, _ in solo]
    assert [f.reason for _, f in together] == [f.reason for _, f in solo]
    assert [f.usage.completion_tokens for _, f in together] == [f.usage.completion_tokens for _, f in solo]
    assert solo[0][0] != solo[1][0]
    assert all_steps - solo_steps < solo_steps  # the two streams shared decode steps
