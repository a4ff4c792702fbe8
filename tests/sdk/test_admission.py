"""A request the model cannot serve is refused from the model's metadata before the pool
loads anything: the same CapabilityError (400 unsupported_capability) as from the loaded
model, and the model that was resident stays (nothing loaded, nothing evicted)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kronk.errors import CapabilityError, ModelNotFoundError
from kronk.models.gguf_info import read_gguf_info
from kronk.models.store import ModelStore
from kronk.paths import models_dir
from kronk.sdk import (
    AsyncKronk,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankRequest,
)
from kronk.sdk.pool import PathResolution
from tests import tiny_models
from tests.sdk.conftest import small_settings

pytestmark = pytest.mark.requires_libs

Files = dict[str, tuple[Path, Path | None]]
"""Model id -> (GGUF, projector)."""


@pytest.fixture(scope="module")
def files(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Files:
    vision = tiny_models.write_llava_projector(tmp_path_factory.mktemp("mmproj") / "mmproj-tiny.gguf")
    return {
        "resident": (tiny["chat"], None),
        "chatty": (tiny["chat"], None),
        "embedder": (tiny["embed"], None),
        "seer": (tiny["chat"], vision),
    }


def resolver_for(files: Files, *, metadata: bool) -> Callable[[str], PathResolution]:
    """With `metadata`, resolutions carry capabilities read from the GGUF headers (as the
    store's do); without, only the loaded model can tell what it serves."""

    def resolve(model: str) -> PathResolution:
        if model not in files:
            raise ModelNotFoundError(model)
        path, projector = files[model]
        caps = None
        if metadata:
            caps = read_gguf_info(path).capabilities(read_gguf_info(projector) if projector else None)
        return PathResolution(id=model, path=path, projector=projector, capabilities=caps)

    return resolve


@pytest.fixture
async def make(files: Files, lib_dir: Path) -> AsyncIterator[Callable[..., Awaitable[AsyncKronk]]]:
    started: list[AsyncKronk] = []

    async def start(*, metadata: bool, **pool: Any) -> AsyncKronk:
        kronk = AsyncKronk(small_settings(max_models=1, **pool), resolver=resolver_for(files, metadata=metadata))
        await kronk.start()
        started.append(kronk)
        return kronk

    yield start
    for kronk in started:
        await kronk.close()


def _chat(model: str, *parts: dict[str, Any]) -> ChatRequest:
    content: Any = [{"type": "text", "text": "What is this?"}, *parts] if parts else "Hi"
    return ChatRequest(messages=[{"role": "user", "content": content}], model=model, max_tokens=4)


_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
_AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}

REFUSED: dict[str, tuple[Callable[[AsyncKronk], Awaitable[Any]], dict[str, Any]]] = {
    "embeddings from a chat model": (lambda k: k.embed(EmbeddingRequest(input=["hi"], model="chatty")), {}),
    "chat with an embedding model": (lambda k: k.chat(_chat("embedder")), {}),
    "chat stream with an embedding model": (lambda k: anext(k.chat_stream(_chat("embedder"))), {}),
    "count tokens with an embedding model": (lambda k: k.tokenize_chat(_chat("embedder")), {}),
    "completion with an embedding model": (
        lambda k: k.complete(CompletionRequest(prompt="Once", model="embedder", max_tokens=2)), {}),
    "rerank with a chat model": (
        lambda k: k.rerank(RerankRequest(query="q", documents=["d"], model="chatty")), {}),
    "an image to a model without projector": (lambda k: k.chat(_chat("chatty", _IMAGE)), {}),
    "audio to a vision-only projector": (lambda k: k.chat(_chat("seer", _AUDIO)), {}),
    "chat with a chat model configured for embeddings": (
        lambda k: k.chat(_chat("chatty")), {"per_model": {"chatty": {"embeddings": True}}}),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_a_request_the_model_cannot_serve_loads_and_evicts_nothing(
    make: Callable[..., Awaitable[AsyncKronk]], case: str
) -> None:
    call, pool = REFUSED[case]
    kronk = await make(metadata=True, **pool)
    resident = (await kronk.load("resident")).id
    held = kronk.pool.loaded(resident)
    with pytest.raises(CapabilityError) as before_load:
        await call(kronk)
    assert [m.id for m in kronk.pool.models()] == ["resident"] and kronk.pool.loaded("resident") is held

    # The loaded model, asked without metadata, says exactly the same.
    blind = await make(metadata=False, **pool)
    with pytest.raises(CapabilityError) as after_load:
        await call(blind)
    assert blind.pool.models(), "without metadata the model is loaded first"
    assert (str(before_load.value), before_load.value.param) == (str(after_load.value), after_load.value.param)
    assert (before_load.value.http_status, before_load.value.error_code) == (400, "unsupported_capability")


async def test_requests_the_metadata_allows_still_load_and_run(make: Callable[..., Awaitable[AsyncKronk]]) -> None:
    kronk = await make(metadata=True)
    result = await kronk.chat(_chat("chatty"))
    assert result.model == "chatty" and result.choices
    vectors = await kronk.embed(EmbeddingRequest(input=["hi"], model="embedder"))
    assert vectors.model == "embedder" and vectors.embeddings
    assert [m.id for m in kronk.pool.models()] == ["embedder"]


async def test_the_store_resolver_lets_a_request_be_refused_before_loading(tiny: dict[str, Path],
                                                                          lib_dir: Path) -> None:
    """Through the model store (the server's resolver): its index holds each model's capabilities."""
    for name, source in (("chat", tiny["chat"]), ("chat2", tiny["chat"]), ("embed", tiny["embed"])):
        folder = models_dir() / "tiny" / name
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / f"{name}.gguf")
    ModelStore().rebuild_index()
    kronk = AsyncKronk(small_settings(max_models=1))
    await kronk.start()
    try:
        held = (await kronk.load("tiny/chat"), kronk.pool.loaded("tiny/chat"))[1]
        with pytest.raises(CapabilityError, match="'tiny/embed' is a embedding model and cannot serve chat"):
            await kronk.chat(_chat("tiny/embed"))
        with pytest.raises(CapabilityError, match="'tiny/chat2' is a chat model; load an embedding model"):
            await kronk.embed(EmbeddingRequest(input=["hi"], model="tiny/chat2"))
        assert kronk.pool.models() == [held]
    finally:
        await kronk.close()
