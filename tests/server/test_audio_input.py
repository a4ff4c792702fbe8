"""A WAV clip as an `input_audio` part of /v1/chat/completions reaches a store model whose
folder holds a (tiny random, Whisper-style) audio projector, streamed and not; bad audio is a
400 with the API's error body."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests import tiny_audio
from tests.server.conftest import StartServer

pytestmark = pytest.mark.requires_libs


def _message(data: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is said?"},
                                         {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}]


async def test_input_audio_reaches_a_model_with_an_audio_projector(start_server: StartServer, tiny: dict[str, Path],
                                                                   http: aiohttp.ClientSession) -> None:
    from kronk.models.store import ModelStore
    from kronk.paths import models_dir

    folder = models_dir() / "tiny" / "audio"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny["chat"], folder / "audio.gguf")
    tiny_audio.write_qwen2a_projector(folder / "mmproj-audio.gguf")
    ModelStore().rebuild_index()
    server = await start_server(model="tiny/audio")
    await server.ready()
    clip = base64.b64encode(tiny_audio.wav_clip(0.5)).decode()
    body = {"model": "tiny/audio", "max_tokens": 4, "temperature": 0, "ignore_eos": True, "messages": _message(clip)}

    async with http.post(server.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        result = await response.json()
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 4
    assert result["usage"]["prompt_tokens"] > tiny_audio.TOKENS_PER_CLIP

    async with http.post(server.v1 + "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status == 200
        text = (await response.read()).decode()
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert streamed == result["choices"][0]["message"]["content"]
    assert text.rstrip().endswith("data: [DONE]")

    for data, message in (("@@@", "not valid base64"), (base64.b64encode(b"RIFFnot a wav").decode(), "decoded")):
        async with http.post(server.v1 + "/chat/completions", json={**body, "messages": _message(data)}) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert message in error["message"], error
