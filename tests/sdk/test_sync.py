"""The blocking `Kronk` class: the README's first example, embeddings, streams, and what
happens around close (twice is harmless; any use afterwards is a clear ShuttingDownError;
closing while another thread streams ends that stream, never hangs it)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kronk.engine.types import Finish, SamplingParams, TextDelta
from kronk.errors import ShuttingDownError
from kronk.sdk import ChatRequest, EmbeddingRequest, Kronk, PoolSettings
from kronk.sdk import pool as pool_module
from tests.sdk.conftest import long_chat, small_settings

pytestmark = pytest.mark.requires_libs


def test_the_readme_example_runs_as_written(lib_dir: Path, tiny: dict[str, Path]) -> None:
    # README: `with Kronk(PoolSettings(default_model="smollm2")) as kronk: ...`, here with the
    # tiny chat model's path as the default model (the default resolver takes a GGUF path)
    with Kronk(PoolSettings(default_model=str(tiny["chat"]))) as kronk:
        result = kronk.chat(ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=32))
        assert isinstance(result.choices[0].content, str)
        assert 1 <= result.usage.completion_tokens <= 32 and result.model == str(tiny["chat"])
        events = list(kronk.chat_stream(ChatRequest(messages=[{"role": "user", "content": "Count to 5"}])))
    assert isinstance(events[-1], Finish) and events[-1].reason in ("stop", "length")
    assert all(isinstance(event, TextDelta) for event in events[:-1])
    assert events[-1].usage.completion_tokens >= 1


def test_embeddings_through_the_blocking_client(lib_dir: Path, tiny: dict[str, Path]) -> None:
    with Kronk(small_settings()) as kronk:
        result = kronk.embed(EmbeddingRequest(input=["hello world", "the cat"], model=str(tiny["embed"])))
        info = kronk.ps()
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 64
    assert result.embeddings[0] != result.embeddings[1]
    norms = [sum(x * x for x in vector) ** 0.5 for vector in result.embeddings]
    assert norms == pytest.approx([1.0, 1.0], abs=1e-4)
    assert [row.kind for row in info] == ["embedding"]


def test_breaking_out_of_a_stream_frees_its_slot(lib_dir: Path, resolver: Any) -> None:
    with Kronk(small_settings(), resolver=resolver) as kronk:
        for _event in kronk.chat_stream(long_chat("alpha", tokens=400)):
            break
        (row,) = kronk.ps()
        assert row.active_streams == 0
        # the model serves the next request normally
        assert kronk.chat(long_chat("alpha", tokens=3)).usage.completion_tokens == 3


def test_close_twice_is_harmless_and_use_after_close_is_a_clear_error(
        lib_dir: Path, resolver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # close() waits FREE_GRACE_SECONDS for the stream held below, which nobody iterates
    monkeypatch.setattr(pool_module, "FREE_GRACE_SECONDS", 0.05)
    kronk = Kronk(small_settings(), resolver=resolver)
    stream = kronk.chat_stream(long_chat("alpha", tokens=5))
    assert isinstance(next(stream), TextDelta)
    kronk.close()
    kronk.close()
    request = ChatRequest(messages=[{"role": "user", "content": "Hi"}], model="alpha", max_tokens=2,
                          sampling=SamplingParams(temperature=0))
    for call in (lambda: kronk.chat(request), lambda: kronk.chat_stream(request), lambda: kronk.load("alpha"),
                 kronk.ps, kronk.list_models, lambda: kronk.tokenize("alpha", "hi")):
        with pytest.raises(ShuttingDownError, match="this Kronk is closed"):
            call()
    # a stream opened before close: its next step is the same clear error, not a hang
    with pytest.raises(ShuttingDownError, match="this Kronk is closed"):
        list(stream)
    with Kronk(small_settings(), resolver=resolver) as again:  # a second instance is unaffected
        assert again.chat(request).usage.completion_tokens == 2


def test_closing_while_another_thread_streams_ends_that_stream(lib_dir: Path, resolver: Any) -> None:
    kronk = Kronk(small_settings(), resolver=resolver)
    started = threading.Event()
    outcome: list[Any] = []

    def consume() -> None:
        try:
            for event in kronk.chat_stream(long_chat("alpha", tokens=400)):
                started.set()
                outcome.append(event)
        except ShuttingDownError as exc:
            outcome.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(60)
    kronk.close()
    thread.join(60)
    assert not thread.is_alive()
    last = outcome[-1]
    # the stream either saw its Finish (cancelled, or the token limit if it was that quick)
    # or was told clearly that the client closed under it
    assert isinstance(last, ShuttingDownError) or (isinstance(last, Finish) and last.reason in ("cancelled", "length"))
