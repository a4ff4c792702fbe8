"""A NumPy reference of the BERT (MiniLM) encoder + pooling, to check llama.cpp's embeddings.

The embeddings tests compare what llama.cpp computes from our GGUF with this plain
forward pass: token + position + token-type embeddings, LayerNorm, then per layer
self-attention (no mask: one unpadded sequence), residual + LayerNorm, GELU FFN,
residual + LayerNorm; finally mean (or CLS / last) pooling and L2 normalisation, as
sentence-transformers does for all-MiniLM-L6-v2.

Weights come from the HF safetensors folder (`BertWeights.from_safetensors`, which
also checks the GGUF conversion, since llama.cpp reads the converted file) or from a
GGUF (`BertWeights.from_gguf`). Everything is computed in float64.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Pooling = Literal["mean", "cls", "last"]

# GGUF pooling_type values (llama.cpp's enum llama_pooling_type).
_GGUF_POOLING: dict[int, Pooling] = {1: "mean", 2: "cls", 3: "last"}


@dataclass(frozen=True, slots=True)
class BertLayer:
    """One encoder layer; Linear weights are [out, in] as in PyTorch."""

    q_w: Array
    q_b: Array
    k_w: Array
    k_b: Array
    v_w: Array
    v_b: Array
    o_w: Array
    o_b: Array
    attn_norm_w: Array
    attn_norm_b: Array
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    out_norm_w: Array
    out_norm_b: Array


@dataclass(frozen=True, slots=True)
class BertWeights:
    """Everything the forward pass needs."""

    token_embd: Array
    position_embd: Array
    token_types: Array | None
    embd_norm_w: Array
    embd_norm_b: Array
    layers: tuple[BertLayer, ...]
    n_head: int
    eps: float
    pooling: Pooling = "mean"

    @property
    def n_embd(self) -> int:
        return int(self.token_embd.shape[1])

    @classmethod
    def from_safetensors(cls, model_dir: Path) -> BertWeights:
        """Read a HF BERT folder (config.json + model.safetensors [+ 1_Pooling/config.json])."""
        from safetensors.numpy import load_file

        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        raw = {
            name.removeprefix("bert."): value for name, value in load_file(str(model_dir / "model.safetensors")).items()
        }

        def get(name: str) -> Array:
            return np.asarray(raw[name], dtype=np.float64)

        def layer(i: int) -> BertLayer:
            p = f"encoder.layer.{i}."
            return BertLayer(
                q_w=get(p + "attention.self.query.weight"),
                q_b=get(p + "attention.self.query.bias"),
                k_w=get(p + "attention.self.key.weight"),
                k_b=get(p + "attention.self.key.bias"),
                v_w=get(p + "attention.self.value.weight"),
                v_b=get(p + "attention.self.value.bias"),
                o_w=get(p + "attention.output.dense.weight"),
                o_b=get(p + "attention.output.dense.bias"),
                attn_norm_w=get(p + "attention.output.LayerNorm.weight"),
                attn_norm_b=get(p + "attention.output.LayerNorm.bias"),
                up_w=get(p + "intermediate.dense.weight"),
                up_b=get(p + "intermediate.dense.bias"),
                down_w=get(p + "output.dense.weight"),
                down_b=get(p + "output.dense.bias"),
                out_norm_w=get(p + "output.LayerNorm.weight"),
                out_norm_b=get(p + "output.LayerNorm.bias"),
            )

        pooling: Pooling = "mean"
        pooling_file = model_dir / "1_Pooling" / "config.json"
        if pooling_file.is_file():
            modes = json.loads(pooling_file.read_text(encoding="utf-8"))
            if modes.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif modes.get("pooling_mode_lasttoken"):
                pooling = "last"
        return cls(
            token_embd=get("embeddings.word_embeddings.weight"),
            position_embd=get("embeddings.position_embeddings.weight"),
            token_types=get("embeddings.token_type_embeddings.weight")
            if "embeddings.token_type_embeddings.weight" in raw
            else None,
            embd_norm_w=get("embeddings.LayerNorm.weight"),
            embd_norm_b=get("embeddings.LayerNorm.bias"),
            layers=tuple(layer(i) for i in range(int(config["num_hidden_layers"]))),
            n_head=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
            pooling=pooling,
        )

    @classmethod
    def from_gguf(cls, path: Path) -> BertWeights:
        """Read the weights back from a `bert` GGUF (f32 or f16 tensors)."""
        import gguf

        reader = gguf.GGUFReader(path)
        tensors = {t.name: t for t in reader.tensors}

        def get(name: str) -> Array:
            tensor = tensors[name]
            # GGUFReader gives the row-major shape, i.e. ggml's ne reversed: [out, in].
            return np.asarray(tensor.data, dtype=np.float64).reshape([int(n) for n in reversed(tensor.shape)])

        def field(key: str) -> int | float:
            return reader.fields[key].contents()  # type: ignore[no-any-return]

        def layer(i: int) -> BertLayer:
            p = f"blk.{i}."
            return BertLayer(
                q_w=get(p + "attn_q.weight"),
                q_b=get(p + "attn_q.bias"),
                k_w=get(p + "attn_k.weight"),
                k_b=get(p + "attn_k.bias"),
                v_w=get(p + "attn_v.weight"),
                v_b=get(p + "attn_v.bias"),
                o_w=get(p + "attn_output.weight"),
                o_b=get(p + "attn_output.bias"),
                attn_norm_w=get(p + "attn_output_norm.weight"),
                attn_norm_b=get(p + "attn_output_norm.bias"),
                up_w=get(p + "ffn_up.weight"),
                up_b=get(p + "ffn_up.bias"),
                down_w=get(p + "ffn_down.weight"),
                down_b=get(p + "ffn_down.bias"),
                out_norm_w=get(p + "layer_output_norm.weight"),
                out_norm_b=get(p + "layer_output_norm.bias"),
            )

        pooling_key = "bert.pooling_type"
        pooling_id = int(field(pooling_key)) if pooling_key in reader.fields else 1
        if pooling_id not in _GGUF_POOLING:
            raise ValueError(f"{path}: pooling_type {pooling_id} has no reference implementation")
        return cls(
            token_embd=get("token_embd.weight"),
            position_embd=get("position_embd.weight"),
            token_types=get("token_types.weight") if "token_types.weight" in tensors else None,
            embd_norm_w=get("token_embd_norm.weight"),
            embd_norm_b=get("token_embd_norm.bias"),
            layers=tuple(layer(i) for i in range(int(field("bert.block_count")))),
            n_head=int(field("bert.attention.head_count")),
            eps=float(field("bert.attention.layer_norm_epsilon")),
            pooling=_GGUF_POOLING[pooling_id],
        )


def _erf(x: Array) -> Array:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): NumPy has no vectorised erf."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    result: Array = sign * (1.0 - poly * np.exp(-a * a))
    return result


def gelu(x: Array) -> Array:
    """The exact (erf) GELU of HF BERT; llama.cpp uses the tanh form, within ~1e-3."""
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: Array = (x - mean) / np.sqrt(var + eps) * weight + bias
    return normed


def _linear(x: Array, weight: Array, bias: Array) -> Array:
    return x @ weight.T + bias


def _attention(x: Array, layer: BertLayer, n_head: int) -> Array:
    n_tokens, n_embd = x.shape
    head_dim = n_embd // n_head

    def heads(t: Array) -> Array:  # [n_tokens, n_embd] -> [n_head, n_tokens, head_dim]
        return t.reshape(n_tokens, n_head, head_dim).transpose(1, 0, 2)

    q = heads(_linear(x, layer.q_w, layer.q_b))
    k = heads(_linear(x, layer.k_w, layer.k_b))
    v = heads(_linear(x, layer.v_w, layer.v_b))
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(1, 0, 2).reshape(n_tokens, n_embd)
    return _linear(context, layer.o_w, layer.o_b)


def hidden_states(weights: BertWeights, token_ids: Sequence[int]) -> Array:
    """The last layer's output for one sequence: [n_tokens, n_embd] (pooling "none")."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("token_ids must be a non-empty flat sequence")
    if ids.size > weights.position_embd.shape[0]:
        raise ValueError(f"{ids.size} tokens exceed the {weights.position_embd.shape[0]} positions")
    x = weights.token_embd[ids] + weights.position_embd[: ids.size]
    if weights.token_types is not None:
        x = x + weights.token_types[0]  # every token is "sentence A", as llama.cpp assumes
    x = layer_norm(x, weights.embd_norm_w, weights.embd_norm_b, weights.eps)
    for layer in weights.layers:
        x = layer_norm(x + _attention(x, layer, weights.n_head), layer.attn_norm_w, layer.attn_norm_b, weights.eps)
        ffn = _linear(gelu(_linear(x, layer.up_w, layer.up_b)), layer.down_w, layer.down_b)
        x = layer_norm(x + ffn, layer.out_norm_w, layer.out_norm_b, weights.eps)
    return x


_POOLERS: dict[Pooling, Callable[[Array], Array]] = {
    "mean": lambda h: h.mean(axis=0),
    "cls": lambda h: h[0],
    "last": lambda h: h[-1],
}


def embed(
    weights: BertWeights, token_ids: Sequence[int], *, pooling: Pooling | None = None, normalize: bool = True
) -> Array:
    """The sentence embedding of one sequence: pooled (the model's pooling by default), L2-normalised."""
    pooled = _POOLERS[pooling or weights.pooling](hidden_states(weights, token_ids))
    if not normalize:
        return pooled
    norm = float(np.linalg.norm(pooled))
    return pooled / norm if norm > 0 else pooled


def cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cosine similarity of two vectors."""
    va = np.asarray(a, dtype=np.float64).ravel()
    vb = np.asarray(b, dtype=np.float64).ravel()
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
