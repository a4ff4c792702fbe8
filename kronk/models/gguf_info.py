"""Facts about a model read from its GGUF metadata, without loading llama.cpp.

The store calls this once per file (results are cached in the index by size and
mtime), so listing models never touches the native library. The header is read by
`gguf_header` (milliseconds, even for a 262k-token vocabulary); it is still blocking
file I/O, so callers on an event loop use a thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kronk.errors import ModelLoadError
from kronk.models.capabilities import Capabilities
from kronk.models.gguf_header import GGUFFormatError, GGUFHeader, read_header

# Architectures that only encode text (BERT family): embeddings or reranking, never chat.
ENCODER_ARCHITECTURES = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert",
    "modern-bert", "eurobert", "t5encoder",
})
POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}

# Token texts llama.cpp recognises as FIM prefix/suffix/middle when no id is in the metadata.
_FIM_TOKEN_SETS: tuple[tuple[bytes, bytes, bytes], ...] = (
    (b"<|fim_prefix|>", b"<|fim_suffix|>", b"<|fim_middle|>"),
    (b"<fim_prefix>", b"<fim_suffix>", b"<fim_middle>"),
    (b"<fim-prefix>", b"<fim-suffix>", b"<fim-middle>"),
    (b"<PRE>", b"<SUF>", b"<MID>"),
    ("<｜fim▁begin｜>".encode(), "<｜fim▁hole｜>".encode(), "<｜fim▁end｜>".encode()),
)
_REASONING_MARKERS = ("<think>", "</think>", "enable_thinking", "reasoning_content", "<|channel|>analysis")


def detect_tool_format(template: str | None) -> str:
    """The tool-call wire format a chat template speaks, from marker strings in its text."""
    if not template:
        return "none"
    if "<tool_call>" in template:
        return "hermes"
    if "<|python_tag|>" in template:
        return "llama3"
    if "[TOOL_CALLS]" in template:
        return "mistral"
    if "tools" in template or "tool_calls" in template:
        return "generic"
    return "none"


def detect_reasoning(template: str | None) -> bool:
    """Whether the template has a thinking block (so the model emits reasoning)."""
    return bool(template) and any(marker in template for marker in _REASONING_MARKERS)  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """The metadata Kronk cares about, for a model (all shards) or a projector."""

    architecture: str
    name: str | None = None
    parameters: int = 0
    size_label: str | None = None
    file_type: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    pooling: str | None = None
    has_chat_template: bool = False
    tool_format: str = "none"
    reasoning: bool = False
    fim: bool = False
    split_count: int = 1
    projector_type: str | None = None
    has_vision_encoder: bool = False
    has_audio_encoder: bool = False

    @property
    def is_projector(self) -> bool:
        return self.architecture == "clip"

    @property
    def is_encoder(self) -> bool:
        return self.architecture in ENCODER_ARCHITECTURES

    def capabilities(self, projector: GGUFInfo | None = None) -> Capabilities:
        """What the model can serve, judged from its metadata (and its projector's)."""
        rerank = self.pooling == "rank"
        embedding = not rerank and (self.is_encoder or self.pooling not in (None, "none"))
        generative = not (rerank or embedding or self.is_encoder)
        chat = generative and self.has_chat_template
        return Capabilities(
            chat=chat,
            completion=generative,
            embedding=embedding,
            rerank=rerank,
            tools=chat and self.tool_format != "none",
            reasoning=chat and self.reasoning,
            vision=generative and projector is not None and projector.has_vision_encoder,
            audio=generative and projector is not None and projector.has_audio_encoder,
            fim=generative and self.fim,
            tool_format=self.tool_format if chat else "none",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GGUFInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _quant_name(file_type: int | None) -> str | None:
    """`general.file_type` as llama.cpp names it (Q4_K_M, F16, ...), from our declaration of
    `enum llama_ftype` (checked against the pinned build's header; no library is loaded)."""
    if file_type is None:
        return None
    from kronk._native._ffi import ffi

    name = ffi.typeof("enum llama_ftype").elements.get(file_type)
    if name is None:
        return f"type-{file_type}"
    return name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")


_TOKENS_KEY = "tokenizer.ggml.tokens"


class _Meta:
    """Typed lookups over one GGUF header's metadata."""

    def __init__(self, header: GGUFHeader) -> None:
        self._values = header.metadata
        self._found = header.found_strings

    def value(self, key: str) -> Any:
        return self._values.get(key)

    def text(self, key: str) -> str | None:
        value = self.value(key)
        return value if isinstance(value, str) else None

    def integer(self, key: str) -> int | None:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value)

    def flag(self, key: str) -> bool:
        return self.value(key) is True

    def has(self, key: str) -> bool:
        return key in self._values

    def token_texts(self) -> set[bytes]:
        """Which candidate FIM tokens the vocabulary holds."""
        tokens = self.value(_TOKENS_KEY)
        if isinstance(tokens, list):  # a short vocabulary is kept whole
            return {t.encode() for t in tokens if isinstance(t, str)}
        return self._found.get(_TOKENS_KEY, set())


def _open(path: Path) -> GGUFHeader:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    wanted = {_TOKENS_KEY: [token for group in _FIM_TOKEN_SETS for token in group]}
    try:
        return read_header(path, wanted)
    except (GGUFFormatError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from exc


def _has_fim(meta: _Meta) -> bool:
    if all(meta.has(f"tokenizer.ggml.fim_{part}_token_id") for part in ("pre", "suf", "mid")):
        return True
    tokens = meta.token_texts()
    return any(all(token in tokens for token in group) for group in _FIM_TOKEN_SETS)


def read_gguf_info(paths: Path | Sequence[Path]) -> GGUFInfo:
    """Read one GGUF, or all shards of a split GGUF (metadata from the first, tensors from all)."""
    shards = [paths] if isinstance(paths, Path) else list(paths)
    if not shards:
        raise ModelLoadError("no GGUF files given")
    header = _open(shards[0])
    meta = _Meta(header)
    parameters = header.parameters
    for shard in shards[1:]:
        parameters += _open(shard).parameters
    arch = meta.text("general.architecture") or "unknown"
    file_type = meta.integer("general.file_type")
    if arch == "clip":
        return GGUFInfo(
            architecture=arch,
            name=meta.text("general.name"),
            parameters=parameters,
            file_type=file_type,
            quantization=_quant_name(file_type),
            projector_type=meta.text("clip.projector_type")
            or meta.text("clip.vision.projector_type")
            or meta.text("clip.audio.projector_type"),
            has_vision_encoder=meta.flag("clip.has_vision_encoder"),
            has_audio_encoder=meta.flag("clip.has_audio_encoder"),
        )
    template = meta.text("tokenizer.chat_template")
    pooling_id = meta.integer(f"{arch}.pooling_type")
    return GGUFInfo(
        architecture=arch,
        name=meta.text("general.name"),
        parameters=parameters,
        size_label=meta.text("general.size_label"),
        file_type=file_type,
        quantization=_quant_name(file_type),
        context_length=meta.integer(f"{arch}.context_length"),
        embedding_length=meta.integer(f"{arch}.embedding_length"),
        block_count=meta.integer(f"{arch}.block_count"),
        pooling=POOLING_NAMES.get(pooling_id, f"type-{pooling_id}") if pooling_id is not None else None,
        has_chat_template=bool(template),
        tool_format=detect_tool_format(template),
        reasoning=detect_reasoning(template),
        fim=_has_fim(meta),
        split_count=meta.integer("split.count") or len(shards),
    )
