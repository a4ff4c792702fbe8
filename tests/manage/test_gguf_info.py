"""Capabilities read from GGUF metadata (gguf package, no native library)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kronk.errors import ModelLoadError
from kronk.models.gguf_info import detect_reasoning, detect_tool_format, read_gguf_info
from tests import tiny_models


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% if tools %}<tool_call>{{ tool }}</tool_call>{% endif %}", "hermes"),
        ("{{ '<|python_tag|>' + call }}", "llama3"),
        ("{{ '[TOOL_CALLS]' + calls|tojson }}", "mistral"),
        ("{% for tool in tools %}{{ tool }}{% endfor %}", "generic"),
        (tiny_models.CHATML_TEMPLATE, "none"),
        (None, "none"),
    ],
)
def test_tool_format_from_template(template: str | None, expected: str) -> None:
    assert detect_tool_format(template) == expected


def test_reasoning_from_template() -> None:
    assert detect_reasoning("{{ '<think>\\n' }}")
    assert detect_reasoning("{% if enable_thinking %}{% endif %}")
    assert not detect_reasoning(tiny_models.CHATML_TEMPLATE)


def test_chat_model(payloads: dict[str, Path]) -> None:
    info = read_gguf_info(payloads["chat"])
    assert info.architecture == "llama"
    assert info.name == "tiny-chat"
    assert info.context_length == 2048 and info.embedding_length == 64 and info.block_count == 2
    assert info.quantization == "F32" and info.file_type == 0
    assert info.parameters > 100_000
    assert info.has_chat_template and info.tool_format == "none"
    caps = info.capabilities()
    assert caps.names() == ["chat", "completion"]


def test_base_fim_and_embedding_models(payloads: dict[str, Path]) -> None:
    assert read_gguf_info(payloads["base"]).capabilities().names() == ["completion"]
    fim = read_gguf_info(payloads["fim"])
    assert fim.fim and fim.capabilities().names() == ["completion", "fim"]
    embed = read_gguf_info(payloads["embed"])
    assert embed.pooling == "mean"
    assert embed.capabilities().names() == ["embedding"]


def test_rerank_and_tool_template(tmp_path: Path) -> None:
    rerank = tiny_models.write_llama_model(tmp_path / "rerank.gguf", pooling_type=4)
    assert read_gguf_info(rerank).capabilities().names() == ["rerank"]
    template = tiny_models.CHATML_TEMPLATE + "{% if tools %}<tool_call>{% endif %}{{ '<think>' }}"
    tools = tiny_models.write_llama_model(tmp_path / "tools.gguf", chat_template=template)
    caps = read_gguf_info(tools).capabilities()
    assert caps.tools and caps.reasoning and caps.tool_format == "hermes"


def test_projector_gives_vision(payloads: dict[str, Path]) -> None:
    projector = read_gguf_info(payloads["mmproj"])
    assert projector.is_projector and projector.has_vision_encoder and projector.projector_type == "mlp"
    caps = read_gguf_info(payloads["chat"]).capabilities(projector)
    assert caps.vision and not caps.audio


def test_split_model_counts_every_shard(payloads: dict[str, Path]) -> None:
    single = read_gguf_info(payloads["shard1"])
    split = read_gguf_info([payloads["shard1"], payloads["shard2"], payloads["shard3"]])
    assert split.parameters == single.parameters + 2 * 16
    assert split.split_count == 3


def test_not_a_gguf_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"hello")
    with pytest.raises(ModelLoadError, match="not a readable GGUF"):
        read_gguf_info(bad)
    with pytest.raises(ModelLoadError, match="no such file"):
        read_gguf_info(tmp_path / "missing.gguf")


@pytest.mark.slow
def test_real_smollm2_metadata(smollm2: Path) -> None:
    info = read_gguf_info(smollm2)
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert info.context_length == 8192 and info.size_label == "135M"
    assert info.capabilities().names() == ["chat", "completion"]
