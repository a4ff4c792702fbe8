"""Audio input end to end on the tiny random chat model + a tiny random Whisper-style
(`qwen2a`) projector: a WAV clip as an `input_audio` part is accepted and generates, the
engine's output equals a direct libmtmd evaluation followed by greedy decoding, and bad
audio or a model without audio support give clear errors."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kronk.engine.types import SamplingParams
from kronk.errors import CapabilityError, InvalidRequestError
from kronk.llama import Batch, Context, Model, Projector, SamplerChain
from kronk.sdk import AsyncKronk, ChatRequest, ModelSettings, PoolSettings
from kronk.sdk.pool import PathResolution
from tests import tiny_audio, tiny_models

pytestmark = pytest.mark.requires_libs

PROMPT = "<|im_start|>user\n{marker}\nWhat is said?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def audio_projector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_audio.write_qwen2a_projector(tmp_path_factory.mktemp("mmproj-audio") / "mmproj-audio.gguf")


@pytest.fixture(scope="module")
def vision_projector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.write_llava_projector(tmp_path_factory.mktemp("mmproj-vision") / "mmproj-vision.gguf")


@pytest.fixture(scope="module")
def audio_projector(tiny_model: Model, audio_projector_path: Path) -> Iterator[Projector]:
    projector = Projector(audio_projector_path, tiny_model, use_gpu=False)
    yield projector
    projector.close()


def _reference(model: Model, projector: Projector, clip: bytes, n: int) -> list[int]:
    """Greedy tokens from a direct libmtmd evaluation into a fresh context (EOG banned, as
    the engine does for ignore_eos)."""
    ctx = Context(model, n_ctx=1024, n_batch=512, n_threads=2)
    banned = {int(t): -math.inf for t in np.flatnonzero(model.vocab.eog_mask())}
    chain = SamplerChain.from_params(model, SamplingParams(temperature=0, logit_bias=banned))
    batch = Batch(8)
    try:
        chunks = projector.tokenize(PROMPT.format(marker=projector.marker), [clip])
        assert chunks.kinds() == ["text", "audio", "text"]
        n_past = projector.evaluate(ctx, chunks, n_past=0, seq_id=0)
        chunks.close()
        tokens = [chain.sample(ctx, -1)]
        while len(tokens) < n:
            batch.clear()
            row = batch.add(tokens[-1], n_past, 0, True)
            ctx.decode(batch)
            n_past += 1
            tokens.append(chain.sample(ctx, row))
        return tokens
    finally:
        chain.close()
        ctx.close()


def _audio_message(data: str, fmt: str = "wav") -> list[dict[str, object]]:
    return [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": data, "format": fmt}},
        {"type": "text", "text": "What is said?"},
    ]}]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_projector_takes_audio_only(audio_projector: Projector) -> None:
    assert audio_projector.supports_audio and not audio_projector.supports_vision
    chunks = audio_projector.tokenize(PROMPT.format(marker=audio_projector.marker), [tiny_audio.wav_clip(0.5)])
    try:
        assert chunks.kinds() == ["text", "audio", "text"]
        assert chunks.token_ids().count(-1) == tiny_audio.TOKENS_PER_CLIP
    finally:
        chunks.close()
    with pytest.raises(CapabilityError, match="does not accept images"):
        audio_projector.tokenize(PROMPT.format(marker=audio_projector.marker), [tiny_models.ppm_image()])


def _sdk(tiny: dict[str, Path], projectors: dict[str, Path]) -> AsyncKronk:
    """An SDK whose model ids are the tiny chat model with the given projectors (others: none)."""

    def resolver(model: str) -> PathResolution:
        return PathResolution(id=model, path=tiny["chat"], projector=projectors.get(model))

    settings = PoolSettings(default_model="tiny-audio", model_defaults=ModelSettings(
        ctx_size=2048, slots=2, threads=2, prompt_cache_mb=0))
    return AsyncKronk(settings, resolver=resolver)


async def test_sdk_chat_with_an_input_audio_part(tiny_model: Model, audio_projector: Projector,
                                                 tiny: dict[str, Path], audio_projector_path: Path) -> None:
    clip = tiny_audio.wav_clip(1.0)
    expected = _reference(tiny_model, audio_projector, clip, 8)
    async with _sdk(tiny, {"tiny-audio": audio_projector_path}) as kronk:
        info = await kronk.load("tiny-audio")
        assert info.capabilities["audio"] is True and info.capabilities["vision"] is False
        request = ChatRequest(messages=_audio_message(_b64(clip)), max_tokens=8, ignore_eos=True, logprobs=True,
                              sampling=SamplingParams(temperature=0))
        result = await kronk.chat(request)
        choice = result.choices[0]
        assert choice.finish_reason == "length" and result.usage.completion_tokens == 8
        assert [lp.token_id for lp in choice.logprobs or []] == expected
        tokens = await kronk.tokenize_chat(request)
        assert tokens.count(-1) == tiny_audio.TOKENS_PER_CLIP and result.usage.prompt_tokens == len(tokens)
        with pytest.raises(InvalidRequestError, match="not valid base64"):
            await kronk.chat(ChatRequest(messages=_audio_message("@@not base64@@"), max_tokens=2))
        with pytest.raises(InvalidRequestError, match="could not be decoded"):
            await kronk.chat(ChatRequest(messages=_audio_message(_b64(b"RIFF....WAVEnot really")), max_tokens=2))
        with pytest.raises(CapabilityError, match="projector"):
            await kronk.chat(ChatRequest(model="text-only", messages=_audio_message(_b64(clip)), max_tokens=2))
        # an `audio` part carries the same clip (and the model still serves after the errors)
        audio_part = ChatRequest(messages=[{"role": "user", "content": [
            {"type": "audio", "audio": {"data": _b64(clip), "format": "wav"}},
            {"type": "text", "text": "What is said?"}]}], max_tokens=8, ignore_eos=True,
            sampling=SamplingParams(temperature=0))
        assert (await kronk.chat(audio_part)).choices[0].content == choice.content


async def test_audio_for_a_vision_only_projector_is_a_capability_error(tiny: dict[str, Path],
                                                                       vision_projector_path: Path) -> None:
    async with _sdk(tiny, {"tiny-vision": vision_projector_path}) as kronk:
        with pytest.raises(CapabilityError, match="does not accept audio"):
            await kronk.chat(ChatRequest(model="tiny-vision", max_tokens=2,
                                         messages=_audio_message(_b64(tiny_audio.wav_clip(0.5)))))
