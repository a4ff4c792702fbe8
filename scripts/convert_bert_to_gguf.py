#!/usr/bin/env python3
"""Convert a Hugging Face BERT sentence-embedding model (safetensors) to a GGUF file.

    python scripts/convert_bert_to_gguf.py SRC_DIR OUT.gguf [--outtype f16|f32] [--name NAME]

SRC_DIR holds `config.json`, `model.safetensors` and `vocab.txt` (optionally
`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` and the
sentence-transformers `1_Pooling/config.json`). The output follows the conventions
llama.cpp's BERT loader expects (b11434): `bert.*` hyperparameters, non-causal
attention, the pooling type of the sentence-transformers model, and a WordPiece
("bert") vocabulary in llama.cpp's phantom-space form: a word-initial piece `hello`
is stored as `▁hello`, a continuation `##lo` as `lo`, and special tokens unchanged.

Why our own converter: llama.cpp's `convert_hf_to_gguf.py` needs torch and
transformers; this one needs only numpy, `safetensors` and `gguf`, so a test machine
can build the embedding test model from a PyPI wheel in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np

from kronk.errors import KronkError, ModelLoadError

OutType = Literal["f16", "f32"]
ARCH = "bert"
PHANTOM_SPACE = "\u2581"

# HF tensor name (after dropping a "bert." prefix) -> GGUF tensor name.
_EMBEDDING_NAMES: dict[str, str] = {
    "embeddings.word_embeddings.weight": "token_embd.weight",
    "embeddings.token_type_embeddings.weight": "token_types.weight",
    "embeddings.position_embeddings.weight": "position_embd.weight",
    "embeddings.LayerNorm.weight": "token_embd_norm.weight",
    "embeddings.LayerNorm.bias": "token_embd_norm.bias",
}
_LAYER_PARTS: dict[str, str] = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
# Present in HF checkpoints but unused for sentence embeddings (llama.cpp drops them too).
_SKIPPED_PREFIXES = ("embeddings.position_ids", "pooler.", "cls.")
# Kept in f32 even in an f16 file, as llama.cpp's converter does: small, precision-sensitive.
_ALWAYS_F32 = ("position_embd.weight", "token_types.weight")
_POOLING_MODES: dict[str, gguf.PoolingType] = {
    "pooling_mode_mean_tokens": gguf.PoolingType.MEAN,
    "pooling_mode_cls_token": gguf.PoolingType.CLS,
    "pooling_mode_lasttoken": gguf.PoolingType.LAST,
}
_SPECIAL_ROLES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The hyperparameters llama.cpp's BERT graph needs, read from `config.json`."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True, slots=True)
class Vocab:
    """A WordPiece vocabulary in GGUF form plus the ids of its special tokens."""

    tokens: list[str]
    token_types: list[int]
    special_ids: dict[str, int]
    """Keys: unk, sep, pad, cls, mask (those the tokenizer files name)."""
    lowercase: bool
    strip_accents: bool


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def _read_optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.is_file() else {}


def read_config(src_dir: Path) -> BertConfig:
    """Validate that `config.json` describes a BERT that llama.cpp's `bert` graph can run."""
    raw = _read_json(src_dir / "config.json")
    archs = raw.get("architectures") or []
    if raw.get("model_type") != "bert" and "BertModel" not in archs:
        raise ModelLoadError(f"not a BERT model: model_type={raw.get('model_type')!r}, architectures={archs!r}")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise ModelLoadError(f"unsupported hidden_act {raw.get('hidden_act')!r} (llama.cpp's BERT uses gelu)")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ModelLoadError(f"unsupported position_embedding_type {raw.get('position_embedding_type')!r}")
    try:
        config = BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
    except KeyError as exc:
        raise ModelLoadError(f"config.json lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"config.json has a malformed value: {exc}") from exc
    if config.hidden_size % config.num_attention_heads:
        raise ModelLoadError("hidden_size is not a multiple of num_attention_heads")
    return config


def read_pooling_type(src_dir: Path) -> gguf.PoolingType:
    """The sentence-transformers pooling of the model; mean when it does not say."""
    pooling = _read_optional_json(src_dir / "1_Pooling" / "config.json")
    chosen = [mode for key, mode in _POOLING_MODES.items() if pooling.get(key)]
    if len(chosen) > 1:
        raise ModelLoadError(f"several pooling modes enabled in 1_Pooling/config.json: {chosen}")
    if not chosen and any(v is True for k, v in pooling.items() if k.startswith("pooling_mode")):
        raise ModelLoadError("1_Pooling/config.json asks for a pooling mode llama.cpp lacks")
    return chosen[0] if chosen else gguf.PoolingType.MEAN


def _special_token_strings(src_dir: Path) -> tuple[dict[str, str], set[str], dict[str, Any]]:
    """Role -> text of the special tokens, all texts marked special, and tokenizer_config."""
    tok_config = _read_optional_json(src_dir / "tokenizer_config.json")
    special_map = _read_optional_json(src_dir / "special_tokens_map.json")
    roles: dict[str, str] = {}
    for role in _SPECIAL_ROLES:
        value = special_map.get(role, tok_config.get(role))
        if isinstance(value, dict):  # {"content": "[CLS]", ...}
            value = value.get("content")
        if isinstance(value, str):
            roles[role] = value
    special = set(roles.values())
    tokenizer_json = _read_optional_json(src_dir / "tokenizer.json")
    for added in tokenizer_json.get("added_tokens") or []:
        if isinstance(added, dict) and added.get("special") and isinstance(added.get("content"), str):
            special.add(added["content"])
    return roles, special, tok_config


def read_vocab(src_dir: Path, vocab_size: int) -> Vocab:
    """Read `vocab.txt` (one WordPiece per line, id = line number) into GGUF form."""
    path = src_dir / "vocab.txt"
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable UTF-8 text: {exc}") from exc
    if lines and lines[-1] == "":
        lines.pop()
    pieces = [line.rstrip("\r") for line in lines]
    if len(pieces) > vocab_size:
        raise ModelLoadError(f"vocab.txt has {len(pieces)} entries, config.json says vocab_size={vocab_size}")
    roles, special, tok_config = _special_token_strings(src_dir)
    tokens: list[str] = []
    types: list[int] = []
    for piece in pieces:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("##"):
            tokens.append(piece[2:])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(PHANTOM_SPACE + piece)
            types.append(gguf.TokenType.NORMAL)
    # Embedding rows past the vocabulary file get placeholder tokens, as llama.cpp's converter does.
    for index in range(len(pieces), vocab_size):
        tokens.append(f"[PAD{index}]")
        types.append(gguf.TokenType.UNUSED)
    if len(set(tokens)) != len(tokens):
        raise ModelLoadError("vocab.txt maps two entries to the same GGUF token")
    index_of = {piece: i for i, piece in enumerate(pieces)}
    special_ids: dict[str, int] = {}
    for role, text in roles.items():
        if text not in index_of:
            raise ModelLoadError(f"special token {text!r} ({role}) is not in vocab.txt")
        special_ids[role.removesuffix("_token")] = index_of[text]
    for needed in ("cls", "sep"):
        if needed not in special_ids:
            raise ModelLoadError(f"the tokenizer files name no {needed} token; a BERT input needs one")
    lowercase = bool(tok_config.get("do_lower_case", True))
    strip_accents = tok_config.get("strip_accents")
    return Vocab(
        tokens=tokens,
        token_types=[int(t) for t in types],
        special_ids=special_ids,
        lowercase=lowercase,
        strip_accents=lowercase if strip_accents is None else bool(strip_accents),
    )


def gguf_tensor_name(hf_name: str) -> str | None:
    """Map a HF BERT tensor name to its GGUF name; None for tensors embeddings do not use."""
    name = hf_name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    if name.startswith(_SKIPPED_PREFIXES):
        return None
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    match = _LAYER_RE.match(name)
    if match and match.group(2) in _LAYER_PARTS:
        return f"blk.{match.group(1)}.{_LAYER_PARTS[match.group(2)]}.{match.group(3)}"
    raise ModelLoadError(f"unexpected tensor {hf_name!r} in a BERT checkpoint")


def _storage_dtype(gguf_name: str, array: np.ndarray, outtype: OutType) -> type[np.floating[Any]]:
    """f16 only for 2-D weight matrices; vectors, norms, positions and token types stay f32."""
    if outtype == "f16" and array.ndim == 2 and gguf_name.endswith(".weight") and gguf_name not in _ALWAYS_F32:
        return np.float16
    return np.float32


def read_tensors(src_dir: Path) -> dict[str, np.ndarray]:
    """All tensors of `model.safetensors` as NumPy arrays (no torch needed)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = src_dir / "model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing (only safetensors checkpoints are supported)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file: {exc}") from exc


def _expected_shapes(config: BertConfig) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Every tensor llama.cpp's BERT loader requires, with its NumPy (row-major) shape."""
    d, ff = config.hidden_size, config.intermediate_size
    yield "token_embd.weight", (config.vocab_size, d)
    yield "position_embd.weight", (config.max_position_embeddings, d)
    yield "token_embd_norm.weight", (d,)
    yield "token_embd_norm.bias", (d,)
    for i in range(config.num_hidden_layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            yield f"blk.{i}.{part}.weight", (d, d)
            yield f"blk.{i}.{part}.bias", (d,)
        for part in ("attn_output_norm", "layer_output_norm"):
            yield f"blk.{i}.{part}.weight", (d,)
            yield f"blk.{i}.{part}.bias", (d,)
        yield f"blk.{i}.ffn_up.weight", (ff, d)
        yield f"blk.{i}.ffn_up.bias", (ff,)
        yield f"blk.{i}.ffn_down.weight", (d, ff)
        yield f"blk.{i}.ffn_down.bias", (d,)


def map_tensors(hf_tensors: Mapping[str, np.ndarray], config: BertConfig, outtype: OutType) -> dict[str, np.ndarray]:
    """Rename, check shapes and cast; returns GGUF name -> array in a stable order.

    A HF Linear weight is [out, in] row-major, which is exactly ggml's {in, out}, so no
    tensor needs transposing. `token_types` is optional, as in llama.cpp's loader.
    """
    renamed: dict[str, np.ndarray] = {}
    for hf_name, array in hf_tensors.items():
        name = gguf_tensor_name(hf_name)
        if name is None:
            continue
        if name in renamed:
            raise ModelLoadError(f"two checkpoint tensors map to {name!r}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ModelLoadError(f"tensor {hf_name!r} has dtype {array.dtype}, expected floating point")
        renamed[name] = array
    expected = dict(_expected_shapes(config))
    if "token_types.weight" in renamed:
        expected["token_types.weight"] = (config.type_vocab_size, config.hidden_size)
    missing = [name for name in expected if name not in renamed]
    if missing:
        raise ModelLoadError(
            f"the checkpoint lacks {missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    extra = sorted(set(renamed) - set(expected))
    if extra:
        raise ModelLoadError(f"tensors for more layers than config.json declares: {extra[:3]}")
    ordered: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        array = renamed[name]
        if array.shape != shape:
            raise ModelLoadError(f"{name} has shape {array.shape}, expected {shape}")
        ordered[name] = np.ascontiguousarray(array, dtype=_storage_dtype(name, array, outtype))
    return ordered


def _write_metadata(
    writer: gguf.GGUFWriter, name: str, config: BertConfig, vocab: Vocab, pooling: gguf.PoolingType, outtype: OutType
) -> None:
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_layer_norm_eps(config.layer_norm_eps)
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")  # WordPiece has no pre-tokenizer variants in llama.cpp
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_type_count(config.type_vocab_size)
    ids = vocab.special_ids
    # A BERT input is [CLS] text [SEP]: llama.cpp's WPM tokenizer adds bos and sep.
    writer.add_bos_token_id(ids["cls"])
    writer.add_eos_token_id(ids["sep"])
    writer.add_sep_token_id(ids["sep"])
    writer.add_uint32("tokenizer.ggml.cls_token_id", ids["cls"])
    if "unk" in ids:
        writer.add_unk_token_id(ids["unk"])
    if "pad" in ids:
        writer.add_pad_token_id(ids["pad"])
    if "mask" in ids:
        writer.add_mask_token_id(ids["mask"])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", vocab.lowercase)
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", vocab.strip_accents)


def write_gguf(
    out_path: Path,
    name: str,
    config: BertConfig,
    vocab: Vocab,
    pooling: gguf.PoolingType,
    tensors: Mapping[str, np.ndarray],
    outtype: OutType,
) -> None:
    """Write the GGUF to a temp file beside `out_path`, fsync it, then rename it into place."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, ARCH)
        _write_metadata(writer, name, config, vocab, pooling, outtype)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # mkstemp makes 0600; a model file is not a secret
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def convert(src_dir: Path, out_path: Path, outtype: OutType = "f16", name: str | None = None) -> Path:
    """Convert the BERT model in `src_dir` to `out_path`; returns `out_path`.

    Raises ModelLoadError when the source is missing a file or is not a BERT that
    llama.cpp's `bert` architecture can run.
    """
    if outtype not in ("f16", "f32"):
        raise ModelLoadError(f"unsupported outtype {outtype!r} (choose f16 or f32)")
    if not src_dir.is_dir():
        raise ModelLoadError(f"{src_dir} is not a directory")
    config = read_config(src_dir)
    vocab = read_vocab(src_dir, config.vocab_size)
    pooling = read_pooling_type(src_dir)
    tensors = map_tensors(read_tensors(src_dir), config, outtype)
    write_gguf(out_path, name or src_dir.name, config, vocab, pooling, tensors, outtype)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src_dir", type=Path, help="folder with config.json, model.safetensors, vocab.txt")
    parser.add_argument("out", type=Path, help="GGUF file to write")
    parser.add_argument("--outtype", choices=("f16", "f32"), default="f16", help="weight matrix type (default f16)")
    parser.add_argument("--name", help="general.name in the GGUF (default: the source folder name)")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src_dir, args.out, args.outtype, args.name)
    except KronkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
